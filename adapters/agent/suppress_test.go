package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/sandbox/sketch"
)

// TestSuppressedGroupsReported: when the agent enforces a minimum group
// size it drops the small groups itself, tells the broker how many it
// dropped in the trailer, and sends nothing else about them: not their
// rows, not the hidden row-count column. LIMIT and OFFSET apply to the
// groups kept, as HAVING COUNT(*) >= k in the database would have.
// Districts: A has 12 rows, B 5, C 13.
func TestSuppressedGroupsReported(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithBatchRows(1), WithAuditLog(l)}, nil) // one group per batch: the filter works across batches
	c := fx.broker(t)
	grouped := func(mod func(f *planner.Fragment)) *planner.Fragment {
		f := frag("residents", outsider, sel("district", col("district"), "n", agg("count", nil), "total", agg("sum", col("allowance"))))
		f.GroupBy = []*planner.Expr{col("district")}
		f.OrderBy = []planner.OrderItem{{Expr: col("district")}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	limit := func(n int64) *int64 { return &n }
	tests := []struct {
		name           string
		f              *planner.Fragment
		want           []string // districts released
		wantSuppressed int64    // -1: no count reported
	}{
		{"agent's floor k=10", grouped(nil), []string{"A", "C"}, 1},
		{"broker's stricter k", grouped(func(f *planner.Fragment) { f.MinGroupSize = 13 }), []string{"C"}, 2},
		{"every group suppressed", grouped(func(f *planner.Fragment) { f.MinGroupSize = 100 }), nil, 3},
		{"limit applies to kept groups", grouped(func(f *planner.Fragment) { f.Limit = limit(1) }), []string{"A"}, 1},
		{"offset applies to kept groups", grouped(func(f *planner.Fragment) { f.Limit, f.Offset = limit(5), 1 }), []string{"C"}, 1},
		{"descending with limit", grouped(func(f *planner.Fragment) {
			f.OrderBy[0].Desc = true
			f.Limit = limit(1)
		}), []string{"C"}, 1},
		{"the analyst's HAVING comes first", grouped(func(f *planner.Fragment) {
			f.Having = bin("<", agg("count", nil), num(13))
		}), []string{"A"}, 1},
		{"owner: no minimum group size, no count", func() *planner.Fragment {
			f := grouped(nil)
			f.Requester = owner
			return f
		}(), []string{"A", "B", "C"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Fetch(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Release()
			// Besides the outputs, one sketch per contributor set (every
			// row, SUM's column) — never the person keys or their lists.
			sets := 0
			if tt.wantSuppressed >= 0 {
				sets = 2
			}
			want := len(tt.f.Select) + sets
			if got := s.Schema().NumFields(); got != want {
				t.Fatalf("schema has %d fields, want %d (outputs and %d sketches): %s", got, want, sets, s.Schema())
			}
			for i := len(tt.f.Select); i < want; i++ {
				if f := s.Schema().Field(i); f.Name != planner.UnitSetPrefix+fmt.Sprint(i-len(tt.f.Select)) || f.Type.ID() != arrow.BINARY {
					t.Fatalf("field %d is %s, want a sketch", i, f)
				}
			}
			var got []string
			for s.Next() {
				rec := s.Record()
				if rec.NumCols() != int64(want) {
					t.Fatalf("a batch has %d columns", rec.NumCols())
				}
				for r := range int(rec.NumRows()) {
					got = append(got, cell(rec.Column(0), r))
					for i := len(tt.f.Select); i < want; i++ {
						sk, err := sketch.Parse(rec.Column(i).(*array.Binary).Value(r))
						if err != nil {
							t.Fatalf("group %s: the sketch does not parse: %v", cell(rec.Column(0), r), err)
						}
						if w := districtSizes[cell(rec.Column(0), r)]; sk.Units() != w {
							t.Errorf("group %s: the sketch counts %d persons, want %d", cell(rec.Column(0), r), sk.Units(), w)
						}
					}
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("districts %v, want %v", got, tt.want)
			}
			n, ok := s.SuppressedGroups()
			switch {
			case tt.wantSuppressed < 0 && ok:
				t.Errorf("a count %d was reported for a fragment without one", n)
			case tt.wantSuppressed >= 0 && (!ok || n != tt.wantSuppressed):
				t.Errorf("suppressed groups %d (reported %v), want %d", n, ok, tt.wantSuppressed)
			}
			// The agent's own log records the count it reported.
			logged, inLog := lastEntry(t, l).Obligations["suppressed_groups"]
			switch {
			case tt.wantSuppressed < 0 && inLog:
				t.Errorf("the agent logged a count %v for a fragment without one", logged)
			case tt.wantSuppressed >= 0 && fmt.Sprint(logged) != fmt.Sprint(tt.wantSuppressed):
				t.Errorf("the agent logged suppressed_groups %v, want %d", logged, tt.wantSuppressed)
			}
			// The trailer says nothing else about the suppressed groups.
			for k := range s.gs.Trailer() {
				if strings.HasPrefix(k, "x-sluice") && k != suppressedHeader {
					t.Errorf("unexpected trailer %s on a successful stream", k)
				}
			}
		})
	}
}

// TestDistinctRefusedUnderK: DISTINCT would change which persons count;
// GROUP BY says the same, so the agent refuses it in a protected release.
func TestDistinctRefusedUnderK(t *testing.T) {
	fx := newFixture(t, nil, nil)
	f := frag("residents", outsider, sel("district", col("district"), "n", agg("count", nil)))
	f.GroupBy = []*planner.Expr{col("district")}
	f.Distinct = true
	f.MinGroupSize = 10
	s, err := fx.broker(t).Fetch(context.Background(), f)
	if err == nil {
		for s.Next() {
		}
		err = s.Err()
		s.Release()
	}
	if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(sluice.ErrorMessage(err), "DISTINCT") {
		t.Fatalf("want ENotSupported naming DISTINCT, got %v", err)
	}
}

// TestSuppressedGroupsNotReportedOnError: a stream that fails carries no
// count, so a broker never reports one for a result that is not complete.
func TestSuppressedGroupsNotReportedOnError(t *testing.T) {
	fx := newFixture(t, nil, nil)
	f := frag("residents", outsider, sel("district", col("district"), "n", agg("count", nil)))
	f.GroupBy = []*planner.Expr{col("nope")}
	f.MinGroupSize = 10
	s, err := fx.broker(t).Fetch(context.Background(), f)
	if err == nil {
		defer s.Release()
		for s.Next() {
		}
		if s.Err() == nil {
			t.Fatal("a fragment on a missing column succeeded")
		}
		if n, ok := s.SuppressedGroups(); ok {
			t.Fatalf("a failed stream reported %d suppressed groups", n)
		}
	}
}
