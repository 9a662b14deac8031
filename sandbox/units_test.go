//go:build duckdb_arrow

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

// persons is a units() value as a multiset: its pseudonyms, sorted.
func persons(v any) []string {
	b := []byte(v.(string))
	var out []string
	for o := 0; o+8 <= len(b); o += 8 {
		out = append(out, fmt.Sprintf("%x", b[o:o+8]))
	}
	slices.Sort(out)
	return out
}

// TestHashAggregateUnits: the units aggregate collects each group's
// non-NULL pseudonyms (the NULL group included), once per row, in no
// particular order; a group none of whose rows has one gets an empty
// value, not NULL.
func TestHashAggregateUnits(t *testing.T) {
	sc := schemaOf(col{"x", arrow.PrimitiveTypes.Int64}, col{"u", arrow.BinaryTypes.Binary})
	in := newInput(t, nil, sc, 2,
		[]any{1, person(1)}, []any{5, nil}, []any{1, person(2)}, []any{nil, person(3)},
		[]any{1, person(1)}, []any{nil, nil}, []any{5, nil})
	bad := newInput(t, nil, sc, 0, []any{1, []byte{1, 2, 3}})
	p := openPath(t, nil, nil, in, bad)
	r := p.mustRun(nAgg(nFrag(0), []string{"x"}, "count_star", "", "rows", "units", "u", "persons"), pathOpts{})
	if f := r.schema.Field(2); f.Name != "persons" || f.Type.ID() != arrow.BINARY {
		t.Fatalf("units field %v, want binary \"persons\"", f)
	}
	cat := func(ps ...int) []string {
		var v []byte
		for _, p := range ps {
			v = append(v, person(p)...)
		}
		return persons(string(v))
	}
	want := map[any][]any{1: {3, cat(1, 2, 1)}, 5: {2, cat()}, nil: {2, cat(3)}}
	if len(r.rows) != len(want) {
		t.Fatalf("rows %v, want %d groups", r.rows, len(want))
	}
	for _, row := range r.rows {
		if row[2] == nil {
			t.Errorf("group %v: units is NULL, want empty", row[0])
			continue
		}
		w, ok := want[row[0]]
		if !ok || row[1] != w[0] || fmt.Sprint(persons(row[2])) != fmt.Sprint(w[1]) {
			t.Errorf("group %v: %v rows, persons %v; want %v", row[0], row[1], persons(row[2]), w)
		}
	}

	_, err := p.run(nAgg(nFrag(0), nil, "units", "x", ""), pathOpts{})
	wantCode(t, err, sluice.EInvalid, "binary pseudonyms")
	// A pseudonym that is not 8 bytes (an agent's bug) fails the query,
	// saying so (sluice.EInternal), as the old operators did.
	_, err = p.run(nAgg(nFrag(0), nil, "units", "u", ""), pathOpts{inputs: []int{1}})
	wantCode(t, err, sluice.EInternal, "not 8 bytes")
}

// conformed is an engine result as the gate reads it (broker/execute.go
// engineStream).
type conformed struct {
	schema *arrow.Schema
	recs   []arrow.Record
}

func (c *conformed) Schema() *arrow.Schema { return c.schema }
func (c *conformed) Next(ctx context.Context) (arrow.Record, error) {
	if len(c.recs) == 0 {
		return nil, io.EOF
	}
	r := c.recs[0]
	c.recs = c.recs[1:]
	return r, nil
}

// TestAggregateThenGateCountsPersons is the path of a protected release
// across departments: the aggregate collects each group's persons per
// contributor set, the gate right after it suppresses the groups under k
// persons, however many rows they have, and sends the rest on with their
// sketches; the last gate checks k again, strips the sketches and keeps
// them for the differencing guard. Nothing leaks from the memory of the
// result's hand-off.
func TestAggregateThenGateCountsPersons(t *testing.T) {
	const k = 3
	mem := checkedMem(t)
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

	p := openPath(t, nil, mem, newInput(t, mem, sc, 4, rows...))
	_, out, recs, err := p.query(context.Background(), nAgg(nFrag(0), []string{"district"},
		"count_star", "", "n",
		"sum", "claims", "total",
		"units", "$u", "$units_0",
		"units", "$claims", "$units_1"), pathOpts{})
	if err != nil {
		t.Fatal(err)
	}
	src := &conformed{schema: out, recs: recs}
	defer func() { releaseRecords(src.recs) }()
	first, err := gate.New(src, gate.Obligations{Units: []gate.UnitColumn{
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
	sameRowSet(t, got, [][]any{{"城东区", 3, 60}, {"湟中区", 6, 12}})
	if r := first.Report(); r.Rows != 2 || r.SuppressedGroups != 3 {
		t.Fatalf("the aggregate's gate: %+v, want 2 released and 3 suppressed", r)
	}
	if r := last.Report(); r.Rows != 2 || r.SuppressedGroups != 0 {
		t.Fatalf("the last gate: %+v, want the same 2 groups", r)
	}
	// Row is the released row's index, which follows the engine's group
	// order: compare the sets by district.
	district := map[int64]string{}
	for k, row := range got {
		district[int64(k)] = row[0].(string)
	}
	var sets []string
	for _, s := range last.Sets() {
		sk, err := sketch.Parse(s.Sketch)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, fmt.Sprintf("%s/%s/%d/%d", district[s.Row], s.Column, sk.Units(), sk.Elements()))
	}
	slices.Sort(sets)
	if want := []string{"城东区/$units_0/3/3", "城东区/$units_1/3/3", "湟中区/$units_0/4/6", "湟中区/$units_1/4/6"}; !slices.Equal(sets, want) {
		t.Fatalf("sets %v, want %v", sets, want)
	}
}
