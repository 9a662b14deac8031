package planner

import (
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// countPrivacyUnits is the pass "privacy_units": across departments, when
// the decision protects some datasets, every group the sandbox releases
// must carry the persons of each protected dataset behind it (CountUnits;
// units.go says what a privacy unit is). A single-dataset fragment counts
// its persons at the agent instead (Fragment.UnitSets).
func countPrivacyUnits(p *Plan, cat *sluice.Catalog, o *Obligations) error {
	if len(p.Fragments) == 0 || len(o.Protected) == 0 {
		return nil
	}
	return p.CountUnits(cat, o.Protected)
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
// rows: a second aggregate over protected rows (a grouped subquery of a
// protected dataset, or an aggregate of the release's groups), DISTINCT
// anywhere, and a protected dataset inside IN (SELECT ...).
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
	// Which fragments read a protected dataset: only an aggregate over
	// their rows releases protected persons. An aggregate over
	// unprotected rows alone (a grouped derived table or a scalar
	// subquery of unconditional data, below the release's aggregate) is
	// an ordinary relation the analyst may read anyway.
	protectedFrag := map[int]bool{}
	for i, f := range p.Fragments {
		if k(f.Dataset) > 0 {
			protectedFrag[i] = true
		}
	}
	switch n := countProtectedAggregates(p.Sandbox, protectedFrag, 0); {
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
		case OpUnion:
			return unitsRefuse("%s of aggregate-only releases is not supported yet; run each SELECT on its own", setOpName(agg))
		case OpWindow:
			return unitsRefuse("window functions are not supported yet in an aggregate-only release: a window releases values row by row")
		case OpJoin:
			return unitsRefuse("the aggregate over a protected dataset must be the query's last step; an aggregate in a subquery joined to other rows (a scalar subquery in the select list, a grouped derived table) is not supported yet: aggregate the protected rows in the query itself")
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
			if n.leftOnly() {
				if len(r) > 0 {
					return nil, unitsRefuse("a protected dataset (%s) inside IN (SELECT ...) or [NOT] EXISTS is not supported yet: the persons it matches must be counted; join it instead", byFrag[r[0]].dataset)
				}
				return l, nil
			}
			return append(l, r...), nil
		case OpFilter, OpSort, OpLimit:
			return thread(n.Inputs[0], depth+1)
		case OpDistinct:
			return nil, unitsRefuse("DISTINCT below the aggregate is not supported yet; it would decide which persons count")
		case OpUnion:
			return nil, unitsRefuse("%s below the aggregate is not supported yet in an aggregate-only release; it would decide which persons count", setOpName(n))
		case OpWindow:
			return nil, unitsRefuse("window functions are not supported yet in an aggregate-only release: a window releases values row by row")
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
			if !readsFragment(n, protectedFrag, 0) {
				// Unprotected rows only: no person to count.
				return nil, nil
			}
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

// countProtectedAggregates counts the aggregates of the plan whose input
// holds rows of a protected fragment.
func countProtectedAggregates(n *Node, protected map[int]bool, depth int) int {
	if n == nil || depth > 4*maxExprDepth {
		return 0
	}
	c := 0
	if n.Op == OpAggregate && readsFragment(n, protected, 0) {
		c++
	}
	for _, in := range n.Inputs {
		c += countProtectedAggregates(in, protected, depth+1)
	}
	return c
}

// readsFragment reports whether n's subtree reads one of the fragments.
func readsFragment(n *Node, frags map[int]bool, depth int) bool {
	if n == nil || depth > 4*maxExprDepth {
		return true // fail closed: treat as protected
	}
	if n.Op == OpFragment && frags[n.Fragment] {
		return true
	}
	for _, in := range n.Inputs {
		if readsFragment(in, frags, depth+1) {
			return true
		}
	}
	return false
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

// setOpName is the SQL name of a set node's operation.
func setOpName(n *Node) string {
	switch n.SetOp {
	case SetIntersect:
		return "INTERSECT"
	case SetExcept:
		return "EXCEPT"
	}
	return "UNION"
}
