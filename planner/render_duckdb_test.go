package planner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// The DuckDB renderer's own tests: the shape of the SQL (golden files),
// its safety (literals only as parameters, identifiers quoted, each
// relation read once) and its refusals. That the SQL gives the sandbox's
// answers is tested through the engine in sandbox/golden_test.go
// (go test -tags duckdb_arrow ./sandbox/ -run Equiv).

func dcolumns(spec ...string) []DuckDBColumn {
	var out []DuckDBColumn
	for k := 0; k+1 < len(spec); k += 2 {
		out = append(out, DuckDBColumn{Name: spec[k], Type: sluice.ColumnType(spec[k+1])})
	}
	return out
}

// duckLeaves gives fragment i the relation "frag_i" with the given
// columns.
func duckLeaves(cols ...[]DuckDBColumn) func(*Node) (DuckDBRelation, bool) {
	return func(n *Node) (DuckDBRelation, bool) {
		if n.Op != OpFragment || n.Fragment >= len(cols) {
			return DuckDBRelation{}, false
		}
		return DuckDBRelation{View: "frag_" + strconv.Itoa(n.Fragment), Columns: cols[n.Fragment]}, true
	}
}

var (
	duckPeople = dcolumns("p.id", "integer", "p.name", "text", "p.income", "decimal", "p.score", "float",
		"p.born", "date", "p.seen", "timestamp", "p.active", "boolean", "p.key", "binary", "p.$unit", "binary")
	duckClaims = dcolumns("c.pid", "integer", "c.amount", "decimal", "c.note", "text", "c.key", "binary")
)

func dcolumn(name string) *Expr { return &Expr{Kind: KindColumn, Column: name} }
func dlit(t LiteralType, text string) *Expr {
	return &Expr{Kind: KindLiteral, Literal: &Literal{Type: t, Text: text}}
}
func dbin(l *Expr, op string, r *Expr) *Expr {
	return &Expr{Kind: KindBinary, Op: op, Args: []*Expr{l, r}}
}
func dfn(name string, args ...*Expr) *Expr { return &Expr{Kind: KindFunc, Func: name, Args: args} }

func frag(i int) *Node { return &Node{Op: OpFragment, Fragment: i} }

type duckGolden struct {
	name     string
	plan     *Node
	oneToOne bool
}

