package audit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
)

// TestAgentLogFiles: a department agent's own log (adapters/agent/auditlog)
// keeps its chain in the same tables, so `sluice audit verify --store`
// (VerifyFile) checks it, signatures and all, and `sluice audit tail
// --store` (Open) reads it; the agent goes on with the file afterwards,
// keeping the dataset index Open added.
func TestAgentLogFiles(t *testing.T) {
	ctx := context.Background()
	ed, _ := testSigners(t)
	path := filepath.Join(t.TempDir(), "civil-agent-audit.db")
	agentLog, err := auditlog.Open(ctx, path, ed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e := sample(i)
		e.Kind = KindFragment
		if err := agentLog.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := agentLog.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFile(ctx, path, WithTrustedKeys(pub(ed)))
	if err != nil || !rep.OK || rep.Entries != 3 || rep.SignedThrough != 3 {
		t.Fatalf("VerifyFile of an agent's log: %+v %v", rep, err)
	}

	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	es, err := l.Tail(ctx, 10)
	if err != nil || len(es) != 3 || es[2].Kind != KindFragment {
		t.Fatalf("tail of an agent's log: %v %v", es, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	agentLog, err = auditlog.Open(ctx, path, ed)
	if err != nil {
		t.Fatal(err)
	}
	e := sample(7)
	e.Kind = KindFragment
	if err := agentLog.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := agentLog.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyFile(ctx, path, WithTrustedKeys(pub(ed)))
	if err != nil || !rep.OK || rep.Entries != 4 || rep.SignedThrough != 4 {
		t.Fatalf("VerifyFile after the agent went on: %+v %v", rep, err)
	}
}
