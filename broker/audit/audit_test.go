package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/test/dbtest"
)

var principals = []string{"alice", "bob", "erin"}

// sample builds a varied but deterministic entry; i picks the variation.
func sample(i int) *Entry {
	e := &Entry{
		Kind:       KindQuery,
		QueryID:    fmt.Sprintf("q-%04d", i),
		Principal:  principals[i%len(principals)],
		Role:       "analyst",
		Department: "civil",
		Purpose:    "subsidy-review",
		ClientAddr: "10.0.0.7:51234",
		SQL:        "SELECT district, COUNT(*) FROM health.insured WHERE annual_claims > 1000 GROUP BY district",
		Datasets:   []string{"health.insured"},
		Columns: []sluice.ColumnUsage{
			{Dataset: "health.insured", Column: "annual_claims", Usages: []sluice.Usage{sluice.UsePredicate}},
		},
		Decision:       DecisionAllow,
		Obligations:    map[string]any{"k": 10, "masks": map[string]any{"name": "surname"}},
		PolicyRevision: "rev-1",
		DurationMS:     1.25,
	}
	switch i % 4 {
	case 1:
		e.Decision = DecisionDeny
		e.Reasons = []string{"no grant on police.household for purpose subsidy-review"}
		e.Obligations = nil
		e.Datasets = []string{"police.household"}
	case 2:
		e.Kind = KindResult
		e.Rows = int64(i)
	case 3:
		e.Kind = KindMetadata
		e.Decision = DecisionAllow
		e.Datasets = nil
		e.Columns = nil
		e.SQL = ""
	}
	return e
}

func newTestLog(t testing.TB) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.db")
	l, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func appendN(t testing.TB, l *Log, n int) []Entry {
	t.Helper()
	out := make([]Entry, 0, n)
	for i := range n {
		e := sample(i)
		if err := l.Append(context.Background(), e); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, *e)
	}
	return out
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got nil", code)
	}
	var se *sluice.Error
	if !errors.As(err, &se) {
		t.Fatalf("want *sluice.Error, got %T: %v", err, err)
	}
	if se.Code != code {
		t.Fatalf("want code %s, got %s: %v", code, se.Code, err)
	}
}

func TestAppendAssignsChainFields(t *testing.T) { eachBackend(t, testAppendAssignsChainFields) }

func testAppendAssignsChainFields(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	ctx := context.Background()
	fixed := time.Date(2025, 3, 1, 9, 30, 0, 123456789, time.FixedZone("CST", 8*3600))
	tests := []struct {
		name  string
		entry *Entry
		check func(t *testing.T, e *Entry)
	}{
		{"first entry starts at genesis", sample(0), func(t *testing.T, e *Entry) {
			if e.Seq != 1 || e.PrevHash != GenesisHash {
				t.Errorf("seq %d prev %s; want 1 and the genesis hash", e.Seq, e.PrevHash)
			}
		}},
		{"zero time is set to now in UTC", sample(1), func(t *testing.T, e *Entry) {
			if e.Time.IsZero() || e.Time.Location() != time.UTC || time.Since(e.Time) > time.Minute {
				t.Errorf("time %v; want a recent UTC time", e.Time)
			}
		}},
		{"given time is kept, in UTC, to the microsecond", func() *Entry { e := sample(2); e.Time = fixed; return e }(), func(t *testing.T, e *Entry) {
			want := fixed.UTC().Truncate(time.Microsecond)
			if !e.Time.Equal(want) || e.Time.Location() != time.UTC {
				t.Errorf("time %v; want %v", e.Time, want)
			}
		}},
		{"stale chain fields from a template are replaced", func() *Entry {
			e := sample(3)
			e.Seq, e.PrevHash, e.Hash = 99, "forged", "forged"
			return e
		}(), func(t *testing.T, e *Entry) {
			if e.Seq != 4 || e.PrevHash == "forged" || e.Hash == "forged" {
				t.Errorf("chain fields not replaced: %d %s %s", e.Seq, e.PrevHash, e.Hash)
			}
		}},
		{"invalid UTF-8 and HTML characters round-trip to a stable hash", func() *Entry {
			e := sample(0)
			e.SQL = "SELECT '<b>&' FROM t WHERE x = '\xff\xfe' -- 张三"
			return e
		}(), func(t *testing.T, e *Entry) {
			got, err := l.Get(ctx, e.Seq)
			if err != nil {
				t.Fatal(err)
			}
			if got.ComputeHash() != e.Hash {
				t.Errorf("stored entry does not hash to the returned hash")
			}
		}},
	}
	var prev string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := l.Append(ctx, tc.entry); err != nil {
				t.Fatal(err)
			}
			if prev != "" && tc.entry.PrevHash != prev {
				t.Errorf("prev_hash %s; want the previous hash %s", tc.entry.PrevHash, prev)
			}
			if tc.entry.ComputeHash() != tc.entry.Hash {
				t.Errorf("returned entry does not hash to its Hash")
			}
			prev = tc.entry.Hash
			tc.check(t, tc.entry)
		})
	}
}

