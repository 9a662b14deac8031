package gate

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// sliceStream replays records; it releases what it still holds on drain.
type sliceStream struct {
	schema *arrow.Schema
	recs   []arrow.Record
	err    error // returned instead of io.EOF at the end, if set
}

func (s *sliceStream) Schema() *arrow.Schema { return s.schema }

func (s *sliceStream) Next(ctx context.Context) (arrow.Record, error) {
	if len(s.recs) == 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, nil
}

func (s *sliceStream) release() {
	for _, r := range s.recs {
		r.Release()
	}
	s.recs = nil
}

var groupSchema = arrow.NewSchema([]arrow.Field{
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	{Name: "total", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "__rows", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

type groupRow struct {
	district string
	n        int64
	total    float64
	rows     int64
	nullRows bool
}

func groupBatch(mem memory.Allocator, rows ...groupRow) arrow.Record {
	b := array.NewRecordBuilder(mem, groupSchema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.district)
		b.Field(1).(*array.Int64Builder).Append(r.n)
		b.Field(2).(*array.Float64Builder).Append(r.total)
		if r.nullRows {
			b.Field(3).(*array.Int64Builder).AppendNull()
		} else {
			b.Field(3).(*array.Int64Builder).Append(r.rows)
		}
	}
	return b.NewRecord()
}

// drain reads g to the end, returning the released rows' columns by name.
func drain(t *testing.T, g *Gate) (map[string][]any, error) {
	t.Helper()
	out := map[string][]any{}
	for {
		rec, err := g.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if rec.NumRows() == 0 {
			t.Errorf("the gate released an empty batch")
		}
		if !rec.Schema().Equal(g.Schema()) {
			t.Errorf("batch schema %s, gate schema %s", rec.Schema(), g.Schema())
		}
		for i, f := range rec.Schema().Fields() {
			c := rec.Column(i)
			for r := range c.Len() {
				if c.IsNull(r) {
					out[f.Name] = append(out[f.Name], nil)
					continue
				}
				out[f.Name] = append(out[f.Name], c.GetOneForMarshal(r))
			}
		}
		rec.Release()
	}
}

func code(err error) string { return sluice.ErrorCode(err) }

func TestSuppressionExactAndRowCountRemoved(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(mem,
			groupRow{"城东区", 12, 1.5, 12, false},
			groupRow{"城中区", 3, 2.5, 3, false},   // under k
			groupRow{"城西区", 10, 3.5, 10, false}, // exactly k
			groupRow{"城北区", 9, 4.5, 9, false},   // under k
			groupRow{"湟中区", 50, 5.5, 0, true},   // null count: fail closed
		),
		groupBatch(mem, groupRow{"a", 1, 0, 1, false}, groupRow{"b", 2, 0, 2, false}), // all suppressed
		groupBatch(mem, groupRow{"c", 11, 7, 11, false}, groupRow{"d", -5, 7, -5, false}),
	}}
	defer in.release()
	g, err := New(in, Obligations{AggregateOnly: true, K: 10, RowCountColumn: "__rows"}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range g.Schema().Fields() {
		names = append(names, f.Name)
	}
	if want := []string{"district", "n", "total"}; !slices.Equal(names, want) {
		t.Fatalf("released schema %v, want %v", names, want)
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["__rows"]; ok {
		t.Fatal("the row-count column was released")
	}
	if want := []any{"城东区", "城西区", "c"}; !slices.Equal(got["district"], want) {
		t.Fatalf("districts %v, want %v", got["district"], want)
	}
	if want := []any{int64(12), int64(10), int64(11)}; !slices.Equal(got["n"], want) {
		t.Fatalf("n %v, want %v", got["n"], want)
	}
	if want := []any{1.5, 3.5, 7.0}; !slices.Equal(got["total"], want) {
		t.Fatalf("total %v, want %v", got["total"], want)
	}
	rep := g.Report()
	if rep != (Report{Rows: 3, SuppressedGroups: 6}) {
		t.Fatalf("report %+v, want 3 rows, 6 suppressed, no noise", rep)
	}
	// After EOF the gate keeps saying EOF.
	if _, err := g.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after EOF: %v", err)
	}
}

func TestAggregateOnlyWithKZeroSuppressesEmptyGroups(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(mem, groupRow{"empty", 0, 0, 0, false}, groupRow{"one", 1, 0, 1, false}),
	}}
	defer in.release()
	g, err := New(in, Obligations{AggregateOnly: true, RowCountColumn: "__rows"}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"one"}; !slices.Equal(got["district"], want) {
		t.Fatalf("districts %v, want %v", got["district"], want)
	}
	if g.Report().SuppressedGroups != 1 {
		t.Fatalf("report %+v", g.Report())
	}
}

