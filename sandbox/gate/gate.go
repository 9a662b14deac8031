// Package gate is the release gate: the step a result with release
// obligations passes before its rows move on. It runs at a department's
// agent (NewFilter, over the groups its database computed), right after
// the sandbox's aggregate, and last before the rows leave the broker. It
// applies the policy's release obligations batch by batch: minimum group
// size counted in distinct persons (a row is suppressed, and counted, when
// one of its contributor sets, the unit columns, holds fewer than its k
// persons, however many source rows reach it), differential-privacy noise
// on COUNT and SUM outputs, and the grant's row cap. The sketches of the
// released rows' contributor sets travel on to the next gate or are kept
// for the differencing guard (Sets).
//
// The gate trusts the plan for two facts it cannot see: that each unit
// column holds the persons whose rows reach its aggregate in that output
// row (the pseudonyms the sandbox's "units" aggregate collected, the
// person keys a department's database listed, or the sketch an earlier
// gate built from either), and that each noisy column's sensitivity bounds
// what one person can change it by (1 for a COUNT in which each person
// contributes one row; max(|lo|, |hi|) for a SUM whose inputs were clamped
// to [lo, hi], at the source or in the sandbox). If one person can
// contribute several rows (a one-to-many join), the planner must scale the
// sensitivity accordingly.
//
// Caveat: groups are suppressed on their true number of persons, not a
// noisy one, so whether a group appears at all is not covered by the
// differential privacy guarantee; the noise protects the released values.
// The k threshold is what protects small groups.
package gate

