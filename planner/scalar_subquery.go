package planner

import (
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// Scalar subqueries compared in WHERE, correlated by equalities:
//
//	WHERE l.qty < (SELECT 0.2 * avg(l2.qty) FROM trade.lineitem l2 WHERE l2.part = p.part AND l2.x > 1)
//
// becomes a join with a grouped derived table, planned (and checked by
// the policy) like any other:
//
//	JOIN (SELECT l2.part AS k1, 0.2 * avg(l2.qty) AS v FROM trade.lineitem l2 WHERE l2.x > 1 GROUP BY l2.part) AS "$scalar1"
//	  ON p.part = "$scalar1".k1
//	WHERE l.qty < "$scalar1".v
//
// This keeps SQL's meaning because the comparison rejects NULL: a row
// whose key has no group would compare with NULL and be dropped, as the
// inner join drops it. So the subquery's value must be NULL when no row
// matches (an aggregate other than COUNT, or arithmetic on such with
// constants), the subquery must be compared directly (not under OR or NOT),
// and every condition naming the enclosing query must be an equality
// between one of its columns and one of the subquery's. A subquery not
// correlated at all is one aggregate row, joined to every row without a
// key (the one join without keys the sandbox runs: its right side yields
// one row at most, Node.oneRow).

// isScalarComparison reports whether a WHERE conjunct compares a scalar
// subquery directly: x OP (SELECT ...) or (SELECT ...) OP x.
func isScalarComparison(c sqlast.Expr) (*sqlast.Binary, *sqlast.Subquery, bool) {
	b, ok := c.(*sqlast.Binary)
	if !ok {
		return nil, nil, false
	}
	switch b.Op {
	case "=", "<>", "<", "<=", ">", ">=":
	default:
		return nil, nil, false
	}
	if sq, ok := b.R.(*sqlast.Subquery); ok && !hasSubquery(b.L) {
		return b, sq, true
	}
	if sq, ok := b.L.(*sqlast.Subquery); ok && !hasSubquery(b.R) {
		return b, sq, true
	}
	return nil, nil, false
}

// scalarJoin plans the subquery of a scalar comparison as a grouped
// derived table joined to the FROM tree, and returns the tree with the
// join and the comparison rewritten to name the subquery's value.
func (m *mplan) scalarJoin(from *fromNode, cmp *sqlast.Binary, sq *sqlast.Subquery, s *scopeSet) (*fromNode, sqlast.Expr, error) {
	q := sq.Query
	if err := scalarShape(q); err != nil {
		return nil, nil, err
	}
	if !nullOnEmpty(q.Items[0].Expr) {
		return nil, nil, notSupported("a scalar subquery whose value is not NULL over no rows (COUNT, COALESCE, CASE ...) is not supported yet; compare with an aggregate such as sum, avg, min or max")
	}
	fn, value, _, err := m.scalarRelation(from, sq, s, JoinInner)
	if err != nil {
		return nil, nil, err
	}
	out := *cmp
	if cmp.R == sqlast.Expr(sq) {
		out.R = value
	} else {
		out.L = value
	}
	return fn, &out, nil
}

// scalarShape refuses a scalar subquery that is not one aggregate over
// its rows.
func scalarShape(q *sqlast.Select) error {
	if q.Op != "" || len(q.GroupBy) > 0 || q.Having != nil || q.Distinct || q.Limit != nil || q.Offset != nil ||
		len(q.With) > 0 || len(q.Items) != 1 || q.Items[0].Star || !hasAggregateCall(q.Items[0].Expr) {
		return notSupported("a scalar subquery must compute one aggregate over its rows, e.g. (SELECT max(x) FROM ... WHERE t.k = outer.k); this form is not supported yet")
	}
	return nil
}

// hasAggregateCall reports whether e calls an aggregate (outside windows
// and subqueries), so that a subquery without GROUP BY has one row.
func hasAggregateCall(e sqlast.Expr) bool {
	found := false
	sqlast.Walk(e, func(x sqlast.Expr) bool {
		if f, ok := x.(*sqlast.Func); ok && f.Over == nil && f.Schema == "" && aggregateFuncs[f.Name] {
			found = true
		}
		return !found
	})
	return found
}

// scalarRelation plans a scalar subquery as a grouped derived table (by
// its correlation keys) joined to the FROM tree, and returns the tree, the
// reference to its value, and whether it is correlated.
func (m *mplan) scalarRelation(from *fromNode, sq *sqlast.Subquery, s *scopeSet, kind string) (*fromNode, *sqlast.ColumnRef, bool, error) {
	q := sq.Query
	inner := innerNames(m, q.From)
	var own []sqlast.Expr
	type key struct{ inner, outer *sqlast.ColumnRef }
	var keys []key
	if q.Where != nil {
		for _, c := range splitAndAST(q.Where) {
			if hasSubquery(c) {
				return nil, nil, false, m.at(notSupported("a subquery inside a scalar subquery is not supported yet"), c.Position())
			}
			refs := columnRefs(c)
			outerRef := false
			for _, r := range refs {
				if !inner.has(r) {
					outerRef = true
				}
			}
			if !outerRef {
				own = append(own, c)
				continue
			}
			b, ok := c.(*sqlast.Binary)
			if ok && b.Op == "=" {
				l, lok := b.L.(*sqlast.ColumnRef)
				r, rok := b.R.(*sqlast.ColumnRef)
				switch {
				case lok && rok && inner.has(l) && !inner.has(r):
					keys = append(keys, key{l, r})
					continue
				case lok && rok && inner.has(r) && !inner.has(l):
					keys = append(keys, key{r, l})
					continue
				}
			}
			return nil, nil, false, m.at(notSupported("in a scalar subquery, a condition on the enclosing query must be an equality between one of its columns and one of the subquery's (t.k = outer.k); this one is not supported yet"), c.Position())
		}
	}
	m.seq++
	name := "$scalar" + strconv.Itoa(m.seq)
	grouped := &sqlast.Select{Pos: q.Pos, From: q.From}
	for i, k := range keys {
		grouped.Items = append(grouped.Items, &sqlast.SelectItem{Pos: k.inner.Pos, Expr: k.inner, Alias: "k" + strconv.Itoa(i+1)})
		grouped.GroupBy = append(grouped.GroupBy, k.inner)
	}
	grouped.Items = append(grouped.Items, &sqlast.SelectItem{Pos: q.Items[0].Pos, Expr: q.Items[0].Expr, Alias: "v"})
	for _, c := range own {
		if grouped.Where == nil {
			grouped.Where = c
		} else {
			grouped.Where = &sqlast.Binary{Pos: c.Position(), Op: "AND", L: grouped.Where, R: c}
		}
	}
	// Planned as a derived table under a name no analyst's alias can
	// take (a $ starts only generated names).
	sp, err := m.planSelect(grouped, m.uniqAlias("scalar")+".", s)
	if err != nil {
		return nil, nil, false, err
	}
	rel := &relation{name: name, node: sp.node}
	for _, o := range sp.outs {
		_, after, _ := strings.Cut(o, ".")
		rel.cols = append(rel.cols, relCol{name: after, internal: o})
		m.owner[o] = rel
	}
	if err := s.add(rel); err != nil {
		return nil, nil, false, err
	}
	r := &resolver{sql: m.sql, multi: s}
	if len(keys) == 0 {
		// Not correlated: one row, joined to every row without a key.
		kind = JoinInner
	}
	fn := &fromNode{kind: kind, left: from, right: &fromNode{rel: rel, rels: map[*relation]bool{rel: true}}}
	fn.rels = unionRels(from.rels, fn.right.rels)
	for i, k := range keys {
		o, err := r.expr(k.outer, scopeWhere, true, 0)
		if err != nil {
			return nil, nil, false, err
		}
		in := rel.col("k" + strconv.Itoa(i+1))
		fn.on = append(fn.on, &Expr{Kind: KindBinary, Op: "=", Args: []*Expr{o, {Kind: KindColumn, Column: in.internal}}})
	}
	value := &sqlast.ColumnRef{Pos: sq.Pos, Table: &sqlast.TableName{Pos: sq.Pos, Name: name}, Name: "v"}
	return fn, value, len(keys) > 0, nil
}

// nullOnEmpty reports whether e, a scalar subquery's value, is NULL when
// the subquery has no rows: an aggregate other than COUNT, or arithmetic
// of such aggregates with constants.
func nullOnEmpty(e sqlast.Expr) bool {
	switch n := e.(type) {
	case *sqlast.Func:
		switch n.Name {
		case "sum", "avg", "min", "max":
			return n.Schema == "" && n.Over == nil
		}
	case *sqlast.Binary:
		switch n.Op {
		case "+", "-", "*", "/":
			_, lc := n.L.(*sqlast.Literal)
			_, rc := n.R.(*sqlast.Literal)
			return nullOnEmpty(n.L) && (rc || nullOnEmpty(n.R)) || lc && nullOnEmpty(n.R)
		}
	case *sqlast.Unary:
		return n.Op == "-" && nullOnEmpty(n.X)
	}
	return false
}

// innerScope is what a subquery's FROM names, read from the syntax: the
// names (aliases, or dataset names) of its items, and the datasets of its
// tables.
type innerScope struct {
	names    map[string]bool
	datasets []*sluice.Dataset
	opaque   bool // a derived table or join item whose columns are not read here
}

func (s innerScope) has(c *sqlast.ColumnRef) bool {
	if c.Table != nil {
		if c.Table.Schema != "" {
			for _, ds := range s.datasets {
				if strings.EqualFold(ds.Department, c.Table.Schema) && strings.EqualFold(ds.Name, c.Table.Name) {
					return true
				}
			}
			return false
		}
		return s.names[strings.ToLower(c.Table.Name)]
	}
	for _, ds := range s.datasets {
		if ds.Column(c.Name) != nil {
			return true
		}
	}
	return s.opaque
}

func innerNames(m *mplan, from []sqlast.TableExpr) innerScope {
	out := innerScope{names: map[string]bool{}}
	var walk func(t sqlast.TableExpr)
	walk = func(t sqlast.TableExpr) {
		switch f := t.(type) {
		case *sqlast.Table:
			name := f.Alias
			if name == "" {
				name = f.Name.Name
			}
			out.names[strings.ToLower(name)] = true
			if ds := m.cat.Dataset(f.Name.Schema, f.Name.Name); ds != nil {
				out.datasets = append(out.datasets, ds)
			}
		case *sqlast.Derived:
			out.names[strings.ToLower(f.Alias)] = true
			out.opaque = true
		case *sqlast.Join:
			walk(f.Left)
			walk(f.Right)
		}
	}
	for _, t := range from {
		walk(t)
	}
	return out
}

// columnRefs lists the column references of e (not inside subqueries).
func columnRefs(e sqlast.Expr) []*sqlast.ColumnRef {
	var out []*sqlast.ColumnRef
	sqlast.Walk(e, func(x sqlast.Expr) bool {
		if c, ok := x.(*sqlast.ColumnRef); ok {
			out = append(out, c)
		}
		return true
	})
	return out
}

// scalarHaving plans the scalar subqueries HAVING compares groups with:
//
//	GROUP BY k HAVING sum(x) > (SELECT 0.0001 * sum(y) FROM ...)
//
// The subquery is joined before the aggregate as in WHERE (scalarJoin):
// its value is the same on every row of a group (one row when not
// correlated; correlated, by an equality on a grouped column), so HAVING
// compares with max of it. A group whose rows find no match would compare
// with NULL and go, as the inner join drops its rows. Without GROUP BY the
// one group over no rows would compare with the subquery's value itself,
// which max over no rows is not: not supported yet.
func (m *mplan) scalarHaving(sel *sqlast.Select, from *fromNode, s *scopeSet) (sqlast.Expr, *fromNode, error) {
	var out sqlast.Expr
	for _, c := range splitAndAST(sel.Having) {
		if cmp, sq, ok := isScalarComparison(c); ok {
			if len(sel.GroupBy) == 0 {
				return nil, nil, m.at(notSupported("a scalar subquery in HAVING without GROUP BY is not supported yet; compare in WHERE"), sq.Pos)
			}
			var err error
			var rewritten sqlast.Expr
			if from, rewritten, err = m.scalarJoin(from, cmp, sq, s); err != nil {
				return nil, nil, m.at(err, sq.Pos)
			}
			b := rewritten.(*sqlast.Binary)
			if v, ok := b.R.(*sqlast.ColumnRef); ok && v.Table != nil && strings.HasPrefix(v.Table.Name, "$scalar") {
				b.R = &sqlast.Func{Pos: v.Pos, Name: "max", Args: []sqlast.Expr{v}}
			} else {
				b.L = &sqlast.Func{Pos: b.L.Position(), Name: "max", Args: []sqlast.Expr{b.L}}
			}
			c = b
		} else if hasSubquery(c) {
			return nil, nil, m.at(notSupported("a subquery in HAVING is supported only compared directly with a value: HAVING sum(x) > (SELECT ...)"), c.Position())
		}
		if out == nil {
			out = c
		} else {
			out = &sqlast.Binary{Pos: c.Position(), Op: "AND", L: out, R: c}
		}
	}
	return out, from, nil
}

// scalarSelectList plans the scalar subqueries of the select list:
//
//	SELECT district, count(*) * 100.0 / (SELECT count(*) FROM civil.residents) AS pct ... GROUP BY district
//	SELECT e.name, (SELECT count(*) FROM police.household h WHERE h.household_district = e.district) AS n FROM ...
//
// One not naming the enclosing query is one aggregate row, joined to every
// row without a key before the query's own aggregate (as in WHERE); a
// correlated one (by equalities, as in WHERE) is a grouped derived table
// LEFT JOINed on its keys, so a row without a match keeps its place with
// NULL (0 for a bare COUNT). In a grouped query the value is read as max
// of it (the same on every row of a group: a correlated one must name
// only group keys), inside an aggregate as itself. Not supported yet: in
// a query that aggregates without GROUP BY (its one group over no rows
// would lose the subquery's value).
func (m *mplan) scalarSelectList(sel *sqlast.Select, from *fromNode, s *scopeSet) ([]*sqlast.SelectItem, *fromNode, error) {
	has := false
	for _, it := range sel.Items {
		has = has || (!it.Star && hasSubquery(it.Expr))
	}
	if !has {
		return sel.Items, from, nil
	}
	grouped := len(sel.GroupBy) > 0 || sel.Having != nil
	for _, it := range sel.Items {
		grouped = grouped || (!it.Star && hasAggregateCall(it.Expr))
	}
	items := make([]*sqlast.SelectItem, len(sel.Items))
	for i, it := range sel.Items {
		if it.Star || !hasSubquery(it.Expr) {
			items[i] = it
			continue
		}
		if grouped && len(sel.GroupBy) == 0 {
			return nil, nil, m.at(notSupported("a scalar subquery in the select list of a query that aggregates without GROUP BY is not supported yet; select it in a query of its own"), it.Pos)
		}
		var err error
		e, err := replaceSubqueries(it.Expr, false, 0, func(sq *sqlast.Subquery, inAgg bool) (sqlast.Expr, error) {
			if err := scalarShape(sq.Query); err != nil {
				return nil, m.at(err, sq.Pos)
			}
			item := sq.Query.Items[0].Expr
			isCount := false
			if f, ok := item.(*sqlast.Func); ok && f.Name == "count" && f.Schema == "" && f.Over == nil {
				isCount = true
			}
			var v *sqlast.ColumnRef
			var correlated bool
			var err error
			if from, v, correlated, err = m.scalarRelation(from, sq, s, JoinLeft); err != nil {
				return nil, m.at(err, sq.Pos)
			}
			var out sqlast.Expr = v
			if correlated {
				// A row whose key has no group keeps its place (LEFT
				// JOIN) with the value over no rows: NULL, or 0 for
				// COUNT; anything else over no rows is not supported.
				switch {
				case isCount:
					out = &sqlast.Func{Pos: sq.Pos, Name: "coalesce", Args: []sqlast.Expr{v, &sqlast.Literal{Pos: sq.Pos, Kind: sqlast.LitInt, Text: "0"}}}
				case !nullOnEmpty(item):
					return nil, m.at(notSupported("a correlated scalar subquery in the select list whose value over no rows is not NULL (other than a bare COUNT) is not supported yet; use sum, avg, min, max or count"), sq.Pos)
				}
				if grouped {
					if err := m.correlatedOnGroupKeys(sq.Query, sel); err != nil {
						return nil, m.at(err, sq.Pos)
					}
				}
			}
			if grouped && !inAgg {
				return &sqlast.Func{Pos: sq.Pos, Name: "max", Args: []sqlast.Expr{out}}, nil
			}
			return out, nil
		})
		if err != nil {
			return nil, nil, err
		}
		cp := *it
		cp.Expr = e
		if cp.Alias == "" {
			cp.Alias = subqueryItemName(it.Expr)
		}
		items[i] = &cp
	}
	return items, from, nil
}

// subqueryItemName is PostgreSQL's name for a select item that is a
// scalar subquery: the name of the subquery's own column; ?column? for
// an expression around it.
func subqueryItemName(e sqlast.Expr) string {
	sq, ok := e.(*sqlast.Subquery)
	if !ok {
		return "?column?"
	}
	in := sq.Query.Items[0]
	if in.Alias != "" {
		return in.Alias
	}
	switch x := in.Expr.(type) {
	case *sqlast.Func:
		return x.Name
	case *sqlast.ColumnRef:
		return x.Name
	}
	return "?column?"
}

// replaceSubqueries rebuilds e with each scalar subquery replaced by
// fn's expression; inAgg tells fn whether it is inside an aggregate's
// arguments. Subqueries under other forms than arithmetic, functions,
// CASE and casts are not supported yet.
func replaceSubqueries(e sqlast.Expr, inAgg bool, depth int, fn func(*sqlast.Subquery, bool) (sqlast.Expr, error)) (sqlast.Expr, error) {
	if e == nil || !hasSubquery(e) {
		return e, nil
	}
	if depth > maxExprDepth {
		return nil, notSupported("the expression is nested too deeply")
	}
	sub := func(x sqlast.Expr) (sqlast.Expr, error) { return replaceSubqueries(x, inAgg, depth+1, fn) }
	switch n := e.(type) {
	case *sqlast.Subquery:
		return fn(n, inAgg)
	case *sqlast.Binary:
		l, err := sub(n.L)
		if err != nil {
			return nil, err
		}
		r, err := sub(n.R)
		if err != nil {
			return nil, err
		}
		c := *n
		c.L, c.R = l, r
		return &c, nil
	case *sqlast.Unary:
		x, err := sub(n.X)
		if err != nil {
			return nil, err
		}
		c := *n
		c.X = x
		return &c, nil
	case *sqlast.Cast:
		x, err := sub(n.X)
		if err != nil {
			return nil, err
		}
		c := *n
		c.X = x
		return &c, nil
	case *sqlast.Func:
		if n.Over != nil || n.Filter != nil {
			break
		}
		c := *n
		c.Args = make([]sqlast.Expr, len(n.Args))
		agg := inAgg || (n.Schema == "" && aggregateFuncs[n.Name])
		for i, a := range n.Args {
			x, err := replaceSubqueries(a, agg, depth+1, fn)
			if err != nil {
				return nil, err
			}
			c.Args[i] = x
		}
		return &c, nil
	case *sqlast.Case:
		c := *n
		var err error
		if c.Operand, err = sub(n.Operand); err != nil {
			return nil, err
		}
		c.Whens = make([]*sqlast.When, len(n.Whens))
		for i, w := range n.Whens {
			cond, err := sub(w.Cond)
			if err != nil {
				return nil, err
			}
			val, err := sub(w.Val)
			if err != nil {
				return nil, err
			}
			c.Whens[i] = &sqlast.When{Cond: cond, Val: val}
		}
		if c.Else, err = sub(n.Else); err != nil {
			return nil, err
		}
		return &c, nil
	}
	return nil, notSupported("a subquery here is not supported yet; in the select list, a scalar subquery may stand alone or inside arithmetic, functions, CASE and casts")
}

// correlatedOnGroupKeys checks that a correlated subquery of a grouped
// query's select list names only columns of the enclosing query that are
// its GROUP BY keys (written alike), so its value is one per group.
func (m *mplan) correlatedOnGroupKeys(q *sqlast.Select, sel *sqlast.Select) error {
	if q.Where == nil {
		return nil
	}
	inner := innerNames(m, q.From)
	for _, c := range columnRefs(q.Where) {
		if inner.has(c) {
			continue
		}
		found := false
		for _, g := range sel.GroupBy {
			if gc, ok := g.(*sqlast.ColumnRef); ok && strings.EqualFold(gc.Name, c.Name) && sameQualifier(gc.Table, c.Table) {
				found = true
			}
		}
		if !found {
			name := c.Name
			if c.Table != nil {
				name = c.Table.Name + "." + c.Name
			}
			return invalid("the scalar subquery names %s of the enclosing query, which is not a GROUP BY key: its value would differ within a group; group by it", clip(name))
		}
	}
	return nil
}

// sameQualifier compares two column qualifiers as written (both absent,
// or the same name).
func sameQualifier(a, b *sqlast.TableName) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return strings.EqualFold(a.Schema, b.Schema) && strings.EqualFold(a.Name, b.Name)
}
