package planner

import (
	"sort"

	sluice "github.com/sluice-gov/sluice"
)

// Lineage of a multi-dataset plan. Demands flow from the result down the
// sandbox plan to the fragments: every output column of the query is an
// output use; each operator turns the demands on its outputs into demands
// on its inputs and adds its own (a join its keys as join_key and its
// residual as predicate, a filter its predicate, an aggregate its group
// keys and aggregate arguments, a sort its keys). What reaches a
// fragment's column is that source column's usage; the fragment's own
// WHERE adds predicate uses. A project item, or an aggregate, that nothing
// demands is pruned, so every column a fragment releases to the broker
// carries the usages the policy judges.

// demand is how a column is used further up the plan.
type demand struct {
	uses map[sluice.Usage]bool
	// transformed: the value reaches an output (or a join key) through
	// an expression rather than as itself.
	transformed bool
}

func (d *demand) sorted() []sluice.Usage {
	if d == nil {
		return nil
	}
	out := make([]sluice.Usage, 0, len(d.uses))
	for u := range d.uses {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func addUse(dm map[string]*demand, col string, u sluice.Usage, transformed bool) {
	d := dm[col]
	if d == nil {
		d = &demand{uses: map[sluice.Usage]bool{}}
		dm[col] = d
	}
	d.uses[u] = true
	d.transformed = d.transformed || transformed
}

func mergeDemand(dm map[string]*demand, col string, x *demand) {
	if x == nil || len(x.uses) == 0 {
		return
	}
	for u := range x.uses {
		addUse(dm, col, u, false)
	}
	if x.transformed {
		dm[col].transformed = true
	}
}

// exprDemand passes demand d on the value of e to the columns of e.
func exprDemand(in map[string]*demand, e *Expr, d *demand) {
	if e == nil || d == nil || len(d.uses) == 0 {
		return
	}
	if e.Kind == KindColumn {
		mergeDemand(in, e.Column, d)
		return
	}
	nd := &demand{uses: map[sluice.Usage]bool{}, transformed: d.transformed || d.uses[sluice.UseOutput] || d.uses[sluice.UseJoinKey]}
	for u := range d.uses {
		if u.InAggregate() {
			// An aggregate over a computed value: its columns are not the
			// bare argument of the aggregate.
			u = sluice.UseAggregateExpression
		}
		nd.uses[u] = true
	}
	if d.uses[sluice.UseJoinKey] {
		// A key computed by an expression compares values: it is also a
		// predicate use of its columns.
		nd.uses[sluice.UsePredicate] = true
	}
	exprColumns(e, func(c string) { mergeDemand(in, c, nd) })
	caseConditions(e, func(c *Expr) {
		exprColumns(c, func(col string) { addUse(in, col, sluice.UsePredicate, false) })
	})
}

// caseConditions calls fn on the operand and WHEN conditions of every
// CASE in e: they filter values as a WHERE would.
func caseConditions(e *Expr, fn func(*Expr)) {
	if e == nil {
		return
	}
	if e.Kind == KindCase {
		end := len(e.Args)
		if e.HasElse {
			end--
		}
		for i, a := range e.Args {
			if (e.HasOperand && i == 0) || (i < end && ((e.HasOperand && i%2 == 1) || (!e.HasOperand && i%2 == 0))) {
				fn(a)
			}
		}
	}
	for _, a := range e.Args {
		caseConditions(a, fn)
	}
}

// aggUsage is the usage of the input column of a sandbox aggregate.
func aggUsage(fn string) sluice.Usage {
	switch fn {
	case "min", "max":
		return sluice.UseOrderStatistic
	case "count_distinct":
		return sluice.UseDistinctAggregate
	}
	return sluice.UseAggregate
}

func predicateDemand(in map[string]*demand, e *Expr) {
	exprColumns(e, func(c string) { addUse(in, c, sluice.UsePredicate, false) })
}

// outputs lists the columns a node can produce before pruning.
func (m *mplan) outputs(n *Node) []string {
	return nodeOutputs(n, func(f int) []string {
		var out []string
		for _, c := range m.frags[f].cols {
			out = append(out, c.internal)
		}
		return out
	}, 0)
}

// nodeOutputs lists the columns sandbox node n produces, given those of
// each fragment leaf: a join's two sides (a semi join's left only), an
// aggregate's groups and aggregates, a project's items, and otherwise its
// input's columns.
func nodeOutputs(n *Node, leaf func(fragment int) []string, depth int) []string {
	if n == nil || depth > 4*maxExprDepth {
		return nil
	}
	switch n.Op {
	case OpFragment:
		return leaf(n.Fragment)
	case OpJoin:
		if len(n.Inputs) != 2 {
			return nil
		}
		if n.leftOnly() {
			return nodeOutputs(n.Inputs[0], leaf, depth+1)
		}
		return append(nodeOutputs(n.Inputs[0], leaf, depth+1), nodeOutputs(n.Inputs[1], leaf, depth+1)...)
	case OpUnion:
		return n.Outputs
	case OpWindow:
		if len(n.Inputs) != 1 {
			return nil
		}
		out := nodeOutputs(n.Inputs[0], leaf, depth+1)
		for _, w := range n.Windows {
			out = append(out, w.Alias)
		}
		return out
	case OpAggregate:
		out := append([]string(nil), n.GroupBy...)
		for _, a := range n.Aggs {
			out = append(out, a.Alias)
		}
		return out
	case OpProject:
		var out []string
		for _, it := range n.Items {
			out = append(out, it.Alias)
		}
		return out
	}
	if len(n.Inputs) != 1 {
		return nil
	}
	return nodeOutputs(n.Inputs[0], leaf, depth+1)
}

func copyDemand(d map[string]*demand) map[string]*demand {
	out := make(map[string]*demand, len(d))
	for k, v := range d {
		mergeDemand(out, k, v)
	}
	return out
}

// propagate pushes the demands on n's outputs down to the fragments,
// pruning what nothing demands.
func (m *mplan) propagate(n *Node, d map[string]*demand, depth int) error {
	if depth > 4*maxExprDepth {
		return notSupported("this query is nested too deeply; simplify it")
	}
	switch n.Op {
	case OpFragment:
		f := m.frags[n.Fragment]
		if f.demand == nil {
			f.demand = map[string]*demand{}
		}
		for k, v := range d {
			mergeDemand(f.demand, k, v)
		}
		return nil
	case OpFilter:
		in := copyDemand(d)
		predicateDemand(in, n.Predicate)
		return m.propagate(n.Inputs[0], in, depth+1)
	case OpSort:
		in := copyDemand(d)
		for _, k := range n.SortKeys {
			addUse(in, k.Column, sluice.UseOrder, false)
		}
		return m.propagate(n.Inputs[0], in, depth+1)
	case OpLimit:
		return m.propagate(n.Inputs[0], d, depth+1)
	case OpDistinct:
		// DISTINCT groups rows by every column: one that nothing else
		// uses still decides which rows are kept.
		in := copyDemand(d)
		for _, c := range m.outputs(n.Inputs[0]) {
			if in[c] == nil {
				addUse(in, c, sluice.UseGroup, false)
			}
		}
		return m.propagate(n.Inputs[0], in, depth+1)
	case OpProject:
		in := map[string]*demand{}
		var kept []SelectItem
		for _, it := range n.Items {
			x := d[it.Alias]
			if x == nil || len(x.uses) == 0 {
				continue
			}
			kept = append(kept, it)
			exprDemand(in, it.Expr, x)
		}
		if len(kept) == 0 {
			return notSupported("a subquery none of whose columns the query uses is not supported yet; use its columns or remove it")
		}
		n.Items = kept
		return m.propagate(n.Inputs[0], in, depth+1)
	case OpAggregate:
		in := map[string]*demand{}
		for _, g := range n.GroupBy {
			addUse(in, g, sluice.UseGroup, false)
			mergeDemand(in, g, d[g])
		}
		var kept []Agg
		for _, a := range n.Aggs {
			x := d[a.Alias]
			if x == nil || len(x.uses) == 0 {
				continue
			}
			kept = append(kept, a)
			if a.Column != "" {
				addUse(in, a.Column, aggUsage(a.Func), false)
			}
		}
		n.Aggs = kept
		if len(n.GroupBy) == 0 && len(n.Aggs) == 0 {
			return notSupported("an aggregate subquery none of whose columns the query uses is not supported yet")
		}
		return m.propagate(n.Inputs[0], in, depth+1)
	case OpJoin:
		left := map[string]bool{}
		for _, c := range m.outputs(n.Inputs[0]) {
			left[c] = true
		}
		all := copyDemand(d)
		predicateDemand(all, n.Residual)
		for _, k := range n.Keys {
			addUse(all, k.Left, sluice.UseJoinKey, false)
			addUse(all, k.Right, sluice.UseJoinKey, false)
		}
		ld, rd := map[string]*demand{}, map[string]*demand{}
		for c, x := range all {
			if left[c] {
				mergeDemand(ld, c, x)
			} else {
				mergeDemand(rd, c, x)
			}
		}
		if err := m.propagate(n.Inputs[0], ld, depth+1); err != nil {
			return err
		}
		return m.propagate(n.Inputs[1], rd, depth+1)
	case OpWindow:
		// A window function's value is released row by row: its argument
		// is an output (a SUM over a partition of one is that value), its
		// partition keys group and its order keys order the rows.
		in := map[string]*demand{}
		aliases := map[string]bool{}
		for _, w := range n.Windows {
			aliases[w.Alias] = true
		}
		for c, x := range d {
			if !aliases[c] {
				mergeDemand(in, c, x)
			}
		}
		for _, w := range n.Windows {
			if x := d[w.Alias]; x == nil || len(x.uses) == 0 {
				continue
			}
			if w.Column != "" {
				addUse(in, w.Column, sluice.UseOutput, false)
			}
			for _, p := range w.PartitionBy {
				addUse(in, p, sluice.UseGroup, false)
			}
			for _, k := range w.OrderBy {
				addUse(in, k.Column, sluice.UseOrder, false)
			}
		}
		return m.propagate(n.Inputs[0], in, depth+1)
	case OpUnion:
		// Column i of the union is column i of each input: what the
		// query does with it, it does with both (with INTERSECT and
		// EXCEPT too: the second input's rows decide the answer). A column nothing above
		// uses still stays (the columns are matched by position), and
		// under UNION it decides which rows are distinct.
		for _, in := range n.Inputs {
			outs := m.outputs(in)
			if len(outs) != len(n.Outputs) {
				return sluice.Errorf(sluice.EInternal, "the planner built an inconsistent UNION; please report it with the query text")
			}
			id := map[string]*demand{}
			for i, o := range n.Outputs {
				if x := d[o]; x != nil && len(x.uses) > 0 {
					mergeDemand(id, outs[i], x)
				} else if n.UnionAll {
					addUse(id, outs[i], sluice.UseOutput, false)
				} else {
					addUse(id, outs[i], sluice.UseGroup, false)
				}
				// INTERSECT and EXCEPT compare every column of both
				// inputs: each decides which rows are released.
				if n.SetOp != "" {
					addUse(id, outs[i], sluice.UsePredicate, false)
				}
			}
			if err := m.propagate(in, id, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return sluice.Errorf(sluice.EInternal, "the planner built an unknown sandbox operator; please report it with the query text")
}

// verify checks the finished plan: every column an operator refers to is
// an output of its input, names never collide, and a PSI key (which the
// sandbox holds blinded) is used by its join only. It returns n's outputs.
func (m *mplan) verify(n *Node, frags []*Fragment) ([]string, error) {
	psiNames := map[string]bool{}
	for _, k := range m.psiKey {
		psiNames[k] = true
	}
	return verifyNodes(n, frags, psiNames)
}

func verifyNodes(n *Node, frags []*Fragment, psiNames map[string]bool) ([]string, error) {
	lost := func() error {
		return sluice.Errorf(sluice.EInternal, "the planner built an inconsistent sandbox plan; please report it with the query text")
	}
	var walk func(n *Node, depth int) ([]string, error)
	walk = func(n *Node, depth int) ([]string, error) {
		if depth > 4*maxExprDepth {
			return nil, notSupported("this query is nested too deeply; simplify it")
		}
		var ins [][]string
		for _, in := range n.Inputs {
			o, err := walk(in, depth+1)
			if err != nil {
				return nil, err
			}
			ins = append(ins, o)
		}
		set := map[string]bool{}
		for _, o := range ins {
			for _, c := range o {
				if set[c] {
					return nil, lost()
				}
				set[c] = true
			}
		}
		var bad error
		ref := func(c string) {
			if !set[c] {
				bad = lost()
			} else if psiNames[c] && bad == nil {
				bad = notSupported("using a private join key other than as the join key is not supported yet: the sandbox only ever holds it blinded")
			}
		}
		refExpr := func(e *Expr) { exprColumns(e, ref) }
		var out []string
		switch n.Op {
		case OpFragment:
			if n.Fragment < 0 || n.Fragment >= len(frags) || len(n.Inputs) != 0 {
				return nil, lost()
			}
			for _, it := range frags[n.Fragment].Select {
				out = append(out, it.Alias)
			}
			if u := frags[n.Fragment].UnitAlias; u != "" {
				out = append(out, u)
			}
			return out, nil
		case OpJoin:
			if len(ins) != 2 || len(n.Keys) == 0 && !(n.JoinKind == JoinInner && n.Inputs[1].oneRow(0)) {
				return nil, lost()
			}
			ls := map[string]bool{}
			for _, c := range ins[0] {
				ls[c] = true
			}
			for _, k := range n.Keys {
				if !ls[k.Left] || !set[k.Right] || ls[k.Right] {
					return nil, lost()
				}
				if !n.PSI {
					ref(k.Left)
					ref(k.Right)
				}
			}
			refExpr(n.Residual)
			out = ins[0]
			if !n.leftOnly() {
				out = append(append([]string(nil), ins[0]...), ins[1]...)
			}
		case OpFilter:
			refExpr(n.Predicate)
			out = ins[0]
		case OpAggregate:
			for _, g := range n.GroupBy {
				ref(g)
				out = append(out, g)
			}
			for _, a := range n.Aggs {
				if a.Column != "" {
					ref(a.Column)
				}
				out = append(out, a.Alias)
			}
		case OpProject:
			for _, it := range n.Items {
				refExpr(it.Expr)
				out = append(out, it.Alias)
			}
		case OpSort:
			for _, k := range n.SortKeys {
				ref(k.Column)
			}
			out = ins[0]
		case OpLimit, OpDistinct:
			out = ins[0]
		case OpWindow:
			if len(ins) != 1 || len(n.Windows) == 0 {
				return nil, lost()
			}
			out = append([]string(nil), ins[0]...)
			for _, w := range n.Windows {
				if w.Column != "" {
					ref(w.Column)
				}
				for _, p := range w.PartitionBy {
					ref(p)
				}
				for _, k := range w.OrderBy {
					ref(k.Column)
				}
				if set[w.Alias] {
					return nil, lost()
				}
				out = append(out, w.Alias)
			}
		case OpUnion:
			if len(ins) != 2 || len(ins[0]) != len(n.Outputs) || len(ins[1]) != len(n.Outputs) {
				return nil, lost()
			}
			for _, c := range append(append([]string(nil), ins[0]...), ins[1]...) {
				ref(c)
			}
			out = n.Outputs
		default:
			return nil, lost()
		}
		if bad != nil {
			return nil, bad
		}
		if n.Op != OpFragment && len(ins) == 0 {
			return nil, lost()
		}
		seen := map[string]bool{}
		for _, c := range out {
			if seen[c] {
				return nil, lost()
			}
			seen[c] = true
		}
		return out, nil
	}
	return walk(n, 0)
}