func TestRowCountColumnDroppedWithoutK(t *testing.T) {
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(memory.DefaultAllocator, groupRow{"x", 1, 1, 1, false}),
	}}
	g, err := New(in, Obligations{RowCountColumn: "__rows"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Schema().NumFields() != 3 || len(g.Schema().FieldIndices("__rows")) != 0 {
		t.Fatalf("schema %s", g.Schema())
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(got["district"]) != 1 || g.Report().SuppressedGroups != 0 {
		t.Fatalf("got %v, report %+v", got, g.Report())
	}
}

// TestNoRowUnderKPasses feeds random batches (random sizes, counts, nulls,
// count column types and k) and checks that exactly the rows with at least
// k source rows come out, in order, and the suppressed count is exact.
func TestNoRowUnderKPasses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []arrow.DataType{arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64, arrow.PrimitiveTypes.Int8}
	for iter := range 300 {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		ct := types[iter%len(types)]
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "__rows", Type: ct, Nullable: true},
			{Name: "id", Type: arrow.PrimitiveTypes.Int64},
			{Name: "label", Type: arrow.BinaryTypes.String, Nullable: true},
		}, nil)
		k := rng.IntN(30)
		agg := rng.IntN(2) == 0
		threshold := int64(k)
		if agg && threshold < 1 {
			threshold = 1
		}
		count := map[int64]int64{} // -1 = null
		var want []int64
		var recs []arrow.Record
		id := int64(0)
		for range rng.IntN(6) {
			b := array.NewRecordBuilder(mem, schema)
			for range rng.IntN(200) {
				c := int64(rng.IntN(60)) - 5
				if ct.ID() != arrow.INT64 && ct.ID() != arrow.INT32 && ct.ID() != arrow.INT8 && c < 0 {
					c = -c
				}
				null := rng.IntN(20) == 0
				switch bb := b.Field(0).(type) {
				case *array.Int64Builder:
					bb.Append(c)
				case *array.Int32Builder:
					bb.Append(int32(c))
				case *array.Uint32Builder:
					bb.Append(uint32(c))
				case *array.Uint64Builder:
					bb.Append(uint64(c))
				case *array.Int8Builder:
					bb.Append(int8(c))
				}
				if null {
					c = -1 // withNulls replaces the value by a null
				}
				count[id] = c
				b.Field(1).(*array.Int64Builder).Append(id)
				if rng.IntN(3) == 0 {
					b.Field(2).(*array.StringBuilder).AppendNull()
				} else {
					b.Field(2).(*array.StringBuilder).Append("g")
				}
				if threshold == 0 || c >= threshold {
					want = append(want, id)
				}
				id++
			}
			rec := b.NewRecord()
			b.Release()
			recs = append(recs, withNulls(t, mem, rec, count))
		}
		in := &sliceStream{schema: schema, recs: recs}
		g, err := New(in, Obligations{AggregateOnly: agg, K: k, RowCountColumn: "__rows"}, WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		got, err := drain(t, g)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, v := range got["id"] {
			ids = append(ids, v.(int64))
		}
		for _, v := range ids {
			if c := count[v]; threshold > 0 && c < threshold {
				t.Fatalf("iter %d: row %d with count %d passed k = %d", iter, v, c, threshold)
			}
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("iter %d: released %d rows, want %d", iter, len(ids), len(want))
		}
		rep := g.Report()
		if rep.Rows != int64(len(want)) || rep.SuppressedGroups != id-int64(len(want)) {
			t.Fatalf("iter %d: report %+v, want rows %d suppressed %d", iter, rep, len(want), id-int64(len(want)))
		}
		in.release()
		mem.AssertSize(t, 0)
	}
}

