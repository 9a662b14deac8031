package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/sandbox/gate"
	"github.com/sluice-gov/sluice/sandbox/sketch"
)

// person is person p's 8-byte pseudonym, as a protected fragment streams
// it with each of the person's rows.
func person(p int) []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(p)*0x9E3779B97F4A7C15)
}

// TestHashAggregateUnits: the units aggregate collects each group's
// non-NULL pseudonyms (the NULL group included), in input order, once per
// row; a group none of whose rows has one gets an empty value, not NULL.
func TestHashAggregateUnits(t *testing.T) {
	sc := schemaOf(col{"x", arrow.PrimitiveTypes.Int64}, col{"u", arrow.BinaryTypes.Binary})
	q, _ := newQ(t, Limits{BatchSize: 2})
	src := scan(t, q, sc,
		[]any{1, person(1)}, []any{5, nil}, []any{1, person(2)}, []any{nil, person(3)},
		[]any{1, person(1)}, []any{nil, nil}, []any{5, nil})
	op, err := q.HashAggregate(src, []string{"x"}, []Agg{{Func: AggCountStar, Alias: "rows"}, {Func: AggUnits, Column: "u", Alias: "persons"}})
	if err != nil {
		t.Fatal(err)
	}
	if f := op.Schema().Field(2); f.Name != "persons" || f.Type.ID() != arrow.BINARY {
		t.Fatalf("units field %v, want binary \"persons\"", f)
	}
	got := mustRows(t, q, op, nil)
	cat := func(ps ...int) string {
		var b []byte
		for _, p := range ps {
			b = append(b, person(p)...)
		}
		return string(b)
	}
	sameRows(t, got, [][]any{{1, 3, cat(1, 2, 1)}, {5, 2, ""}, {nil, 2, cat(3)}})

	q2, _ := newQ(t, Limits{})
	src2 := scan(t, q2, schemaOf(col{"x", arrow.PrimitiveTypes.Int64}, col{"u", arrow.BinaryTypes.Binary}), []any{1, []byte{1, 2, 3}})
	defer src2.Close()
	_, err = q2.HashAggregate(src2, nil, []Agg{{Func: AggUnits, Column: "x"}})
	wantCode(t, err, sluice.EInvalid, "binary pseudonyms")
	op2, err := q2.HashAggregate(src2, nil, []Agg{{Func: AggUnits, Column: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	defer op2.Close()
	_, err = drain(t, q2, op2)
	wantCode(t, err, sluice.EInternal, "8")
}

// TestAggregateThenGateCountsPersons is the path of a protected release
// across departments: the aggregate collects each group's persons per
// contributor set, the gate right after it suppresses the groups under k
// persons, however many rows they have, and sends the rest on with their
// sketches; the last gate checks k again, strips the sketches and keeps
// them for the differencing guard. Nothing leaks from the query's memory.
func TestAggregateThenGateCountsPersons(t *testing.T) {
	const k = 3
	sc := schemaOf(col{"district", arrow.BinaryTypes.String}, col{"claims", arrow.PrimitiveTypes.Int64},
		col{"$u", arrow.BinaryTypes.Binary}, col{"$claims", arrow.BinaryTypes.Binary})
	var rows [][]any
	add := func(d string, p, times int, claims any) {
		for range times {
			var u any = person(p)
			if p < 0 {
				u = nil // a LEFT JOIN's unmatched row: no person of the protected dataset
			}
			var cu any
			if claims != nil {
				cu = u
			}
			rows = append(rows, []any{d, claims, u, cu})
		}
	}
	// 城东区: 3 persons, 3 rows: released.
	add("城东区", 1, 1, 10)
	add("城东区", 2, 1, 20)
	add("城东区", 3, 1, 30)
	// 城西区: 12 rows of 2 persons: suppressed.
	add("城西区", 4, 6, 1)
	add("城西区", 5, 6, 1)
	// 城中区: 8 rows, 3 persons, but only 2 of them reach SUM(claims).
	add("城中区", 6, 3, 5)
	add("城中区", 7, 3, 5)
	add("城中区", 8, 2, nil)
	// 城北区: 1 person among 20 unmatched rows: suppressed.
	add("城北区", 9, 1, 7)
	add("城北区", -1, 20, nil)
	// 湟中区: 4 persons, one with 3 rows: released.
	add("湟中区", 10, 3, 2)
	add("湟中区", 11, 1, 2)
	add("湟中区", 12, 1, 2)
	add("湟中区", 13, 1, 2)

	q, mem := newQ(t, Limits{BatchSize: 4})
	src := scan(t, q, sc, rows...)
	op, err := q.HashAggregate(src, []string{"district"}, []Agg{
		{Func: AggCountStar, Alias: "n"},
		{Func: AggSum, Column: "claims", Alias: "total"},
		{Func: AggUnits, Column: "$u", Alias: "$units_0"},
		{Func: AggUnits, Column: "$claims", Alias: "$units_1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	first, err := gate.New(op, gate.Obligations{Units: []gate.UnitColumn{
		{Name: "$units_0", Dataset: "health.insured", K: k, Format: gate.UnitPseudonyms, Keep: true},
		{Name: "$units_1", Dataset: "health.insured", K: k, Format: gate.UnitPseudonyms, Keep: true},
	}}, gate.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	last, err := gate.New(first, gate.Obligations{Units: []gate.UnitColumn{
		{Name: "$units_0", Dataset: "health.insured", K: k, Format: gate.UnitSketch},
		{Name: "$units_1", Dataset: "health.insured", K: k, Format: gate.UnitSketch},
	}}, gate.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if last.Schema().NumFields() != 3 {
		t.Fatalf("the client's schema %s keeps more than district, n, total", last.Schema())
	}
	var got [][]any
	for {
		rec, err := last.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rowsOf([]arrow.Record{rec})...)
		rec.Release()
	}
	sameRows(t, got, [][]any{{"城东区", 3, 60}, {"湟中区", 6, 12}})
	if r := first.Report(); r.Rows != 2 || r.SuppressedGroups != 3 {
		t.Fatalf("the aggregate's gate: %+v, want 2 released and 3 suppressed", r)
	}
	if r := last.Report(); r.Rows != 2 || r.SuppressedGroups != 0 {
		t.Fatalf("the last gate: %+v, want the same 2 groups", r)
	}
	var sets []string
	for _, s := range last.Sets() {
		sk, err := sketch.Parse(s.Sketch)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, fmt.Sprintf("%d/%s/%d/%d", s.Row, s.Column, sk.Units(), sk.Elements()))
	}
	slices.Sort(sets)
	if want := []string{"0/$units_0/3/3", "0/$units_1/3/3", "1/$units_0/4/6", "1/$units_1/4/6"}; !slices.Equal(sets, want) {
		t.Fatalf("sets %v, want %v", sets, want)
	}
}