import (
	"context"
	"io"
	"math"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// Stream is a stream of record batches, such as a sandbox operator's
// output. Next returns io.EOF after the last batch; the caller releases
// every record it gets. Every record has the schema Schema returns.
type Stream interface {
	Schema() *arrow.Schema
	Next(ctx context.Context) (arrow.Record, error)
}

// NoiseKind says which aggregate a noisy column holds.
type NoiseKind string

const (
	// Count is a COUNT output: noisy values are clamped at >= 0.
	Count NoiseKind = "count"
	// Sum is a SUM output over inputs clamped (at the source, or in the
	// sandbox) to bounds within [-Sensitivity, Sensitivity].
	Sum NoiseKind = "sum"
)

// NoisyColumn names an output column that gets Laplace noise.
type NoisyColumn struct {
	Name string
	Kind NoiseKind
	// Sensitivity is how much one person can change the column's
	// value: 1 for a COUNT (0 means 1 for Count), the clamp bound for a
	// SUM (required).
	Sensitivity float64
}

// Obligations are what the policy requires of a result before release.
type Obligations struct {
	// Units are the result's contributor sets: a row is released only if
	// each holds at least its K distinct persons (see UnitColumn); a row
	// with a set under k is suppressed and counted in
	// Report.SuppressedGroups. This is the minimum group size: without
	// Units no row is suppressed.
	Units []UnitColumn
	// RowCap is the most rows the result may have; 0 means no cap. A
	// result with more rows is refused with EResource, never truncated.
	RowCap int64
	// Epsilon > 0 adds Laplace noise to the Noisy columns. The budget is
	// split evenly over them (sequential composition), so the release as
	// a whole costs Epsilon: each column gets scale
	// Sensitivity·len(Noisy)/Epsilon. Output rows are disjoint groups, so
	// (parallel composition) the number of rows does not multiply it.
	Epsilon float64
	Noisy   []NoisyColumn
}

// Report says what the gate did. It is final once Next has returned
// io.EOF; before that it holds running totals.
type Report struct {
	Rows             int64   // rows released
	SuppressedGroups int64   // output rows dropped because one of their contributor sets (Units) held fewer than its K persons
	NoiseApplied     bool    // noise was added to at least one released value
	EpsilonSpent     float64 // the epsilon the release consumes (Obligations.Epsilon when there are noisy columns, else 0)
}

// Option configures a Gate.
type Option func(*Gate)

// WithAllocator sets the allocator of the released records (default
// memory.DefaultAllocator).
func WithAllocator(mem memory.Allocator) Option {
	return func(g *Gate) {
		if mem != nil {
			g.mem = mem
		}
	}
}

// withRandom replaces the noise source; tests only.
func withRandom(r io.Reader) Option {
	return func(g *Gate) { g.noise = newLaplace(r) }
}

type noisyCol struct {
	NoisyColumn
	scale float64 // Laplace scale b
	grid  float64 // snap grid for float columns
}

// Gate applies Obligations to a Stream: it suppresses the rows whose
// contributor sets hold fewer than k persons, adds the noise, enforces the
// row cap and replaces each unit column by its sketch or drops it. It is
// itself a Stream; Next must be called from one goroutine at a time,
// Report and Sets from any.
type Gate struct {
	in        Stream
	o         Obligations
	mem       memory.Allocator
	noise     *laplace
	inSchema  *arrow.Schema
	outSchema *arrow.Schema
	keep      []int // input column indices released, in order
	noisy     map[int]*noisyCol
	units     []*unitCol

	mu     sync.Mutex
	report Report
	sets   []ReleasedSet
	err    error // sticky: once set, Next returns it
}

// New returns a gate over in. Obligations that cannot be applied to in's
// schema (a missing or non-numeric noisy column, a missing or mistyped unit
// column or unit count column, a unit column with k < 1, a bad epsilon)
// are EInvalid.
func New(in Stream, o Obligations, opts ...Option) (*Gate, error) {
	if in == nil {
		return nil, sluice.Errorf(sluice.EInternal, "release gate: no input stream")
	}
	s := in.Schema()
	if s == nil {
		return nil, sluice.Errorf(sluice.EInternal, "release gate: the input stream has no schema")
	}
	g := &Gate{in: in, o: o, mem: memory.DefaultAllocator, inSchema: s, noisy: map[int]*noisyCol{}}
	for _, opt := range opts {
		if opt != nil {
			opt(g)
		}
	}
	if g.noise == nil {
		g.noise = newLaplace(nil)
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	fields := make([]arrow.Field, 0, len(g.keep))
	for _, i := range g.keep {
		f := s.Field(i)
		if u := g.keptUnit(i); u != nil {
			f = arrow.Field{Name: f.Name, Type: arrow.BinaryTypes.Binary, Nullable: true,
				Metadata: arrow.NewMetadata([]string{sluice.MetaType}, []string{string(sluice.TypeBinary)})}
		}
		fields = append(fields, f)
	}
	md := s.Metadata()
	g.outSchema = arrow.NewSchemaWithEndian(fields, &md, s.Endianness())
	if len(o.Noisy) > 0 {
		g.report.EpsilonSpent = o.Epsilon
	}
	return g, nil
}

func invalid(format string, args ...any) error {
	return sluice.Errorf(sluice.EInvalid, "release obligations: "+format, args...)
}

// column finds exactly one field called name.
func column(s *arrow.Schema, name, what string) (int, error) {
	idx := s.FieldIndices(name)
	switch len(idx) {
	case 0:
		return -1, invalid("the %s %q is not in the result", what, name)
	case 1:
		return idx[0], nil
	default:
		return -1, invalid("the %s %q names %d columns of the result; alias them apart", what, name, len(idx))
	}
}

func (g *Gate) check() error {
	o, s := g.o, g.inSchema
	if o.RowCap < 0 {
		return invalid("the row cap must be at least 0 (0 = none); got %d", o.RowCap)
	}
	if math.IsNaN(o.Epsilon) || math.IsInf(o.Epsilon, 0) || o.Epsilon < 0 {
		return invalid("epsilon must be a finite number >= 0; got %v", o.Epsilon)
	}
	if len(o.Noisy) > 0 && o.Epsilon == 0 {
		return invalid("%d noisy columns but no epsilon; give the grant's per-query epsilon", len(o.Noisy))
	}
	for _, n := range o.Noisy {
		i, err := column(s, n.Name, "noisy column")
		if err != nil {
			return err
		}
		if _, dup := g.noisy[i]; dup {
			return invalid("the noisy column %q is listed twice", n.Name)
		}
		t := s.Field(i).Type
		if !isInteger(t) && !isFloat(t) && t.ID() != arrow.DECIMAL128 {
			return invalid("the noisy column %q has type %s; noise applies to integer, floating-point and decimal columns", n.Name, t)
		}
		c := &noisyCol{NoisyColumn: n}
		switch n.Kind {
		case Count:
			if c.Sensitivity == 0 {
				c.Sensitivity = 1
			}
		case Sum:
		default:
			return invalid("the noisy column %q has kind %q; want %q or %q", n.Name, n.Kind, Count, Sum)
		}
		if math.IsNaN(c.Sensitivity) || math.IsInf(c.Sensitivity, 0) || c.Sensitivity <= 0 {
			return invalid("the noisy column %q needs a finite sensitivity > 0; got %v", n.Name, n.Sensitivity)
		}
		c.scale = c.Sensitivity * float64(len(o.Noisy)) / o.Epsilon
		if math.IsInf(c.scale, 0) || c.scale == 0 {
			return invalid("the noisy column %q: sensitivity %v and epsilon %v give no usable noise scale", n.Name, c.Sensitivity, o.Epsilon)
		}
		c.grid = snapGrid(c.scale)
		g.noisy[i] = c
	}
	drop, err := g.checkUnits()
	if err != nil {
		return err
	}
	for _, u := range g.units {
		if _, ok := g.noisy[u.idx]; ok {
			return invalid("the unit column %q cannot also be a noisy column", u.Name)
		}
		if _, ok := g.noisy[u.countIdx]; ok && u.countIdx >= 0 {
			return invalid("the unit count column %q cannot be a noisy column: it is never released", u.CountColumn)
		}
	}
	for i := range s.NumFields() {
		if !drop[i] {
			g.keep = append(g.keep, i)
		}
	}
	return nil
}

// keptUnit is the unit column the output keeps (as its sketch) at input
// index i, or nil.
func (g *Gate) keptUnit(i int) *unitCol {
	for _, u := range g.units {
		if u.idx == i && u.Keep {
			return u
		}
	}
	return nil
}

func isInteger(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func isFloat(t arrow.DataType) bool {
	return t.ID() == arrow.FLOAT32 || t.ID() == arrow.FLOAT64
}

// intValue reads row r of an integer column (isInteger) as int64,
// saturating uint64; a unit list's count column is read with it.
func intValue(a arrow.Array, r int) int64 {
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(r))
	case *array.Int16:
		return int64(a.Value(r))
	case *array.Int32:
		return int64(a.Value(r))
	case *array.Int64:
		return a.Value(r)
	case *array.Uint8:
		return int64(a.Value(r))
	case *array.Uint16:
		return int64(a.Value(r))
	case *array.Uint32:
		return int64(a.Value(r))
	case *array.Uint64:
		if v := a.Value(r); v <= math.MaxInt64 {
			return int64(v)
		}
		return math.MaxInt64
	}
	return -1 // unreachable: the type was checked in New
}

// Schema is the released schema: the input's without the unit columns the
// gate drops and the unit lists' count columns; a kept unit column
// (UnitColumn.Keep) becomes the binary sketch of its set.
func (g *Gate) Schema() *arrow.Schema { return g.outSchema }

// Report returns what the gate has done so far; final after io.EOF.
func (g *Gate) Report() Report {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.report
}

// Next returns the next released batch (never an empty one), io.EOF at
// the end, or the error that ended the stream. Errors are sticky. A batch
// that would take the result over the row cap is not released: Next
// returns EResource instead, so at most RowCap rows ever leave.
func (g *Gate) Next(ctx context.Context) (arrow.Record, error) {
	if g.err != nil {
		return nil, g.err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, g.fail(err)
		}
		rec, err := g.in.Next(ctx)
		if err != nil {
			return nil, g.fail(err)
		}
		if rec == nil {
			return nil, g.fail(sluice.Errorf(sluice.EInternal, "release gate: the input stream returned no batch and no error"))
		}
		out, err := g.apply(rec)
		rec.Release()
		if err != nil {
			return nil, g.fail(err)
		}
		if out != nil {
			return out, nil
		}
	}
}

