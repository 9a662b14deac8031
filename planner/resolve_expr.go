package planner

import (
	"errors"
	"math"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// expr resolves one expression of the query into the IR. An error raised
// for a node that carries no position yet gets the node's.
func (r *resolver) expr(e sqlast.Expr, sc scope, top bool, depth int) (out *Expr, err error) {
	if depth > maxExprDepth {
		return nil, invalid("expression is nested more than %d levels deep; simplify the query", maxExprDepth)
	}
	if e == nil {
		return nil, invalid("the query has an empty expression")
	}
	defer func() {
		if err != nil {
			err = r.at(err, e.Position())
		}
	}()
	sub := func(x sqlast.Expr) (*Expr, error) { return r.expr(x, sc, false, depth+1) }
	subs := func(xs ...sqlast.Expr) ([]*Expr, error) {
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
	case *sqlast.ColumnRef:
		return r.column(n, sc, top)
	case *sqlast.Literal:
		return literal(n)
	case *sqlast.Unary:
		switch n.Op {
		case "-":
			if v, ok := n.X.(*sqlast.Literal); ok && (v.Kind == sqlast.LitFloat || v.Kind == sqlast.LitInt) {
				lit, err := literal(&sqlast.Literal{Kind: v.Kind, Text: negateNumber(v.Text)})
				if err != nil {
					return nil, err
				}
				return lit, nil
			}
			args, err := subs(n.X)
			if err != nil {
				return nil, err
			}
			return &Expr{Kind: KindUnary, Op: "-", Args: args}, nil
		case "+":
			return sub(n.X)
		case "NOT":
			args, err := subs(n.X)
			if err != nil {
				return nil, err
			}
			return &Expr{Kind: KindUnary, Op: "NOT", Args: args}, nil
		}
		return nil, notSupported("operator %s is not supported yet", clip(n.Op))
	case *sqlast.Binary:
		if lit, err := foldDate(n); lit != nil || err != nil {
			return lit, err
		}
		switch n.Op {
		case "AND", "OR", "+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "||":
		default:
			return nil, notSupported("operator %s is not supported yet; use + - * / %% and comparisons", clip(n.Op))
		}
		args, err := subs(n.L, n.R)
		if err != nil {
			return nil, err
		}
		if lit, err := foldNumbers(n.Op, args[0], args[1]); lit != nil || err != nil {
			return lit, err
		}
		if n.Op == "/" && r.bothIntegers(args[0], args[1]) {
			// Between integers / truncates, as PostgreSQL reads it.
			return &Expr{Kind: KindBinary, Op: "div", Args: args}, nil
		}
		return &Expr{Kind: KindBinary, Op: n.Op, Args: args}, nil
	case *sqlast.Between:
		if n.Symmetric {
			return nil, notSupported("BETWEEN SYMMETRIC is not supported yet; write the bounds in order")
		}
		args, err := subs(n.X, n.Lo, n.Hi)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindBetween, Negate: n.Not, Args: args}, nil
	case *sqlast.IsNull:
		args, err := subs(n.X)
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: KindIsNull, Negate: n.Not, Args: args}, nil
	case *sqlast.IsBool:
		not := ""
		if n.Not {
			not = "NOT "
		}
		return nil, notSupported("IS %s%s is not supported yet; compare with = TRUE or use IS [NOT] NULL", not, n.Value)
	case *sqlast.IsDistinct:
		// l IS DISTINCT FROM r is COALESCE(l <> r, (l IS NULL) <> (r IS
		// NULL)): both values present, they differ; one NULL, distinct;
		// both NULL, not. NOT DISTINCT is its negation.
		args, err := subs(n.L, n.R)
		if err != nil {
			return nil, err
		}
		isNull := func(x *Expr) *Expr { return &Expr{Kind: KindIsNull, Args: []*Expr{x}} }
		out := &Expr{Kind: KindFunc, Func: "coalesce", Args: []*Expr{
			{Kind: KindBinary, Op: "<>", Args: []*Expr{args[0], args[1]}},
			{Kind: KindBinary, Op: "<>", Args: []*Expr{isNull(cloneExpr(args[0])), isNull(cloneExpr(args[1]))}},
		}}
		if n.Not {
			out = &Expr{Kind: KindUnary, Op: "NOT", Args: []*Expr{out}}
		}
		return out, nil
	case *sqlast.InList:
		if len(n.List) > maxArgs {
			return nil, invalid("IN lists at most %d values", maxArgs)
		}
		l, err := sub(n.X)
		if err != nil {
			return nil, err
		}
		out := &Expr{Kind: KindIn, Negate: n.Not, Args: []*Expr{l}}
		for _, v := range n.List {
			a, err := sub(v)
			if err != nil {
				return nil, err
			}
			out.Args = append(out.Args, a)
		}
		return out, nil
	case *sqlast.Like:
		if n.Escape != nil {
			if v, ok := n.Escape.(*sqlast.Literal); !ok || v.Kind != sqlast.LitString || v.Text != `\` {
				return nil, notSupported(`LIKE ... ESCAPE with another character than \ is not supported yet; escape with \`)
			}
		}
		args, err := subs(n.X, n.Pattern)
		if err != nil {
			return nil, err
		}
		if n.ILike {
			// x ILIKE p is lower(x) LIKE lower(p), in every dialect.
			for i, a := range args {
				args[i] = &Expr{Kind: KindFunc, Func: "lower", Args: []*Expr{a}}
			}
		}
		return &Expr{Kind: KindLike, Negate: n.Not, Args: args}, nil
	case *sqlast.Func:
		return r.function(n, sc, depth)
	case *sqlast.Case:
		out := &Expr{Kind: KindCase}
		if n.Operand != nil {
			op, err := sub(n.Operand)
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
	case *sqlast.Cast:
		if lit, err := foldDate(n); lit != nil || err != nil {
			return lit, err
		}
		if n.Type.Name == "interval" {
			return nil, notSupported("an INTERVAL is supported only added to or subtracted from a date constant (DATE '1998-12-01' - INTERVAL '90' DAY); date arithmetic on columns is not supported yet")
		}
		if lit, ok := n.X.(*sqlast.Literal); ok && lit.Kind == sqlast.LitString {
			return nil, notSupported("typed constants (%s '%s') are not supported yet; compare dates with a string such as '2015-01-01'", strings.ToUpper(n.Type.Name), clip(lit.Text))
		}
		x, err := sub(n.X)
		if err != nil {
			return nil, err
		}
		return r.cast(x, n.Type)
	case *sqlast.Subquery, *sqlast.Exists, *sqlast.InSubquery:
		return nil, notSupported("subqueries are not supported yet here; use col IN (SELECT col FROM ...) in WHERE, or a join")
	}
	return nil, notSupported("this expression is not supported yet; see the planner documentation for the supported SQL")
}

func (r *resolver) function(n *sqlast.Func, sc scope, depth int) (*Expr, error) {
	name := n.Name
	if n.Schema != "" {
		return nil, notSupported("function %s.%s is not supported yet; supported: %s", clip(n.Schema), clip(name), supportedFuncs)
	}
	if n.Over != nil {
		return r.window(n, sc, depth)
	}
	switch name {
	case "extract", "date_part":
		// EXTRACT(YEAR FROM x) arrives as extract('year', x).
		var field *sqlast.Literal
		if len(n.Args) == 2 {
			field, _ = n.Args[0].(*sqlast.Literal)
		}
		if field == nil || field.Kind != sqlast.LitString {
			return nil, invalid("write EXTRACT(YEAR FROM x), EXTRACT(MONTH FROM x) or EXTRACT(DAY FROM x)")
		}
		switch f := strings.ToLower(field.Text); f {
		case "year", "month", "day":
			name, n = f, &sqlast.Func{Pos: n.Pos, Name: f, Args: n.Args[1:]}
		default:
			return nil, notSupported("EXTRACT(%s FROM ...) is not supported yet; supported: YEAR, MONTH, DAY", strings.ToUpper(clip(f)))
		}
	case "date_trunc":
		// date_trunc('month', x) is trunc_month(x) in the IR.
		var unit *sqlast.Literal
		if len(n.Args) == 2 {
			unit, _ = n.Args[0].(*sqlast.Literal)
		}
		if unit == nil || unit.Kind != sqlast.LitString {
			return nil, invalid("write date_trunc('year', x) or date_trunc('month', x), the unit as a string constant")
		}
		switch u := strings.ToLower(unit.Text); u {
		case "year", "month":
			name, n = "trunc_"+u, &sqlast.Func{Pos: n.Pos, Name: "trunc_" + u, Args: n.Args[1:]}
		default:
			return nil, notSupported("date_trunc('%s', ...) is not supported yet; supported: 'year', 'month'", clip(u))
		}
	case "year", "month", "day", "trunc_year", "trunc_month":
		// Not PostgreSQL functions: the IR's names for EXTRACT and
		// date_trunc.
		if strings.HasPrefix(name, "trunc_") {
			return nil, notSupported("function %s is not supported yet; write date_trunc('%s', x)", name, strings.TrimPrefix(name, "trunc_"))
		}
		return nil, notSupported("function %s is not supported yet; write EXTRACT(%s FROM x)", name, strings.ToUpper(name))
	case "to_float":
		// The IR's name for a cast to a floating-point type.
		return nil, notSupported("function to_float is not supported yet; write CAST(x AS DOUBLE PRECISION)")
	case "substring":
		name = "substr"
	case "btrim":
		if len(n.Args) == 1 {
			name = "trim"
		}
	}
	kind := KindFunc
	switch {
	case aggregateFuncs[name]:
		kind = KindAggregate
	case otherAggregates[name]:
		return nil, notSupported("aggregate %s is not supported yet; supported: count, sum, avg, min, max", clip(name))
	case scalarFuncs[name] == (scalarFunc{}):
		return nil, notSupported("function %s is not supported yet; supported: %s", clip(name), supportedFuncs)
	}
	if n.Distinct && kind != KindAggregate {
		return nil, invalid("DISTINCT is only allowed inside an aggregate, not in %s()", name)
	}
	if n.Filter != nil && kind != KindAggregate {
		return nil, invalid("FILTER (WHERE ...) belongs to an aggregate, not to %s()", name)
	}
	out := &Expr{Kind: kind, Func: name, Distinct: n.Distinct}
	if n.Star {
		if name != "count" || n.Distinct {
			return nil, invalid("* is only allowed as COUNT(*)")
		}
		out.Args = append(out.Args, &Expr{Kind: KindStar})
	}
	for _, a := range n.Args {
		// Inside an aggregate, names are source columns only: an output
		// alias there would nest one aggregate in another.
		argScope := sc
		if kind == KindAggregate {
			argScope = scopeSelect
		}
		e, err := r.expr(a, argScope, false, depth+1)
		if err != nil {
			return nil, err
		}
		out.Args = append(out.Args, e)
	}
	if kind == KindAggregate && len(out.Args) != 1 {
		if name == "count" && n.Distinct {
			return nil, notSupported("COUNT(DISTINCT ...) of several columns is not supported yet; count one column")
		}
		return nil, invalid("%s() takes exactly one argument", name)
	}
	if n.Filter != nil {
		// agg(x) FILTER (WHERE c) is agg(CASE WHEN c THEN x END), and
		// COUNT(*) FILTER (WHERE c) counts CASE WHEN c THEN 1 END: the
		// aggregate's argument is then an expression, under the rules
		// for one (a protected column inside it is refused as any CASE
		// in an aggregate is).
		cond, err := r.expr(n.Filter, scopeSelect, false, depth+1)
		if err != nil {
			return nil, err
		}
		if hasAggregate(cond) {
			return nil, invalid("FILTER (WHERE ...) cannot use an aggregate")
		}
		val := out.Args[0]
		if val.Kind == KindStar {
			val = &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: "1"}}
		}
		out.Args[0] = &Expr{Kind: KindCase, Args: []*Expr{cond, val}}
	}
	return out, nil
}

// otherAggregates are aggregate functions of PostgreSQL that Sluice does
// not release yet; they are named as aggregates in the refusal.
var otherAggregates = map[string]bool{
	"string_agg": true, "array_agg": true, "stddev": true, "stddev_pop": true, "stddev_samp": true,
	"variance": true, "var_pop": true, "var_samp": true, "bool_and": true, "bool_or": true, "every": true,
	"bit_and": true, "bit_or": true, "group_concat": true, "percentile_cont": true, "percentile_disc": true,
	"mode": true, "median": true, "corr": true, "covar_pop": true, "covar_samp": true, "json_agg": true,
	"jsonb_agg": true, "xmlagg": true, "regr_slope": true, "regr_intercept": true, "any_value": true,
}

// literal converts a constant of the query into the IR.
func literal(v *sqlast.Literal) (*Expr, error) {
	switch v.Kind {
	case sqlast.LitNull:
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitNull}}, nil
	case sqlast.LitBool:
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitBool, Text: v.Text}}, nil
	case sqlast.LitString:
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitString, Text: v.Text}}, nil
	case sqlast.LitInt:
		n, err := strconv.ParseInt(v.Text, 10, 64)
		if err != nil {
			return nil, invalid("integer constant %s does not fit in 64 bits", clip(v.Text))
		}
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: strconv.FormatInt(n, 10)}}, nil
	case sqlast.LitFloat:
		f, err := strconv.ParseFloat(v.Text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalid("number %s is out of range", clip(v.Text))
		}
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitFloat, Text: strconv.FormatFloat(f, 'g', -1, 64)}}, nil
	}
	return nil, notSupported("this constant is not supported yet")
}

// positioned marks an error that already names its place in the query.
var positioned = &sluice.Error{Code: sluice.EInvalid, Message: "positioned"}

// at adds the position pos of the analyst's SQL to a planner error that
// has none yet: "... (line 2, column 8)".
func (r *resolver) at(err error, pos int) error {
	return locate(err, r.sql, pos)
}

func locate(err error, sql string, pos int) error {
	if err == nil || pos < 0 || pos > len(sql) || sql == "" {
		return err
	}
	var se *sluice.Error
	if !errors.As(err, &se) || se.Err == positioned || se.Code == sluice.EInternal {
		return err
	}
	line, col := lineColumn(sql, pos)
	return &sluice.Error{Code: se.Code, Message: se.Message + " (at line " + strconv.Itoa(line) + ", column " + strconv.Itoa(col) + ")", Reasons: se.Reasons, Err: positioned}
}

// lineColumn turns a byte offset into a 1-based line and column counted
// in characters.
func lineColumn(sql string, pos int) (int, int) {
	line, col := 1, 1
	for i, ch := range sql {
		if i >= pos {
			break
		}
		if ch == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// bothIntegers reports whether a and b are integers (an integer column,
// constant, count, or arithmetic on them), as the checker types them.
func (r *resolver) bothIntegers(a, b *Expr) bool {
	ds := r.ds
	if r.multi != nil {
		ds = r.multi.synth()
	}
	c := &checker{ds: ds, maybeMasked: true}
	for _, x := range []*Expr{a, b} {
		t, err := c.check(x, true, false, 0)
		if err != nil || t.t != sluice.TypeInteger {
			return false
		}
	}
	return true
}

// castTargets maps PostgreSQL's type names (as the grammar reads them) to
// the catalog types a CAST may ask for.
var castTargets = map[string]sluice.ColumnType{
	"int2": sluice.TypeInteger, "int4": sluice.TypeInteger, "int8": sluice.TypeInteger, "integer": sluice.TypeInteger, "bigint": sluice.TypeInteger, "smallint": sluice.TypeInteger,
	"numeric": sluice.TypeDecimal, "decimal": sluice.TypeDecimal,
	"float4": sluice.TypeFloat, "float8": sluice.TypeFloat, "real": sluice.TypeFloat, "double precision": sluice.TypeFloat, "float": sluice.TypeFloat,
	"text": sluice.TypeText, "varchar": sluice.TypeText,
	"date": sluice.TypeDate, "timestamp": sluice.TypeTimestamp, "bool": sluice.TypeBoolean, "boolean": sluice.TypeBoolean,
}

// cast resolves CAST(x AS type) and x::type. Only casts that mean the same
// in every dialect are planned: to the type x already has (nothing to do),
// an integer or decimal to numeric (exact as it is), and a number to a
// floating-point type. Rounding, truncation and text forms differ between
// SQLite, PostgreSQL and MySQL (CAST(2.5 AS INTEGER) is 2, 3 or 3), so
// those casts are not supported yet.
func (r *resolver) cast(x *Expr, to sqlast.TypeName) (*Expr, error) {
	target, ok := castTargets[to.Name]
	if !ok || to.IsArray {
		return nil, notSupported("CAST to %s is not supported yet", strings.ToUpper(clip(to.Name)))
	}
	if len(to.Mods) > 0 {
		return nil, notSupported("CAST to %s(%s) is not supported yet: precision, scale and length would round or cut values differently in each database; cast without them", strings.ToUpper(to.Name), intsText(to.Mods))
	}
	ds := r.ds
	if r.multi != nil {
		ds = r.multi.synth()
	}
	from, err := (&checker{ds: ds, maybeMasked: true}).check(x, true, false, 0)
	if err != nil {
		return nil, err
	}
	switch {
	case from.t == target:
		return x, nil
	case target == sluice.TypeDecimal && from.t == sluice.TypeInteger:
		return x, nil
	case target == sluice.TypeFloat && isNumeric(from.t):
		return &Expr{Kind: KindFunc, Func: "to_float", Args: []*Expr{x}}, nil
	case from.t == "":
		return nil, notSupported("CAST of a value whose type is not known before the policy decides (NULL, or a column that may reach you masked) is not supported yet")
	}
	return nil, notSupported("CAST from %s to %s is not supported yet: databases convert it differently; supported: numbers to numeric or a floating-point type", from.t, target)
}

func intsText(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ", ")
}

// window resolves a window function: f(args) OVER (PARTITION BY ...
// ORDER BY ...), over the rows of its query (before DISTINCT, ORDER BY and
// LIMIT). The planner runs it in the sandbox (finishSelect).
func (r *resolver) window(n *sqlast.Func, sc scope, depth int) (*Expr, error) {
	if sc != scopeSelect && sc != scopeOrder {
		return nil, invalid("window functions may appear only in the select list or ORDER BY")
	}
	w := n.Over
	switch {
	case w.Ref != "":
		return nil, notSupported("named windows (OVER %s) are not supported yet; write the window in OVER (...)", clip(w.Ref))
	case w.Frame != "":
		return nil, notSupported("window frames (ROWS/RANGE ...) are not supported yet; the default frame is used")
	case n.Distinct:
		return nil, notSupported("DISTINCT in a window function is not supported yet")
	case n.Filter != nil:
		return nil, notSupported("FILTER in a window function is not supported yet")
	case n.Schema != "":
		return nil, notSupported("function %s.%s is not supported yet", clip(n.Schema), clip(n.Name))
	}
	nargs, ok := windowFuncs[n.Name]
	if !ok {
		return nil, notSupported("window function %s is not supported yet; supported: row_number, rank, dense_rank, count, sum, avg, min, max", clip(n.Name))
	}
	out := &Expr{Kind: KindWindow, Func: n.Name, NArgs: nargs}
	switch {
	case n.Star && n.Name == "count":
		out.Args = append(out.Args, &Expr{Kind: KindStar})
	case len(n.Args) != nargs || n.Star:
		return nil, invalid("%s() takes %d argument(s) as a window function", n.Name, nargs)
	}
	sub := func(x sqlast.Expr) (*Expr, error) {
		e, err := r.expr(x, scopeSelect, false, depth+1)
		if err == nil && hasWindow(e) {
			err = notSupported("a window function inside a window function is not supported yet")
		}
		return e, err
	}
	if !n.Star {
		for _, a := range n.Args {
			e, err := sub(a)
			if err != nil {
				return nil, err
			}
			out.Args = append(out.Args, e)
		}
	}
	for _, p := range w.PartitionBy {
		e, err := sub(p)
		if err != nil {
			return nil, err
		}
		out.Args = append(out.Args, e)
		out.NPart++
	}
	for _, o := range w.OrderBy {
		if err := nullsOrder(o); err != nil {
			return nil, err
		}
		e, err := sub(o.Expr)
		if err != nil {
			return nil, err
		}
		out.Args = append(out.Args, e)
		out.Desc = append(out.Desc, o.Desc)
	}
	return out, nil
}

// hasWindow reports whether e holds a window function.
func hasWindow(e *Expr) bool {
	if e == nil {
		return false
	}
	if e.Kind == KindWindow {
		return true
	}
	for _, a := range e.Args {
		if hasWindow(a) {
			return true
		}
	}
	return false
}
