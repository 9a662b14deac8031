package gate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/sandbox/sketch"
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

// groupSchema is a grouped result as the sandbox's aggregate gives it to
// the gate: the group key, two aggregates and the pseudonyms of the
// persons behind the group (its "units" aggregate).
var groupSchema = arrow.NewSchema([]arrow.Field{
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	{Name: "total", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "$units", Type: arrow.BinaryTypes.Binary, Nullable: true},
}, nil)

type groupRow struct {
	district string
	n        int64
	total    float64
	units    []byte // 8-byte pseudonyms (see pseudonyms); nil is NULL
}

func groupBatch(mem memory.Allocator, rows ...groupRow) arrow.Record {
	b := array.NewRecordBuilder(mem, groupSchema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.district)
		b.Field(1).(*array.Int64Builder).Append(r.n)
		b.Field(2).(*array.Float64Builder).Append(r.total)
		if r.units == nil {
			b.Field(3).(*array.BinaryBuilder).AppendNull()
		} else {
			b.Field(3).(*array.BinaryBuilder).Append(r.units)
		}
	}
	return b.NewRecord()
}

// personsK is the obligation that every group of groupSchema rests on at
// least k persons.
func personsK(k int) []UnitColumn {
	return []UnitColumn{{Name: "$units", Dataset: "health.insured", K: k, Format: UnitPseudonyms}}
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
				v := c.GetOneForMarshal(r)
				if b, ok := v.([]byte); ok {
					v = bytes.Clone(b) // the record is released below
				}
				out[f.Name] = append(out[f.Name], v)
			}
		}
		rec.Release()
	}
}

func code(err error) string { return sluice.ErrorCode(err) }

// setsOf renders the gate's recorded sets as row/column/dataset/k/persons.
func setsOf(t *testing.T, g *Gate) []string {
	t.Helper()
	var out []string
	for _, s := range g.Sets() {
		sk, err := sketch.Parse(s.Sketch)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d/%s/%s/%d/%d", s.Row, s.Column, s.Dataset, s.K, sk.Units()))
	}
	return out
}

// TestSuppressionExactAndUnitsRemoved: across batches, exactly the groups
// of at least k distinct persons are released, however many rows the
// others have; a group no person reaches (NULL, or no pseudonym at all)
// fails closed; a batch may be suppressed whole; the report counts every
// suppressed group; the pseudonyms never leave, and the released groups'
// sets are kept for the guard.
func TestSuppressionExactAndUnitsRemoved(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(mem,
			groupRow{"城东区", 12, 1.5, pseudonyms(0, 12, 0)},
			groupRow{"城中区", 30, 2.5, pseudonyms(100, 3, 27)}, // 30 rows, 3 persons: under k
			groupRow{"城西区", 10, 3.5, pseudonyms(200, 10, 0)}, // exactly k
			groupRow{"城北区", 40, 4.5, pseudonyms(300, 9, 31)}, // 40 rows, 9 persons: under k
			groupRow{"湟中区", 50, 5.5, nil},                    // NULL: no person, fail closed
		),
		groupBatch(mem, groupRow{"a", 1, 0, pseudonyms(400, 1, 0)}, groupRow{"b", 20, 0, pseudonyms(500, 2, 18)}), // all suppressed
		groupBatch(mem, groupRow{"c", 16, 7, pseudonyms(600, 11, 5)}, groupRow{"d", 25, 7, []byte{}}),             // d: rows but no person
	}}
	defer in.release()
	g, err := New(in, Obligations{Units: personsK(10)}, WithAllocator(mem))
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
	if _, ok := got["$units"]; ok {
		t.Fatal("the unit column was released")
	}
	if want := []any{"城东区", "城西区", "c"}; !slices.Equal(got["district"], want) {
		t.Fatalf("districts %v, want %v", got["district"], want)
	}
	if want := []any{int64(12), int64(10), int64(16)}; !slices.Equal(got["n"], want) {
		t.Fatalf("n %v, want %v", got["n"], want)
	}
	if want := []any{1.5, 3.5, 7.0}; !slices.Equal(got["total"], want) {
		t.Fatalf("total %v, want %v", got["total"], want)
	}
	rep := g.Report()
	if rep != (Report{Rows: 3, SuppressedGroups: 6}) {
		t.Fatalf("report %+v, want 3 rows, 6 suppressed, no noise", rep)
	}
	want := []string{"0/$units/health.insured/10/12", "1/$units/health.insured/10/10", "2/$units/health.insured/10/11"}
	if sets := setsOf(t, g); !slices.Equal(sets, want) {
		t.Fatalf("sets %v, want %v", sets, want)
	}
	// After EOF the gate keeps saying EOF.
	if _, err := g.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after EOF: %v", err)
	}
}

