//go:build duckdb_arrow

package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The benchmarks compare, on the same data and in the same run, the
// engine's path (Arrow batches built in Go, Register, Query, read every
// batch, all in a fresh session) with standalone DuckDB through
// database/sql on tables created once outside the timed loop. Both use 2
// threads and a 1 GiB memory limit.
//
//	go test -tags duckdb_arrow -run xxx -bench . ./sandbox/engine/
//
// Sub-benchmarks: duckdb (standalone), engine (the whole path: session,
// registering the inputs, which the query reads in place, query, reading,
// closing), engine-materialize (the same, the inputs copied into tables
// first) and engine-query (the query and reading alone, inputs already
// copied in). The engine ones report x-duckdb, their time per operation
// over standalone DuckDB's (its last run).

const benchRows = 1_000_000

// benchTable is an input held as Arrow batches, with the SQL creating the
// same rows in a standalone database.
type benchTable struct {
	name   string
	schema *arrow.Schema
	recs   []arrow.RecordBatch
	create string
}

func (bt *benchTable) reader(b testing.TB) array.RecordReader {
	r, err := array.NewRecordReader(bt.schema, bt.recs)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

var benchTables = sync.OnceValue(func() map[string]*benchTable {
	mem := memory.DefaultAllocator
	const n = benchRows
	out := map[string]*benchTable{}
	add := func(name, create string, cols ...column) {
		schema, recs := makeRecords(mem, n, 1<<16, cols...)
		out[name] = &benchTable{name: name, schema: schema, recs: recs, create: create}
	}
	// Keys of r are a permutation of l's: every row matches once.
	add("l", "CREATE TABLE l AS SELECT range AS k, range * 3 AS a FROM range(1000000)",
		int64Col("k", func(i int) int64 { return int64(i) }),
		int64Col("a", func(i int) int64 { return int64(i) * 3 }))
	add("r", "CREATE TABLE r AS SELECT (range * 7919) % 1000000 AS k, range AS b FROM range(1000000)",
		int64Col("k", func(i int) int64 { return int64(i*7919) % n }),
		int64Col("b", func(i int) int64 { return int64(i) }))
	add("g", "CREATE TABLE g AS SELECT range % 1000 AS grp, range AS v FROM range(1000000)",
		int64Col("grp", func(i int) int64 { return int64(i % 1000) }),
		int64Col("v", func(i int) int64 { return int64(i) }))
	return out
})

const (
	benchJoinSQL  = "SELECT count(*) AS n, sum(l.a + r.b) AS total FROM l JOIN r ON l.k = r.k"
	benchGroupSQL = "SELECT grp, count(*) AS n, sum(v) AS total FROM g GROUP BY grp"
)

func BenchmarkJoin(b *testing.B) {
	benchCompare(b, benchJoinSQL, 1, "l", "r")
}

func BenchmarkGroupBy(b *testing.B) {
	benchCompare(b, benchGroupSQL, 1000, "g")
}

// BenchmarkSession is the fixed cost of a session without a query:
// Engine.Session and Session.Close back to back, each session taking the
// database the one before it left in the pool (a fresh connection to it,
// and the check before it goes back). It also reports open-ns/op, the
// cost of a database that is not reused (open, lockdown, close), over 10
// samples.
func BenchmarkSession(b *testing.B) {
	e := openEngine(b, Limits{})
	var open time.Duration
	const samples = 10
	for range samples {
		start := time.Now()
		d, err := e.openDB(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		d.close()
		open += time.Since(start)
	}
	for b.Loop() {
		s, err := e.Session(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(open.Nanoseconds())/samples, "open-ns/op")
}

func benchCompare(b *testing.B, query string, wantRows int, tables ...string) {
	data := benchTables()
	var duckNs float64

	b.Run("duckdb", func(b *testing.B) {
		db, err := sql.Open("duckdb", "?threads=2&memory_limit=1GiB")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for _, t := range tables {
			if _, err := db.Exec(data[t].create); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for b.Loop() {
			rows, err := db.QueryContext(context.Background(), query)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			cols, err := rows.Columns()
			if err != nil {
				b.Fatal(err)
			}
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if err := rows.Err(); err != nil || n != wantRows {
				b.Fatalf("%d rows, %v", n, err)
			}
			rows.Close()
		}
		duckNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})

	e := openEngine(b, Limits{Memory: 1 << 30, Threads: 2})
	readResult := func(b *testing.B, s *Session) {
		r, err := s.Query(context.Background(), query)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for r.Next() {
			n += int(r.RecordBatch().NumRows())
		}
		if err := r.Err(); err != nil || n != wantRows {
			b.Fatalf("%d rows, %v", n, err)
		}
		r.Release()
	}
	ratio := func(b *testing.B) {
		if duckNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/duckNs, "x-duckdb")
		}
	}

	b.Run("engine", func(b *testing.B) {
		for b.Loop() {
			s, err := e.Session(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			for _, t := range tables {
				if err := s.Register(t, data[t].reader(b)); err != nil {
					b.Fatal(err)
				}
			}
			readResult(b, s)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
		ratio(b)
	})

	// The same with the inputs copied into tables (Materialize) instead of
	// read in place: DuckDB then has the tables' statistics, which a
	// stream lacks (a perfect hash join or aggregate on dense integer
	// keys), at the cost of the copy.
	b.Run("engine-materialize", func(b *testing.B) {
		for b.Loop() {
			s, err := e.Session(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			for _, t := range tables {
				if err := s.Materialize(context.Background(), t, data[t].reader(b)); err != nil {
					b.Fatal(err)
				}
			}
			readResult(b, s)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
		ratio(b)
	})

	b.Run("engine-query", func(b *testing.B) {
		s, err := e.Session(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for _, t := range tables {
			if err := s.Materialize(context.Background(), t, data[t].reader(b)); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for b.Loop() {
			readResult(b, s)
		}
		ratio(b)
	})
}

// smallTables are the inputs of BenchmarkSmallQuery: two departments'
// slices of 5,000 rows each, like the tour's cross-department query.
var smallTables = sync.OnceValue(func() map[string]*benchTable {
	mem := memory.DefaultAllocator
	const n = 5000
	out := map[string]*benchTable{}
	add := func(name string, cols ...column) {
		schema, recs := makeRecords(mem, n, 1<<16, cols...)
		out[name] = &benchTable{name: name, schema: schema, recs: recs}
	}
	add("hr",
		int64Col("id", func(i int) int64 { return int64(i) }),
		stringCol("region", func(i int) string { return []string{"north", "south", "east", "west"}[i%4] }))
	add("pay",
		int64Col("person", func(i int) int64 { return int64(i*7) % n }),
		int64Col("amount", func(i int) int64 { return int64(i) }))
	return out
})

const smallSQL = `SELECT h.region, count(*) AS n, sum(p.amount) AS total
	FROM hr h JOIN pay p ON p.person = h.id
	WHERE p.amount >= $1
	GROUP BY h.region ORDER BY h.region`

// BenchmarkSmallQuery is the engine's fixed cost as an analyst sees it:
// back to back, a session, two registered inputs of 5,000 rows, a join
// with a GROUP BY, reading the result, closing. It reports the median
// (p50-ns/op) and 90th percentile (p90-ns/op) of the iterations too.
func BenchmarkSmallQuery(b *testing.B) {
	data := smallTables()
	e := openEngine(b, Limits{Memory: 1 << 30, Threads: 2})
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		s, err := e.Session(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range []string{"hr", "pay"} {
			if err := s.Register(t, data[t].reader(b)); err != nil {
				b.Fatal(err)
			}
		}
		r, err := s.Query(context.Background(), smallSQL, int64(10))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for r.Next() {
			n += int(r.RecordBatch().NumRows())
		}
		if err := r.Err(); err != nil || n != 4 {
			b.Fatalf("%d rows, %v", n, err)
		}
		r.Release()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	reportPercentiles(b, times)
}

func reportPercentiles(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns/op")
	b.ReportMetric(float64(times[len(times)*9/10].Nanoseconds()), "p90-ns/op")
}

// genReader generates n rows of two int64 columns, key(i) and val(i), in
// batches of 64Ki rows as it is read: the input of
// BenchmarkJoin10Mx10MSpill, never whole in memory.
type genReader struct {
	schema   *arrow.Schema
	n, next  int
	key, val func(i int) int64
	cur      arrow.RecordBatch
	refs     int64
}

func newGenReader(n int, key, val string, kf, vf func(i int) int64) *genReader {
	schema := arrow.NewSchema([]arrow.Field{{Name: key, Type: arrow.PrimitiveTypes.Int64}, {Name: val, Type: arrow.PrimitiveTypes.Int64}}, nil)
	return &genReader{schema: schema, n: n, key: kf, val: vf, refs: 1}
}

func (g *genReader) Schema() *arrow.Schema { return g.schema }

func (g *genReader) Next() bool {
	if g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
	if g.next >= g.n {
		return false
	}
	hi := min(g.next+1<<16, g.n)
	m := hi - g.next
	ks, vs := make([]int64, m), make([]int64, m)
	for i := range m {
		ks[i], vs[i] = g.key(g.next+i), g.val(g.next+i)
	}
	col := func(v []int64) arrow.Array {
		d := array.NewData(arrow.PrimitiveTypes.Int64, m, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(v))}, nil, 0, 0)
		defer d.Release()
		return array.NewInt64Data(d)
	}
	k, v := col(ks), col(vs)
	g.cur = array.NewRecordBatch(g.schema, []arrow.Array{k, v}, int64(m))
	k.Release()
	v.Release()
	g.next = hi
	return true
}

func (g *genReader) RecordBatch() arrow.RecordBatch { return g.cur }
func (g *genReader) Record() arrow.RecordBatch      { return g.cur }
func (g *genReader) Err() error                     { return nil }
func (g *genReader) Retain()                        { g.refs++ }
func (g *genReader) Release() {
	if g.refs--; g.refs == 0 && g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
}

const spillChildEnv = "SLUICE_SPILL_CHILD"

// BenchmarkJoin10Mx10MSpill joins 10M x 10M rows (an int64 key and an
// int64 payload on each side, COUNT and SUM over the join) in the engine
// alone, with Memory = 512 MiB, in a child process (the test binary again,
// running TestJoin10Mx10MSpillChild), so that its peak RSS is the join's
// and not the history of this process. Sub-benchmarks: register (both
// inputs registered, read in place: the join's hash table fits in the
// limit), materialize (both copied into tables first, 320 MB of them, so
// that the join spills), and register-256MiB (read in place, with Memory =
// 256 MiB, so that the join spills). It reports the
// child's peak RSS (rusage maxrss, and VmHWM as the child reads it; and
// its RSS before the session, with the engine open, for reference), the
// spill directory's peak size (sampled every 10ms) and the query's time
// (Session to Close, in seconds), besides ns/op for the whole child. Run
// it alone, once:
//
//	go test -tags duckdb_arrow -run xxx -bench Join10Mx10MSpill -benchtime 1x ./sandbox/engine/
func BenchmarkJoin10Mx10MSpill(b *testing.B) {
	for _, mode := range []string{"register", "materialize", "register-256MiB"} {
		b.Run(mode, func(b *testing.B) {
			var rss, spill, query, hwm, base float64
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestJoin10Mx10MSpillChild$", "-test.v", "-test.count=1")
				cmd.Env = append(os.Environ(), spillChildEnv+"="+mode)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var q, sp, hw, br int64
				found := false
				for _, line := range strings.Split(string(out), "\n") {
					if i := strings.Index(line, "SPILL-RESULT "); i >= 0 {
						if _, err := fmt.Sscanf(line[i:], "SPILL-RESULT query_ns=%d spill_peak=%d vmhwm=%d base_rss=%d", &q, &sp, &hw, &br); err != nil {
							b.Fatalf("%q: %v", line, err)
						}
						found = true
					}
				}
				if !found {
					b.Fatalf("no result from the child:\n%s", out)
				}
				ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				if !ok {
					b.Fatal("no rusage")
				}
				rss = max(rss, float64(ru.Maxrss)*1024/MiB) // Maxrss is in KiB on Linux
				spill = max(spill, float64(sp)/MiB)
				hwm = max(hwm, float64(hw)/MiB)
				base = max(base, float64(br)/MiB)
				query += float64(q)
			}
			b.ReportMetric(rss, "peak-RSS-MiB")
			b.ReportMetric(hwm, "VmHWM-MiB")
			b.ReportMetric(base, "RSS-before-MiB")
			b.ReportMetric(spill, "peak-spill-MiB")
			b.ReportMetric(query/float64(b.N)/1e9, "query-s")
		})
	}
}

// TestJoin10Mx10MSpillChild is BenchmarkJoin10Mx10MSpill's child; it runs
// only there.
func TestJoin10Mx10MSpillChild(t *testing.T) {
	mode := os.Getenv(spillChildEnv)
	if mode == "" {
		t.Skip("runs in BenchmarkJoin10Mx10MSpill's child process")
	}
	const n = 10_000_000
	lim := Limits{Memory: 512 * MiB, Threads: 2}
	if mode == "register-256MiB" {
		lim.Memory = 256 * MiB
	}
	e := openEngine(t, lim)
	base := vmRSS(t)
	start := time.Now()
	s, err := e.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, _ := dirBytes(s.dir); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	l := newGenReader(n, "k", "a", func(i int) int64 { return int64(i) }, func(i int) int64 { return 3 * int64(i) })
	r := newGenReader(n, "k", "b", func(i int) int64 { return int64(i) * 7919 % n }, func(i int) int64 { return int64(i) })
	for name, in := range map[string]array.RecordReader{"l": l, "r": r} {
		if mode == "materialize" {
			err = s.Materialize(context.Background(), name, in)
		} else {
			err = s.Register(name, in)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	_, rows := readAll(t, must(t)(s.Query(context.Background(), benchJoinSQL)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	close(stop)
	<-sampled
	if want := fmt.Sprint([]any{int64(n), strconv.FormatInt(2*n*(n-1), 10)}); fmt.Sprint(rows) != "["+want+"]" {
		t.Fatalf("got %v, want [%s]", rows, want)
	}
	t.Logf("%s: %v, spilled at most %d MiB", mode, took, peak.Load()>>20)
	fmt.Printf("SPILL-RESULT query_ns=%d spill_peak=%d vmhwm=%d base_rss=%d\n", took.Nanoseconds(), peak.Load(), vmHWM(t), base)
}

// vmHWM is the peak resident set size of this process.
func vmHWM(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
