//go:build duckdb_arrow

package sandbox

// The sandbox's benchmarks: a 1,000,000 × 1,000,000-row join and a
// 1,000,000-row GROUP BY, on the data the hand-written operators were
// measured on, side by side in the same run:
//
//   - engine: the broker's path (engine path, path_test.go) in a fresh
//     session: the inputs registered from Arrow batches and copied in,
//     the plan rendered and run, every result batch read and conformed;
//   - duckdb: standalone DuckDB through database/sql (sql.Open("duckdb",
//     "")) with the same threads and memory limit, the data already in
//     tables, a plain SQL query, every row scanned;
//   - duckdb-rendered: the same database running the rendered SQL (what
//     the renderer's casts and checks cost).
//
// engine and duckdb-rendered report x-duckdb, their time per operation
// over standalone DuckDB's; all report rows/s (input rows).
//
//	go test -tags duckdb_arrow -run xxx -bench . -benchtime 3x ./sandbox/

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

const benchRows = 1_000_000

// benchInput generates n rows: key = perm(i) + shift, where perm is a
// bijection of [0, n), then an int64 and a float64 payload (i, i/2). With
// binKeys the key is the 32-byte SHA-256 of that number (big-endian),
// standing in for a blinded PSI key.
func benchInput(n int, shift int64, binKeys bool) input {
	mem := memory.DefaultAllocator
	kt := arrow.DataType(arrow.PrimitiveTypes.Int64)
	if binKeys {
		kt = arrow.BinaryTypes.Binary
	}
	sc := schemaOf(col{"k", kt}, col{"a", arrow.PrimitiveTypes.Int64}, col{"b", arrow.PrimitiveTypes.Float64})
	const prime = 999983 // coprime with 1,000,000: i*prime mod n is a bijection
	keyOf := func(i int) int64 { return int64((uint64(i)*prime)%uint64(n)) + shift }
	in := input{schema: sc}
	const batch = 1 << 16
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		b := array.NewRecordBuilder(mem, sc)
		if binKeys {
			kb := b.Field(0).(*array.BinaryBuilder)
			kb.Reserve(hi - lo)
			kb.ReserveData(32 * (hi - lo))
			var buf [8]byte
			for i := lo; i < hi; i++ {
				binary.BigEndian.PutUint64(buf[:], uint64(keyOf(i)))
				h := sha256.Sum256(buf[:])
				kb.Append(h[:])
			}
		} else {
			kb := b.Field(0).(*array.Int64Builder)
			kb.Reserve(hi - lo)
			for i := lo; i < hi; i++ {
				kb.UnsafeAppend(keyOf(i))
			}
		}
		ab := b.Field(1).(*array.Int64Builder)
		fb := b.Field(2).(*array.Float64Builder)
		ab.Reserve(hi - lo)
		fb.Reserve(hi - lo)
		for i := lo; i < hi; i++ {
			ab.UnsafeAppend(int64(i))
			fb.UnsafeAppend(float64(i) * 0.5)
		}
		in.recs = append(in.recs, b.NewRecord())
		b.Release()
	}
	return in
}

// benchInputs are the inputs, made once per binary: left (keys 0..n-1),
// right (keys n/2..3n/2-1: half of them meet the left's), for int64 and
// binary keys.
var benchInputs = sync.OnceValue(func() map[string]input {
	return map[string]input{
		"l":     benchInput(benchRows, 0, false),
		"r":     benchInput(benchRows, benchRows/2, false),
		"l_bin": benchInput(benchRows, 0, true),
		"r_bin": benchInput(benchRows, benchRows/2, true),
	}
})

// benchCase is one benchmark: the plan over fragments 0, 1, ... (the named
// inputs), the same query in plain SQL over tables named after the
// inputs, and the number of rows each gives.
type benchCase struct {
	inputs []string
	plan   *planner.Node
	sql    string
	rows   int
}

