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

// CountUnits prepares a multi-dataset plan for a protected release:
// protected maps each protected dataset (department.dataset) to its k. Each
// protected fragment streams its rows' pseudonyms (UnitAlias); they are
// passed through every operator up to the plan's one aggregate, which
// collects one contributor set per protected fragment and per aggregate
// input column, and the sets are passed on to the top of the plan, where
// the broker's gate strips them. UnitSets records them.
//
// Refused (not supported yet), because the units could not follow the
// rows: a second aggregate (a grouped subquery), DISTINCT anywhere, and a
// protected dataset inside IN (SELECT ...).
func (p *Plan) CountUnits(cat *sluice.Catalog, protected map[string]int) error {
	if p == nil || len(protected) == 0 {
		return nil
	}
	k := func(dataset string) int {
		for d, v := range protected {
			if strings.EqualFold(d, dataset) {
				return v
			}
		}
		return 0
	}
	if p.Fragment != nil {
		return sluice.Errorf(sluice.EInternal, "CountUnits is for plans across datasets; a single fragment counts its units at the agent")
	}
	if p.Sandbox == nil {
		return sluice.Errorf(sluice.EInternal, "counting persons: the plan has no sandbox")
	}
	switch n := countAggregates(p.Sandbox, 0); {
	case n == 0:
		return unitsRefuse("it must aggregate: every output an aggregate (COUNT, SUM, AVG) or a GROUP BY key")
	case n > 1:
		return unitsRefuse("a query across departments may aggregate only once; a grouped subquery would hide whose rows its groups stand on. Write one GROUP BY")
	}
	used := map[string]bool{}
	collectNames(p.Sandbox, used, 0)
	for _, f := range p.Fragments {
		for _, it := range f.Select {
			used[it.Alias] = true
		}
	}
	fresh := func(prefix string) string {
		for n := 1; ; n++ {
			if name := prefix + strconv.Itoa(n); !used[name] {
				used[name] = true
				return name
			}
		}
	}
	// Which fragments stream pseudonyms.
	type unitCol struct {
		name    string
		dataset string
		k       int
	}
	byFrag := map[int]unitCol{}
	for i, f := range p.Fragments {
		kk := k(f.Dataset)
		if kk <= 0 {
			continue
		}
		ds := cat.Dataset(splitName(f.Dataset))
		if ds == nil {
			return sluice.Errorf(sluice.EInternal, "counting persons: the catalog has no dataset %s", f.Dataset)
		}
		if ds.PrivacyUnit() == nil {
			return unitsRefuse("%s declares no unique person key, so its persons cannot be counted; its data admin must mark the column that identifies each row's person as join_key with unique: true", ds.FullName())
		}
		if len(f.Select) == 0 {
			return sluice.Errorf(sluice.EInternal, "counting persons: fragment %d selects nothing", i)
		}
		alias, _, _ := strings.Cut(f.Select[0].Alias, ".")
		name := alias + unitSuffix
		if used[name] {
			return sluice.Errorf(sluice.EInternal, "counting persons: the column name %s is taken", name)
		}
		used[name] = true
		f.UnitAlias = name
		byFrag[i] = unitCol{name: name, dataset: ds.FullName(), k: kk}
	}
	if len(byFrag) == 0 {
		return sluice.Errorf(sluice.EInternal, "counting persons: no fragment reads a protected dataset")
	}
	// Down: from the root to the aggregate only post-processing.
	var path []*Node
	agg := p.Sandbox
	for agg.Op != OpAggregate {
		switch agg.Op {
		case OpProject, OpFilter, OpSort, OpLimit:
		case OpDistinct:
			return unitsRefuse("SELECT DISTINCT is not supported yet; the groups of GROUP BY are already distinct")
		default:
			return sluice.Errorf(sluice.EInternal, "counting persons: a %s above the aggregate", agg.Op)
		}
		if len(agg.Inputs) != 1 {
			return sluice.Errorf(sluice.EInternal, "counting persons: a %s node with %d inputs", agg.Op, len(agg.Inputs))
		}
		path = append(path, agg)
		agg = agg.Inputs[0]
	}
	if len(agg.Inputs) != 1 {
		return sluice.Errorf(sluice.EInternal, "counting persons: an aggregate with %d inputs", len(agg.Inputs))
	}
	// Below the aggregate: pass every fragment's pseudonyms up.
	var thread func(n *Node, depth int) ([]int, error)
	thread = func(n *Node, depth int) ([]int, error) {
		if n == nil || depth > 4*maxExprDepth {
			return nil, unitsRefuse("the query is nested too deeply")
		}
		switch n.Op {
		case OpFragment:
			if _, ok := byFrag[n.Fragment]; ok {
				return []int{n.Fragment}, nil
			}
			return nil, nil
		case OpJoin:
			if len(n.Inputs) != 2 {
				return nil, sluice.Errorf(sluice.EInternal, "counting persons: a join with %d inputs", len(n.Inputs))
			}
			l, err := thread(n.Inputs[0], depth+1)
			if err != nil {
				return nil, err
			}
			r, err := thread(n.Inputs[1], depth+1)
			if err != nil {
				return nil, err
			}
			if n.JoinKind == JoinSemi {
				if len(r) > 0 {
					return nil, unitsRefuse("a protected dataset (%s) inside IN (SELECT ...) is not supported yet: the persons it matches must be counted; join it instead", byFrag[r[0]].dataset)
				}
				return l, nil
			}
			return append(l, r...), nil
		case OpFilter, OpSort, OpLimit:
			return thread(n.Inputs[0], depth+1)
		case OpDistinct:
			return nil, unitsRefuse("DISTINCT below the aggregate is not supported yet; it would decide which persons count")
		case OpProject:
			in, err := thread(n.Inputs[0], depth+1)
			if err != nil {
				return nil, err
			}
			for _, f := range in {
				passItem(n, byFrag[f].name)
			}
			return in, nil
		case OpAggregate:
			return nil, unitsRefuse("a query across departments may aggregate only once")
		}
		return nil, sluice.Errorf(sluice.EInternal, "counting persons: unknown operator %q", n.Op)
	}
	frags, err := thread(agg.Inputs[0], 0)
	if err != nil {
		return err
	}
	if len(frags) == 0 {
		return unitsRefuse("the rows that reach the aggregate come from no protected dataset, so their persons cannot be counted")
	}
	// At the aggregate: one contributor set per protected fragment and per
	// distinct input column (COUNT(*) and the group keys: every row).
	var ofs []string
	seenOf := map[string]bool{}
	for _, a := range agg.Aggs {
		if a.Func == "count_star" || a.Column == "" || seenOf[a.Column] {
			continue
		}
		seenOf[a.Column] = true
		ofs = append(ofs, a.Column)
	}
	pre := &Node{Op: OpProject, Inputs: []*Node{agg.Inputs[0]}}
	for _, g := range agg.GroupBy {
		passItem(pre, g)
	}
	for _, c := range ofs {
		passItem(pre, c)
	}
	var sets []UnitSet
	for _, fi := range frags {
		u := byFrag[fi]
		passItem(pre, u.name)
		name := fresh("$units")
		agg.Aggs = append(agg.Aggs, Agg{Func: AggUnits, Column: u.name, Alias: name})
		sets = append(sets, UnitSet{Column: name, Dataset: u.dataset, K: u.k})
		for _, c := range ofs {
			col := fresh("$u")
			pre.Items = append(pre.Items, SelectItem{Alias: col, Expr: &Expr{Kind: KindCase, HasElse: false, Args: []*Expr{
				{Kind: KindIsNull, Negate: true, Args: []*Expr{{Kind: KindColumn, Column: c}}},
				{Kind: KindColumn, Column: u.name},
			}}})
			name := fresh("$units")
			agg.Aggs = append(agg.Aggs, Agg{Func: AggUnits, Column: col, Alias: name})
			sets = append(sets, UnitSet{Column: name, Dataset: u.dataset, K: u.k, Of: c})
		}
	}
	agg.Inputs[0] = pre
	// Above the aggregate: the sets reach the top.
	for _, n := range path {
		if n.Op == OpProject {
			for _, s := range sets {
				passItem(n, s.Column)
			}
		}
	}
	p.UnitSets = sets
	return nil
}

// passItem makes project n pass column c through under its own name.
func passItem(n *Node, c string) {
	for _, it := range n.Items {
		if it.Alias == c {
			return
		}
	}
	n.Items = append(n.Items, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c}, Alias: c})
}

func unitsRefuse(format string, args ...any) error {
	return sluice.Errorf(sluice.ENotSupported, "in an aggregate-only release (every group must rest on at least k persons) "+format, args...)
}
