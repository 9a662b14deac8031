package planner

import (
	"math"
	"strconv"
	"strings"

	"github.com/xwb1989/sqlparser"

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
func resolveDataset(cat *sluice.Catalog, tn sqlparser.TableName) (*sluice.Dataset, error) {
	name, dept := tn.Name.String(), tn.Qualifier.String()
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

func (r *resolver) build(sel *sqlparser.Select) (*Fragment, error) {
	f := &Fragment{Distinct: sel.Distinct != ""}
	if r.ds != nil {
		f.Dataset = r.ds.FullName()
	}
	if err := r.selectList(sel.SelectExprs); err != nil {
		return nil, err
	}
	f.Select = r.items
	if sel.Where != nil {
		w, err := r.expr(sel.Where.Expr, scopeWhere, true, 0)
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
		h, err := r.expr(sel.Having.Expr, scopeHaving, true, 0)
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
		f.OrderBy = append(f.OrderBy, OrderItem{Expr: e, Desc: o.Direction == sqlparser.DescScr})
	}
	if sel.Limit != nil {
		if sel.Limit.Rowcount != nil {
			n, err := limitValue(sel.Limit.Rowcount, "LIMIT")
			if err != nil {
				return nil, err
			}
			f.Limit = &n
		}
		if sel.Limit.Offset != nil {
			n, err := limitValue(sel.Limit.Offset, "OFFSET")
			if err != nil {
				return nil, err
			}
			f.Offset = n
		}
	}
	return f, nil
}

func limitValue(e sqlparser.Expr, what string) (int64, error) {
	v, ok := e.(*sqlparser.SQLVal)
	if !ok || v.Type != sqlparser.IntVal {
		return 0, invalid("%s must be a non-negative integer constant", what)
	}
	n, err := strconv.ParseInt(string(v.Val), 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("%s must be a non-negative integer constant", what)
	}
	return n, nil
}

func (r *resolver) selectList(exprs sqlparser.SelectExprs) error {
	for _, se := range exprs {
		switch s := se.(type) {
		case *sqlparser.StarExpr:
			if r.multi != nil {
				cols, err := r.multi.star(s.TableName)
				if err != nil {
					return err
				}
				for _, c := range cols {
					r.items = append(r.items, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c}})
					r.explicit = append(r.explicit, false)
				}
				break
			}
			if !s.TableName.IsEmpty() && !r.qualifierMatches(s.TableName) {
				return invalid("%s.* names no table of this query; it reads only %s", clip(tableNameText(s.TableName)), r.describeSource())
			}
			for _, c := range starColumns(r.ds) {
				r.items = append(r.items, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c.Name}})
				r.explicit = append(r.explicit, false)
			}
			if len(r.ds.Columns) == 0 {
				return invalid("dataset %s has no columns; name the columns you need", r.ds.FullName())
			}
		case *sqlparser.AliasedExpr:
			e, err := r.expr(s.Expr, scopeSelect, true, 0)
			if err != nil {
				return err
			}
			r.items = append(r.items, SelectItem{Expr: e, Alias: s.As.String()})
			r.explicit = append(r.explicit, !s.As.IsEmpty())
		default:
			return notSupported("this select item is not supported yet; select columns or expressions")
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

func tableNameText(t sqlparser.TableName) string {
	if t.Qualifier.IsEmpty() {
		return t.Name.String()
	}
	return t.Qualifier.String() + "." + t.Name.String()
}

// qualifierMatches reports whether a column qualifier names the source:
// its alias, department.dataset, or (without an alias) the dataset name.
func (r *resolver) qualifierMatches(t sqlparser.TableName) bool {
	if !t.Qualifier.IsEmpty() {
		return strings.EqualFold(t.Qualifier.String(), r.ds.Department) && strings.EqualFold(t.Name.String(), r.ds.Name)
	}
	if r.alias != "" {
		return strings.EqualFold(t.Name.String(), r.alias)
	}
	return strings.EqualFold(t.Name.String(), r.ds.Name)
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

func (r *resolver) column(c *sqlparser.ColName, sc scope, top bool) (*Expr, error) {
	if r.multi != nil {
		return r.multiColumn(c, sc, top)
	}
	name := c.Name.String()
	if !c.Qualifier.IsEmpty() {
		if !r.qualifierMatches(c.Qualifier) {
			return nil, invalid("%s.%s names no table of this query; it reads only %s", clip(tableNameText(c.Qualifier)), clip(name), r.describeSource())
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
	return invalid("dataset %s has no column %q; `sluice catalog list` shows its columns", r.ds.FullName(), clip(name))
}

// groupKey resolves one GROUP BY item: a position in the select list, an
// output name, or an expression over columns.
func (r *resolver) groupKey(g sqlparser.Expr) (*Expr, error) {
	var e *Expr
	if n, ok, err := ordinal(g, len(r.items), "GROUP BY"); err != nil {
		return nil, err
	} else if ok {
		e = cloneExpr(r.items[n-1].Expr)
	} else if e, err = r.expr(g, scopeGroup, true, 0); err != nil {
		return nil, err
	}
	if hasAggregate(e) {
		return nil, invalid("GROUP BY cannot use an aggregate; group by columns and filter groups with HAVING")
	}
	return e, nil
}

func (r *resolver) orderKey(o sqlparser.Expr) (*Expr, error) {
	if n, ok, err := ordinal(o, len(r.items), "ORDER BY"); err != nil {
		return nil, err
	} else if ok {
		return cloneExpr(r.items[n-1].Expr), nil
	}
	return r.expr(o, scopeOrder, true, 0)
}

// ordinal reads a select-list position (GROUP BY 1, ORDER BY 2).
func ordinal(e sqlparser.Expr, n int, clause string) (int, bool, error) {
	v, ok := e.(*sqlparser.SQLVal)
	if !ok || v.Type != sqlparser.IntVal {
		return 0, false, nil
	}
	i, err := strconv.Atoi(string(v.Val))
	if err != nil || i < 1 || i > n {
		return 0, false, invalid("%s position %s is out of range: the select list has %d columns", clause, clip(string(v.Val)), n)
	}
	return i, true, nil
}

func (r *resolver) expr(e sqlparser.Expr, sc scope, top bool, depth int) (*Expr, error) {
	if depth > maxExprDepth {
		return nil, invalid("expression is nested more than %d levels deep; simplify the query", maxExprDepth)
	}
	sub := func(x sqlparser.Expr) (*Expr, error) { return r.expr(x, sc, false, depth+1) }
	subs := func(xs ...sqlparser.Expr) ([]*Expr, error) {
		out := make([]*Expr, len(xs))
		for i, x := range xs {
			y, err := sub(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
	switch n := e.(type) {
	case nil:
		return nil, invalid("the query has an empty expression")
	case *sqlparser.ParenExpr:
		return r.expr(n.Expr, sc, top, depth+1)
	case *sqlparser.ColName:
		return r.column(n, sc, top)
	case *sqlparser.SQLVal:
		return literal(n)
	case *sqlparser.NullVal:
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitNull}}, nil
	case sqlparser.BoolVal:
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitBool, Text: strconv.FormatBool(bool(n))}}, nil
	case *sqlparser.AndExpr:
		args, err := subs(n.Left, n.Right)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindBinary, Op: "AND", Args: args}, nil
	case *sqlparser.OrExpr:
		args, err := subs(n.Left, n.Right)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindBinary, Op: "OR", Args: args}, nil
	case *sqlparser.NotExpr:
		args, err := subs(n.Expr)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindUnary, Op: "NOT", Args: args}, nil
	case *sqlparser.ComparisonExpr:
		return r.comparison(n, sub)
	case *sqlparser.RangeCond:
		args, err := subs(n.Left, n.From, n.To)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindBetween, Negate: n.Operator == sqlparser.NotBetweenStr, Args: args}, nil
	case *sqlparser.IsExpr:
		switch n.Operator {
		case sqlparser.IsNullStr, sqlparser.IsNotNullStr:
		default:
			return nil, notSupported("%s is not supported yet; compare with = TRUE or use IS [NOT] NULL", strings.ToUpper(n.Operator))
		}
		args, err := subs(n.Expr)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindIsNull, Negate: n.Operator == sqlparser.IsNotNullStr, Args: args}, nil
	case *sqlparser.BinaryExpr:
		switch n.Operator {
		case sqlparser.PlusStr, sqlparser.MinusStr, sqlparser.MultStr, sqlparser.DivStr, sqlparser.ModStr:
		default:
			return nil, notSupported("operator %s is not supported yet; use + - * / %%", clip(n.Operator))
		}
		args, err := subs(n.Left, n.Right)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindBinary, Op: n.Operator, Args: args}, nil
	case *sqlparser.UnaryExpr:
		switch n.Operator {
		case sqlparser.UMinusStr:
			if v, ok := n.Expr.(*sqlparser.SQLVal); ok && v.Type == sqlparser.FloatVal {
				lit, err := literal(v)
				if err != nil {
					return nil, err
				}
				lit.Literal.Text = negateNumber(lit.Literal.Text)
				return lit, nil
			}
			args, err := subs(n.Expr)
			if err != nil {
				return nil, err
			}
			return &Expr{Kind: KindUnary, Op: "-", Args: args}, nil
		case sqlparser.UPlusStr:
			return sub(n.Expr)
		case sqlparser.BangStr:
			args, err := subs(n.Expr)
			if err != nil {
				return nil, err
			}
			return &Expr{Kind: KindUnary, Op: "NOT", Args: args}, nil
		}
		return nil, notSupported("operator %s is not supported yet", strings.TrimSpace(n.Operator))
	case *sqlparser.FuncExpr:
		return r.function(n, sc, depth)
	case *sqlparser.SubstrExpr:
		args := []sqlparser.Expr{n.Name, n.From}
		if n.To != nil {
			args = append(args, n.To)
		}
		a, err := subs(args...)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindFunc, Func: "substr", Args: a}, nil
	case *sqlparser.CaseExpr:
		out := &Expr{Kind: KindCase}
		if n.Expr != nil {
			op, err := sub(n.Expr)
			if err != nil {
				return nil, err
			}
			out.HasOperand = true
			out.Args = append(out.Args, op)
		}
		for _, w := range n.Whens {
			a, err := subs(w.Cond, w.Val)
			if err != nil {
				return nil, err
			}
			out.Args = append(out.Args, a...)
		}
		if n.Else != nil {
			el, err := sub(n.Else)
			if err != nil {
				return nil, err
			}
			out.HasElse = true
			out.Args = append(out.Args, el)
		}
		return out, nil
	case *sqlparser.Subquery, *sqlparser.ExistsExpr:
		return nil, notSupported("subqueries are not supported yet; query one dataset with WHERE, GROUP BY and HAVING")
	case *sqlparser.ConvertExpr, *sqlparser.ConvertUsingExpr:
		return nil, notSupported("CAST and CONVERT are not supported yet")
	case *sqlparser.GroupConcatExpr:
		return nil, notSupported("aggregate group_concat is not supported yet; supported: count, sum, avg, min, max")
	case *sqlparser.IntervalExpr:
		return nil, notSupported("INTERVAL is not supported yet")
	case *sqlparser.CollateExpr:
		return nil, notSupported("COLLATE is not supported yet")
	case *sqlparser.MatchExpr:
		return nil, notSupported("MATCH ... AGAINST is not supported yet; use LIKE")
	case sqlparser.ValTuple:
		return nil, notSupported("row values (a, b) are not supported yet")
	case sqlparser.ListArg:
		return nil, invalid("bind parameters are not accepted; write the values into the query")
	}
	return nil, notSupported("this expression is not supported yet; see the planner documentation for the supported SQL")
}

