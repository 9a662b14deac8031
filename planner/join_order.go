package planner

// Join order for inner joins. The planner joins tables in the order the
// FROM clause writes them, and every join needs an equality between its
// two sides (cross joins are not supported). Decision-support queries
// often list their tables in FROM and their join conditions in WHERE in
// an order where two neighbours share no condition (TPC-H Q8: part,
// supplier, lineitem, ...). orderJoins then picks, among the inner-joined
// items, a left-deep order in which each next item has an equality with
// those before it, first in the order written. A written order that
// already works is kept exactly, so plans do not change for queries that
// planned before. LEFT JOINs are not reordered: a LEFT JOIN subtree moves
// as one item.

// orderJoins returns the FROM tree to plan and the WHERE conjuncts, with
// the ON conditions of reordered inner joins moved among them (for an
// inner join the two mean the same).
func (m *mplan) orderJoins(fn *fromNode, conj []*Expr) (*fromNode, []*Expr) {
	var items []*fromNode
	var ons []*Expr
	var flatten func(n *fromNode)
	flatten = func(n *fromNode) {
		if n.rel != nil || n.kind != JoinInner {
			items = append(items, n)
			return
		}
		flatten(n.left)
		flatten(n.right)
		ons = append(ons, n.on...)
	}
	flatten(fn)
	if len(items) < 3 {
		return fn, conj
	}
	conds := append(append([]*Expr(nil), conj...), ons...)
	joins := func(acc map[*relation]bool, item *fromNode) bool {
		for _, c := range conds {
			if c.Kind != KindBinary || c.Op != "=" || len(c.Args) != 2 || c.Args[0].Kind != KindColumn || c.Args[1].Kind != KindColumn {
				continue
			}
			a, b := m.owner[c.Args[0].Column], m.owner[c.Args[1].Column]
			if acc[a] && item.rels[b] || acc[b] && item.rels[a] {
				return true
			}
		}
		return false
	}
	if writtenOrderJoins(fn, joins) {
		return fn, conj
	}
	acc := unionRels(items[0].rels, nil)
	order := []*fromNode{items[0]}
	rest := items[1:]
	for len(rest) > 0 {
		pick := 0
		for i, it := range rest {
			if joins(acc, it) {
				pick = i
				break
			}
		}
		order = append(order, rest[pick])
		acc = unionRels(acc, rest[pick].rels)
		rest = append(rest[:pick:pick], rest[pick+1:]...)
	}
	out := order[0]
	for _, it := range order[1:] {
		out = &fromNode{kind: JoinInner, left: out, right: it, rels: unionRels(out.rels, it.rels)}
	}
	return out, conds
}

// writtenOrderJoins reports whether every inner join of the tree as
// written has an equality between its two sides (joins looks among the
// WHERE conjuncts and every ON condition: an ON condition refers only to
// the tables its join joins, so it can only connect those).
func writtenOrderJoins(fn *fromNode, joins func(map[*relation]bool, *fromNode) bool) bool {
	if fn.rel != nil || fn.kind != JoinInner {
		return true
	}
	return joins(fn.left.rels, fn.right) && writtenOrderJoins(fn.left, joins) && writtenOrderJoins(fn.right, joins)
}
