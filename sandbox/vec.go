package sandbox

import (
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// metaType is the field metadata key carrying the catalog type.
const metaType = sluice.MetaType

// decScale is the scale every decimal is computed at.
const decScale = sluice.DecimalScale

var (
	decType = &arrow.Decimal128Type{Precision: sluice.DecimalPrecision, Scale: decScale}
	tsType  = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	// maxDec is the largest magnitude of a decimal(38, 4).
	maxDec = decimal128.GetMaxValue(38)
)

// vtype is the computation type of a vector.
type vtype uint8

const (
	tNull  vtype = iota // only NULLs (a NULL literal)
	tInt                // i: int64
	tFloat              // f: float64
	tDec                // d: decimal at scale decScale
	tStr                // s: UTF-8 text
	tBin                // s: bytes (blinded keys)
	tBool               // b
	tDate               // i: milliseconds since the epoch
	tTS                 // i: microseconds since the epoch
)

func (t vtype) String() string {
	switch t {
	case tNull:
		return "NULL"
	case tInt:
		return "integer"
	case tFloat:
		return "float"
	case tDec:
		return "decimal"
	case tStr:
		return "text"
	case tBin:
		return "binary"
	case tBool:
		return "boolean"
	case tDate:
		return "date"
	case tTS:
		return "timestamp"
	}
	return "unknown"
}

func (t vtype) numeric() bool  { return t == tInt || t == tFloat || t == tDec }
func (t vtype) temporal() bool { return t == tDate || t == tTS }
func (t vtype) intLike() bool  { return t == tInt || t == tDate || t == tTS }

// arrowType is the Arrow type a computed vector is emitted as.
func (t vtype) arrowType() arrow.DataType {
	switch t {
	case tInt:
		return arrow.PrimitiveTypes.Int64
	case tFloat:
		return arrow.PrimitiveTypes.Float64
	case tDec:
		return decType
	case tBin:
		return arrow.BinaryTypes.Binary
	case tBool:
		return arrow.FixedWidthTypes.Boolean
	case tDate:
		return arrow.FixedWidthTypes.Date64
	case tTS:
		return tsType
	}
	return arrow.BinaryTypes.String
}

// catalogType is the sluice column type recorded in field metadata.
func (t vtype) catalogType() sluice.ColumnType {
	switch t {
	case tInt:
		return sluice.TypeInteger
	case tFloat:
		return sluice.TypeFloat
	case tDec:
		return sluice.TypeDecimal
	case tBool:
		return sluice.TypeBoolean
	case tDate:
		return sluice.TypeDate
	case tTS:
		return sluice.TypeTimestamp
	}
	return sluice.TypeText
}

func fieldFor(name string, t vtype) arrow.Field {
	md := arrow.NewMetadata([]string{metaType}, []string{string(t.catalogType())})
	if t == tBin {
		md = arrow.Metadata{}
	}
	return arrow.Field{Name: name, Type: t.arrowType(), Nullable: true, Metadata: md}
}

// typeOfArrow maps an Arrow type to its computation type.
func typeOfArrow(dt arrow.DataType) (vtype, bool) {
	switch d := dt.(type) {
	case *arrow.Int64Type, *arrow.Int32Type:
		return tInt, true
	case *arrow.Float64Type, *arrow.Float32Type:
		return tFloat, true
	case *arrow.Decimal128Type:
		return tDec, d.Scale >= 0 && d.Scale <= 38 && d.Precision >= 1 && d.Precision <= 38
	case *arrow.StringType:
		return tStr, true
	case *arrow.BinaryType:
		return tBin, true
	case *arrow.BooleanType:
		return tBool, true
	case *arrow.Date64Type, *arrow.Date32Type:
		return tDate, true
	case *arrow.TimestampType:
		return tTS, true
	case *arrow.NullType:
		return tNull, true
	}
	return 0, false
}

func checkSchema(sc *arrow.Schema) error {
	for _, f := range sc.Fields() {
		if _, ok := typeOfArrow(f.Type); !ok {
			return sluice.Errorf(sluice.ENotSupported, "column %q has Arrow type %s, which the sandbox does not support", f.Name, f.Type)
		}
	}
	return nil
}

// vec is a column of values during expression evaluation. Exactly one of
// the value slices is used, by t. null is nil when no value is NULL.
type vec struct {
	t    vtype
	n    int
	null []bool
	i    []int64
	f    []float64
	d    []decimal128.Num
	s    []string
	b    []bool
}

func (v *vec) isNull(k int) bool { return v.t == tNull || (v.null != nil && v.null[k]) }

func newVec(t vtype, n int) *vec {
	v := &vec{t: t, n: n}
	switch t {
	case tInt, tDate, tTS:
		v.i = make([]int64, n)
	case tFloat:
		v.f = make([]float64, n)
	case tDec:
		v.d = make([]decimal128.Num, n)
	case tStr, tBin:
		v.s = make([]string, n)
	case tBool:
		v.b = make([]bool, n)
	}
	return v
}

func (v *vec) setNull(k int) {
	if v.null == nil {
		v.null = make([]bool, v.n)
	}
	v.null[k] = true
}

func nullsOf(a arrow.Array) []bool {
	if a.NullN() == 0 {
		return nil
	}
	out := make([]bool, a.Len())
	for k := range out {
		out[k] = a.IsNull(k)
	}
	return out
}

// rescaleDec brings a decimal of scale s to decScale, rounding half away
// from zero.
func rescaleDec(x decimal128.Num, s int32) decimal128.Num {
	switch {
	case s == decScale:
		return x
	case s < decScale:
		return x.Mul(decimal128.GetScaleMultiplier(int(decScale - s)))
	default:
		return x.ReduceScaleBy(s-decScale, true)
	}
}

// loadVec reads an Arrow array as a vector. Strings and int64/float64
// values share the array's memory: the vector must not outlive it.
func loadVec(a arrow.Array) (*vec, error) {
	n := a.Len()
	v := &vec{n: n, null: nullsOf(a)}
	switch x := a.(type) {
	case *array.Int64:
		v.t, v.i = tInt, x.Int64Values()
	case *array.Int32:
		v.t, v.i = tInt, make([]int64, n)
		for k, y := range x.Int32Values() {
			v.i[k] = int64(y)
		}
	case *array.Float64:
		v.t, v.f = tFloat, x.Float64Values()
	case *array.Float32:
		v.t, v.f = tFloat, make([]float64, n)
		for k, y := range x.Float32Values() {
			v.f[k] = float64(y)
		}
	case *array.Decimal128:
		v.t = tDec
		sc := x.DataType().(*arrow.Decimal128Type).Scale
		if sc == decScale {
			v.d = x.Values()
		} else {
			v.d = make([]decimal128.Num, n)
			for k, y := range x.Values() {
				v.d[k] = rescaleDec(y, sc)
			}
		}
	case *array.String:
		v.t, v.s = tStr, make([]string, n)
		for k := range v.s {
			v.s[k] = x.Value(k)
		}
	case *array.Binary:
		v.t, v.s = tBin, make([]string, n)
		for k := range v.s {
			v.s[k] = x.ValueString(k)
		}
	case *array.Boolean:
		v.t, v.b = tBool, make([]bool, n)
		for k := range v.b {
			v.b[k] = x.Value(k)
		}
	case *array.Date64:
		v.t, v.i = tDate, make([]int64, n)
		for k, y := range x.Date64Values() {
			v.i[k] = int64(y)
		}
	case *array.Date32:
		v.t, v.i = tDate, make([]int64, n)
		for k, y := range x.Date32Values() {
			v.i[k] = int64(y) * 86400000
		}
	case *array.Timestamp:
		v.t, v.i = tTS, make([]int64, n)
		mul, div := int64(1), int64(1)
		switch x.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			mul = 1000000
		case arrow.Millisecond:
			mul = 1000
		case arrow.Nanosecond:
			div = 1000
		}
		for k, y := range x.TimestampValues() {
			v.i[k] = int64(y) * mul / div
		}
	case *array.Null:
		v.t, v.null = tNull, nil
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "Arrow type %s is not supported in the sandbox", a.DataType())
	}
	if v.t == tNull {
		v.null = nil
	}
	return v, nil
}

