package sandbox

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	sluice "github.com/sluice-gov/sluice"
)

// AggFunc is an aggregate function of HashAggregate.
type AggFunc string

const (
	AggCount         AggFunc = "count"          // non-NULL values of Column
	AggCountStar     AggFunc = "count_star"     // rows (Column unused)
	AggCountDistinct AggFunc = "count_distinct" // distinct non-NULL values
	AggSum           AggFunc = "sum"
	AggAvg           AggFunc = "avg"
	AggMin           AggFunc = "min"
	AggMax           AggFunc = "max"
	// AggUnits collects a group's non-NULL 8-byte pseudonyms (binary) into
	// one binary value, their concatenation: the persons behind the group,
	// which the release gate counts and sketches. Never released.
	AggUnits AggFunc = "units"
)

// Agg is one aggregate output column.
type Agg struct {
	Func   AggFunc
	Column string
	// Alias names the output column; func_column (or count_star) when
	// empty.
	Alias string
}

// bytes reserved per group and per aggregate state, beyond its key.
const (
	groupEntryBytes = 64
	aggStateBytes   = 40
	distinctEntry   = 56
)

type aggState struct {
	fn     AggFunc
	col    int
	in     vtype // input type (tNull for count_star)
	out    vtype
	field  arrow.Field
	cnt    []int64
	has    []bool
	sumD   []decimal128.Num // exact sums of integers and decimals
	sumF   []float64
	mi     []int64
	mf     []float64
	md     []decimal128.Num
	ms     []string
	mb     []bool
	seen   map[string]struct{} // count_distinct: group id + value
	keyBuf []byte
	lists  [][]byte // units: the group's pseudonyms
}

func (s *aggState) grow() {
	s.cnt = append(s.cnt, 0)
	s.has = append(s.has, false)
	switch s.fn {
	case AggSum, AggAvg:
		if s.in == tFloat {
			s.sumF = append(s.sumF, 0)
		} else {
			s.sumD = append(s.sumD, decimal128.Num{})
		}
	case AggUnits:
		s.lists = append(s.lists, nil)
	case AggMin, AggMax:
		switch s.in {
		case tInt, tDate, tTS:
			s.mi = append(s.mi, 0)
		case tFloat:
			s.mf = append(s.mf, 0)
		case tDec:
			s.md = append(s.md, decimal128.Num{})
		case tStr, tBin:
			s.ms = append(s.ms, "")
		case tBool:
			s.mb = append(s.mb, false)
		}
	}
}

type aggOp struct {
	q       *Query
	in      Operator
	schema  *arrow.Schema
	gcols   []int
	gtypes  []vtype
	intKey  bool
	aggs    []*aggState
	res     reservation
	keys    *materializer // first row of each group's key columns
	groupsI map[int64]int32
	nullG   int32
	groupsS map[string]int32
	ngroups int

	out    arrow.Record
	off    int64
	done   bool
	closed bool
}