// NewFilter returns a gate for a producer that pushes its batches (an
// agent's database scan calls back with each one) rather than being pulled:
// feed it with Apply. schema is the schema of every batch pushed.
func NewFilter(schema *arrow.Schema, o Obligations, opts ...Option) (*Gate, error) {
	if schema == nil {
		return nil, sluice.Errorf(sluice.EInternal, "release gate: no input schema")
	}
	return New(pushed{schema}, o, opts...)
}

// pushed stands in for the input of a gate fed by Apply: it has the schema
// and no batches of its own.
type pushed struct{ schema *arrow.Schema }

func (p pushed) Schema() *arrow.Schema { return p.schema }
func (pushed) Next(context.Context) (arrow.Record, error) {
	return nil, sluice.Errorf(sluice.EInternal, "release gate: a gate made by NewFilter is fed by Apply, not pulled")
}

// Apply gates one batch the caller pushes and returns what may be
// released: nil (and no error) when every row was suppressed. rec stays
// the caller's; the caller releases the returned record. Errors are
// sticky, as for Next.
func (g *Gate) Apply(rec arrow.Record) (arrow.Record, error) {
	if g.err != nil {
		return nil, g.err
	}
	if rec == nil {
		return nil, g.fail(sluice.Errorf(sluice.EInternal, "release gate: no batch given"))
	}
	out, err := g.apply(rec)
	if err != nil {
		return nil, g.fail(err)
	}
	return out, nil
}

