package planner

import (
	"strconv"
	"strings"

	"github.com/sluice-gov/sluice/planner/sqlast"

	sluice "github.com/sluice-gov/sluice"
)

// scope is the clause an expression appears in; it decides how bare names
// resolve (columns, or output aliases) and whether aggregates may appear.
type scope int

const (
	scopeSelect scope = iota
	scopeWhere
	scopeGroup
	scopeHaving
	scopeOrder
)

func (s scope) String() string {
	switch s {
	case scopeWhere:
		return "WHERE"
	case scopeGroup:
		return "GROUP BY"
	case scopeHaving:
		return "HAVING"
	case scopeOrder:
		return "ORDER BY"
	}
	return "the select list"
}

// resolver turns the AST of one SELECT into the Expr IR over one dataset.
type resolver struct {
	sql   string // the analyst's text, for positions in errors
	ds    *sluice.Dataset
	alias string // the table alias as written, "" when none
	// items are the resolved select items; explicit says which were named
	// with AS, the only names ORDER BY, GROUP BY and HAVING may refer to.
	items    []SelectItem
	explicit []bool
	// multi, when set, resolves names over the several tables and
	// subqueries of a multi-dataset query (see multi.go); ds and alias
	// are then unused.
	multi *scopeSet
}

// resolveDataset finds the dataset a FROM clause names.
func resolveDataset(cat *sluice.Catalog, tn sqlast.TableName) (*sluice.Dataset, error) {
	name, dept := tn.Name, tn.Schema
	if dept == "" {
		if strings.EqualFold(name, "dual") {
			return nil, invalid("the query has no FROM clause; read from a dataset as FROM department.dataset (`sluice catalog list` lists them)")
		}
		return nil, invalid("dataset %q needs its department: write FROM department.dataset (e.g. civil.residents); `sluice catalog list` lists the datasets", clip(name))
	}
	ds := cat.Dataset(dept, name)
	if ds == nil {
		return nil, invalid("unknown dataset %s.%s; `sluice catalog list` lists the datasets you can query", clip(dept), clip(name))
	}
	return ds, nil
}

func (r *resolver) build(sel *sqlast.Select) (*Fragment, error) {
	f := &Fragment{Distinct: sel.Distinct}
	if r.ds != nil {
		f.Dataset = r.ds.FullName()
	}
	if err := r.selectList(sel.Items); err != nil {
		return nil, err
	}
	f.Select = r.items
	if sel.Where != nil {
		w, err := r.expr(sel.Where, scopeWhere, true, 0)
		if err != nil {
			return nil, err
		}
		f.Where = w
	}
	for _, g := range sel.GroupBy {
		e, err := r.groupKey(g)
		if err != nil {
			return nil, err
		}
		f.GroupBy = append(f.GroupBy, e)
	}
	if sel.Having != nil {
		h, err := r.expr(sel.Having, scopeHaving, true, 0)
		if err != nil {
			return nil, err
		}
		f.Having = h
	}
	for _, o := range sel.OrderBy {
		e, err := r.orderKey(o.Expr)
		if err != nil {
			return nil, err
		}
		if reversedNulls(o) {
			// NULLS LAST ascending or NULLS FIRST descending, the other
			// order than Sluice's: a key that sorts the NULLs apart
			// first ((x IS NULL) is false before true), then x itself.
			f.OrderBy = append(f.OrderBy, OrderItem{Expr: &Expr{Kind: KindIsNull, Args: []*Expr{e}}, Desc: o.Nulls == sqlast.NullsFirst})
		}
		f.OrderBy = append(f.OrderBy, OrderItem{Expr: e, Desc: o.Desc})
	}
	if sel.Limit != nil {
		n, err := limitValue(sel.Limit, "LIMIT")
		if err != nil {
			return nil, r.at(err, sel.Limit.Position())
		}
		f.Limit = &n
	}
	if sel.Offset != nil {
		n, err := limitValue(sel.Offset, "OFFSET")
		if err != nil {
			return nil, r.at(err, sel.Offset.Position())
		}
		f.Offset = n
	}
	return f, nil
}

// reversedNulls reports whether o asks for NULLs in the other place than
// Sluice sorts them (first ascending, last descending, as SQLite and MySQL
// do).
func reversedNulls(o *sqlast.OrderItem) bool {
	return (o.Nulls == sqlast.NullsFirst && o.Desc) || (o.Nulls == sqlast.NullsLast && !o.Desc)
}