func duckGoldenCases() []duckGolden {
	limit := int64(10)
	join := &Node{Op: OpJoin, JoinKind: JoinLeft, Inputs: []*Node{frag(0), frag(1)},
		Keys: []JoinKey{{Left: "p.id", Right: "c.pid"}}, Residual: dbin(dcolumn("c.amount"), ">", dcolumn("p.income"))}
	agg := &Node{Op: OpAggregate, GroupBy: []string{"p.name"}, Inputs: []*Node{join}, Aggs: []Agg{
		{Func: "count_star", Alias: "$1"}, {Func: "sum", Column: "c.amount", Alias: "$2"}, {Func: "avg", Column: "c.amount", Alias: "$3"},
		{Func: "units", Column: "p.$unit", Alias: "$units1"}}}
	return []duckGolden{
		{name: "project_expressions", plan: &Node{Op: OpProject, Inputs: []*Node{frag(0)}, Items: []SelectItem{
			{Alias: "id", Expr: dcolumn("p.id")},
			{Alias: `odd "alias"; --`, Expr: dbin(dcolumn("p.income"), "/", dlit(LitInt, "3"))},
			{Alias: "m", Expr: dbin(dcolumn("p.id"), "%", dlit(LitInt, "7"))},
			{Alias: "l", Expr: &Expr{Kind: KindLike, Args: []*Expr{dcolumn("p.name"), dlit(LitString, `a\%%`)}}},
			{Alias: "d", Expr: dbin(dcolumn("p.born"), "<", dlit(LitString, "2000-01-01 12:00:00"))},
			{Alias: "u", Expr: dfn("upper", dcolumn("p.name"))},
			{Alias: "s", Expr: dfn("substr", dcolumn("p.name"), dlit(LitInt, "2"), dlit(LitInt, "3"))},
			{Alias: "r", Expr: dfn("round", dcolumn("p.income"), dlit(LitInt, "2"))},
			{Alias: "t", Expr: dcolumn("p.seen")},
		}}},
		{name: "join_aggregate_sort_limit", plan: &Node{Op: OpProject, Inputs: []*Node{{Op: OpLimit, Limit: &limit, Offset: 5, Inputs: []*Node{
			{Op: OpSort, SortKeys: []SortKey{{Column: "$2", Desc: true}, {Column: "p.name"}}, Inputs: []*Node{agg}}}}},
			Items: []SelectItem{{Alias: "name", Expr: dcolumn("p.name")}, {Alias: "n", Expr: dcolumn("$1")}, {Alias: "$units1", Expr: dcolumn("$units1")}}}},
		{name: "one_to_one_join", oneToOne: true, plan: &Node{Op: OpJoin, JoinKind: JoinInner, Inputs: []*Node{frag(0), frag(1)},
			Keys: []JoinKey{{Left: "p.key", Right: "c.key"}}, Residual: dbin(dcolumn("c.amount"), ">", dlit(LitInt, "0"))}},
		{name: "semi_distinct", plan: &Node{Op: OpDistinct, Inputs: []*Node{{Op: OpProject, Items: []SelectItem{{Alias: "name", Expr: dcolumn("p.name")}},
			Inputs: []*Node{{Op: OpJoin, JoinKind: JoinSemi, Inputs: []*Node{frag(0), frag(1)}, Keys: []JoinKey{{Left: "p.id", Right: "c.pid"}}}}}}}},
	}
}

func TestRenderDuckDBGolden(t *testing.T) {
	for _, c := range duckGoldenCases() {
		t.Run(c.name, func(t *testing.T) {
			q, err := RenderDuckDB(c.plan, DuckDBOptions{Leaf: duckLeaves(duckPeople, duckClaims), OneToOne: c.oneToOne})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "-- plan\n%s\n-- sql\n%s\n-- args\n%#v\n-- columns\n", c.plan.Normalized(), q.SQL, q.Args)
			for _, col := range q.Columns {
				fmt.Fprintf(&b, "%s %s\n", col.Name, col.Type)
			}
			checkGolden(t, filepath.Join("testdata", "duckdb", c.name+".golden"), b.String())
			checkDuckSQL(t, q, 2)
		})
	}
}

var duckParamRE = regexp.MustCompile(`\$[0-9]+`)

// checkDuckSQL checks what every rendering must satisfy: parameters
// $1..$n each used, n = len(Args), no parameter token left, and each
// relation read exactly once.
func checkDuckSQL(t *testing.T, q *DuckDBQuery, relations int) {
	t.Helper()
	if strings.IndexByte(q.SQL, 0) >= 0 {
		t.Errorf("a parameter token is left in the SQL: %q", q.SQL)
	}
	// $n outside quoted identifiers (aliases like "$1" are names).
	var unquoted strings.Builder
	inQuote := false
	for _, r := range q.SQL {
		if r == '"' {
			inQuote = !inQuote
			continue
		}
		if !inQuote {
			unquoted.WriteRune(r)
		}
	}
	seen := map[string]bool{}
	for _, p := range duckParamRE.FindAllString(unquoted.String(), -1) {
		seen[p] = true
	}
	if len(seen) != len(q.Args) {
		t.Errorf("the SQL uses %d parameters, Args has %d", len(seen), len(q.Args))
	}
	for k := 1; k <= len(q.Args); k++ {
		if !seen["$"+strconv.Itoa(k)] {
			t.Errorf("parameter $%d is never used", k)
		}
	}
	for k := 0; k < relations; k++ {
		if n := strings.Count(q.SQL, `"frag_`+strconv.Itoa(k)+`"`); n > 1 {
			t.Errorf("relation frag_%d is read %d times", k, n)
		}
	}
}