// HashAggregate groups in by the groupBy columns (NULLs form one group)
// and computes aggs per group. The output has the group columns (as in the
// input), then one column per Agg; groups come out in order of first
// appearance. Without groupBy an empty input still gives one row (counts
// 0, other aggregates NULL). The persons behind each group, for the
// release gate's minimum group size, are an aggregate like the others:
// AggUnits over a pseudonym column.
//
// Types: COUNT* → int64; SUM of integers → int64 (EInvalid on overflow), of
// floats → float64, of decimals → decimal(38,4); AVG → float64; MIN/MAX
// keep the input's type. NULLs are ignored.
func (q *Query) HashAggregate(in Operator, groupBy []string, aggs []Agg) (Operator, error) {
	if in == nil {
		return nil, invalidf("aggregation needs an input")
	}
	a := &aggOp{q: q, in: in, nullG: -1, res: reservation{b: q.budget}}
	sc := in.Schema()
	var fields []arrow.Field
	var gfields []arrow.Field
	names := map[string]bool{}
	addName := func(n string) error {
		k := strings.ToLower(n)
		if names[k] {
			return invalidf("the aggregation names column %q twice; give each column its own alias", n)
		}
		names[k] = true
		return nil
	}
	for _, g := range groupBy {
		i, err := resolveColumn(sc, g)
		if err != nil {
			return nil, err
		}
		t, _ := typeOfArrow(sc.Field(i).Type)
		f := sc.Field(i)
		if err := addName(f.Name); err != nil {
			return nil, err
		}
		a.gcols = append(a.gcols, i)
		a.gtypes = append(a.gtypes, t)
		gfields = append(gfields, f)
	}
	fields = append(fields, gfields...)
	a.intKey = len(a.gtypes) == 1 && a.gtypes[0].intLike()
	for _, ag := range aggs {
		s := &aggState{fn: AggFunc(strings.ToLower(string(ag.Func))), col: -1}
		var inField arrow.Field
		if s.fn != AggCountStar {
			i, err := resolveColumn(sc, ag.Column)
			if err != nil {
				return nil, err
			}
			s.col = i
			inField = sc.Field(i)
			s.in, _ = typeOfArrow(inField.Type)
		}
		switch s.fn {
		case AggCount, AggCountStar, AggCountDistinct:
			s.out = tInt
		case AggSum, AggAvg:
			if s.in != tNull && !s.in.numeric() {
				return nil, invalidf("%s() works on numbers, got %s (column %q)", s.fn, s.in, ag.Column)
			}
			if s.in == tNull {
				s.in = tInt
			}
			s.out = s.in
			if s.fn == AggAvg {
				s.out = tFloat
			}
		case AggMin, AggMax:
			s.out = s.in
		case AggUnits:
			if s.in != tBin {
				return nil, invalidf("units() collects binary pseudonyms, got %s (column %q)", s.in, ag.Column)
			}
			s.out = tBin
		default:
			return nil, sluice.Errorf(sluice.ENotSupported, "aggregate %q is not supported; use count, count_star, count_distinct, sum, avg, min or max", string(ag.Func))
		}
		name := ag.Alias
		if name == "" {
			name = string(s.fn)
			if s.col >= 0 {
				name += "_" + inField.Name
			}
		}
		if err := addName(name); err != nil {
			return nil, err
		}
		s.field = fieldFor(name, s.out)
		if (s.fn == AggMin || s.fn == AggMax) && inField.HasMetadata() {
			s.field.Metadata = inField.Metadata
		}
		if s.fn == AggCountDistinct {
			s.seen = map[string]struct{}{}
		}
		fields = append(fields, s.field)
		a.aggs = append(a.aggs, s)
	}
	a.schema = arrow.NewSchema(fields, nil)
	a.keys = newMaterializer(q, arrow.NewSchema(gfields, nil))
	if a.intKey {
		a.groupsI = map[int64]int32{}
	} else {
		a.groupsS = map[string]int32{}
	}
	return a, nil
}

func (a *aggOp) Schema() *arrow.Schema { return a.schema }

func (a *aggOp) newGroup(keyBytes int) (int32, error) {
	if a.ngroups >= maxRows {
		return 0, sluice.Errorf(sluice.EResource, "the query has more than %d groups (row limit); add filters", int64(maxRows))
	}
	if err := a.res.grow(int64(groupEntryBytes + keyBytes + aggStateBytes*len(a.aggs))); err != nil {
		return 0, err
	}
	g := int32(a.ngroups)
	a.ngroups++
	for _, s := range a.aggs {
		s.grow()
	}
	return g, nil
}

