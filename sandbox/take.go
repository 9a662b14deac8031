package sandbox

import (
	"context"
	"errors"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"io"

	sluice "github.com/sluice-gov/sluice"
)

type valuer[T any] interface {
	arrow.Array
	Value(int) T
}

type appender[T any] interface {
	array.Builder
	Append(T)
}

func takeTyped[T any, A valuer[T], B appender[T]](a A, b B, idx []int32) {
	if idx == nil {
		n := a.Len()
		b.Reserve(n)
		if a.NullN() == 0 {
			for i := 0; i < n; i++ {
				b.Append(a.Value(i))
			}
			return
		}
		for i := 0; i < n; i++ {
			if a.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(a.Value(i))
			}
		}
		return
	}
	b.Reserve(len(idx))
	for _, i := range idx {
		if i < 0 || a.IsNull(int(i)) {
			b.AppendNull()
		} else {
			b.Append(a.Value(int(i)))
		}
	}
}

// varBytes returns the bytes of string/binary values takeInto would copy.
func varBytes(a arrow.Array, idx []int32) int64 {
	var total int64
	switch x := a.(type) {
	case *array.String:
		if idx == nil {
			return spanBytes(x.ValueOffsets(), x.Len())
		}
		for _, i := range idx {
			if i >= 0 {
				total += int64(x.ValueLen(int(i)))
			}
		}
	case *array.Binary:
		if idx == nil {
			return spanBytes(x.ValueOffsets(), x.Len())
		}
		for _, i := range idx {
			if i >= 0 {
				total += int64(x.ValueLen(int(i)))
			}
		}
	}
	return total
}

// reserveData makes room for n more value bytes, growing geometrically
// (BinaryBuilder.ReserveData grows to exactly what is asked, which makes
// appending batch after batch quadratic).
func reserveData(b *array.BinaryBuilder, n int64) {
	if int64(b.DataCap()) >= int64(b.DataLen())+n {
		return
	}
	b.ReserveData(int(max(n, int64(b.DataLen()))))
}

func spanBytes(offs []int32, n int) int64 {
	if n == 0 || len(offs) < n+1 {
		return 0
	}
	return int64(offs[n]) - int64(offs[0])
}

// takeInto appends a[idx[k]] to b for each k (NULL where idx[k] < 0), or
// every row of a when idx is nil. b must be a builder of a's type.
func takeInto(b array.Builder, a arrow.Array, idx []int32) error {
	bad := func() error {
		return sluice.Errorf(sluice.EInternal, "sandbox: builder %s does not match array %s", b.Type(), a.DataType())
	}
	switch x := a.(type) {
	case *array.Int64:
		bb, ok := b.(*array.Int64Builder)
		if !ok {
			return bad()
		}
		if idx == nil {
			bb.AppendValues(x.Int64Values(), validBits(x))
			return nil
		}
		if x.NullN() == 0 {
			vals := x.Int64Values()
			bb.Reserve(len(idx))
			for _, i := range idx {
				if i < 0 {
					bb.UnsafeAppendBoolToBitmap(false)
				} else {
					bb.UnsafeAppend(vals[i])
				}
			}
			return nil
		}
		takeTyped[int64](x, bb, idx)
	case *array.Int32:
		bb, ok := b.(*array.Int32Builder)
		if !ok {
			return bad()
		}
		takeTyped[int32](x, bb, idx)
	case *array.Float64:
		bb, ok := b.(*array.Float64Builder)
		if !ok {
			return bad()
		}
		if idx == nil {
			bb.AppendValues(x.Float64Values(), validBits(x))
			return nil
		}
		if x.NullN() == 0 {
			vals := x.Float64Values()
			bb.Reserve(len(idx))
			for _, i := range idx {
				if i < 0 {
					bb.UnsafeAppendBoolToBitmap(false)
				} else {
					bb.UnsafeAppend(vals[i])
				}
			}
			return nil
		}
		takeTyped[float64](x, bb, idx)
	case *array.Float32:
		bb, ok := b.(*array.Float32Builder)
		if !ok {
			return bad()
		}
		takeTyped[float32](x, bb, idx)
	case *array.Decimal128:
		bb, ok := b.(*array.Decimal128Builder)
		if !ok {
			return bad()
		}
		takeTyped(x, bb, idx)
	case *array.String:
		bb, ok := b.(*array.StringBuilder)
		if !ok {
			return bad()
		}
		reserveData(bb.BinaryBuilder, varBytes(x, idx))
		takeTyped[string](x, bb, idx)
	case *array.Binary:
		bb, ok := b.(*array.BinaryBuilder)
		if !ok {
			return bad()
		}
		reserveData(bb, varBytes(x, idx))
		takeTyped[[]byte](x, bb, idx)
	case *array.Boolean:
		bb, ok := b.(*array.BooleanBuilder)
		if !ok {
			return bad()
		}
		takeTyped[bool](x, bb, idx)
	case *array.Date64:
		bb, ok := b.(*array.Date64Builder)
		if !ok {
			return bad()
		}
		takeTyped(x, bb, idx)
	case *array.Date32:
		bb, ok := b.(*array.Date32Builder)
		if !ok {
			return bad()
		}
		takeTyped(x, bb, idx)
	case *array.Timestamp:
		bb, ok := b.(*array.TimestampBuilder)
		if !ok {
			return bad()
		}
		takeTyped(x, bb, idx)
	case *array.Null:
		bb, ok := b.(*array.NullBuilder)
		if !ok {
			return bad()
		}
		n := len(idx)
		if idx == nil {
			n = x.Len()
		}
		bb.AppendNulls(n)
	default:
		return sluice.Errorf(sluice.ENotSupported, "Arrow type %s is not supported in the sandbox", a.DataType())
	}
	return nil
}