func TestRoundTrip(t *testing.T) { eachBackend(t, testRoundTrip) }

func testRoundTrip(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	ctx := context.Background()
	written := appendN(t, l, 12)

	for _, w := range written {
		got, err := l.Get(ctx, w.Seq)
		if err != nil {
			t.Fatalf("Get %d: %v", w.Seq, err)
		}
		if !reflect.DeepEqual(*got, w) {
			t.Fatalf("Get %d:\n got %+v\nwant %+v", w.Seq, *got, w)
		}
		if got.ComputeHash() != got.Hash {
			t.Fatalf("entry %d read back does not hash-verify", w.Seq)
		}
	}

	tail, err := l.Tail(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) != 3 || tail[0].Seq != 10 || tail[2].Seq != 12 {
		t.Fatalf("Tail(3) = %v; want entries 10..12 oldest first", seqs(tail))
	}
	all, err := l.Tail(ctx, 100)
	if err != nil || len(all) != 12 || all[0].Seq != 1 {
		t.Fatalf("Tail(100) = %v, %v; want all 12 from 1", seqs(all), err)
	}
	for i, e := range all {
		if e.ComputeHash() != e.Hash || (i > 0 && e.PrevHash != all[i-1].Hash) {
			t.Fatalf("tail entry %d does not chain", e.Seq)
		}
	}
}

func TestReadErrors(t *testing.T) { eachBackend(t, testReadErrors) }

func testReadErrors(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	ctx := context.Background()
	appendN(t, l, 2)
	tests := []struct {
		name string
		run  func() error
		code string
	}{
		{"get seq 0", func() error { _, err := l.Get(ctx, 0); return err }, sluice.EInvalid},
		{"get missing", func() error { _, err := l.Get(ctx, 3); return err }, sluice.ENotFound},
		{"tail 0", func() error { _, err := l.Tail(ctx, 0); return err }, sluice.EInvalid},
		{"tail too long", func() error { _, err := l.Tail(ctx, MaxReadLimit+1); return err }, sluice.EInvalid},
		{"negative limit", func() error { _, err := l.Search(ctx, Filter{Limit: -1}); return err }, sluice.EInvalid},
		{"bad decision", func() error { _, err := l.Search(ctx, Filter{Decision: "maybe"}); return err }, sluice.EInvalid},
		{"bad kind", func() error { _, err := l.Search(ctx, Filter{Kind: "x"}); return err }, sluice.EInvalid},
		{"empty window", func() error {
			now := time.Now()
			_, err := l.Search(ctx, Filter{Since: now, Until: now})
			return err
		}, sluice.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.run(), tc.code) })
	}
}