func (a *aggOp) consume(rec arrow.Record) error {
	n := int(rec.NumRows())
	cols := rec.Columns()
	keys, err := loadKeys(cols, a.gcols, a.gtypes)
	if err != nil {
		return err
	}
	gid := make([]int32, n)
	var fresh []int32
	var buf []byte
	for r := 0; r < n; r++ {
		var g int32
		var ok bool
		switch {
		case len(keys) == 0:
			g = 0
		case a.intKey:
			if keys[0].isNull(r) {
				if a.nullG < 0 {
					if a.nullG, err = a.newGroup(0); err != nil {
						return err
					}
					fresh = append(fresh, int32(r))
				}
				g = a.nullG
				break
			}
			k := keys[0].i[r]
			if g, ok = a.groupsI[k]; !ok {
				if g, err = a.newGroup(8); err != nil {
					return err
				}
				a.groupsI[k] = g
				fresh = append(fresh, int32(r))
			}
		default:
			buf = buf[:0]
			for _, v := range keys {
				buf = appendKey(buf, v, r)
			}
			if g, ok = a.groupsS[string(buf)]; !ok {
				if g, err = a.newGroup(len(buf)); err != nil {
					return err
				}
				a.groupsS[string(buf)] = g
				fresh = append(fresh, int32(r))
			}
		}
		gid[r] = g
	}
	if len(fresh) > 0 {
		for i, c := range a.gcols {
			if err := takeInto(a.keys.builders[i], cols[c], fresh); err != nil {
				return err
			}
		}
	}
	for _, s := range a.aggs {
		if err := a.update(s, cols, gid); err != nil {
			return err
		}
	}
	return nil
}

func (a *aggOp) update(s *aggState, cols []arrow.Array, gid []int32) error {
	if s.fn == AggCountStar {
		for _, g := range gid {
			s.cnt[g]++
		}
		return nil
	}
	v, err := loadVec(cols[s.col])
	if err != nil {
		return err
	}
	for r, g := range gid {
		if v.isNull(r) {
			continue
		}
		switch s.fn {
		case AggCount:
			s.cnt[g]++
		case AggUnits:
			if len(v.s[r]) != 8 {
				return sluice.Errorf(sluice.EInternal, "units() got a pseudonym of %d bytes; want 8", len(v.s[r]))
			}
			if err := a.res.grow(8); err != nil {
				return err
			}
			s.lists[g] = append(s.lists[g], v.s[r]...)
		case AggCountDistinct:
			s.keyBuf = append(s.keyBuf[:0], byte(g>>24), byte(g>>16), byte(g>>8), byte(g))
			s.keyBuf = appendKey(s.keyBuf, v, r)
			if _, ok := s.seen[string(s.keyBuf)]; !ok {
				if err := a.res.grow(int64(distinctEntry + len(s.keyBuf))); err != nil {
					return err
				}
				s.seen[string(s.keyBuf)] = struct{}{}
				s.cnt[g]++
			}
		case AggSum, AggAvg:
			s.cnt[g]++
			s.has[g] = true
			switch s.in {
			case tFloat:
				s.sumF[g] += v.f[r]
			case tInt:
				s.sumD[g] = s.sumD[g].Add(decimal128.FromI64(v.i[r]))
			case tDec:
				x, ok := decAdd(s.sumD[g], v.d[r])
				if !ok {
					return sluice.Errorf(sluice.EInvalid, "decimal overflow in %s (more than 34 integer digits)", strings.ToUpper(string(s.fn)))
				}
				s.sumD[g] = x
			}
		case AggMin, AggMax:
			first := !s.has[g]
			s.has[g] = true
			sign := 1
			if s.fn == AggMin {
				sign = -1
			}
			switch s.in {
			case tInt, tDate, tTS:
				if first || cmpInt(v.i[r], s.mi[g])*sign > 0 {
					s.mi[g] = v.i[r]
				}
			case tFloat:
				if first || cmpFloat(v.f[r], s.mf[g])*sign > 0 {
					s.mf[g] = v.f[r]
				}
			case tDec:
				if first || v.d[r].Cmp(s.md[g])*sign > 0 {
					s.md[g] = v.d[r]
				}
			case tStr, tBin:
				if first || strings.Compare(v.s[r], s.ms[g])*sign > 0 {
					old := len(s.ms[g])
					s.ms[g] = strings.Clone(v.s[r])
					if err := a.res.grow(int64(len(s.ms[g]) - old)); err != nil {
						return err
					}
				}
			case tBool:
				if first || cmpBool(v.b[r], s.mb[g])*sign > 0 {
					s.mb[g] = v.b[r]
				}
			}
		}
	}
	return nil
}

