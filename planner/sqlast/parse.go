package sqlast

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
)

// Error is a query Parse refuses: a syntax error, a statement that is not
// one SELECT, or (NotSupported) a construct the tree has no node for. Pos
// is the byte offset the error points at, -1 when there is none.
type Error struct {
	Pos          int
	Msg          string
	NotSupported bool
}

func (e *Error) Error() string { return e.Msg }

// maxDepth bounds the nesting of the tree Parse builds, so a pathological
// query cannot exhaust the stack of the passes that walk it.
const maxDepth = 200

// Parse parses sql, which must hold exactly one SELECT (a trailing
// semicolon is fine), into a Select.
func Parse(sql string) (*Select, error) {
	res, err := pg.Parse(sql)
	if err != nil {
		var pe *pgparser.Error
		if errors.As(err, &pe) {
			return nil, syntaxError(sql, pe)
		}
		return nil, &Error{Pos: -1, Msg: "SQL syntax error: " + err.Error()}
	}
	stmts := res.GetStmts()
	switch {
	case len(stmts) == 0:
		return nil, &Error{Pos: -1, Msg: "the query is empty"}
	case len(stmts) > 1:
		return nil, &Error{Pos: int(stmts[1].GetStmtLocation()), Msg: fmt.Sprintf("the query has %d statements; send exactly one SELECT", len(stmts))}
	}
	st := stmts[0].GetStmt()
	sel := st.GetSelectStmt()
	if sel == nil {
		return nil, &Error{Pos: int(stmts[0].GetStmtLocation()), Msg: "only SELECT queries are accepted (this is " + statementKind(st) + "); Sluice never changes department data"}
	}
	c := &conv{sql: sql}
	return c.query(sel, 0)
}

// syntaxError words the parser's error with its position. PostgreSQL's
// cursor position counts characters from 1; Error.Pos is a byte offset.
func syntaxError(sql string, pe *pgparser.Error) *Error {
	pos := -1
	if pe.Cursorpos > 0 {
		pos = 0
		for i := 1; i < pe.Cursorpos && pos < len(sql); i++ {
			_, n := utf8.DecodeRuneInString(sql[pos:])
			pos += n
		}
	}
	msg := "SQL syntax error: " + pe.Message
	if strings.Contains(pe.Message, "LIMIT #,#") {
		msg += "; write LIMIT n OFFSET m"
	}
	if strings.Contains(sql, "`") {
		msg += "; Sluice reads PostgreSQL SQL: quote names with double quotes (\"人数\"), not backticks"
	}
	return &Error{Pos: pos, Msg: msg}
}

// statementKind names a statement that is not a SELECT, e.g. "INSERT".
func statementKind(n *pg.Node) string {
	name := fmt.Sprintf("%T", n.GetNode())
	name = strings.TrimPrefix(name, "*pg_query.Node_")
	name = strings.TrimSuffix(name, "Stmt")
	switch name {
	case "Insert", "Update", "Delete", "Merge", "Copy", "Explain", "Transaction", "Lock", "Truncate":
		return "a" + article(name) + " " + strings.ToUpper(name)
	}
	return "a " + name + " statement"
}

func article(s string) string {
	if s != "" && strings.ContainsRune("AEIOU", rune(s[0])) {
		return "n"
	}
	return ""
}

type conv struct {
	sql string
}

func (c *conv) unsupported(pos int32, format string, args ...any) error {
	return &Error{Pos: int(pos), Msg: fmt.Sprintf(format, args...), NotSupported: true}
}

func (c *conv) invalid(pos int32, format string, args ...any) error {
	return &Error{Pos: int(pos), Msg: fmt.Sprintf(format, args...)}
}

func (c *conv) tooDeep(pos int32) error {
	return c.invalid(pos, "the query is nested more than %d levels deep; simplify it", maxDepth)
}