func seqs(es []Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func TestSearch(t *testing.T) { eachBackend(t, testSearch) }

func testSearch(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	ctx := context.Background()
	base := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		e := sample(i)
		e.Time = base.Add(time.Duration(i) * time.Hour)
		if i == 11 {
			e.Purpose = "enterprise-credit"
		}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// sample: principal = i%3 (alice 0,3,6,9), i%4==1 deny on police.household,
	// i%4==2 result, i%4==3 metadata without datasets.
	tests := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all", Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"principal", Filter{Principal: "alice"}, []int64{1, 4, 7, 10}},
		{"purpose", Filter{Purpose: "enterprise-credit"}, []int64{12}},
		{"decision", Filter{Decision: DecisionDeny}, []int64{2, 6, 10}},
		{"kind", Filter{Kind: KindResult}, []int64{3, 7, 11}},
		{"query id", Filter{QueryID: "q-0005"}, []int64{6}},
		{"dataset, case-insensitive", Filter{Dataset: "POLICE.Household"}, []int64{2, 6, 10}},
		{"dataset with other filters", Filter{Dataset: "health.insured", Principal: "alice"}, []int64{1, 7}},
		{"since inclusive, until exclusive", Filter{Since: base.Add(2 * time.Hour), Until: base.Add(5 * time.Hour)}, []int64{3, 4, 5}},
		{"since in another zone", Filter{Since: base.Add(10 * time.Hour).In(time.FixedZone("CST", 8*3600))}, []int64{11, 12}},
		{"limit keeps the most recent", Filter{Principal: "alice", Limit: 2}, []int64{7, 10}},
		{"no match", Filter{Principal: "mallory"}, []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Search(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if s := seqs(got); !reflect.DeepEqual(s, tc.want) {
				t.Fatalf("got %v; want %v", s, tc.want)
			}
			for _, e := range got {
				if e.ComputeHash() != e.Hash {
					t.Fatalf("entry %d does not hash-verify", e.Seq)
				}
			}
		})
	}
}

func TestAppendRejectsBadEntries(t *testing.T) { eachBackend(t, testAppendRejectsBadEntries) }

func testAppendRejectsBadEntries(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		mutate func(e *Entry)
	}{
		{"unknown kind", func(e *Entry) { e.Kind = "select" }},
		{"unknown decision", func(e *Entry) { e.Decision = "" }},
		{"query without id", func(e *Entry) { e.QueryID = " " }},
		{"negative rows", func(e *Entry) { e.Rows = -1 }},
		{"NaN duration", func(e *Entry) { e.DurationMS = math.NaN() }},
		{"unencodable obligation", func(e *Entry) { e.Obligations = map[string]any{"f": func() {}} }},
		{"non-finite obligation", func(e *Entry) { e.Obligations = map[string]any{"eps": math.Inf(1)} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := sample(0)
			tc.mutate(e)
			wantCode(t, l.Append(ctx, e), sluice.EInvalid)
			if e.Seq != 0 || e.Hash != "" {
				t.Errorf("a rejected entry was given chain fields")
			}
		})
	}
	wantCode(t, l.Append(ctx, nil), sluice.EInvalid)
	// Rejections must not consume sequence numbers.
	e := sample(0)
	if err := l.Append(ctx, e); err != nil || e.Seq != 1 {
		t.Fatalf("after rejections: seq %d, %v; want 1", e.Seq, err)
	}
}

func TestTriggersBlockCasualEdits(t *testing.T) { eachBackend(t, testTriggersBlockCasualEdits) }

func testTriggersBlockCasualEdits(t *testing.T, b backend) {
	ed, _ := testSigners(t)
	l, path := b.newLog(t, WithSigners(ed), WithCheckpointEvery(2, time.Hour))
	appendN(t, l, 3)
	db := rawDB(t, path)
	stmts := []string{
		`UPDATE audit_entries SET principal = 'x' WHERE seq = 2`,
		`DELETE FROM audit_entries WHERE seq = 3`,
		`UPDATE audit_checkpoints SET hash = 'x' WHERE seq = 2`,
		`DELETE FROM audit_checkpoints WHERE seq = 2`,
	}
	if b.pg() {
		// TRUNCATE skips row triggers; it has its own guard.
		stmts = append(stmts, `TRUNCATE audit_entries`, `TRUNCATE audit_checkpoints`)
	}
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err %v; want the append-only trigger to refuse", stmt, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("this is not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		code string
	}{
		{"empty path", "", sluice.EInvalid},
		{"memory", ":memory:", sluice.EInvalid},
		{"directory", dir, sluice.EInvalid},
		{"corrupt file", garbage, sluice.EUnavailable},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "a.db"), sluice.EUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Open(context.Background(), tc.path)
			if err == nil {
				l.Close()
			}
			wantCode(t, err, tc.code)
			if tc.path != "" && !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestOpenErrorsPostgres: a PostgreSQL store that cannot be used fails as