// TestRenderDuckDBLiteralsAreParameters: no literal of the query is
// written into the SQL; hostile names are quoted.
func TestRenderDuckDBLiteralsAreParameters(t *testing.T) {
	hostile := `x'); DROP TABLE t; --`
	plan := &Node{Op: OpFilter, Inputs: []*Node{{Op: OpProject, Inputs: []*Node{frag(0)}, Items: []SelectItem{
		{Alias: `a"b`, Expr: dlit(LitString, hostile)},
		{Alias: "n", Expr: dlit(LitInt, "987654321")},
		{Alias: "f", Expr: dlit(LitFloat, "1.25e-7")},
		{Alias: "like", Expr: &Expr{Kind: KindLike, Args: []*Expr{dcolumn("p.name"), dlit(LitString, "%"+hostile+"%")}}},
		{Alias: "p.name", Expr: dcolumn("p.name")},
	}}}, Predicate: dbin(dcolumn("p.name"), "<>", dlit(LitString, "Robert'); --"))}
	q, err := RenderDuckDB(plan, DuckDBOptions{Leaf: duckLeaves(duckPeople)})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"DROP", "987654321", "1.25e-7", "Robert"} {
		if strings.Contains(q.SQL, text) {
			t.Errorf("the SQL contains the literal %q: %s", text, q.SQL)
		}
	}
	if !strings.Contains(q.SQL, `AS "a""b"`) {
		t.Errorf("the alias is not quoted: %s", q.SQL)
	}
	want := []any{hostile, int64(987654321), 1.25e-7, "%x'); DROP TABLE t; --%", "Robert'); --"}
	if fmt.Sprint(q.Args) != fmt.Sprint(want) {
		t.Errorf("args %#v, want %#v", q.Args, want)
	}
	checkDuckSQL(t, q, 1)
	if got := []string{q.Columns[0].Name, string(q.Columns[0].Type), string(q.Columns[1].Type), string(q.Columns[3].Type)}; strings.Join(got, " ") != `a"b text integer boolean` {
		t.Errorf("columns %v", q.Columns)
	}
}