func validOf(v *vec) []bool {
	if v.null == nil {
		return nil
	}
	out := make([]bool, v.n)
	for k, x := range v.null {
		out[k] = !x
	}
	return out
}

// toArrow builds an Arrow array from v with mem.
func toArrow(mem memory.Allocator, v *vec) (arrow.Array, error) {
	valid := validOf(v)
	switch v.t {
	case tNull:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.AppendNulls(v.n)
		return b.NewArray(), nil
	case tInt:
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues(v.i, valid)
		return b.NewArray(), nil
	case tFloat:
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		b.AppendValues(v.f, valid)
		return b.NewArray(), nil
	case tDec:
		b := array.NewDecimal128Builder(mem, decType)
		defer b.Release()
		b.AppendValues(v.d, valid)
		return b.NewArray(), nil
	case tStr:
		if err := checkStrBytes(v.s); err != nil {
			return nil, err
		}
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.AppendValues(v.s, valid)
		return b.NewArray(), nil
	case tBin:
		if err := checkStrBytes(v.s); err != nil {
			return nil, err
		}
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		defer b.Release()
		b.AppendStringValues(v.s, valid)
		return b.NewArray(), nil
	case tBool:
		b := array.NewBooleanBuilder(mem)
		defer b.Release()
		b.AppendValues(v.b, valid)
		return b.NewArray(), nil
	case tDate:
		b := array.NewDate64Builder(mem)
		defer b.Release()
		b.Reserve(v.n)
		for k, x := range v.i {
			if v.isNull(k) {
				b.AppendNull()
			} else {
				b.Append(arrow.Date64(x))
			}
		}
		return b.NewArray(), nil
	case tTS:
		b := array.NewTimestampBuilder(mem, tsType)
		defer b.Release()
		b.Reserve(v.n)
		for k, x := range v.i {
			if v.isNull(k) {
				b.AppendNull()
			} else {
				b.Append(arrow.Timestamp(x))
			}
		}
		return b.NewArray(), nil
	}
	return nil, sluice.Errorf(sluice.EInternal, "cannot emit a %s vector", v.t)
}

