package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// TestPostgresTamper: a superuser edits an entry after disabling the
// guard trigger; Verify (through the broker's Log and through VerifyFile)
// finds the edited entry. TestTamperDetection runs the full table on both
// stores; this is the plain case, kept on its own.
func TestPostgresTamper(t *testing.T) {
	ctx := context.Background()
	l, url := postgresBackend.newLog(t)
	appendN(t, l, 10)
	db := rawDB(t, url)
	if _, err := db.Exec(`UPDATE audit_entries SET body = replace(body, '"principal":"bob"', '"principal":"eve"') WHERE seq = 5`); err == nil {
		t.Fatal("the guard trigger let an UPDATE through")
	}
	exec(t, db,
		`ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update`,
		`UPDATE audit_entries SET body = replace(body, '"principal":"bob"', '"principal":"eve"'), principal = 'eve' WHERE seq = 5`,
		`ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_no_update`)
	for what, verify := range map[string]func() (*VerifyReport, error){
		"Log.Verify": func() (*VerifyReport, error) { return l.Verify(ctx) },
		"VerifyFile": func() (*VerifyReport, error) { return VerifyFile(ctx, url) },
	} {
		rep, err := verify()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if rep.OK || rep.FirstBad != 5 || !strings.Contains(rep.Problem, "entry 5 was modified") {
			t.Fatalf("%s = %+v; want entry 5 reported as modified", what, rep)
		}
	}
}

// TestPostgresConcurrentAppends: 16 goroutines append at once while
// readers verify and count; every entry gets its own sequence number, the
// chain has no gap or fork, and Verify is OK.
func TestPostgresConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	l, _ := postgresBackend.newLog(t)
	const workers, each = 16, 25
	var wg sync.WaitGroup
	seen := make(chan int64, workers*each)
	errs := make(chan error, workers*each+2)
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
	stop := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if rep, err := l.Verify(ctx); err != nil || !rep.OK {
				errs <- errors.Join(err, errors.New("verify while appending failed"))
				return
			}
			if _, err := l.Usage(ctx, UsageFilter{}); err != nil {
				errs <- err
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
	if len(got) != workers*each {
		t.Fatalf("%d distinct sequence numbers; want %d", len(got), workers*each)
	}
	mustVerify(t, l, workers*each)
	// Every query entry naming a dataset is counted once.
	rows, err := l.Usage(ctx, UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var calls int64
	for _, r := range rows {
		calls += r.Calls
	}
	if want := int64(workers * each / 2); calls != want { // sample: i%4 in {0, 1}
		t.Fatalf("Usage counts %d calls; want %d", calls, want)
	}
}

// TestPostgresTwoBrokersNeverFork: two Logs on one database (two broker
// processes by mistake) append concurrently. The head row lock serialises
// their transactions: whichever writes second finds a head it did not
// write and fails closed, so the chain never forks and always verifies.
func TestPostgresTwoBrokersNeverFork(t *testing.T) {
	ctx := context.Background()
	l1, url := postgresBackend.newLog(t)
	l2, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seqs := map[int64]bool{}
	for w := range 16 {
		l := l1
		if w%2 == 1 {
			l = l2
		}
		wg.Go(func() {
			for i := range 10 {
				e := sample(w*10 + i)
				err := l.Append(ctx, e)
				mu.Lock()
				switch {
				case err == nil:
					if seqs[e.Seq] {
						t.Errorf("seq %d assigned twice", e.Seq)
					}
					seqs[e.Seq] = true
				case sluice.ErrorCode(err) != sluice.EUnavailable || !strings.Contains(err.Error(), "another process"):
					t.Errorf("append: %v; want success or a fail-closed refusal naming another process", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	n := int64(len(seqs))
	for s := int64(1); s <= n; s++ {
		if !seqs[s] {
			t.Fatalf("seq %d missing among %d successful appends", s, n)
		}
	}
	mustVerify(t, l1, n)
}
