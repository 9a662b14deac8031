package planner

import (
	"sort"
	"strconv"
	"strings"

	"github.com/xwb1989/sqlparser"

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

// needsMulti reports whether sel is more than one plain table: a join, a
// comma list, a derived table or a subquery anywhere.
func needsMulti(sel *sqlparser.Select) bool {
	if len(sel.From) != 1 {
		return true
	}
	te := sel.From[0]
	for {
		p, ok := te.(*sqlparser.ParenTableExpr)
		if !ok {
			break
		}
		if len(p.Exprs) != 1 {
			return true
		}
		te = p.Exprs[0]
	}
	switch t := te.(type) {
	case *sqlparser.JoinTableExpr:
		return true
	case *sqlparser.AliasedTableExpr:
		if _, ok := t.Expr.(*sqlparser.Subquery); ok {
			return true
		}
	}
	return hasSubquery(sel.SelectExprs, sel.Where, sel.GroupBy, sel.Having, sel.OrderBy)
}

func hasSubquery(nodes ...sqlparser.SQLNode) bool {
	var found bool
	_ = sqlparser.Walk(func(node sqlparser.SQLNode) (bool, error) {
		switch node.(type) {
		case *sqlparser.Subquery, *sqlparser.ExistsExpr:
			found = true
			return false, nil
		}
		return true, nil
	}, nodes...)
	return found
}

// mplan is the state of planning one multi-dataset query.
type mplan struct {
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

func (s *scopeSet) match(q sqlparser.TableName) []*relation {
	var out []*relation
	for _, r := range s.rels {
		if !q.Qualifier.IsEmpty() {
			if r.table && strings.EqualFold(q.Qualifier.String(), r.ds.Department) && strings.EqualFold(q.Name.String(), r.ds.Name) {
				out = append(out, r)
			}
		} else if strings.EqualFold(q.Name.String(), r.name) {
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
func (s *scopeSet) lookup(q sqlparser.TableName, name string) (string, bool, error) {
	if !q.IsEmpty() {
		rels := s.match(q)
		if len(rels) == 0 {
			for o := s.outer; o != nil; o = o.outer {
				if len(o.match(q)) > 0 {
					return "", false, notSupported("%s", errCorrelated)
				}
			}
			return "", false, invalid("%s.%s names no table of this query; it reads %s", clip(tableNameText(q)), clip(name), s.describe())
		}
		if len(rels) > 1 {
			return "", false, invalid("%s is ambiguous: the query reads it more than once; qualify its columns with an alias", clip(tableNameText(q)))
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
		return invalid("dataset %s has no column %q; `sluice catalog list` shows its columns", r.ds.FullName(), clip(name))
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
func (s *scopeSet) star(t sqlparser.TableName) ([]string, error) {
	rels := s.rels
	if !t.IsEmpty() {
		rels = s.match(t)
		if len(rels) == 0 {
			return nil, invalid("%s.* names no table of this query; it reads %s", clip(tableNameText(t)), s.describe())
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
func (r *resolver) multiColumn(c *sqlparser.ColName, sc scope, top bool) (*Expr, error) {
	name := c.Name.String()
	if !c.Qualifier.IsEmpty() {
		internal, _, err := r.multi.lookup(c.Qualifier, name)
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
	internal, found, err := r.multi.lookup(sqlparser.TableName{}, name)
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
	if r.multi.outerHas(name) {
		return nil, notSupported("%s", errCorrelated)
	}
	return nil, invalid("no table of this query has a column %q; it reads %s (`sluice catalog list` shows the columns)", clip(name), r.multi.describe())
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
func (m *mplan) tableRelation(tn sqlparser.TableName, alias string) (*relation, error) {
	ds, err := resolveDataset(m.cat, tn)
	if err != nil {
		return nil, err
	}
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

// singleTable returns the one plain table of a FROM clause, if it is one.
func singleTable(from sqlparser.TableExprs) (*sqlparser.AliasedTableExpr, sqlparser.TableName, bool) {
	if len(from) != 1 {
		return nil, sqlparser.TableName{}, false
	}
	te := from[0]
	for {
		p, ok := te.(*sqlparser.ParenTableExpr)
		if !ok || len(p.Exprs) != 1 {
			break
		}
		te = p.Exprs[0]
	}
	at, ok := te.(*sqlparser.AliasedTableExpr)
	if !ok {
		return nil, sqlparser.TableName{}, false
	}
	tn, ok := at.Expr.(sqlparser.TableName)
	return at, tn, ok
}

// flattenable reports whether a subquery is a plain projection of
// columns of one dataset with an optional WHERE: it then becomes a
// fragment of its own.
func flattenable(sel *sqlparser.Select) bool {
	if sel.Distinct != "" || len(sel.GroupBy) > 0 || sel.Having != nil || len(sel.OrderBy) > 0 ||
		sel.Limit != nil || sel.Lock != "" || sel.Hints != "" {
		return false
	}
	if _, _, ok := singleTable(sel.From); !ok {
		return false
	}
	for _, se := range sel.SelectExprs {
		switch s := se.(type) {
		case *sqlparser.StarExpr:
		case *sqlparser.AliasedExpr:
			if _, ok := s.Expr.(*sqlparser.ColName); !ok {
				return false
			}
		default:
			return false
		}
	}
	return sel.Where == nil || !hasSubquery(sel.Where)
}

// flatten plans a flattenable subquery as one fragment; base names its
// internal alias, name is the relation's name in the enclosing query.
func (m *mplan) flatten(sel *sqlparser.Select, name, base string, outer *scopeSet) (*relation, error) {
	at, tn, _ := singleTable(sel.From)
	if at.Hints != nil || len(at.Partitions) > 0 {
		return nil, notSupported("index hints and PARTITION selection are not supported yet; remove them")
	}
	ds, err := resolveDataset(m.cat, tn)
	if err != nil {
		return nil, err
	}
	innerName := at.As.String()
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
	r := &resolver{multi: inner}
	var where *Expr
	if sel.Where != nil {
		if where, err = r.expr(sel.Where.Expr, scopeWhere, true, 0); err != nil {
			return nil, err
		}
	}
	type out struct{ name, column string }
	var outs []out
	for _, se := range sel.SelectExprs {
		switch s := se.(type) {
		case *sqlparser.StarExpr:
			cols, err := inner.star(s.TableName)
			if err != nil {
				return nil, err
			}
			for _, c := range cols {
				outs = append(outs, out{c, c})
			}
		case *sqlparser.AliasedExpr:
			e, err := r.expr(s.Expr, scopeSelect, true, 0)
			if err != nil {
				return nil, err
			}
			n := e.Column
			if !s.As.IsEmpty() {
				n = s.As.String()
				if err := checkAlias(n); err != nil {
					return nil, err
				}
			}
			outs = append(outs, out{n, e.Column})
		}
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

// subSelect unwraps the SELECT of a subquery.
func subSelect(sq *sqlparser.Subquery) (*sqlparser.Select, error) {
	st := sq.Select
	for {
		p, ok := st.(*sqlparser.ParenSelect)
		if !ok {
			break
		}
		st = p.Select
	}
	switch s := st.(type) {
	case *sqlparser.Select:
		if s.Lock != "" || s.Hints != "" {
			return nil, notSupported("locking clauses and optimizer hints are not supported yet; remove them")
		}
		return s, nil
	case *sqlparser.Union:
		return nil, notSupported("UNION is not supported yet; run each SELECT on its own")
	}
	return nil, notSupported("this subquery is not supported yet; write SELECT ... FROM department.dataset")
}

// derivedRelation plans (SELECT ...) AS alias in FROM.
func (m *mplan) derivedRelation(sq *sqlparser.Subquery, alias string, s *scopeSet) (*relation, error) {
	if alias == "" {
		return nil, invalid("a subquery in FROM needs an alias: FROM (SELECT ...) AS s")
	}
	if err := checkTableAlias(alias); err != nil {
		return nil, err
	}
	sel, err := subSelect(sq)
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

func (m *mplan) buildFrom(tes sqlparser.TableExprs, s *scopeSet) (*fromNode, error) {
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

func (m *mplan) tableExpr(te sqlparser.TableExpr, s *scopeSet) (*fromNode, error) {
	switch t := te.(type) {
	case *sqlparser.ParenTableExpr:
		return m.buildFrom(t.Exprs, s)
	case *sqlparser.AliasedTableExpr:
		if t.Hints != nil || len(t.Partitions) > 0 {
			return nil, notSupported("index hints and PARTITION selection are not supported yet; remove them")
		}
		var rel *relation
		var err error
		switch x := t.Expr.(type) {
		case sqlparser.TableName:
			rel, err = m.tableRelation(x, t.As.String())
		case *sqlparser.Subquery:
			rel, err = m.derivedRelation(x, t.As.String(), s)
		default:
			return nil, notSupported("this FROM clause is not supported yet; write FROM department.dataset")
		}
		if err != nil {
			return nil, err
		}
		if err := s.add(rel); err != nil {
			return nil, err
		}
		return &fromNode{rel: rel, rels: map[*relation]bool{rel: true}}, nil
	case *sqlparser.JoinTableExpr:
		var kind string
		switch t.Join {
		case sqlparser.JoinStr:
			kind = JoinInner
		case sqlparser.LeftJoinStr:
			kind = JoinLeft
		case sqlparser.RightJoinStr:
			return nil, notSupported("RIGHT JOIN is not supported yet; swap the tables and use LEFT JOIN")
		case sqlparser.StraightJoinStr:
			return nil, notSupported("STRAIGHT_JOIN is not supported yet; use JOIN")
		default:
			return nil, notSupported("%s is not supported yet; use JOIN or LEFT JOIN with ON", strings.ToUpper(clip(t.Join)))
		}
		if len(t.Condition.Using) > 0 {
			return nil, notSupported("JOIN ... USING is not supported yet; write ON a.col = b.col")
		}
		left, err := m.tableExpr(t.LeftExpr, s)
		if err != nil {
			return nil, err
		}
		right, err := m.tableExpr(t.RightExpr, s)
		if err != nil {
			return nil, err
		}
		fn := &fromNode{kind: kind, left: left, right: right, rels: unionRels(left.rels, right.rels)}
		if t.Condition.On == nil {
			if kind == JoinLeft {
				return nil, invalid("LEFT JOIN needs an ON condition")
			}
			return fn, nil
		}
		r := &resolver{multi: s}
		on, err := r.expr(t.Condition.On, scopeWhere, true, 0)
		if err != nil {
			return nil, err
		}
		c := &checker{ds: s.synth(), maybeMasked: true}
		ty, err := c.check(on, false, false, 0)
		if err != nil {
			return nil, err
		}
		if ty.t != "" && ty.t != sluice.TypeBoolean {
			return nil, invalid("ON needs a condition, got %s; write e.g. ON a.x = b.x", ty.t)
		}
		for _, cj := range splitConj(on) {
			for rel := range m.relsOf(cj) {
				if !fn.rels[rel] {
					return nil, invalid("the ON condition of a join may refer only to the tables it joins, not to %s", rel.describe())
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

func splitAndAST(e sqlparser.Expr) []sqlparser.Expr {
	switch x := e.(type) {
	case *sqlparser.AndExpr:
		return append(splitAndAST(x.Left), splitAndAST(x.Right)...)
	case *sqlparser.ParenExpr:
		if _, ok := x.Expr.(*sqlparser.AndExpr); ok {
			return splitAndAST(x.Expr)
		}
	}
	return []sqlparser.Expr{e}
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
	if len(keys) == 0 {
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
// subquery.
func (m *mplan) semiJoin(node *Node, cmp *sqlparser.ComparisonExpr, r *resolver, s *scopeSet) (*Node, error) {
	lhs, err := r.expr(cmp.Left, scopeWhere, true, 0)
	if err != nil {
		return nil, err
	}
	if lhs.Kind != KindColumn {
		return nil, notSupported("IN (SELECT ...) with an expression on its left is not supported yet; compare a column")
	}
	sel, err := subSelect(cmp.Right.(*sqlparser.Subquery))
	if err != nil {
		return nil, err
	}
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
	if err := m.classifyJoin(n); err != nil {
		return nil, err
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
func (m *mplan) planSelect(sel *sqlparser.Select, prefix string, outer *scopeSet) (*selPlan, error) {
	m.depth++
	defer func() { m.depth-- }()
	if m.depth > maxSubqueryDepth {
		return nil, notSupported("subqueries nested more than %d deep are not supported yet", maxSubqueryDepth)
	}
	if sel.Lock != "" || sel.Hints != "" {
		return nil, notSupported("locking clauses and optimizer hints are not supported yet; remove them")
	}
	s := &scopeSet{m: m, outer: outer}
	from, err := m.buildFrom(sel.From, s)
	if err != nil {
		return nil, err
	}
	r := &resolver{multi: s}
	var whereAST []sqlparser.Expr
	var ins []*sqlparser.ComparisonExpr
	if sel.Where != nil {
		for _, c := range splitAndAST(sel.Where.Expr) {
			if cmp, ok := c.(*sqlparser.ComparisonExpr); ok {
				if _, sub := cmp.Right.(*sqlparser.Subquery); sub {
					if cmp.Operator == sqlparser.NotInStr {
						return nil, notSupported("NOT IN (SELECT ...) is not supported yet; use col IN (SELECT col FROM ...) or a LEFT JOIN")
					}
					if cmp.Operator != sqlparser.InStr {
						return nil, notSupported("scalar subqueries are not supported yet (a comparison %s (SELECT ...)); use col IN (SELECT col FROM ...) or a join", strings.ToUpper(clip(cmp.Operator)))
					}
					ins = append(ins, cmp)
					continue
				}
			}
			whereAST = append(whereAST, c)
		}
	}
	shallow := *sel
	shallow.Where = nil
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
		conj = append(conj, splitConj(e)...)
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
	node, err := m.buildTree(from, rest)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if node, err = m.semiJoin(node, in, r, s); err != nil {
			return nil, err
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
func (p *Planner) planMulti(queryID, sql string, sel *sqlparser.Select) (*Plan, error) {
	m := &mplan{
		cat: p.cat, aliases: map[string]bool{}, meta: map[string]*colMeta{},
		owner: map[string]*relation{}, psiKey: map[int]string{},
	}
	sp, err := m.planSelect(sel, "", nil)
	if err != nil {
		return nil, err
	}
	if len(m.frags) < 2 {
		return nil, notSupported("subqueries are not supported yet in a query over one dataset; write it as one SELECT with WHERE, GROUP BY and HAVING")
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
			return nil, notSupported("the query uses no column of %s AS %s; joining a table without using it is not supported yet", f.ds.FullName(), f.alias)
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
