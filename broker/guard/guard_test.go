package guard

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/sandbox/sketch"
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

func (b backend) target(t testing.TB) string {
	t.Helper()
	if b.pg {
		return dbtest.PostgresSchema(t)
	}
	return filepath.Join(t.TempDir(), "sluice.db")
}

func open(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	insured = Scope{Department: "civil", Dataset: "health.insured"}
	claims  = Scope{Department: "civil", Dataset: "health.claims"}
	taxHI   = Scope{Department: "tax", Dataset: "health.insured"}
)

func units(seed uint64, n int) []uint64 {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.Uint64()
	}
	return out
}

func sketchOf(k int, us []uint64) []byte {
	b := sketch.NewBuilder(k)
	for _, u := range us {
		b.Add(u)
	}
	return b.AppendSketch(nil)
}

func set(sc Scope, k int, us []uint64, label string) Set {
	return Set{Scope: sc, K: k, Sketch: sketchOf(k, us), Label: label}
}

// release admits and commits.
func release(t testing.TB, s *Store, queryID string, sets ...Set) {
	t.Helper()
	ctx := context.Background()
	tk, err := s.Admit(ctx, queryID, "alice", sets)
	if err != nil {
		t.Fatalf("admitting %s: %v", queryID, err)
	}
	if err := tk.Commit(ctx); err != nil {
		t.Fatalf("committing %s: %v", queryID, err)
	}
}

func wantDenied(t testing.TB, err error, contains ...string) *sluice.Error {
	t.Helper()
	var se *sluice.Error
	if sluice.ErrorCode(err) != sluice.EDenied {
		t.Fatalf("got %v (%s), want denied", err, sluice.ErrorCode(err))
	}
	se = err.(*sluice.Error)
	for _, c := range contains {
		if !strings.Contains(se.Message, c) {
			t.Fatalf("message %q does not contain %q", se.Message, c)
		}
	}
	if len(se.Reasons) != 1 || !strings.HasPrefix(se.Reasons[0], "differencing_guard: ") {
		t.Fatalf("reasons %q", se.Reasons)
	}
	return se
}

func admitErr(s *Store, queryID string, sets ...Set) error {
	tk, err := s.Admit(context.Background(), queryID, "bob", sets)
	if err == nil {
		tk.Abort()
	}
	return err
}

func TestNearIsRefused(t *testing.T) { eachBackend(t, testNearIsRefused) }

