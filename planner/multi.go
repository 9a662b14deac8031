package planner

import (
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-gov/sluice/planner/sqlast"

	sluice "github.com/sluice-gov/sluice"
)

// Multi-dataset planning: joins, derived tables and IN subqueries.
//
// Names. Every column the sandbox plan refers to has an internal name that
// is unique across the whole plan: "<alias>.<column>" for a column of a
// table occurrence (its fragment's output name), "<alias>.<name>" for an
// output of a derived table or IN subquery, "$n" for a value the planner
// computes. Aliases are made unique across the query (r, r_2, ...), and
// may not contain a dot, so the three forms never collide.
//
// Pushdown. Each table occurrence becomes one fragment that selects only
// the columns the sandbox needs and filters by every condition that
// involves that table alone and may be applied before the join: WHERE
// conjuncts, unless the table is on the nullable side of a LEFT JOIN (they
// stay above the join); ON conjuncts of inner joins; ON conjuncts of a
// LEFT JOIN that touch only its right side. A derived table that is a
// plain projection of one dataset (SELECT cols FROM d WHERE ...) is
// flattened into a fragment of its own; any other subquery is planned in
// the sandbox.

const (
	maxTables        = 16
	maxSubqueryDepth = 8
)

// mplan is the state of planning one multi-dataset query.
type mplan struct {
	sql     string // the analyst's text, for positions in errors
	cat     *sluice.Catalog
	frags   []*mfrag
	aliases map[string]bool     // internal aliases, lower case
	seq     int                 // generated names
	meta    map[string]*colMeta // by internal name
	owner   map[string]*relation
	psiKey  map[int]string // fragment -> its PSI key (internal name)
	pairs   []JoinPair
	depth   int
}

// at adds a position in the analyst's SQL to an error (see locate).
func (m *mplan) at(err error, pos int) error { return locate(err, m.sql, pos) }

// mfrag is one fragment being planned.
type mfrag struct {
	alias  string
	ds     *sluice.Dataset
	cols   []fragCol          // the columns the fragment can output
	byName map[string]string  // internal name -> catalog column
	where  []*Expr            // over catalog column names
	node   *Node              // its sandbox node
	demand map[string]*demand // what the sandbox needs of each column
}

type fragCol struct{ internal, column string }

// colMeta describes one internal column.
type colMeta struct {
	col    sluice.Column   // synthetic: Name is the internal name; Type, Release and Mask for type checking
	src    *ColumnRef      // the source column this is an unchanged copy of, or nil
	srcCol *sluice.Column  // its catalog column
	srcDS  *sluice.Dataset // its dataset
	frag   int             // the fragment this is a direct output of, or -1
}

func (c *colMeta) joinKey() bool {
	return c.srcCol != nil && c.srcCol.Release == sluice.ReleaseJoinKey
}

func (c *colMeta) ref() ColumnRef {
	if c.src == nil {
		return ColumnRef{}
	}
	return *c.src
}

// relation is one table, derived table or subquery visible by name.
type relation struct {
	name  string          // as written: the alias, or the dataset name
	ds    *sluice.Dataset // a table occurrence's dataset
	table bool            // a table occurrence (department.dataset qualifies it too)
	raw   bool            // resolves to bare catalog column names (inside a flattened subquery)
	cols  []relCol
	node  *Node
}

type relCol struct {
	name, internal string
	hidden         bool // not expanded by *
}

func (r *relation) col(name string) *relCol {
	for i := range r.cols {
		if strings.EqualFold(r.cols[i].name, name) {
			return &r.cols[i]
		}
	}
	return nil
}

func (r *relation) describe() string {
	if r.table {
		if strings.EqualFold(r.name, r.ds.Name) {
			return r.ds.FullName()
		}
		return r.ds.FullName() + " AS " + r.name
	}
	return "subquery " + r.name
}

// scopeSet is the set of relations one SELECT can name. outer is the
// enclosing query, consulted only to explain that correlated subqueries
// are not supported.
type scopeSet struct {
	m     *mplan
	rels  []*relation
	outer *scopeSet
	// correlated lets names this scope lacks resolve in the enclosing
	// query's scope (outer only, not beyond): the WHERE of an EXISTS
	// subquery planned as a semi or anti join (exists.go).
	correlated bool
}

func (s *scopeSet) add(r *relation) error {
	for _, o := range s.rels {
		if strings.EqualFold(o.name, r.name) {
			return invalid("table name %s is used twice in FROM; give each table its own alias (FROM a.x AS p JOIN a.x AS q ...)", clip(r.name))
		}
	}
	s.rels = append(s.rels, r)
	return nil
}

func (s *scopeSet) match(q *sqlast.TableName) []*relation {
	var out []*relation
	for _, r := range s.rels {
		if q.Schema != "" {
			if r.table && strings.EqualFold(q.Schema, r.ds.Department) && strings.EqualFold(q.Name, r.ds.Name) {
				out = append(out, r)
			}
		} else if strings.EqualFold(q.Name, r.name) {
			out = append(out, r)
		}
	}
	return out
}

func (s *scopeSet) describe() string {
	var names []string
	for _, r := range s.rels {
		names = append(names, r.describe())
	}
	return strings.Join(names, ", ")
}

var errCorrelated = "correlated subqueries (a subquery that refers to a table of the enclosing query) are not supported yet; join the tables instead"

