package gate

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// TestFilterApply: a gate fed batch by batch (as an agent's scan pushes
// them) suppresses the groups under k persons and counts them exactly as a
// pulled one, across batches, drops the unit column and keeps the
// released groups' sets in release order.
func TestFilterApply(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	g, err := NewFilter(groupSchema, Obligations{Units: personsK(10)}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	batches := []struct {
		rows     []groupRow
		released []string
	}{
		{[]groupRow{{"A", 40, 1, pseudonyms(0, 12, 28)}, {"B", 5, 1, pseudonyms(100, 5, 0)}}, []string{"A"}},
		{[]groupRow{{"C", 30, 1, pseudonyms(200, 3, 27)}, {"D", 1, 1, nil}}, nil},
		{[]groupRow{{"E", 10, 1, pseudonyms(300, 10, 0)}}, []string{"E"}},
	}
	for i, b := range batches {
		in := groupBatch(mem, b.rows...)
		out, err := g.Apply(in)
		in.Release()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if out != nil {
			if out.NumCols() != 3 || out.Schema().HasField("$units") {
				t.Fatalf("batch %d: the unit column was released: %s", i, out.Schema())
			}
			for r := range int(out.NumRows()) {
				got = append(got, out.Column(0).ValueStr(r))
			}
			out.Release()
		}
		if !slices.Equal(got, b.released) {
			t.Fatalf("batch %d: released %v, want %v", i, got, b.released)
		}
	}
	if rep := g.Report(); rep.SuppressedGroups != 3 || rep.Rows != 2 {
		t.Fatalf("report %+v, want 3 suppressed and 2 released", rep)
	}
	if sets, want := setsOf(t, g), []string{"0/$units/health.insured/10/12", "1/$units/health.insured/10/10"}; !slices.Equal(sets, want) {
		t.Fatalf("sets %v, want %v", sets, want)
	}
	// A bad batch ends the gate, for good: errors are sticky.
	if _, err := g.Apply(nil); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("nil batch: %v", err)
	}
	in := groupBatch(mem, groupRow{"F", 20, 1, pseudonyms(400, 20, 0)})
	defer in.Release()
	if _, err := g.Apply(in); err == nil {
		t.Fatal("a gate that failed accepted another batch")
	}
	if _, err := NewFilter(nil, Obligations{}); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("no schema: %v", err)
	}
}
