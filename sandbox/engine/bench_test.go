//go:build duckdb_arrow

package engine

import (
	"context"
	"database/sql"
	"sync"
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
// copying the inputs in, query, reading, closing) and engine-query (the
// query and reading alone, inputs already copied in). The engine ones
// report x-duckdb, their time per operation over standalone DuckDB's.

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

// BenchmarkSession is the fixed cost of a session: opening and closing
// sessions one after the other, faster than the spare is reopened, which
// is the cost of a database (open, lockdown, close) on a busy broker. It
// also reports warm-ns/op, the latency of Engine.Session when the spare is
// ready (a broker with time between queries), over 10 samples.
func BenchmarkSession(b *testing.B) {
	e := openEngine(b, Limits{})
	var warm time.Duration
	const samples = 10
	for range samples {
		waitSpare(b, e)
		start := time.Now()
		s, err := e.Session(context.Background())
		warm += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
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
	b.ReportMetric(float64(warm.Nanoseconds())/samples, "warm-ns/op")
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