// lookup resolves a column name. found is false (with no error) when no
// relation has an unqualified name.
func (s *scopeSet) lookup(q *sqlast.TableName, name string) (string, bool, error) {
	if q != nil {
		rels := s.match(q)
		if len(rels) == 0 && s.correlated && s.outer != nil && len(s.outer.match(q)) > 0 {
			return s.outer.lookup(q, name)
		}
		if len(rels) == 0 {
			for o := s.outer; o != nil; o = o.outer {
				if len(o.match(q)) > 0 {
					return "", false, notSupported("%s", errCorrelated)
				}
			}
			return "", false, invalid("%s.%s names no table of this query; it reads %s", clip(q.String()), clip(name), s.describe())
		}
		if len(rels) > 1 {
			return "", false, invalid("%s is ambiguous: the query reads it more than once; qualify its columns with an alias", clip(q.String()))
		}
		c := rels[0].col(name)
		if c == nil {
			return "", false, unknownIn(rels[0], name)
		}
		return c.internal, true, nil
	}
	var hits []*relation
	var internal string
	for _, r := range s.rels {
		if c := r.col(name); c != nil {
			hits = append(hits, r)
			internal = c.internal
		}
	}
	switch len(hits) {
	case 0:
		return "", false, nil
	case 1:
		return internal, true, nil
	}
	return "", false, invalid("column %q is ambiguous: %s and %s both have it; qualify it (e.g. %s.%s)", clip(name), hits[0].describe(), hits[1].describe(), clip(hits[0].name), clip(name))
}

func unknownIn(r *relation, name string) error {
	if r.table {
		return invalid("dataset %s has no column %q; `sluice catalog show %s` shows its columns", r.ds.FullName(), clip(name), r.ds.FullName())
	}
	return invalid("subquery %s has no column %q", clip(r.name), clip(name))
}

func (s *scopeSet) outerHas(name string) bool {
	for o := s.outer; o != nil; o = o.outer {
		for _, r := range o.rels {
			if r.col(name) != nil {
				return true
			}
		}
	}
	return false
}

// star expands * or t.* to internal column names.
func (s *scopeSet) star(t *sqlast.TableName) ([]string, error) {
	rels := s.rels
	if t != nil {
		rels = s.match(t)
		if len(rels) == 0 {
			return nil, invalid("%s.* names no table of this query; it reads %s", clip(t.String()), s.describe())
		}
	}
	var out []string
	for _, r := range rels {
		for _, c := range r.cols {
			if !c.hidden {
				out = append(out, c.internal)
			}
		}
	}
	if len(out) == 0 {
		return nil, invalid("SELECT * finds no columns it can return here; name the columns you need")
	}
	return out, nil
}

// synth is a synthetic dataset of every column the scope can name, so the
// single-dataset checker types expressions over internal names.
func (s *scopeSet) synth() *sluice.Dataset {
	ds := &sluice.Dataset{Department: "sandbox", Name: "query"}
	seen := map[string]bool{}
	for _, r := range s.rels {
		if r.raw {
			continue
		}
		for _, c := range r.cols {
			if seen[c.internal] {
				continue
			}
			seen[c.internal] = true
			if m := s.m.meta[c.internal]; m != nil {
				col := m.col
				ds.Columns = append(ds.Columns, &col)
			}
		}
	}
	return ds
}

// multiColumn resolves a column reference of a multi-dataset query; the
// alias rules are those of column().
func (r *resolver) multiColumn(c *sqlast.ColumnRef, sc scope, top bool) (*Expr, error) {
	name := c.Name
	if c.Table != nil {
		internal, _, err := r.multi.lookup(c.Table, name)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindColumn, Column: internal}, nil
	}
	if sc == scopeOrder && top {
		if e := r.aliasExpr(name); e != nil {
			return e, nil
		}
	}
	internal, found, err := r.multi.lookup(nil, name)
	if err != nil {
		return nil, err
	}
	if found {
		return &Expr{Kind: KindColumn, Column: internal}, nil
	}
	if sc == scopeGroup || sc == scopeHaving || sc == scopeOrder {
		if e := r.aliasExpr(name); e != nil {
			return e, nil
		}
	}
	if r.multi.correlated && r.multi.outer != nil {
		// A correlated subquery (EXISTS) may name the enclosing query's
		// columns: they resolve to their plan-wide names.
		if internal, found, err := r.multi.outer.lookup(nil, name); err != nil || found {
			if err != nil {
				return nil, err
			}
			return &Expr{Kind: KindColumn, Column: internal}, nil
		}
	}
	if r.multi.outerHas(name) {
		return nil, notSupported("%s", errCorrelated)
	}
	return nil, invalid("no table of this query has a column %q; it reads %s (`sluice catalog show department.dataset` shows a dataset's columns)", clip(name), r.multi.describe())
}

// displayExpr names internal columns as the analyst sees them (the part
// after the alias), for generated output names.
func displayExpr(e *Expr) *Expr {
	c := cloneExpr(e)
	var walk func(*Expr)
	walk = func(x *Expr) {
		if x == nil {
			return
		}
		if x.Kind == KindColumn {
			if _, after, ok := strings.Cut(x.Column, "."); ok {
				x.Column = after
			}
		}
		for _, a := range x.Args {
			walk(a)
		}
	}
	walk(c)
	return c
}

func (m *mplan) gen() string {
	m.seq++
	return "$" + strconv.Itoa(m.seq)
}

// uniqAlias reserves an internal alias based on want.
func (m *mplan) uniqAlias(want string) string {
	name := want
	for n := 2; m.aliases[strings.ToLower(name)]; n++ {
		name = want + "_" + strconv.Itoa(n)
	}
	m.aliases[strings.ToLower(name)] = true
	return name
}

func checkTableAlias(a string) error {
	if strings.Contains(a, ".") || strings.HasPrefix(a, "$") {
		return invalid("table alias %q must not contain a dot or start with $", clip(a))
	}
	return checkAlias(a)
}

func (m *mplan) newFragment(alias string, ds *sluice.Dataset) (*mfrag, error) {
	if len(m.frags) >= maxTables {
		return nil, notSupported("a query over more than %d tables is not supported yet", maxTables)
	}
	f := &mfrag{alias: alias, ds: ds, byName: map[string]string{}}
	f.node = &Node{Op: OpFragment, Fragment: len(m.frags)}
	m.frags = append(m.frags, f)
	return f, nil
}

// addFragCol makes column col of fragment f available as internal.
func (m *mplan) addFragCol(f *mfrag, internal string, col *sluice.Column) {
	f.cols = append(f.cols, fragCol{internal: internal, column: col.Name})
	f.byName[internal] = col.Name
	c := *col
	c.Name = internal
	m.meta[internal] = &colMeta{
		col: c, src: &ColumnRef{Dataset: f.ds.FullName(), Column: col.Name},
		srcCol: col, srcDS: f.ds, frag: f.node.Fragment,
	}
}