func validBits(a arrow.Array) []bool {
	if a.NullN() == 0 {
		return nil
	}
	out := make([]bool, a.Len())
	for i := range out {
		out[i] = a.IsValid(i)
	}
	return out
}

// takeArray returns a new array of a[idx[k]] (NULL where idx[k] < 0).
func takeArray(mem memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	if varBytes(a, idx) > maxStrBytes {
		return nil, sluice.Errorf(sluice.EResource, "a batch holds more than 2 GiB of text (memory limit); add filters or aggregate at the source")
	}
	b := array.NewBuilder(mem, a.DataType())
	defer b.Release()
	if err := takeInto(b, a, idx); err != nil {
		return nil, err
	}
	return b.NewArray(), nil
}

// nullArray returns n NULLs of type dt.
func nullArray(mem memory.Allocator, dt arrow.DataType, n int) arrow.Array {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	b.AppendNulls(n)
	return b.NewArray()
}

// takeRecord returns the rows idx of rec.
func takeRecord(mem memory.Allocator, sc *arrow.Schema, rec arrow.Record, idx []int32) (arrow.Record, error) {
	cols := make([]arrow.Array, rec.NumCols())
	defer releaseAll(cols)
	for i, c := range rec.Columns() {
		a, err := takeArray(mem, c, idx)
		if err != nil {
			return nil, err
		}
		cols[i] = a
	}
	return array.NewRecord(sc, cols, int64(len(idx))), nil
}

func releaseAll(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}

// materializer accumulates the rows of many batches into one array per
// column, allocated from the query budget.
type materializer struct {
	q        *Query
	sc       *arrow.Schema
	builders []array.Builder
	bytes    []int64
	rows     int64
}

func newMaterializer(q *Query, sc *arrow.Schema) *materializer {
	m := &materializer{q: q, sc: sc, builders: make([]array.Builder, sc.NumFields()), bytes: make([]int64, sc.NumFields())}
	for i, f := range sc.Fields() {
		m.builders[i] = array.NewBuilder(q.budget, f.Type)
	}
	return m
}

// maxRows bounds materialised rows: row references are int32.
const maxRows = 1<<31 - 1

func (m *materializer) append(rec arrow.Record) error {
	if m.rows+rec.NumRows() > maxRows {
		return sluice.Errorf(sluice.EResource, "the sandbox cannot hold more than %d rows of one input (row limit); add filters or aggregate at the source", int64(maxRows))
	}
	for i, c := range rec.Columns() {
		m.bytes[i] += varBytes(c, nil)
		if m.bytes[i] > maxStrBytes {
			return sluice.Errorf(sluice.EResource, "a column holds more than 2 GiB of text (memory limit); add filters or aggregate at the source")
		}
		if err := takeInto(m.builders[i], c, nil); err != nil {
			return err
		}
	}
	m.rows += rec.NumRows()
	return nil
}

// finish returns the accumulated columns (owned by the caller).
func (m *materializer) finish() []arrow.Array {
	out := make([]arrow.Array, len(m.builders))
	for i, b := range m.builders {
		out[i] = b.NewArray()
	}
	return out
}

// materializeAll pulls every batch of in into one array per column,
// checking the query's limits between batches. The arrays are owned by the
// caller; rows is their length.
func materializeAll(ctx context.Context, q *Query, in Operator) (cols []arrow.Array, rows int64, err error) {
	m := newMaterializer(q, in.Schema())
	defer m.release()
	for {
		rec, err := pull(ctx, in)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		err = m.append(rec)
		rec.Release()
		if err != nil {
			return nil, 0, err
		}
		if err := q.Check(ctx); err != nil {
			return nil, 0, err
		}
	}
	return m.finish(), m.rows, nil
}

func (m *materializer) release() {
	for _, b := range m.builders {
		b.Release()
	}
	m.builders = nil
}
