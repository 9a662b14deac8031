package planner

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	sluice "github.com/sluice-gov/sluice"
)

// The expressions and aggregates of RenderDuckDB: a type checker that
// mirrors the expression compiler of the sandbox it replaced and writes
// each expression with its operands cast to the sandbox's computation
// types.

// duckScope is what an expression's columns refer to: the input columns,
// and the SQL reading column i.
type duckScope struct {
	cols []dcol
	ref  func(i int) string
}

// dx is a compiled expression.
type dx struct {
	kind ExprKind
	t    dtype
	sql  string // its SQL at type t (not for literals)
	col  int    // KindColumn: the input column
	lit  *duckLit
}

// duckLit is a literal of the query, rendered as a bind parameter when it
// is first used.
type duckLit struct {
	t dtype
	i int64 // dInt; dDate and dTS: microseconds since the epoch
	f float64
	s string
	b bool
	// midnight: a date literal at 00:00 (one with a time of day is
	// compared as a timestamp).
	midnight bool
	raw      bool // a string literal as written (may become a date)
	ph       string
}

func duckLiteral(l *Literal) (*duckLit, error) {
	if l == nil {
		return nil, invalid("a literal expression has no value")
	}
	switch l.Type {
	case LitInt:
		x, err := strconv.ParseInt(l.Text, 10, 64)
		if err != nil {
			return nil, invalid("integer literal is not a 64-bit integer")
		}
		return &duckLit{t: dInt, i: x}, nil
	case LitFloat:
		f, err := strconv.ParseFloat(l.Text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalid("float literal is not a finite number")
		}
		return &duckLit{t: dFloat, f: f}, nil
	case LitString:
		if !utf8.ValidString(l.Text) {
			return nil, invalid("string literal is not valid UTF-8 text")
		}
		return &duckLit{t: dStr, s: l.Text, raw: true}, nil
	case LitBool:
		switch l.Text {
		case "true":
			return &duckLit{t: dBool, b: true}, nil
		case "false":
			return &duckLit{t: dBool, b: false}, nil
		}
		return nil, invalid("boolean literal must be true or false")
	case LitNull:
		return &duckLit{t: dNull}, nil
	}
	return nil, invalid("unknown literal type")
}

// litSQL renders l at its own type, allocating its parameter once.
func (r *duckRenderer) litSQL(l *duckLit) string {
	if l.t == dNull {
		return "NULL"
	}
	if l.ph == "" {
		switch l.t {
		case dInt, dDate, dTS:
			l.ph = r.param(l.i)
		case dFloat:
			l.ph = r.param(l.f)
		case dStr:
			l.ph = r.param(l.s)
		case dBool:
			l.ph = r.param(l.b)
		}
	}
	switch l.t {
	case dDate:
		return "CAST(make_timestamp(CAST(" + l.ph + " AS BIGINT)) AS DATE)"
	case dTS:
		return "make_timestamp(CAST(" + l.ph + " AS BIGINT))"
	}
	return "CAST(" + l.ph + " AS " + l.t.sqlType() + ")"
}

// sql renders x at its own type.
func (r *duckRenderer) sql(x *dx) string {
	if x.lit != nil {
		return r.litSQL(x.lit)
	}
	return x.sql
}

// cast renders x converted to type to, which must be reachable by the
// sandbox's widening (castVec).
func (r *duckRenderer) cast(x *dx, to dtype) string {
	if x.lit != nil && x.lit.t == dDate && to == dTS {
		// The literal's instant (a date literal keeps its time of day).
		l := &duckLit{t: dTS, i: x.lit.i}
		return r.litSQL(l)
	}
	return castSQL(r.sql(x), x.t, to)
}

// castSQL converts sql of type from to type to.
func castSQL(sql string, from, to dtype) string {
	switch {
	case from == to:
		return sql
	case from == dNull:
		return "CAST(" + sql + " AS " + to.sqlType() + ")"
	case from == dDec && to == dFloat:
		return decToFloat(sql)
	case from == dStr && to == dBin:
		// Not a cast: a VARCHAR → BLOB cast would read \x escapes.
		return "encode(" + sql + ")"
	}
	return "CAST(" + sql + " AS " + to.sqlType() + ")"
}

// duckTimeLayouts are the time layouts the sandbox accepted.
var duckTimeLayouts = []string{
	"2006-01-02",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05.999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05.999999",
	time.RFC3339Nano,
}