// nullsOrder accepts an explicit NULLS FIRST / LAST that asks for the
// order Sluice sorts in anyway; the other order is not supported yet
// where keys must be columns (window keys, ORDER BY of a set operation).
func nullsOrder(o *sqlast.OrderItem) error {
	switch {
	case o.Nulls == sqlast.NullsFirst && o.Desc:
		return notSupported("NULLS FIRST with DESC is not supported yet here (a window's or a set operation's ORDER BY): descending keys put NULLs last; filter NULLs out or sort them with a CASE key")
	case o.Nulls == sqlast.NullsLast && !o.Desc:
		return notSupported("NULLS LAST with an ascending key is not supported yet here (a window's or a set operation's ORDER BY): ascending keys put NULLs first; filter NULLs out or sort them with a CASE key")
	}
	return nil
}

func limitValue(e sqlast.Expr, what string) (int64, error) {
	v, ok := e.(*sqlast.Literal)
	if !ok || v.Kind != sqlast.LitInt {
		return 0, invalid("%s must be a non-negative integer constant", what)
	}
	n, err := strconv.ParseInt(v.Text, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("%s must be a non-negative integer constant", what)
	}
	return n, nil
}

func (r *resolver) selectList(items []*sqlast.SelectItem) error {
	for _, s := range items {
		switch {
		case s.Star:
			if r.multi != nil {
				cols, err := r.multi.star(s.Table)
				if err != nil {
					return r.at(err, s.Pos)
				}
				for _, c := range cols {
					r.items = append(r.items, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c}})
					r.explicit = append(r.explicit, false)
				}
				break
			}
			if s.Table != nil && !r.qualifierMatches(s.Table) {
				return r.at(invalid("%s.* names no table of this query; it reads only %s", clip(s.Table.String()), r.describeSource()), s.Pos)
			}
			for _, c := range starColumns(r.ds) {
				r.items = append(r.items, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c.Name}})
				r.explicit = append(r.explicit, false)
			}
			if len(r.ds.Columns) == 0 {
				return invalid("dataset %s has no columns; name the columns you need", r.ds.FullName())
			}
		default:
			e, err := r.expr(s.Expr, scopeSelect, true, 0)
			if err != nil {
				return err
			}
			r.items = append(r.items, SelectItem{Expr: e, Alias: s.Alias})
			r.explicit = append(r.explicit, s.Alias != "")
		}
		if len(r.items) > maxSelectItems {
			return invalid("the query selects more than %d columns", maxSelectItems)
		}
	}
	return r.nameOutputs()
}

// nameOutputs gives every output column a unique name: its alias, else its
// column name, else a readable name generated from the expression.
func (r *resolver) nameOutputs() error {
	used := map[string]bool{}
	for i, it := range r.items {
		if !r.explicit[i] {
			continue
		}
		if err := checkAlias(it.Alias); err != nil {
			return err
		}
		k := strings.ToLower(it.Alias)
		if used[k] {
			return invalid("output name %q is used twice; give each output column its own alias", it.Alias)
		}
		used[k] = true
	}
	for i := range r.items {
		if r.explicit[i] {
			continue
		}
		base := generatedName(r.items[i].Expr)
		if r.multi != nil {
			base = generatedName(displayExpr(r.items[i].Expr))
		}
		name := base
		for n := 2; used[strings.ToLower(name)]; n++ {
			name = base + "_" + strconv.Itoa(n)
		}
		used[strings.ToLower(name)] = true
		r.items[i].Alias = name
	}
	return nil
}

