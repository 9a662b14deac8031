package audit

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// anchoredStore is a broker store with signed checkpoints every 5 entries
// and the anchors an agent would hold of it: for each entry, the entry's
// seq and hash and the latest checkpoint, as the broker sends them with a
// fragment request. backup is a consistent copy taken after 6 entries
// (closed, so checkpointed through 6); the store goes on to 12 entries,
// signed through 11 (five more after 6), entry 12 unsigned (the store is
// left as a broker killed at that point leaves it, without its final
// checkpoint).
func anchoredStore(t *testing.T) (path, backup string, held []HeldAnchor, key PublicKey) {
	t.Helper()
	ctx := context.Background()
	ed, _ := testSigners(t)
	dir := t.TempDir()
	path = filepath.Join(dir, "broker.db")
	open := func() *Log {
		l, err := Open(ctx, path, WithSigners(ed), WithCheckpointEvery(5, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	appendN := func(l *Log, from, n int) {
		for i := from; i < from+n; i++ {
			e := sample(i)
			if err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			held = append(held, HeldAnchor{Anchor: Anchor{Seq: e.Seq, Hash: e.Hash, Checkpoint: l.LastCheckpoint().Signed()},
				Holder: "the agent of department health", HolderSeq: int64(len(held) + 1), QueryID: e.QueryID})
		}
	}
	l := open()
	appendN(l, 0, 6)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	backup = filepath.Join(dir, "backup.db")
	copyFile(t, path, backup)
	l = open()
	appendN(l, 6, 6)
	if cp := l.LastCheckpoint(); cp == nil || cp.Seq != 11 {
		t.Fatalf("last checkpoint %+v, want the one at entry 11", cp)
	}
	// No tampering: every anchor is honoured.
	if probs, err := l.CheckAnchors(ctx, held, pub(ed)); err != nil || len(probs) != 0 {
		t.Fatalf("an intact store: %+v %v", probs, err)
	}
	// Leave the store as a killed broker would: no final checkpoint.
	l.noFinalCheckpoint = true
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, backup, held, pub(ed)
}

func copyFile(t *testing.T, from, to string) {
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

// verifiesAlone checks that the rewound store passes verification on its
// own, signatures included: the case only the agents' anchors can catch.
func verifiesAlone(t *testing.T, path string, key PublicKey) {
	t.Helper()
	rep, err := VerifyFile(context.Background(), path, WithTrustedKeys(key))
	if err != nil || !rep.OK {
		t.Fatalf("the rewound store should verify on its own (that is the gap): %+v %v", rep, err)
	}
}

func checkAnchors(t *testing.T, path string, held []HeldAnchor, key PublicKey) []AnchorProblem {
	t.Helper()
	l, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	probs, err := l.CheckAnchors(context.Background(), held, key)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// TestAnchorsCatchATruncatedStore: the store cut back to its last signed
// checkpoint, the head row rewound to match (the attack `sluice audit
// verify` alone cannot see), is caught by the anchors an agent holds.
func TestAnchorsCatchATruncatedStore(t *testing.T) {
	path, _, held, key := anchoredStore(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var hash11 string
	if err := db.QueryRow(`SELECT hash FROM audit_entries WHERE seq = 11`).Scan(&hash11); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`DROP TRIGGER audit_entries_no_delete`,
		`DELETE FROM audit_entry_datasets WHERE seq > 11`,
		`DELETE FROM audit_entries WHERE seq > 11`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := db.Exec(`UPDATE audit_head SET seq = 11, hash = ? WHERE id = 1`, hash11); err != nil {
		t.Fatal(err)
	}
	db.Close()
	verifiesAlone(t, path, key)
	probs := checkAnchors(t, path, held, key)
	if len(probs) != 1 || probs[0].Seq != 12 || !strings.Contains(probs[0].Detail, "ends at entry 11") ||
		!strings.Contains(probs[0].Detail, "truncated or rolled back") || !strings.Contains(probs[0].Detail, "agent of department health") {
		t.Fatalf("problems %+v, want the log ending at 11 below the agent's anchor at 12", probs)
	}
	// What the agent held before the cut is still honoured: only the
	// anchors above it are the evidence.
	if probs := checkAnchors(t, path, held[:11], key); len(probs) != 0 {
		t.Fatalf("anchors below the cut: %+v", probs)
	}
}

// TestAnchorsCatchARolledBackStore: an older, consistent copy of the store
// put back (rolled back to an earlier checkpoint, every table as it was)
// verifies on its own, and is caught; so is one rolled back and then
// written again up to the same length (same seqs, other hashes).
func TestAnchorsCatchARolledBackStore(t *testing.T) {
	t.Run("restored backup", func(t *testing.T) {
		path, backup, held, key := anchoredStore(t)
		copyFile(t, backup, path)
		verifiesAlone(t, path, key)
		probs := checkAnchors(t, path, held, key)
		if len(probs) != 1 || probs[0].Seq != 12 || !strings.Contains(probs[0].Detail, "ends at entry 6") {
			t.Fatalf("problems %+v, want the log ending at 6 below the agent's anchor at 12", probs)
		}
	})
	t.Run("rolled back and written again", func(t *testing.T) {
		path, backup, held, key := anchoredStore(t)
		copyFile(t, backup, path)
		ed, err := LoadOrCreateEd25519(filepath.Join(t.TempDir(), "other.pem"))
		if err != nil {
			t.Fatal(err)
		}
		// Whoever rewrites the store may even hold a signing key; here a
		// different one, so the checkpoints do not verify with the
		// broker's key and only the hashes can speak.
		l, err := Open(context.Background(), path, WithSigners(ed), WithCheckpointEvery(5, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < 106; i++ {
			if err := l.Append(context.Background(), sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		probs := checkAnchors(t, path, held, key)
		var seqs []int64
		for _, p := range probs {
			seqs = append(seqs, p.Seq)
			if !strings.Contains(p.Detail, "different entry") {
				t.Errorf("problem %+v, want a different entry", p)
			}
		}
		// Entries 7–12 differ from what the agent holds (11 is also the
		// broker's signed checkpoint the agent holds).
		if len(probs) != 6 || seqs[0] != 7 || seqs[5] != 12 {
			t.Fatalf("problems at %v: %+v", seqs, probs)
		}
	})
	t.Run("a forged checkpoint held is reported", func(t *testing.T) {
		path, _, held, key := anchoredStore(t)
		forged := held[len(held)-1]
		cp := *forged.Checkpoint
		cp.Seq = 99
		forged.Checkpoint = &cp
		probs := checkAnchors(t, path, []HeldAnchor{forged}, key)
		if len(probs) != 1 || probs[0].Seq != 99 || !strings.Contains(probs[0].Detail, "does not verify") {
			t.Fatalf("problems %+v", probs)
		}
	})
}