// withNulls rebuilds rec's first column with nulls where count says -1
// (for the ids in rec), keeping the other columns.
func withNulls(t *testing.T, mem memory.Allocator, rec arrow.Record, count map[int64]int64) arrow.Record {
	t.Helper()
	defer rec.Release()
	ids := rec.Column(1).(*array.Int64)
	b := array.NewBuilder(mem, rec.Schema().Field(0).Type)
	defer b.Release()
	src := rec.Column(0)
	for r := range src.Len() {
		if count[ids.Value(r)] == -1 {
			b.AppendNull()
			continue
		}
		switch a := src.(type) {
		case *array.Int64:
			b.(*array.Int64Builder).Append(a.Value(r))
		case *array.Int32:
			b.(*array.Int32Builder).Append(a.Value(r))
		case *array.Uint32:
			b.(*array.Uint32Builder).Append(a.Value(r))
		case *array.Uint64:
			b.(*array.Uint64Builder).Append(a.Value(r))
		case *array.Int8:
			b.(*array.Int8Builder).Append(a.Value(r))
		}
	}
	c0 := b.NewArray()
	defer c0.Release()
	cols := []arrow.Array{c0, rec.Column(1), rec.Column(2)}
	return array.NewRecord(rec.Schema(), cols, rec.NumRows())
}

// noiseRun releases nRows copies of one group through a gate and returns
// the released values of column col minus the true value.
func noiseRun(t *testing.T, o Obligations, nRows int, n int64, total float64, col string) []float64 {
	t.Helper()
	rows := make([]groupRow, nRows)
	for i := range rows {
		rows[i] = groupRow{"g", n, total, 100, false}
	}
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{groupBatch(memory.DefaultAllocator, rows...)}}
	g, err := New(in, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	rep := g.Report()
	if !rep.NoiseApplied || rep.EpsilonSpent != o.Epsilon || rep.Rows != int64(nRows) {
		t.Fatalf("report %+v", rep)
	}
	var d []float64
	for _, v := range got[col] {
		switch v := v.(type) {
		case int64:
			d = append(d, float64(v-n))
		case float64:
			d = append(d, v-total)
		}
	}
	return d
}

// checkLaplace checks the sample mean and the mean absolute deviation (the
// maximum-likelihood estimate of the Laplace scale) against Laplace(0, b),
// allowing extra variance for rounding to a grid.
func checkLaplace(t *testing.T, d []float64, b, grid float64) {
	t.Helper()
	n := float64(len(d))
	var sum, abs float64
	for _, x := range d {
		sum += x
		abs += math.Abs(x)
	}
	mean, mad := sum/n, abs/n
	sd := math.Sqrt(2*b*b + grid*grid/12)
	if tol := 5 * sd / math.Sqrt(n); math.Abs(mean) > tol {
		t.Errorf("noise mean %.4f, want 0 ± %.4f", mean, tol)
	}
	// Var|X| = b² for Laplace; rounding moves E|X| by at most grid/2.
	if tol := 5*b/math.Sqrt(n) + grid/2; math.Abs(mad-b) > tol {
		t.Errorf("noise scale %.4f, want %.4f ± %.4f", mad, b, tol)
	}
}

func TestNoiseCountMatchesLaplace(t *testing.T) {
	const eps, runs = 0.1, 40
	var d []float64
	for range runs { // many gates, each with fresh randomness
		d = append(d, noiseRun(t, Obligations{Epsilon: eps, Noisy: []NoisyColumn{{Name: "n", Kind: Count}}, RowCountColumn: "__rows"}, 500, 1000, 0, "n")...)
	}
	checkLaplace(t, d, 1/eps, 1)
}