// query converts a SelectStmt: a SELECT block or a set operation.
func (c *conv) query(s *pg.SelectStmt, depth int) (*Select, error) {
	if depth > maxDepth {
		return nil, c.tooDeep(-1)
	}
	out := &Select{Pos: -1}
	if s.IntoClause != nil {
		return nil, c.invalid(-1, "SELECT ... INTO is not accepted; Sluice never creates tables")
	}
	if len(s.LockingClause) > 0 {
		return nil, c.unsupported(-1, "locking clauses (FOR UPDATE, FOR SHARE) are not supported yet; remove them")
	}
	if len(s.ValuesLists) > 0 {
		return nil, c.unsupported(-1, "VALUES lists are not supported yet; query a dataset")
	}
	if w := s.WithClause; w != nil {
		out.Recursive = w.Recursive
		for _, n := range w.Ctes {
			cte := n.GetCommonTableExpr()
			if cte == nil {
				return nil, c.unsupported(w.Location, "this WITH clause is not supported yet")
			}
			if cte.SearchClause != nil || cte.CycleClause != nil {
				return nil, c.unsupported(cte.Location, "SEARCH and CYCLE clauses of WITH are not supported yet")
			}
			inner := cte.Ctequery.GetSelectStmt()
			if inner == nil {
				return nil, c.invalid(cte.Location, "WITH %s holds %s; only SELECT queries are accepted", cte.Ctename, statementKind(cte.Ctequery))
			}
			q, err := c.query(inner, depth+1)
			if err != nil {
				return nil, err
			}
			x := &CTE{Pos: int(cte.Location), Name: cte.Ctename, Query: q}
			for _, a := range cte.Aliascolnames {
				x.Columns = append(x.Columns, a.GetString_().GetSval())
			}
			switch cte.Ctematerialized {
			case pg.CTEMaterialize_CTEMaterializeAlways:
				x.Materialized = "MATERIALIZED"
			case pg.CTEMaterialize_CTEMaterializeNever:
				x.Materialized = "NOT MATERIALIZED"
			}
			out.With = append(out.With, x)
		}
	}
	var err error
	if out.OrderBy, err = c.orderBy(s.SortClause, depth); err != nil {
		return nil, err
	}
	switch s.LimitOption {
	case pg.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, c.unsupported(-1, "FETCH FIRST ... WITH TIES is not supported yet; use FETCH FIRST n ROWS ONLY or LIMIT n")
	}
	if s.LimitCount != nil && !isNullConst(s.LimitCount) {
		if out.Limit, err = c.expr(s.LimitCount, depth+1); err != nil {
			return nil, err
		}
	}
	if s.LimitOffset != nil {
		if out.Offset, err = c.expr(s.LimitOffset, depth+1); err != nil {
			return nil, err
		}
	}
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		switch s.Op {
		case pg.SetOperation_SETOP_UNION:
			out.Op = Union
		case pg.SetOperation_SETOP_INTERSECT:
			out.Op = Intersect
		case pg.SetOperation_SETOP_EXCEPT:
			out.Op = Except
		}
		out.All = s.All
		if out.Left, err = c.query(s.Larg, depth+1); err != nil {
			return nil, err
		}
		if out.Right, err = c.query(s.Rarg, depth+1); err != nil {
			return nil, err
		}
		out.Pos = out.Left.Pos
		return out, nil
	}
	if len(s.WindowClause) > 0 {
		return nil, c.unsupported(s.WindowClause[0].GetWindowDef().GetLocation(), "named windows (WINDOW w AS ...) are not supported yet; write the window in OVER (...)")
	}
	if s.GroupDistinct {
		return nil, c.unsupported(-1, "GROUP BY DISTINCT is not supported yet")
	}
	if len(s.DistinctClause) > 0 {
		if len(s.DistinctClause) == 1 && s.DistinctClause[0].GetNode() == nil {
			out.Distinct = true
		} else {
			return nil, c.unsupported(exprLocation(s.DistinctClause[0]), "SELECT DISTINCT ON (...) is not supported yet; use SELECT DISTINCT or GROUP BY")
		}
	}
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		if rt == nil {
			return nil, c.unsupported(-1, "this select item is not supported yet")
		}
		if len(rt.Indirection) > 0 {
			return nil, c.unsupported(rt.Location, "subscripts and field selection are not supported yet")
		}
		if out.Pos < 0 {
			out.Pos = int(rt.Location)
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStarRef(cr) {
			item := &SelectItem{Pos: int(rt.Location), Star: true}
			if len(cr.Fields) > 1 {
				tn, err := c.qualifier(cr.Fields[:len(cr.Fields)-1], cr.Location)
				if err != nil {
					return nil, err
				}
				item.Table = tn
			}
			out.Items = append(out.Items, item)
			continue
		}
		e, err := c.expr(rt.Val, depth+1)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, &SelectItem{Pos: int(rt.Location), Expr: e, Alias: rt.Name})
	}
	for _, f := range s.FromClause {
		te, err := c.tableExpr(f, depth+1)
		if err != nil {
			return nil, err
		}
		out.From = append(out.From, te)
	}
	if s.WhereClause != nil {
		if out.Where, err = c.expr(s.WhereClause, depth+1); err != nil {
			return nil, err
		}
	}
	for _, g := range s.GroupClause {
		if gs := g.GetGroupingSet(); gs != nil {
			if gs.Kind == pg.GroupingSetKind_GROUPING_SET_EMPTY {
				continue // GROUP BY (): one group, as without GROUP BY
			}
			return nil, c.unsupported(gs.Location, "GROUPING SETS, ROLLUP and CUBE are not supported yet; run one GROUP BY per grouping")
		}
		e, err := c.expr(g, depth+1)
		if err != nil {
			return nil, err
		}
		out.GroupBy = append(out.GroupBy, e)
	}
	if s.HavingClause != nil {
		if out.Having, err = c.expr(s.HavingClause, depth+1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isNullConst(n *pg.Node) bool {
	a := n.GetAConst()
	return a != nil && a.Isnull
}

func isStarRef(cr *pg.ColumnRef) bool {
	return len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

func (c *conv) orderBy(nodes []*pg.Node, depth int) ([]*OrderItem, error) {
	var out []*OrderItem
	for _, n := range nodes {
		sb := n.GetSortBy()
		if sb == nil {
			return nil, c.unsupported(-1, "this ORDER BY item is not supported yet")
		}
		if len(sb.UseOp) > 0 {
			return nil, c.unsupported(sb.Location, "ORDER BY ... USING is not supported yet; use ASC or DESC")
		}
		e, err := c.expr(sb.Node, depth+1)
		if err != nil {
			return nil, err
		}
		o := &OrderItem{Pos: int(exprLocation(sb.Node)), Expr: e, Desc: sb.SortbyDir == pg.SortByDir_SORTBY_DESC}
		switch sb.SortbyNulls {
		case pg.SortByNulls_SORTBY_NULLS_FIRST:
			o.Nulls = NullsFirst
		case pg.SortByNulls_SORTBY_NULLS_LAST:
			o.Nulls = NullsLast
		}
		out = append(out, o)
	}
	return out, nil
}

// qualifier reads the qualifier of a column reference (t, or s.t).
func (c *conv) qualifier(fields []*pg.Node, pos int32) (*TableName, error) {
	names := make([]string, len(fields))
	for i, f := range fields {
		s := f.GetString_()
		if s == nil {
			return nil, c.unsupported(pos, "this column reference is not supported yet")
		}
		names[i] = s.Sval
	}
	switch len(names) {
	case 1:
		return &TableName{Pos: int(pos), Name: names[0]}, nil
	case 2:
		return &TableName{Pos: int(pos), Schema: names[0], Name: names[1]}, nil
	}
	return nil, c.invalid(pos, "%s names a database; write department.dataset.column or alias.column", strings.Join(names, "."))
}

func (c *conv) alias(a *pg.Alias) (string, []string) {
	if a == nil {
		return "", nil
	}
	var cols []string
	for _, n := range a.Colnames {
		cols = append(cols, n.GetString_().GetSval())
	}
	return a.Aliasname, cols
}

func (c *conv) tableExpr(n *pg.Node, depth int) (TableExpr, error) {
	if depth > maxDepth {
		return nil, c.tooDeep(-1)
	}
	switch t := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		rv := t.RangeVar
		if rv.Catalogname != "" {
			return nil, c.invalid(rv.Location, "%s.%s.%s names a database; write FROM department.dataset", rv.Catalogname, rv.Schemaname, rv.Relname)
		}
		if !rv.Inh {
			return nil, c.unsupported(rv.Location, "FROM ONLY is not supported yet; write FROM department.dataset")
		}
		alias, cols := c.alias(rv.Alias)
		return &Table{Name: TableName{Pos: int(rv.Location), Schema: rv.Schemaname, Name: rv.Relname}, Alias: alias, ColumnAliases: cols}, nil
	case *pg.Node_RangeSubselect:
		rs := t.RangeSubselect
		sel := rs.Subquery.GetSelectStmt()
		if sel == nil {
			return nil, c.unsupported(-1, "this subquery in FROM is not supported yet")
		}
		q, err := c.query(sel, depth+1)
		if err != nil {
			return nil, err
		}
		alias, cols := c.alias(rs.Alias)
		return &Derived{Pos: q.Pos, Query: q, Alias: alias, ColumnAliases: cols, Lateral: rs.Lateral}, nil
	case *pg.Node_JoinExpr:
		j := t.JoinExpr
		if j.Alias != nil || j.JoinUsingAlias != nil {
			return nil, c.unsupported(-1, "an alias for a join is not supported yet; alias the tables instead")
		}
		left, err := c.tableExpr(j.Larg, depth+1)
		if err != nil {
			return nil, err
		}
		right, err := c.tableExpr(j.Rarg, depth+1)
		if err != nil {
			return nil, err
		}
		out := &Join{Pos: right.Position(), Left: left, Right: right, Natural: j.IsNatural}
		switch j.Jointype {
		case pg.JoinType_JOIN_INNER:
			out.Kind = JoinInner
			if j.Quals == nil && len(j.UsingClause) == 0 && !j.IsNatural {
				out.Kind = JoinCross
			}
		case pg.JoinType_JOIN_LEFT:
			out.Kind = JoinLeft
		case pg.JoinType_JOIN_RIGHT:
			out.Kind = JoinRight
		case pg.JoinType_JOIN_FULL:
			out.Kind = JoinFull
		default:
			return nil, c.unsupported(-1, "this kind of join is not supported yet")
		}
		for _, u := range j.UsingClause {
			out.Using = append(out.Using, u.GetString_().GetSval())
		}
		if j.Quals != nil {
			if out.On, err = c.expr(j.Quals, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case *pg.Node_RangeFunction:
		return nil, c.unsupported(-1, "table functions in FROM are not supported yet; read from department.dataset")
	case *pg.Node_RangeTableSample:
		return nil, c.unsupported(t.RangeTableSample.Location, "TABLESAMPLE is not supported yet")
	}
	return nil, c.unsupported(-1, "this FROM item is not supported yet; write FROM department.dataset")
}

// exprLocation is the byte offset of an expression node, -1 if it has
// none.
func exprLocation(n *pg.Node) int32 {
	switch t := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		return t.ColumnRef.Location
	case *pg.Node_AConst:
		return t.AConst.Location
	case *pg.Node_AExpr:
		return t.AExpr.Location
	case *pg.Node_BoolExpr:
		return t.BoolExpr.Location
	case *pg.Node_FuncCall:
		return t.FuncCall.Location
	case *pg.Node_TypeCast:
		return t.TypeCast.Location
	case *pg.Node_SubLink:
		return t.SubLink.Location
	case *pg.Node_CaseExpr:
		return t.CaseExpr.Location
	case *pg.Node_NullTest:
		return t.NullTest.Location
	case *pg.Node_BooleanTest:
		return t.BooleanTest.Location
	case *pg.Node_CoalesceExpr:
		return t.CoalesceExpr.Location
	case *pg.Node_MinMaxExpr:
		return t.MinMaxExpr.Location
	case *pg.Node_SqlvalueFunction:
		return t.SqlvalueFunction.Location
	case *pg.Node_ParamRef:
		return t.ParamRef.Location
	case *pg.Node_CollateClause:
		return t.CollateClause.Location
	case *pg.Node_RowExpr:
		return t.RowExpr.Location
	case *pg.Node_AArrayExpr:
		return t.AArrayExpr.Location
	}
	return -1
}

func (c *conv) exprs(nodes []*pg.Node, depth int) ([]Expr, error) {
	out := make([]Expr, 0, len(nodes))
	for _, n := range nodes {
		e, err := c.expr(n, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// opName reads an operator name (the last part of a possibly qualified
// OPERATOR(pg_catalog.+)).
func opName(names []*pg.Node) string {
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1].GetString_().GetSval()
}

func (c *conv) expr(n *pg.Node, depth int) (Expr, error) {
	if depth > maxDepth {
		return nil, c.tooDeep(exprLocation(n))
	}
	if n == nil || n.GetNode() == nil {
		return nil, c.invalid(-1, "the query has an empty expression")
	}
	d := depth + 1
	switch t := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		cr := t.ColumnRef
		if isStarRef(cr) {
			return nil, c.invalid(cr.Location, "* is only allowed as a select item or as COUNT(*)")
		}
		last := cr.Fields[len(cr.Fields)-1].GetString_()
		if last == nil {
			return nil, c.unsupported(cr.Location, "this column reference is not supported yet")
		}
		out := &ColumnRef{Pos: int(cr.Location), Name: last.Sval}
		if len(cr.Fields) > 1 {
			tn, err := c.qualifier(cr.Fields[:len(cr.Fields)-1], cr.Location)
			if err != nil {
				return nil, err
			}
			out.Table = tn
		}
		return out, nil
	case *pg.Node_AConst:
		return c.constant(t.AConst)
	case *pg.Node_ParamRef:
		return nil, c.invalid(t.ParamRef.Location, "bind parameters ($1) are not accepted; write the values into the query")
	case *pg.Node_BoolExpr:
		b := t.BoolExpr
		args, err := c.exprs(b.Args, d)
		if err != nil {
			return nil, err
		}
		switch b.Boolop {
		case pg.BoolExprType_NOT_EXPR:
			if len(args) != 1 {
				return nil, c.invalid(b.Location, "NOT takes one operand")
			}
			if in, ok := args[0].(*InSubquery); ok && !in.Not {
				in.Not = true // x NOT IN (SELECT ...)
				return in, nil
			}
			return &Unary{Pos: int(b.Location), Op: "NOT", X: args[0]}, nil
		case pg.BoolExprType_AND_EXPR, pg.BoolExprType_OR_EXPR:
			op := "AND"
			if b.Boolop == pg.BoolExprType_OR_EXPR {
				op = "OR"
			}
			if len(args) < 2 {
				return nil, c.invalid(b.Location, "%s takes two operands", op)
			}
			// The grammar flattens a AND b AND c; the tree nests it to
			// the left, as written.
			out := args[0]
			for _, a := range args[1:] {
				out = &Binary{Pos: int(b.Location), Op: op, L: out, R: a}
			}
			return out, nil
		}
		return nil, c.unsupported(b.Location, "this boolean expression is not supported yet")
	case *pg.Node_AExpr:
		return c.aExpr(t.AExpr, d)
	case *pg.Node_NullTest:
		x, err := c.expr(t.NullTest.Arg, d)
		if err != nil {
			return nil, err
		}
		return &IsNull{Pos: int(t.NullTest.Location), X: x, Not: t.NullTest.Nulltesttype == pg.NullTestType_IS_NOT_NULL}, nil
	case *pg.Node_BooleanTest:
		bt := t.BooleanTest
		x, err := c.expr(bt.Arg, d)
		if err != nil {
			return nil, err
		}
		out := &IsBool{Pos: int(bt.Location), X: x}
		switch bt.Booltesttype {
		case pg.BoolTestType_IS_TRUE:
			out.Value = "TRUE"
		case pg.BoolTestType_IS_NOT_TRUE:
			out.Value, out.Not = "TRUE", true
		case pg.BoolTestType_IS_FALSE:
			out.Value = "FALSE"
		case pg.BoolTestType_IS_NOT_FALSE:
			out.Value, out.Not = "FALSE", true
		case pg.BoolTestType_IS_UNKNOWN:
			out.Value = "UNKNOWN"
		case pg.BoolTestType_IS_NOT_UNKNOWN:
			out.Value, out.Not = "UNKNOWN", true
		default:
			return nil, c.unsupported(bt.Location, "this IS test is not supported yet")
		}
		return out, nil
	case *pg.Node_FuncCall:
		return c.funcCall(t.FuncCall, d)
	case *pg.Node_TypeCast:
		tc := t.TypeCast
		x, err := c.expr(tc.Arg, d)
		if err != nil {
			return nil, err
		}
		pos := tc.Location
		if pos < 0 {
			pos = int32(x.Position()) // a typed literal: DATE '...'
		}
		tn, err := c.typeName(tc.TypeName, pos)
		if err != nil {
			return nil, err
		}
		return &Cast{Pos: int(pos), X: x, Type: tn}, nil
	case *pg.Node_CaseExpr:
		ce := t.CaseExpr
		out := &Case{Pos: int(ce.Location)}
		var err error
		if ce.Arg != nil {
			if out.Operand, err = c.expr(ce.Arg, d); err != nil {
				return nil, err
			}
		}
		for _, w := range ce.Args {
			cw := w.GetCaseWhen()
			if cw == nil {
				return nil, c.unsupported(ce.Location, "this CASE is not supported yet")
			}
			cond, err := c.expr(cw.Expr, d)
			if err != nil {
				return nil, err
			}
			val, err := c.expr(cw.Result, d)
			if err != nil {
				return nil, err
			}
			out.Whens = append(out.Whens, &When{Cond: cond, Val: val})
		}
		if ce.Defresult != nil {
			if out.Else, err = c.expr(ce.Defresult, d); err != nil {
				return nil, err
			}
		}
		return out, nil
	case *pg.Node_CoalesceExpr:
		args, err := c.exprs(t.CoalesceExpr.Args, d)
		if err != nil {
			return nil, err
		}
		return &Func{Pos: int(t.CoalesceExpr.Location), Name: "coalesce", Args: args}, nil
	case *pg.Node_MinMaxExpr:
		args, err := c.exprs(t.MinMaxExpr.Args, d)
		if err != nil {
			return nil, err
		}
		name := "greatest"
		if t.MinMaxExpr.Op == pg.MinMaxOp_IS_LEAST {
			name = "least"
		}
		return &Func{Pos: int(t.MinMaxExpr.Location), Name: name, Args: args}, nil
	case *pg.Node_SqlvalueFunction:
		f := t.SqlvalueFunction
		name := strings.ToLower(strings.TrimPrefix(f.Op.String(), "SVFOP_"))
		return &Func{Pos: int(f.Location), Name: name}, nil
	case *pg.Node_SubLink:
		return c.subLink(t.SubLink, d)
	case *pg.Node_CollateClause:
		return nil, c.unsupported(t.CollateClause.Location, "COLLATE is not supported yet")
	case *pg.Node_RowExpr:
		return nil, c.unsupported(t.RowExpr.Location, "row values (a, b) are not supported yet")
	case *pg.Node_AArrayExpr:
		return nil, c.unsupported(t.AArrayExpr.Location, "arrays are not supported yet")
	case *pg.Node_AIndirection:
		return nil, c.unsupported(-1, "subscripts and field selection are not supported yet")
	case *pg.Node_GroupingFunc:
		return nil, c.unsupported(t.GroupingFunc.Location, "GROUPING() is not supported yet")
	}
	return nil, c.unsupported(exprLocation(n), "this expression (%s) is not supported yet", strings.TrimPrefix(fmt.Sprintf("%T", n.GetNode()), "*pg_query.Node_"))
}

func (c *conv) constant(a *pg.A_Const) (Expr, error) {
	pos := int(a.Location)
	if a.Isnull {
		return &Literal{Pos: pos, Kind: LitNull}, nil
	}
	switch v := a.Val.(type) {
	case *pg.A_Const_Ival:
		return &Literal{Pos: pos, Kind: LitInt, Text: strconv.FormatInt(int64(v.Ival.GetIval()), 10)}, nil
	case *pg.A_Const_Fval:
		s := v.Fval.GetFval()
		if !strings.ContainsAny(s, ".eE") {
			return &Literal{Pos: pos, Kind: LitInt, Text: s}, nil
		}
		return &Literal{Pos: pos, Kind: LitFloat, Text: s}, nil
	case *pg.A_Const_Sval:
		return &Literal{Pos: pos, Kind: LitString, Text: v.Sval.GetSval()}, nil
	case *pg.A_Const_Boolval:
		return &Literal{Pos: pos, Kind: LitBool, Text: strconv.FormatBool(v.Boolval.GetBoolval())}, nil
	case *pg.A_Const_Bsval:
		return nil, c.unsupported(a.Location, "bit-string constants (B'...', X'...') are not supported yet; write numbers in decimal or strings in quotes")
	case nil:
		// An integer zero arrives without its value.
		return &Literal{Pos: pos, Kind: LitInt, Text: "0"}, nil
	}
	return nil, c.unsupported(a.Location, "this constant is not supported yet")
}

func (c *conv) aExpr(a *pg.A_Expr, d int) (Expr, error) {
	pos := int(a.Location)
	op := opName(a.Name)
	two := func() (Expr, Expr, error) {
		l, err := c.expr(a.Lexpr, d)
		if err != nil {
			return nil, nil, err
		}
		r, err := c.expr(a.Rexpr, d)
		return l, r, err
	}
	switch a.Kind {
	case pg.A_Expr_Kind_AEXPR_OP:
		if len(a.Name) > 1 {
			return nil, c.unsupported(a.Location, "OPERATOR(...) syntax is not supported yet; write the operator")
		}
		if a.Lexpr == nil {
			x, err := c.expr(a.Rexpr, d)
			if err != nil {
				return nil, err
			}
			return &Unary{Pos: pos, Op: op, X: x}, nil
		}
		if a.Rexpr == nil {
			return nil, c.unsupported(a.Location, "postfix operator %s is not supported yet", op)
		}
		l, r, err := two()
		if err != nil {
			return nil, err
		}
		if op == "!=" {
			op = "<>"
		}
		return &Binary{Pos: pos, Op: op, L: l, R: r}, nil
	case pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		l, r, err := two()
		if err != nil {
			return nil, err
		}
		return &IsDistinct{Pos: pos, L: l, R: r, Not: a.Kind == pg.A_Expr_Kind_AEXPR_NOT_DISTINCT}, nil
	case pg.A_Expr_Kind_AEXPR_NULLIF:
		l, r, err := two()
		if err != nil {
			return nil, err
		}
		return &Func{Pos: pos, Name: "nullif", Args: []Expr{l, r}}, nil
	case pg.A_Expr_Kind_AEXPR_IN:
		x, err := c.expr(a.Lexpr, d)
		if err != nil {
			return nil, err
		}
		list := a.Rexpr.GetList()
		if list == nil {
			return nil, c.invalid(a.Location, "IN needs a list of values: IN (value, ...)")
		}
		items, err := c.exprs(list.Items, d)
		if err != nil {
			return nil, err
		}
		return &InList{Pos: pos, X: x, List: items, Not: op == "<>"}, nil
	case pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE:
		x, err := c.expr(a.Lexpr, d)
		if err != nil {
			return nil, err
		}
		out := &Like{Pos: pos, X: x, ILike: a.Kind == pg.A_Expr_Kind_AEXPR_ILIKE, Not: strings.HasPrefix(op, "!")}
		// LIKE p ESCAPE e arrives as like_escape(p, e).
		if f := a.Rexpr.GetFuncCall(); f != nil && len(f.Funcname) == 2 && opName(f.Funcname) == "like_escape" && len(f.Args) == 2 {
			if out.Pattern, err = c.expr(f.Args[0], d); err != nil {
				return nil, err
			}
			if out.Escape, err = c.expr(f.Args[1], d); err != nil {
				return nil, err
			}
			return out, nil
		}
		if out.Pattern, err = c.expr(a.Rexpr, d); err != nil {
			return nil, err
		}
		return out, nil
	case pg.A_Expr_Kind_AEXPR_SIMILAR:
		return nil, c.unsupported(a.Location, "SIMILAR TO is not supported yet; use LIKE")
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN, pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		x, err := c.expr(a.Lexpr, d)
		if err != nil {
			return nil, err
		}
		bounds := a.Rexpr.GetList()
		if bounds == nil || len(bounds.Items) != 2 {
			return nil, c.invalid(a.Location, "BETWEEN needs two bounds: x BETWEEN a AND b")
		}
		lo, err := c.expr(bounds.Items[0], d)
		if err != nil {
			return nil, err
		}
		hi, err := c.expr(bounds.Items[1], d)
		if err != nil {
			return nil, err
		}
		return &Between{Pos: pos, X: x, Lo: lo, Hi: hi,
			Not:       a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN || a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM,
			Symmetric: a.Kind == pg.A_Expr_Kind_AEXPR_BETWEEN_SYM || a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM}, nil
	case pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL:
		return nil, c.unsupported(a.Location, "%s ANY/ALL (array) is not supported yet; use IN (value, ...)", op)
	}
	return nil, c.unsupported(a.Location, "operator %s is not supported yet", op)
}

func (c *conv) funcCall(f *pg.FuncCall, d int) (Expr, error) {
	out := &Func{Pos: int(f.Location), Star: f.AggStar, Distinct: f.AggDistinct}
	switch len(f.Funcname) {
	case 1:
		out.Name = strings.ToLower(opName(f.Funcname))
	case 2:
		out.Schema = f.Funcname[0].GetString_().GetSval()
		out.Name = strings.ToLower(opName(f.Funcname))
	default:
		return nil, c.invalid(f.Location, "function name %s has too many parts", out.Name)
	}
	if f.AggWithinGroup || len(f.AggOrder) > 0 {
		return nil, c.unsupported(f.Location, "ordered aggregates (%s(... ORDER BY ...), WITHIN GROUP) are not supported yet", out.Name)
	}
	if f.FuncVariadic {
		return nil, c.unsupported(f.Location, "VARIADIC arguments are not supported yet")
	}
	if f.Funcformat == pg.CoercionForm_COERCE_SQL_SYNTAX && out.Schema == "pg_catalog" {
		// EXTRACT, SUBSTRING, POSITION, TRIM, OVERLAY ... in their SQL
		// syntax: the function they stand for, without the qualifier.
		out.Schema = ""
		switch out.Name {
		case "extract", "substring", "position", "btrim", "ltrim", "rtrim", "overlay", "timezone", "date_part":
		default:
			return nil, c.unsupported(f.Location, "%s is not supported yet", strings.ToUpper(out.Name))
		}
	}
	args, err := c.exprs(f.Args, d)
	if err != nil {
		return nil, err
	}
	out.Args = args
	if f.AggFilter != nil {
		if out.Filter, err = c.expr(f.AggFilter, d); err != nil {
			return nil, err
		}
	}
	if w := f.Over; w != nil {
		win := &Window{Pos: int(w.Location), Ref: w.Refname}
		if w.Name != "" {
			win.Ref = w.Name
		}
		if win.PartitionBy, err = c.exprs(w.PartitionClause, d); err != nil {
			return nil, err
		}
		if win.OrderBy, err = c.orderBy(w.OrderClause, d); err != nil {
			return nil, err
		}
		// FRAMEOPTION_DEFAULTS = NONDEFAULT unset.
		if w.FrameOptions&1 != 0 {
			win.Frame = "frame"
			if w.StartOffset != nil || w.EndOffset != nil {
				return nil, c.unsupported(w.Location, "window frames with an offset (ROWS n PRECEDING) are not supported yet")
			}
		}
		out.Over = win
	}
	return out, nil
}

func (c *conv) subLink(s *pg.SubLink, d int) (Expr, error) {
	sel := s.Subselect.GetSelectStmt()
	if sel == nil {
		return nil, c.unsupported(s.Location, "this subquery is not supported yet")
	}
	q, err := c.query(sel, d)
	if err != nil {
		return nil, err
	}
	pos := int(s.Location)
	switch s.SubLinkType {
	case pg.SubLinkType_EXPR_SUBLINK:
		return &Subquery{Pos: pos, Query: q}, nil
	case pg.SubLinkType_EXISTS_SUBLINK:
		return &Exists{Pos: pos, Query: q}, nil
	case pg.SubLinkType_ANY_SUBLINK:
		op := opName(s.OperName)
		if op != "" && op != "=" {
			return nil, c.unsupported(s.Location, "%s ANY (SELECT ...) is not supported yet; use IN (SELECT ...)", op)
		}
		x, err := c.expr(s.Testexpr, d)
		if err != nil {
			return nil, err
		}
		return &InSubquery{Pos: pos, X: x, Query: q}, nil
	case pg.SubLinkType_ALL_SUBLINK:
		op := opName(s.OperName)
		if op == "<>" {
			x, err := c.expr(s.Testexpr, d)
			if err != nil {
				return nil, err
			}
			return &InSubquery{Pos: pos, X: x, Query: q, Not: true}, nil
		}
		return nil, c.unsupported(s.Location, "%s ALL (SELECT ...) is not supported yet", op)
	}
	return nil, c.unsupported(s.Location, "this kind of subquery is not supported yet")
}

// intervalFields are PostgreSQL's interval field bits (datetime.h).
var intervalFields = []struct {
	bit  int
	name string
}{{2, "year"}, {1, "month"}, {3, "day"}, {10, "hour"}, {11, "minute"}, {12, "second"}}

func (c *conv) typeName(t *pg.TypeName, pos int32) (TypeName, error) {
	var out TypeName
	if t == nil || len(t.Names) == 0 {
		return out, c.invalid(pos, "a cast needs a type")
	}
	if t.Setof || t.PctType {
		return out, c.unsupported(pos, "this type is not supported yet")
	}
	names := make([]string, len(t.Names))
	for i, n := range t.Names {
		names[i] = strings.ToLower(n.GetString_().GetSval())
	}
	if len(names) == 2 && names[0] == "pg_catalog" {
		names = names[1:]
	}
	if len(names) != 1 {
		return out, c.unsupported(pos, "type %s is not supported yet", strings.Join(names, "."))
	}
	out.Name = names[0]
	out.IsArray = len(t.ArrayBounds) > 0
	for _, m := range t.Typmods {
		a := m.GetAConst()
		if a == nil {
			return out, c.unsupported(pos, "type modifiers that are not numbers are not supported yet")
		}
		iv, ok := a.Val.(*pg.A_Const_Ival)
		n := 0
		if ok {
			n = int(iv.Ival.GetIval())
		} else if a.Val != nil {
			return out, c.unsupported(pos, "type modifiers that are not integers are not supported yet")
		}
		out.Mods = append(out.Mods, n)
	}
	if out.Name == "interval" && len(out.Mods) > 0 {
		mask := out.Mods[0]
		if mask != 0x7FFF {
			var fs []string
			for _, f := range intervalFields {
				if mask&(1<<f.bit) != 0 {
					fs = append(fs, f.name)
				}
			}
			switch len(fs) {
			case 0:
			case 1:
				out.Fields = fs[0]
			default:
				out.Fields = fs[0] + " to " + fs[len(fs)-1]
			}
		}
		out.Mods = out.Mods[1:]
	}
	return out, nil
}