func (r *resolver) comparison(n *sqlparser.ComparisonExpr, sub func(sqlparser.Expr) (*Expr, error)) (*Expr, error) {
	switch n.Operator {
	case sqlparser.EqualStr, sqlparser.LessThanStr, sqlparser.GreaterThanStr, sqlparser.LessEqualStr,
		sqlparser.GreaterEqualStr, sqlparser.NotEqualStr, "<>":
		l, err := sub(n.Left)
		if err != nil {
			return nil, err
		}
		rt, err := sub(n.Right)
		if err != nil {
			return nil, err
		}
		op := n.Operator
		if op == sqlparser.NotEqualStr {
			op = "<>"
		}
		return &Expr{Kind: KindBinary, Op: op, Args: []*Expr{l, rt}}, nil
	case sqlparser.InStr, sqlparser.NotInStr:
		list, ok := n.Right.(sqlparser.ValTuple)
		if !ok {
			if _, isSub := n.Right.(*sqlparser.Subquery); isSub {
				return nil, notSupported("subqueries are not supported yet; write IN (value, ...)")
			}
			return nil, invalid("IN needs a list of values: IN (value, ...)")
		}
		if len(list) > maxArgs {
			return nil, invalid("IN lists at most %d values", maxArgs)
		}
		l, err := sub(n.Left)
		if err != nil {
			return nil, err
		}
		out := &Expr{Kind: KindIn, Negate: n.Operator == sqlparser.NotInStr, Args: []*Expr{l}}
		for _, v := range list {
			a, err := sub(v)
			if err != nil {
				return nil, err
			}
			out.Args = append(out.Args, a)
		}
		return out, nil
	case sqlparser.LikeStr, sqlparser.NotLikeStr:
		if n.Escape != nil {
			return nil, notSupported("LIKE ... ESCAPE is not supported yet; the escape character is always \\")
		}
		l, err := sub(n.Left)
		if err != nil {
			return nil, err
		}
		rt, err := sub(n.Right)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindLike, Negate: n.Operator == sqlparser.NotLikeStr, Args: []*Expr{l, rt}}, nil
	}
	return nil, notSupported("operator %s is not supported yet", strings.ToUpper(clip(n.Operator)))
}