func TestNoiseSumFloatSnappedAndMatchesLaplace(t *testing.T) {
	const eps, sens = 0.5, 3.0
	b := sens / eps // 6 → grid 8
	d := noiseRun(t, Obligations{Epsilon: eps, Noisy: []NoisyColumn{{Name: "total", Kind: Sum, Sensitivity: sens}}, RowCountColumn: "__rows"}, 20000, 0, 4096, "total")
	for _, x := range d {
		if math.Mod(x+4096, 8) != 0 {
			t.Fatalf("float output %v is not on the grid of 8", x+4096)
		}
	}
	checkLaplace(t, d, b, 8)
}

func TestNoiseBudgetSplitOverColumns(t *testing.T) {
	const eps = 0.2
	o := Obligations{Epsilon: eps, RowCountColumn: "__rows", Noisy: []NoisyColumn{
		{Name: "n", Kind: Count},
		{Name: "total", Kind: Sum, Sensitivity: 1},
	}}
	d := noiseRun(t, o, 20000, 1000, 0, "n")
	checkLaplace(t, d, 2/eps, 1) // each column gets eps/2
}

func TestNoisyCountsClampedAtZero(t *testing.T) {
	d := noiseRun(t, Obligations{Epsilon: 0.01, Noisy: []NoisyColumn{{Name: "n", Kind: Count}}}, 2000, 0, 0, "n")
	neg := 0
	zero := 0
	for _, x := range d {
		if x < 0 {
			neg++
		}
		if x == 0 {
			zero++
		}
	}
	if neg != 0 {
		t.Fatalf("%d noisy counts were negative", neg)
	}
	if zero < 800 { // about half clamp to 0
		t.Fatalf("only %d of 2000 clamped to 0", zero)
	}
	// A noisy SUM may be negative.
	d = noiseRun(t, Obligations{Epsilon: 0.01, Noisy: []NoisyColumn{{Name: "n", Kind: Sum, Sensitivity: 1}}}, 2000, 0, 0, "n")
	if slices.Min(d) >= 0 {
		t.Fatal("a noisy SUM near 0 never went negative")
	}
}