func (g *Gate) fail(err error) error {
	g.err = err
	return err
}

// apply gates one batch; nil, nil when every row was suppressed.
func (g *Gate) apply(rec arrow.Record) (arrow.Record, error) {
	if !rec.Schema().Equal(g.inSchema) {
		return nil, sluice.Errorf(sluice.EInternal, "release gate: a batch's schema %s differs from the stream's %s", rec.Schema(), g.inSchema)
	}
	n := int(rec.NumRows())
	keep, kept, err := g.unitSelection(rec)
	if err != nil {
		return nil, err
	}
	suppressed := int64(n - kept)
	if kept == 0 {
		g.mu.Lock()
		g.report.SuppressedGroups += suppressed
		g.mu.Unlock()
		return nil, nil
	}
	g.mu.Lock()
	released := g.report.Rows
	g.mu.Unlock()
	if g.o.RowCap > 0 && released+int64(kept) > g.o.RowCap {
		return nil, sluice.Errorf(sluice.EResource,
			"the result has more than %d rows, the grant's row cap; narrow the query (WHERE, GROUP BY, LIMIT) or ask the provider for a grant with a higher cap", g.o.RowCap)
	}
	cols := make([]arrow.Array, 0, len(g.keep))
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	noised := false
	for _, i := range g.keep {
		if u := g.keptUnit(i); u != nil {
			cols = append(cols, g.sketchArray(u, keep))
			continue
		}
		c, err := filter(rec.Column(i), keep, kept, g.mem)
		if err != nil {
			return nil, err
		}
		if nc := g.noisy[i]; nc != nil {
			nv, err := g.addNoise(c, nc)
			c.Release()
			if err != nil {
				return nil, err
			}
			c = nv
			noised = noised || c.NullN() < c.Len()
		}
		cols = append(cols, c)
	}
	out := array.NewRecord(g.outSchema, cols, int64(kept))
	g.mu.Lock()
	g.recordSets(keep, g.report.Rows)
	g.report.Rows += int64(kept)
	g.report.SuppressedGroups += suppressed
	g.report.NoiseApplied = g.report.NoiseApplied || noised
	g.mu.Unlock()
	return out, nil
}

// filter returns the rows of a where keep is true (all when keep is nil),
// as a new reference the caller releases.
func filter(a arrow.Array, keep []bool, kept int, mem memory.Allocator) (arrow.Array, error) {
	if keep == nil {
		a.Retain()
		return a, nil
	}
	var runs []arrow.Array
	defer func() {
		for _, r := range runs {
			r.Release()
		}
	}()
	for r := 0; r < len(keep); {
		if !keep[r] {
			r++
			continue
		}
		start := r
		for r < len(keep) && keep[r] {
			r++
		}
		runs = append(runs, array.NewSlice(a, int64(start), int64(r)))
	}
	if len(runs) == 1 {
		runs[0].Retain()
		return runs[0], nil
	}
	out, err := array.Concatenate(runs, mem)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "release gate: filtering a column: %v", err)
	}
	if out.Len() != kept {
		out.Release()
		return nil, sluice.Errorf(sluice.EInternal, "release gate: filtered %d rows, expected %d", out.Len(), kept)
	}
	return out, nil
}

type intValues[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64] interface {
	arrow.Array
	Value(int) T
}

type intBuilder[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64] interface {
	array.Builder
	Append(T)
}

type floatValues[T float32 | float64] interface {
	arrow.Array
	Value(int) T
}

type floatBuilder[T float32 | float64] interface {
	array.Builder
	Append(T)
}