// TestKOneSuppressesGroupsWithoutPersons: even at the smallest k a group
// that no person reaches (no pseudonym, or NULL) is suppressed, whatever
// its row count; one person is enough.
func TestKOneSuppressesGroupsWithoutPersons(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(mem, groupRow{"empty", 0, 0, nil}, groupRow{"unmatched", 3, 0, []byte{}}, groupRow{"one", 4, 0, pseudonyms(0, 1, 3)}),
	}}
	defer in.release()
	g, err := New(in, Obligations{Units: personsK(1)}, WithAllocator(mem))
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
	if r := g.Report(); r.SuppressedGroups != 2 || r.Rows != 1 {
		t.Fatalf("report %+v", r)
	}
}

// TestUnitColumnDroppedWithoutSuppression: the unit column never leaves,
// also when every group passes; without unit columns nothing is
// suppressed, not even a group without persons.
func TestUnitColumnDroppedWithoutSuppression(t *testing.T) {
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(memory.DefaultAllocator, groupRow{"x", 1, 1, pseudonyms(0, 1, 0)}),
	}}
	g, err := New(in, Obligations{Units: personsK(1)})
	if err != nil {
		t.Fatal(err)
	}
	if g.Schema().NumFields() != 3 || len(g.Schema().FieldIndices("$units")) != 0 {
		t.Fatalf("schema %s", g.Schema())
	}
	got, err := drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(got["district"]) != 1 || g.Report().SuppressedGroups != 0 {
		t.Fatalf("got %v, report %+v", got, g.Report())
	}

	in = &sliceStream{schema: groupSchema, recs: []arrow.Record{
		groupBatch(memory.DefaultAllocator, groupRow{"x", 1, 1, nil}, groupRow{"y", 2, 1, []byte{}}),
	}}
	g, err = New(in, Obligations{})
	if err != nil {
		t.Fatal(err)
	}
	got, err = drain(t, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(got["district"]) != 2 || g.Report() != (Report{Rows: 2}) || len(g.Sets()) != 0 {
		t.Fatalf("without unit columns: got %v, report %+v", got, g.Report())
	}
}

// randomSet is a random contributor set: persons distinct pseudonyms
// (from a pool shared by the groups), some of them with several rows, or
// NULL. Half the sets hold k-2 to k+2 persons, the others up to
// maxPersons-1.
type randomSet struct {
	null    bool
	persons int
	raw     []byte // the pseudonyms, in row order
}

func newRandomSet(rng *rand.Rand, k, maxPersons int, nullable bool) randomSet {
	if nullable && rng.IntN(20) == 0 {
		return randomSet{null: true}
	}
	p := rng.IntN(maxPersons)
	if rng.IntN(2) == 0 {
		p = max(0, k-2+rng.IntN(5))
	}
	from := rng.IntN(500)
	var raw []byte
	for i := range p {
		u := binary.LittleEndian.AppendUint64(nil, uint64(from+i)*0x9E3779B97F4A7C15)
		for range 1 + rng.IntN(3)*rng.IntN(2) { // a third of the persons have 2 or 3 rows
			raw = append(raw, u...)
		}
	}
	rng.Shuffle(len(raw)/8, func(i, j int) {
		var tmp [8]byte
		copy(tmp[:], raw[i*8:])
		copy(raw[i*8:i*8+8], raw[j*8:j*8+8])
		copy(raw[j*8:j*8+8], tmp[:])
	})
	return randomSet{persons: p, raw: raw}
}

