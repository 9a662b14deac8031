package sandbox

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

const maxExprDepth = 128

// node is a planner.Expr compiled against an input schema: column names
// are resolved to indexes and every node knows its result type.
type node struct {
	kind   planner.ExprKind
	t      vtype
	op     string
	fn     string
	col    int
	lit    *vec // a one-row constant for literals
	args   []*node
	negate bool
	// cmpT is the type operands are compared at (comparison, IN, BETWEEN,
	// CASE with operand).
	cmpT    vtype
	like    *likePattern // a constant LIKE pattern
	operand bool
	hasElse bool
	digits  int64 // round()
}

// resolveColumn finds a column by name: exact match first, then a unique
// case-insensitive match.
func resolveColumn(sc *arrow.Schema, name string) (int, error) {
	idx := sc.FieldIndices(name)
	if len(idx) == 1 {
		return idx[0], nil
	}
	if len(idx) > 1 {
		return 0, invalidf("column %q is ambiguous: the input has it %d times", name, len(idx))
	}
	found := -1
	for i, f := range sc.Fields() {
		if strings.EqualFold(f.Name, name) {
			if found >= 0 {
				return 0, invalidf("column %q is ambiguous: it matches %q and %q", name, sc.Field(found).Name, f.Name)
			}
			found = i
		}
	}
	if found < 0 {
		return 0, invalidf("the sandbox input has no column %q", name)
	}
	return found, nil
}

type compiler struct {
	sc *arrow.Schema
}

func compileExpr(sc *arrow.Schema, e *planner.Expr) (*node, error) {
	c := &compiler{sc: sc}
	return c.compile(e, 0)
}

func literalVec(l *planner.Literal) (*vec, error) {
	if l == nil {
		return nil, invalidf("a literal expression has no value")
	}
	switch l.Type {
	case planner.LitInt:
		x, err := strconv.ParseInt(l.Text, 10, 64)
		if err != nil {
			return nil, invalidf("integer literal is not a 64-bit integer")
		}
		return &vec{t: tInt, n: 1, i: []int64{x}}, nil
	case planner.LitFloat:
		f, err := strconv.ParseFloat(l.Text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalidf("float literal is not a finite number")
		}
		return &vec{t: tFloat, n: 1, f: []float64{f}}, nil
	case planner.LitString:
		if !utf8.ValidString(l.Text) {
			return nil, invalidf("string literal is not valid UTF-8 text")
		}
		return &vec{t: tStr, n: 1, s: []string{l.Text}}, nil
	case planner.LitBool:
		switch l.Text {
		case "true":
			return &vec{t: tBool, n: 1, b: []bool{true}}, nil
		case "false":
			return &vec{t: tBool, n: 1, b: []bool{false}}, nil
		}
		return nil, invalidf("boolean literal must be true or false")
	case planner.LitNull:
		return &vec{t: tNull, n: 1}, nil
	}
	return nil, invalidf("unknown literal type")
}

var timeLayouts = []string{
	"2006-01-02",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05.999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05.999999",
	time.RFC3339Nano,
}

// temporalLiteral turns a string literal compared with a date or timestamp
// into that type (UTC when no zone is written).
func temporalLiteral(n *node, t vtype) (*node, error) {
	s := n.lit.s[0]
	for _, layout := range timeLayouts {
		tm, err := time.ParseInLocation(layout, strings.TrimSpace(s), time.UTC)
		if err != nil {
			continue
		}
		v := &vec{t: t, n: 1, i: []int64{tm.UnixMicro()}}
		if t == tDate {
			v.i[0] = tm.UnixMilli()
		}
		return &node{kind: planner.KindLiteral, t: t, lit: v}, nil
	}
	return nil, invalidf("%q is not a date or timestamp; write it as 'YYYY-MM-DD' or 'YYYY-MM-DD hh:mm:ss'", s)
}

func isStrLit(n *node) bool {
	return n.kind == planner.KindLiteral && n.t == tStr
}

