package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/broker/audit"
)

// anchoredPair writes a broker store and a department agent's log the way
// a broker and its agent fill them for n fragments: the broker's decision
// entry, the agent's write-ahead entry holding the broker's anchor, the
// agent's outcome, and the broker's result holding the agent's anchor. Both
// sign checkpoints, the broker with its own key (every 3 entries), the
// agent with its own (at close).
func anchoredPair(t *testing.T, dir string, from, n int, brokerKey, agentKey string) (store, agentLog string) {
	t.Helper()
	ctx := context.Background()
	store, agentLog = filepath.Join(dir, "broker.db"), filepath.Join(dir, "civil-agent.db")
	bs, err := audit.LoadOrCreateEd25519(brokerKey)
	if err != nil {
		t.Fatal(err)
	}
	as, err := audit.LoadOrCreateEd25519(agentKey)
	if err != nil {
		t.Fatal(err)
	}
	bl, err := audit.Open(ctx, store, audit.WithSigners(bs), audit.WithCheckpointEvery(3, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	al, err := auditlog.Open(ctx, agentLog, as)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		q := "q-" + string(rune('a'+i))
		dec := &audit.Entry{Kind: audit.KindQuery, QueryID: q, Principal: "bob", Department: "market", Decision: audit.DecisionAllow, Datasets: []string{"civil.residents"}}
		if err := bl.Append(ctx, dec); err != nil {
			t.Fatal(err)
		}
		ba := &audit.Anchor{Seq: dec.Seq, Hash: dec.Hash, Checkpoint: bl.LastCheckpoint().Signed()}
		begin := &audit.Entry{Kind: audit.KindFragment, QueryID: q, Principal: "bob", Decision: audit.DecisionAllow, Datasets: []string{"civil.residents"}, Phase: audit.PhaseBegin, Peer: ba}
		if err := al.Append(ctx, begin); err != nil {
			t.Fatal(err)
		}
		aa := &audit.Anchor{Seq: begin.Seq, Hash: begin.Hash, Checkpoint: al.LastCheckpoint().Signed()}
		fr := audit.FragmentRecord{Department: "civil", Dataset: "civil.residents", Rows: 3, Bytes: 30, Digest: "sha256:d"}
		out := &audit.Entry{Kind: audit.KindFragment, QueryID: q, Principal: "bob", Decision: audit.DecisionAllow, Datasets: []string{"civil.residents"}, Rows: 3, Peer: ba, Fragments: []audit.FragmentRecord{fr}}
		if err := al.Append(ctx, out); err != nil {
			t.Fatal(err)
		}
		fr.Peer = aa
		res := &audit.Entry{Kind: audit.KindResult, QueryID: q, Principal: "bob", Decision: audit.DecisionAllow, Rows: 3, Fragments: []audit.FragmentRecord{fr}}
		if err := bl.Append(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	if err := bl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	return store, agentLog
}

func copyStore(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		in, err := os.Open(from + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			os.Remove(to + suffix)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(to + suffix)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(out, in)
		in.Close()
		out.Close()
	}
}

// TestAuditVerifyWithAgentLogs: `sluice audit verify --agent-log` passes
// two logs that agree, and catches the broker's store rolled back to an
// earlier checkpoint (which verifies on its own) and an agent's log rolled
// back likewise.
func TestAuditVerifyWithAgentLogs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	brokerKey, agentKey := filepath.Join(dir, "broker-audit.pem"), filepath.Join(dir, "agent-audit.pem")
	store, agentLog := anchoredPair(t, dir, 0, 3, brokerKey, agentKey)
	copyStore(t, store, filepath.Join(dir, "broker-backup.db"))
	copyStore(t, agentLog, filepath.Join(dir, "agent-backup.db"))
	anchoredPair(t, dir, 3, 3, brokerKey, agentKey) // three more fragments
	copyStore(t, store, filepath.Join(dir, "broker-full.db"))
	s, err := audit.LoadOrCreateEd25519(brokerKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "broker-audit.pub")
	if err := audit.WritePublicKey(pubFile, s); err != nil {
		t.Fatal(err)
	}
	verify := func() (string, error) {
		var out bytes.Buffer
		err := run(ctx, []string{"audit", "verify", "--store", store, "--key", pubFile, "--agent-log", "civil=" + agentLog}, &out, &out)
		return out.String(), err
	}
	if got, err := verify(); err != nil || !strings.Contains(got, "audit chain OK: 12 entries") || !strings.Contains(got, "anchors: no log was cut back") {
		t.Fatalf("two logs that agree: %v\n%s", err, got)
	}

	// The broker's store rolled back to its copy after 3 fragments.
	copyStore(t, filepath.Join(dir, "broker-backup.db"), store)
	got, err := verify()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(got, "audit chain OK: 6 entries") ||
		!strings.Contains(got, "broker_rewound") || !strings.Contains(got, "ends at entry 6") || !strings.Contains(got, "agent of department civil") {
		t.Fatalf("a rolled-back broker store: %v\n%s", err, got)
	}

	// Put the broker back, roll the agent's log back instead.
	copyStore(t, filepath.Join(dir, "broker-full.db"), store)
	copyStore(t, filepath.Join(dir, "agent-backup.db"), agentLog)
	got, err = verify()
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(got, "audit chain OK: 12 entries") || strings.Contains(got, "broker_rewound") ||
		!strings.Contains(got, "agent_rewound") || !strings.Contains(got, "civil entry 11") || !strings.Contains(got, "ends at entry 6") {
		t.Fatalf("a rolled-back agent log: %v\n%s", err, got)
	}
}