// starColumns are the columns * stands for. Hidden columns are never
// released, so * does not ask for them — unless every column is hidden:
// then * asks for all of them and the policy explains why the dataset
// cannot be read (its share class and legal basis, or its hidden
// columns), as it would for a column named in the query.
func starColumns(ds *sluice.Dataset) []*sluice.Column {
	var out []*sluice.Column
	for _, c := range ds.Columns {
		if c.Release != sluice.ReleaseHidden {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return ds.Columns
	}
	return out
}

func generatedName(e *Expr) string {
	switch e.Kind {
	case KindColumn:
		return e.Column
	case KindAggregate, KindFunc:
		if len(e.Args) > 0 && e.Args[0] != nil && e.Args[0].Kind == KindColumn {
			return e.Func + "_" + e.Args[0].Column
		}
		return e.Func
	}
	return "expr"
}

func (r *resolver) describeSource() string {
	if r.alias != "" {
		return r.ds.FullName() + " AS " + r.alias
	}
	return r.ds.FullName()
}

// qualifierMatches reports whether a column qualifier names the source:
// its alias, department.dataset, or (without an alias) the dataset name.
func (r *resolver) qualifierMatches(t *sqlast.TableName) bool {
	if t.Schema != "" {
		return strings.EqualFold(t.Schema, r.ds.Department) && strings.EqualFold(t.Name, r.ds.Name)
	}
	if r.alias != "" {
		return strings.EqualFold(t.Name, r.alias)
	}
	return strings.EqualFold(t.Name, r.ds.Name)
}

// aliasExpr returns a copy of the expression of the select item named
// name with AS, or nil.
func (r *resolver) aliasExpr(name string) *Expr {
	var found *Expr
	for i, it := range r.items {
		if r.explicit[i] && strings.EqualFold(it.Alias, name) {
			found = it.Expr
			break
		}
	}
	return cloneExpr(found)
}

func (r *resolver) column(c *sqlast.ColumnRef, sc scope, top bool) (*Expr, error) {
	if r.multi != nil {
		return r.multiColumn(c, sc, top)
	}
	name := c.Name
	if c.Table != nil {
		if !r.qualifierMatches(c.Table) {
			return nil, invalid("%s.%s names no table of this query; it reads only %s", clip(c.Table.String()), clip(name), r.describeSource())
		}
		if col := r.ds.Column(name); col != nil {
			return &Expr{Kind: KindColumn, Column: col.Name}, nil
		}
		return nil, r.unknownColumn(name)
	}
	// ORDER BY prefers an output name, as every dialect does for a bare
	// name; GROUP BY and HAVING prefer the source column (standard SQL).
	if sc == scopeOrder && top {
		if e := r.aliasExpr(name); e != nil {
			return e, nil
		}
	}
	if col := r.ds.Column(name); col != nil {
		return &Expr{Kind: KindColumn, Column: col.Name}, nil
	}
	if sc == scopeGroup || sc == scopeHaving || sc == scopeOrder {
		if e := r.aliasExpr(name); e != nil {
			return e, nil
		}
	}
	return nil, r.unknownColumn(name)
}

func (r *resolver) unknownColumn(name string) error {
	return invalid("dataset %s has no column %q; `sluice catalog show %s` shows its columns", r.ds.FullName(), clip(name), r.ds.FullName())
}

// groupKey resolves one GROUP BY item: a position in the select list, an
// output name, or an expression over columns.
func (r *resolver) groupKey(g sqlast.Expr) (*Expr, error) {
	var e *Expr
	if n, ok, err := ordinal(g, len(r.items), "GROUP BY"); err != nil {
		return nil, r.at(err, g.Position())
	} else if ok {
		e = cloneExpr(r.items[n-1].Expr)
	} else if e, err = r.expr(g, scopeGroup, true, 0); err != nil {
		return nil, err
	}
	if hasAggregate(e) {
		return nil, r.at(invalid("GROUP BY cannot use an aggregate; group by columns and filter groups with HAVING"), g.Position())
	}
	return e, nil
}

func (r *resolver) orderKey(o sqlast.Expr) (*Expr, error) {
	if n, ok, err := ordinal(o, len(r.items), "ORDER BY"); err != nil {
		return nil, r.at(err, o.Position())
	} else if ok {
		return cloneExpr(r.items[n-1].Expr), nil
	}
	return r.expr(o, scopeOrder, true, 0)
}

// ordinal reads a select-list position (GROUP BY 1, ORDER BY 2).
func ordinal(e sqlast.Expr, n int, clause string) (int, bool, error) {
	v, ok := e.(*sqlast.Literal)
	if !ok || v.Kind != sqlast.LitInt {
		return 0, false, nil
	}
	i, err := strconv.Atoi(v.Text)
	if err != nil || i < 1 || i > n {
		return 0, false, invalid("%s position %s is out of range: the select list has %d columns", clause, clip(v.Text), n)
	}
	return i, true, nil
}

func negateNumber(s string) string {
	if strings.HasPrefix(s, "-") {
		return s[1:]
	}
	if s == "0" {
		return s
	}
	return "-" + s
}