func testNearIsRefused(t *testing.T, b backend) {
	c := newClock()
	s := open(t, b.target(t), WithClock(c.now))
	base := units(1, 500)
	release(t, s, "q-1", set(insured, 10, base, "group 1"))
	c.advance(time.Hour)

	// Three persons fewer: refused, naming the group, the query and its time.
	err := admitErr(s, "q-2", set(insured, 10, base[:400], "group 1"), set(insured, 10, base[3:], "group 2"))
	se := wantDenied(t, err, "the result's group 2 on health.insured differs from a group released by query q-1 at 2026-03-01T09:30:00Z by fewer than 10 persons",
		"releasing both would reveal those persons' values",
		"Nothing was released: ask for groups that differ from earlier results by at least 10 persons, or repeat the earlier query unchanged")
	if !strings.HasPrefix(se.Reasons[0], "differencing_guard: health.insured") {
		t.Fatalf("reason %q", se.Reasons[0])
	}
	// The message never tells how many persons: one or nine give the same.
	for _, d := range []int{1, 9} {
		err2 := admitErr(s, "q-2", set(insured, 10, base[:400], "group 1"), set(insured, 10, base[d:], "group 2"))
		if err2.Error() != err.Error() || err2.(*sluice.Error).Reasons[0] != se.Reasons[0] {
			t.Fatalf("d=%d: message differs: %v", d, err2)
		}
	}
	// Persons added rather than removed: refused too.
	wantDenied(t, admitErr(s, "q-3", set(insured, 10, append(slices.Clone(base), units(2, 4)...), "")), "group 1", "q-1")
	// Ten persons fewer: far enough.
	release(t, s, "q-4", set(insured, 10, base[10:], "group 1"))
	// The same group again: a rerun passes.
	release(t, s, "q-5", set(insured, 10, base, "group 1"))
	// Other scopes are not compared.
	release(t, s, "q-6", set(claims, 10, base[1:], ""), set(taxHI, 10, base[1:], ""))
	st, err := s.Stats(context.Background(), insured)
	if err != nil {
		t.Fatal(err)
	}
	if st.Releases != 2 || !st.Oldest.Equal(time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestLargerKOfTheTwo(t *testing.T) { eachBackend(t, testLargerKOfTheTwo) }

func testLargerKOfTheTwo(t *testing.T, b backend) {
	s := open(t, b.target(t))
	base := units(3, 1000)
	// Released under k = 20; a k = 10 group 15 persons away is near.
	release(t, s, "q-1", set(insured, 20, base, ""))
	wantDenied(t, admitErr(s, "q-2", set(insured, 10, base[15:], "")), "by fewer than 20 persons")
	// 20 persons away is far.
	release(t, s, "q-3", set(insured, 10, base[20:], ""))
	// And under k = 10 now, 12 persons from q-3's set but 32 from q-1's: far.
	release(t, s, "q-4", set(insured, 10, base[32:], ""))
}

func TestNearWithinOneAnswer(t *testing.T) { eachBackend(t, testNearWithinOneAnswer) }

func testNearWithinOneAnswer(t *testing.T, b backend) {
	s := open(t, b.target(t))
	base := units(4, 300)
	err := admitErr(s, "q-1",
		set(insured, 10, units(5, 300), "group 1"),
		set(insured, 10, base, "group 2"),
		set(insured, 10, base[2:], "group 3"))
	se := wantDenied(t, err, "the result's group 2 and group 3 on health.insured differ by fewer than 10 persons",
		"ask for groups that differ from each other by at least 10 persons")
	if !strings.HasPrefix(se.Reasons[0], "differencing_guard: health.insured: ") {
		t.Fatal(se.Reasons)
	}
	// In different scopes they may.
	release(t, s, "q-2", set(insured, 10, base, ""), set(claims, 10, base[2:], ""))
	// Identical groups in one answer are stored once.
	s2 := open(t, b.target(t))
	release(t, s2, "q-3", set(claims, 10, base, ""), set(claims, 10, base, ""), set(claims, 12, base, ""))
	if n := rowCount(t, s2); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	if s2.scopes[claims].entries[0].k != 12 {
		t.Fatal("the stored group does not carry the larger k")
	}
}

func rowCount(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM guard_releases`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRerunRefreshes(t *testing.T) { eachBackend(t, testRerunRefreshes) }

func testRerunRefreshes(t *testing.T, b backend) {
	c := newClock()
	s := open(t, b.target(t), WithClock(c.now), WithRetention(30*24*time.Hour))
	base := units(6, 200)
	release(t, s, "q-1", set(insured, 10, base, ""))
	c.advance(20 * 24 * time.Hour)
	release(t, s, "q-2", set(insured, 10, base, ""))
	if n := rowCount(t, s); n != 1 {
		t.Fatalf("%d rows after a rerun, want 1", n)
	}
	// 40 days after the first release, 20 after the rerun: still remembered.
	c.advance(20 * 24 * time.Hour)
	wantDenied(t, admitErr(s, "q-3", set(insured, 10, base[1:], "")), "query q-1 at 2026-03-01T09:30:00Z")
	// 31 days after the rerun: forgotten.
	c.advance(11 * 24 * time.Hour)
	release(t, s, "q-4", set(insured, 10, base[1:], ""))
}

func TestRetention(t *testing.T) { eachBackend(t, testRetention) }

func testRetention(t *testing.T, b backend) {
	c := newClock()
	path := b.target(t)
	s := open(t, path, WithClock(c.now))
	base := units(7, 200)
	release(t, s, "q-1", set(insured, 10, base, ""))
	release(t, s, "q-2", set(claims, 10, base, ""))
	c.advance(364 * 24 * time.Hour)
	wantDenied(t, admitErr(s, "q-3", set(insured, 10, base[1:], "")))
	c.advance(2 * 24 * time.Hour)
	// Expired: the guard forgets it, and the hourly purge removes it.
	release(t, s, "q-4", set(insured, 10, base[1:], ""))
	if n := rowCount(t, s); n != 1 {
		t.Fatalf("%d rows after the purge, want 1 (q-4)", n)
	}
	if st, _ := s.Stats(context.Background(), claims); st.Releases != 0 {
		t.Fatalf("claims still shows %d releases", st.Releases)
	}
	s.Close()
	// A shorter retention on reopening applies to new releases only.
	s2 := open(t, path, WithClock(c.now), WithRetention(time.Hour))
	wantDenied(t, admitErr(s2, "q-5", set(insured, 10, base[2:], "")), "q-4")
	release(t, s2, "q-6", set(claims, 10, base, ""))
	c.advance(2 * time.Hour)
	release(t, s2, "q-7", set(claims, 10, base[1:], ""))
}

func TestSurvivesRestart(t *testing.T) { eachBackend(t, testSurvivesRestart) }

func testSurvivesRestart(t *testing.T, b backend) {
	c := newClock()
	path := b.target(t)
	s := open(t, path, WithClock(c.now))
	base := units(8, 2000)
	release(t, s, "q-1", set(insured, 10, base, ""), set(claims, 50, base[:1000], ""))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path, WithClock(c.now))
	wantDenied(t, admitErr(s2, "q-2", set(insured, 10, base[5:], "")), "q-1 at 2026-03-01T09:30:00Z")
	wantDenied(t, admitErr(s2, "q-2", set(claims, 10, base[:1030], "")), "by fewer than 50 persons")
	release(t, s2, "q-3", set(insured, 10, base, ""))
	release(t, s2, "q-4", set(insured, 10, base[100:], ""))
	st, _ := s2.Stats(context.Background(), insured)
	if st.Releases != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAbortForgets(t *testing.T) { eachBackend(t, testAbortForgets) }

func testAbortForgets(t *testing.T, b backend) {
	s := open(t, b.target(t))
	ctx := context.Background()
	base := units(9, 100)
	tk, err := s.Admit(ctx, "q-1", "alice", []Set{set(insured, 10, base, "")})
	if err != nil {
		t.Fatal(err)
	}
	// The scope is locked meanwhile.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = s.Admit(short, "q-2", "alice", []Set{set(insured, 10, base[1:], "")})
	cancel()
	if sluice.ErrorCode(err) != sluice.EUnavailable || !strings.Contains(err.Error(), "another answer on health.insured") {
		t.Fatalf("waiting on a locked scope: %v", err)
	}
	// Another scope is not.
	release(t, s, "q-3", set(claims, 10, base, ""))
	tk.Abort()
	tk.Abort()
	if err := tk.Commit(ctx); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("commit after abort: %v", err)
	}
	release(t, s, "q-2", set(insured, 10, base[1:], ""))
	if n := rowCount(t, s); n != 2 {
		t.Fatalf("%d rows", n)
	}
	// Abort after Commit does nothing; a second Commit is refused.
	tk, err = s.Admit(ctx, "q-4", "alice", []Set{set(insured, 10, base[50:], "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tk.Abort()
	if err := tk.Commit(ctx); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("second commit: %v", err)
	}
	// An empty answer commits nothing.
	release(t, s, "q-5")
	if n := rowCount(t, s); n != 3 {
		t.Fatalf("%d rows", n)
	}
}

func TestCommitFailureAddsNothing(t *testing.T) { eachBackend(t, testCommitFailureAddsNothing) }

func testCommitFailureAddsNothing(t *testing.T, b backend) {
	s := open(t, b.target(t))
	ctx := context.Background()
	tk, err := s.Admit(ctx, "q-1", "alice", []Set{set(insured, 10, units(10, 100), "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`DROP TABLE guard_releases`); err != nil {
		t.Fatal(err)
	}
	if err := tk.Commit(ctx); sluice.ErrorCode(err) != sluice.EUnavailable {
		t.Fatalf("commit on a broken store: %v", err)
	}
	if st, _ := s.Stats(ctx, insured); st.Releases != 0 {
		t.Fatal("a failed commit was added to the index")
	}
	// The scope was unlocked.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	tk, err = s.Admit(short, "q-2", "alice", []Set{set(insured, 10, units(10, 99), "")})
	if err != nil {
		t.Fatal(err)
	}
	tk.Abort()
	// A commit with a cancelled context fails the same way.
	tk, _ = s.Admit(ctx, "q-3", "alice", []Set{set(insured, 10, units(10, 99), "")})
	cctx, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := tk.Commit(cctx); sluice.ErrorCode(err) != sluice.EUnavailable {
		t.Fatalf("commit with a cancelled context: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	good := set(insured, 10, units(11, 50), "")
	cases := []struct {
		name, query, principal string
		sets                   []Set
		code                   string
	}{
		{"no query", "", "alice", []Set{good}, sluice.EInvalid},
		{"no principal", "q", " ", []Set{good}, sluice.EInvalid},
		{"no dataset", "q", "alice", []Set{{Scope: Scope{Department: "civil"}, K: 10, Sketch: good.Sketch}}, sluice.EInvalid},
		{"no department", "q", "alice", []Set{{Scope: Scope{Dataset: "x"}, K: 10, Sketch: good.Sketch}}, sluice.EInvalid},
		{"k 0", "q", "alice", []Set{{Scope: insured, K: 0, Sketch: good.Sketch}}, sluice.EInvalid},
		{"malformed sketch", "q", "alice", []Set{good, {Scope: insured, K: 10, Sketch: []byte{1, 2, 3}}}, sluice.EInternal},
		{"sketch too small for k", "q", "alice", []Set{{Scope: insured, K: 100, Sketch: good.Sketch}}, sluice.EInternal},
	}
	for _, c := range cases {
		_, err := s.Admit(context.Background(), c.query, c.principal, c.sets)
		if sluice.ErrorCode(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	_, err := s.Admit(context.Background(), "q", "alice", []Set{good, {Scope: insured, K: 10, Sketch: []byte{1}}})
	if !strings.Contains(err.Error(), "group 2 on health.insured has a malformed unit sketch") {
		t.Fatal(err)
	}
	// Nothing stayed locked.
	release(t, s, "q", good)

	for _, p := range []string{"", ":memory:", "file:x.db", t.TempDir()} {
		if _, err := Open(context.Background(), p); sluice.ErrorCode(err) != sluice.EInvalid {
			t.Errorf("Open(%q): %v", p, err)
		}
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), WithRetention(0)); sluice.ErrorCode(err) != sluice.EInvalid {
		t.Errorf("zero retention: %v", err)
	}
	_, err = Open(context.Background(), dbtest.UnreachablePostgres)
	if sluice.ErrorCode(err) != sluice.EUnavailable || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("unreachable PostgreSQL: %v", err)
	}
}

func TestDamagedStore(t *testing.T) { eachBackend(t, testDamagedStore) }

func testDamagedStore(t *testing.T, b backend) {
	for _, c := range []struct {
		name, update string
	}{
		{"sketch", `UPDATE guard_releases SET sketch = ? WHERE query_id = 'q-2'`},
		{"units", `UPDATE guard_releases SET units = units + 1 WHERE query_id = 'q-2'`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := b.target(t)
			s := open(t, path)
			release(t, s, "q-1", set(insured, 10, units(12, 100), ""))
			release(t, s, "q-2", set(insured, 10, units(13, 100), ""))
			var args []any
			if c.name == "sketch" {
				args = append(args, []byte{1, 4, 0})
			}
			if _, err := s.db.Exec(s.d.Rebind(c.update), args...); err != nil {
				t.Fatal(err)
			}
			s.Close()
			_, err := Open(context.Background(), path)
			if sluice.ErrorCode(err) != sluice.EUnavailable || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "query q-2") {
				t.Fatalf("opening a damaged store: %v", err)
			}
		})
	}
}

func TestSharesTheBrokerStore(t *testing.T) { eachBackend(t, testSharesTheBrokerStore) }

func testSharesTheBrokerStore(t *testing.T, b backend) {
	path := b.target(t)
	s1 := open(t, path)
	s2 := open(t, path) // concurrent opens create the table once
	release(t, s1, "q-1", set(insured, 10, units(14, 100), ""))
	var tables int
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'guard_%'`
	if b.pg {
		q = `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'guard_%'`
	}
	if err := s2.db.QueryRow(q).Scan(&tables); err != nil || tables != 1 {
		t.Fatalf("%d guard tables, %v", tables, err)
	}
}

// TestConcurrentNearPairs admits, from many goroutines at once, groups of
// which every two in one family are near and families are far apart:
// exactly one group per family may pass.
func TestConcurrentNearPairs(t *testing.T) { eachBackend(t, testConcurrentNearPairs) }

func testConcurrentNearPairs(t *testing.T, b backend) {
	s := open(t, b.target(t))
	const families, variants = 6, 5
	type try struct {
		family int
		set    Set
	}
	var tries []try
	for f := range families {
		base := units(uint64(100+f), 200+50*f)
		for v := range variants {
			// Each variant drops a different person: any two differ by 2.
			us := append(slices.Clone(base[:v]), base[v+1:]...)
			tries = append(tries, try{f, set(insured, 10, us, fmt.Sprintf("group %d", v+1))})
		}
	}
	rand.Shuffle(len(tries), func(i, j int) { tries[i], tries[j] = tries[j], tries[i] })
	passed := make([]atomic.Int32, families)
	var wg sync.WaitGroup
	for i, tr := range tries {
		wg.Go(func() {
			ctx := context.Background()
			tk, err := s.Admit(ctx, fmt.Sprintf("q-%d", i), "alice", []Set{tr.set})
			if err != nil {
				if sluice.ErrorCode(err) != sluice.EDenied {
					t.Error(err)
				}
				return
			}
			time.Sleep(time.Millisecond) // the answer streams
			if err := tk.Commit(ctx); err != nil {
				t.Error(err)
				return
			}
			passed[tr.family].Add(1)
		})
	}
	wg.Wait()
	for f := range passed {
		if n := passed[f].Load(); n != 1 {
			t.Errorf("family %d: %d groups passed, want 1", f, n)
		}
	}
	if n := rowCount(t, s); n != families {
		t.Fatalf("%d rows, want %d", n, families)
	}
}

// TestConcurrentScopes admits answers spanning several scopes in
// different orders, which must not deadlock.
func TestConcurrentScopes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	scopes := []Scope{insured, claims, taxHI, {Department: "tax", Dataset: "health.claims"}}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			sets := make([]Set, len(scopes))
			for j := range scopes {
				sc := scopes[(i+j)%len(scopes)]
				sets[j] = set(sc, 5, units(uint64(1000+i), 100), "")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tk, err := s.Admit(ctx, fmt.Sprintf("q-%d", i), "alice", sets)
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				tk.Abort()
			} else if err := tk.Commit(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestDigest(t *testing.T) {
	a := set(insured, 10, units(20, 50), "group 1")
	b := set(claims, 10, units(21, 50), "group 2")
	d := Digest([]Set{a, b})
	if !strings.HasPrefix(d, "sha256:") || len(d) != 7+64 {
		t.Fatal(d)
	}
	if Digest([]Set{a, b}) != d {
		t.Fatal("not deterministic")
	}
	relabelled := a
	relabelled.Label = "x"
	if Digest([]Set{relabelled, b}) != d {
		t.Fatal("the label changed the digest")
	}
	seen := map[string]string{d: "original", Digest(nil): "none"}
	variants := map[string][]Set{
		"order":   {b, a},
		"one":     {a},
		"k":       {{Scope: a.Scope, K: 11, Sketch: a.Sketch}, b},
		"sketch":  {{Scope: a.Scope, K: 10, Sketch: b.Sketch}, b},
		"shifted": {{Scope: Scope{Department: "civilh", Dataset: "ealth.insured"}, K: 10, Sketch: a.Sketch}, b},
		"dataset": {{Scope: Scope{Department: "civil", Dataset: "health.insure"}, K: 10, Sketch: a.Sketch}, b},
	}
	for name, sets := range variants {
		got := Digest(sets)
		if prev, ok := seen[got]; ok {
			t.Fatalf("%s has the digest of %s", name, prev)
		}
		seen[got] = name
	}
}

func TestStatsEmpty(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	st, err := s.Stats(context.Background(), insured)
	if err != nil || st.Releases != 0 || !st.Oldest.IsZero() {
		t.Fatalf("%+v %v", st, err)
	}
}

// seed stores n releases of k = 10 in scope, with the given unit counts,
// directly (one transaction), and reopens the store.
func seed(b *testing.B, path string, counts []int, c *clock) *Store {
	s, err := Open(context.Background(), path, WithClock(c.now))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	bl := sketch.NewBuilder(10)
	r := rand.New(rand.NewPCG(1, 2))
	err = s.write(ctx, "seed", func(tx *sql.Tx) error {
		for i, n := range counts {
			bl.Reset()
			for range n {
				bl.Add(r.Uint64())
			}
			_, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO guard_releases (department, dataset, query_id, principal, k, units, sketch, released_us, expires_us)
				VALUES (?, ?, ?, 'alice', 10, ?, ?, ?, ?)`), insured.Department, insured.Dataset, fmt.Sprintf("q-%d", i), n, bl.AppendSketch(nil),
				c.now().UnixMicro(), c.now().Add(DefaultRetention).UnixMicro())
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	start := time.Now()
	s, err = Open(context.Background(), path, WithClock(c.now))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("opening a store of %d releases took %v", len(counts), time.Since(start))
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAdmit10000 admits one group (then aborts) against a scope
// holding 10,000 releases of k = 10: "varied" with unit counts uniform in
// 10..20,000, "same-size" with every earlier release having the new
// group's unit count, the worst case for the unit-count window.
func BenchmarkAdmit10000(b *testing.B) {
	c := newClock()
	r := rand.New(rand.NewPCG(3, 4))
	varied := make([]int, 10000)
	for i := range varied {
		varied[i] = 10 + r.IntN(19991)
	}
	same := make([]int, 10000)
	for i := range same {
		same[i] = 1000
	}
	for _, bc := range []struct {
		name   string
		counts []int
		units  int
	}{{"varied", varied, 5000}, {"same-size", same, 1000}} {
		b.Run(bc.name, func(b *testing.B) {
			s := seed(b, filepath.Join(b.TempDir(), "s.db"), bc.counts, c)
			g := set(insured, 10, units(99, bc.units), "")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				tk, err := s.Admit(ctx, "q-new", "alice", []Set{g})
				if err != nil {
					b.Fatal(err)
				}
				tk.Abort()
			}
		})
	}
}