func TestNullsStayNullAndNoNoiseReport(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.PrimitiveTypes.Int32, Nullable: true}}, nil)
	b := array.NewInt32Builder(memory.DefaultAllocator)
	b.AppendNull()
	col := b.NewArray()
	b.Release()
	rec := array.NewRecord(schema, []arrow.Array{col}, 1)
	col.Release()
	g, err := New(&sliceStream{schema: schema, recs: []arrow.Record{rec}}, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "s", Kind: Sum, Sensitivity: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(got["s"]) != 1 || got["s"][0] != nil {
		t.Fatalf("got %v", got["s"])
	}
	if r := g.Report(); r.NoiseApplied || r.EpsilonSpent != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestLaplaceSamplerKS(t *testing.T) {
	// Kolmogorov–Smirnov against the Laplace(0, 2) CDF on the raw sampler
	// (no rounding), crypto/rand underneath.
	l := newLaplace(nil)
	const n, b = 50000, 2.0
	xs := make([]float64, n)
	for i := range xs {
		v, err := l.sample(b)
		if err != nil {
			t.Fatal(err)
		}
		xs[i] = v
	}
	sort.Float64s(xs)
	cdf := func(x float64) float64 {
		if x < 0 {
			return 0.5 * math.Exp(x/b)
		}
		return 1 - 0.5*math.Exp(-x/b)
	}
	var dmax float64
	for i, x := range xs {
		f := cdf(x)
		dmax = max(dmax, math.Abs(f-float64(i)/n), math.Abs(f-float64(i+1)/n))
	}
	// Critical value at alpha = 1e-6 is about 2.7/sqrt(n).
	if crit := 2.7 / math.Sqrt(n); dmax > crit {
		t.Fatalf("KS distance %.5f > %.5f", dmax, crit)
	}
}

func TestLaplaceFromBits(t *testing.T) {
	const b = 3.0
	// All-ones magnitude bits: u = 1, noise 0.
	if v := laplaceFromBits(^uint64(0)&^1, b); v != 0 {
		t.Errorf("u = 1 gave %v", v)
	}
	// Zero magnitude bits: u = 2^-53, the largest magnitude, finite.
	want := 53 * math.Ln2 * b
	if v := laplaceFromBits(0, b); math.Abs(v-want) > 1e-9 {
		t.Errorf("u = 2^-53 gave %v, want %v", v, want)
	}
	if v := laplaceFromBits(1, b); math.Abs(v+want) > 1e-9 {
		t.Errorf("sign bit set gave %v, want %v", v, -want)
	}
	// Half: top bit set → u ≈ 1/2, |noise| = b·ln 2.
	if v := laplaceFromBits(1<<63-1<<11, b); math.Abs(v-b*math.Ln2) > 1e-9 {
		t.Errorf("u = 1/2 gave %v, want %v", v, b*math.Ln2)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestRandomFailureEndsTheStream(t *testing.T) {
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{groupBatch(memory.DefaultAllocator, groupRow{"g", 20, 1, 20, false})}}
	g, err := New(in, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: Count}}, RowCountColumn: "__rows"}, withRandom(failingReader{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Next(context.Background()); code(err) != sluice.EInternal {
		t.Fatalf("got %v", err)
	}
	if g.Report().Rows != 0 {
		t.Fatal("rows released without noise")
	}
}

func TestSnapGrid(t *testing.T) {
	for _, c := range []struct{ scale, grid float64 }{
		{1, 1}, {0.3, 0.5}, {6, 8}, {8, 8}, {8.0001, 16}, {0.25, 0.25}, {1e-3, 1.0 / 512}, {1.0 / 1024, 1.0 / 1024},
	} {
		if g := snapGrid(c.scale); g != c.grid {
			t.Errorf("snapGrid(%v) = %v, want %v", c.scale, g, c.grid)
		}
	}
}

func TestAddSat(t *testing.T) {
	for _, c := range []struct {
		v      int64
		d      float64
		lo, hi int64
		want   int64
	}{
		{10, -3, 0, math.MaxInt64, 7},
		{2, -3, 0, math.MaxInt64, 0},
		{math.MaxInt64 - 1, 5, math.MinInt64, math.MaxInt64, math.MaxInt64},
		{math.MinInt64 + 1, -5, math.MinInt64, math.MaxInt64, math.MinInt64},
		{100, 1e300, math.MinInt32, math.MaxInt32, math.MaxInt32},
		{100, -1e300, math.MinInt32, math.MaxInt32, math.MinInt32},
		{120, 10, math.MinInt8, math.MaxInt8, math.MaxInt8},
		{-1, 0, 0, math.MaxInt64, math.MaxInt64}, // a uint64 beyond MaxInt64
		{1 << 60, 1, math.MinInt64, math.MaxInt64, 1<<60 + 1},
	} {
		if got := addSat(c.v, c.d, c.lo, c.hi); got != c.want {
			t.Errorf("addSat(%d, %v, %d, %d) = %d, want %d", c.v, c.d, c.lo, c.hi, got, c.want)
		}
	}
}

func TestLargeIntegerValuesStayExact(t *testing.T) {
	// With a tiny scale the noise rounds to 0 almost always, and the value,
	// beyond 2^53, must come back exactly (no float64 round trip).
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	const v = 1<<60 + 3
	b.Append(v)
	col := b.NewArray()
	b.Release()
	rec := array.NewRecord(schema, []arrow.Array{col}, 1)
	col.Release()
	g, err := New(&sliceStream{schema: schema, recs: []arrow.Record{rec}}, Obligations{Epsilon: 1e6, Noisy: []NoisyColumn{{Name: "s", Kind: Sum, Sensitivity: 1e-3}}},
		withRandom(constReader(0xff)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if got["s"][0] != int64(v) {
		t.Fatalf("got %v, want %d", got["s"][0], int64(v))
	}
}

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestRowCapRefuses(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	mk := func(n int) arrow.Record {
		rows := make([]groupRow, n)
		for i := range rows {
			rows[i] = groupRow{"g", 1, 1, 50, false}
		}
		return groupBatch(mem, rows...)
	}
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{mk(3), mk(2), mk(1)}}
	defer in.release()
	g, err := New(in, Obligations{RowCap: 5, RowCountColumn: "__rows"}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(t, g)
	if code(err) != sluice.EResource || !strings.Contains(err.Error(), "more than 5 rows, the grant's row cap") {
		t.Fatalf("got %v", err)
	}
	if len(got["district"]) != 5 || g.Report().Rows != 5 {
		t.Fatalf("released %d rows, report %+v; want exactly the cap", len(got["district"]), g.Report())
	}
	if _, err2 := g.Next(context.Background()); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}

	// Exactly at the cap is fine; suppressed rows do not count.
	in2 := &sliceStream{schema: groupSchema, recs: []arrow.Record{mk(3), groupBatch(mem, groupRow{"small", 1, 1, 1, false}, groupRow{"ok", 1, 1, 9, false})}}
	g2, err := New(in2, Obligations{RowCap: 4, K: 5, RowCountColumn: "__rows"}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drain(t, g2); err != nil {
		t.Fatal(err)
	}
	if r := g2.Report(); r.Rows != 4 || r.SuppressedGroups != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestStreamErrorsPassThrough(t *testing.T) {
	boom := sluice.Errorf(sluice.EUnavailable, "agent civil is down")
	in := &sliceStream{schema: groupSchema, err: boom}
	g, err := New(in, Obligations{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Next(context.Background()); err != boom {
		t.Fatalf("got %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g, _ = New(&sliceStream{schema: groupSchema}, Obligations{})
	if _, err := g.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}

	// A batch whose schema differs from the stream's is a bug upstream.
	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.Append(1)
	col := b.NewArray()
	b.Release()
	rec := array.NewRecord(other, []arrow.Array{col}, 1)
	col.Release()
	g, _ = New(&sliceStream{schema: groupSchema, recs: []arrow.Record{rec}}, Obligations{})
	if _, err := g.Next(context.Background()); code(err) != sluice.EInternal {
		t.Fatalf("got %v", err)
	}
}

func TestBadObligations(t *testing.T) {
	dup := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String},
		{Name: "__rows", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	cnt := []NoisyColumn{{Name: "n", Kind: Count}}
	for _, c := range []struct {
		name   string
		schema *arrow.Schema
		o      Obligations
		want   string
	}{
		{"negative k", groupSchema, Obligations{K: -1, RowCountColumn: "__rows"}, "k must be at least 0"},
		{"negative row cap", groupSchema, Obligations{RowCap: -1}, "row cap"},
		{"NaN epsilon", groupSchema, Obligations{Epsilon: math.NaN(), Noisy: cnt}, "epsilon"},
		{"negative epsilon", groupSchema, Obligations{Epsilon: -1, Noisy: cnt}, "epsilon"},
		{"infinite epsilon", groupSchema, Obligations{Epsilon: math.Inf(1), Noisy: cnt}, "epsilon"},
		{"noisy without epsilon", groupSchema, Obligations{Noisy: cnt}, "no epsilon"},
		{"noisy column missing", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "avg", Kind: Count}}}, `"avg" is not in the result`},
		{"noisy column twice", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: Count}, {Name: "n", Kind: Sum, Sensitivity: 1}}}, "twice"},
		{"noisy string column", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "district", Kind: Count}}}, "type utf8"},
		{"noisy kind", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: "avg"}}}, "kind"},
		{"sum without sensitivity", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "total", Kind: Sum}}}, "sensitivity"},
		{"NaN sensitivity", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "total", Kind: Sum, Sensitivity: math.NaN()}}}, "sensitivity"},
		{"negative sensitivity", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: Count, Sensitivity: -1}}}, "sensitivity"},
		{"tiny epsilon", groupSchema, Obligations{Epsilon: 1e-320, Noisy: []NoisyColumn{{Name: "total", Kind: Sum, Sensitivity: 1e10}}}, "noise scale"},
		{"row count is noisy", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "__rows", Kind: Count}}, RowCountColumn: "__rows"}, "never released"},
		{"aggregate-only without row count", groupSchema, Obligations{AggregateOnly: true}, "row-count column"},
		{"k without row count", groupSchema, Obligations{K: 5}, "row-count column"},
		{"row count missing", groupSchema, Obligations{K: 5, RowCountColumn: "__n"}, `"__n" is not in the result`},
		{"row count not integer", dup, Obligations{K: 5, RowCountColumn: "__rows"}, "must be an integer"},
		{"ambiguous noisy column", dup, Obligations{Epsilon: 1, Noisy: cnt}, "names 2 columns"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(&sliceStream{schema: c.schema}, c.o)
			if code(err) != sluice.EInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v (%s), want EInvalid containing %q", err, code(err), c.want)
			}
		})
	}
	if _, err := New(nil, Obligations{}); code(err) != sluice.EInternal {
		t.Fatalf("nil stream: %v", err)
	}
}