// tableRelation is one occurrence of a dataset in FROM.
func (m *mplan) tableRelation(t *sqlast.Table) (*relation, error) {
	ds, err := resolveDataset(m.cat, t.Name)
	if err != nil {
		return nil, err
	}
	if len(t.ColumnAliases) > 0 {
		return nil, notSupported("column aliases for a table (AS t(a, b)) are not supported yet; alias the columns in the select list")
	}
	alias := t.Alias
	name := alias
	if name == "" {
		name = ds.Name
	}
	if err := checkTableAlias(name); err != nil {
		return nil, err
	}
	f, err := m.newFragment(m.uniqAlias(name), ds)
	if err != nil {
		return nil, err
	}
	rel := &relation{name: name, ds: ds, table: true, node: f.node}
	for _, c := range ds.Columns {
		internal := f.alias + "." + c.Name
		m.addFragCol(f, internal, c)
		rel.cols = append(rel.cols, relCol{name: c.Name, internal: internal, hidden: starHidden(ds, c)})
		m.owner[internal] = rel
	}
	return rel, nil
}

// starHidden reports whether * leaves column c of ds out (see starColumns).
func starHidden(ds *sluice.Dataset, c *sluice.Column) bool {
	for _, x := range starColumns(ds) {
		if x == c {
			return false
		}
	}
	return true
}

// flattenable reports whether a subquery is a plain projection of
// columns of one dataset with an optional WHERE: it then becomes a
// fragment of its own.
func flattenable(sel *sqlast.Select) bool {
	if sel.Distinct || len(sel.GroupBy) > 0 || sel.Having != nil || len(sel.OrderBy) > 0 ||
		sel.Limit != nil || sel.Offset != nil || sel.Op != "" || len(sel.With) > 0 {
		return false
	}
	if t, ok := singleTable(sel.From); !ok || len(t.ColumnAliases) > 0 {
		return false
	}
	for _, it := range sel.Items {
		if it.Star {
			continue
		}
		if _, ok := it.Expr.(*sqlast.ColumnRef); !ok {
			return false
		}
	}
	return sel.Where == nil || !hasSubquery(sel.Where)
}

// flatten plans a flattenable subquery as one fragment; base names its
// internal alias, name is the relation's name in the enclosing query.
func (m *mplan) flatten(sel *sqlast.Select, name, base string, outer *scopeSet) (*relation, error) {
	at, _ := singleTable(sel.From)
	ds, err := resolveDataset(m.cat, at.Name)
	if err != nil {
		return nil, m.at(err, at.Name.Pos)
	}
	innerName := at.Alias
	if innerName == "" {
		innerName = ds.Name
	}
	if base == "" {
		base = innerName
	}
	if err := checkTableAlias(base); err != nil {
		return nil, err
	}
	inner := &scopeSet{m: m, outer: outer}
	raw := &relation{name: innerName, ds: ds, table: true, raw: true}
	for _, c := range ds.Columns {
		raw.cols = append(raw.cols, relCol{name: c.Name, internal: c.Name, hidden: starHidden(ds, c)})
	}
	inner.rels = []*relation{raw}
	r := &resolver{sql: m.sql, multi: inner}
	var where *Expr
	if sel.Where != nil {
		if where, err = r.expr(sel.Where, scopeWhere, true, 0); err != nil {
			return nil, err
		}
	}
	type out struct{ name, column string }
	var outs []out
	for _, s := range sel.Items {
		if s.Star {
			cols, err := inner.star(s.Table)
			if err != nil {
				return nil, m.at(err, s.Pos)
			}
			for _, c := range cols {
				outs = append(outs, out{c, c})
			}
			continue
		}
		e, err := r.expr(s.Expr, scopeSelect, true, 0)
		if err != nil {
			return nil, err
		}
		n := e.Column
		if s.Alias != "" {
			n = s.Alias
			if err := checkAlias(n); err != nil {
				return nil, m.at(err, s.Pos)
			}
		}
		outs = append(outs, out{n, e.Column})
	}
	f, err := m.newFragment(m.uniqAlias(base), ds)
	if err != nil {
		return nil, err
	}
	rel := &relation{name: name, node: f.node}
	seen := map[string]bool{}
	for _, o := range outs {
		if seen[strings.ToLower(o.name)] {
			return nil, invalid("subquery %s has two columns named %q; give each its own alias", clip(name), clip(o.name))
		}
		seen[strings.ToLower(o.name)] = true
		internal := f.alias + "." + o.name
		m.addFragCol(f, internal, ds.Column(o.column))
		rel.cols = append(rel.cols, relCol{name: o.name, internal: internal})
		m.owner[internal] = rel
	}
	if where != nil {
		f.where = append(f.where, where)
	}
	return rel, nil
}

// derivedRelation plans (SELECT ...) AS alias in FROM.
func (m *mplan) derivedRelation(d *sqlast.Derived, s *scopeSet) (*relation, error) {
	alias, sel := d.Alias, d.Query
	if alias == "" {
		return nil, invalid("a subquery in FROM needs an alias: FROM (SELECT ...) AS s")
	}
	if err := checkTableAlias(alias); err != nil {
		return nil, err
	}
	if d.Lateral {
		return nil, notSupported("LATERAL subqueries are not supported yet; join the tables instead")
	}
	sel, err := renameOutputs(sel, d.ColumnAliases, "subquery "+clip(alias))
	if err != nil {
		return nil, err
	}
	if flattenable(sel) {
		return m.flatten(sel, alias, alias, s)
	}
	prefix := m.uniqAlias(alias)
	sp, err := m.planSelect(sel, prefix+".", s)
	if err != nil {
		return nil, err
	}
	rel := &relation{name: alias, node: sp.node}
	for _, o := range sp.outs {
		_, after, _ := strings.Cut(o, ".")
		rel.cols = append(rel.cols, relCol{name: after, internal: o})
		m.owner[o] = rel
	}
	return rel, nil
}

