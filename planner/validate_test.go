package planner

import (
	"encoding/json"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

func col(name string) *Expr { return &Expr{Kind: KindColumn, Column: name} }
func intLit(s string) *Expr {
	return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: s}}
}
func strLit(s string) *Expr {
	return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitString, Text: s}}
}

func baseFragment() *Fragment {
	return &Fragment{
		QueryID: "q", Dataset: "civil.residents",
		Select: []SelectItem{
			{Expr: col("district"), Alias: "district"},
			{Expr: &Expr{Kind: KindAggregate, Func: "count", Args: []*Expr{{Kind: KindStar}}}, Alias: "n"},
		},
		Where:   &Expr{Kind: KindBinary, Op: "=", Args: []*Expr{col("low_income"), intLit("1")}},
		GroupBy: []*Expr{col("district")},
	}
}

func TestValidateHostile(t *testing.T) {
	ds := testCatalog(t).Dataset("civil", "residents")
	if err := baseFragment().Validate(ds); err != nil {
		t.Fatalf("base fragment: %v", err)
	}
	neg := int64(-1)
	deep := col("district")
	for i := 0; i < 500; i++ {
		deep = &Expr{Kind: KindFunc, Func: "lower", Args: []*Expr{deep}}
	}
	tests := []struct {
		name   string
		mutate func(f *Fragment)
		want   string
	}{
		{"wrong dataset", func(f *Fragment) { f.Dataset = "health.insured" }, "not civil.residents"},
		{"no select", func(f *Fragment) { f.Select = nil }, "selects nothing"},
		{"nil select expr", func(f *Fragment) { f.Select[0].Expr = nil }, "empty expression"},
		{"empty alias", func(f *Fragment) { f.Select[0].Alias = "" }, "needs a name"},
		{"control alias", func(f *Fragment) { f.Select[0].Alias = "a\x00b" }, "control character"},
		{"long alias", func(f *Fragment) { f.Select[0].Alias = strings.Repeat("a", 500) }, "longer than"},
		{"dup alias", func(f *Fragment) { f.Select[1].Alias = "DISTRICT" }, "used twice"},
		{"unknown column", func(f *Fragment) { f.Select[0].Expr = col("salary"); f.GroupBy[0] = col("salary") }, `no column "salary"`},
		{"injection column", func(f *Fragment) { f.Where.Args[0] = col(`x"; DROP TABLE residents; --`) }, "has no column"},
		{"unknown kind", func(f *Fragment) { f.Where = &Expr{Kind: "subquery"} }, "unknown expression kind"},
		{"empty kind", func(f *Fragment) { f.Where = &Expr{} }, "unknown expression kind"},
		{"unknown op", func(f *Fragment) { f.Where.Op = "; DROP" }, "unknown binary operator"},
		{"unknown unary", func(f *Fragment) { f.Where = &Expr{Kind: KindUnary, Op: "~", Args: []*Expr{f.Where}} }, "unknown unary operator"},
		{"binary arity", func(f *Fragment) { f.Where.Args = f.Where.Args[:1] }, "needs two arguments"},
		{"nil arg", func(f *Fragment) { f.Where.Args[1] = nil }, "empty expression"},
		{"nil literal", func(f *Fragment) { f.Where.Args[1] = &Expr{Kind: KindLiteral} }, "no value"},
		{"bad int literal", func(f *Fragment) { f.Where.Args[1] = intLit("1 OR 1=1") }, "not a 64-bit integer"},
		{"bad literal type", func(f *Fragment) { f.Where.Args[1].Literal.Type = "raw" }, "unknown literal type"},
		{"bad bool", func(f *Fragment) {
			f.Where = &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitBool, Text: "yes"}}
		}, "true or false"},
		{"bad float", func(f *Fragment) { f.Where.Args[1].Literal = &Literal{Type: LitFloat, Text: "NaN"} }, "finite"},
		{"column with args", func(f *Fragment) { f.Select[0].Expr.Args = []*Expr{col("name")} }, "takes no arguments"},
		{"literal on column", func(f *Fragment) { f.Select[0].Expr.Literal = &Literal{Type: LitInt, Text: "1"} }, "must not carry a literal"},
		{"unknown func", func(f *Fragment) {
			f.Select[0].Expr = &Expr{Kind: KindFunc, Func: "pg_sleep", Args: []*Expr{intLit("5")}}
		}, "not supported yet"},
		{"func arity", func(f *Fragment) { f.Select[0].Expr = &Expr{Kind: KindFunc, Func: "lower"} }, "takes 1 argument"},
		{"unknown aggregate", func(f *Fragment) { f.Select[1].Expr.Func = "string_agg" }, "not supported yet"},
		{"aggregate arity", func(f *Fragment) { f.Select[1].Expr.Args = nil }, "exactly one argument"},
		{"star outside count", func(f *Fragment) { f.Select[0].Expr = &Expr{Kind: KindStar} }, "COUNT(*)"},
		{"sum star", func(f *Fragment) { f.Select[1].Expr.Func = "sum" }, "COUNT(*)"},
		{"aggregate in where", func(f *Fragment) { f.Where.Args[0] = f.Select[1].Expr }, "not allowed here"},
		{"aggregate in group", func(f *Fragment) { f.GroupBy[0] = f.Select[1].Expr }, "not allowed here"},
		{"nested aggregate", func(f *Fragment) {
			f.Select[1].Expr = &Expr{Kind: KindAggregate, Func: "sum", Args: []*Expr{{Kind: KindAggregate, Func: "count", Args: []*Expr{{Kind: KindStar}}}}}
		}, "cannot be nested"},
		{"ungrouped output", func(f *Fragment) { f.Select[0].Expr = col("name") }, "must appear in GROUP BY"},
		{"nil group key", func(f *Fragment) { f.GroupBy = append(f.GroupBy, nil) }, "empty expression"},
		{"nil order", func(f *Fragment) { f.OrderBy = []OrderItem{{}} }, "empty expression"},
		{"negative limit", func(f *Fragment) { f.Limit = &neg }, "LIMIT must not be negative"},
		{"negative offset", func(f *Fragment) { f.Offset = -5 }, "OFFSET must not be negative"},
		{"negative k", func(f *Fragment) { f.MinGroupSize = -1 }, "minimum group size"},
		{"k on rows", func(f *Fragment) { f.Select = f.Select[:1]; f.GroupBy = nil; f.MinGroupSize = 5 }, "only to aggregate queries"},
		{"mask unknown column", func(f *Fragment) { f.Masks = map[string]sluice.MaskRule{"salary": "redact"} }, "does not have"},
		{"mask unknown rule", func(f *Fragment) { f.Masks = map[string]sluice.MaskRule{"name": "rot13"} }, "unknown mask rule"},
		{"mask wrong type", func(f *Fragment) { f.Masks = map[string]sluice.MaskRule{"birth_date": "surname"} }, "cannot be applied"},
		{"mask twice", func(f *Fragment) { f.Masks = map[string]sluice.MaskRule{"name": "redact", "NAME": "surname"} }, "more than one mask"},
		{"year mask on text", func(f *Fragment) { f.Masks = map[string]sluice.MaskRule{"name": "year"} }, "cannot be applied"},
		{"case no pairs", func(f *Fragment) { f.Select[0].Expr = &Expr{Kind: KindCase, Args: []*Expr{col("district")}} }, "WHEN"},
		{"case odd", func(f *Fragment) {
			f.Select[0].Expr = &Expr{Kind: KindCase, HasElse: true, Args: []*Expr{col("district")}}
		}, "WHEN"},
		{"in empty", func(f *Fragment) { f.Where = &Expr{Kind: KindIn, Args: []*Expr{col("district")}} }, "IN needs"},
		{"between arity", func(f *Fragment) { f.Where = &Expr{Kind: KindBetween, Args: []*Expr{col("district"), strLit("a")}} }, "BETWEEN needs three"},
		{"like arity", func(f *Fragment) { f.Where = &Expr{Kind: KindLike, Args: []*Expr{col("district")}} }, "LIKE needs two"},
		{"is null arity", func(f *Fragment) { f.Where = &Expr{Kind: KindIsNull} }, "IS NULL needs one"},
		{"substr negative", func(f *Fragment) {
			f.Select[0].Expr = &Expr{Kind: KindFunc, Func: "substr", Args: []*Expr{col("district"), intLit("-2")}}
			f.GroupBy[0] = f.Select[0].Expr
		}, "substr() start"},
		{"too deep", func(f *Fragment) { f.Select[0].Expr = deep; f.GroupBy[0] = deep }, "nested more than"},
		{"having without group", func(f *Fragment) {
			f.Select = f.Select[:1]
			f.GroupBy = nil
			f.Having = &Expr{Kind: KindBinary, Op: "=", Args: []*Expr{col("district"), strLit("x")}}
		}, "HAVING needs GROUP BY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := baseFragment()
			tc.mutate(f)
			err := f.Validate(ds)
			if err == nil {
				t.Fatalf("Validate accepted the fragment:\n%s", f.Normalized())
			}
			if sluice.ErrorCode(err) != sluice.EInvalid && sluice.ErrorCode(err) != sluice.ENotSupported {
				t.Fatalf("code %s: %v", sluice.ErrorCode(err), err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			// Render must refuse the same fragment and Normalized must not panic.
			if _, _, rerr := Render(f, ds, sluice.DriverSQLite); rerr == nil {
				t.Fatal("Render accepted an invalid fragment")
			}
			_ = f.Normalized()
		})
	}
	var nilFrag *Fragment
	if err := nilFrag.Validate(ds); err == nil {
		t.Error("nil fragment validated")
	}
	if err := baseFragment().Validate(nil); err == nil {
		t.Error("nil dataset validated")
	}
	if nilFrag.Normalized() != "" {
		t.Error("nil fragment normalized to text")
	}
}