// encode is the set as a unit column of format f holds it; b builds the
// sketch (a sketch.Builder for the set's k).
func (s randomSet) encode(f UnitFormat, b *sketch.Builder) []byte {
	if s.null {
		return nil
	}
	if f == UnitPseudonyms {
		return append([]byte{}, s.raw...)
	}
	b.Reset()
	for i := 0; i < len(s.raw); i += 8 {
		b.Add(binary.LittleEndian.Uint64(s.raw[i:]))
	}
	return b.AppendSketch(nil)
}

// TestNoRowUnderKPasses feeds random batches (random sizes, persons with
// one or several rows, NULL sets, zero, one or two unit columns of either
// binary format, kept as sketches or dropped, each with its own k) and
// checks that exactly the rows whose every set holds at least its k
// distinct persons come out, in order, with their sets; the suppressed
// count is exact and nothing leaks.
func TestNoRowUnderKPasses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "label", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "$u0", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "$u1", Type: arrow.BinaryTypes.Binary, Nullable: true},
	}, nil)
	formats := []UnitFormat{UnitPseudonyms, UnitSketch}
	builders := map[int]*sketch.Builder{}
	builder := func(k int) *sketch.Builder {
		if builders[k] == nil {
			builders[k] = sketch.NewBuilder(k)
		}
		return builders[k]
	}
	for iter := range 300 {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		var units []UnitColumn
		for c := range iter % 3 {
			units = append(units, UnitColumn{Name: fmt.Sprintf("$u%d", c), Dataset: fmt.Sprintf("d.%d", c),
				K: 1 + rng.IntN(30), Format: formats[rng.IntN(2)], Keep: rng.IntN(2) == 0})
		}
		persons := map[int64][2]int{} // id → persons per set
		var want []int64
		var recs []arrow.Record
		id := int64(0)
		for range rng.IntN(6) {
			b := array.NewRecordBuilder(mem, schema)
			for range rng.IntN(200) {
				b.Field(0).(*array.Int64Builder).Append(id)
				if rng.IntN(3) == 0 {
					b.Field(1).(*array.StringBuilder).AppendNull()
				} else {
					b.Field(1).(*array.StringBuilder).Append("g")
				}
				pass := true
				var ps [2]int
				for c := range 2 {
					// A column no obligation names is passed on as it is.
					f, k, most := UnitPseudonyms, 2, 5
					if c < len(units) {
						f, k, most = units[c].Format, units[c].K, 45
					}
					// A sketch is never NULL (the gate refuses one).
					s := newRandomSet(rng, k, most, f == UnitPseudonyms)
					ps[c] = s.persons
					if c < len(units) && s.persons < k {
						pass = false
					}
					if raw := s.encode(f, builder(k)); raw == nil {
						b.Field(2 + c).(*array.BinaryBuilder).AppendNull()
					} else {
						b.Field(2 + c).(*array.BinaryBuilder).Append(raw)
					}
				}
				persons[id] = ps
				if pass {
					want = append(want, id)
				}
				id++
			}
			recs = append(recs, b.NewRecord())
			b.Release()
		}
		in := &sliceStream{schema: schema, recs: recs}
		g, err := New(in, Obligations{Units: units}, WithAllocator(mem))
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
		for i, v := range ids {
			for c, u := range units {
				if p := persons[v][c]; p < u.K {
					t.Fatalf("iter %d: row %d with %d persons in %s passed k = %d", iter, v, p, u.Name, u.K)
				}
				if !u.Keep {
					if _, ok := got[u.Name]; ok {
						t.Fatalf("iter %d: the dropped unit column %s was released", iter, u.Name)
					}
					continue
				}
				sk, err := sketch.Parse(got[u.Name][i].([]byte))
				if err != nil || sk.Units() != persons[v][c] {
					t.Fatalf("iter %d: row %d's kept sketch of %s: %v, %d persons, want %d", iter, v, u.Name, err, sk.Units(), persons[v][c])
				}
			}
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("iter %d: released %d rows, want %d", iter, len(ids), len(want))
		}
		rep := g.Report()
		if rep.Rows != int64(len(want)) || rep.SuppressedGroups != id-int64(len(want)) {
			t.Fatalf("iter %d: report %+v, want rows %d suppressed %d", iter, rep, len(want), id-int64(len(want)))
		}
		var wantSets []string
		for c, u := range units {
			if u.Keep {
				continue
			}
			for row, v := range want {
				wantSets = append(wantSets, fmt.Sprintf("%d/%s/%s/%d/%d", row, u.Name, u.Dataset, u.K, persons[v][c]))
			}
		}
		if sets := setsOf(t, g); !sameSets(sets, wantSets) {
			t.Fatalf("iter %d: sets %v\nwant %v", iter, sets, wantSets)
		}
		in.release()
		mem.AssertSize(t, 0)
	}
}