// fromNode is the FROM clause as written, before pushdown.
type fromNode struct {
	rel         *relation
	kind        string
	left, right *fromNode
	on          []*Expr
	rels        map[*relation]bool
}

func (m *mplan) buildFrom(tes []sqlast.TableExpr, s *scopeSet) (*fromNode, error) {
	var out *fromNode
	for _, te := range tes {
		fn, err := m.tableExpr(te, s)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = fn
			continue
		}
		out = &fromNode{kind: JoinInner, left: out, right: fn, rels: unionRels(out.rels, fn.rels)}
	}
	if out == nil {
		return nil, invalid("the query has no FROM clause")
	}
	return out, nil
}

func unionRels(a, b map[*relation]bool) map[*relation]bool {
	out := map[*relation]bool{}
	for r := range a {
		out[r] = true
	}
	for r := range b {
		out[r] = true
	}
	return out
}

func (m *mplan) tableExpr(te sqlast.TableExpr, s *scopeSet) (fn *fromNode, err error) {
	defer func() {
		if err != nil {
			err = m.at(err, te.Position())
		}
	}()
	switch t := te.(type) {
	case *sqlast.Table, *sqlast.Derived:
		var rel *relation
		var err error
		if tt, ok := t.(*sqlast.Table); ok {
			rel, err = m.tableRelation(tt)
		} else {
			rel, err = m.derivedRelation(t.(*sqlast.Derived), s)
		}
		if err != nil {
			return nil, err
		}
		if err := s.add(rel); err != nil {
			return nil, err
		}
		return &fromNode{rel: rel, rels: map[*relation]bool{rel: true}}, nil
	case *sqlast.Join:
		var kind string
		switch t.Kind {
		case sqlast.JoinInner, sqlast.JoinCross:
			kind = JoinInner
		case sqlast.JoinLeft:
			kind = JoinLeft
		case sqlast.JoinRight:
			return nil, notSupported("RIGHT JOIN is not supported yet; swap the tables and use LEFT JOIN")
		case sqlast.JoinFull:
			return nil, notSupported("FULL JOIN is not supported yet; use JOIN or LEFT JOIN with ON")
		default:
			return nil, notSupported("%s is not supported yet; use JOIN or LEFT JOIN with ON", t.Kind)
		}
		if t.Natural {
			return nil, notSupported("NATURAL JOIN is not supported yet; write ON a.col = b.col")
		}
		if len(t.Using) > 0 {
			return nil, notSupported("JOIN ... USING is not supported yet; write ON a.col = b.col")
		}
		left, err := m.tableExpr(t.Left, s)
		if err != nil {
			return nil, err
		}
		right, err := m.tableExpr(t.Right, s)
		if err != nil {
			return nil, err
		}
		fn := &fromNode{kind: kind, left: left, right: right, rels: unionRels(left.rels, right.rels)}
		if t.On == nil {
			if kind == JoinLeft {
				return nil, invalid("LEFT JOIN needs an ON condition")
			}
			return fn, nil
		}
		r := &resolver{sql: m.sql, multi: s}
		on, err := r.expr(t.On, scopeWhere, true, 0)
		if err != nil {
			return nil, err
		}
		c := &checker{ds: s.synth(), maybeMasked: true}
		ty, err := c.check(on, false, false, 0)
		if err != nil {
			return nil, m.at(err, t.On.Position())
		}
		if ty.t != "" && ty.t != sluice.TypeBoolean {
			return nil, m.at(invalid("ON needs a condition, got %s; write e.g. ON a.x = b.x", ty.t), t.On.Position())
		}
		for _, cj := range splitConj(on) {
			for rel := range m.relsOf(cj) {
				if !fn.rels[rel] {
					return nil, m.at(invalid("the ON condition of a join may refer only to the tables it joins, not to %s", rel.describe()), t.On.Position())
				}
			}
			fn.on = append(fn.on, cj)
		}
		return fn, nil
	}
	return nil, notSupported("this FROM clause is not supported yet; write FROM department.dataset")
}

func splitConj(e *Expr) []*Expr {
	if e == nil {
		return nil
	}
	if e.Kind == KindBinary && e.Op == "AND" && len(e.Args) == 2 {
		return append(splitConj(e.Args[0]), splitConj(e.Args[1])...)
	}
	return []*Expr{e}
}

func andAll(es []*Expr) *Expr {
	var out *Expr
	for _, e := range es {
		if out == nil {
			out = e
		} else {
			out = &Expr{Kind: KindBinary, Op: "AND", Args: []*Expr{out, e}}
		}
	}
	return out
}

func splitAndAST(e sqlast.Expr) []sqlast.Expr {
	switch x := e.(type) {
	case *sqlast.Binary:
		if x.Op == "AND" {
			return append(splitAndAST(x.L), splitAndAST(x.R)...)
		}
	}
	return []sqlast.Expr{e}
}

func exprColumns(e *Expr, fn func(string)) {
	if e == nil {
		return
	}
	if e.Kind == KindColumn {
		fn(e.Column)
	}
	for _, a := range e.Args {
		exprColumns(a, fn)
	}
}

func (m *mplan) relsOf(e *Expr) map[*relation]bool {
	out := map[*relation]bool{}
	exprColumns(e, func(c string) {
		if r := m.owner[c]; r != nil {
			out[r] = true
		}
	})
	return out
}

func subset(a, b map[*relation]bool) bool {
	for r := range a {
		if !b[r] {
			return false
		}
	}
	return true
}