// temporalLit turns a string literal compared with a date or timestamp
// into that type (UTC when no zone is written), as the sandbox does: a
// date keeps the literal's milliseconds.
func temporalLit(l *duckLit, t dtype) (*duckLit, error) {
	for _, layout := range duckTimeLayouts {
		tm, err := time.ParseInLocation(layout, strings.TrimSpace(l.s), time.UTC)
		if err != nil {
			continue
		}
		if t == dDate {
			ms := tm.UnixMilli()
			return &duckLit{t: dDate, i: ms * 1000, midnight: ms%86400000 == 0}, nil
		}
		return &duckLit{t: dTS, i: tm.UnixMicro()}, nil
	}
	return nil, invalid("%q is not a date or timestamp; write it as 'YYYY-MM-DD' or 'YYYY-MM-DD hh:mm:ss'", clip(l.s))
}

func isDuckStrLit(x *dx) bool { return x.lit != nil && x.lit.raw && x.lit.t == dStr }

// comparisonType is the type the operands are compared at (the sandbox's
// comparisonType), converting string literals compared with dates. A
// date comparison with a literal that has a time of day is made at
// timestamp, which orders the same.
func (r *duckRenderer) comparisonType(args []*dx) (dtype, error) {
	ts := make([]dtype, len(args))
	var temporal dtype
	for i, a := range args {
		ts[i] = a.t
		if a.t.temporal() && (temporal == 0 || a.t == dTS) {
			temporal = a.t
		}
	}
	promote := false
	if temporal != 0 {
		for i, a := range args {
			if isDuckStrLit(a) {
				l, err := temporalLit(a.lit, temporal)
				if err != nil {
					return 0, err
				}
				args[i] = &dx{kind: KindLiteral, t: l.t, lit: l}
				ts[i] = l.t
				if l.t == dDate && !l.midnight {
					promote = true
				}
			}
		}
	}
	t, ok := duckUnify(ts...)
	if !ok {
		names := make([]string, len(ts))
		for i, x := range ts {
			names[i] = x.String()
		}
		return 0, invalid("cannot compare %s; compare values of the same kind", strings.Join(names, " with "))
	}
	if t == dDate && promote {
		t = dTS
	}
	return t, nil
}

const duckNullBool = "CAST(NULL AS BOOLEAN)"

// duckMaxExprSQL bounds the text of one rendered expression. Some
// renderings repeat an operand (%, substr, upper, a decimal made a
// float, CASE with an operand), so nesting them multiplies the text: the
// bound stops that long before it matters.
const duckMaxExprSQL = 1 << 20

func (r *duckRenderer) compile(sc *duckScope, e *Expr, depth int) (*dx, error) {
	x, err := r.compileExpr(sc, e, depth)
	if err == nil && len(x.sql) > duckMaxExprSQL {
		return nil, sluice.Errorf(sluice.ENotSupported, "an expression of this query is too large to run in the sandbox; simplify it")
	}
	return x, err
}

