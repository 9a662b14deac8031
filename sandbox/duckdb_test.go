package sandbox

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// TestDuckDBColumns: the Arrow types an input may have and the types the
// sandbox reads them as; any other type is refused.
func TestDuckDBColumns(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}},
		{Name: "text", Type: arrow.BinaryTypes.String},
		{Name: "bin", Type: arrow.BinaryTypes.Binary},
		{Name: "bool", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "d64", Type: arrow.FixedWidthTypes.Date64},
		{Name: "d32", Type: arrow.FixedWidthTypes.Date32},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Asia/Shanghai"}},
		{Name: "null", Type: arrow.Null},
	}, nil)
	cols, err := DuckDBColumns(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := []sluice.ColumnType{sluice.TypeInteger, sluice.TypeInteger, sluice.TypeFloat, sluice.TypeFloat, sluice.TypeDecimal,
		sluice.TypeText, sluice.TypeBinary, sluice.TypeBoolean, sluice.TypeDate, sluice.TypeDate, sluice.TypeTimestamp, planner.DuckDBNull}
	for k, c := range cols {
		if c.Name != sc.Field(k).Name || c.Type != want[k] {
			t.Errorf("column %d = %+v, want %s %s", k, c, sc.Field(k).Name, want[k])
		}
	}
	for _, bad := range []arrow.Field{
		{Name: "x", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
		{Name: "x", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "x", Type: &arrow.Decimal128Type{Precision: 0, Scale: 0}},
	} {
		_, err := DuckDBColumns(arrow.NewSchema([]arrow.Field{bad}, nil))
		wantCode(t, err, sluice.ENotSupported, "does not support")
	}
	// DuckDB rounds nanoseconds where the wire truncates them.
	for _, tz := range []string{"", "UTC"} {
		ns := arrow.NewSchema([]arrow.Field{{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: tz}}}, nil)
		_, err := DuckDBColumns(ns)
		wantCode(t, err, sluice.ENotSupported, "nanoseconds")
	}
}

// TestDuckDBSchema: the schema the broker promises for each output type.
func TestDuckDBSchema(t *testing.T) {
	types := []sluice.ColumnType{sluice.TypeInteger, sluice.TypeFloat, sluice.TypeDecimal, sluice.TypeText,
		sluice.TypeBinary, sluice.TypeBoolean, sluice.TypeDate, sluice.TypeTimestamp}
	want := []string{"int64", "float64", "decimal(38, 4)", "utf8", "binary", "bool", "date64", "timestamp[us, tz=UTC]"}
	var cols []planner.DuckDBColumn
	for _, ty := range types {
		cols = append(cols, planner.DuckDBColumn{Name: "c_" + string(ty), Type: ty})
	}
	sc, err := DuckDBSchema(cols)
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range sc.Fields() {
		meta, _ := f.Metadata.GetValue(sluice.MetaType)
		wantMeta := string(types[k])
		if types[k] == sluice.TypeBinary {
			wantMeta = ""
		}
		if f.Name != cols[k].Name || f.Type.String() != want[k] || !f.Nullable || meta != wantMeta {
			t.Errorf("field %d = %v (metadata %q), want %s %s %q", k, f, meta, cols[k].Name, want[k], wantMeta)
		}
	}
	_, err = DuckDBSchema([]planner.DuckDBColumn{{Name: "n", Type: planner.DuckDBNull}})
	wantCode(t, err, sluice.EInternal, "does not emit")
}

// TestConformDuckDB: DuckDB's date32 becomes date64, a timestamp's zone
// label becomes the promised one, names and metadata are the promised
// ones; any other difference is an internal error.
func TestConformDuckDB(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	want, err := DuckDBSchema([]planner.DuckDBColumn{{Name: "n", Type: sluice.TypeInteger}, {Name: "day", Type: sluice.TypeDate}, {Name: "at", Type: sluice.TypeTimestamp}})
	if err != nil {
		t.Fatal(err)
	}
	duck := schemaOf(col{"n_", arrow.PrimitiveTypes.Int64}, col{"day_", arrow.FixedWidthTypes.Date32},
		col{"at_", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Asia/Shanghai"}})
	rec := buildRecord(t, mem, duck, [][]any{{1, "2020-02-29", "2020-02-29T12:00:00Z"}, {nil, nil, nil}, {3, "1969-07-20", "1969-07-20T20:17:40Z"}})
	defer rec.Release()
	out, err := ConformDuckDB(mem, rec, want)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if !out.Schema().Equal(want) {
		t.Errorf("schema %v, want %v", out.Schema(), want)
	}
	sameRows(t, rowsOf([]arrow.Record{out}), [][]any{{1, "2020-02-29", "2020-02-29T12:00:00Z"}, {nil, nil, nil}, {3, "1969-07-20", "1969-07-20T20:17:40Z"}})

	other := schemaOf(col{"n", arrow.PrimitiveTypes.Int32}, col{"day", arrow.FixedWidthTypes.Date32}, col{"at", tsType})
	bad := buildRecord(t, mem, other, [][]any{{1, "2020-01-01", "2020-01-01T00:00:00Z"}})
	defer bad.Release()
	_, err = ConformDuckDB(mem, bad, want)
	wantCode(t, err, sluice.EInternal, "int32")
	_, err = ConformDuckDB(mem, rec, arrow.NewSchema(want.Fields()[:2], nil))
	wantCode(t, err, sluice.EInternal, "3 columns")
}