// TestValidateJSONGarbage decodes arbitrary JSON shapes as a fragment, as
// an agent does with a ticket, and checks that nothing panics.
func TestValidateJSONGarbage(t *testing.T) {
	ds := testCatalog(t).Dataset("civil", "residents")
	inputs := []string{
		`{}`,
		`{"dataset":"civil.residents"}`,
		`{"dataset":"civil.residents","select":[{}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"case","has_operand":true,"has_else":true}}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"case","has_operand":true,"args":[null,null,null]},"alias":"a"}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"aggregate","func":"count","args":[{"kind":"star","args":[null]}]},"alias":"a"}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"in","args":[null]},"alias":"a"}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"func","func":"substr","args":[{"kind":"column","column":"name"},{"kind":"literal"}]},"alias":"a"}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"func","func":"round","args":[{"kind":"column","column":"low_income"},{"kind":"column","column":"low_income"}]},"alias":"a"}]}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"column","column":"district"},"alias":"a"}],"order_by":[{"expr":null}],"masks":{"":"year"}}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"column","column":"district"},"alias":"a"}],"limit":-3}`,
		`{"dataset":"civil.residents","select":[{"expr":{"kind":"literal","literal":{"type":"string","text":"\u0000"}},"alias":"a"}]}`,
	}
	for _, in := range inputs {
		var f Fragment
		if err := json.Unmarshal([]byte(in), &f); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if err := f.Validate(ds); err == nil {
			t.Errorf("%s: validated", in)
		}
		if _, _, err := Render(&f, ds, sluice.DriverPostgres); err == nil {
			t.Errorf("%s: rendered", in)
		}
		_ = f.Normalized()
		_, _ = OutputFields(&f, ds)
	}
}