// a SQLite one does, naming the store without its password.
func TestOpenErrorsPostgres(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, url, code string
	}{
		{"no server", dbtest.UnreachablePostgres, sluice.EUnavailable},
		{"bad port", "postgres://sluice:s3cr3t-pw@127.0.0.1:notaport/test", sluice.EInvalid},
		{"password as a parameter", "postgresql://127.0.0.1:1/test?user=sluice&password=s3cr3t-pw&connect_timeout=2", sluice.EUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for what, f := range map[string]func() error{
				"Open": func() error {
					l, err := Open(ctx, tc.url)
					if err == nil {
						l.Close()
					}
					return err
				},
				"VerifyFile": func() error { _, err := VerifyFile(ctx, tc.url); return err },
			} {
				err := f()
				wantCode(t, err, tc.code)
				if strings.Contains(err.Error(), "s3cr3t-pw") {
					t.Errorf("%s: error %q shows the password", what, err)
				}
				if !strings.Contains(err.Error(), "127.0.0.1") {
					t.Errorf("%s: error %q does not name the store", what, err)
				}
			}
		})
	}
}

func TestReopenKeepsChain(t *testing.T) { eachBackend(t, testReopenKeepsChain) }

func testReopenKeepsChain(t *testing.T, b backend) {
	ctx := context.Background()
	path := b.target(t)
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first := appendN(t, l, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, l.Append(ctx, sample(0)), sluice.EUnavailable)
	if _, err := l.Tail(ctx, 1); err == nil {
		t.Fatal("read after Close succeeded")
	}

	l, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if seq, h := l.Head(); seq != 5 || h != first[4].Hash {
		t.Fatalf("reopened head %d %s; want 5 %s", seq, h, first[4].Hash)
	}
	e := sample(5)
	if err := l.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 6 || e.PrevHash != first[4].Hash {
		t.Fatalf("after reopen: seq %d prev %s", e.Seq, e.PrevHash)
	}
	mustVerify(t, l, 6)
}

func TestVerifyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE catalog (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("junk", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		code string
	}{
		{"missing", filepath.Join(dir, "missing.db"), sluice.EInvalid},
		{"directory", dir, sluice.EInvalid},
		{"not an audit store", other, sluice.EInvalid},
		{"corrupt", garbage, sluice.EUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyFile(ctx, tc.path)
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}

	eachBackend(t, func(t *testing.T, b backend) {
		t.Run("while the broker has it open", func(t *testing.T) {
			l, path := b.newLog(t)
			written := appendN(t, l, 10)
			rep, err := VerifyFile(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.Entries != 10 || rep.Head != written[9].Hash {
				t.Fatalf("report %+v; want OK over 10 entries with head %s", rep, written[9].Hash)
			}
		})

		t.Run("empty log", func(t *testing.T) {
			_, path := b.newLog(t)
			rep, err := VerifyFile(ctx, path)
			if err != nil || !rep.OK || rep.Entries != 0 {
				t.Fatalf("report %+v, %v; want OK with 0 entries", rep, err)
			}
		})

		if !b.pg() {
			return
		}
		t.Run("not an audit store", func(t *testing.T) {
			url := b.target(t)
			_, err := VerifyFile(ctx, url)
			wantCode(t, err, sluice.EInvalid)
			// Verification must not have created the tables.
			if ok, err := b.d.TableExists(ctx, rawDB(t, url), "audit_head"); err != nil || ok {
				t.Fatalf("audit_head exists after VerifyFile: %v %v", ok, err)
			}
		})
		t.Run("read-only", func(t *testing.T) {
			_, url := b.newLog(t)
			db, err := openDB(url, options{readOnly: true}, true)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`INSERT INTO audit_meta (key, value) VALUES ('x', 'y')`); err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Fatalf("a write through the verifier's handle: %v; want a read-only refusal", err)
			}
		})
	})
}

