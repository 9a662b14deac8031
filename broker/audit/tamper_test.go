package audit

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

func exec(t *testing.T, db *rawStore, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// dropGuards removes the append-only triggers, as anyone able to write the
// file can (in PostgreSQL: the table's owner or a superuser disables them);
// the chain must detect what follows.
func dropGuards(t *testing.T, db *rawStore) {
	if db.d.IsPostgres() {
		exec(t, db, `ALTER TABLE audit_entries DISABLE TRIGGER USER`)
		return
	}
	exec(t, db, `DROP TRIGGER audit_entries_no_update`, `DROP TRIGGER audit_entries_no_delete`)
}

// dropCPGuards does the same for the checkpoints table.
func dropCPGuards(t *testing.T, db *rawStore) {
	if db.d.IsPostgres() {
		exec(t, db, `ALTER TABLE audit_checkpoints DISABLE TRIGGER USER`)
		return
	}
	exec(t, db, `DROP TRIGGER audit_checkpoints_no_update`, `DROP TRIGGER audit_checkpoints_no_delete`)
}

// forge writes a fully self-consistent entry at seq, chained to prev, with
// its hash recomputed and its dataset index rows replaced: the strongest
// single-row forgery.
func forge(t *testing.T, db *rawStore, seq int64, prev string) string {
	t.Helper()
	e := sample(0)
	e.Principal = "mallory"
	sealed, body, err := auditchain.Seal(e, auditchain.Head{Seq: seq - 1, Hash: prev}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO audit_entries (`+auditchain.EntryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sealed.Seq, sealed.Time.UnixMicro(), sealed.Kind, sealed.QueryID, sealed.Principal, sealed.Department,
		sealed.Purpose, sealed.Decision, sealed.PrevHash, sealed.Hash, string(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_entry_datasets WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	for _, ds := range auditchain.DatasetKeys(sealed.Datasets) {
		if _, err := db.Exec(`INSERT INTO audit_entry_datasets (seq, dataset) VALUES (?, ?)`, seq, ds); err != nil {
			t.Fatal(err)
		}
	}
	return sealed.Hash
}

func hashOf(t *testing.T, db *rawStore, seq int64) string {
	t.Helper()
	var h string
	if err := db.QueryRow(`SELECT hash FROM audit_entries WHERE seq = ?`, seq).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTamperDetection(t *testing.T) {
	const n = 20
	tests := []struct {
		name     string
		tamper   func(t *testing.T, db *rawStore)
		firstBad int64
		problem  string // a phrase the report must contain
		openOK   bool   // whether the broker may still open the store
	}{
		{
			name: "edit a field in the body",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `UPDATE audit_entries SET body = replace(body, '"principal":"alice"', '"principal":"bob"') WHERE seq = 7`)
			},
			firstBad: 7, problem: "was modified", openOK: true,
		},
		{
			name: "edit the body and recompute its hash",
			tamper: func(t *testing.T, db *rawStore) {
				var body string
				if err := db.QueryRow(`SELECT body FROM audit_entries WHERE seq = 7`).Scan(&body); err != nil {
					t.Fatal(err)
				}
				e, err := auditchain.Decode([]byte(body))
				if err != nil {
					t.Fatal(err)
				}
				e.Decision = DecisionDeny
				nb, _ := auditchain.Canonical(e)
				if _, err := db.Exec(`UPDATE audit_entries SET body = ?, decision = 'deny', hash = ? WHERE seq = 7`, string(nb), auditchain.Sum(nb)); err != nil {
					t.Fatal(err)
				}
			},
			// The edited entry is self-consistent; the next link exposes it.
			firstBad: 8, problem: "does not follow entry 7", openOK: true,
		},
		{
			name: "edit only a search column",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `UPDATE audit_entries SET principal = 'nobody' WHERE seq = 4`)
			},
			firstBad: 4, problem: "search column principal", openOK: true,
		},
		{
			name: "add whitespace to a body",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `UPDATE audit_entries SET body = body || ' ' WHERE seq = 3`)
			},
			firstBad: 3, problem: "canonical", openOK: true,
		},
		{
			name:     "delete a middle entry",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `DELETE FROM audit_entries WHERE seq = 10`) },
			firstBad: 10, problem: "entry 10 is missing", openOK: true,
		},
		{
			name:     "delete the first entry",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `DELETE FROM audit_entries WHERE seq = 1`) },
			firstBad: 1, problem: "entry 1 is missing", openOK: true,
		},
		{
			name:     "delete the last entry (truncation)",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `DELETE FROM audit_entries WHERE seq = 20`) },
			firstBad: 20, problem: "truncated",
		},
		{
			name:     "delete the last three entries (truncation)",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `DELETE FROM audit_entries WHERE seq > 17`) },
			firstBad: 18, problem: "entries 18 to 20 were removed",
		},
		{
			name: "swap two entries' bodies (reorder)",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db,
					`CREATE TEMP TABLE s AS SELECT seq, body, hash, prev_hash FROM audit_entries WHERE seq IN (5, 12)`,
					`UPDATE audit_entries SET body = (SELECT body FROM s WHERE s.seq = 17 - audit_entries.seq),
						hash = (SELECT hash FROM s WHERE s.seq = 17 - audit_entries.seq),
						prev_hash = (SELECT prev_hash FROM s WHERE s.seq = 17 - audit_entries.seq)
					 WHERE seq IN (5, 12)`)
			},
			firstBad: 5, problem: "holds the body of entry 12", openOK: true,
		},
		{
			name: "swap two adjacent bodies only",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db,
					`CREATE TEMP TABLE s AS SELECT seq, body FROM audit_entries WHERE seq IN (8, 9)`,
					`UPDATE audit_entries SET body = (SELECT body FROM s WHERE s.seq = 17 - audit_entries.seq) WHERE seq IN (8, 9)`)
			},
			firstBad: 8, problem: "holds the body of entry 9", openOK: true,
		},
		{
			name: "insert a forged entry in the middle, renumbering the rest",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db,
					`UPDATE audit_entries SET seq = -seq WHERE seq >= 10`,
					`UPDATE audit_entries SET seq = 1 - seq WHERE seq < 0`)
				last := hashOf(t, db, n+1)
				forge(t, db, 10, hashOf(t, db, 9))
				// A careful forger also moves the head.
				if _, err := db.Exec(`UPDATE audit_head SET seq = ?, hash = ?`, n+1, last); err != nil {
					t.Fatal(err)
				}
			},
			// The forgery links to entry 9; the displaced entry 10 cannot
			// link to it.
			firstBad: 11, problem: "holds the body of entry 10",
		},
		{
			name: "replace a deleted middle entry with a forgery",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `DELETE FROM audit_entries WHERE seq = 10`)
				forge(t, db, 10, hashOf(t, db, 9))
			},
			firstBad: 11, problem: "does not follow entry 10", openOK: true,
		},
		{
			name: "append a forged entry without moving the head",
			tamper: func(t *testing.T, db *rawStore) {
				forge(t, db, n+1, hashOf(t, db, n))
			},
			firstBad: n + 1, problem: "not appended by the broker",
		},
		{
			name: "forged first entry",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `DELETE FROM audit_entries WHERE seq = 1`)
				forge(t, db, 1, "ab"+GenesisHash[2:])
			},
			firstBad: 1, problem: "genesis", openOK: true,
		},
		{
			name:     "remove an entry from the dataset index",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `DELETE FROM audit_entry_datasets WHERE seq = 6`) },
			firstBad: 6, problem: "dataset index disagrees", openOK: true,
		},
		{
			name: "point the dataset index elsewhere",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `UPDATE audit_entry_datasets SET dataset = 'civil.residents' WHERE seq = 9`)
			},
			firstBad: 9, problem: "dataset index disagrees", openOK: true,
		},
		{
			name: "add a dataset to the index",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `INSERT INTO audit_entry_datasets (seq, dataset) VALUES (4, 'civil.residents')`)
			},
			firstBad: 4, problem: "dataset index disagrees", openOK: true,
		},
		{
			name:     "head record deleted",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `DELETE FROM audit_head`) },
			firstBad: 1, problem: "head record is missing",
		},
		{
			name:     "head hash edited",
			tamper:   func(t *testing.T, db *rawStore) { exec(t, db, `UPDATE audit_head SET hash = '`+GenesisHash+`'`) },
			firstBad: n, problem: "head record does not match",
		},
	}
	eachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tamperCase(t, b, n, tc.tamper, tc.firstBad, tc.problem, tc.openOK)
			})
		}
	})
}

// tamperCase writes n entries, tampers with the closed store directly,
// and checks that VerifyFile and Log.Verify both report the first bad
// entry, and that Open refuses a store whose end was cut or forged.
func tamperCase(t *testing.T, b backend, n int, tamper func(*testing.T, *rawStore), firstBad int64, problem string, openOK bool) {
	t.Helper()
	ctx := context.Background()
	l, path := b.newLog(t)
	appendN(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	dropGuards(t, db)
	tamper(t, db)
	db.Close()

	rep, err := VerifyFile(ctx, path)
	if err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	if rep.OK || rep.FirstBad != firstBad || !strings.Contains(rep.Problem, problem) {
		t.Fatalf("report %+v; want OK=false, FirstBad=%d, problem containing %q", rep, firstBad, problem)
	}

	// The broker must not extend a log whose end was cut or forged:
	// appending would overwrite the evidence in the head.
	l2, err := Open(ctx, path)
	if !openOK {
		wantCode(t, err, sluice.EUnavailable)
		if !strings.Contains(err.Error(), sqlstore.Redact(path)) || !strings.Contains(err.Error(), "verify") {
			t.Fatalf("open error %q should name the store and point to verify", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l2.Close()
	rep2, err := l2.Verify(ctx)
	if err != nil || *rep2 != *rep {
		t.Fatalf("Log.Verify = %+v, %v; want the same as VerifyFile %+v", rep2, err, rep)
	}
}

// TestRewriteOfChainAndHeadIsNotDetected documents the limit of an
// unsigned chain: rewriting every later entry and the head together
// verifies. Signed checkpoints held outside the store close this gap; the
// report's Head is what an auditor keeps out of band until then.
func TestRewriteOfChainAndHeadIsNotDetected(t *testing.T) {
	eachBackend(t, testRewriteOfChainAndHeadIsNotDetected)
}

func testRewriteOfChainAndHeadIsNotDetected(t *testing.T, b backend) {
	ctx := context.Background()
	l, path := b.newLog(t)
	written := appendN(t, l, 5)
	l.Close()
	db := rawDB(t, path)
	dropGuards(t, db)
	exec(t, db, `DELETE FROM audit_entries WHERE seq = 5`)
	h := forge(t, db, 5, written[3].Hash)
	if _, err := db.Exec(`UPDATE audit_head SET hash = ?`, h); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFile(ctx, path)
	if err != nil || !rep.OK {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if rep.Head == written[4].Hash {
		t.Fatal("the rewritten head equals the original; an out-of-band copy could not catch it")
	}
}

func TestConcurrentAppends(t *testing.T) {
	eachBackend(t, testConcurrentAppends)
}

func testConcurrentAppends(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	ctx := context.Background()
	const workers, each = 32, 20
	var wg sync.WaitGroup
	seen := make(chan int64, workers*each)
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e := sample(w*each + i)
				if err := l.Append(ctx, e); err != nil {
					errs <- err
					return
				}
				seen <- e.Seq
			}
		})
	}
	// Readers run alongside to make sure they never see a half-written chain.
	stop := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := l.Verify(ctx)
			if err != nil {
				errs <- err
				return
			}
			if !rep.OK {
				errs <- errors.New(rep.Problem)
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()
	close(seen)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for s := range seen {
		if got[s] {
			t.Fatalf("seq %d assigned twice", s)
		}
		got[s] = true
	}
	for s := int64(1); s <= workers*each; s++ {
		if !got[s] {
			t.Fatalf("seq %d never assigned: the chain has a gap", s)
		}
	}
	mustVerify(t, l, workers*each)
}

func TestFailClosed(t *testing.T) {
	ctx := context.Background()

	// recovers checks that a failed append left nothing behind: the head
	// did not move, the next append takes the next number and the chain
	// verifies.
	recovers := func(t *testing.T, l *Log, before int64) {
		t.Helper()
		if seq, _ := l.Head(); seq != before {
			t.Fatalf("head moved to %d after a failed append; want %d", seq, before)
		}
		e := sample(1)
		if err := l.Append(ctx, e); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		if e.Seq != before+1 {
			t.Fatalf("append after recovery got seq %d; want %d", e.Seq, before+1)
		}
		mustVerify(t, l, before+1)
	}
	failed := func(t *testing.T, err error, e *Entry) {
		t.Helper()
		wantCode(t, err, sluice.EUnavailable)
		if !strings.Contains(err.Error(), "audit log unavailable") || !strings.Contains(err.Error(), "fail closed") {
			t.Fatalf("message %q should say the log is unavailable and the request refused", err)
		}
		if e.Seq != 0 || e.Hash != "" || e.PrevHash != "" {
			t.Fatalf("the caller's entry was changed by a failed append: %+v", e)
		}
	}

	tests := []struct {
		name       string
		sqliteOnly bool
		// breakStore makes the next append fail and returns how to bring
		// the store back (which may return a new Log).
		breakStore func(t *testing.T, l *Log, path string) (restore func() *Log)
	}{
		{
			name: "commit fails at the last moment",
			breakStore: func(t *testing.T, l *Log, path string) func() *Log {
				l.beforeCommit = func() error { return errors.New("disk I/O error (injected)") }
				return func() *Log { l.beforeCommit = nil; return l }
			},
		},
		{
			name: "another process holds the write lock",
			breakStore: func(t *testing.T, l *Log, path string) func() *Log {
				release := holdWriteLock(t, path, `BEGIN IMMEDIATE`)
				return func() *Log { release(); return l }
			},
		},
		{
			// The Log reopens its handle by itself once the file is back;
			// while it is gone, it must not create an empty store.
			name:       "the database handle is closed underneath and the file is gone",
			sqliteOnly: true,
			breakStore: func(t *testing.T, l *Log, path string) func() *Log {
				l.db.Close()
				moveStore(t, path, path+".away")
				return func() *Log {
					moveStore(t, path+".away", path)
					return l
				}
			},
		},
		{
			name: "the head table is dropped and restored",
			breakStore: func(t *testing.T, l *Log, path string) func() *Log {
				db := rawDB(t, path)
				var seq int64
				var hash string
				if err := db.QueryRow(`SELECT seq, hash FROM audit_head`).Scan(&seq, &hash); err != nil {
					t.Fatal(err)
				}
				exec(t, db, `DROP TABLE audit_head`)
				return func() *Log {
					exec(t, db, db.d.DDL(`CREATE TABLE audit_head (id {int} PRIMARY KEY CHECK (id = 1), seq {int} NOT NULL, hash TEXT NOT NULL)`))
					if _, err := db.Exec(`INSERT INTO audit_head VALUES (1, ?, ?)`, seq, hash); err != nil {
						t.Fatal(err)
					}
					return l
				}
			},
		},
	}
	eachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range tests {
			if tc.sqliteOnly && b.pg() {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				path := b.target(t)
				l, err := open(ctx, path, options{busyTimeout: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				appendN(t, l, 3)
				restore := tc.breakStore(t, l, path)
				for range 2 { // a retry while the store is still down fails too
					e := sample(0)
					failed(t, l.Append(ctx, e), e)
				}
				recovers(t, restore(), 3)
			})
		}
		if !b.pg() {
			return
		}
		// A PostgreSQL pool closed underneath is replaced by the next
		// append (there is no file that could have gone).
		t.Run("the pool is closed underneath", func(t *testing.T) {
			l, _ := b.newLog(t)
			appendN(t, l, 3)
			l.db.Close()
			e := sample(0)
			failed(t, l.Append(ctx, e), e)
			recovers(t, l, 3)
		})
	})
}

// TestFailClosedOnForeignWriter: a second writer on the same file makes the
// broker's head stale; appending on top of entries it did not write would
// vouch for them, so it refuses until reopened.
func TestFailClosedOnForeignWriter(t *testing.T) {
	eachBackend(t, testFailClosedOnForeignWriter)
}

func testFailClosedOnForeignWriter(t *testing.T, b backend) {
	ctx := context.Background()
	l1, path := b.newLog(t)
	appendN(t, l1, 2)
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Append(ctx, sample(2)); err != nil {
		t.Fatal(err)
	}
	e := sample(3)
	err = l1.Append(ctx, e)
	wantCode(t, err, sluice.EUnavailable)
	if !strings.Contains(err.Error(), "another process") {
		t.Fatalf("error %q should explain the head moved", err)
	}
	mustVerify(t, l2, 3)
}

func TestDroppedEntriesTable(t *testing.T) {
	eachBackend(t, testDroppedEntriesTable)
}

func testDroppedEntriesTable(t *testing.T, b backend) {
	ctx := context.Background()
	l, path := b.newLog(t)
	appendN(t, l, 3)
	db := rawDB(t, path)
	exec(t, db, `DROP TABLE audit_entries`)
	wantCode(t, l.Append(ctx, sample(0)), sluice.EUnavailable)
	l.Close()
	// The head still records 3 entries: the broker refuses to reopen
	// rather than start a fresh chain.
	_, err := Open(ctx, path)
	wantCode(t, err, sluice.EUnavailable)
	if !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("error %q should report truncation", err)
	}
}

// moveStore renames a closed store file and its WAL companions.
func moveStore(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(from+suffix, to+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}