func (r *resolver) function(n *sqlparser.FuncExpr, sc scope, depth int) (*Expr, error) {
	name := n.Name.Lowered()
	if !n.Qualifier.IsEmpty() {
		return nil, notSupported("function %s.%s is not supported yet; supported: %s", clip(n.Qualifier.String()), clip(name), supportedFuncs)
	}
	kind := KindFunc
	switch {
	case aggregateFuncs[name]:
		kind = KindAggregate
	case sqlparser.Aggregates[name]:
		return nil, notSupported("aggregate %s is not supported yet; supported: count, sum, avg, min, max", clip(name))
	case scalarFuncs[name] == (scalarFunc{}):
		return nil, notSupported("function %s is not supported yet; supported: %s", clip(name), supportedFuncs)
	}
	if n.Distinct && kind != KindAggregate {
		return nil, invalid("DISTINCT is only allowed inside an aggregate, not in %s()", name)
	}
	out := &Expr{Kind: kind, Func: name, Distinct: n.Distinct}
	for _, a := range n.Exprs {
		switch x := a.(type) {
		case *sqlparser.StarExpr:
			if name != "count" || !x.TableName.IsEmpty() || n.Distinct {
				return nil, invalid("* is only allowed as COUNT(*)")
			}
			out.Args = append(out.Args, &Expr{Kind: KindStar})
		case *sqlparser.AliasedExpr:
			if !x.As.IsEmpty() {
				return nil, invalid("function arguments cannot have aliases")
			}
			// Inside an aggregate, names are source columns only: an
			// output alias there would nest one aggregate in another.
			argScope := sc
			if kind == KindAggregate {
				argScope = scopeSelect
			}
			e, err := r.expr(x.Expr, argScope, false, depth+1)
			if err != nil {
				return nil, err
			}
			out.Args = append(out.Args, e)
		default:
			return nil, notSupported("this function argument is not supported yet")
		}
	}
	if kind == KindAggregate && len(out.Args) != 1 {
		if name == "count" && n.Distinct {
			return nil, notSupported("COUNT(DISTINCT ...) of several columns is not supported yet; count one column")
		}
		return nil, invalid("%s() takes exactly one argument", name)
	}
	return out, nil
}

// literal converts a constant of the query into the IR.
func literal(v *sqlparser.SQLVal) (*Expr, error) {
	switch v.Type {
	case sqlparser.StrVal:
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitString, Text: string(v.Val)}}, nil
	case sqlparser.IntVal:
		n, err := strconv.ParseInt(string(v.Val), 10, 64)
		if err != nil {
			return nil, invalid("integer constant %s does not fit in 64 bits", clip(string(v.Val)))
		}
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: strconv.FormatInt(n, 10)}}, nil
	case sqlparser.FloatVal:
		f, err := strconv.ParseFloat(string(v.Val), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalid("number %s is out of range", clip(string(v.Val)))
		}
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitFloat, Text: strconv.FormatFloat(f, 'g', -1, 64)}}, nil
	case sqlparser.ValArg:
		return nil, invalid("bind parameters (? or :name) are not accepted; write the values into the query")
	}
	return nil, notSupported("hexadecimal and bit constants are not supported yet; write numbers in decimal or strings in quotes")
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