func (r *duckRenderer) compileExpr(sc *duckScope, e *Expr, depth int) (*dx, error) {
	if e == nil {
		return nil, invalid("the sandbox got an empty expression")
	}
	if depth > maxExprDepth {
		return nil, invalid("expression is nested more than %d levels deep; simplify the query", maxExprDepth)
	}
	switch e.Kind {
	case KindColumn:
		i, err := resolveDuck(sc.cols, e.Column)
		if err != nil {
			return nil, err
		}
		return &dx{kind: KindColumn, t: sc.cols[i].t, sql: sc.ref(i), col: i}, nil
	case KindLiteral:
		l, err := duckLiteral(e.Literal)
		if err != nil {
			return nil, err
		}
		return &dx{kind: KindLiteral, t: l.t, lit: l}, nil
	case KindStar:
		return nil, invalid("* may appear only as COUNT(*)")
	case KindAggregate:
		return nil, sluice.Errorf(sluice.ENotSupported, "aggregate %s() cannot be evaluated row by row; aggregate in GROUP BY", clip(strings.ToLower(e.Func)))
	}
	args := make([]*dx, len(e.Args))
	for i, a := range e.Args {
		x, err := r.compile(sc, a, depth+1)
		if err != nil {
			return nil, err
		}
		args[i] = x
	}
	out := &dx{kind: e.Kind}
	switch e.Kind {
	case KindUnary:
		if len(args) != 1 {
			return nil, invalid("unary %s needs one argument", clip(e.Op))
		}
		a := args[0]
		switch strings.ToUpper(e.Op) {
		case "-":
			if a.t != dNull && !a.t.numeric() {
				return nil, invalid("unary minus needs a number, got %s", a.t)
			}
			out.t = a.t
			if out.t == dNull {
				out.t = dInt
			}
			out.sql = "(-" + r.cast(a, out.t) + ")"
		case "NOT":
			if a.t != dNull && a.t != dBool {
				return nil, invalid("NOT needs a condition, got %s", a.t)
			}
			out.t = dBool
			out.sql = "(NOT " + r.cast(a, dBool) + ")"
		default:
			return nil, invalid("unknown unary operator %q", clip(e.Op))
		}
		return out, nil
	case KindBinary:
		if len(args) != 2 {
			return nil, invalid("operator %s needs two arguments", clip(e.Op))
		}
		return r.binary(strings.ToUpper(e.Op), args[0], args[1])
	case KindIsNull:
		if len(args) != 1 {
			return nil, invalid("IS NULL needs one argument")
		}
		out.t = dBool
		if e.Negate {
			out.sql = "(" + r.sql(args[0]) + " IS NOT NULL)"
		} else {
			out.sql = "(" + r.sql(args[0]) + " IS NULL)"
		}
		return out, nil
	case KindIn, KindBetween:
		if e.Kind == KindIn && len(args) < 2 {
			return nil, invalid("IN needs a value and a list")
		}
		if e.Kind == KindBetween && len(args) != 3 {
			return nil, invalid("BETWEEN needs three arguments")
		}
		ct, err := r.comparisonType(args)
		if err != nil {
			return nil, err
		}
		out.t = dBool
		if ct == dNull {
			out.sql = duckNullBool
			return out, nil
		}
		not := ""
		if e.Negate {
			not = "NOT "
		}
		if e.Kind == KindBetween {
			out.sql = "(" + r.cast(args[0], ct) + " " + not + "BETWEEN " + r.cast(args[1], ct) + " AND " + r.cast(args[2], ct) + ")"
			return out, nil
		}
		items := make([]string, len(args)-1)
		for i, a := range args[1:] {
			items[i] = r.cast(a, ct)
		}
		out.sql = "(" + r.cast(args[0], ct) + " " + not + "IN (" + strings.Join(items, ", ") + "))"
		return out, nil
	case KindLike:
		if len(args) != 2 {
			return nil, invalid("LIKE needs two arguments")
		}
		for _, a := range args {
			if a.t != dNull && a.t != dStr {
				return nil, invalid("LIKE works on text, got %s", a.t)
			}
		}
		out.t = dBool
		if args[0].t == dNull || args[1].t == dNull {
			out.sql = duckNullBool
			return out, nil
		}
		var pat string
		if isDuckStrLit(args[1]) {
			pat = r.litSQL(&duckLit{t: dStr, s: duckLikePattern(args[1].lit.s)})
		} else {
			// A trailing lone backslash is a literal backslash in the
			// sandbox and an error in DuckDB: double it.
			p := r.sql(args[1])
			pat = "(CASE WHEN regexp_matches(" + p + ", " + duckString(`(^|[^\\])(\\\\)*\\$`) + ") THEN " + p + " || " + duckString(`\`) + " ELSE " + p + " END)"
		}
		not := ""
		if e.Negate {
			not = "NOT "
		}
		out.sql = "(" + r.sql(args[0]) + " " + not + "LIKE " + pat + " ESCAPE " + duckString(`\`) + ")"
		return out, nil
	case KindCase:
		return r.caseExpr(e, args)
	case KindFunc:
		return r.function(strings.ToLower(e.Func), args)
	}
	return nil, invalid("unknown expression kind %q", clip(string(e.Kind)))
}

// duckLikePattern rewrites a sandbox LIKE pattern (backslash escapes the
// next character; a trailing backslash is literal) for ESCAPE '\'.
func duckLikePattern(p string) string {
	var b strings.Builder
	esc := false
	lit := func(c rune) {
		if c == '%' || c == '_' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	for _, c := range p {
		switch {
		case esc:
			lit(c)
			esc = false
		case c == '\\':
			esc = true
		default:
			b.WriteRune(c)
		}
	}
	if esc {
		lit('\\')
	}
	return b.String()
}

func (r *duckRenderer) binary(op string, a, b *dx) (*dx, error) {
	out := &dx{kind: KindBinary}
	switch op {
	case "+", "-", "*", "/", "%":
		for _, x := range []*dx{a, b} {
			if x.t != dNull && !x.t.numeric() {
				return nil, invalid("operator %s needs numbers, got %s", op, x.t)
			}
		}
		switch op {
		case "/":
			// Always float; NULL on a zero divisor.
			out.t = dFloat
			out.sql = "(" + r.cast(a, dFloat) + " / NULLIF(" + r.cast(b, dFloat) + ", 0))"
			return out, nil
		case "%":
			for _, x := range []*dx{a, b} {
				if x.t != dNull && x.t != dInt {
					return nil, sluice.Errorf(sluice.ENotSupported, "%% on %s values is not supported; use it on integers", x.t)
				}
			}
			out.t = dInt
			x, y := r.cast(a, dInt), r.cast(b, dInt)
			// NULL on zero; x % -1 is 0 (DuckDB overflows on MIN % -1).
			out.sql = "(CASE WHEN " + y + " = -1 THEN " + x + " * 0 ELSE " + x + " % NULLIF(" + y + ", 0) END)"
			return out, nil
		}
		t, _ := duckUnify(a.t, b.t)
		if t == dNull {
			t = dInt
		}
		out.t = t
		if t == dDec && op == "*" {
			// An integer times a decimal stays at scale 4 (exact); a
			// decimal times a decimal is exact at scale 8, rounded half
			// away from zero to scale 4.
			switch {
			case a.t == dInt:
				out.sql = "(" + r.cast(b, dDec) + " * " + r.sql(a) + ")"
			case b.t == dInt:
				out.sql = "(" + r.cast(a, dDec) + " * " + r.sql(b) + ")"
			default:
				out.sql = "CAST((" + r.cast(a, dDec) + " * " + r.cast(b, dDec) + ") AS DECIMAL(38,4))"
			}
			return out, nil
		}
		out.sql = "(" + r.cast(a, t) + " " + op + " " + r.cast(b, t) + ")"
		return out, nil
	case "DIV":
		for _, x := range []*dx{a, b} {
			if x.t != dNull && x.t != dInt {
				return nil, invalid("integer division needs integers, got %s", x.t)
			}
		}
		out.t = dInt
		// DuckDB's // truncates toward zero, as PostgreSQL's / on integers.
		out.sql = "(" + r.cast(a, dInt) + " // NULLIF(" + r.cast(b, dInt) + ", 0))"
		return out, nil
	case "||":
		for _, x := range []*dx{a, b} {
			if x.t != dNull && x.t != dStr {
				return nil, invalid("|| joins text, got %s", x.t)
			}
		}
		out.t = dStr
		out.sql = "(" + r.cast(a, dStr) + " || " + r.cast(b, dStr) + ")"
		return out, nil
	case "=", "<>", "!=", "<", "<=", ">", ">=":
		if op == "!=" {
			op = "<>"
		}
		args := []*dx{a, b}
		ct, err := r.comparisonType(args)
		if err != nil {
			return nil, err
		}
		out.t = dBool
		if ct == dNull {
			out.sql = duckNullBool
			return out, nil
		}
		out.sql = "(" + r.cast(args[0], ct) + " " + op + " " + r.cast(args[1], ct) + ")"
		return out, nil
	case "AND", "OR":
		for _, x := range []*dx{a, b} {
			if x.t != dNull && x.t != dBool {
				return nil, invalid("%s needs conditions on both sides, got %s", op, x.t)
			}
		}
		out.t = dBool
		out.sql = "(" + r.cast(a, dBool) + " " + op + " " + r.cast(b, dBool) + ")"
		return out, nil
	}
	return nil, invalid("unknown binary operator %q", clip(op))
}

func (r *duckRenderer) caseExpr(e *Expr, args []*dx) (*dx, error) {
	k := len(args)
	start, end := 0, k
	if e.HasOperand {
		start = 1
	}
	if e.HasElse {
		end = k - 1
	}
	if end-start < 2 || (end-start)%2 != 0 {
		return nil, invalid("CASE needs at least one WHEN ... THEN pair")
	}
	var ct dtype
	if e.HasOperand {
		ops := []*dx{args[0]}
		for i := start; i < end; i += 2 {
			ops = append(ops, args[i])
		}
		t, err := r.comparisonType(ops)
		if err != nil {
			return nil, err
		}
		ct = t
		args[0] = ops[0]
		for j, i := 1, start; i < end; i, j = i+2, j+1 {
			args[i] = ops[j]
		}
	} else {
		for i := start; i < end; i += 2 {
			if t := args[i].t; t != dNull && t != dBool {
				return nil, invalid("CASE WHEN needs a condition, got %s", t)
			}
		}
	}
	var rs []dtype
	for i := start + 1; i < end; i += 2 {
		rs = append(rs, args[i].t)
	}
	if e.HasElse {
		rs = append(rs, args[k-1].t)
	}
	t, ok := duckUnify(rs...)
	if !ok {
		return nil, invalid("CASE results have incompatible types; make every THEN and ELSE the same kind of value")
	}
	var b strings.Builder
	b.WriteString("(CASE")
	for i := start; i < end; i += 2 {
		cond := ""
		switch {
		case !e.HasOperand:
			cond = r.cast(args[i], dBool)
		case ct == dNull:
			cond = duckNullBool
		default:
			cond = r.cast(args[0], ct) + " = " + r.cast(args[i], ct)
		}
		b.WriteString(" WHEN " + cond + " THEN " + r.cast(args[i+1], t))
	}
	if e.HasElse {
		b.WriteString(" ELSE " + r.cast(args[k-1], t))
	}
	b.WriteString(" END)")
	return &dx{kind: KindCase, t: t, sql: b.String()}, nil
}

// duckMaxPos is the largest string position DuckDB's substring takes.
const duckMaxPos = "4294967295"

func (r *duckRenderer) function(fn string, a []*dx) (*dx, error) {
	argc := func(lo, hi int) error {
		if len(a) < lo || len(a) > hi {
			return invalid("%s() takes %d to %d arguments, got %d", clip(fn), lo, hi, len(a))
		}
		return nil
	}
	needText := func() error {
		if a[0].t != dNull && a[0].t != dStr {
			return invalid("%s() works on text, got %s", fn, a[0].t)
		}
		return nil
	}
	needNum := func() error {
		if a[0].t != dNull && !a[0].t.numeric() {
			return invalid("%s() works on numbers, got %s", fn, a[0].t)
		}
		return nil
	}
	out := &dx{kind: KindFunc}
	nullOf := func(t dtype) *dx {
		out.t, out.sql = t, "CAST(NULL AS "+t.sqlType()+")"
		return out
	}
	switch fn {
	case "lower", "upper", "trim", "length":
		if err := argc(1, 1); err != nil {
			return nil, err
		}
		if err := needText(); err != nil {
			return nil, err
		}
		out.t = dStr
		if fn == "length" {
			out.t = dInt
		}
		if a[0].t == dNull {
			return nullOf(out.t), nil
		}
		s := r.sql(a[0])
		switch fn {
		case "trim":
			// The sandbox trims spaces only.
			out.sql = "trim(" + s + ", ' ')"
		case "upper":
			// Go's upper case of every character is DuckDB's but for ß,
			// which Go keeps and DuckDB makes ẞ: upper the text between
			// the ß.
			out.sql = "(CASE WHEN contains(" + s + ", 'ß') THEN array_to_string(list_transform(string_split(" + s + ", 'ß'), lambda p: upper(p)), 'ß') ELSE upper(" + s + ") END)"
		default:
			out.sql = fn + "(" + s + ")"
		}
		return out, nil
	case "substr":
		if err := argc(2, 3); err != nil {
			return nil, err
		}
		if err := needText(); err != nil {
			return nil, err
		}
		for _, x := range a[1:] {
			if x.t != dInt && x.t != dNull {
				return nil, invalid("substr() positions must be integers, got %s", x.t)
			}
		}
		for _, x := range a {
			if x.t == dNull {
				return nullOf(dStr), nil
			}
		}
		s, st := r.sql(a[0]), r.sql(a[1])
		// DuckDB's least and greatest skip NULLs: a NULL position is
		// tested first. Positions are clamped to DuckDB's 2^32-1 (no
		// string is longer), arithmetic on them is in HUGEINT (DuckDB
		// folds constant branches not taken, overflow included).
		from := "least(greatest(" + st + ", 1), " + duckMaxPos + ")"
		out.t = dStr
		if len(a) == 2 {
			out.sql = "(CASE WHEN " + st + " IS NULL THEN NULL ELSE substring(" + s + ", " + from + ") END)"
			return out, nil
		}
		ln := r.sql(a[2])
		// A negative length means to the end; a start below 1 shortens
		// the length by the positions before 1 (with the sandbox's int64
		// wrap-around at the very lowest start, which keeps everything).
		out.sql = "(CASE WHEN " + st + " IS NULL OR " + ln + " IS NULL THEN NULL" +
			" WHEN " + ln + " < 0 THEN substring(" + s + ", " + from + ")" +
			" WHEN " + st + " = (-9223372036854775807 - 1) THEN " + s +
			" WHEN " + st + " < 1 THEN substring(" + s + ", 1, CAST(least(greatest(CAST(" + ln + " AS HUGEINT) + " + st + " - 1, 0), " + duckMaxPos + ") AS BIGINT))" +
			" ELSE substring(" + s + ", " + from + ", least(" + ln + ", " + duckMaxPos + ")) END)"
		return out, nil
	case "abs":
		if err := argc(1, 1); err != nil {
			return nil, err
		}
		if err := needNum(); err != nil {
			return nil, err
		}
		out.t = a[0].t
		if out.t == dNull {
			return nullOf(dInt), nil
		}
		out.sql = "abs(" + r.sql(a[0]) + ")"
		return out, nil
	case "round":
		if err := argc(1, 2); err != nil {
			return nil, err
		}
		if err := needNum(); err != nil {
			return nil, err
		}
		var digits int64
		if len(a) == 2 {
			l := a[1].lit
			if l == nil || l.t != dInt || l.i < 0 || l.i > 15 {
				return nil, sluice.Errorf(sluice.ENotSupported, "round() digits must be an integer constant from 0 to 15")
			}
			digits = l.i
		}
		// DuckDB takes the digits only as a constant: a checked integer
		// from 0 to 15, written by the renderer.
		d := strconv.FormatInt(digits, 10)
		if a[0].t == dDec {
			out.t = dDec
			out.sql = "CAST(round(" + r.sql(a[0]) + ", " + d + ") AS DECIMAL(38,4))"
			return out, nil
		}
		if a[0].t == dNull {
			return nullOf(dFloat), nil
		}
		out.t = dFloat
		out.sql = "round(" + r.cast(a[0], dFloat) + ", " + d + ")"
		return out, nil
	case "coalesce":
		if err := argc(1, 1<<20); err != nil {
			return nil, err
		}
		ts := make([]dtype, len(a))
		for i, x := range a {
			ts[i] = x.t
		}
		t, ok := duckUnify(ts...)
		if !ok {
			return nil, invalid("coalesce() arguments have incompatible types; give it values of one kind")
		}
		if t == dNull {
			out.t, out.sql = dNull, "NULL"
			return out, nil
		}
		parts := make([]string, len(a))
		for i, x := range a {
			parts[i] = r.cast(x, t)
		}
		out.t = t
		out.sql = "coalesce(" + strings.Join(parts, ", ") + ")"
		return out, nil
	case "to_float":
		if err := argc(1, 1); err != nil {
			return nil, err
		}
		if err := needNum(); err != nil {
			return nil, err
		}
		if a[0].t == dNull {
			return nullOf(dFloat), nil
		}
		out.t = dFloat
		out.sql = r.cast(a[0], dFloat)
		return out, nil
	case "year", "month", "day":
		if err := argc(1, 1); err != nil {
			return nil, err
		}
		if fn == "year" && a[0].t == dInt {
			// A date masked to its year at its source arrives as the
			// year.
			return a[0], nil
		}
		if a[0].t != dNull && !a[0].t.temporal() {
			return nil, invalid("%s() works on dates and timestamps, got %s", fn, a[0].t)
		}
		if a[0].t == dNull {
			return nullOf(dInt), nil
		}
		out.t = dInt
		out.sql = "CAST(" + fn + "(" + r.sql(a[0]) + ") AS BIGINT)"
		return out, nil
	case "trunc_year", "trunc_month":
		if err := argc(1, 1); err != nil {
			return nil, err
		}
		if a[0].t == dNull {
			return nullOf(dDate), nil
		}
		if a[0].t != dDate {
			return nil, invalid("date_trunc works on dates, got %s", a[0].t)
		}
		out.t = dDate
		out.sql = "CAST(date_trunc('" + strings.TrimPrefix(fn, "trunc_") + "', " + r.sql(a[0]) + ") AS DATE)"
		return out, nil
	}
	return nil, sluice.Errorf(sluice.ENotSupported, "function %q is not supported in the sandbox", clip(fn))
}

// ---- aggregation ----

func (r *duckRenderer) aggregate(n *Node, in *drel) (*drel, error) {
	out := &drel{}
	names := map[string]bool{}
	addName := func(name string) error {
		k := strings.ToLower(name)
		if names[k] {
			return invalid("the aggregation names column %q twice; give each column its own alias", clip(name))
		}
		names[k] = true
		return nil
	}
	var sel, group []string
	for _, g := range n.GroupBy {
		i, err := resolveDuck(in.cols, g)
		if err != nil {
			return nil, err
		}
		c := in.cols[i]
		if err := addName(c.name); err != nil {
			return nil, err
		}
		group = append(group, "t."+duckCol(i))
		sel = append(sel, "t."+duckCol(i)+" AS "+duckCol(len(out.cols)))
		out.cols = append(out.cols, c)
	}
	for _, ag := range n.Aggs {
		fn := strings.ToLower(ag.Func)
		col, t := "", dNull
		inName := ""
		if fn != "count_star" {
			i, err := resolveDuck(in.cols, ag.Column)
			if err != nil {
				return nil, err
			}
			col, t, inName = "t."+duckCol(i), in.cols[i].t, in.cols[i].name
		}
		var sql string
		var ot dtype
		switch fn {
		case "count_star":
			sql, ot = "count(*)", dInt
		case "count":
			sql, ot = "count("+col+")", dInt
		case "count_distinct":
			sql, ot = "count(DISTINCT "+col+")", dInt
		case "sum", "avg":
			if t != dNull && !t.numeric() {
				return nil, invalid("%s() works on numbers, got %s (column %q)", fn, t, clip(ag.Column))
			}
			if t == dNull {
				col, t = castSQL(col, dNull, dInt), dInt
			}
			if fn == "sum" {
				ot = t
				switch t {
				case dInt:
					// Exact in HUGEINT; beyond BIGINT is an error.
					sql = "CAST(sum(" + col + ") AS BIGINT)"
				case dDec:
					sql = "CAST(sum(" + col + ") AS DECIMAL(38,4))"
				default:
					sql = "sum(" + col + ")"
				}
				break
			}
			// The sandbox's AVG: the exact sum as a double over the count.
			ot = dFloat
			cnt := "CAST(count(" + col + ") AS DOUBLE)"
			switch t {
			case dInt:
				sql = "(CAST(sum(" + col + ") AS DOUBLE) / " + cnt + ")"
			case dDec:
				sql = "(" + decToFloat("CAST(sum("+col+") AS DECIMAL(38,4))") + " / " + cnt + ")"
			default:
				sql = "(sum(" + col + ") / " + cnt + ")"
			}
		case "min", "max":
			ot = t
			sql = fn + "(" + col + ")"
			if t == dNull {
				// The sandbox emits an all-NULL aggregate as text.
				ot, sql = dStr, "CAST(NULL AS VARCHAR)"
			}
		case "units":
			if t != dBin {
				return nil, invalid("units() collects binary pseudonyms, got %s (column %q)", t, clip(ag.Column))
			}
			// The concatenation of the group's non-NULL 8-byte pseudonyms
			// (duplicates kept), '' for none.
			ot = dBin
			checked := "CASE WHEN octet_length(" + col + ") <> 8 THEN error(" + duckString(duckUnitsMessage) + ") ELSE " + col + " END"
			sql = "coalesce(unhex(string_agg(hex(" + checked + "), '')), CAST('' AS BLOB))"
		default:
			return nil, sluice.Errorf(sluice.ENotSupported, "aggregate %q is not supported; use count, count_star, count_distinct, sum, avg, min or max", clip(ag.Func))
		}
		name := ag.Alias
		if name == "" {
			name = fn
			if inName != "" {
				name += "_" + inName
			}
		}
		if err := addName(name); err != nil {
			return nil, err
		}
		sel = append(sel, sql+" AS "+duckCol(len(out.cols)))
		out.cols = append(out.cols, dcol{name: name, t: ot})
	}
	if len(sel) == 0 {
		return nil, sluice.Errorf(sluice.ENotSupported, "an aggregation without groups or aggregates is not supported yet")
	}
	out.sql = "SELECT " + strings.Join(sel, ", ") + " FROM (" + in.sql + ") AS t"
	if len(group) > 0 {
		out.sql += " GROUP BY " + strings.Join(group, ", ")
	}
	return out, nil
}
