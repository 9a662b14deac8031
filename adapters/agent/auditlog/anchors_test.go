package auditlog

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gov/sluice/crypto/auditchain"
)

func copyLog(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		in, err := os.Open(from + suffix)
		if os.IsNotExist(err) && suffix != "" {
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
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

// TestAnchorsCatchARolledBackAgentLog: the anchors the broker holds of an
// agent's log (each write-ahead entry's seq and hash and the latest signed
// checkpoint, as the agent sends them) catch the agent's log restored from
// an older copy, and the same log rolled back and written again, though
// the log verifies on its own either way.
func TestAnchorsCatchARolledBackAgentLog(t *testing.T) {
	ctx := context.Background()
	s, key := signer(t)
	dir := t.TempDir()
	path, backup := filepath.Join(dir, "agent.db"), filepath.Join(dir, "backup.db")
	var held []auditchain.HeldAnchor
	record := func(l *Log, from, n int) {
		for i := from; i < from+n; i++ {
			e := fragment(i)
			if err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			held = append(held, auditchain.HeldAnchor{Anchor: auditchain.Anchor{Seq: e.Seq, Hash: e.Hash, Checkpoint: l.LastCheckpoint().Signed()},
				Holder: "the broker", HolderSeq: int64(100 + i), QueryID: e.QueryID})
		}
	}
	l, err := Open(ctx, path, s)
	if err != nil {
		t.Fatal(err)
	}
	record(l, 1, 4)
	l.Close() // signs through 4
	copyLog(t, path, backup)
	l, err = Open(ctx, path, s)
	if err != nil {
		t.Fatal(err)
	}
	record(l, 5, 4)
	if held[len(held)-1].Checkpoint == nil || held[len(held)-1].Checkpoint.Seq != 4 {
		t.Fatalf("the anchor carries checkpoint %+v, want the one at 4", held[len(held)-1].Checkpoint)
	}
	l.Close()
	check := func() []auditchain.AnchorProblem {
		t.Helper()
		l, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if rep, err := l.Verify(ctx, auditchain.WithTrustedKeys(key)); err != nil || !rep.OK {
			t.Fatalf("the log should verify on its own: %+v %v", rep, err)
		}
		es, err := l.Entries(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		probs, err := auditchain.CheckAnchors(auditchain.EntriesView("the agent's log", es), held, key)
		if err != nil {
			t.Fatal(err)
		}
		return probs
	}
	if probs := check(); len(probs) != 0 {
		t.Fatalf("an intact log: %+v", probs)
	}
	copyLog(t, backup, path)
	if probs := check(); len(probs) != 1 || probs[0].Seq != 8 || !strings.Contains(probs[0].Detail, "ends at entry 4") {
		t.Fatalf("restored from an older copy: %+v", probs)
	}
	l, err = Open(ctx, path, s) // even with the agent's own key
	if err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 54; i++ {
		if err := l.Append(ctx, fragment(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if probs := check(); len(probs) != 4 || probs[0].Seq != 5 || !strings.Contains(probs[0].Detail, "different entry") {
		t.Fatalf("rolled back and written again: %+v", probs)
	}
}
