package planner

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	sluice "github.com/sluice-gov/sluice"
)

// maxExprDepth bounds recursion over expressions, so a hostile fragment (or
// a pathological query) cannot exhaust the stack of a checker or renderer.
const maxExprDepth = 128

// maxArgs bounds the argument lists of IN and COALESCE: far above what a
// real query writes, far below what any database accepts as bind parameters.
const maxArgs = 4096

// scalarFunc describes a whitelisted scalar function. Only functions that
// mean exactly the same thing in SQLite, PostgreSQL and MySQL are listed:
// a function that renders with a different meaning in one dialect would
// give an agent a different answer than another.
type scalarFunc struct {
	min, max int
}

var scalarFuncs = map[string]scalarFunc{
	"lower":    {1, 1},
	"upper":    {1, 1},
	"length":   {1, 1},
	"substr":   {2, 3},
	"trim":     {1, 1},
	"abs":      {1, 1},
	"round":    {1, 2},
	"coalesce": {2, maxArgs},
	// year, month and day of a date or timestamp: EXTRACT(YEAR FROM x).
	"year":  {1, 1},
	"month": {1, 1},
	"day":   {1, 1},
	// to_float is CAST(x AS DOUBLE PRECISION) of a number.
	"to_float": {1, 1},
	// The first day of a date's year or month: date_trunc('year', x),
	// date_trunc('month', x).
	"trunc_year":  {1, 1},
	"trunc_month": {1, 1},
}

var aggregateFuncs = map[string]bool{"count": true, "sum": true, "avg": true, "min": true, "max": true}

// supportedFuncs is the list shown in "not supported" messages.
const supportedFuncs = "lower, upper, length, substr, trim, abs, round, coalesce, EXTRACT(YEAR|MONTH|DAY FROM ...), date_trunc('year'|'month', ...) and the aggregates count, sum, avg, min, max"

var binaryOps = map[string]bool{
	"+": true, "-": true, "*": true, "/": true, "%": true,
	"=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true,
	"AND": true, "OR": true, "||": true, "div": true,
}

func isArith(op string) bool {
	switch op {
	case "+", "-", "*", "/", "%":
		return true
	}
	return false
}

func isComparison(op string) bool {
	switch op {
	case "=", "<>", "<", "<=", ">", ">=":
		return true
	}
	return false
}

// typ is the inferred type of an expression. t is empty for NULL, whose
// type is whatever its context needs. strLit marks a string literal, the
// one text value that may be compared with a date (as '2020-01-01').
type typ struct {
	t      sluice.ColumnType
	strLit bool
}

func isNumeric(t sluice.ColumnType) bool {
	return t == sluice.TypeInteger || t == sluice.TypeFloat || t == sluice.TypeDecimal
}

func isTemporal(t sluice.ColumnType) bool {
	return t == sluice.TypeDate || t == sluice.TypeTimestamp
}

// maskType is the type a column has once its mask is applied.
func maskType(m sluice.MaskRule) sluice.ColumnType {
	if m == sluice.MaskYear {
		return sluice.TypeInteger
	}
	return sluice.TypeText
}

// maskApplies reports whether rule m can be applied to a column of type t.
func maskApplies(m sluice.MaskRule, t sluice.ColumnType) bool {
	switch m {
	case sluice.MaskIDCard, sluice.MaskPhone, sluice.MaskSurname, sluice.MaskRedact:
		return t == sluice.TypeText
	case sluice.MaskYear:
		return isTemporal(t)
	}
	return false
}

// lookupMask finds the mask of a column, matching names case-insensitively
// as the catalog does.
// maskedToYear reports whether e is a column this fragment masks to its
// year (an integer in place of the date).
func (c *checker) maskedToYear(e *Expr) bool {
	if e == nil || e.Kind != KindColumn {
		return false
	}
	m, ok := lookupMask(c.masks, e.Column)
	return ok && m == sluice.MaskYear
}