// TestRenderDuckDBLeafSubstitutes: a node the Leaf function names is read
// from its relation; nothing below it is rendered.
func TestRenderDuckDBLeafSubstitutes(t *testing.T) {
	agg := &Node{Op: OpAggregate, GroupBy: []string{"p.name"}, Aggs: []Agg{{Func: "count_star", Alias: "$1"}}, Inputs: []*Node{frag(0)}}
	plan := &Node{Op: OpFilter, Predicate: dbin(dcolumn("$1"), ">", dlit(LitInt, "2")), Inputs: []*Node{agg}}
	q, err := RenderDuckDB(plan, DuckDBOptions{Leaf: func(n *Node) (DuckDBRelation, bool) {
		if n == agg {
			return DuckDBRelation{View: "gated", Columns: dcolumns("p.name", "text", "$1", "integer")}, true
		}
		return DuckDBRelation{}, false
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q.SQL, `FROM "gated" AS v("v0", "v1")`) || strings.Contains(q.SQL, "count(") {
		t.Errorf("the aggregate is not read from its relation: %s", q.SQL)
	}
	if len(q.Columns) != 2 || q.Columns[1].Name != "$1" {
		t.Errorf("columns %v", q.Columns)
	}
}

func TestRenderDuckDBRefusals(t *testing.T) {
	leaf := duckLeaves(duckPeople, duckClaims)
	proj := func(e *Expr) *Node {
		return &Node{Op: OpProject, Inputs: []*Node{frag(0)}, Items: []SelectItem{{Alias: "x", Expr: e}}}
	}
	deep := dcolumn("p.name")
	for k := 0; k < 12; k++ {
		deep = dfn("substr", dfn("upper", deep), dbin(dcolumn("p.id"), "%", dlit(LitInt, "3")), dlit(LitInt, "5"))
	}
	cases := []struct {
		name string
		plan *Node
		code string
	}{
		{"no_relation", frag(5), sluice.EInternal},
		{"unknown_op", &Node{Op: "pivot", Inputs: []*Node{frag(0)}}, sluice.ENotSupported},
		{"empty_window", &Node{Op: OpWindow, Inputs: []*Node{frag(0)}}, sluice.EInvalid},
		{"join_inputs", &Node{Op: OpJoin, JoinKind: JoinInner, Inputs: []*Node{frag(0)}}, sluice.EInternal},
		{"semi_residual_not_a_condition", &Node{Op: OpJoin, JoinKind: JoinSemi, Inputs: []*Node{frag(0), frag(1)}, Keys: []JoinKey{{Left: "p.id", Right: "c.pid"}},
			Residual: dcolumn("c.amount")}, sluice.EInvalid},
		{"join_kind", &Node{Op: OpJoin, JoinKind: "full", Inputs: []*Node{frag(0), frag(1)}, Keys: []JoinKey{{Left: "p.id", Right: "c.pid"}}}, sluice.ENotSupported},
		{"join_key_kinds", &Node{Op: OpJoin, JoinKind: JoinInner, Inputs: []*Node{frag(0), frag(1)}, Keys: []JoinKey{{Left: "p.name", Right: "c.pid"}}}, sluice.EInvalid},
		{"nul_alias", &Node{Op: OpProject, Inputs: []*Node{frag(0)}, Items: []SelectItem{{Alias: "a\x00b", Expr: dcolumn("p.id")}}}, sluice.ENotSupported},
		{"round_digits", proj(dfn("round", dcolumn("p.score"), dlit(LitInt, "16"))), sluice.ENotSupported},
		{"round_digits_column", proj(dfn("round", dcolumn("p.score"), dcolumn("p.id"))), sluice.ENotSupported},
		{"mod_decimal", proj(dbin(dcolumn("p.income"), "%", dlit(LitInt, "2"))), sluice.ENotSupported},
		{"unknown_function", proj(dfn("md5", dcolumn("p.name"))), sluice.ENotSupported},
		{"aggregate_in_expression", proj(&Expr{Kind: KindAggregate, Func: "sum", Args: []*Expr{dcolumn("p.id")}}), sluice.ENotSupported},
		{"type_error", proj(dbin(dcolumn("p.name"), "+", dlit(LitInt, "1"))), sluice.EInvalid},
		{"bad_date", proj(dbin(dcolumn("p.born"), "<", dlit(LitString, "soon"))), sluice.EInvalid},
		{"ambiguous_case", proj(dcolumn("P.Id")), ""},
		{"no_column", proj(dcolumn("nope")), sluice.EInvalid},
		{"too_large", proj(deep), sluice.ENotSupported},
		{"units_text", &Node{Op: OpAggregate, Inputs: []*Node{frag(0)}, Aggs: []Agg{{Func: "units", Column: "p.name", Alias: "u"}}}, sluice.EInvalid},
		{"agg_func", &Node{Op: OpAggregate, Inputs: []*Node{frag(0)}, Aggs: []Agg{{Func: "median", Column: "p.id", Alias: "m"}}}, sluice.ENotSupported},
		{"agg_dup", &Node{Op: OpAggregate, GroupBy: []string{"p.id"}, Inputs: []*Node{frag(0)}, Aggs: []Agg{{Func: "count_star", Alias: "P.ID"}}}, sluice.EInvalid},
		{"negative_offset", &Node{Op: OpLimit, Offset: -1, Inputs: []*Node{frag(0)}}, sluice.EInvalid},
		{"empty_sort", &Node{Op: OpSort, Inputs: []*Node{frag(0)}}, sluice.EInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := RenderDuckDB(c.plan, DuckDBOptions{Leaf: leaf})
			if c.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var se *sluice.Error
			if !errors.As(err, &se) || se.Code != c.code {
				t.Fatalf("got %v; want a %s error", err, c.code)
			}
		})
	}
}

func TestDuckLikePattern(t *testing.T) {
	for in, want := range map[string]string{
		`abc`:     `abc`,
		`a%_`:     `a%_`,
		`a\%b`:    `a\%b`,
		`a\_b`:    `a\_b`,
		`a\\b`:    `a\\b`,
		`a\b`:     `ab`,
		`tail\`:   `tail\\`,
		`中\文%`:    `中文%`,
		`\\\`:     `\\\\`,
		`%%`:      `%%`,
		`\%\%\\%`: `\%\%\\%`,
	} {
		if got := duckLikePattern(in); got != want {
			t.Errorf("duckLikePattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDuckDBRuntimeError(t *testing.T) {
	cases := map[string]string{
		"Invalid Input Error: " + DuckDBOneToOneMessage:                     sluice.ENotSupported,
		"Out of Range Error: Overflow in addition of INT64 (9 + 1)!":        sluice.EInvalid,
		"Conversion Error: Type INT128 with value 99 can't be cast":         sluice.EInvalid,
		"Invalid Input Error: " + duckUnitsMessage:                          sluice.EInternal,
		"Out of Memory Error: could not allocate block of size 256.0 KiB":   sluice.EResource,
		"Binder Error: something unexpected about 12345-secret-value":       sluice.EInternal,
		"INTERRUPT Error: Interrupted!":                                     sluice.EUnavailable,
		"Invalid Input Error: Parameter argument/count mismatch for query!": sluice.EInternal,
	}
	for text, code := range cases {
		err := DuckDBRuntimeError(errors.New(text))
		if sluice.ErrorCode(err) != code {
			t.Errorf("%q: code %s, want %s", text, sluice.ErrorCode(err), code)
		}
		msg := sluice.ErrorMessage(err)
		for _, secret := range []string{"9 + 1", "99", "12345", "256.0"} {
			if strings.Contains(msg, secret) {
				t.Errorf("%q: message %q repeats DuckDB's values", text, msg)
			}
		}
	}
	if !IsDuckDBOneToOne(errors.New("Invalid Input Error: " + DuckDBOneToOneMessage)) {
		t.Error("IsDuckDBOneToOne misses the one-to-one error")
	}
	if err := DuckDBRuntimeError(context.Canceled); err != context.Canceled {
		t.Errorf("cancellation became %v", err)
	}
}

// TestRenderDuckDBPlannerPlans: the sandbox plan of every multi-dataset
// golden query renders, its fragments read once each.
func TestRenderDuckDBPlannerPlans(t *testing.T) {
	cat := multiCatalog(t)
	p := New(cat)
	for _, c := range multiCases {
		t.Run(c.name, func(t *testing.T) {
			pl := mustPlan(t, p, c.sql)
			var rels []DuckDBRelation
			for i, f := range pl.Fragments {
				dept, name, _ := strings.Cut(f.Dataset, ".")
				fields, err := StreamFields(f, cat.Dataset(dept, name))
				if err != nil {
					t.Fatal(err)
				}
				var cols []DuckDBColumn
				for _, fd := range fields {
					cols = append(cols, DuckDBColumn{Name: fd.Name, Type: fd.Type})
				}
				rels = append(rels, DuckDBRelation{View: "frag_" + strconv.Itoa(i), Columns: cols})
			}
			for _, oto := range []bool{false, true} {
				q, err := RenderDuckDB(pl.Sandbox, DuckDBOptions{OneToOne: oto, Leaf: func(n *Node) (DuckDBRelation, bool) {
					if n.Op != OpFragment {
						return DuckDBRelation{}, false
					}
					return rels[n.Fragment], true
				}})
				if err != nil {
					t.Fatalf("render: %v\n%s", err, pl.Sandbox.Normalized())
				}
				checkDuckSQL(t, q, len(rels))
			}
		})
	}
}