// buildTree turns the FROM tree into sandbox nodes, pushing conj (WHERE
// conjuncts that involve only this subtree) as far down as is sound.
func (m *mplan) buildTree(fn *fromNode, conj []*Expr) (*Node, error) {
	if fn.rel != nil {
		n := fn.rel.node
		if n.Op == OpFragment {
			f := m.frags[n.Fragment]
			for _, c := range conj {
				f.where = append(f.where, renameColumns(c, f.byName))
			}
			return n, nil
		}
		if len(conj) > 0 {
			n = &Node{Op: OpFilter, Predicate: andAll(conj), Inputs: []*Node{n}}
		}
		return n, nil
	}
	var lc, rc, above, resid []*Expr
	var keys []JoinKey
	keyOrResid := func(c *Expr) {
		if c.Kind == KindBinary && c.Op == "=" && len(c.Args) == 2 && c.Args[0].Kind == KindColumn && c.Args[1].Kind == KindColumn {
			a, b := c.Args[0].Column, c.Args[1].Column
			if fn.left.rels[m.owner[a]] && fn.right.rels[m.owner[b]] {
				keys = append(keys, JoinKey{Left: a, Right: b})
				return
			}
			if fn.left.rels[m.owner[b]] && fn.right.rels[m.owner[a]] {
				keys = append(keys, JoinKey{Left: b, Right: a})
				return
			}
		}
		resid = append(resid, c)
	}
	for _, c := range conj {
		rs := m.relsOf(c)
		switch {
		case subset(rs, fn.left.rels):
			lc = append(lc, c)
		case fn.kind == JoinLeft:
			// A condition on the nullable side (or on both) in WHERE must
			// see the null-extended rows: it stays above the join.
			above = append(above, c)
		case subset(rs, fn.right.rels):
			rc = append(rc, c)
		default:
			keyOrResid(c)
		}
	}
	for _, c := range fn.on {
		rs := m.relsOf(c)
		switch {
		case len(rs) == 0:
			resid = append(resid, c)
		case subset(rs, fn.right.rels):
			rc = append(rc, c)
		case subset(rs, fn.left.rels):
			if fn.kind == JoinLeft {
				// Filtering the preserved side would drop its rows.
				resid = append(resid, c)
			} else {
				lc = append(lc, c)
			}
		default:
			keyOrResid(c)
		}
	}
	if len(keys) == 0 && !(fn.kind == JoinInner && fn.right.rel != nil && fn.right.rel.node.oneRow(0)) {
		return nil, notSupported("a query over more than one dataset needs an equality between columns of the tables it joins (ON a.x = b.y, or in WHERE); joins without one (cross joins) are not supported yet")
	}
	ln, err := m.buildTree(fn.left, lc)
	if err != nil {
		return nil, err
	}
	rn, err := m.buildTree(fn.right, rc)
	if err != nil {
		return nil, err
	}
	n := &Node{Op: OpJoin, JoinKind: fn.kind, Inputs: []*Node{ln, rn}, Keys: keys, Residual: andAll(resid)}
	if err := m.classifyJoin(n); err != nil {
		return nil, err
	}
	if len(above) > 0 {
		n = &Node{Op: OpFilter, Predicate: andAll(above), Inputs: []*Node{n}}
	}
	return n, nil
}

func renameColumns(e *Expr, names map[string]string) *Expr {
	c := cloneExpr(e)
	var walk func(*Expr)
	walk = func(x *Expr) {
		if x == nil {
			return
		}
		if x.Kind == KindColumn {
			x.Column = names[x.Column]
		}
		for _, a := range x.Args {
			walk(a)
		}
	}
	walk(c)
	return c
}

func (m *mplan) metaType(c *colMeta) typ {
	ds := &sluice.Dataset{Columns: []*sluice.Column{&c.col}}
	t, err := (&checker{ds: ds, maybeMasked: true}).check(&Expr{Kind: KindColumn, Column: c.col.Name}, false, false, 0)
	if err != nil {
		return typ{}
	}
	return t
}

func describeMeta(c *colMeta) string {
	if c.src != nil {
		return c.src.Dataset + "." + c.src.Column
	}
	return "a computed value"
}

// classifyJoin decides how each key pair of a join runs (PSI or hash
// join), refuses joins of keys of different domains, and records the
// pairs for the policy.
func (m *mplan) classifyJoin(n *Node) error {
	psi := -1
	var pairs []JoinPair
	for i, k := range n.Keys {
		ml, mr := m.meta[k.Left], m.meta[k.Right]
		if ml == nil || mr == nil {
			return sluice.Errorf(sluice.EInternal, "the planner lost track of a join key; please report it with the query text")
		}
		if !comparable(m.metaType(ml), m.metaType(mr)) {
			return invalid("cannot join %s (%s) with %s (%s): the key types differ", describeMeta(ml), typeName(m.metaType(ml)), describeMeta(mr), typeName(m.metaType(mr)))
		}
		pair := JoinPair{Left: ml.ref(), Right: mr.ref()}
		if ml.joinKey() && mr.joinKey() {
			dl, dr := ml.srcCol.KeyDomain, mr.srcCol.KeyDomain
			if !strings.EqualFold(dl, dr) {
				return invalid("cannot join %s keys with %s keys: %s and %s are identifiers of different kinds", clip(dl), clip(dr), describeMeta(ml), describeMeta(mr))
			}
			if psi >= 0 {
				return notSupported("a join on two private key pairs is not supported yet; join on one key")
			}
			psi = i
		}
		pairs = append(pairs, pair)
	}
	if psi >= 0 {
		k := n.Keys[psi]
		ml, mr := m.meta[k.Left], m.meta[k.Right]
		l, r := n.Inputs[0], n.Inputs[1]
		if l.Op != OpFragment || r.Op != OpFragment || ml.frag != l.Fragment || mr.frag != r.Fragment {
			return notSupported("a private join on %s and %s needs both keys straight from their datasets; joining a private key that comes from a subquery or from an earlier join is not supported yet", describeMeta(ml), describeMeta(mr))
		}
		if m.psiKey[l.Fragment] != "" || m.psiKey[r.Fragment] != "" {
			return notSupported("joining one dataset occurrence to two others on private keys is not supported yet; join two datasets on a private key at a time")
		}
		m.psiKey[l.Fragment], m.psiKey[r.Fragment] = k.Left, k.Right
		n.PSI, n.KeyDomain = true, ml.srcCol.KeyDomain
		var resid []*Expr
		for i, o := range n.Keys {
			if i != psi {
				resid = append(resid, &Expr{Kind: KindBinary, Op: "=", Args: []*Expr{{Kind: KindColumn, Column: o.Left}, {Kind: KindColumn, Column: o.Right}}})
			}
		}
		if n.Residual != nil {
			resid = append(resid, n.Residual)
		}
		n.Keys, n.Residual = []JoinKey{k}, andAll(resid)
		pairs[psi].PSI, pairs[psi].KeyDomain = true, n.KeyDomain
	}
	m.pairs = append(m.pairs, pairs...)
	return nil
}