// comparisonType finds the type operands are compared at, turning string
// literals compared with dates into dates.
func comparisonType(args []*node) (vtype, error) {
	ts := make([]vtype, len(args))
	var temporal vtype
	for i, a := range args {
		ts[i] = a.t
		if a.t.temporal() {
			if temporal == 0 || a.t == tTS {
				temporal = a.t
			}
		}
	}
	if temporal != 0 {
		for i, a := range args {
			if isStrLit(a) {
				conv, err := temporalLiteral(a, temporal)
				if err != nil {
					return 0, err
				}
				args[i] = conv
				ts[i] = temporal
			}
		}
	}
	t, ok := unifyTypes(ts...)
	if !ok {
		names := make([]string, 0, len(ts))
		for _, x := range ts {
			names = append(names, x.String())
		}
		return 0, invalidf("cannot compare %s; compare values of the same kind", strings.Join(names, " with "))
	}
	return t, nil
}

func (c *compiler) compileArgs(e *planner.Expr, depth int) ([]*node, error) {
	out := make([]*node, len(e.Args))
	for i, a := range e.Args {
		n, err := c.compile(a, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func (c *compiler) compile(e *planner.Expr, depth int) (*node, error) {
	if e == nil {
		return nil, invalidf("the sandbox got an empty expression")
	}
	if depth > maxExprDepth {
		return nil, invalidf("expression is nested more than %d levels deep; simplify the query", maxExprDepth)
	}
	n := &node{kind: e.Kind, op: e.Op, fn: e.Func, negate: e.Negate}
	switch e.Kind {
	case planner.KindColumn:
		i, err := resolveColumn(c.sc, e.Column)
		if err != nil {
			return nil, err
		}
		t, ok := typeOfArrow(c.sc.Field(i).Type)
		if !ok {
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q has an unsupported Arrow type", e.Column)
		}
		n.col, n.t = i, t
		return n, nil
	case planner.KindLiteral:
		v, err := literalVec(e.Literal)
		if err != nil {
			return nil, err
		}
		n.lit, n.t = v, v.t
		return n, nil
	case planner.KindStar:
		return nil, invalidf("* may appear only as COUNT(*)")
	case planner.KindAggregate:
		return nil, sluice.Errorf(sluice.ENotSupported, "aggregate %s() cannot be evaluated row by row; aggregate with HashAggregate", strings.ToLower(e.Func))
	}
	args, err := c.compileArgs(e, depth)
	if err != nil {
		return nil, err
	}
	n.args = args
	switch e.Kind {
	case planner.KindUnary:
		if len(args) != 1 {
			return nil, invalidf("unary %s needs one argument", e.Op)
		}
		switch strings.ToUpper(e.Op) {
		case "-":
			if args[0].t != tNull && !args[0].t.numeric() {
				return nil, invalidf("unary minus needs a number, got %s", args[0].t)
			}
			n.op, n.t = "-", args[0].t
			if n.t == tNull {
				n.t = tInt
			}
		case "NOT":
			if args[0].t != tNull && args[0].t != tBool {
				return nil, invalidf("NOT needs a condition, got %s", args[0].t)
			}
			n.op, n.t = "NOT", tBool
		default:
			return nil, invalidf("unknown unary operator %q", e.Op)
		}
		return n, nil
	case planner.KindBinary:
		if len(args) != 2 {
			return nil, invalidf("operator %s needs two arguments", e.Op)
		}
		n.op = strings.ToUpper(e.Op)
		return c.binary(n)
	case planner.KindIsNull:
		if len(args) != 1 {
			return nil, invalidf("IS NULL needs one argument")
		}
		n.t = tBool
		return n, nil
	case planner.KindIn, planner.KindBetween:
		if e.Kind == planner.KindIn && len(args) < 2 {
			return nil, invalidf("IN needs a value and a list")
		}
		if e.Kind == planner.KindBetween && len(args) != 3 {
			return nil, invalidf("BETWEEN needs three arguments")
		}
		ct, err := comparisonType(args)
		if err != nil {
			return nil, err
		}
		n.cmpT, n.t = ct, tBool
		return n, nil
	case planner.KindLike:
		if len(args) != 2 {
			return nil, invalidf("LIKE needs two arguments")
		}
		for _, a := range args {
			if a.t != tNull && a.t != tStr {
				return nil, invalidf("LIKE works on text, got %s", a.t)
			}
		}
		if isStrLit(args[1]) {
			n.like = compileLike(args[1].lit.s[0])
		}
		n.t = tBool
		return n, nil
	case planner.KindCase:
		return c.caseExpr(n, e)
	case planner.KindFunc:
		return c.function(n)
	}
	return nil, invalidf("unknown expression kind %q", string(e.Kind))
}

func (c *compiler) binary(n *node) (*node, error) {
	l, r := n.args[0], n.args[1]
	switch n.op {
	case "+", "-", "*", "/", "%":
		for _, a := range n.args {
			if a.t != tNull && !a.t.numeric() {
				return nil, invalidf("operator %s needs numbers, got %s", n.op, a.t)
			}
		}
		switch n.op {
		case "/":
			n.t = tFloat
		case "%":
			for _, a := range n.args {
				if a.t != tNull && a.t != tInt {
					return nil, sluice.Errorf(sluice.ENotSupported, "%% on %s values is not supported; use it on integers", a.t)
				}
			}
			n.t = tInt
		default:
			t, _ := unifyTypes(l.t, r.t)
			if t == tNull {
				t = tInt
			}
			n.t = t
		}
		return n, nil
	case "=", "<>", "!=", "<", "<=", ">", ">=":
		if n.op == "!=" {
			n.op = "<>"
		}
		ct, err := comparisonType(n.args)
		if err != nil {
			return nil, err
		}
		n.cmpT, n.t = ct, tBool
		return n, nil
	case "AND", "OR":
		for _, a := range n.args {
			if a.t != tNull && a.t != tBool {
				return nil, invalidf("%s needs conditions on both sides, got %s", n.op, a.t)
			}
		}
		n.t = tBool
		return n, nil
	}
	return nil, invalidf("unknown binary operator %q", n.op)
}

func (c *compiler) caseExpr(n *node, e *planner.Expr) (*node, error) {
	k := len(n.args)
	start, end := 0, k
	if e.HasOperand {
		start = 1
	}
	if e.HasElse {
		end = k - 1
	}
	if end-start < 2 || (end-start)%2 != 0 {
		return nil, invalidf("CASE needs at least one WHEN ... THEN pair")
	}
	n.operand, n.hasElse = e.HasOperand, e.HasElse
	if e.HasOperand {
		ops := []*node{n.args[0]}
		for i := start; i < end; i += 2 {
			ops = append(ops, n.args[i])
		}
		ct, err := comparisonType(ops)
		if err != nil {
			return nil, err
		}
		n.cmpT = ct
		n.args[0] = ops[0]
		for j, i := 1, start; i < end; i, j = i+2, j+1 {
			n.args[i] = ops[j]
		}
	} else {
		for i := start; i < end; i += 2 {
			if t := n.args[i].t; t != tNull && t != tBool {
				return nil, invalidf("CASE WHEN needs a condition, got %s", t)
			}
		}
	}
	var rs []vtype
	for i := start + 1; i < end; i += 2 {
		rs = append(rs, n.args[i].t)
	}
	if e.HasElse {
		rs = append(rs, n.args[k-1].t)
	}
	t, ok := unifyTypes(rs...)
	if !ok {
		return nil, invalidf("CASE results have incompatible types; make every THEN and ELSE the same kind of value")
	}
	n.t = t
	return n, nil
}

func constInt(n *node) (int64, bool) {
	if n.kind == planner.KindLiteral && n.t == tInt {
		return n.lit.i[0], true
	}
	return 0, false
}

func (c *compiler) function(n *node) (*node, error) {
	a := n.args
	argc := func(lo, hi int) error {
		if len(a) < lo || len(a) > hi {
			return invalidf("%s() takes %d to %d arguments, got %d", n.fn, lo, hi, len(a))
		}
		return nil
	}
	needText := func() error {
		if a[0].t != tNull && a[0].t != tStr {
			return invalidf("%s() works on text, got %s", n.fn, a[0].t)
		}
		return nil
	}
	needNum := func() error {
		if a[0].t != tNull && !a[0].t.numeric() {
			return invalidf("%s() works on numbers, got %s", n.fn, a[0].t)
		}
		return nil
	}
	n.fn = strings.ToLower(n.fn)
	var err error
	switch n.fn {
	case "lower", "upper", "trim", "length":
		if err = argc(1, 1); err == nil {
			err = needText()
		}
		n.t = tStr
		if n.fn == "length" {
			n.t = tInt
		}
	case "substr":
		if err = argc(2, 3); err == nil {
			err = needText()
		}
		for _, x := range a[1:] {
			if err == nil && x.t != tInt && x.t != tNull {
				err = invalidf("substr() positions must be integers, got %s", x.t)
			}
		}
		n.t = tStr
	case "abs":
		if err = argc(1, 1); err == nil {
			err = needNum()
		}
		n.t = a[0].t
		if n.t == tNull {
			n.t = tInt
		}
	case "round":
		if err = argc(1, 2); err == nil {
			err = needNum()
		}
		if err == nil && len(a) == 2 {
			d, ok := constInt(a[1])
			if !ok || d < 0 || d > 15 {
				err = sluice.Errorf(sluice.ENotSupported, "round() digits must be an integer constant from 0 to 15")
			}
			n.digits = d
		}
		n.t = tFloat
		if a[0].t == tDec {
			n.t = tDec
		}
	case "coalesce":
		if err = argc(1, 1<<20); err == nil {
			ts := make([]vtype, len(a))
			for i, x := range a {
				ts[i] = x.t
			}
			t, ok := unifyTypes(ts...)
			if !ok {
				err = invalidf("coalesce() arguments have incompatible types; give it values of one kind")
			}
			n.t = t
		}
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "function %q is not supported in the sandbox", n.fn)
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// ---- evaluation ----

type evalCtx struct {
	cols []arrow.Array
	n    int
	// loaded caches column vectors of the current batch.
	loaded map[int]*vec
}

func newEvalCtx(rec arrow.Record) *evalCtx {
	return &evalCtx{cols: rec.Columns(), n: int(rec.NumRows()), loaded: map[int]*vec{}}
}

func broadcast(c *vec, n int) *vec {
	out := newVec(c.t, n)
	if c.t == tNull {
		return out
	}
	if c.isNull(0) {
		out.null = make([]bool, n)
		for k := range out.null {
			out.null[k] = true
		}
		return out
	}
	for k := 0; k < n; k++ {
		switch c.t {
		case tInt, tDate, tTS:
			out.i[k] = c.i[0]
		case tFloat:
			out.f[k] = c.f[0]
		case tDec:
			out.d[k] = c.d[0]
		case tStr, tBin:
			out.s[k] = c.s[0]
		case tBool:
			out.b[k] = c.b[0]
		}
	}
	return out
}

func (ec *evalCtx) eval(n *node) (*vec, error) {
	switch n.kind {
	case planner.KindColumn:
		if v, ok := ec.loaded[n.col]; ok {
			return v, nil
		}
		v, err := loadVec(ec.cols[n.col])
		if err != nil {
			return nil, err
		}
		ec.loaded[n.col] = v
		return v, nil
	case planner.KindLiteral:
		return broadcast(n.lit, ec.n), nil
	}
	args := make([]*vec, len(n.args))
	for i, a := range n.args {
		v, err := ec.eval(a)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	switch n.kind {
	case planner.KindUnary:
		if n.op == "NOT" {
			return notVec(args[0]), nil
		}
		return negVec(args[0], n.t)
	case planner.KindBinary:
		switch n.op {
		case "AND", "OR":
			return logicVec(n.op, args[0], args[1]), nil
		case "=", "<>", "<", "<=", ">", ">=":
			return compareOp(n.op, args[0], args[1], n.cmpT)
		}
		return arith(n.op, args[0], args[1], n.t)
	case planner.KindIsNull:
		a := args[0]
		out := newVec(tBool, ec.n)
		for k := range out.b {
			out.b[k] = a.isNull(k) != n.negate
		}
		return out, nil
	case planner.KindIn:
		return inVec(args, n.cmpT, n.negate)
	case planner.KindBetween:
		lo, err := compareOp(">=", args[0], args[1], n.cmpT)
		if err != nil {
			return nil, err
		}
		hi, err := compareOp("<=", args[0], args[2], n.cmpT)
		if err != nil {
			return nil, err
		}
		out := logicVec("AND", lo, hi)
		if n.negate {
			out = notVec(out)
		}
		return out, nil
	case planner.KindLike:
		return likeVec(args[0], args[1], n.like, n.negate), nil
	case planner.KindCase:
		return caseVec(n, args, ec.n)
	case planner.KindFunc:
		return funcVec(n, args, ec.n)
	}
	return nil, sluice.Errorf(sluice.EInternal, "cannot evaluate %s", n.kind)
}

func boolNull(n int) *vec {
	out := newVec(tBool, n)
	out.null = make([]bool, n)
	return out
}

func notVec(a *vec) *vec {
	out := boolNull(a.n)
	for k := 0; k < a.n; k++ {
		if a.isNull(k) {
			out.null[k] = true
		} else {
			out.b[k] = !a.b[k]
		}
	}
	return out
}

// logicVec is SQL three-valued AND / OR.
func logicVec(op string, a, b *vec) *vec {
	out := boolNull(a.n)
	and := op == "AND"
	for k := 0; k < a.n; k++ {
		an, bn := a.isNull(k), b.isNull(k)
		var av, bv bool
		if !an {
			av = a.b[k]
		}
		if !bn {
			bv = b.b[k]
		}
		if and {
			switch {
			case (!an && !av) || (!bn && !bv):
				out.b[k] = false
			case an || bn:
				out.null[k] = true
			default:
				out.b[k] = true
			}
		} else {
			switch {
			case (!an && av) || (!bn && bv):
				out.b[k] = true
			case an || bn:
				out.null[k] = true
			default:
				out.b[k] = false
			}
		}
	}
	return out
}

func overflow(what string) error {
	return sluice.Errorf(sluice.EInvalid, "integer overflow in %s; cast to a decimal or narrow the data", what)
}

func negVec(a *vec, t vtype) (*vec, error) {
	a, err := castVec(a, t)
	if err != nil {
		return nil, err
	}
	out := newVec(t, a.n)
	out.null = a.null
	for k := 0; k < a.n; k++ {
		if a.isNull(k) {
			continue
		}
		switch t {
		case tInt:
			if a.i[k] == math.MinInt64 {
				return nil, overflow("unary minus")
			}
			out.i[k] = -a.i[k]
		case tFloat:
			out.f[k] = -a.f[k]
		case tDec:
			out.d[k] = a.d[k].Negate()
		}
	}
	return out, nil
}

func orNulls(a, b *vec) []bool {
	if a.null == nil && b.null == nil && a.t != tNull && b.t != tNull {
		return nil
	}
	out := make([]bool, a.n)
	for k := range out {
		out[k] = a.isNull(k) || b.isNull(k)
	}
	return out
}

var decOne = decimal128.GetScaleMultiplier(decScale)

func decMul(a, b decimal128.Num) (decimal128.Num, bool) {
	// Exact product at scale 8, rounded back to scale 4.
	p := new(big.Int).Mul(a.BigInt(), b.BigInt())
	q, r := new(big.Int).QuoRem(p, decOne.BigInt(), new(big.Int))
	half := decimal128.GetHalfScaleMultiplier(decScale).BigInt()
	if r.Abs(r).Cmp(half) >= 0 {
		q.Add(q, big.NewInt(int64(p.Sign())))
	}
	if q.CmpAbs(maxDec.BigInt()) > 0 {
		return decimal128.Num{}, false
	}
	return decimal128.FromBigInt(q), true
}

func decFits(x decimal128.Num) bool {
	return x.LessEqual(maxDec) && x.GreaterEqual(maxDec.Negate())
}

// decAdd adds with overflow detection (38 digits, and 128-bit wrap).
func decAdd(x, y decimal128.Num) (decimal128.Num, bool) {
	r := x.Add(y)
	if x.Sign() == y.Sign() && x.Sign() != 0 && r.Sign() != x.Sign() {
		return r, false
	}
	return r, decFits(r)
}

func arith(op string, a, b *vec, t vtype) (*vec, error) {
	n := a.n
	ct := t
	if op == "/" {
		ct = tFloat
	}
	a, err := castVec(a, ct)
	if err != nil {
		return nil, err
	}
	if b, err = castVec(b, ct); err != nil {
		return nil, err
	}
	out := newVec(t, n)
	out.null = orNulls(a, b)
	if out.null == nil {
		out.null = make([]bool, n)
	}
	for k := 0; k < n; k++ {
		if out.null[k] {
			continue
		}
		switch ct {
		case tInt:
			x, y := a.i[k], b.i[k]
			switch op {
			case "+":
				r := x + y
				if (x > 0 && y > 0 && r < 0) || (x < 0 && y < 0 && r >= 0) {
					return nil, overflow("addition")
				}
				out.i[k] = r
			case "-":
				r := x - y
				if (x >= 0 && y < 0 && r < 0) || (x < 0 && y > 0 && r >= 0) {
					return nil, overflow("subtraction")
				}
				out.i[k] = r
			case "*":
				if x != 0 && y != 0 {
					r := x * y
					if r/y != x || (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) {
						return nil, overflow("multiplication")
					}
					out.i[k] = r
				}
			case "%":
				if y == 0 {
					out.null[k] = true
				} else if y == -1 {
					out.i[k] = 0
				} else {
					out.i[k] = x % y
				}
			}
		case tFloat:
			x, y := a.f[k], b.f[k]
			switch op {
			case "+":
				out.f[k] = x + y
			case "-":
				out.f[k] = x - y
			case "*":
				out.f[k] = x * y
			case "/":
				if y == 0 {
					out.null[k] = true
				} else {
					out.f[k] = x / y
				}
			}
		case tDec:
			x, y := a.d[k], b.d[k]
			var r decimal128.Num
			ok := true
			switch op {
			case "+":
				r, ok = decAdd(x, y)
			case "-":
				r, ok = decAdd(x, y.Negate())
			case "*":
				r, ok = decMul(x, y)
			}
			if !ok {
				return nil, sluice.Errorf(sluice.EInvalid, "decimal overflow in arithmetic (more than 34 integer digits)")
			}
			out.d[k] = r
		}
	}
	return out, nil
}

// compareOp compares a and b at type ct with SQL NULL semantics.
func compareOp(op string, a, b *vec, ct vtype) (*vec, error) {
	a, err := castVec(a, ct)
	if err != nil {
		return nil, err
	}
	if b, err = castVec(b, ct); err != nil {
		return nil, err
	}
	out := newVec(tBool, a.n)
	out.null = orNulls(a, b)
	if ct == tNull {
		return out, nil
	}
	for k := 0; k < a.n; k++ {
		if out.null != nil && out.null[k] {
			continue
		}
		c := cmpAt(a, k, b, k)
		var r bool
		switch op {
		case "=":
			r = c == 0
		case "<>":
			r = c != 0
		case "<":
			r = c < 0
		case "<=":
			r = c <= 0
		case ">":
			r = c > 0
		case ">=":
			r = c >= 0
		}
		out.b[k] = r
	}
	return out, nil
}

func inVec(args []*vec, ct vtype, negate bool) (*vec, error) {
	cs := make([]*vec, len(args))
	for i, a := range args {
		c, err := castVec(a, ct)
		if err != nil {
			return nil, err
		}
		cs[i] = c
	}
	x := cs[0]
	out := boolNull(x.n)
	for k := 0; k < x.n; k++ {
		if x.isNull(k) || ct == tNull {
			out.null[k] = true
			continue
		}
		found, sawNull := false, false
		for _, item := range cs[1:] {
			if item.isNull(k) {
				sawNull = true
				continue
			}
			if cmpAt(x, k, item, k) == 0 {
				found = true
				break
			}
		}
		switch {
		case found:
			out.b[k] = !negate
		case sawNull:
			out.null[k] = true
		default:
			out.b[k] = negate
		}
	}
	return out, nil
}

func caseVec(n *node, args []*vec, rows int) (*vec, error) {
	out := newVec(n.t, rows)
	out.null = make([]bool, rows)
	k := len(args)
	start, end := 0, k
	if n.operand {
		start = 1
	}
	if n.hasElse {
		end = k - 1
	}
	var operand *vec
	var err error
	if n.operand {
		if operand, err = castVec(args[0], n.cmpT); err != nil {
			return nil, err
		}
	}
	whens := make([]*vec, 0, (end-start)/2)
	thens := make([]*vec, 0, (end-start)/2)
	for i := start; i < end; i += 2 {
		w := args[i]
		if n.operand {
			if w, err = compareOp("=", operand, args[i], n.cmpT); err != nil {
				return nil, err
			}
		}
		th, err := castVec(args[i+1], n.t)
		if err != nil {
			return nil, err
		}
		whens = append(whens, w)
		thens = append(thens, th)
	}
	var els *vec
	if n.hasElse {
		if els, err = castVec(args[k-1], n.t); err != nil {
			return nil, err
		}
	}
	for r := 0; r < rows; r++ {
		src := els
		for j, w := range whens {
			if w.t == tBool && !w.isNull(r) && w.b[r] {
				src = thens[j]
				break
			}
		}
		if src == nil || src.isNull(r) {
			out.null[r] = true
			continue
		}
		copyAt(out, r, src, r)
	}
	return out, nil
}

// copyAt sets dst[i] = src[j]; both have the same type and src[j] is not
// NULL.
func copyAt(dst *vec, i int, src *vec, j int) {
	switch dst.t {
	case tInt, tDate, tTS:
		dst.i[i] = src.i[j]
	case tFloat:
		dst.f[i] = src.f[j]
	case tDec:
		dst.d[i] = src.d[j]
	case tStr, tBin:
		dst.s[i] = src.s[j]
	case tBool:
		dst.b[i] = src.b[j]
	}
}

func roundFloat(x float64, d int64) float64 {
	if d == 0 {
		return math.Round(x)
	}
	p := math.Pow(10, float64(d))
	r := math.Round(x*p) / p
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return x
	}
	return r
}

func funcVec(n *node, args []*vec, rows int) (*vec, error) {
	if n.fn == "coalesce" {
		out := newVec(n.t, rows)
		out.null = make([]bool, rows)
		cs := make([]*vec, len(args))
		for i, a := range args {
			c, err := castVec(a, n.t)
			if err != nil {
				return nil, err
			}
			cs[i] = c
		}
		for r := 0; r < rows; r++ {
			out.null[r] = true
			for _, c := range cs {
				if !c.isNull(r) {
					copyAt(out, r, c, r)
					out.null[r] = false
					break
				}
			}
		}
		return out, nil
	}
	a := args[0]
	if n.t == tNull {
		return &vec{t: tNull, n: rows}, nil
	}
	if n.fn == "round" || n.fn == "abs" {
		var err error
		if a, err = castVec(a, n.t); err != nil {
			return nil, err
		}
	}
	out := newVec(n.t, rows)
	out.null = make([]bool, rows)
	for r := 0; r < rows; r++ {
		if a.isNull(r) {
			out.null[r] = true
			continue
		}
		switch n.fn {
		case "lower":
			out.s[r] = strings.ToLower(a.s[r])
		case "upper":
			out.s[r] = strings.ToUpper(a.s[r])
		case "trim":
			out.s[r] = strings.Trim(a.s[r], " ")
		case "length":
			out.i[r] = int64(utf8.RuneCountInString(a.s[r]))
		case "substr":
			start := args[1]
			if start.isNull(r) || (len(args) == 3 && args[2].isNull(r)) {
				out.null[r] = true
				continue
			}
			length := int64(-1)
			if len(args) == 3 {
				length = args[2].i[r]
			}
			out.s[r] = substr(a.s[r], start.i[r], length)
		case "abs":
			switch n.t {
			case tInt:
				if a.i[r] == math.MinInt64 {
					return nil, overflow("abs()")
				}
				out.i[r] = a.i[r]
				if out.i[r] < 0 {
					out.i[r] = -out.i[r]
				}
			case tFloat:
				out.f[r] = math.Abs(a.f[r])
			case tDec:
				out.d[r] = a.d[r].Abs()
			}
		case "round":
			if n.t == tDec {
				if n.digits >= decScale {
					out.d[r] = a.d[r]
				} else {
					red := int32(decScale - n.digits)
					out.d[r] = a.d[r].ReduceScaleBy(red, true).Mul(decimal128.GetScaleMultiplier(int(red)))
				}
			} else {
				out.f[r] = roundFloat(a.f[r], n.digits)
			}
		}
	}
	return out, nil
}

// substr is SQL SUBSTR over characters, 1-based; a start below 1 counts
// from 1 and a negative length means to the end.
func substr(s string, start, length int64) string {
	if start < 1 {
		if length >= 0 {
			length += start - 1
			if length < 0 {
				length = 0
			}
		}
		start = 1
	}
	i := int64(1)
	bs := 0
	for bs < len(s) && i < start {
		_, w := utf8.DecodeRuneInString(s[bs:])
		bs += w
		i++
	}
	if length < 0 {
		return s[bs:]
	}
	be := bs
	for be < len(s) && length > 0 {
		_, w := utf8.DecodeRuneInString(s[be:])
		be += w
		length--
	}
	return s[bs:be]
}