// TestPlannedFragmentsValidate checks the contract end to end: every plan
// survives a JSON round trip and validates on the agent side.
func TestPlannedFragmentsValidate(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	for _, c := range renderCases {
		pl := mustPlan(t, p, c.sql)
		raw, err := json.Marshal(pl.Fragment)
		if err != nil {
			t.Fatal(err)
		}
		var f Fragment
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		f.Masks, f.MinGroupSize = c.masks, c.k
		dept, name, _ := strings.Cut(f.Dataset, ".")
		ds := cat.Dataset(dept, name)
		if err := f.Validate(ds); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if f.Normalized() != withObligations(pl.Fragment, c.masks, c.k).Normalized() {
			t.Errorf("%s: JSON round trip changed the fragment", c.name)
		}
	}
}

// A date masked to its year releases only its year: EXTRACT(YEAR) of it
// is the year, EXTRACT(MONTH/DAY) is refused at the agent, whatever the
// broker sent.
func TestExtractOfAMaskedDate(t *testing.T) {
	cat := testCatalog(t)
	ds := cat.Dataset("civil", "residents")
	p := New(cat)
	for q, want := range map[string]string{
		"SELECT EXTRACT(YEAR FROM birth_date) AS y FROM civil.residents":              "",
		"SELECT EXTRACT(MONTH FROM birth_date) AS m FROM civil.residents":             "masked to its year; its month and day are not released",
		"SELECT count(*) FROM civil.residents WHERE EXTRACT(DAY FROM birth_date) = 1": "masked to its year",
	} {
		f := mustPlan(t, p, q).Fragment
		f.Masks = map[string]sluice.MaskRule{"birth_date": sluice.MaskYear}
		err := f.Validate(ds)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", q, err, want)
		}
	}
}