// sameSets compares rendered sets regardless of the order of the columns.
func sameSets(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// noiseRun releases nRows copies of one group of 10 persons through a
// gate that also requires k = 10 persons (o.Units), with a group of 9
// persons and many rows after every fourth, which must be suppressed
// without noise mattering; it returns the released values of column col
// minus the true value.
func noiseRun(t *testing.T, o Obligations, nRows int, n int64, total float64, col string) []float64 {
	t.Helper()
	rows := make([]groupRow, 0, nRows+nRows/4+1)
	small := 0
	for i := range nRows {
		rows = append(rows, groupRow{"g", n, total, pseudonyms(i*20, 10, 10)})
		if i%4 == 0 {
			rows = append(rows, groupRow{"small", n, total, pseudonyms(i*20+10, 9, 30)})
			small++
		}
	}
	o.Units = personsK(10)
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
	if !rep.NoiseApplied || rep.EpsilonSpent != o.Epsilon || rep.Rows != int64(nRows) || rep.SuppressedGroups != int64(small) {
		t.Fatalf("report %+v, want %d rows and %d suppressed", rep, nRows, small)
	}
	if slices.Contains(got["district"], any("small")) || len(got["district"]) != nRows {
		t.Fatalf("released %d groups, some of them under k persons", len(got["district"]))
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
		d = append(d, noiseRun(t, Obligations{Epsilon: eps, Noisy: []NoisyColumn{{Name: "n", Kind: Count}}}, 500, 1000, 0, "n")...)
	}
	checkLaplace(t, d, 1/eps, 1)
}

func TestNoiseSumFloatSnappedAndMatchesLaplace(t *testing.T) {
	const eps, sens = 0.5, 3.0
	b := sens / eps // 6 → grid 8
	d := noiseRun(t, Obligations{Epsilon: eps, Noisy: []NoisyColumn{{Name: "total", Kind: Sum, Sensitivity: sens}}}, 20000, 0, 4096, "total")
	for _, x := range d {
		if math.Mod(x+4096, 8) != 0 {
			t.Fatalf("float output %v is not on the grid of 8", x+4096)
		}
	}
	checkLaplace(t, d, b, 8)
}

func TestNoiseBudgetSplitOverColumns(t *testing.T) {
	const eps = 0.2
	o := Obligations{Epsilon: eps, Noisy: []NoisyColumn{
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
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{groupBatch(memory.DefaultAllocator, groupRow{"g", 20, 1, pseudonyms(0, 20, 0)})}}
	g, err := New(in, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: Count}}, Units: personsK(10)}, withRandom(failingReader{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Next(context.Background()); code(err) != sluice.EInternal {
		t.Fatalf("got %v", err)
	}
	if g.Report().Rows != 0 || len(g.Sets()) != 0 {
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
	from := 0
	mk := func(n int) arrow.Record {
		rows := make([]groupRow, n)
		for i := range rows {
			rows[i] = groupRow{"g", 1, 1, pseudonyms(from, 50, 0)}
			from += 50
		}
		return groupBatch(mem, rows...)
	}
	in := &sliceStream{schema: groupSchema, recs: []arrow.Record{mk(3), mk(2), mk(1)}}
	defer in.release()
	g, err := New(in, Obligations{RowCap: 5, Units: personsK(5)}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(t, g)
	if code(err) != sluice.EResource || !strings.Contains(err.Error(), "more than 5 rows, the grant's row cap") {
		t.Fatalf("got %v", err)
	}
	if len(got["district"]) != 5 || g.Report().Rows != 5 || len(g.Sets()) != 5 {
		t.Fatalf("released %d rows, report %+v, %d sets; want exactly the cap", len(got["district"]), g.Report(), len(g.Sets()))
	}
	if _, err2 := g.Next(context.Background()); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}

	// Exactly at the cap is fine; groups suppressed for too few persons
	// do not count, however many rows they have.
	in2 := &sliceStream{schema: groupSchema, recs: []arrow.Record{mk(3), groupBatch(mem,
		groupRow{"small", 40, 1, pseudonyms(1000, 4, 36)}, groupRow{"ok", 5, 1, pseudonyms(2000, 5, 0)})}}
	defer in2.release()
	g2, err := New(in2, Obligations{RowCap: 4, Units: personsK(5)}, WithAllocator(mem))
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
		{Name: "$u", Type: arrow.BinaryTypes.Binary},
		{Name: "$u", Type: arrow.BinaryTypes.Binary},
	}, nil)
	// A department's unit list: the persons' keys and the database's count.
	lists := arrow.NewSchema([]arrow.Field{
		{Name: "district", Type: arrow.BinaryTypes.String},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "total", Type: arrow.PrimitiveTypes.Float64},
		{Name: "$list", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "$count", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	hash := func(string) uint64 { return 0 }
	list := func(count string) []UnitColumn {
		return []UnitColumn{{Name: "$list", K: 10, Format: UnitList, CountColumn: count, Hash: hash}}
	}
	cnt := []NoisyColumn{{Name: "n", Kind: Count}}
	for _, c := range []struct {
		name   string
		schema *arrow.Schema
		o      Obligations
		want   string
	}{
		{"negative k", groupSchema, Obligations{Units: personsK(-1)}, "needs k >= 1; got -1"},
		{"k 0", groupSchema, Obligations{Units: personsK(0)}, "needs k >= 1; got 0"},
		{"negative row cap", groupSchema, Obligations{RowCap: -1}, "row cap"},
		{"NaN epsilon", groupSchema, Obligations{Epsilon: math.NaN(), Noisy: cnt}, "epsilon"},
		{"negative epsilon", groupSchema, Obligations{Epsilon: -1, Noisy: cnt}, "epsilon"},
		{"infinite epsilon", groupSchema, Obligations{Epsilon: math.Inf(1), Noisy: cnt}, "epsilon"},
		{"noisy without epsilon", groupSchema, Obligations{Noisy: cnt}, "no epsilon"},
		{"noisy column missing", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "avg", Kind: Count}}}, `"avg" is not in the result`},
		{"noisy column twice", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: Count}, {Name: "n", Kind: Sum, Sensitivity: 1}}}, "twice"},
		{"noisy string column", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "district", Kind: Count}}}, "type utf8"},
		{"noisy unit column", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "$units", Kind: Count}}, Units: personsK(10)}, "type binary"},
		{"noisy kind", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: "avg"}}}, "kind"},
		{"sum without sensitivity", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "total", Kind: Sum}}}, "sensitivity"},
		{"NaN sensitivity", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "total", Kind: Sum, Sensitivity: math.NaN()}}}, "sensitivity"},
		{"negative sensitivity", groupSchema, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "n", Kind: Count, Sensitivity: -1}}}, "sensitivity"},
		{"tiny epsilon", groupSchema, Obligations{Epsilon: 1e-320, Noisy: []NoisyColumn{{Name: "total", Kind: Sum, Sensitivity: 1e10}}}, "noise scale"},
		{"unit count is noisy", lists, Obligations{Epsilon: 1, Noisy: []NoisyColumn{{Name: "$count", Kind: Count}}, Units: list("$count")}, "never released"},
		{"unit list without count column", lists, Obligations{Units: list("")}, `unit count column "" is not in the result`},
		{"unit list without pseudonym function", lists, Obligations{Units: []UnitColumn{{Name: "$list", K: 10, Format: UnitList, CountColumn: "$count"}}}, "pseudonym function"},
		{"unit column missing", groupSchema, Obligations{Units: []UnitColumn{{Name: "$nope", K: 10, Format: UnitPseudonyms}}}, `unit column "$nope" is not in the result`},
		{"unit count missing", lists, Obligations{Units: list("$n")}, `unit count column "$n" is not in the result`},
		{"unit column twice", groupSchema, Obligations{Units: append(personsK(10), personsK(5)...)}, "listed twice"},
		{"unit column not binary", groupSchema, Obligations{Units: []UnitColumn{{Name: "n", K: 10, Format: UnitPseudonyms}}}, "must be binary"},
		{"unit sketch not binary", groupSchema, Obligations{Units: []UnitColumn{{Name: "district", K: 10, Format: UnitSketch}}}, "must be binary"},
		{"unit list not text", groupSchema, Obligations{Units: []UnitColumn{{Name: "$units", K: 10, Format: UnitList, CountColumn: "n", Hash: hash}}}, "must be text"},
		{"unit count not integer", lists, Obligations{Units: list("total")}, "must be an integer"},
		{"unit column without format", groupSchema, Obligations{Units: []UnitColumn{{Name: "$units", K: 10}}}, "no known format"},
		{"unit list same as nothing", lists, Obligations{Units: []UnitColumn{{Name: "$list", K: 10, Format: UnitList, CountColumn: "$count", Hash: hash, SameAs: "$other"}}}, "no earlier unit list"},
		{"ambiguous noisy column", dup, Obligations{Epsilon: 1, Noisy: cnt}, "names 2 columns"},
		{"ambiguous unit column", dup, Obligations{Units: []UnitColumn{{Name: "$u", K: 10, Format: UnitPseudonyms}}}, "names 2 columns"},
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

