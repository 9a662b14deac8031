package gate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/sandbox/sketch"
)

// pseudonyms is n distinct 8-byte pseudonyms starting at from, with the
// first one repeated rep extra times (one person with several rows).
func pseudonyms(from, n, rep int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		out = binary.LittleEndian.AppendUint64(out, uint64(from+i)*0x9E3779B97F4A7C15)
	}
	for i := 0; i < rep && n > 0; i++ {
		out = append(out, out[:8]...)
	}
	return out
}

var unitsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "district", Type: arrow.BinaryTypes.String},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	{Name: "$units1", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "$units2", Type: arrow.BinaryTypes.Binary, Nullable: true},
}, nil)

func unitsBatch(mem memory.Allocator, rows ...[4]any) arrow.Record {
	b := array.NewRecordBuilder(mem, unitsSchema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r[0].(string))
		b.Field(1).(*array.Int64Builder).Append(int64(r[1].(int)))
		for i := 2; i < 4; i++ {
			if r[i] == nil {
				b.Field(i).(*array.BinaryBuilder).AppendNull()
			} else {
				b.Field(i).(*array.BinaryBuilder).Append(r[i].([]byte))
			}
		}
	}
	return b.NewRecord()
}

func drainRecs(t *testing.T, g *Gate) []arrow.Record {
	t.Helper()
	var out []arrow.Record
	for {
		rec, err := g.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

// TestUnitsSuppressByPersons: a group is released only when each of its
// contributor sets holds k distinct persons, however many rows it has;
// the sketches travel on (Keep) or are stripped and kept for the guard.
func TestUnitsSuppressByPersons(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := unitsBatch(mem,
		[4]any{"A", 40, pseudonyms(0, 12, 28), pseudonyms(0, 12, 0)},   // 40 rows, 12 persons: kept
		[4]any{"B", 40, pseudonyms(100, 4, 36), pseudonyms(100, 4, 0)}, // 40 rows but 4 persons: suppressed
		[4]any{"C", 15, pseudonyms(200, 15, 0), pseudonyms(200, 9, 0)}, // 15 persons, but 9 reach the second aggregate
		[4]any{"D", 11, pseudonyms(300, 11, 0), nil},                   // NULL: no person reaches it
		[4]any{"E", 10, pseudonyms(400, 10, 0), pseudonyms(400, 10, 0)},
	)
	units := []UnitColumn{
		{Name: "$units1", Dataset: "health.insured", K: 10, Format: UnitPseudonyms, Keep: true},
		{Name: "$units2", Dataset: "health.insured", K: 10, Format: UnitPseudonyms, Keep: true},
	}
	in := &sliceStream{schema: unitsSchema, recs: []arrow.Record{rec}}
	g, err := New(in, Obligations{Units: units}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	out := drainRecs(t, g)
	var got []string
	for _, r := range out {
		if r.Schema().NumFields() != 4 || r.Schema().Field(2).Type.ID() != arrow.BINARY {
			t.Fatalf("kept sketches: schema %s", r.Schema())
		}
		for i := 0; i < int(r.NumRows()); i++ {
			sk, err := sketch.Parse(r.Column(2).(*array.Binary).Value(i))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s:%d", r.Column(0).(*array.String).Value(i), sk.Units()))
		}
		r.Release()
	}
	if strings.Join(got, " ") != "A:12 E:10" {
		t.Fatalf("released %v, want A with 12 persons and E with 10", got)
	}
	if rep := g.Report(); rep.SuppressedGroups != 3 || rep.Rows != 2 {
		t.Fatalf("report %+v: want 3 suppressed, 2 released", rep)
	}
	if len(g.Sets()) != 0 {
		t.Fatalf("kept sketches are not the guard's: %v", g.Sets())
	}
}

// TestUnitsStripAndRecord: the last gate drops the sketches from what the
// client gets and keeps each released row's for the differencing guard.
func TestUnitsStripAndRecord(t *testing.T) {
	b := sketch.NewBuilder(10)
	sketchOf := func(from, n int) []byte {
		b.Reset()
		for i := 0; i < n; i++ {
			b.Add(uint64(from + i))
		}
		return b.AppendSketch(nil)
	}
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	recs := []arrow.Record{
		unitsBatch(mem, [4]any{"A", 1, sketchOf(0, 20), sketchOf(0, 20)}, [4]any{"B", 1, sketchOf(50, 3), sketchOf(50, 3)}),
		unitsBatch(mem, [4]any{"C", 1, sketchOf(100, 11), sketchOf(100, 10)}),
	}
	units := []UnitColumn{
		{Name: "$units1", Dataset: "health.insured", K: 10, Format: UnitSketch},
		{Name: "$units2", Dataset: "civil.residents", K: 10, Format: UnitSketch},
	}
	g, err := New(&sliceStream{schema: unitsSchema, recs: recs}, Obligations{Units: units}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if g.Schema().NumFields() != 2 {
		t.Fatalf("the client's schema keeps %s", g.Schema())
	}
	rows := 0
	for _, r := range drainRecs(t, g) {
		rows += int(r.NumRows())
		r.Release()
	}
	sets := g.Sets()
	if rows != 2 || len(sets) != 4 {
		t.Fatalf("%d rows, %d sets: want A and C, two sets each", rows, len(sets))
	}
	var got []string
	for _, s := range sets {
		sk, err := sketch.Parse(s.Sketch)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d/%s/%s/%d", s.Row, s.Column, s.Dataset, sk.Units()))
	}
	want := "0/$units1/health.insured/20 0/$units2/civil.residents/20 1/$units1/health.insured/11 1/$units2/civil.residents/10"
	if strings.Join(got, " ") != want {
		t.Fatalf("sets %v\nwant %s", got, want)
	}
}

// TestUnitLists: an agent's SQL lists each group's person keys; the gate
// hashes them, counts each person once, checks the list against the
// database's count and sends a sketch in the list's place.
func TestUnitLists(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "d", Type: arrow.BinaryTypes.String},
		{Name: "__sluice_units_0", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "__sluice_unitn_0", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	batch := func(d, list string, n int64, null bool) arrow.Record {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.StringBuilder).Append(d)
		if null {
			b.Field(1).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(list)
		}
		b.Field(2).(*array.Int64Builder).Append(n)
		return b.NewRecord()
	}
	hashed := 0
	hash := func(v string) uint64 {
		hashed++
		var h uint64 = 1469598103934665603
		for i := 0; i < len(v); i++ {
			h = (h ^ uint64(v[i])) * 1099511628211
		}
		return h
	}
	var ids []string
	for i := 0; i < 11; i++ {
		ids = append(ids, fmt.Sprintf("1101011990%08d", i))
	}
	o := Obligations{Units: []UnitColumn{{Name: "__sluice_units_0", Dataset: "civil.residents", K: 10, Format: UnitList, CountColumn: "__sluice_unitn_0", Hash: hash, Keep: true}}}
	g, err := NewFilter(schema, o)
	if err != nil {
		t.Fatal(err)
	}
	if g.Schema().NumFields() != 2 || g.Schema().Field(1).Type.ID() != arrow.BINARY {
		t.Fatalf("want the count dropped and the list turned into a sketch: %s", g.Schema())
	}
	// 11 keys, one listed twice: 11 persons of 12 rows.
	list := strings.Join(append(ids, ids[3]), ",")
	rec := batch("A", list, 12, false)
	out, err := g.Apply(rec)
	rec.Release()
	if err != nil || out == nil {
		t.Fatalf("11 persons at k = 10: %v %v", out, err)
	}
	sk, err := sketch.Parse(out.Column(1).(*array.Binary).Value(0))
	if err != nil || sk.Units() != 11 || sk.Elements() != 12 {
		t.Fatalf("sketch: %v persons %d elements %d, want 11 and 12", err, sk.Units(), sk.Elements())
	}
	out.Release()
	if hashed != 12 {
		t.Fatalf("hashed %d keys, want 12", hashed)
	}
	// Below k; and NULL (no person at all).
	for _, r := range []arrow.Record{batch("B", strings.Join(ids[:9], ","), 9, false), batch("C", "", 0, true)} {
		out, err := g.Apply(r)
		r.Release()
		if err != nil || out != nil {
			t.Fatalf("a group under k was released: %v %v", out, err)
		}
	}
	// A key with a comma in it would split: the database's count tells.
	bad := batch("E", strings.Join(ids, ","), 10, false)
	defer bad.Release()
	if _, err := g.Apply(bad); sluice.ErrorCode(err) != sluice.EInternal || !strings.Contains(sluice.ErrorMessage(err), "comma") {
		t.Fatalf("a list that disagrees with its count: want EInternal, got %v", err)
	}
}

// TestUnitListSameAs: a contributor set the database sends as NULL with
// the group's count is the group's set; NULL with another count is an
// empty set, which no group under k survives.
func TestUnitListSameAs(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "l0", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n0", Type: arrow.PrimitiveTypes.Int64},
		{Name: "l1", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n1", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, fmt.Sprint(1000+i))
	}
	hash := func(v string) uint64 { n, _ := strconv.ParseUint(v, 10, 64); return n * 0x9E3779B97F4A7C15 }
	o := Obligations{Units: []UnitColumn{
		{Name: "l0", K: 10, Format: UnitList, CountColumn: "n0", Hash: hash, Keep: true},
		{Name: "l1", K: 10, Format: UnitList, CountColumn: "n1", Hash: hash, Keep: true, SameAs: "l0"},
	}}
	g, err := NewFilter(schema, o)
	if err != nil {
		t.Fatal(err)
	}
	row := func(l1 *string, n1 int64) arrow.Record {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.StringBuilder).Append(strings.Join(ids, ","))
		b.Field(1).(*array.Int64Builder).Append(12)
		if l1 == nil {
			b.Field(2).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(2).(*array.StringBuilder).Append(*l1)
		}
		b.Field(3).(*array.Int64Builder).Append(n1)
		return b.NewRecord()
	}
	same := row(nil, 12)
	defer same.Release()
	out, err := g.Apply(same)
	if err != nil || out == nil {
		t.Fatalf("the group's own set: %v %v", out, err)
	}
	if a, b := out.Column(0).(*array.Binary).Value(0), out.Column(1).(*array.Binary).Value(0); string(a) != string(b) {
		t.Fatal("a set sent as the group's got another sketch")
	}
	out.Release()
	empty := row(nil, 0)
	defer empty.Release()
	if out, err := g.Apply(empty); err != nil || out != nil {
		t.Fatalf("an empty set under k: %v %v", out, err)
	}
	fewer := strings.Join(ids[:9], ",")
	nine := row(&fewer, 9)
	defer nine.Release()
	if out, err := g.Apply(nine); err != nil || out != nil {
		t.Fatalf("nine persons reach the aggregate: %v %v", out, err)
	}
}

func TestUnitObligationErrors(t *testing.T) {
	ok := UnitColumn{Name: "$units1", Dataset: "d.x", K: 10, Format: UnitPseudonyms}
	cases := []struct {
		name string
		u    []UnitColumn
	}{
		{"k below 1", []UnitColumn{{Name: "$units1", K: 0, Format: UnitPseudonyms}}},
		{"missing column", []UnitColumn{{Name: "nope", K: 10, Format: UnitPseudonyms}}},
		{"twice", []UnitColumn{ok, ok}},
		{"list of binary", []UnitColumn{{Name: "$units1", K: 10, Format: UnitList, CountColumn: "n", Hash: func(string) uint64 { return 0 }}}},
		{"text as pseudonyms", []UnitColumn{{Name: "district", K: 10, Format: UnitPseudonyms}}},
		{"no format", []UnitColumn{{Name: "$units1", K: 10}}},
	}
	for _, c := range cases {
		if _, err := NewFilter(unitsSchema, Obligations{Units: c.u}); sluice.ErrorCode(err) != sluice.EInvalid {
			t.Errorf("%s: want EInvalid, got %v", c.name, err)
		}
	}
	g, err := NewFilter(unitsSchema, Obligations{Units: []UnitColumn{{Name: "$units1", K: 10, Format: UnitSketch}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := unitsBatch(memory.DefaultAllocator, [4]any{"A", 1, []byte("not a sketch"), nil})
	defer rec.Release()
	if _, err := g.Apply(rec); sluice.ErrorCode(err) != sluice.EInternal {
		t.Errorf("a damaged sketch: want EInternal, got %v", err)
	}
}