// decimalRun releases nRows copies of a decimal SUM through a gate and
// returns the released values (nil for a null).
func decimalRun(t *testing.T, dt *arrow.Decimal128Type, o Obligations, nRows int, v decimal128.Num, null bool, opts ...Option) []*float64 {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "claims", Type: dt, Nullable: true}}, nil)
	b := array.NewDecimal128Builder(memory.DefaultAllocator, dt)
	for range nRows {
		if null {
			b.AppendNull()
		} else {
			b.Append(v)
		}
	}
	col := b.NewArray()
	b.Release()
	rec := array.NewRecord(schema, []arrow.Array{col}, int64(nRows))
	col.Release()
	g, err := New(&sliceStream{schema: schema, recs: []arrow.Record{rec}}, o, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var out []*float64
	for {
		rec, err := g.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !arrow.TypeEqual(rec.Schema().Field(0).Type, dt) {
			t.Fatalf("released type %s, want %s", rec.Schema().Field(0).Type, dt)
		}
		c := rec.Column(0).(*array.Decimal128)
		for r := range c.Len() {
			if c.IsNull(r) {
				out = append(out, nil)
				continue
			}
			x := c.Value(r).ToFloat64(dt.Scale)
			out = append(out, &x)
		}
		rec.Release()
	}
}