func lookupMask(masks map[string]sluice.MaskRule, col string) (sluice.MaskRule, bool) {
	if len(masks) == 0 {
		return "", false
	}
	if m, ok := masks[col]; ok {
		return m, true
	}
	for k, m := range masks {
		if strings.EqualFold(k, col) {
			return m, true
		}
	}
	return "", false
}

// comparable reports whether values of types a and b can be compared with
// the same result in every dialect.
func comparable(a, b typ) bool {
	if a.t == "" || b.t == "" {
		return true
	}
	switch {
	case isNumeric(a.t):
		return isNumeric(b.t)
	case a.t == sluice.TypeBoolean:
		return b.t == sluice.TypeBoolean
	case a.t == sluice.TypeText:
		return b.t == sluice.TypeText || (a.strLit && isTemporal(b.t))
	case isTemporal(a.t):
		return isTemporal(b.t) || (b.t == sluice.TypeText && b.strLit)
	}
	return false
}

// unify returns the common type of the branches of CASE or COALESCE.
func unify(ts []typ) (typ, bool) {
	var out typ
	allLit := true
	for _, t := range ts {
		if t.t == "" {
			continue
		}
		allLit = allLit && t.strLit
		switch {
		case out.t == "":
			out.t = t.t
		case out.t == t.t:
		case isNumeric(out.t) && isNumeric(t.t):
			if out.t == sluice.TypeFloat || t.t == sluice.TypeFloat {
				out.t = sluice.TypeFloat
			} else {
				out.t = sluice.TypeDecimal
			}
		case isTemporal(out.t) && isTemporal(t.t):
			out.t = sluice.TypeTimestamp
		default:
			return typ{}, false
		}
	}
	out.strLit = out.t == sluice.TypeText && allLit
	return out, true
}

// checker validates an expression tree against a dataset and infers its
// type. The same checker runs when the broker plans a query and when an
// agent receives a fragment, so both sides agree on what is well-formed.
type checker struct {
	ds    *sluice.Dataset
	masks map[string]sluice.MaskRule
	// maybeMasked is set while planning, before the policy has decided
	// the masks: a column the catalog marks masked may reach the agent
	// masked (a year is an integer) or not (for its owner), so its type is
	// left open until the fragment is validated with its masks.
	maybeMasked bool
	// windows allows window functions: while planning a query, whose
	// windows the planner moves into the sandbox plan; never in a
	// fragment an agent receives.
	windows bool
}

func invalid(format string, args ...any) error {
	return sluice.Errorf(sluice.EInvalid, format, args...)
}

