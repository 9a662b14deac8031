package planner

import (
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// EXISTS and NOT EXISTS, correlated by equalities, as semi and anti joins.
//
//	WHERE EXISTS (SELECT ... FROM t WHERE t.k = outer.k AND t.x > 1 AND t.y <> outer.y)
//
// joins the enclosing query's rows (node) with t: the equalities between
// a column of t and one of the enclosing query are the join's keys, the
// other conditions that name the enclosing query its residual, and the
// conditions on t alone are pushed into t's fragment. A semi join keeps
// each enclosing row that has at least one match, once; an anti join
// (NOT EXISTS) each that has none. The subquery's select list does not
// matter. Without an equality the subquery is not correlated by a key and
// is not supported yet.

const errExistsShape = "EXISTS (SELECT ...) with GROUP BY, HAVING, DISTINCT, OFFSET or a set operation is not supported yet; write EXISTS (SELECT 1 FROM ... WHERE ...)"

func (m *mplan) existsJoin(node *Node, q *sqlast.Select, anti bool, s *scopeSet) (*Node, error) {
	if q.Op != "" || len(q.GroupBy) > 0 || q.Having != nil || q.Distinct || q.Offset != nil || len(q.With) > 0 {
		return nil, notSupported("%s", errExistsShape)
	}
	if q.Limit != nil {
		// LIMIT n (n >= 1) does not change whether a row exists.
		if n, err := limitValue(q.Limit, "LIMIT"); err != nil || n == 0 {
			return nil, notSupported("%s", errExistsShape)
		}
	}
	m.depth++
	defer func() { m.depth-- }()
	if m.depth > maxSubqueryDepth {
		return nil, notSupported("subqueries nested more than %d deep are not supported yet", maxSubqueryDepth)
	}
	in := &scopeSet{m: m, outer: s, correlated: true}
	from, err := m.buildFrom(q.From, in)
	if err != nil {
		return nil, err
	}
	inner := map[*relation]bool{}
	for _, r := range in.rels {
		inner[r] = true
	}
	for r := range from.rels {
		inner[r] = true
	}
	var own, corr []*Expr
	if q.Where != nil {
		r := &resolver{sql: m.sql, multi: in}
		for _, c := range splitAndAST(q.Where) {
			if hasSubquery(c) {
				return nil, m.at(notSupported("a subquery inside EXISTS (SELECT ...) is not supported yet"), c.Position())
			}
			e, err := r.expr(c, scopeWhere, true, 0)
			if err != nil {
				return nil, err
			}
			if hasAggregate(e) {
				return nil, m.at(invalid("aggregates are not allowed in WHERE"), c.Position())
			}
			for _, x := range splitConj(e) {
				if subset(m.relsOf(x), inner) {
					own = append(own, x)
				} else {
					corr = append(corr, x)
				}
			}
		}
	}
	var keys []JoinKey
	var resid []*Expr
	for _, c := range corr {
		if c.Kind == KindBinary && c.Op == "=" && c.Args[0].Kind == KindColumn && c.Args[1].Kind == KindColumn {
			a, b := c.Args[0].Column, c.Args[1].Column
			switch {
			case inner[m.owner[b]] && !inner[m.owner[a]]:
				keys = append(keys, JoinKey{Left: a, Right: b})
				continue
			case inner[m.owner[a]] && !inner[m.owner[b]]:
				keys = append(keys, JoinKey{Left: b, Right: a})
				continue
			}
		}
		resid = append(resid, c)
	}
	word := "EXISTS"
	kind := JoinSemi
	if anti {
		word, kind = "NOT EXISTS", JoinAnti
	}
	if len(keys) == 0 {
		return nil, notSupported("%s (SELECT ...) needs an equality between a column of the subquery and one of the enclosing query (WHERE t.k = outer.k); other forms are not supported yet", word)
	}
	from, own = m.orderJoins(from, own)
	right, err := m.buildTree(from, own)
	if err != nil {
		return nil, err
	}
	n := &Node{Op: OpJoin, JoinKind: kind, Inputs: []*Node{node, right}, Keys: keys, Residual: andAll(resid)}
	if err := m.classifyJoin(n); err != nil {
		return nil, err
	}
	if anti && n.PSI {
		return nil, notSupported("NOT EXISTS on a private join key is not supported yet; use EXISTS or a join")
	}
	return n, nil
}
