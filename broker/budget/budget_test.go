package budget

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// backend is a store the suite runs against: a SQLite temp file always,
// PostgreSQL (a fresh schema per test) when a server answers; see dbtest
// for when it is skipped and when, with CI=true, it fails.
type backend struct {
	name string
	pg   bool
}

var backends = []backend{{name: "sqlite"}, {name: "postgres", pg: true}}

func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// target returns a store nobody has used yet.
func (b backend) target(t *testing.T) string {
	t.Helper()
	if b.pg {
		return dbtest.PostgresSchema(t)
	}
	return filepath.Join(t.TempDir(), "sluice.db")
}

func (b backend) open(t *testing.T) (*Store, string) {
	t.Helper()
	path := b.target(t)
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func wantCode(t *testing.T, err error, code, contains string) {
	t.Helper()
	if sluice.ErrorCode(err) != code || !strings.Contains(sluice.ErrorMessage(err), contains) {
		t.Fatalf("got %v (%s), want %s containing %q", err, sluice.ErrorCode(err), code, contains)
	}
}

func TestReserveSpendsAndRefuses(t *testing.T) { eachBackend(t, testReserveSpendsAndRefuses) }

func testReserveSpendsAndRefuses(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	if err := s.SetLimit(ctx, "alice", "subsidy-review", 1, "g-1"); err != nil {
		t.Fatal(err)
	}
	// 0.1 ten times must land exactly on 0, with no float drift.
	for i := range 10 {
		rem, err := s.Reserve(ctx, "alice", "subsidy-review", 0.1, fmt.Sprintf("q%d", i))
		if err != nil {
			t.Fatalf("reservation %d: %v", i, err)
		}
		if want := float64(9-i) / 10; rem != want {
			t.Fatalf("reservation %d left %v, want %v", i, rem, want)
		}
	}
	_, err := s.Reserve(ctx, "alice", "subsidy-review", 0.1, "q10")
	wantCode(t, err, sluice.EDenied, "this query would spend ε=0.1 but only 0 of the 1 budget for purpose subsidy-review remains; ask the provider for a new grant")
	limit, spent, err := s.Remaining(ctx, "alice", "subsidy-review")
	if err != nil || limit != 1 || spent != 1 {
		t.Fatalf("remaining %v %v %v", limit, spent, err)
	}
	// The refused query left no ledger row.
	led, err := s.Ledger(ctx, "alice", "subsidy-review")
	if err != nil || len(led) != 10 {
		t.Fatalf("ledger %d rows, %v", len(led), err)
	}
	if led[0].QueryID != "q0" || led[0].Epsilon != 0.1 || led[0].Time.IsZero() || !led[0].Refunded.IsZero() {
		t.Fatalf("ledger row %+v", led[0])
	}
}

func TestReserveMessageShowsRemaining(t *testing.T) { eachBackend(t, testReserveMessageShowsRemaining) }

func testReserveMessageShowsRemaining(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	if err := s.SetLimit(ctx, "alice", "p", 1, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "alice", "p", 0.8, "q1"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, "alice", "p", 0.5, "q2")
	wantCode(t, err, sluice.EDenied, "would spend ε=0.5 but only 0.2 of the 1 budget for purpose p remains")
	// What remains can still be spent exactly.
	if rem, err := s.Reserve(ctx, "alice", "p", 0.2, "q3"); err != nil || rem != 0 {
		t.Fatalf("rem %v err %v", rem, err)
	}
}

func TestNoBudgetIsDenied(t *testing.T) { eachBackend(t, testNoBudgetIsDenied) }

func testNoBudgetIsDenied(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	if err := s.SetLimit(ctx, "alice", "subsidy-review", 1, "g"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, "alice", "other-purpose", 0.1, "q")
	wantCode(t, err, sluice.EDenied, "alice has no differential-privacy budget for purpose other-purpose; ask the provider")
	_, err = s.Reserve(ctx, "bob", "subsidy-review", 0.1, "q")
	wantCode(t, err, sluice.EDenied, "bob has no differential-privacy budget")
	_, _, err = s.Remaining(ctx, "bob", "subsidy-review")
	wantCode(t, err, sluice.ENotFound, "no differential-privacy budget")
	// A zero budget exists but allows nothing.
	if err := s.SetLimit(ctx, "carol", "p", 0, "g0"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Reserve(ctx, "carol", "p", 0.000001, "q")
	wantCode(t, err, sluice.EDenied, "only 0 of the 0 budget")
}

func TestSetLimitPerGrant(t *testing.T) { eachBackend(t, testSetLimitPerGrant) }

func testSetLimitPerGrant(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	set := func(eps float64, g string) {
		t.Helper()
		if err := s.SetLimit(ctx, "alice", "p", eps, g); err != nil {
			t.Fatal(err)
		}
	}
	check := func(wantLimit, wantSpent float64) {
		t.Helper()
		l, sp, err := s.Remaining(ctx, "alice", "p")
		if err != nil || l != wantLimit || sp != wantSpent {
			t.Fatalf("limit %v spent %v (%v), want %v %v", l, sp, err, wantLimit, wantSpent)
		}
	}
	set(1, "g1")
	set(1, "g1") // reloading is idempotent
	check(1, 0)
	if _, err := s.Reserve(ctx, "alice", "p", 1, "q1"); err != nil {
		t.Fatal(err)
	}
	check(1, 1)
	set(0.5, "g2") // a new grant adds allowance; what was spent stays spent
	check(1.5, 1)
	set(2, "g1") // a grant's contribution can be changed
	check(2.5, 1)
	set(0, "g1") // or withdrawn: spent may then exceed the limit
	check(0.5, 1)
	_, err := s.Reserve(ctx, "alice", "p", 0.1, "q2")
	wantCode(t, err, sluice.EDenied, "only 0 of the 0.5 budget")
	// A grant budgets one principal and purpose.
	wantCode(t, s.SetLimit(ctx, "bob", "p", 1, "g1"), sluice.EInvalid, "grant g1 already gives a budget to alice for purpose p")
	wantCode(t, s.SetLimit(ctx, "alice", "q", 1, "g2"), sluice.EInvalid, "already gives a budget")
}

func TestRefund(t *testing.T) { eachBackend(t, testRefund) }

func testRefund(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	if err := s.SetLimit(ctx, "alice", "p", 1, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "alice", "p", 0.75, "q1"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, "alice", "p", 0.5, "q2")
	wantCode(t, err, sluice.EDenied, "only 0.25 of the 1")
	if err := s.Refund(ctx, "q1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, "q1"); err != nil { // twice is a no-op
		t.Fatal(err)
	}
	if _, sp, _ := s.Remaining(ctx, "alice", "p"); sp != 0 {
		t.Fatalf("spent %v after refund", sp)
	}
	if rem, err := s.Reserve(ctx, "alice", "p", 0.5, "q2"); err != nil || rem != 0.5 {
		t.Fatalf("rem %v err %v", rem, err)
	}
	// A refunded query id cannot be reserved again.
	_, err = s.Reserve(ctx, "alice", "p", 0.1, "q1")
	wantCode(t, err, sluice.EInvalid, "query q1 already has a budget reservation")
	wantCode(t, s.Refund(ctx, "nope"), sluice.ENotFound, "query nope has no budget reservation")
	led, err := s.Ledger(ctx, "alice", "p")
	if err != nil || len(led) != 2 || led[0].Refunded.IsZero() || !led[1].Refunded.IsZero() {
		t.Fatalf("ledger %+v %v", led, err)
	}
}

func TestList(t *testing.T) { eachBackend(t, testList) }

func testList(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	s.now = func() time.Time { return time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		p, purpose string
		eps        float64
		g          string
	}{
		{"alice", "subsidy-review", 1, "g-b"},
		{"alice", "subsidy-review", 0.5, "g-a"},
		{"alice", "public-health-planning", 2, "g-c"},
		{"bob", "enterprise-credit", 3, "g-d"},
	} {
		if err := s.SetLimit(ctx, c.p, c.purpose, c.eps, c.g); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Reserve(ctx, "alice", "subsidy-review", 0.25, "q1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "alice", "subsidy-review", 0.5, "q2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, "q2"); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := []Budget{
		{Principal: "alice", Purpose: "public-health-planning", Limit: 2, Spent: 0, Remaining: 2, Grants: []string{"g-c"}},
		{Principal: "alice", Purpose: "subsidy-review", Limit: 1.5, Spent: 0.25, Remaining: 1.25, Grants: []string{"g-a", "g-b"}, Queries: 1, LastSpend: s.now()},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Principal != w.Principal || g.Purpose != w.Purpose || g.Limit != w.Limit || g.Spent != w.Spent || g.Remaining != w.Remaining ||
			!slices.Equal(g.Grants, w.Grants) || g.Queries != w.Queries || !g.LastSpend.Equal(w.LastSpend) {
			t.Errorf("budget %d: got %+v, want %+v", i, g, w)
		}
	}
	none, err := s.List(ctx, "dave")
	if err != nil || len(none) != 0 {
		t.Fatalf("dave: %v %v", none, err)
	}
}

func TestBadInputs(t *testing.T) { eachBackend(t, testBadInputs) }

func testBadInputs(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	if err := s.SetLimit(ctx, "alice", "p", 1, "g"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"limit NaN", s.SetLimit(ctx, "alice", "p", math.NaN(), "g"), "finite number >= 0"},
		{"limit negative", s.SetLimit(ctx, "alice", "p", -1, "g"), "finite number >= 0"},
		{"limit infinite", s.SetLimit(ctx, "alice", "p", math.Inf(1), "g"), "finite number >= 0"},
		{"limit huge", s.SetLimit(ctx, "alice", "p", 1e12, "g"), "beyond the maximum"},
		{"limit empty principal", s.SetLimit(ctx, " ", "p", 1, "g"), "principal must not be empty"},
		{"limit empty purpose", s.SetLimit(ctx, "alice", "", 1, "g"), "purpose must not be empty"},
		{"limit empty grant", s.SetLimit(ctx, "alice", "p", 1, ""), "grant id must not be empty"},
		{"reserve NaN", second(s.Reserve(ctx, "alice", "p", math.NaN(), "q")), "finite number >= 0"},
		{"reserve negative", second(s.Reserve(ctx, "alice", "p", -0.1, "q")), "finite number >= 0"},
		{"reserve zero", second(s.Reserve(ctx, "alice", "p", 0, "q")), "at least 0.000001"},
		{"reserve below a micro", second(s.Reserve(ctx, "alice", "p", 4e-7, "q")), "at least 0.000001"},
		{"reserve empty principal", second(s.Reserve(ctx, "", "p", 0.1, "q")), "principal must not be empty"},
		{"reserve empty purpose", second(s.Reserve(ctx, "alice", "", 0.1, "q")), "purpose must not be empty"},
		{"reserve empty query", second(s.Reserve(ctx, "alice", "p", 0.1, "")), "query id must not be empty"},
		{"refund empty", s.Refund(ctx, ""), "query id must not be empty"},
		{"remaining empty principal", third(s.Remaining(ctx, "", "p")), "principal must not be empty"},
		{"remaining empty purpose", third(s.Remaining(ctx, "alice", "")), "purpose must not be empty"},
		{"list empty principal", second(s.List(ctx, "")), "principal must not be empty"},
	} {
		t.Run(c.name, func(t *testing.T) { wantCode(t, c.err, sluice.EInvalid, c.want) })
	}
	// Nothing was spent by the refused calls.
	if l, sp, err := s.Remaining(ctx, "alice", "p"); l != 1 || sp != 0 || err != nil {
		t.Fatalf("after bad inputs: %v %v %v", l, sp, err)
	}
	for _, p := range []string{"", "  ", ":memory:", "file:x.db", t.TempDir(), "postgres://sluice:s3cr3t-pw@127.0.0.1:notaport/test"} {
		if _, err := Open(ctx, p); sluice.ErrorCode(err) != sluice.EInvalid || strings.Contains(sluice.ErrorMessage(err), "s3cr3t-pw") {
			t.Errorf("Open(%q): %v", p, err)
		}
	}
	_, err := Open(ctx, dbtest.UnreachablePostgres)
	if sluice.ErrorCode(err) != sluice.EUnavailable || strings.Contains(sluice.ErrorMessage(err), "s3cr3t-pw") || !strings.Contains(sluice.ErrorMessage(err), "127.0.0.1:1") {
		t.Errorf("Open(unreachable server): %v; want EUnavailable naming the server without its password", err)
	}
}

// TestLedgerKeepsInsertionOrder: reservations in the same microsecond are
// listed in the order they were made.
func TestLedgerKeepsInsertionOrder(t *testing.T) { eachBackend(t, testLedgerKeepsInsertionOrder) }

func testLedgerKeepsInsertionOrder(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	s.now = func() time.Time { return time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC) }
	if err := s.SetLimit(ctx, "alice", "p", 1, "g"); err != nil {
		t.Fatal(err)
	}
	ids := []string{"q-c", "q-a", "q-b", "q-0"}
	for _, id := range ids {
		if _, err := s.Reserve(ctx, "alice", "p", 0.1, id); err != nil {
			t.Fatal(err)
		}
	}
	led, err := s.Ledger(ctx, "alice", "p")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range led {
		got = append(got, l.QueryID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("ledger order %v; want %v", got, ids)
	}
}

// TestConcurrentOpen: processes opening one store together all succeed;
// on PostgreSQL the tables are created by whichever comes first.
func TestConcurrentOpen(t *testing.T) { eachBackend(t, testConcurrentOpen) }

func testConcurrentOpen(t *testing.T, b backend) {
	target := b.target(t)
	if !b.pg {
		// A new SQLite file's switch to WAL mode is not covered by the
		// busy timeout: create it first.
		s, err := Open(context.Background(), target)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			s, err := Open(context.Background(), target)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func second[T any](_ T, err error) error        { return err }
func third[A, B any](_ A, _ B, err error) error { return err }

func TestPersistsAcrossReopen(t *testing.T) { eachBackend(t, testPersistsAcrossReopen) }

func testPersistsAcrossReopen(t *testing.T, b backend) {
	ctx := context.Background()
	s, path := b.open(t)
	if err := s.SetLimit(ctx, "dept:civil", "subsidy-review", 0.9, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "dept:civil", "subsidy-review", 0.3, "q1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "dept:civil", "subsidy-review", 0.3, "q2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, "q2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l, sp, err := s2.Remaining(ctx, "dept:civil", "subsidy-review")
	if err != nil || l != 0.9 || sp != 0.3 {
		t.Fatalf("after reopen: %v %v %v", l, sp, err)
	}
	_, err = s2.Reserve(ctx, "dept:civil", "subsidy-review", 0.3, "q1")
	wantCode(t, err, sluice.EInvalid, "already has a budget reservation")
	if rem, err := s2.Reserve(ctx, "dept:civil", "subsidy-review", 0.6, "q3"); err != nil || rem != 0 {
		t.Fatalf("rem %v err %v", rem, err)
	}
}

func TestSharesTheBrokerStoreFile(t *testing.T) { eachBackend(t, testSharesTheBrokerStoreFile) }

func testSharesTheBrokerStoreFile(t *testing.T, b backend) {
	ctx := context.Background()
	path := b.target(t)
	log, err := audit.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetLimit(ctx, "alice", "p", 1, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "alice", "p", 0.5, "q"); err != nil {
		t.Fatal(err)
	}
	if rep, err := log.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("audit log after budget writes: %+v, %v", rep, err)
	}
}

// TestConcurrentReservesNeverExceed: 32 goroutines race for a budget that
// fits exactly 10 reservations; exactly 10 win and the spend is exact.
func TestConcurrentReservesNeverExceed(t *testing.T) {
	eachBackend(t, testConcurrentReservesNeverExceed)
}

func testConcurrentReservesNeverExceed(t *testing.T, b backend) {
	ctx := context.Background()
	s, path := b.open(t)
	if err := s.SetLimit(ctx, "alice", "p", 1, "g"); err != nil {
		t.Fatal(err)
	}
	// A second handle on the same file stands in for another process.
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, denied := 0, 0
	for i := range 32 {
		st := s
		if i%2 == 1 {
			st = s2
		}
		wg.Go(func() {
			_, err := st.Reserve(ctx, "alice", "p", 0.1, fmt.Sprintf("q%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case sluice.ErrorCode(err) == sluice.EDenied:
				denied++
			default:
				t.Errorf("reservation %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 10 || denied != 22 {
		t.Fatalf("%d won, %d denied; want 10 and 22", won, denied)
	}
	l, sp, err := s.Remaining(ctx, "alice", "p")
	if err != nil || l != 1 || sp != 1 {
		t.Fatalf("limit %v spent %v %v", l, sp, err)
	}
}

// TestConcurrentRandomReserves: mixed sizes and refunds; the books always
// balance and never exceed the limit.
func TestConcurrentRandomReserves(t *testing.T) { eachBackend(t, testConcurrentRandomReserves) }

func testConcurrentRandomReserves(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t)
	if err := s.SetLimit(ctx, "alice", "p", 2.5, "g"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kept int64 // micro-units of reservations that were not refunded
	for i := range 32 {
		wg.Go(func() {
			eps := float64(i%7+1) * 0.033333
			id := fmt.Sprintf("q%d", i)
			_, err := s.Reserve(ctx, "alice", "p", eps, id)
			if sluice.ErrorCode(err) == sluice.EDenied {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if i%3 == 0 {
				if err := s.Refund(ctx, id); err != nil {
					t.Error(err)
				}
				return
			}
			mu.Lock()
			kept += int64(math.Round(eps * Micro))
			mu.Unlock()
		})
	}
	wg.Wait()
	l, sp, err := s.Remaining(ctx, "alice", "p")
	if err != nil {
		t.Fatal(err)
	}
	if sp > l || int64(math.Round(sp*Micro)) != kept {
		t.Fatalf("limit %v spent %v, kept %d micro", l, sp, kept)
	}
}

func TestFmtMicro(t *testing.T) {
	for m, want := range map[int64]string{0: "0", 1: "0.000001", 100000: "0.1", 1000000: "1", 1250000: "1.25", 123456789: "123.456789"} {
		if got := fmtMicro(m); got != want {
			t.Errorf("fmtMicro(%d) = %q, want %q", m, got, want)
		}
	}
	if m, err := toMicro("x", 0.1+0.2, false); err != nil || m != 300000 {
		t.Errorf("toMicro(0.1+0.2) = %d, %v", m, err)
	}
}