// semiJoin plans `col IN (SELECT ...)` as a semi join of node with the
// subquery, and `col NOT IN (SELECT ...)` as a null-aware anti join.
func (m *mplan) semiJoin(node *Node, in *sqlast.InSubquery, r *resolver, s *scopeSet) (*Node, error) {
	lhs, err := r.expr(in.X, scopeWhere, true, 0)
	if err != nil {
		return nil, err
	}
	if lhs.Kind != KindColumn {
		return nil, m.at(notSupported("IN (SELECT ...) with an expression on its left is not supported yet; compare a column"), in.Pos)
	}
	sel := in.Query
	var right *Node
	var key string
	if flattenable(sel) {
		rel, err := m.flatten(sel, "", "", s)
		if err != nil {
			return nil, err
		}
		if len(rel.cols) != 1 {
			return nil, invalid("the subquery of IN must select exactly one column")
		}
		right, key = rel.node, rel.cols[0].internal
	} else {
		sp, err := m.planSelect(sel, m.uniqAlias("in")+".", s)
		if err != nil {
			return nil, err
		}
		if len(sp.outs) != 1 {
			return nil, invalid("the subquery of IN must select exactly one column")
		}
		right, key = sp.node, sp.outs[0]
	}
	n := &Node{Op: OpJoin, JoinKind: JoinSemi, Inputs: []*Node{node, right}, Keys: []JoinKey{{Left: lhs.Column, Right: key}}}
	if in.Not {
		// x NOT IN (SELECT k ...) keeps x when no k equals it, and keeps
		// nothing when x is NULL or some k is NULL (SQL's three-valued
		// NOT IN), unless the subquery is empty.
		n.JoinKind, n.NullAware = JoinAnti, true
	}
	if err := m.classifyJoin(n); err != nil {
		return nil, err
	}
	if n.PSI && in.Not {
		return nil, m.at(notSupported("NOT IN (SELECT ...) on a private join key is not supported yet; use IN (SELECT ...) or a join"), in.Pos)
	}
	return n, nil
}

// selPlan is one planned SELECT.
type selPlan struct {
	node    *Node
	outs    []string  // output column names, in order
	logical *Fragment // the resolved SELECT over internal names
}

// planSelect plans one SELECT; prefix ("alias.") names the outputs of a
// subquery, "" the analyst's result.
func (m *mplan) planSelect(sel *sqlast.Select, prefix string, outer *scopeSet) (*selPlan, error) {
	m.depth++
	defer func() { m.depth-- }()
	if m.depth > maxSubqueryDepth {
		return nil, notSupported("subqueries nested more than %d deep are not supported yet", maxSubqueryDepth)
	}
	if sel.Op != "" {
		return m.planSetOp(sel, prefix, outer)
	}
	s := &scopeSet{m: m, outer: outer}
	from, err := m.buildFrom(sel.From, s)
	if err != nil {
		return nil, err
	}
	r := &resolver{sql: m.sql, multi: s}
	var whereAST []sqlast.Expr
	var ins []*sqlast.InSubquery
	type existsCond struct {
		q    *sqlast.Select
		pos  int
		anti bool
	}
	var exists []existsCond
	if sel.Where != nil {
		for _, c := range splitAndAST(sel.Where) {
			switch q := c.(type) {
			case *sqlast.InSubquery:
				ins = append(ins, q)
				continue
			case *sqlast.Exists:
				exists = append(exists, existsCond{q: q.Query, pos: q.Pos})
				continue
			case *sqlast.Unary:
				if e, ok := q.X.(*sqlast.Exists); ok && q.Op == "NOT" {
					exists = append(exists, existsCond{q: e.Query, pos: e.Pos, anti: true})
					continue
				}
			}
			if cmp, sq, ok := isScalarComparison(c); ok {
				var rewritten sqlast.Expr
				if from, rewritten, err = m.scalarJoin(from, cmp, sq, s); err != nil {
					return nil, m.at(err, sq.Pos)
				}
				whereAST = append(whereAST, rewritten)
				continue
			}
			if hasSubquery(c) {
				var pos int
				sqlast.Walk(c, func(x sqlast.Expr) bool {
					switch x.(type) {
					case *sqlast.Subquery, *sqlast.Exists, *sqlast.InSubquery:
						pos = x.Position()
						return false
					}
					return true
				})
				return nil, m.at(notSupported("subqueries inside other conditions (scalar, EXISTS, IN under OR or NOT) are not supported yet; use col IN (SELECT col FROM ...) as a condition of its own, or a join"), pos)
			}
			whereAST = append(whereAST, c)
		}
	}
	shallow := *sel
	shallow.Where = nil
	if sel.Having != nil && hasSubquery(sel.Having) {
		if shallow.Having, from, err = m.scalarHaving(sel, from, s); err != nil {
			return nil, err
		}
	}
	if shallow.Items, from, err = m.scalarSelectList(sel, from, s); err != nil {
		return nil, err
	}
	L, err := r.build(&shallow)
	if err != nil {
		return nil, err
	}
	var conj []*Expr
	for _, c := range whereAST {
		e, err := r.expr(c, scopeWhere, true, 0)
		if err != nil {
			return nil, err
		}
		for _, c := range splitConj(e) {
			conj = append(conj, factorOr(c)...)
		}
	}
	L.Where = andAll(conj)
	synth := s.synth()
	if err := checkShape(L, synth, true); err != nil {
		return nil, err
	}
	var consts, rest []*Expr
	for _, c := range conj {
		if hasColumn(c) {
			rest = append(rest, c)
		} else {
			consts = append(consts, c)
		}
	}
	from, rest = m.orderJoins(from, rest)
	node, err := m.buildTree(from, rest)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if node, err = m.semiJoin(node, in, r, s); err != nil {
			return nil, err
		}
	}
	for _, x := range exists {
		if node, err = m.existsJoin(node, x.q, x.anti, s); err != nil {
			return nil, m.at(err, x.pos)
		}
	}
	if len(consts) > 0 {
		node = &Node{Op: OpFilter, Predicate: andAll(consts), Inputs: []*Node{node}}
	}
	return m.finishSelect(node, L, prefix, synth)
}

