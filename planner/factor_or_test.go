package planner

import (
	"strings"
	"testing"
)

func TestFactorOr(t *testing.T) {
	col := func(n string) *Expr { return &Expr{Kind: KindColumn, Column: n} }
	eq := func(a, b string) *Expr { return &Expr{Kind: KindBinary, Op: "=", Args: []*Expr{col(a), col(b)}} }
	and := func(es ...*Expr) *Expr { return andAll(es) }
	or := func(a, b *Expr) *Expr { return &Expr{Kind: KindBinary, Op: "OR", Args: []*Expr{a, b}} }
	norm := func(es []*Expr) string {
		var s []string
		for _, e := range es {
			s = append(s, normExpr(e, 0))
		}
		return strings.Join(s, " ; ")
	}
	for _, tc := range []struct {
		in   *Expr
		want string
	}{
		{or(and(eq("p", "l"), eq("b", "x")), and(eq("p", "l"), eq("b", "y"))), "(p = l) ; ((b = x) OR (b = y))"},
		{or(or(and(eq("p", "l"), eq("a", "a1"), eq("b", "x")), and(eq("a", "a1"), eq("p", "l"), eq("b", "y"))), and(eq("b", "z"), eq("p", "l"), eq("a", "a1"))),
			"(p = l) ; (a = a1) ; (((b = x) OR (b = y)) OR (b = z))"},
		{or(eq("p", "l"), and(eq("p", "l"), eq("b", "y"))), "(p = l)"},
		{or(eq("a", "b"), eq("c", "d")), "((a = b) OR (c = d))"},
		{eq("a", "b"), "(a = b)"},
	} {
		if got := norm(factorOr(tc.in)); got != tc.want {
			t.Errorf("factorOr(%s) = %s, want %s", normExpr(tc.in, 0), got, tc.want)
		}
	}
}