// TestBadUnitsEndTheStream: a unit column whose content the gate cannot
// count (pseudonyms that are not 8-byte values, a NULL or damaged sketch)
// ends the stream with EInternal, for good, before the batch's rows are
// released: the gate fails closed rather than guess.
func TestBadUnitsEndTheStream(t *testing.T) {
	sk := sketch.NewBuilder(10)
	for i := range 12 {
		sk.Add(uint64(i))
	}
	good := sk.AppendSketch(nil)
	for _, c := range []struct {
		name   string
		format UnitFormat
		units  []byte
		want   string
	}{
		{"pseudonyms not 8-byte", UnitPseudonyms, append(pseudonyms(0, 12, 0), 1, 2, 3), "not 8-byte values"},
		{"NULL sketch", UnitSketch, nil, "no sketch of its persons"},
		{"damaged sketch", UnitSketch, good[:len(good)-1], "damaged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			first := pseudonyms(100, 12, 0)
			if c.format == UnitSketch {
				first = good
			}
			in := &sliceStream{schema: groupSchema, recs: []arrow.Record{
				groupBatch(mem, groupRow{"ok", 12, 1, first}),
				groupBatch(mem, groupRow{"ok too", 12, 1, first}, groupRow{"bad", 12, 1, c.units}),
				groupBatch(mem, groupRow{"after", 12, 1, first}),
			}}
			defer in.release()
			units := []UnitColumn{{Name: "$units", Dataset: "health.insured", K: 10, Format: c.format}}
			g, err := New(in, Obligations{Units: units}, WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			got, err := drain(t, g)
			if code(err) != sluice.EInternal || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want EInternal containing %q", err, c.want)
			}
			if !slices.Equal(got["district"], []any{"ok"}) || g.Report().Rows != 1 || len(g.Sets()) != 1 {
				t.Fatalf("released %v, report %+v: want only the batch before the bad one", got["district"], g.Report())
			}
			if _, err2 := g.Next(context.Background()); err2 != err {
				t.Fatalf("error not sticky: %v", err2)
			}
		})
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
