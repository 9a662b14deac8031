package planner

import (
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

func TestFoldNumbers(t *testing.T) {
	lit := func(ty LiteralType, s string) *Expr {
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: ty, Text: s}}
	}
	for _, tc := range []struct {
		op   string
		a, b *Expr
		want string // "" when not folded
	}{
		{"+", lit(LitFloat, "0.06"), lit(LitFloat, "0.01"), "0.07"},
		{"-", lit(LitFloat, "0.3"), lit(LitFloat, "0.1"), "0.2"},
		{"*", lit(LitFloat, "1.1"), lit(LitFloat, "1.1"), "1.21"},
		{"*", lit(LitInt, "3"), lit(LitFloat, "1.5e2"), "450"},
		{"+", lit(LitInt, "2"), lit(LitInt, "40"), "42"},
		{"-", lit(LitInt, "-9223372036854775807"), lit(LitInt, "1"), "-9223372036854775808"},
		{"/", lit(LitFloat, "1"), lit(LitFloat, "3"), ""},
		{"%", lit(LitInt, "7"), lit(LitInt, "2"), ""},
		{"+", lit(LitString, "1"), lit(LitInt, "2"), ""},
		{"+", &Expr{Kind: KindColumn, Column: "x"}, lit(LitInt, "2"), ""},
	} {
		got, err := foldNumbers(tc.op, tc.a, tc.b)
		if err != nil {
			t.Errorf("%s %s %s: %v", tc.a.Literal.Text, tc.op, tc.b.Literal, err)
			continue
		}
		if (got == nil) != (tc.want == "") || got != nil && got.Literal.Text != tc.want {
			t.Errorf("%v %s %v = %v, want %q", tc.a, tc.op, tc.b, got, tc.want)
		}
	}
	_, err := foldNumbers("*", lit(LitInt, "9223372036854775807"), lit(LitInt, "2"))
	if sluice.ErrorCode(err) != sluice.EInvalid {
		t.Errorf("overflow: %v", err)
	}
}
