package sandbox

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

var exprSchema = schemaOf(
	col{"a", arrow.PrimitiveTypes.Int64},
	col{"b", arrow.PrimitiveTypes.Float64},
	col{"s", arrow.BinaryTypes.String},
	col{"flag", arrow.FixedWidthTypes.Boolean},
	col{"d", decType},
	col{"dt", arrow.FixedWidthTypes.Date64},
	col{"ts", tsType},
)

var exprRows = [][]any{
	{1, 1.5, "Abc", true, "10.5000", "2020-01-01", "2020-01-01T10:00:00Z"},
	{2, 0.0, "x_y%z", false, "-2.2500", "2021-06-30", "2021-06-30T23:59:59Z"},
	{nil, 2.0, nil, nil, nil, nil, nil},
	{-4, nil, " 黄河 ", true, "0.0001", "1999-12-31", "1999-12-31T00:00:00Z"},
}

func TestProjectExpressions(t *testing.T) {
	cases := []struct {
		name string
		e    *planner.Expr
		want []any
	}{
		{"column", c("a"), []any{1, 2, nil, -4}},
		{"case-insensitive column", c("A"), []any{1, 2, nil, -4}},
		{"plus", bin(c("a"), "+", i(10)), []any{11, 12, nil, 6}},
		{"minus float", bin(c("a"), "-", c("b")), []any{-0.5, 2.0, nil, nil}},
		{"times", bin(c("a"), "*", i(3)), []any{3, 6, nil, -12}},
		{"divide is float", bin(c("a"), "/", i(2)), []any{0.5, 1.0, nil, -2.0}},
		{"divide by zero is NULL", bin(c("a"), "/", c("b")), []any{1 / 1.5, nil, nil, nil}},
		{"modulo", bin(c("a"), "%", i(3)), []any{1, 2, nil, -1}},
		{"modulo by zero is NULL", bin(c("a"), "%", i(0)), []any{nil, nil, nil, nil}},
		{"negate", un("-", c("a")), []any{-1, -2, nil, 4}},
		{"null plus", bin(null(), "+", c("a")), []any{nil, nil, nil, nil}},
		{"decimal plus int", bin(c("d"), "+", i(1)), []any{"11.5000", "-1.2500", nil, "1.0001"}},
		{"decimal times decimal", bin(c("d"), "*", c("d")), []any{"110.2500", "5.0625", nil, "0.0000"}},
		{"decimal times float", bin(c("d"), "*", f("2")), []any{21.0, -4.5, nil, 0.0002}},
		{"eq", bin(c("a"), "=", i(2)), []any{false, true, nil, false}},
		{"ne", bin(c("a"), "<>", i(2)), []any{true, false, nil, true}},
		{"lt int float", bin(c("a"), "<", c("b")), []any{true, false, nil, nil}},
		{"ge decimal", bin(c("d"), ">=", i(0)), []any{true, false, nil, true}},
		{"string compare", bin(c("s"), ">", s("B")), []any{false, true, nil, false}},
		{"date vs string literal", bin(c("dt"), ">=", s("2020-01-01")), []any{true, true, nil, false}},
		{"timestamp vs date", bin(c("ts"), "<", c("dt")), []any{false, false, nil, false}},
		{"timestamp vs literal", bin(c("ts"), ">", s("2021-06-30 12:00:00")), []any{false, true, nil, false}},
		{"and 3vl", bin(c("flag"), "AND", bin(c("a"), ">", i(0))), []any{true, false, nil, false}},
		{"false and null is false", bin(bl(false), "AND", null()), []any{false, false, false, false}},
		{"true or null is true", bin(bl(true), "OR", c("flag")), []any{true, true, true, true}},
		{"or 3vl", bin(c("flag"), "OR", bin(c("a"), "=", i(2))), []any{true, true, nil, true}},
		{"not", un("NOT", c("flag")), []any{false, true, nil, false}},
		{"is null", isNull(c("a"), false), []any{false, false, true, false}},
		{"is not null", isNull(c("s"), true), []any{true, true, false, true}},
		{"in", in(false, c("a"), i(1), i(4), i(-4)), []any{true, false, nil, true}},
		{"in with null", in(false, c("a"), i(1), null()), []any{true, nil, nil, nil}},
		{"not in", in(true, c("a"), i(1), i(3)), []any{false, true, nil, true}},
		{"not in with null", in(true, c("a"), i(1), null()), []any{false, nil, nil, nil}},
		{"in strings", in(false, c("s"), s("Abc"), s("zz")), []any{true, false, nil, false}},
		{"between", between(false, c("a"), i(1), i(2)), []any{true, true, nil, false}},
		{"not between", between(true, c("b"), f("0.5"), f("1.9")), []any{false, true, true, nil}},
		{"between dates", between(false, c("dt"), s("2020-01-01"), s("2020-12-31")), []any{true, false, nil, false}},
		{"like prefix", like(false, c("s"), s("A%")), []any{true, false, nil, false}},
		{"like underscore", like(false, c("s"), s("x_y%")), []any{false, true, nil, false}},
		{"like escape", like(false, c("s"), s(`x\_y\%z`)), []any{false, true, nil, false}},
		{"like escaped underscore does not match other", like(false, c("s"), s(`A\_c`)), []any{false, false, nil, false}},
		{"like unicode", like(false, c("s"), s("%黄_%")), []any{false, false, nil, true}},
		{"not like", like(true, c("s"), s("%b%")), []any{false, true, nil, true}},
		{"like case sensitive", like(false, c("s"), s("abc")), []any{false, false, nil, false}},
		{"searched case", caseE(false, true, bin(c("a"), ">", i(1)), s("big"), bin(c("a"), "<", i(0)), s("neg"), s("small")),
			[]any{"small", "big", "small", "neg"}},
		{"case without else", caseE(false, false, c("flag"), i(1)), []any{1, nil, nil, 1}},
		{"case with operand", caseE(true, true, c("a"), i(1), s("one"), i(2), s("two"), s("other")),
			[]any{"one", "two", "other", "other"}},
		{"case unifies numbers", caseE(false, true, c("flag"), c("a"), c("b")), []any{1.0, 0.0, 2.0, -4.0}},
		{"lower", fn("lower", c("s")), []any{"abc", "x_y%z", nil, " 黄河 "}},
		{"upper", fn("UPPER", c("s")), []any{"ABC", "X_Y%Z", nil, " 黄河 "}},
		{"length counts characters", fn("length", c("s")), []any{3, 5, nil, 4}},
		{"substr", fn("substr", c("s"), i(2), i(2)), []any{"bc", "_y", nil, "黄河"}},
		{"substr to end", fn("substr", c("s"), i(3)), []any{"c", "y%z", nil, "河 "}},
		{"trim", fn("trim", c("s")), []any{"Abc", "x_y%z", nil, "黄河"}},
		{"abs int", fn("abs", c("a")), []any{1, 2, nil, 4}},
		{"abs decimal", fn("abs", c("d")), []any{"10.5000", "2.2500", nil, "0.0001"}},
		{"round float", fn("round", bin(c("b"), "*", f("1.25")), i(1)), []any{1.9, 0.0, 2.5, nil}},
		{"round decimal", fn("round", c("d")), []any{"11.0000", "-2.0000", nil, "0.0000"}},
		{"round int is float", fn("round", c("a")), []any{1.0, 2.0, nil, -4.0}},
		{"coalesce", fn("coalesce", c("a"), i(0)), []any{1, 2, 0, -4}},
		{"coalesce widens", fn("coalesce", c("b"), c("a")), []any{1.5, 0.0, 2.0, -4.0}},
		{"coalesce strings", fn("coalesce", c("s"), s("?")), []any{"Abc", "x_y%z", "?", " 黄河 "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQ(t, Limits{})
			src := scan(t, q, exprSchema, exprRows...)
			op, err := q.Project(src, []planner.SelectItem{{Expr: tc.e, Alias: "x"}})
			if err != nil {
				src.Close()
				t.Fatal(err)
			}
			rows := mustRows(t, q, op, nil)
			var want [][]any
			for _, w := range tc.want {
				want = append(want, []any{w})
			}
			sameRows(t, rows, want)
		})
	}
}

