package planner

import (
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Privacy units: what "at least k persons" counts.
//
// A release is protected when the policy gives one of its datasets a
// minimum group size k. Every released group must then rest on at least k
// distinct persons of that dataset — its privacy unit, the column the
// catalog declares as the unique person key (sluice.Dataset.PrivacyUnit) —
// counted per aggregate: the persons whose rows reach it. For COUNT(*) and
// the group keys that is every row of the group; for an aggregate of a
// column, the rows where that column is not NULL (a LEFT JOIN, or missing
// values, can leave one person behind a large group). Each such
// contributor set travels, as the list of its persons' pseudonyms, up to
// the release gate, which counts it against k and sketches it for the
// differencing guard (broker/guard).
//
// One dataset: the agent's SQL lists the unit values of each set per group
// (RenderUnits); the agent's gate hashes them with the agent's own key,
// drops the groups under k and sends each kept group's sketches in the
// UnitSetPrefix columns. Several datasets: each protected fragment streams
// a pseudonym per row (Fragment.UnitAlias); CountUnits threads the
// pseudonyms through the sandbox plan to its one aggregate, which collects
// them per contributor set (Agg "units"), and on to the top of the plan.

const (
	// UnitSetPrefix names the columns that carry contributor sets: in an
	// agent's SQL the list of unit values, after the agent's gate (and in
	// the broker) the set's sketch.
	UnitSetPrefix = "__sluice_units_"
	// UnitCountPrefix names the SQL count of each listed set, which the
	// agent checks its parsed list against.
	UnitCountPrefix = "__sluice_unitn_"
	// reservedPrefix starts every column name Sluice adds to a result.
	reservedPrefix = "__sluice_"
	// unitSuffix names a protected fragment's pseudonym column in the
	// sandbox plan: "<alias>.$unit" (no catalog column starts with $).
	unitSuffix = ".$unit"
	// AggUnits is the sandbox aggregate that collects the non-NULL
	// pseudonyms of a group.
	AggUnits = "units"
)

// UnitSet is one contributor set of a protected release: for each released
// group, the persons of Dataset whose rows reach one aggregate.
type UnitSet struct {
	// Column carries the set: a list or a sketch, one per result row.
	Column  string `json:"column"`
	Dataset string `json:"dataset"` // department.dataset whose persons it counts
	K       int    `json:"k"`       // the least number of persons a released group needs
	// Of is the column whose non-NULL rows contribute; "" is every row of
	// the group. In a fragment it is a catalog column.
	Of string `json:"of,omitempty"`
}

// UnitSets lists the contributor sets of a protected single-dataset
// fragment (MinGroupSize > 0). Broker and agent derive the same list, in
// the same order, from the fragment alone: every row of the group first,
// then each column that is the bare argument of an aggregate, in order of
// first appearance. An aggregate of an expression has no set of
// contributors one could name, and is refused (the policy refuses it
// first: rule aggregate_expression).
func (f *Fragment) UnitSets() ([]UnitSet, error) {
	if f == nil || f.MinGroupSize <= 0 {
		return nil, nil
	}
	sets := []UnitSet{{Column: UnitSetPrefix + "0", Dataset: f.Dataset, K: f.MinGroupSize}}
	seen := map[string]bool{}
	var bad error
	var walk func(e *Expr, depth int)
	walk = func(e *Expr, depth int) {
		if e == nil || bad != nil || depth > maxExprDepth {
			return
		}
		if e.Kind != KindAggregate {
			for _, a := range e.Args {
				walk(a, depth+1)
			}
			return
		}
		if len(e.Args) != 1 || e.Args[0] == nil {
			bad = sluice.Errorf(sluice.EInternal, "an aggregate without its argument")
			return
		}
		a := e.Args[0]
		if _, ok := clampOf(a); ok {
			// A clamped value (differential privacy) is NULL exactly
			// where its column is: the same persons reach it.
			a = a.Args[4]
		}
		switch a.Kind {
		case KindStar:
		case KindColumn:
			k := strings.ToLower(a.Column)
			if !seen[k] {
				seen[k] = true
				sets = append(sets, UnitSet{Column: UnitSetPrefix + strconv.Itoa(len(sets)), Dataset: f.Dataset, K: f.MinGroupSize, Of: a.Column})
			}
		default:
			bad = sluice.Errorf(sluice.ENotSupported, "in an aggregate-only release an aggregate's argument must be a bare column or *, not %s: a condition or computation inside an aggregate can single out one person; move conditions to WHERE", clip(normExpr(a, 0)))
		}
	}
	for _, it := range f.Select {
		walk(it.Expr, 0)
	}
	walk(f.Having, 0)
	for _, o := range f.OrderBy {
		walk(o.Expr, 0)
	}
	if bad != nil {
		return nil, bad
	}
	return sets, nil
}

// UnitSetFields are the columns an agent adds to a protected fragment's
// result: one sketch per contributor set, or for a fragment bound for the
// sandbox its per-row pseudonym.
func UnitSetFields(f *Fragment) ([]Field, error) {
	if f == nil {
		return nil, nil
	}
	if f.UnitAlias != "" {
		return []Field{{Name: f.UnitAlias, Type: sluice.TypeBinary}}, nil
	}
	sets, err := f.UnitSets()
	if err != nil {
		return nil, err
	}
	out := make([]Field, len(sets))
	for i, s := range sets {
		out[i] = Field{Name: s.Column, Type: sluice.TypeBinary}
	}
	return out, nil
}

// StreamFields are the columns of what an agent sends for f: its output
// fields and the unit columns the broker's gate consumes.
func StreamFields(f *Fragment, ds *sluice.Dataset) ([]Field, error) {
	fields, err := OutputFields(f, ds)
	if err != nil {
		return nil, err
	}
	extra, err := UnitSetFields(f)
	if err != nil {
		return nil, err
	}
	return append(fields, extra...), nil
}
