package planner

import (
	"math"
	"math/big"
	"strconv"
)

// Numeric constants folded at planning time. Arithmetic between two
// number constants (0.06 + 0.01, 2 * 3) is computed here exactly, in
// decimal, instead of in the department's database, which would compute
// it in binary floating point (SQLite always; PostgreSQL and MySQL for the
// float parameters the constants are bound as): 0.06 + 0.01 is
// 0.06999999999999999 there, and `BETWEEN 0.05 AND 0.06 + 0.01` would
// miss every 0.07 (TPC-H Q6). Division and % are left to the database
// (their results need not be finite decimals, and % follows its rules).

// maxFoldScale bounds the decimal places of a folded result.
const maxFoldScale = 30

// foldNumbers returns op applied to two number literals, or nil when the
// expression is not that.
func foldNumbers(op string, a, b *Expr) (*Expr, error) {
	if op != "+" && op != "-" && op != "*" {
		return nil, nil
	}
	x, xi, ok := numberLiteral(a)
	if !ok {
		return nil, nil
	}
	y, yi, ok := numberLiteral(b)
	if !ok {
		return nil, nil
	}
	r := new(big.Rat)
	switch op {
	case "+":
		r.Add(x, y)
	case "-":
		r.Sub(x, y)
	case "*":
		r.Mul(x, y)
	}
	if xi && yi {
		if !r.Num().IsInt64() {
			return nil, invalid("the integer constant %s %s %s does not fit in 64 bits", a.Literal.Text, op, b.Literal.Text)
		}
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: r.Num().String()}}, nil
	}
	scale := 0
	ten := big.NewInt(10)
	den := new(big.Int).Set(r.Denom())
	for den.Cmp(big.NewInt(1)) != 0 {
		// The denominator of a sum or product of decimals divides a power
		// of ten: multiply by ten until it is gone.
		if scale == maxFoldScale {
			return nil, nil
		}
		g := new(big.Int).GCD(nil, nil, den, ten)
		den.Quo(den, g)
		scale++
	}
	text := r.FloatString(scale)
	if f, err := strconv.ParseFloat(text, 64); err != nil || math.IsInf(f, 0) {
		return nil, invalid("the constant %s %s %s is out of range", a.Literal.Text, op, b.Literal.Text)
	}
	return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitFloat, Text: text}}, nil
}

// numberLiteral reads an integer or decimal literal exactly.
func numberLiteral(e *Expr) (*big.Rat, bool, bool) {
	if e == nil || e.Kind != KindLiteral || e.Literal == nil {
		return nil, false, false
	}
	switch e.Literal.Type {
	case LitInt, LitFloat:
		r, ok := new(big.Rat).SetString(e.Literal.Text)
		return r, e.Literal.Type == LitInt, ok
	}
	return nil, false, false
}
