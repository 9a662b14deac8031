package planner

import (
	"strings"

	"github.com/sluice-gov/sluice/planner/sqlast"
)

// inlineCTEs replaces every reference to a common table expression by
// the CTE's query as a derived table (FROM c AS x becomes FROM (query) AS
// x), so the rest of the planner sees only derived tables, which it
// plans, checks and audits like any other: a CTE is a name, never a way
// around lineage. Each reference is planned on its own (the query runs
// once per reference). A CTE sees the CTEs before it in its WITH list
// and those of enclosing queries; an inner WITH shadows an outer name.
// Recursive CTEs are not supported yet. The tree is rewritten in place.
func inlineCTEs(sel *sqlast.Select, sql string) error {
	if err := inlineIn(sel, nil, sql, 0); err != nil {
		return err
	}
	// A CTE referenced twice by one referenced twice by ... expands
	// exponentially; the expanded query is bounded before anything walks it.
	if n := expandedQueries(sel, map[*sqlast.Select]int{}, 0); n > maxExpandedQueries {
		return notSupported("the query expands to more than %d queries and subqueries once each reference to a WITH query is counted; reference fewer or simplify it", maxExpandedQueries)
	}
	return nil
}

// maxExpandedQueries bounds the queries (SELECT blocks) of one query once
// CTE references are expanded: far above what analyses write (TPC-H's
// largest has 4), far below what would exhaust the planner.
const maxExpandedQueries = 256

// expandedQueries counts the SELECT blocks of the tree rooted at s, each
// shared subtree counted once per reference, without walking a shared
// subtree twice (memo), and stopping once above the bound.
func expandedQueries(s *sqlast.Select, memo map[*sqlast.Select]int, depth int) int {
	if s == nil {
		return 0
	}
	if n, ok := memo[s]; ok {
		return n
	}
	if depth > maxSubqueryDepth*8 {
		return maxExpandedQueries + 1
	}
	n := 1
	add := func(q *sqlast.Select) {
		if n <= maxExpandedQueries {
			n += expandedQueries(q, memo, depth+1)
		}
	}
	add(s.Left)
	add(s.Right)
	for _, c := range s.With {
		add(c.Query)
	}
	var from func(t sqlast.TableExpr)
	from = func(t sqlast.TableExpr) {
		switch f := t.(type) {
		case *sqlast.Derived:
			add(f.Query)
		case *sqlast.Join:
			from(f.Left)
			from(f.Right)
			for _, q := range sqlast.Subqueries(f.On) {
				add(q)
			}
		}
	}
	for _, t := range s.From {
		from(t)
	}
	for _, q := range sqlast.Subqueries(s.Exprs()...) {
		add(q)
	}
	memo[s] = n
	return n
}

// cteScope maps the CTE names visible at one query (lower case) to their
// queries, with the scope of the enclosing query as its parent.
type cteScope struct {
	names  map[string]*sqlast.Select
	parent *cteScope
}

func (s *cteScope) lookup(name string) *sqlast.Select {
	for ; s != nil; s = s.parent {
		if q, ok := s.names[strings.ToLower(name)]; ok {
			return q
		}
	}
	return nil
}

func inlineIn(sel *sqlast.Select, outer *cteScope, sql string, depth int) error {
	if sel == nil {
		return nil
	}
	if depth > maxSubqueryDepth*4 {
		return notSupported("subqueries nested more than %d deep are not supported yet", maxSubqueryDepth)
	}
	scope := outer
	if len(sel.With) > 0 {
		if sel.Recursive {
			return locate(notSupported("WITH RECURSIVE is not supported yet"), sql, sel.With[0].Pos)
		}
		scope = &cteScope{names: map[string]*sqlast.Select{}, parent: outer}
		for _, c := range sel.With {
			key := strings.ToLower(c.Name)
			if _, dup := scope.names[key]; dup {
				return locate(invalid("WITH names %s twice; give each common table expression its own name", clip(c.Name)), sql, c.Pos)
			}
			// A CTE's body sees the CTEs listed before it.
			if err := inlineIn(c.Query, scope, sql, depth+1); err != nil {
				return err
			}
			q, err := renameOutputs(c.Query, c.Columns, "WITH "+clip(c.Name))
			if err != nil {
				return locate(err, sql, c.Pos)
			}
			scope.names[key] = q
		}
		sel.With = nil
	}
	return inlineNested(sel, scope, sql, depth)
}

// inlineNested rewrites the FROM items of sel that name a CTE of scope
// and recurses into every query inside sel.
func inlineNested(sel *sqlast.Select, scope *cteScope, sql string, depth int) error {
	if err := inlineIn(sel.Left, scope, sql, depth+1); err != nil {
		return err
	}
	if err := inlineIn(sel.Right, scope, sql, depth+1); err != nil {
		return err
	}
	var from func(t sqlast.TableExpr) (sqlast.TableExpr, error)
	from = func(t sqlast.TableExpr) (sqlast.TableExpr, error) {
		switch f := t.(type) {
		case *sqlast.Table:
			if f.Name.Schema != "" {
				return f, nil
			}
			q := scope.lookup(f.Name.Name)
			if q == nil {
				return f, nil
			}
			alias := f.Alias
			if alias == "" {
				alias = f.Name.Name
			}
			return &sqlast.Derived{Pos: f.Name.Pos, Query: q, Alias: alias, ColumnAliases: f.ColumnAliases}, nil
		case *sqlast.Derived:
			return f, inlineIn(f.Query, scope, sql, depth+1)
		case *sqlast.Join:
			var err error
			if f.Left, err = from(f.Left); err != nil {
				return nil, err
			}
			if f.Right, err = from(f.Right); err != nil {
				return nil, err
			}
			return f, inlineExprs(scope, sql, depth, f.On)
		}
		return t, nil
	}
	for i, t := range sel.From {
		nt, err := from(t)
		if err != nil {
			return err
		}
		sel.From[i] = nt
	}
	return inlineExprs(scope, sql, depth, sel.Exprs()...)
}

// inlineExprs inlines CTEs inside the subqueries of expressions.
func inlineExprs(scope *cteScope, sql string, depth int, es ...sqlast.Expr) error {
	for _, q := range sqlast.Subqueries(es...) {
		if err := inlineIn(q, scope, sql, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// renameOutputs applies a column list (WITH c (a, b) AS ..., or FROM
// (SELECT ...) AS s (a, b)) as the aliases of the query's select list, on
// a copy of the query; what names the list is for messages.
func renameOutputs(q *sqlast.Select, cols []string, what string) (*sqlast.Select, error) {
	if len(cols) == 0 {
		return q, nil
	}
	if q.Op != "" {
		return nil, notSupported("a column list for %s over %s is not supported yet; alias the columns in each SELECT", what, q.Op)
	}
	if len(cols) > len(q.Items) {
		return nil, invalid("%s names %d columns but its query selects %d", what, len(cols), len(q.Items))
	}
	cp := *q
	cp.Items = make([]*sqlast.SelectItem, len(q.Items))
	for i, it := range q.Items {
		item := *it
		if i < len(cols) {
			if item.Star {
				return nil, notSupported("a column list for %s whose query selects * is not supported yet; name the columns in its select list", what)
			}
			item.Alias = cols[i]
		}
		cp.Items[i] = &item
	}
	return &cp, nil
}