// check validates e. aggOK says whether aggregates may appear here; inAgg
// whether e is already inside an aggregate's argument.
func (c *checker) check(e *Expr, aggOK, inAgg bool, depth int) (typ, error) {
	if e == nil {
		return typ{}, invalid("the fragment has an empty expression")
	}
	if depth > maxExprDepth {
		return typ{}, invalid("expression is nested more than %d levels deep; simplify the query", maxExprDepth)
	}
	if e.Kind != KindLiteral && e.Literal != nil {
		return typ{}, invalid("a %s expression must not carry a literal", kindName(e.Kind))
	}
	switch e.Kind {
	case KindColumn:
		if len(e.Args) != 0 {
			return typ{}, invalid("a column expression takes no arguments")
		}
		col := c.ds.Column(e.Column)
		if col == nil {
			return typ{}, invalid("dataset %s has no column %q; run `sluice catalog show %s` to list its columns", c.ds.FullName(), e.Column, c.ds.FullName())
		}
		if m, ok := lookupMask(c.masks, col.Name); ok {
			return typ{t: maskType(m)}, nil
		}
		if c.maybeMasked && col.Release == sluice.ReleaseMasked && col.Mask != "" && maskType(col.Mask) != col.Type {
			return typ{}, nil
		}
		return typ{t: col.Type}, nil
	case KindLiteral:
		if len(e.Args) != 0 {
			return typ{}, invalid("a literal takes no arguments")
		}
		return checkLiteral(e.Literal)
	case KindStar:
		return typ{}, invalid("* may appear only as COUNT(*)")
	case KindUnary:
		if len(e.Args) != 1 {
			return typ{}, invalid("unary %s needs one argument, got %d", e.Op, len(e.Args))
		}
		a, err := c.check(e.Args[0], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		switch e.Op {
		case "-":
			if a.t != "" && !isNumeric(a.t) {
				return typ{}, invalid("unary minus needs a number, got %s", a.t)
			}
			return typ{t: a.t}, nil
		case "NOT":
			if a.t != "" && a.t != sluice.TypeBoolean {
				return typ{}, invalid("NOT needs a condition (a comparison, IS NULL, LIKE ...), got %s", a.t)
			}
			return typ{t: sluice.TypeBoolean}, nil
		}
		return typ{}, invalid("unknown unary operator %q", e.Op)
	case KindBinary:
		if !binaryOps[e.Op] {
			return typ{}, invalid("unknown binary operator %q", e.Op)
		}
		if len(e.Args) != 2 {
			return typ{}, invalid("operator %s needs two arguments, got %d", e.Op, len(e.Args))
		}
		l, err := c.check(e.Args[0], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		r, err := c.check(e.Args[1], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		return binaryType(e.Op, l, r)
	case KindFunc:
		return c.checkFunc(e, aggOK, inAgg, depth)
	case KindAggregate:
		return c.checkAggregate(e, aggOK, inAgg, depth)
	case KindIsNull:
		if len(e.Args) != 1 {
			return typ{}, invalid("IS NULL needs one argument, got %d", len(e.Args))
		}
		if _, err := c.check(e.Args[0], aggOK, inAgg, depth+1); err != nil {
			return typ{}, err
		}
		return typ{t: sluice.TypeBoolean}, nil
	case KindIn:
		if len(e.Args) < 2 || len(e.Args) > maxArgs+1 {
			return typ{}, invalid("IN needs a value and a list of 1 to %d values", maxArgs)
		}
		return c.checkCompareAll(e, "IN", aggOK, inAgg, depth)
	case KindBetween:
		if len(e.Args) != 3 {
			return typ{}, invalid("BETWEEN needs three arguments, got %d", len(e.Args))
		}
		return c.checkCompareAll(e, "BETWEEN", aggOK, inAgg, depth)
	case KindLike:
		if len(e.Args) != 2 {
			return typ{}, invalid("LIKE needs two arguments, got %d", len(e.Args))
		}
		for _, a := range e.Args {
			t, err := c.check(a, aggOK, inAgg, depth+1)
			if err != nil {
				return typ{}, err
			}
			if t.t != "" && t.t != sluice.TypeText {
				return typ{}, invalid("LIKE works on text, got %s", t.t)
			}
		}
		return typ{t: sluice.TypeBoolean}, nil
	case KindCase:
		return c.checkCase(e, aggOK, inAgg, depth)
	case KindWindow:
		return c.checkWindow(e, aggOK, depth)
	}
	return typ{}, invalid("unknown expression kind %q", kindName(e.Kind))
}

func kindName(k ExprKind) string {
	if len(k) > 32 || !utf8.ValidString(string(k)) {
		return "(malformed)"
	}
	return string(k)
}

func checkLiteral(l *Literal) (typ, error) {
	if l == nil {
		return typ{}, invalid("a literal expression has no value")
	}
	switch l.Type {
	case LitInt:
		if _, err := strconv.ParseInt(l.Text, 10, 64); err != nil {
			return typ{}, invalid("integer literal is not a 64-bit integer")
		}
		return typ{t: sluice.TypeInteger}, nil
	case LitFloat:
		f, err := strconv.ParseFloat(l.Text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return typ{}, invalid("float literal is not a finite number")
		}
		return typ{t: sluice.TypeFloat}, nil
	case LitString:
		if !utf8.ValidString(l.Text) || strings.ContainsRune(l.Text, 0) {
			return typ{}, invalid("string literal is not valid UTF-8 text")
		}
		return typ{t: sluice.TypeText, strLit: true}, nil
	case LitBool:
		if l.Text != "true" && l.Text != "false" {
			return typ{}, invalid("boolean literal must be true or false")
		}
		return typ{t: sluice.TypeBoolean}, nil
	case LitNull:
		return typ{}, nil
	}
	return typ{}, invalid("unknown literal type %q", kindName(ExprKind(l.Type)))
}

func binaryType(op string, l, r typ) (typ, error) {
	switch {
	case isArith(op):
		for _, t := range []typ{l, r} {
			if t.t != "" && !isNumeric(t.t) {
				return typ{}, invalid("operator %s needs numbers, got %s", op, t.t)
			}
		}
		if op == "/" {
			return typ{t: sluice.TypeFloat}, nil
		}
		if op == "%" {
			// SQLite truncates non-integer operands of % and the others do
			// not, so only integers give one answer everywhere.
			for _, t := range []typ{l, r} {
				if t.t != "" && t.t != sluice.TypeInteger {
					return typ{}, sluice.Errorf(sluice.ENotSupported, "%% on %s values is not supported yet; use it on integers", t.t)
				}
			}
			return typ{t: sluice.TypeInteger}, nil
		}
		u, _ := unify([]typ{l, r})
		if u.t == "" {
			u.t = sluice.TypeInteger
		}
		return typ{t: u.t}, nil
	case isComparison(op):
		if !comparable(l, r) {
			return typ{}, invalid("cannot compare %s with %s; compare values of the same kind (a masked date is its year, an integer)", typeName(l), typeName(r))
		}
		return typ{t: sluice.TypeBoolean}, nil
	case op == "div":
		// Integer division, truncating toward zero: what / means between
		// two integers in PostgreSQL (7 / 2 is 3).
		for _, t := range []typ{l, r} {
			if t.t != "" && t.t != sluice.TypeInteger {
				return typ{}, invalid("integer division needs integers, got %s", t.t)
			}
		}
		return typ{t: sluice.TypeInteger}, nil
	case op == "||":
		// Text with text only: how a number or date becomes text differs
		// between the dialects (SQLite writes 700.00 as 700).
		for _, t := range []typ{l, r} {
			if t.t != "" && t.t != sluice.TypeText {
				return typ{}, sluice.Errorf(sluice.ENotSupported, "|| joins text; %s || is not supported yet (how a %s becomes text differs between databases)", t.t, t.t)
			}
		}
		return typ{t: sluice.TypeText}, nil
	default: // AND, OR
		for _, t := range []typ{l, r} {
			if t.t != "" && t.t != sluice.TypeBoolean {
				return typ{}, invalid("%s needs conditions on both sides, got %s; write e.g. col = 1", op, t.t)
			}
		}
		return typ{t: sluice.TypeBoolean}, nil
	}
}

func typeName(t typ) string {
	if t.t == "" {
		return "NULL"
	}
	return string(t.t)
}

func (c *checker) checkCompareAll(e *Expr, what string, aggOK, inAgg bool, depth int) (typ, error) {
	first, err := c.check(e.Args[0], aggOK, inAgg, depth+1)
	if err != nil {
		return typ{}, err
	}
	for _, a := range e.Args[1:] {
		t, err := c.check(a, aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		if !comparable(first, t) {
			return typ{}, invalid("%s compares %s with %s; use values of the same kind", what, typeName(first), typeName(t))
		}
	}
	return typ{t: sluice.TypeBoolean}, nil
}

// intLiteral returns the value of e if it is an integer literal.
func intLiteral(e *Expr) (int64, bool) {
	if e == nil || e.Kind != KindLiteral || e.Literal == nil || e.Literal.Type != LitInt {
		return 0, false
	}
	v, err := strconv.ParseInt(e.Literal.Text, 10, 64)
	return v, err == nil
}

func (c *checker) checkFunc(e *Expr, aggOK, inAgg bool, depth int) (typ, error) {
	spec, ok := scalarFuncs[e.Func]
	if !ok {
		return typ{}, sluice.Errorf(sluice.ENotSupported, "function %q is not supported yet; supported: %s", kindName(ExprKind(e.Func)), supportedFuncs)
	}
	if e.Distinct {
		return typ{}, invalid("DISTINCT is only allowed inside an aggregate, not in %s()", e.Func)
	}
	if len(e.Args) < spec.min || len(e.Args) > spec.max {
		if spec.min == spec.max {
			return typ{}, invalid("%s() takes %d argument(s), got %d", e.Func, spec.min, len(e.Args))
		}
		return typ{}, invalid("%s() takes %d to %d arguments, got %d", e.Func, spec.min, spec.max, len(e.Args))
	}
	args := make([]typ, len(e.Args))
	for i, a := range e.Args {
		t, err := c.check(a, aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		args[i] = t
	}
	needText := func() error {
		if args[0].t != "" && args[0].t != sluice.TypeText {
			return invalid("%s() works on text, got %s", e.Func, args[0].t)
		}
		return nil
	}
	needNumber := func() error {
		if args[0].t != "" && !isNumeric(args[0].t) {
			return invalid("%s() works on numbers, got %s", e.Func, args[0].t)
		}
		return nil
	}
	switch e.Func {
	case "lower", "upper", "trim":
		return typ{t: sluice.TypeText}, needText()
	case "length":
		return typ{t: sluice.TypeInteger}, needText()
	case "substr":
		if err := needText(); err != nil {
			return typ{}, err
		}
		// Dialects disagree on a start below 1 and on negative lengths,
		// so only positions that mean the same everywhere are accepted.
		if v, ok := intLiteral(e.Args[1]); !ok || v < 1 || v > math.MaxInt32 {
			return typ{}, sluice.Errorf(sluice.ENotSupported, "substr() start must be an integer constant of at least 1 (other forms are not supported yet)")
		}
		if len(e.Args) == 3 {
			if v, ok := intLiteral(e.Args[2]); !ok || v < 0 || v > math.MaxInt32 {
				return typ{}, sluice.Errorf(sluice.ENotSupported, "substr() length must be a non-negative integer constant (other forms are not supported yet)")
			}
		}
		return typ{t: sluice.TypeText}, nil
	case "abs":
		if err := needNumber(); err != nil {
			return typ{}, err
		}
		if args[0].t == "" {
			return typ{t: sluice.TypeInteger}, nil
		}
		return typ{t: args[0].t}, nil
	case "round":
		if err := needNumber(); err != nil {
			return typ{}, err
		}
		if len(e.Args) == 2 {
			if v, ok := intLiteral(e.Args[1]); !ok || v < 0 || v > 15 {
				return typ{}, sluice.Errorf(sluice.ENotSupported, "round() digits must be an integer constant from 0 to 15 (other forms are not supported yet)")
			}
		}
		if args[0].t == sluice.TypeDecimal {
			return typ{t: sluice.TypeDecimal}, nil
		}
		return typ{t: sluice.TypeFloat}, nil
	case "coalesce":
		u, ok := unify(args)
		if !ok {
			return typ{}, invalid("coalesce() arguments have incompatible types; give it values of one kind")
		}
		return u, nil
	case "to_float":
		if err := needNumber(); err != nil {
			return typ{}, err
		}
		return typ{t: sluice.TypeFloat}, nil
	case "year", "month", "day":
		if c.maskedToYear(e.Args[0]) {
			// A date masked to its year already is the year; its month
			// and day are not released.
			if e.Func != "year" {
				return typ{}, invalid("EXTRACT(%s FROM %s): the column is released masked to its year; its month and day are not released", strings.ToUpper(e.Func), e.Args[0].Column)
			}
			return typ{t: sluice.TypeInteger}, nil
		}
		if args[0].t != "" && !isTemporal(args[0].t) {
			return typ{}, invalid("EXTRACT(%s FROM ...) works on dates and timestamps, got %s (a date masked to its year already is the year)", strings.ToUpper(e.Func), typeName(args[0]))
		}
		return typ{t: sluice.TypeInteger}, nil
	case "trunc_year", "trunc_month":
		unit := strings.TrimPrefix(e.Func, "trunc_")
		if c.maskedToYear(e.Args[0]) {
			return typ{}, invalid("date_trunc('%s', %s): the column is released masked to its year, as the year itself; use EXTRACT(YEAR FROM %s) or the column", unit, e.Args[0].Column, e.Args[0].Column)
		}
		if args[0].t == sluice.TypeTimestamp {
			return typ{}, notSupported("date_trunc('%s', ...) of a timestamp is not supported yet; of a date it is (CAST(x AS DATE) is not: it would drop the time of day silently)", unit)
		}
		if args[0].t != "" && args[0].t != sluice.TypeDate {
			return typ{}, invalid("date_trunc('%s', ...) works on dates, got %s", unit, typeName(args[0]))
		}
		return typ{t: sluice.TypeDate}, nil
	}
	return typ{}, sluice.Errorf(sluice.EInternal, "function %s has no type rule", e.Func)
}

func (c *checker) checkAggregate(e *Expr, aggOK, inAgg bool, depth int) (typ, error) {
	if !aggregateFuncs[e.Func] {
		return typ{}, sluice.Errorf(sluice.ENotSupported, "aggregate %q is not supported yet; supported: count, sum, avg, min, max", kindName(ExprKind(e.Func)))
	}
	if inAgg {
		return typ{}, invalid("aggregates cannot be nested: %s() inside another aggregate", e.Func)
	}
	if !aggOK {
		return typ{}, invalid("aggregate %s() is not allowed here; aggregates belong in the select list, HAVING or ORDER BY of a grouped query (filter groups with HAVING, not WHERE)", e.Func)
	}
	if len(e.Args) != 1 {
		return typ{}, sluice.Errorf(sluice.ENotSupported, "%s() takes exactly one argument", e.Func)
	}
	if e.Args[0] != nil && e.Args[0].Kind == KindStar {
		if e.Func != "count" || e.Distinct {
			return typ{}, invalid("* is only allowed as COUNT(*)")
		}
		if len(e.Args[0].Args) != 0 || e.Args[0].Literal != nil {
			return typ{}, invalid("a star expression takes no arguments")
		}
		return typ{t: sluice.TypeInteger}, nil
	}
	a, err := c.check(e.Args[0], false, true, depth+1)
	if err != nil {
		return typ{}, err
	}
	switch e.Func {
	case "count":
		return typ{t: sluice.TypeInteger}, nil
	case "sum":
		if a.t != "" && !isNumeric(a.t) {
			return typ{}, invalid("sum() works on numbers, got %s", a.t)
		}
		if a.t == "" {
			return typ{t: sluice.TypeInteger}, nil
		}
		return typ{t: a.t}, nil
	case "avg":
		if a.t != "" && !isNumeric(a.t) {
			return typ{}, invalid("avg() works on numbers, got %s", a.t)
		}
		return typ{t: sluice.TypeFloat}, nil
	default: // min, max
		if a.t == sluice.TypeBoolean {
			return typ{}, sluice.Errorf(sluice.ENotSupported, "%s() of a condition is not supported yet", e.Func)
		}
		if a.t == "" {
			return typ{t: sluice.TypeText}, nil
		}
		return typ{t: a.t}, nil
	}
}

func (c *checker) checkCase(e *Expr, aggOK, inAgg bool, depth int) (typ, error) {
	n := len(e.Args)
	start := 0
	if e.HasOperand {
		start = 1
	}
	end := n
	if e.HasElse {
		end = n - 1
	}
	if end-start < 2 || (end-start)%2 != 0 {
		return typ{}, invalid("CASE needs at least one WHEN ... THEN pair")
	}
	var operand typ
	if e.HasOperand {
		t, err := c.check(e.Args[0], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		operand = t
	}
	var results []typ
	for i := start; i < end; i += 2 {
		w, err := c.check(e.Args[i], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		if e.HasOperand {
			if !comparable(operand, w) {
				return typ{}, invalid("CASE compares %s with %s; use values of the same kind", typeName(operand), typeName(w))
			}
		} else if w.t != "" && w.t != sluice.TypeBoolean {
			return typ{}, invalid("CASE WHEN needs a condition, got %s; write e.g. WHEN col = 1", w.t)
		}
		t, err := c.check(e.Args[i+1], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		results = append(results, t)
	}
	if e.HasElse {
		t, err := c.check(e.Args[n-1], aggOK, inAgg, depth+1)
		if err != nil {
			return typ{}, err
		}
		results = append(results, t)
	}
	u, ok := unify(results)
	if !ok {
		return typ{}, invalid("CASE results have incompatible types; make every THEN and ELSE the same kind of value")
	}
	return u, nil
}

// OutputFields returns the fragment's output columns and their logical
// types, given f.Masks: a masked column has its mask's type.
func OutputFields(f *Fragment, ds *sluice.Dataset) ([]Field, error) {
	if f == nil || ds == nil {
		return nil, invalid("no fragment or dataset to type")
	}
	c := &checker{ds: ds, masks: f.Masks}
	out := make([]Field, 0, len(f.Select))
	for i, it := range f.Select {
		t, err := c.check(it.Expr, true, false, 0)
		if err != nil {
			return nil, err
		}
		if t.t == "" {
			// A bare NULL has no type of its own; text is what every
			// client can show.
			t.t = sluice.TypeText
		}
		name := it.Alias
		if name == "" {
			name = "col_" + strconv.Itoa(i+1)
		}
		out = append(out, Field{Name: name, Type: t.t})
	}
	return out, nil
}

// windowFuncs are the window functions planned: ranking functions without
// arguments and the aggregates over the window.
var windowFuncs = map[string]int{"row_number": 0, "rank": 0, "dense_rank": 0, "count": 1, "sum": 1, "avg": 1, "min": 1, "max": 1}

// checkWindow types a window function; in a grouped query (aggOK) its
// arguments and keys may be aggregates, computed over the groups.
func (c *checker) checkWindow(e *Expr, aggOK bool, depth int) (typ, error) {
	if !c.windows {
		return typ{}, invalid("a window function may appear only in the select list or ORDER BY of a query")
	}
	nargs, ok := windowFuncs[e.Func]
	if !ok || e.NArgs != nargs || e.NArgs+e.NPart > len(e.Args) || len(e.Desc) != len(e.Args)-e.NArgs-e.NPart {
		return typ{}, invalid("malformed window function %q", kindName(ExprKind(e.Func)))
	}
	var arg typ
	for i, a := range e.Args {
		if a.Kind == KindStar && i == 0 && e.Func == "count" {
			continue
		}
		t, err := c.check(a, aggOK, false, depth+1)
		if err != nil {
			return typ{}, err
		}
		if i == 0 {
			arg = t
		}
	}
	t, err := c.windowType(e.Func, arg.t)
	return typ{t: t}, err
}

// windowType is the type of window function fn over an argument of type
// arg ("" when unknown or none).
func (c *checker) windowType(fn string, arg sluice.ColumnType) (sluice.ColumnType, error) {
	switch fn {
	case "row_number", "rank", "dense_rank", "count":
		return sluice.TypeInteger, nil
	case "sum":
		if arg != "" && !isNumeric(arg) {
			return "", invalid("sum() works on numbers, got %s", arg)
		}
		if arg == "" {
			return sluice.TypeInteger, nil
		}
		return arg, nil
	case "avg":
		if arg != "" && !isNumeric(arg) {
			return "", invalid("avg() works on numbers, got %s", arg)
		}
		return sluice.TypeFloat, nil
	}
	return arg, nil
}