// addNoise returns a new array: a's values plus Laplace noise, integers
// rounded, counts clamped at 0, everything clamped to the type's range.
// Nulls stay null.
func (g *Gate) addNoise(a arrow.Array, c *noisyCol) (arrow.Array, error) {
	switch a := a.(type) {
	case *array.Int8:
		return noiseInts(a, array.NewInt8Builder(g.mem), g, c, math.MinInt8, math.MaxInt8)
	case *array.Int16:
		return noiseInts(a, array.NewInt16Builder(g.mem), g, c, math.MinInt16, math.MaxInt16)
	case *array.Int32:
		return noiseInts(a, array.NewInt32Builder(g.mem), g, c, math.MinInt32, math.MaxInt32)
	case *array.Int64:
		return noiseInts(a, array.NewInt64Builder(g.mem), g, c, math.MinInt64, math.MaxInt64)
	case *array.Uint8:
		return noiseInts(a, array.NewUint8Builder(g.mem), g, c, 0, math.MaxUint8)
	case *array.Uint16:
		return noiseInts(a, array.NewUint16Builder(g.mem), g, c, 0, math.MaxUint16)
	case *array.Uint32:
		return noiseInts(a, array.NewUint32Builder(g.mem), g, c, 0, math.MaxUint32)
	case *array.Uint64:
		return noiseInts(a, array.NewUint64Builder(g.mem), g, c, 0, math.MaxInt64)
	case *array.Float32:
		return noiseFloats(a, array.NewFloat32Builder(g.mem), g, c, math.MaxFloat32)
	case *array.Float64:
		return noiseFloats(a, array.NewFloat64Builder(g.mem), g, c, math.MaxFloat64)
	case *array.Decimal128:
		return noiseDecimals(a, g, c)
	}
	return nil, sluice.Errorf(sluice.EInternal, "release gate: cannot add noise to a %s column", a.DataType())
}

func noiseInts[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](a intValues[T], b intBuilder[T], g *Gate, c *noisyCol, lo, hi int64) (arrow.Array, error) {
	defer b.Release()
	if c.Kind == Count && lo < 0 {
		lo = 0
	}
	b.Reserve(a.Len())
	for r := range a.Len() {
		if a.IsNull(r) {
			b.AppendNull()
			continue
		}
		z, err := g.noise.sample(c.scale)
		if err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "release gate: %v", err)
		}
		b.Append(T(addSat(int64(a.Value(r)), math.Round(z), lo, hi)))
	}
	return b.NewArray(), nil
}

// addSat returns v + d (d an integral float) clamped to [lo, hi], without
// overflowing. v may come from a uint64 above MaxInt64: it wraps negative
// in the conversion, so it is treated as hi.
func addSat(v int64, d float64, lo, hi int64) int64 {
	if lo == 0 && v < 0 {
		v = hi // a uint64 beyond MaxInt64
	}
	switch {
	case d >= 1<<62:
		return hi
	case d <= -(1 << 62):
		return lo
	}
	di := int64(d)
	s := v + di
	if di > 0 && s < v {
		s = hi
	} else if di < 0 && s > v {
		s = lo
	}
	return min(max(s, lo), hi)
}

func noiseFloats[T float32 | float64](a floatValues[T], b floatBuilder[T], g *Gate, c *noisyCol, limit float64) (arrow.Array, error) {
	defer b.Release()
	b.Reserve(a.Len())
	for r := range a.Len() {
		if a.IsNull(r) {
			b.AppendNull()
			continue
		}
		v := float64(a.Value(r))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// A non-finite aggregate carries no individual's value in its
			// low bits; noise would not change it.
			b.Append(T(v))
			continue
		}
		z, err := g.noise.sample(c.scale)
		if err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "release gate: %v", err)
		}
		out := snap(v+z, c.grid)
		if c.Kind == Count {
			out = max(out, 0)
		}
		out = min(max(out, -limit), limit)
		b.Append(T(out))
	}
	return b.NewArray(), nil
}

// noiseDecimals adds noise to a decimal column (a SUM of decimal values)
// in float64, snapped to the grid like a float, and stores the result at
// the column's scale, saturating at its precision.
func noiseDecimals(a *array.Decimal128, g *Gate, c *noisyCol) (arrow.Array, error) {
	dt := a.DataType().(*arrow.Decimal128Type)
	b := array.NewDecimal128Builder(g.mem, dt)
	defer b.Release()
	b.Reserve(a.Len())
	top := decimal128.GetMaxValue(dt.Precision)
	for r := range a.Len() {
		if a.IsNull(r) {
			b.AppendNull()
			continue
		}
		z, err := g.noise.sample(c.scale)
		if err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "release gate: %v", err)
		}
		out := snap(a.Value(r).ToFloat64(dt.Scale)+z, c.grid)
		if c.Kind == Count {
			out = max(out, 0)
		}
		n, err := decimal128.FromFloat64(out, dt.Precision, dt.Scale)
		if err != nil {
			// Beyond the precision: the largest value of the sign.
			n = top
			if out < 0 {
				n = top.Negate()
			}
		}
		b.Append(n)
	}
	return b.NewArray(), nil
}

// ensure Gate is a Stream.
var _ Stream = (*Gate)(nil)