func benchCompare(b *testing.B, bc benchCase) {
	data := benchInputs()
	inRows := len(bc.inputs) * benchRows
	lim := engine.Limits{Memory: 2 * engine.GiB, Threads: 2}
	var duckNs float64
	rate := func(b *testing.B) {
		b.ReportMetric(float64(inRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}
	ratio := func(b *testing.B) {
		if duckNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/duckNs, "x-duckdb")
		}
	}

	// Standalone DuckDB, the inputs copied into tables once.
	db, err := sql.Open("duckdb", "?threads=2&memory_limit=2GiB")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rels := make([]planner.DuckDBRelation, len(bc.inputs))
	for k, name := range bc.inputs {
		in := data[name]
		cols, err := DuckDBColumns(in.schema)
		if err != nil {
			b.Fatal(err)
		}
		rels[k] = planner.DuckDBRelation{View: name, Columns: cols}
		err = conn.Raw(func(dc any) error {
			ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
			if err != nil {
				return err
			}
			rdr, err := array.NewRecordReader(in.schema, in.recs)
			if err != nil {
				return err
			}
			defer rdr.Release()
			release, err := ar.RegisterView(rdr, "bench_view")
			if err != nil {
				return err
			}
			defer release()
			_, err = dc.(driver.ExecerContext).ExecContext(context.Background(), `CREATE TABLE "`+name+`" AS SELECT * FROM bench_view`, nil)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	scanAll := func(b *testing.B, query string, args ...any) {
		rows, err := conn.QueryContext(context.Background(), query, args...)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			b.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for k := range vals {
			ptrs[k] = &vals[k]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := rows.Err(); err != nil || n != bc.rows {
			b.Fatalf("%d rows, want %d: %v", n, bc.rows, err)
		}
	}
	b.Run("duckdb", func(b *testing.B) {
		for b.Loop() {
			scanAll(b, bc.sql)
		}
		duckNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		rate(b)
	})
	b.Run("duckdb-rendered", func(b *testing.B) {
		q, err := planner.RenderDuckDB(bc.plan, planner.DuckDBOptions{Leaf: func(n *planner.Node) (planner.DuckDBRelation, bool) {
			if n.Op == planner.OpFragment {
				return rels[n.Fragment], true
			}
			return planner.DuckDBRelation{}, false
		}})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			scanAll(b, q.SQL, q.Args...)
		}
		rate(b)
		ratio(b)
	})

	e := openEngine(b, lim)
	b.Run("engine", func(b *testing.B) {
		for b.Loop() {
			inputs := make([]input, len(bc.inputs))
			for k, name := range bc.inputs {
				inputs[k] = data[name]
			}
			p := openPath(b, e, memory.DefaultAllocator, inputs...)
			_, _, recs, err := p.query(context.Background(), bc.plan, pathOpts{})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, r := range recs {
				n += int(r.NumRows())
			}
			releaseRecords(recs)
			if n != bc.rows {
				b.Fatalf("%d rows, want %d", n, bc.rows)
			}
			if err := p.sess.Close(); err != nil {
				b.Fatal(err)
			}
		}
		rate(b)
		ratio(b)
	})
}

func benchJoin(b *testing.B, l, r string) {
	benchCompare(b, benchCase{
		inputs: []string{l, r},
		plan:   nJoin(planner.JoinInner, nFrag(0), nFrag(1), nil, "k", "k"),
		sql: `SELECT l.k, l.a, l.b, r.k AS right_k, r.a AS right_a, r.b AS right_b
			FROM "` + l + `" l JOIN "` + r + `" r ON l.k = r.k`,
		rows: benchRows / 2,
	})
}

// BenchmarkHashJoin1Mx1M joins two 1,000,000-row inputs on an int64 key
// (half of the keys meet) with two payload columns each, and reads the
// 500,000 joined rows.
func BenchmarkHashJoin1Mx1M(b *testing.B) { benchJoin(b, "l", "r") }

// BenchmarkHashJoin1Mx1MBinaryKeys is the same join on 32-byte binary keys,
// the shape of a PSI join on blinded identifiers.
func BenchmarkHashJoin1Mx1MBinaryKeys(b *testing.B) { benchJoin(b, "l_bin", "r_bin") }

// BenchmarkGroupBy1M groups 1,000,000 rows into 1,000 groups (k mod 1000)
// with COUNT, SUM and AVG.
func BenchmarkGroupBy1M(b *testing.B) {
	benchCompare(b, benchCase{
		inputs: []string{"l"},
		plan: nAgg(nProject(nFrag(0), "g", bin(c("k"), "%", i(1000)), "a", c("a"), "b", c("b")), []string{"g"},
			"count_star", "", "n", "sum", "a", "sum_a", "avg", "b", "avg_b"),
		sql:  `SELECT k % 1000 AS g, count(*) AS n, sum(a) AS sum_a, avg(b) AS avg_b FROM l GROUP BY g`,
		rows: 1000,
	})
}
