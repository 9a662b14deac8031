package auditlog

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

func wantCode(t *testing.T, err error, code string, contains ...string) {
	t.Helper()
	if sluice.ErrorCode(err) != code {
		t.Fatalf("error %v (code %s), want code %s", err, sluice.ErrorCode(err), code)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}

func signer(t testing.TB) (auditchain.Signer, auditchain.PublicKey) {
	t.Helper()
	s, err := auditchain.LoadOrCreateEd25519(filepath.Join(t.TempDir(), "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	return s, auditchain.PublicKey{Algorithm: s.Algorithm(), Key: s.PublicKey()}
}

func fragment(i int) *auditchain.Entry {
	return &auditchain.Entry{
		Kind: auditchain.KindFragment, QueryID: fmt.Sprintf("q-%d", i), Principal: "alice", Role: "analyst",
		Department: "civil", Purpose: "subsidy-review", Datasets: []string{"Civil.Residents"}, Decision: auditchain.DecisionAllow,
		Plan: `SELECT "district" FROM "residents" WHERE "id" = ?`, Rows: int64(i), Bytes: int64(10 * i),
		Fragments: []auditchain.FragmentRecord{{Department: "civil", Dataset: "civil.residents", Rows: int64(i), Bytes: int64(10 * i), Digest: "d"}},
	}
}

func open(t testing.TB, path string, signers ...auditchain.Signer) *Log {
	t.Helper()
	l, err := Open(context.Background(), path, signers...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Append(context.Background(), fragment(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, l *Log, entries int64, opts ...auditchain.VerifyOption) *auditchain.VerifyReport {
	t.Helper()
	rep, err := l.Verify(context.Background(), opts...)
	if err != nil || !rep.OK || rep.Entries != entries {
		t.Fatalf("verify: %+v %v; want %d entries OK", rep, err, entries)
	}
	return rep
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAppendReadVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent-audit.db")
	l := open(t, path)
	ctx := context.Background()
	e := fragment(1)
	if err := l.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 || e.PrevHash != auditchain.GenesisHash || e.Hash == "" || e.Hash != e.ComputeHash() || e.Time.IsZero() {
		t.Fatalf("sealed entry %+v", e)
	}
	appendN(t, l, 2, 4)
	if h := l.Head(); h.Seq != 5 {
		t.Fatalf("head %+v", h)
	}
	es, err := l.Entries(ctx, 1, 3)
	if err != nil || len(es) != 3 || es[0].Seq != 2 || es[2].Seq != 4 {
		t.Fatalf("entries %v %v", es, err)
	}
	for _, e := range es {
		if e.ComputeHash() != e.Hash || e.QueryID != fmt.Sprintf("q-%d", e.Seq) {
			t.Errorf("entry %d read back differs: %+v", e.Seq, e)
		}
		// What the agent sends is the stored body with its hash filled in.
		line, err := auditchain.Encode(&e)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := auditchain.Canonical(&e)
		if string(line) != string(auditchain.Line(body, e.Hash)) {
			t.Errorf("entry %d: the line sent is not the stored body with its hash", e.Seq)
		}
	}
	if es, err := l.Entries(ctx, 5, 10); err != nil || len(es) != 0 {
		t.Fatalf("entries past the end: %v %v", es, err)
	}
	verify(t, l, 5)
	wantCode(t, l.Append(ctx, &auditchain.Entry{Kind: "nope", Decision: auditchain.DecisionAllow}), sluice.EInvalid)

	// Reopened, the chain goes on.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, l.Append(ctx, fragment(9)), sluice.EUnavailable, "closed")
	l = open(t, path)
	appendN(t, l, 6, 1)
	verify(t, l, 6)

	// A new file has the chain's tables and guards, and no more.
	var tables []string
	rows, err := rawDB(t, path).Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	if strings.Join(tables, " ") != "audit_checkpoints audit_entries audit_head" {
		t.Errorf("tables %v", tables)
	}
	if _, err := rawDB(t, path).Exec(`DELETE FROM audit_entries WHERE seq = 6`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("delete: %v; want the append-only guard", err)
	}
}

func TestCheckpoints(t *testing.T) {
	s, pub := signer(t)
	path := filepath.Join(t.TempDir(), "agent-audit.db")
	l := openWith(t, path, 3, time.Hour, s)
	appendN(t, l, 1, 7)
	rep := verify(t, l, 7, auditchain.WithTrustedKeys(pub), auditchain.WithUnsignedGrace(time.Hour))
	if rep.Checkpoints != 2 || rep.SignedThrough != 6 {
		t.Fatalf("checkpoints %d through %d, want 2 through 6", rep.Checkpoints, rep.SignedThrough)
	}
	// Close signs the rest.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, path, s)
	rep = verify(t, l, 7, auditchain.WithTrustedKeys(pub))
	if rep.Checkpoints != 3 || rep.SignedThrough != 7 {
		t.Fatalf("checkpoints %d through %d after Close, want 3 through 7", rep.Checkpoints, rep.SignedThrough)
	}
	// Another key does not vouch for them.
	_, other := signer(t)
	rep, err := l.Verify(context.Background(), auditchain.WithTrustedKeys(other))
	if err != nil || rep.OK || !strings.Contains(rep.Problem, "no signature by a trusted key") {
		t.Fatalf("verify with another key: %+v %v", rep, err)
	}
}

func TestCheckpointTimer(t *testing.T) {
	s, pub := signer(t)
	l := openWith(t, filepath.Join(t.TempDir(), "agent-audit.db"), 1000, 20*time.Millisecond, s)
	appendN(t, l, 1, 2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rep, err := l.Verify(context.Background(), auditchain.WithTrustedKeys(pub))
		if err == nil && rep.OK && rep.SignedThrough == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint from the timer: %+v %v", rep, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openWith opens a log whose checkpoint cadence is not the default.
func openWith(t *testing.T, path string, every int, after time.Duration, signers ...auditchain.Signer) *Log {
	t.Helper()
	saved := cadence
	cadence = func(l *Log) { l.every, l.after = every, after }
	defer func() { cadence = saved }()
	return open(t, path, signers...)
}

func TestConcurrentAppends(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "agent-audit.db"))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { appendN(t, l, w*10, 5) })
	}
	wg.Wait()
	verify(t, l, 40)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("this is not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, code string }{
		{"empty path", "", sluice.EInvalid},
		{"directory", dir, sluice.EInvalid},
		{"corrupt file", garbage, sluice.EUnavailable},
		{"missing directory", filepath.Join(dir, "no", "such", "a.db"), sluice.EUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Open(context.Background(), tc.path)
			if err == nil {
				l.Close()
			}
			wantCode(t, err, tc.code, tc.path)
		})
	}
}

// TestTamperRefused: a log whose last entry, head or last checkpoint was
// changed is not extended, and Verify names the entry.
func TestTamperRefused(t *testing.T) {
	s, _ := signer(t)
	for _, tc := range []struct {
		name, problem string
		stmts         []string
	}{
		{"last entry edited", "does not verify", []string{
			`DROP TRIGGER audit_entries_no_update`,
			`UPDATE audit_entries SET body = replace(body, '"rows":4', '"rows":40') WHERE seq = 4`}},
		{"tail cut", "head records 4 entries but the last stored entry is 3", []string{
			`DROP TRIGGER audit_entries_no_delete`, `DELETE FROM audit_entries WHERE seq = 4`}},
		{"tail cut and head rewritten", "checkpoint covers entry 4", []string{
			`DROP TRIGGER audit_entries_no_delete`, `DELETE FROM audit_entries WHERE seq = 4`,
			`UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_entries WHERE seq = 3)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent-audit.db")
			l := open(t, path, s)
			appendN(t, l, 1, 4)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path)
			for _, q := range tc.stmts {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(q, err)
				}
			}
			_, err := Open(context.Background(), path, s)
			wantCode(t, err, sluice.EUnavailable, tc.problem, path)
		})
	}
}

// loadFixture writes the SQL dump of a log from before the agent's own
// store into a SQLite file.
func loadFixture(t *testing.T) string {
	t.Helper()
	dump, err := os.ReadFile(filepath.Join("testdata", "old-agent-audit.sql"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "police-agent-audit.db")
	if _, err := rawDB(t, path).Exec(string(dump)); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpensALogFromBeforeItsOwnStore: a log the agent wrote with the
// broker's store (the fixture) opens, reads and verifies, checkpoints and
// all, and goes on with its dataset index kept up to date.
func TestOpensALogFromBeforeItsOwnStore(t *testing.T) {
	ctx := context.Background()
	old, err := auditchain.LoadPublicKey(filepath.Join("testdata", "old-agent.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	path := loadFixture(t)
	s, pub := signer(t) // the department's key was rotated
	l := open(t, path, s)
	rep := verify(t, l, 5, auditchain.WithTrustedKeys(old))
	if rep.Checkpoints != 2 || rep.SignedThrough != 5 || !rep.SignaturesChecked {
		t.Fatalf("old log: %+v", rep)
	}
	es, err := l.Entries(ctx, 0, 10)
	if err != nil || len(es) != 5 {
		t.Fatalf("entries %v %v", es, err)
	}
	if e := es[2]; e.Decision != auditchain.DecisionDeny || e.Reasons[0] != "join_key" || e.ComputeHash() != e.Hash {
		t.Errorf("entry 3 %+v", e)
	}
	if e := es[3]; fmt.Sprint(e.Obligations["suppressed_groups"]) != "2" || e.ComputeHash() != e.Hash {
		t.Errorf("entry 4 %+v", e)
	}
	appendN(t, l, 6, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, path)
	rep = verify(t, l, 7, auditchain.WithTrustedKeys(old, pub))
	if rep.Checkpoints != 3 || rep.SignedThrough != 7 {
		t.Fatalf("continued log: %+v", rep)
	}
	var indexed int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM audit_entry_datasets WHERE seq > 5 AND dataset = 'civil.residents'`).Scan(&indexed); err != nil || indexed != 2 {
		t.Fatalf("index rows of the new entries: %d %v", indexed, err)
	}
	// The index is checked as the broker's verifier checks it.
	db := rawDB(t, path)
	if _, err := db.Exec(`DELETE FROM audit_entry_datasets WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	rep, err = l.Verify(ctx)
	if err != nil || rep.OK || rep.FirstBad != 6 || !strings.Contains(rep.Problem, "dataset index") {
		t.Fatalf("verify after the index was edited: %+v %v", rep, err)
	}
}