// result builds the output column of s.
func (a *aggOp) result(s *aggState) (arrow.Array, error) {
	n := a.ngroups
	v := newVec(s.out, n)
	v.null = make([]bool, n)
	for g := 0; g < n; g++ {
		switch s.fn {
		case AggCount, AggCountStar, AggCountDistinct:
			v.i[g] = s.cnt[g]
			continue
		case AggUnits:
			v.s[g] = string(s.lists[g])
			continue
		}
		if !s.has[g] {
			v.null[g] = true
			continue
		}
		switch s.fn {
		case AggSum:
			switch s.in {
			case tFloat:
				v.f[g] = s.sumF[g]
			case tInt:
				x := s.sumD[g]
				if x.HighBits() != 0 && x.HighBits() != -1 || (x.HighBits() == 0) != (int64(x.LowBits()) >= 0) {
					return nil, sluice.Errorf(sluice.EInvalid, "integer overflow in SUM; the total does not fit a 64-bit integer")
				}
				v.i[g] = int64(x.LowBits())
			case tDec:
				v.d[g] = s.sumD[g]
			}
		case AggAvg:
			switch s.in {
			case tFloat:
				v.f[g] = s.sumF[g] / float64(s.cnt[g])
			case tInt:
				v.f[g] = s.sumD[g].ToFloat64(0) / float64(s.cnt[g])
			case tDec:
				v.f[g] = s.sumD[g].ToFloat64(decScale) / float64(s.cnt[g])
			}
		case AggMin, AggMax:
			switch s.in {
			case tInt, tDate, tTS:
				v.i[g] = s.mi[g]
			case tFloat:
				v.f[g] = s.mf[g]
			case tDec:
				v.d[g] = s.md[g]
			case tStr, tBin:
				v.s[g] = s.ms[g]
			case tBool:
				v.b[g] = s.mb[g]
			}
		}
	}
	return toArrow(a.q.budget, v)
}

func (a *aggOp) finish() error {
	cols := make([]arrow.Array, 0, a.schema.NumFields())
	defer func() { releaseAll(cols) }()
	cols = append(cols, a.keys.finish()...)
	a.keys.release()
	for _, s := range a.aggs {
		c, err := a.result(s)
		if err != nil {
			return err
		}
		cols = append(cols, c)
	}
	a.out = array.NewRecord(a.schema, cols, int64(a.ngroups))
	// The hash table is no longer needed.
	a.groupsI, a.groupsS = nil, nil
	for _, s := range a.aggs {
		s.seen = nil
		s.ms = nil
		s.lists = nil
	}
	a.res.releaseAll()
	return nil
}

func (a *aggOp) Next(ctx context.Context) (arrow.Record, error) {
	if a.closed {
		return nil, io.EOF
	}
	if err := a.q.Check(ctx); err != nil {
		return nil, err
	}
	if !a.done {
		if len(a.gcols) == 0 && a.ngroups == 0 {
			if _, err := a.newGroup(0); err != nil {
				return nil, err
			}
		}
		for {
			rec, err := pull(ctx, a.in)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			err = a.consume(rec)
			rec.Release()
			if err != nil {
				return nil, err
			}
			if err := a.q.Check(ctx); err != nil {
				return nil, err
			}
		}
		a.done = true
		a.in.Close()
		if err := a.finish(); err != nil {
			return nil, err
		}
	}
	if a.out == nil || a.off >= a.out.NumRows() {
		return nil, io.EOF
	}
	end := min(a.off+int64(a.q.batch), a.out.NumRows())
	r := a.out.NewSlice(a.off, end)
	a.off = end
	return r, nil
}

func (a *aggOp) Close() {
	if a.closed {
		return
	}
	a.closed = true
	if a.out != nil {
		a.out.Release()
		a.out = nil
	}
	a.keys.release()
	a.groupsI, a.groupsS = nil, nil
	a.res.releaseAll()
	a.in.Close()
}
