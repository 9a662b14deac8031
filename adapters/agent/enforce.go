package agent

import (
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// maxExprDepth bounds recursion over expressions. Validate should already
// reject deeper trees; this keeps the agent safe if it does not.
const maxExprDepth = 256

// clause says where in a fragment a column is used.
type clause string

const (
	inSelect clause = "SELECT"
	inWhere  clause = "WHERE"
	inGroup  clause = "GROUP BY"
	inHaving clause = "HAVING"
	inOrder  clause = "ORDER BY"
)

// use is one occurrence of a catalog column in a fragment.
type use struct {
	col    *sluice.Column
	clause clause
	inAgg  bool // inside the argument of an aggregate function
}

// enforce applies the department's own rules to f for the requester named
// in it. The owner department sees its data as is (with any masks the broker
// asked for); anyone else gets the catalog's release levels, whatever the
// broker sent. It changes f only by tightening: masks are added or
// overwritten with the catalog's, and MinGroupSize only ever grows.
func enforce(f *planner.Fragment, ds *sluice.Dataset, dept string, minK int) error {
	uses, err := collectUses(f, ds)
	if err != nil {
		return err
	}
	if f.Requester.Department != "" && f.Requester.Department == dept {
		return nil
	}
	if ds.ShareClass == sluice.ShareNone {
		return &sluice.Error{
			Code: sluice.EDenied,
			Message: "dataset " + ds.FullName() + " is not shared (share class none); legal basis: " +
				strings.TrimSpace(ds.LegalBasis),
			Reasons: []string{"share_class_none: " + ds.FullName()},
		}
	}
	if f.SandboxK > 0 && f.UnitAlias == "" {
		// Values bound for the sandbox are released only in groups of k
		// persons, which the sandbox can count only by their pseudonyms.
		return deny("sandbox_without_units", ds.FullName(),
			"a fragment of %s bound for the sandbox must carry its persons' pseudonyms (unit_alias) so that groups of fewer than %d persons can be suppressed", ds.FullName(), f.SandboxK)
	}
	aggregated := isAggregated(f)
	aggUsed := false
	// Rebuild the masks under the catalog's column names so that a key
	// spelled in another case cannot shadow the mask the agent forces.
	masks := make(map[string]sluice.MaskRule, len(f.Masks))
	for k, v := range f.Masks {
		if c := ds.Column(k); c != nil {
			masks[c.Name] = v
		} else {
			masks[k] = v
		}
	}
	for _, u := range uses {
		name := ds.FullName() + "." + u.col.Name
		switch u.col.Release {
		case sluice.ReleaseHidden:
			return deny("hidden_column", name, "column %s is hidden: it never leaves department %s", name, dept)
		case sluice.ReleaseJoinKey:
			return deny("join_key_column", name,
				"column %s is a join key: join keys leave an agent only blinded, through a private join", name)
		case sluice.ReleaseMasked:
			// The catalog's mask wins over the broker's, except that a
			// request to redact a text column entirely is stricter than
			// any partial mask and is kept.
			if !(masks[u.col.Name] == sluice.MaskRedact && u.col.Type == sluice.TypeText) {
				masks[u.col.Name] = u.col.Mask
			}
		case sluice.ReleaseAggregate:
			aggUsed = true
			if u.inAgg {
				continue
			}
			// Bound for the broker's sandbox, which aggregates across
			// departments and releases only groups of at least k rows:
			// the values may go there, never as released rows.
			if f.SandboxK >= minK {
				continue
			}
			switch u.clause {
			case inWhere, inHaving:
				// A comparison on an aggregate column is allowed only
				// when every output row stands for a group of rows.
				if !aggregated {
					return deny("aggregate_column_predicate", name,
						"column %s may be compared in %s only when the result is aggregate-only (grouped, groups of at least %d rows)", name, u.clause, minK)
				}
			default:
				return deny("aggregate_column_output", name,
					"column %s may be used only inside COUNT, SUM, AVG, MIN or MAX, not in %s", name, u.clause)
			}
		}
	}
	if len(masks) > 0 {
		f.Masks = masks
	}
	if aggUsed && f.SandboxK < minK && f.MinGroupSize < minK {
		f.MinGroupSize = minK
	}
	return nil
}

func deny(rule, column, format string, args ...any) error {
	e := sluice.Errorf(sluice.EDenied, format, args...)
	e.Reasons = []string{rule + ": " + column}
	return e
}

// isAggregated reports whether each output row of f is a group: there is a
// GROUP BY, or an aggregate anywhere (the planner's notion of grouped, so
// that the minimum group size the agent adds is always renderable).
func isAggregated(f *planner.Fragment) bool {
	if len(f.GroupBy) > 0 || hasAggregate(f.Having, 0) {
		return true
	}
	for _, it := range f.Select {
		if hasAggregate(it.Expr, 0) {
			return true
		}
	}
	for _, o := range f.OrderBy {
		if hasAggregate(o.Expr, 0) {
			return true
		}
	}
	return false
}

func hasAggregate(e *planner.Expr, depth int) bool {
	if e == nil || depth > maxExprDepth {
		return false
	}
	if e.Kind == planner.KindAggregate {
		return true
	}
	for _, a := range e.Args {
		if hasAggregate(a, depth+1) {
			return true
		}
	}
	return false
}

// collectUses lists every column occurrence in every clause of f.
func collectUses(f *planner.Fragment, ds *sluice.Dataset) ([]use, error) {
	var out []use
	walk := func(e *planner.Expr, c clause) error { return collect(e, c, false, 0, ds, &out) }
	for _, it := range f.Select {
		if err := walk(it.Expr, inSelect); err != nil {
			return nil, err
		}
	}
	if err := walk(f.Where, inWhere); err != nil {
		return nil, err
	}
	for _, g := range f.GroupBy {
		if err := walk(g, inGroup); err != nil {
			return nil, err
		}
	}
	if err := walk(f.Having, inHaving); err != nil {
		return nil, err
	}
	for _, o := range f.OrderBy {
		if err := walk(o.Expr, inOrder); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func collect(e *planner.Expr, c clause, inAgg bool, depth int, ds *sluice.Dataset, out *[]use) error {
	if e == nil {
		return nil
	}
	if depth > maxExprDepth {
		return sluice.Errorf(sluice.EInvalid, "expression in %s is nested deeper than %d levels", c, maxExprDepth)
	}
	switch e.Kind {
	case planner.KindColumn:
		col := ds.Column(e.Column)
		if col == nil {
			return sluice.Errorf(sluice.ENotFound, "dataset %s has no column %q", ds.FullName(), e.Column)
		}
		*out = append(*out, use{col: col, clause: c, inAgg: inAgg})
	case planner.KindAggregate:
		inAgg = true
	}
	for _, a := range e.Args {
		if err := collect(a, c, inAgg, depth+1, ds, out); err != nil {
			return err
		}
	}
	return nil
}