func TestProjectErrors(t *testing.T) {
	cases := []struct {
		name string
		e    *planner.Expr
		code string
		msg  string
	}{
		{"unknown column", c("nope"), sluice.EInvalid, `no column "nope"`},
		{"string plus", bin(c("s"), "+", i(1)), sluice.EInvalid, "needs numbers"},
		{"compare string with int", bin(c("s"), "=", i(1)), sluice.EInvalid, "cannot compare"},
		{"bad date literal", bin(c("dt"), "=", s("yesterday")), sluice.EInvalid, "not a date"},
		{"aggregate", &planner.Expr{Kind: planner.KindAggregate, Func: "sum", Args: []*planner.Expr{c("a")}}, sluice.ENotSupported, "HashAggregate"},
		{"unknown function", fn("sleep", i(1)), sluice.ENotSupported, "not supported"},
		{"like on int", like(false, c("a"), s("1%")), sluice.EInvalid, "LIKE works on text"},
		{"nil", nil, sluice.EInvalid, "empty expression"},
		{"bad literal", &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitInt, Text: "x"}}, sluice.EInvalid, "64-bit"},
		{"case without when", caseE(false, true, s("x")), sluice.EInvalid, "WHEN"},
		{"and on ints", bin(c("a"), "AND", c("a")), sluice.EInvalid, "conditions"},
		{"unknown kind", &planner.Expr{Kind: "frobnicate"}, sluice.EInvalid, "unknown expression kind"},
		{"wrong arg count", &planner.Expr{Kind: planner.KindBinary, Op: "+", Args: []*planner.Expr{i(1)}}, sluice.EInvalid, "two arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQ(t, Limits{})
			src := scan(t, q, exprSchema, exprRows...)
			defer src.Close()
			_, err := q.Project(src, []planner.SelectItem{{Expr: tc.e, Alias: "x"}})
			wantCode(t, err, tc.code, tc.msg)
		})
	}
}

