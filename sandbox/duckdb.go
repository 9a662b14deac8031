package sandbox

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// Helpers for running a sandbox plan on DuckDB (planner.RenderDuckDB):
// the column types of a relation from its Arrow schema, the Arrow schema
// the hand-written operators give the output, and the conversion of
// DuckDB's Arrow output to that schema.

// DuckDBColumns returns the columns of an Arrow schema with the types the
// sandbox reads them as, for a planner.DuckDBRelation.
func DuckDBColumns(sc *arrow.Schema) ([]planner.DuckDBColumn, error) {
	out := make([]planner.DuckDBColumn, sc.NumFields())
	for i, f := range sc.Fields() {
		t, ok := typeOfArrow(f.Type)
		if !ok {
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q has Arrow type %s, which the sandbox does not support", f.Name, f.Type)
		}
		if ts, ok := f.Type.(*arrow.TimestampType); ok && ts.Unit == arrow.Nanosecond {
			// DuckDB reads it as TIMESTAMP_NS, which it rounds to
			// microseconds where the sandbox truncates (and as
			// TIMESTAMPTZ_NS, which it cannot turn into microseconds at
			// all).
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q: a timestamp in nanoseconds is not supported yet in DuckDB; send microseconds (the wire's timestamp[us, UTC])", f.Name)
		}
		ct := t.catalogType()
		switch t {
		case tBin:
			ct = sluice.TypeBinary
		case tNull:
			ct = planner.DuckDBNull
		}
		out[i] = planner.DuckDBColumn{Name: f.Name, Type: ct}
	}
	return out, nil
}

// DuckDBSchema is the Arrow schema the hand-written operators give
// columns of these types: each field as the sandbox emits a computed
// column (an input column passed through keeps its own field; for the
// fragments' Arrow types, adapters.Schema, the two agree but for the
// metadata of binary columns).
func DuckDBSchema(cols []planner.DuckDBColumn) (*arrow.Schema, error) {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		t, ok := vtypeOf(c.Type)
		if !ok {
			return nil, sluice.Errorf(sluice.EInternal, "column %q has type %q, which the sandbox does not emit", c.Name, c.Type)
		}
		fs[i] = fieldFor(c.Name, t)
	}
	return arrow.NewSchema(fs, nil), nil
}

func vtypeOf(t sluice.ColumnType) (vtype, bool) {
	switch t {
	case sluice.TypeInteger:
		return tInt, true
	case sluice.TypeFloat:
		return tFloat, true
	case sluice.TypeDecimal:
		return tDec, true
	case sluice.TypeText:
		return tStr, true
	case sluice.TypeBinary:
		return tBin, true
	case sluice.TypeBoolean:
		return tBool, true
	case sluice.TypeDate:
		return tDate, true
	case sluice.TypeTimestamp:
		return tTS, true
	}
	return 0, false
}

// ConformDuckDB converts a record DuckDB produced for a rendered plan to
// the schema want (DuckDBSchema of the rendered columns): it takes want's
// fields (names, metadata, and the zone of timestamps), and turns DuckDB's
// date32 into the sandbox's date64. Every other column must already have
// want's type. The caller releases the result.
func ConformDuckDB(mem memory.Allocator, rec arrow.Record, want *arrow.Schema) (arrow.Record, error) {
	if int(rec.NumCols()) != want.NumFields() {
		return nil, sluice.Errorf(sluice.EInternal, "DuckDB returned %d columns; the plan has %d", rec.NumCols(), want.NumFields())
	}
	cols := make([]arrow.Array, rec.NumCols())
	defer func() { releaseAll(cols) }()
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
