package gate

import (
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// TestFilterApply: a gate fed batch by batch (as an agent's scan pushes
// them) suppresses and counts exactly as a pulled one, across batches, and
// drops the row-count column.
func TestFilterApply(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	g, err := NewFilter(groupSchema, Obligations{K: 10, RowCountColumn: "__rows"}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	batches := []struct {
		rows     []groupRow
		released []string
	}{
		{[]groupRow{{"A", 12, 1, 12, false}, {"B", 5, 1, 5, false}}, []string{"A"}},
		{[]groupRow{{"C", 3, 1, 3, false}, {"D", 1, 1, 0, true}}, nil},
		{[]groupRow{{"E", 10, 1, 10, false}}, []string{"E"}},
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
			if out.NumCols() != 3 || out.Schema().HasField("__rows") {
				t.Fatalf("batch %d: the row-count column was released: %s", i, out.Schema())
			}
			for r := range int(out.NumRows()) {
				got = append(got, out.Column(0).ValueStr(r))
			}
			out.Release()
		}
		if len(got) != len(b.released) || (len(got) > 0 && got[0] != b.released[0]) {
			t.Fatalf("batch %d: released %v, want %v", i, got, b.released)
		}
	}
	if rep := g.Report(); rep.SuppressedGroups != 3 || rep.Rows != 2 {
		t.Fatalf("report %+v, want 3 suppressed and 2 released", rep)
	}
	// A bad batch ends the gate, for good: errors are sticky.
	if _, err := g.Apply(nil); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("nil batch: %v", err)
	}
	in := groupBatch(mem, groupRow{"F", 20, 1, 20, false})
	defer in.Release()
	if _, err := g.Apply(in); err == nil {
		t.Fatal("a gate that failed accepted another batch")
	}
	if _, err := NewFilter(nil, Obligations{}); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("no schema: %v", err)
	}
}