// maxStrBytes bounds the bytes of one string/binary array (32-bit offsets).
const maxStrBytes = math.MaxInt32 - 1

func checkStrBytes(s []string) error {
	var n int64
	for _, x := range s {
		n += int64(len(x))
	}
	if n > maxStrBytes {
		return sluice.Errorf(sluice.EResource, "a batch holds more than 2 GiB of text (memory limit); add filters or aggregate at the source")
	}
	return nil
}

// castVec converts v to type t, which must be reachable by widening:
// int→float/decimal, decimal→float, date→timestamp, NULL→anything.
func castVec(v *vec, t vtype) (*vec, error) {
	if v.t == t {
		return v, nil
	}
	if v.t == tNull {
		out := newVec(t, v.n)
		out.null = make([]bool, v.n)
		for k := range out.null {
			out.null[k] = true
		}
		return out, nil
	}
	out := newVec(t, v.n)
	out.null = v.null
	switch {
	case v.t == tInt && t == tFloat:
		for k, x := range v.i {
			out.f[k] = float64(x)
		}
	case v.t == tInt && t == tDec:
		for k, x := range v.i {
			out.d[k] = decimal128.FromI64(x).Mul(decimal128.GetScaleMultiplier(decScale))
		}
	case v.t == tDec && t == tFloat:
		for k, x := range v.d {
			out.f[k] = x.ToFloat64(decScale)
		}
	case v.t == tDate && t == tTS:
		for k, x := range v.i {
			out.i[k] = x * 1000
		}
	case v.t == tBin && t == tStr, v.t == tStr && t == tBin:
		copy(out.s, v.s)
	default:
		return nil, sluice.Errorf(sluice.EInternal, "cannot convert %s to %s", v.t, t)
	}
	return out, nil
}

// unifyTypes is the common type of CASE branches, COALESCE arguments and
// comparison operands, or false when there is none.
func unifyTypes(ts ...vtype) (vtype, bool) {
	out := tNull
	for _, t := range ts {
		switch {
		case t == tNull:
		case out == tNull:
			out = t
		case out == t:
		case out.numeric() && t.numeric():
			if out == tFloat || t == tFloat {
				out = tFloat
			} else {
				out = tDec
			}
		case out.temporal() && t.temporal():
			out = tTS
		case (out == tStr && t == tBin) || (out == tBin && t == tStr):
			out = tBin
		default:
			return 0, false
		}
	}
	return out, true
}

// normFloat maps -0 to 0 and every NaN to one NaN, so equal values hash
// alike.
func normFloat(f float64) float64 {
	if f == 0 {
		return 0
	}
	if f != f {
		return math.NaN()
	}
	return f
}

func cmpFloat(a, b float64) int {
	// NaN sorts above every number, as in PostgreSQL.
	an, bn := a != a, b != b
	switch {
	case an && bn:
		return 0
	case an:
		return 1
	case bn:
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// cmpAt compares a[i] with b[j], both non-NULL and of the same type.
func cmpAt(a *vec, i int, b *vec, j int) int {
	switch a.t {
	case tInt, tDate, tTS:
		return cmpInt(a.i[i], b.i[j])
	case tFloat:
		return cmpFloat(a.f[i], b.f[j])
	case tDec:
		return a.d[i].Cmp(b.d[j])
	case tStr, tBin:
		return strings.Compare(a.s[i], b.s[j])
	case tBool:
		return cmpBool(a.b[i], b.b[j])
	}
	return 0
}