func TestRuntimeOverflow(t *testing.T) {
	q, _ := newQ(t, Limits{})
	src := scan(t, q, exprSchema, exprRows...)
	op, err := q.Project(src, []planner.SelectItem{{Expr: bin(c("a"), "*", i(1<<62)), Alias: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = drain(t, q, op)
	wantCode(t, err, sluice.EInvalid, "integer overflow")
}

func TestDeepExpressionRejected(t *testing.T) {
	e := c("a")
	for k := 0; k < 500; k++ {
		e = un("-", e)
	}
	q, _ := newQ(t, Limits{})
	src := scan(t, q, exprSchema, exprRows...)
	defer src.Close()
	_, err := q.Project(src, []planner.SelectItem{{Expr: e, Alias: "x"}})
	wantCode(t, err, sluice.EInvalid, "nested")
}

func TestProjectKeepsColumnsAndTypes(t *testing.T) {
	q, _ := newQ(t, Limits{})
	src := scan(t, q, exprSchema, exprRows...)
	op, err := q.Project(src, []planner.SelectItem{
		{Expr: c("s"), Alias: "name"},
		{Expr: bin(c("d"), "+", c("d")), Alias: "dd"},
		{Expr: null(), Alias: "n"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sc := op.Schema()
	if sc.Field(0).Name != "name" || !arrow.TypeEqual(sc.Field(0).Type, arrow.BinaryTypes.String) {
		t.Errorf("field 0 = %v", sc.Field(0))
	}
	if !arrow.TypeEqual(sc.Field(1).Type, decType) {
		t.Errorf("field 1 = %v", sc.Field(1))
	}
	if v, _ := sc.Field(1).Metadata.GetValue(metaType); v != "decimal" {
		t.Errorf("field 1 metadata = %v", sc.Field(1).Metadata)
	}
	rows := mustRows(t, q, op, nil)
	sameRows(t, rows, [][]any{
		{"Abc", "21.0000", nil}, {"x_y%z", "-4.5000", nil}, {nil, nil, nil}, {" 黄河 ", "0.0002", nil},
	})
}

func TestFilter(t *testing.T) {
	cases := []struct {
		name string
		pred *planner.Expr
		want []any // column a of kept rows
	}{
		{"true rows only", bin(c("a"), ">", i(0)), []any{1, 2}},
		{"null is dropped", c("flag"), []any{1, -4}},
		{"not null is dropped too", un("NOT", c("flag")), []any{2}},
		{"all", bl(true), []any{1, 2, nil, -4}},
		{"none", bl(false), nil},
		{"null literal", null(), nil},
		{"or with null", bin(c("flag"), "OR", isNull(c("a"), false)), []any{1, nil, -4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQ(t, Limits{BatchSize: 3})
			src := scan(t, q, exprSchema, exprRows...)
			fl, err := q.Filter(src, tc.pred)
			if err != nil {
				src.Close()
				t.Fatal(err)
			}
			op, err := q.Project(fl, []planner.SelectItem{{Expr: c("a"), Alias: "a"}})
			rows := mustRows(t, q, op, err)
			var want [][]any
			for _, w := range tc.want {
				want = append(want, []any{w})
			}
			sameRows(t, rows, want)
		})
	}
	q, _ := newQ(t, Limits{})
	src := scan(t, q, exprSchema, exprRows...)
	defer src.Close()
	_, err := q.Filter(src, c("a"))
	wantCode(t, err, sluice.EInvalid, "condition")
}

func TestLikeMatcher(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"", "a", false}, {"%", "", true}, {"%", "abc", true},
		{"a%c", "abbbc", true}, {"a%c", "abbb", false}, {"_", "黄", true}, {"__", "黄", false},
		{"%a%a%a%", "aaa", true}, {"%a%a%a%", "aa", false}, {`\%`, "%", true}, {`\%`, "a", false},
		{`a\`, `a\`, true}, {"%b", "abab", true}, {"a%%b", "ab", true},
	}
	for _, tc := range cases {
		if got := compileLike(tc.p).match(tc.s); got != tc.want {
			t.Errorf("%q LIKE %q = %v, want %v", tc.s, tc.p, got, tc.want)
		}
	}
}