type groupKey struct {
	expr *Expr
	name string
}

// finishSelect adds aggregation, HAVING, the projection, DISTINCT, ORDER
// BY and LIMIT above node.
func (m *mplan) finishSelect(node *Node, L *Fragment, prefix string, synth *sluice.Dataset) (*selPlan, error) {
	rewrite := func(e *Expr) (*Expr, error) { return cloneExpr(e), nil }
	if isGrouped(L) {
		var keys []groupKey
		var gnames []string
		var pre []SelectItem
		prePass := map[string]bool{}
		computed := false
		pass := func(c string) {
			if !prePass[c] {
				prePass[c] = true
				pre = append(pre, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c}, Alias: c})
			}
		}
		for _, g := range L.GroupBy {
			name := ""
			for _, k := range keys {
				if exprEqual(k.expr, g) {
					name = k.name
				}
			}
			if name == "" {
				if g.Kind == KindColumn {
					name = g.Column
					pass(name)
				} else {
					name = m.gen()
					pre = append(pre, SelectItem{Expr: g, Alias: name})
					computed = true
				}
				gnames = append(gnames, name)
			}
			keys = append(keys, groupKey{g, name})
		}
		var aggExprs []*Expr
		var aggs []Agg
		var collectErr error
		var collect func(e *Expr)
		collect = func(e *Expr) {
			if e == nil || collectErr != nil {
				return
			}
			if e.Kind != KindAggregate {
				for _, a := range e.Args {
					collect(a)
				}
				return
			}
			for _, x := range aggExprs {
				if exprEqual(x, e) {
					return
				}
			}
			a := e.Args[0]
			fn := e.Func
			switch {
			case a.Kind == KindStar:
				fn = "count_star"
			case e.Func == "count" && e.Distinct:
				fn = "count_distinct"
			case e.Distinct && (e.Func == "sum" || e.Func == "avg"):
				collectErr = notSupported("%s(DISTINCT ...) is not supported yet in a query over several datasets", strings.ToUpper(e.Func))
				return
			}
			col := ""
			switch a.Kind {
			case KindStar:
			case KindColumn:
				col = a.Column
				pass(col)
			default:
				col = m.gen()
				pre = append(pre, SelectItem{Expr: a, Alias: col})
				computed = true
			}
			aggExprs = append(aggExprs, e)
			aggs = append(aggs, Agg{Func: fn, Column: col, Alias: m.gen()})
		}
		for _, it := range L.Select {
			collect(it.Expr)
		}
		collect(L.Having)
		for _, o := range L.OrderBy {
			collect(o.Expr)
		}
		if collectErr != nil {
			return nil, collectErr
		}
		if computed {
			node = &Node{Op: OpProject, Items: pre, Inputs: []*Node{node}}
		}
		node = &Node{Op: OpAggregate, GroupBy: gnames, Aggs: aggs, Inputs: []*Node{node}}
		var repl func(e *Expr) (*Expr, error)
		repl = func(e *Expr) (*Expr, error) {
			for _, k := range keys {
				if exprEqual(e, k.expr) {
					return &Expr{Kind: KindColumn, Column: k.name}, nil
				}
			}
			switch e.Kind {
			case KindAggregate:
				for i, x := range aggExprs {
					if exprEqual(x, e) {
						return &Expr{Kind: KindColumn, Column: aggs[i].Alias}, nil
					}
				}
				return nil, sluice.Errorf(sluice.EInternal, "the planner lost track of an aggregate; please report it with the query text")
			case KindColumn:
				return nil, sluice.Errorf(sluice.EInternal, "the planner lost track of a grouped column; please report it with the query text")
			}
			c := *e
			c.Args = make([]*Expr, len(e.Args))
			for i, a := range e.Args {
				x, err := repl(a)
				if err != nil {
					return nil, err
				}
				c.Args[i] = x
			}
			if e.Literal != nil {
				l := *e.Literal
				c.Literal = &l
			}
			return &c, nil
		}
		rewrite = repl
		if L.Having != nil {
			h, err := rewrite(L.Having)
			if err != nil {
				return nil, err
			}
			node = &Node{Op: OpFilter, Predicate: h, Inputs: []*Node{node}}
		}
		if hasWindows(L) {
			// Windows over the groups: the select list and ORDER BY
			// are rewritten onto the aggregate's outputs now, so each
			// window's arguments and keys are its columns (windows.go).
			var err error
			if synth, err = m.groupedColumns(synth, keys, aggExprs, aggs); err != nil {
				return nil, err
			}
			for i := range L.Select {
				if L.Select[i].Expr, err = repl(L.Select[i].Expr); err != nil {
					return nil, err
				}
			}
			for i := range L.OrderBy {
				if L.OrderBy[i].Expr, err = repl(L.OrderBy[i].Expr); err != nil {
					return nil, err
				}
			}
			L.GroupBy, L.Having = nil, nil
			rewrite = func(e *Expr) (*Expr, error) { return cloneExpr(e), nil }
		}
	}
	node, err := m.planWindows(node, L)
	if err != nil {
		return nil, err
	}
	var items []SelectItem
	var outs []string
	used := map[string]bool{}
	for _, it := range L.Select {
		e, err := rewrite(it.Expr)
		if err != nil {
			return nil, err
		}
		items = append(items, SelectItem{Expr: e, Alias: prefix + it.Alias})
		outs = append(outs, prefix+it.Alias)
		used[strings.ToLower(prefix+it.Alias)] = true
	}
	var sortKeys []SortKey
	hidden := false
	for _, o := range L.OrderBy {
		key := ""
		if i := selectIndex(L, o.Expr); i >= 0 {
			key = items[i].Alias
		} else {
			e, err := rewrite(o.Expr)
			if err != nil {
				return nil, err
			}
			key = m.gen()
			for used[strings.ToLower(key)] {
				key = m.gen()
			}
			items = append(items, SelectItem{Expr: e, Alias: key})
			hidden = true
		}
		sortKeys = append(sortKeys, SortKey{Column: key, Desc: o.Desc})
	}
	node = &Node{Op: OpProject, Items: items, Inputs: []*Node{node}}
	if L.Distinct {
		node = &Node{Op: OpDistinct, Inputs: []*Node{node}}
	}
	if len(sortKeys) > 0 {
		node = &Node{Op: OpSort, SortKeys: sortKeys, Inputs: []*Node{node}}
	}
	if L.Limit != nil || L.Offset != 0 {
		node = &Node{Op: OpLimit, Limit: L.Limit, Offset: L.Offset, Inputs: []*Node{node}}
	}
	if hidden {
		var trim []SelectItem
		for _, o := range outs {
			trim = append(trim, SelectItem{Expr: &Expr{Kind: KindColumn, Column: o}, Alias: o})
		}
		node = &Node{Op: OpProject, Items: trim, Inputs: []*Node{node}}
	}
	if prefix != "" {
		// The outputs of a subquery are columns of the enclosing query.
		c := &checker{ds: synth, maybeMasked: true}
		for i, it := range L.Select {
			name := outs[i]
			if it.Expr.Kind == KindColumn {
				if src := m.meta[it.Expr.Column]; src != nil {
					cm := *src
					cm.col.Name = name
					cm.frag = -1
					m.meta[name] = &cm
					continue
				}
			}
			t, err := c.check(it.Expr, true, false, 0)
			if err != nil {
				return nil, err
			}
			m.meta[name] = &colMeta{col: sluice.Column{Name: name, Type: t.t, Release: sluice.ReleasePlain}, frag: -1}
		}
	}
	return &selPlan{node: node, outs: outs, logical: L}, nil
}

