package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-gov/sluice/planner"
)

// benchSource generates n rows lazily, in BatchSize batches allocated from
// the query budget (as an agent stream read with q.Allocator() would be):
// key = perm(i) + shift where perm is a bijection of [0, n), then an int64
// and a float64 payload. With binKeys the key is the 32-byte SHA-256 of
// that number, standing in for a blinded PSI key.
type benchSource struct {
	q       *Query
	n, next int
	shift   int64
	binKeys bool
	schema  *arrow.Schema
}

func newBenchSource(q *Query, n int, shift int64, binKeys bool) *benchSource {
	kt := arrow.DataType(arrow.PrimitiveTypes.Int64)
	if binKeys {
		kt = arrow.BinaryTypes.Binary
	}
	return &benchSource{q: q, n: n, shift: shift, binKeys: binKeys, schema: schemaOf(
		col{"k", kt}, col{"a", arrow.PrimitiveTypes.Int64}, col{"b", arrow.PrimitiveTypes.Float64})}
}

func (s *benchSource) Schema() *arrow.Schema { return s.schema }
func (s *benchSource) Close()                {}

func (s *benchSource) Next(ctx context.Context) (arrow.Record, error) {
	if err := s.q.Check(ctx); err != nil {
		return nil, err
	}
	if s.next >= s.n {
		return nil, io.EOF
	}
	k := min(s.q.BatchSize(), s.n-s.next)
	mem := s.q.Allocator()
	ab := array.NewInt64Builder(mem)
	bb := array.NewFloat64Builder(mem)
	defer ab.Release()
	defer bb.Release()
	ab.Reserve(k)
	bb.Reserve(k)
	var key arrow.Array
	const prime = 999983 // coprime with 1,000,000: i*prime mod n is a bijection
	keyOf := func(i int) int64 { return int64((uint64(i)*prime)%uint64(s.n)) + s.shift }
	if s.binKeys {
		kb := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		kb.Reserve(k)
		kb.ReserveData(32 * k)
		var buf [8]byte
		for r := 0; r < k; r++ {
			binary.BigEndian.PutUint64(buf[:], uint64(keyOf(s.next+r)))
			h := sha256.Sum256(buf[:])
			kb.Append(h[:])
		}
		key = kb.NewArray()
		kb.Release()
	} else {
		kb := array.NewInt64Builder(mem)
		kb.Reserve(k)
		for r := 0; r < k; r++ {
			kb.UnsafeAppend(keyOf(s.next + r))
		}
		key = kb.NewArray()
		kb.Release()
	}
	for r := 0; r < k; r++ {
		i := s.next + r
		ab.UnsafeAppend(int64(i))
		bb.UnsafeAppend(float64(i) * 0.5)
	}
	a, b := ab.NewArray(), bb.NewArray()
	defer key.Release()
	defer a.Release()
	defer b.Release()
	s.next += k
	return array.NewRecord(s.schema, []arrow.Array{key, a, b}, int64(k)), nil
}

// drainCount pulls op to the end, releasing batches, and counts rows.
func drainCount(b *testing.B, op Operator) int64 {
	defer op.Close()
	var n int64
	for {
		r, err := op.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n += r.NumRows()
		r.Release()
	}
}

func benchJoin(b *testing.B, binKeys bool) {
	const n = 1_000_000
	var peak int64
	var out int64
	start := time.Now()
	for it := 0; it < b.N; it++ {
		q := NewQuery(Limits{Memory: 2048 * MiB}, nil)
		left := newBenchSource(q, n, 0, binKeys)
		right := newBenchSource(q, n, n/2, binKeys)
		op, err := q.HashJoin(left, right, []string{"k"}, []string{"k"}, InnerJoin, JoinOptions{})
		if err != nil {
			b.Fatal(err)
		}
		out = drainCount(b, op)
		peak = max(peak, q.Budget().Peak())
	}
	el := time.Since(start).Seconds()
	if out != n/2 {
		b.Fatalf("join produced %d rows, want %d", out, n/2)
	}
	b.ReportMetric(float64(2*n*b.N)/el, "rows/s")
	b.ReportMetric(float64(peak)/MiB, "peak-MiB")
	b.ReportMetric(float64(out), "out-rows")
}

// BenchmarkHashJoin1Mx1M joins two 1,000,000-row inputs on an int64 key
// (half of the keys overlap) with two payload columns each.
func BenchmarkHashJoin1Mx1M(b *testing.B) { benchJoin(b, false) }

// BenchmarkHashJoin1Mx1MBinaryKeys is the same join on 32-byte binary keys,
// the shape of a PSI join on blinded identifiers.
func BenchmarkHashJoin1Mx1MBinaryKeys(b *testing.B) { benchJoin(b, true) }

// BenchmarkGroupBy1M groups 1,000,000 rows into 1,000 groups with COUNT,
// SUM and AVG.
func BenchmarkGroupBy1M(b *testing.B) {
	const n = 1_000_000
	var peak int64
	var groups int64
	start := time.Now()
	for it := 0; it < b.N; it++ {
		q := NewQuery(Limits{Memory: 2048 * MiB}, nil)
		src := newBenchSource(q, n, 0, false)
		// k mod 1000 as the group key.
		p, err := q.Project(src, []planner.SelectItem{
			{Expr: bin(c("k"), "%", i(1000)), Alias: "g"},
			{Expr: c("a"), Alias: "a"},
			{Expr: c("b"), Alias: "b"},
		})
		if err != nil {
			b.Fatal(err)
		}
		op, err := q.HashAggregate(p, []string{"g"}, []Agg{
			{Func: AggCountStar, Alias: "n"},
			{Func: AggSum, Column: "a", Alias: "sum_a"},
			{Func: AggAvg, Column: "b", Alias: "avg_b"},
		})
		if err != nil {
			b.Fatal(err)
		}
		groups = drainCount(b, op)
		peak = max(peak, q.Budget().Peak())
	}
	el := time.Since(start).Seconds()
	if groups != 1000 {
		b.Fatalf("%d groups, want 1000", groups)
	}
	b.ReportMetric(float64(n*b.N)/el, "rows/s")
	b.ReportMetric(float64(peak)/MiB, "peak-MiB")
}
