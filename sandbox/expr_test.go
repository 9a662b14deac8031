//go:build duckdb_arrow

package sandbox

// Expressions on the engine path: projected (and filtered) over one
// input, in the input's order (rn).

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

var exprSchema = schemaOf(
	col{"rn", arrow.PrimitiveTypes.Int64},
	col{"a", arrow.PrimitiveTypes.Int64},
	col{"b", arrow.PrimitiveTypes.Float64},
	col{"s", arrow.BinaryTypes.String},
	col{"flag", arrow.FixedWidthTypes.Boolean},
	col{"d", decType},
	col{"dt", arrow.FixedWidthTypes.Date64},
	col{"ts", tsType},
)

var exprRows = [][]any{
	{1, 1, 1.5, "Abc", true, "10.5000", "2020-01-01", "2020-01-01T10:00:00Z"},
	{2, 2, 0.0, "x_y%z", false, "-2.2500", "2021-06-30", "2021-06-30T23:59:59Z"},
	{3, nil, 2.0, nil, nil, nil, nil, nil},
	{4, -4, nil, " 黄河 ", true, "0.0001", "1999-12-31", "1999-12-31T00:00:00Z"},
}

// exprPath is a session holding exprRows (in batches of batch rows).
func exprPath(t testing.TB, batch int) *enginePath {
	return openPath(t, nil, nil, newInput(t, nil, exprSchema, batch, exprRows...))
}

// project is items projected over exprRows, in their order.
func project(items ...any) *planner.Node {
	return nSort(nProject(nFrag(0), append([]any{"rn", c("rn")}, items...)...), "rn")
}

// column is column k of rows.
func column(rows [][]any, k int) [][]any {
	out := [][]any{}
	for _, r := range rows {
		out = append(out, []any{r[k]})
	}
	return out
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
	p := exprPath(t, 0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := p.on(t).mustRun(project("x", tc.e), pathOpts{})
			var want [][]any
			for _, w := range tc.want {
				want = append(want, []any{w})
			}
			sameRows(t, column(r.rows, 1), want)
		})
	}
}

// TestProjectErrors: what the sandbox cannot compute is refused when the
// plan is rendered, before anything runs, with the old operators' codes.
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
		{"aggregate", &planner.Expr{Kind: planner.KindAggregate, Func: "sum", Args: []*planner.Expr{c("a")}}, sluice.ENotSupported, "row by row"},
		{"unknown function", fn("sleep", i(1)), sluice.ENotSupported, "not supported"},
		{"like on int", like(false, c("a"), s("1%")), sluice.EInvalid, "LIKE works on text"},
		{"nil", nil, sluice.EInvalid, "empty expression"},
		{"bad literal", &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitInt, Text: "x"}}, sluice.EInvalid, "64-bit"},
		{"case without when", caseE(false, true, s("x")), sluice.EInvalid, "WHEN"},
		{"and on ints", bin(c("a"), "AND", c("a")), sluice.EInvalid, "conditions"},
		{"unknown kind", &planner.Expr{Kind: "frobnicate"}, sluice.EInvalid, "unknown expression kind"},
		{"wrong arg count", &planner.Expr{Kind: planner.KindBinary, Op: "+", Args: []*planner.Expr{i(1)}}, sluice.EInvalid, "two arguments"},
	}
	p := exprPath(t, 0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.on(t).run(project("x", tc.e), pathOpts{})
			wantCode(t, err, tc.code, tc.msg)
		})
	}
}

// TestRuntimeOverflow: integer overflow is an error, not a wrapped value;
// the engine withholds DuckDB's message, which quotes the operands.
func TestRuntimeOverflow(t *testing.T) {
	_, err := exprPath(t, 0).run(project("x", bin(c("a"), "*", i(1<<62))), pathOpts{})
	wantCode(t, err, sluice.EInvalid, "overflow", "withheld")
}

func TestDeepExpressionRejected(t *testing.T) {
	e := c("a")
	for k := 0; k < 500; k++ {
		e = un("-", e)
	}
	_, err := exprPath(t, 0).run(project("x", e), pathOpts{})
	wantCode(t, err, sluice.EInvalid, "nested")
}

func TestProjectKeepsColumnsAndTypes(t *testing.T) {
	r := exprPath(t, 0).mustRun(project("name", c("s"), "dd", bin(c("d"), "+", c("d")), "n", null()), pathOpts{})
	sc := r.schema
	if sc.Field(1).Name != "name" || !arrow.TypeEqual(sc.Field(1).Type, arrow.BinaryTypes.String) {
		t.Errorf("field 1 = %v", sc.Field(1))
	}
	if !arrow.TypeEqual(sc.Field(2).Type, decType) {
		t.Errorf("field 2 = %v", sc.Field(2))
	}
	if v, _ := sc.Field(2).Metadata.GetValue(sluice.MetaType); v != "decimal" {
		t.Errorf("field 2 metadata = %v", sc.Field(2).Metadata)
	}
	var rows [][]any
	for _, row := range r.rows {
		rows = append(rows, row[1:])
	}
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
	p := exprPath(t, 3)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := nSort(nProject(nFilter(nFrag(0), tc.pred), "rn", c("rn"), "a", c("a")), "rn")
			r := p.on(t).mustRun(plan, pathOpts{})
			var want [][]any
			for _, w := range tc.want {
				want = append(want, []any{w})
			}
			sameRows(t, column(r.rows, 1), want)
		})
	}
	_, err := p.run(nFilter(nFrag(0), c("a")), pathOpts{})
	wantCode(t, err, sluice.EInvalid, "condition")
}

// TestLike: LIKE patterns from a column: % and _ over characters,
// backslash escapes the next character (a trailing one is literal),
// case-sensitive.
func TestLike(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"", "a", false}, {"%", "", true}, {"%", "abc", true},
		{"a%c", "abbbc", true}, {"a%c", "abbb", false}, {"_", "黄", true}, {"__", "黄", false},
		{"%a%a%a%", "aaa", true}, {"%a%a%a%", "aa", false}, {`\%`, "%", true}, {`\%`, "a", false},
		{`a\`, `a\`, true}, {"%b", "abab", true}, {"a%%b", "ab", true},
	}
	sc := schemaOf(col{"rn", arrow.PrimitiveTypes.Int64}, col{"s", arrow.BinaryTypes.String}, col{"p", arrow.BinaryTypes.String})
	var rows [][]any
	for k, tc := range cases {
		rows = append(rows, []any{k, tc.s, tc.p})
	}
	r, err := runPlan(t, nSort(nProject(nFrag(0), "rn", c("rn"), "m", like(false, c("s"), c("p"))), "rn"), pathOpts{}, newInput(t, nil, sc, 0, rows...))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.rows) != len(cases) {
		t.Fatalf("%d rows", len(r.rows))
	}
	for k, tc := range cases {
		if got := r.rows[k][1]; got != tc.want {
			t.Errorf("%q LIKE %q = %v, want %v", tc.s, tc.p, got, tc.want)
		}
	}
}