// TestNoiseSumDecimal: a SUM of a decimal column (money) gets Laplace
// noise scaled to the clamp bound, snapped to the grid, and stays a
// decimal of the same precision and scale; nulls stay null; a value
// pushed beyond the precision saturates.
func TestNoiseSumDecimal(t *testing.T) {
	dt := &arrow.Decimal128Type{Precision: 38, Scale: 4}
	const eps, sens = 0.5, 5000.0 // scale 10000 → grid 16384
	truth, err := decimal128.FromString("123456789.1234", dt.Precision, dt.Scale)
	if err != nil {
		t.Fatal(err)
	}
	o := Obligations{Epsilon: eps, Noisy: []NoisyColumn{{Name: "claims", Kind: Sum, Sensitivity: sens}}}
	var d []float64
	for _, x := range decimalRun(t, dt, o, 20000, truth, false) {
		if math.Mod(*x, 16384) != 0 {
			t.Fatalf("decimal output %v is not on the grid of 16384", *x)
		}
		d = append(d, *x-truth.ToFloat64(dt.Scale))
	}
	checkLaplace(t, d, sens/eps, 16384)

	if got := decimalRun(t, dt, o, 3, truth, true); len(got) != 3 || got[0] != nil || got[2] != nil {
		t.Fatalf("nulls: got %v", got)
	}

	small := &arrow.Decimal128Type{Precision: 5, Scale: 2} // at most 999.99
	top, _ := decimal128.FromString("999.99", small.Precision, small.Scale)
	huge := Obligations{Epsilon: 1e-6, Noisy: []NoisyColumn{{Name: "claims", Kind: Sum, Sensitivity: 1e6}}}
	for _, x := range decimalRun(t, small, huge, 200, top, false) {
		if math.Abs(*x) > 999.99 {
			t.Fatalf("noisy value %v beyond decimal(5, 2)", *x)
		}
	}
}