func mustVerify(t testing.TB, l *Log, entries int64) *VerifyReport {
	t.Helper()
	rep, err := l.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK || rep.Entries != entries || rep.FirstBad != 0 {
		t.Fatalf("Verify = %+v; want OK over %d entries", rep, entries)
	}
	return rep
}

func TestVerifyCleanChain(t *testing.T) { eachBackend(t, testVerifyCleanChain) }

func testVerifyCleanChain(t *testing.T, b backend) {
	l, _ := b.newLog(t)
	written := appendN(t, l, 1000)
	start := time.Now()
	rep := mustVerify(t, l, 1000)
	t.Logf("verified 1000 entries in %v", time.Since(start))
	if rep.Head != written[999].Hash {
		t.Fatalf("head %s; want %s", rep.Head, written[999].Hash)
	}
}

func BenchmarkAppend(b *testing.B) {
	l, _ := newTestLog(b)
	ctx := context.Background()
	tmpl := sample(0)
	n := 0
	for b.Loop() {
		e := *tmpl
		if err := l.Append(ctx, &e); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendPostgres is BenchmarkAppendParallel on PostgreSQL.
func BenchmarkAppendPostgres(b *testing.B) {
	l, _ := postgresBackend.newLog(b)
	ctx := context.Background()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(ctx, sample(0)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

func BenchmarkAppendParallel(b *testing.B) {
	l, _ := newTestLog(b)
	ctx := context.Background()
	b.SetParallelism(4) // 4×GOMAXPROCS goroutines, as a busy broker would have
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(ctx, sample(0)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

func BenchmarkVerify(b *testing.B) {
	l, _ := newTestLog(b)
	appendN(b, l, 2000)
	n := 0
	for b.Loop() {
		rep, err := l.Verify(context.Background())
		if err != nil || !rep.OK {
			b.Fatal(rep, err)
		}
		n++
	}
	b.ReportMetric(float64(n)*2000/b.Elapsed().Seconds(), "entries/s")
}

func TestStoreSettings(t *testing.T) {
	ctx := context.Background()
	// Characters that mean something in a URI must still name the file.
	dir := filepath.Join(t.TempDir(), "audit 50% #1?")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "broker.db")
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 1)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("store not created at %s: %v", path, err)
	}
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "5000"},
	}
	for _, tc := range tests {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			if err := l.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("PRAGMA %s = %s; want %s", tc.pragma, got, tc.want)
			}
		})
	}
	if rep, err := VerifyFile(ctx, path); err != nil || !rep.OK {
		t.Fatalf("VerifyFile = %+v, %v", rep, err)
	}
}

// TestStoreSettingsPostgres: the busy timeout becomes lock_timeout, and a
// setting given in the URL wins.
func TestStoreSettingsPostgres(t *testing.T) {
	ctx := context.Background()
	url := postgresBackend.target(t)
	tests := []struct {
		name, url, setting, want string
		opts                     []Option
	}{
		{"default busy timeout", url, "lock_timeout", "5s", nil},
		{"WithBusyTimeout", url, "lock_timeout", "250ms", []Option{WithBusyTimeout(250 * time.Millisecond)}},
		{"lock_timeout in the URL", url + "&lock_timeout=1500", "lock_timeout", "1500ms", nil},
		{"application name", url, "application_name", "sluice", nil},
		{"schema from the URL", url, "search_path", dbtest.SchemaOf(url), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Open(ctx, tc.url, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var got string
			if err := l.db.QueryRowContext(ctx, "SHOW "+tc.setting).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("SHOW %s = %s; want %s", tc.setting, got, tc.want)
			}
		})
	}
}
