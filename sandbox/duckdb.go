package sandbox

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// The Arrow hand-off of a plan run in the engine: the types the renderer
// reads the inputs as (DuckDBColumns), the Arrow schema the broker
// promises for the rendered output (DuckDBSchema), and the conversion of
// DuckDB's Arrow output to that schema (ConformDuckDB).

var (
	// decType is the Arrow type of every decimal the sandbox emits.
	decType = &arrow.Decimal128Type{Precision: sluice.DecimalPrecision, Scale: sluice.DecimalScale}
	// tsType is the Arrow type of every timestamp the sandbox emits.
	tsType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
)

// columnType is the sandbox type an input column of Arrow type dt is
// read as: int32 as integer, float32 as float, a decimal of any
// precision and scale as decimal(38,4), date32 as date, a timestamp of
// any unit and zone as an instant; planner.DuckDBNull for Arrow's null
// type. ok is false for any other type.
func columnType(dt arrow.DataType) (t sluice.ColumnType, ok bool) {
	switch d := dt.(type) {
	case *arrow.Int64Type, *arrow.Int32Type:
		return sluice.TypeInteger, true
	case *arrow.Float64Type, *arrow.Float32Type:
		return sluice.TypeFloat, true
	case *arrow.Decimal128Type:
		return sluice.TypeDecimal, d.Scale >= 0 && d.Scale <= 38 && d.Precision >= 1 && d.Precision <= 38
	case *arrow.StringType:
		return sluice.TypeText, true
	case *arrow.BinaryType:
		return sluice.TypeBinary, true
	case *arrow.BooleanType:
		return sluice.TypeBoolean, true
	case *arrow.Date64Type, *arrow.Date32Type:
		return sluice.TypeDate, true
	case *arrow.TimestampType:
		return sluice.TypeTimestamp, true
	case *arrow.NullType:
		return planner.DuckDBNull, true
	}
	return "", false
}

// DuckDBColumns returns the columns of an Arrow schema with the types the
// sandbox reads them as, for a planner.DuckDBRelation. An Arrow type the
// sandbox does not read is sluice.ENotSupported.
func DuckDBColumns(sc *arrow.Schema) ([]planner.DuckDBColumn, error) {
	out := make([]planner.DuckDBColumn, sc.NumFields())
	for i, f := range sc.Fields() {
		t, ok := columnType(f.Type)
		if !ok {
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q has Arrow type %s, which the sandbox does not support", f.Name, f.Type)
		}
		if ts, ok := f.Type.(*arrow.TimestampType); ok && ts.Unit == arrow.Nanosecond {
			// DuckDB reads it as TIMESTAMP_NS, which it rounds to
			// microseconds where the wire's timestamps truncate (and as
			// TIMESTAMPTZ_NS, which it cannot turn into microseconds at
			// all).
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q: a timestamp in nanoseconds is not supported yet in DuckDB; send microseconds (the wire's timestamp[us, UTC])", f.Name)
		}
		out[i] = planner.DuckDBColumn{Name: f.Name, Type: t}
	}
	return out, nil
}

// DuckDBSchema is the Arrow schema of a rendered plan's output columns
// (planner.DuckDBQuery.Columns), the one the broker promises the client:
// integer int64, float float64, decimal decimal128(38,4), text utf8,
// binary binary, boolean bool, date date64, timestamp timestamp[us, UTC];
// every field nullable and, but for binary, carrying its type under
// sluice.MetaType (for the fragments' Arrow types, adapters.Schema, the two
// agree but for the metadata of binary columns).
func DuckDBSchema(cols []planner.DuckDBColumn) (*arrow.Schema, error) {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		var dt arrow.DataType
		switch c.Type {
		case sluice.TypeInteger:
			dt = arrow.PrimitiveTypes.Int64
		case sluice.TypeFloat:
			dt = arrow.PrimitiveTypes.Float64
		case sluice.TypeDecimal:
			dt = decType
		case sluice.TypeText:
			dt = arrow.BinaryTypes.String
		case sluice.TypeBinary:
			dt = arrow.BinaryTypes.Binary
		case sluice.TypeBoolean:
			dt = arrow.FixedWidthTypes.Boolean
		case sluice.TypeDate:
			dt = arrow.FixedWidthTypes.Date64
		case sluice.TypeTimestamp:
			dt = tsType
		default:
			return nil, sluice.Errorf(sluice.EInternal, "column %q has type %q, which the sandbox does not emit", c.Name, c.Type)
		}
		md := arrow.NewMetadata([]string{sluice.MetaType}, []string{string(c.Type)})
		if c.Type == sluice.TypeBinary {
			md = arrow.Metadata{}
		}
		fs[i] = arrow.Field{Name: c.Name, Type: dt, Nullable: true, Metadata: md}
	}
	return arrow.NewSchema(fs, nil), nil
}

// ConformDuckDB converts a record DuckDB produced for a rendered plan to
// the schema want (DuckDBSchema of the rendered columns): it takes want's
// fields (names, metadata, and the zone of timestamps), and turns DuckDB's
// date32 into date64. Every other column must already have want's type.
// The caller releases the result.
func ConformDuckDB(mem memory.Allocator, rec arrow.Record, want *arrow.Schema) (arrow.Record, error) {
	if int(rec.NumCols()) != want.NumFields() {
		return nil, sluice.Errorf(sluice.EInternal, "DuckDB returned %d columns; the plan has %d", rec.NumCols(), want.NumFields())
	}
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, a := range cols {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i, a := range rec.Columns() {
		wt := want.Field(i).Type
		switch {
		case arrow.TypeEqual(a.DataType(), wt):
			a.Retain()
			cols[i] = a
		case a.DataType().ID() == arrow.DATE32 && wt.ID() == arrow.DATE64:
			d := a.(*array.Date32)
			b := array.NewDate64Builder(mem)
			b.Reserve(d.Len())
			for k := 0; k < d.Len(); k++ {
				if d.IsNull(k) {
					b.AppendNull()
				} else {
					b.Append(arrow.Date64(int64(d.Value(k)) * 86400000))
				}
			}
			cols[i] = b.NewArray()
			b.Release()
		case a.DataType().ID() == arrow.TIMESTAMP && wt.ID() == arrow.TIMESTAMP &&
			a.DataType().(*arrow.TimestampType).Unit == wt.(*arrow.TimestampType).Unit:
			// The same instants; only the zone label differs.
			data := array.NewData(wt, a.Len(), a.Data().Buffers(), nil, a.NullN(), a.Data().Offset())
			cols[i] = array.MakeFromData(data)
			data.Release()
		default:
			return nil, sluice.Errorf(sluice.EInternal, "DuckDB returned %s for column %q; the sandbox gives %s", a.DataType(), want.Field(i).Name, wt)
		}
	}
	return array.NewRecord(want, cols, rec.NumRows()), nil
}