// planMulti plans a query over several datasets.
func (p *Planner) planMulti(queryID, sql string, sel *sqlast.Select) (*Plan, error) {
	m := &mplan{
		sql: sql, cat: p.cat, aliases: map[string]bool{}, meta: map[string]*colMeta{},
		owner: map[string]*relation{}, psiKey: map[int]string{},
	}
	sp, err := m.planSelect(sel, "", nil)
	if err != nil {
		return nil, err
	}
	if len(m.frags) == 0 {
		return nil, invalid("the query reads no dataset; read from one as FROM department.dataset")
	}
	return m.finish(queryID, sql, sp)
}

// finish computes the lineage, prunes what is not needed, builds the
// fragments and checks the whole plan.
func (m *mplan) finish(queryID, sql string, sp *selPlan) (*Plan, error) {
	root := sp.node
	top := map[string]*demand{}
	for _, o := range sp.outs {
		addUse(top, o, sluice.UseOutput, false)
	}
	if err := m.propagate(root, top, 0); err != nil {
		return nil, err
	}
	plan := &Plan{SQL: sql, Sandbox: root, Aggregate: aggregateOnly(sp.logical), JoinPairs: m.pairs}
	lins := map[string]*lineage{}
	var order []string
	dsSeen := map[string]bool{}
	for i, f := range m.frags {
		frag := &Fragment{QueryID: queryID, Dataset: f.ds.FullName(), Where: andAll(f.where)}
		if k := m.psiKey[i]; k != "" {
			frag.Select = append(frag.Select, SelectItem{Expr: &Expr{Kind: KindColumn, Column: f.byName[k]}, Alias: k})
		}
		for _, c := range f.cols {
			if d := f.demand[c.internal]; d != nil && len(d.uses) > 0 && c.internal != m.psiKey[i] {
				frag.Select = append(frag.Select, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c.column}, Alias: c.internal})
			}
		}
		if len(frag.Select) == 0 {
			// Only the table's rows count (COUNT(*) of it, in a
			// subquery): one constant per row, no column of it read.
			// The policy still decides on the dataset (plan.Datasets).
			frag.Select = []SelectItem{{Expr: &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: "1"}}, Alias: f.alias + ".$row"}}
		}
		for j, it := range frag.Select {
			if err := checkAlias(it.Alias); err != nil {
				return nil, err
			}
			for _, prev := range frag.Select[:j] {
				if strings.EqualFold(prev.Alias, it.Alias) {
					return nil, invalid("output name %q is used twice; give each column its own alias", clip(it.Alias))
				}
			}
		}
		if err := checkShape(frag, f.ds, true); err != nil {
			return nil, err
		}
		plan.Fragments = append(plan.Fragments, frag)
		name := f.ds.FullName()
		l := lins[name]
		if l == nil {
			l = &lineage{dataset: name, ds: f.ds, cols: map[string]*sluice.ColumnUsage{}}
			lins[name] = l
			order = append(order, name)
		}
		for _, it := range frag.Select {
			if it.Expr.Kind != KindColumn {
				continue
			}
			d := f.demand[it.Alias]
			for _, u := range d.sorted() {
				l.add(it.Expr.Column, u, d.transformed)
			}
		}
		l.walk(frag.Where, sluice.UsePredicate, false)
		if !dsSeen[name] {
			dsSeen[name] = true
			plan.Datasets = append(plan.Datasets, name)
		}
	}
	sort.Strings(plan.Datasets)
	if _, err := m.verify(root, plan.Fragments); err != nil {
		return nil, err
	}
	for _, name := range order {
		for _, cu := range lins[name].cols {
			sort.Slice(cu.Usages, func(i, j int) bool { return cu.Usages[i] < cu.Usages[j] })
			plan.Usages = append(plan.Usages, *cu)
		}
	}
	sort.Slice(plan.Usages, func(i, j int) bool {
		if plan.Usages[i].Dataset != plan.Usages[j].Dataset {
			return plan.Usages[i].Dataset < plan.Usages[j].Dataset
		}
		return plan.Usages[i].Column < plan.Usages[j].Column
	})
	return plan, nil
}
