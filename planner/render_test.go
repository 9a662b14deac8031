package planner

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

type renderCase struct {
	name  string
	sql   string
	masks map[string]sluice.MaskRule
	k     int
}

var residentMasks = map[string]sluice.MaskRule{
	"name": sluice.MaskSurname, "birth_date": sluice.MaskYear, "phone": sluice.MaskPhone, "id_card": sluice.MaskIDCard,
}

var renderCases = []renderCase{
	{name: "plain_rows", sql: "SELECT name, industry, registered_capital FROM market.enterprises WHERE district = '城东区' AND status IN ('active', 'suspended') ORDER BY registered_capital DESC LIMIT 20"},
	{name: "star", sql: "SELECT * FROM police.criminal_records"},
	{name: "masked_rows", sql: "SELECT name, id_card, phone, birth_date, district FROM civil.residents WHERE birth_date >= 1990 AND name LIKE '张%' ORDER BY birth_date", masks: residentMasks},
	{name: "aggregate_k", sql: "SELECT district, count(*) AS n, avg(monthly_allowance) AS avg_allowance FROM civil.residents WHERE low_income = 1 GROUP BY district ORDER BY n DESC", k: 10},
	{name: "aggregate_having_k", sql: "SELECT insurance_type, sum(annual_claims) AS claims FROM health.insured GROUP BY insurance_type HAVING count(DISTINCT id_card) > 5 AND avg(hospital_visits) >= 1.5", k: 10},
	{name: "whole_table_k", sql: "SELECT count(*) AS n, max(annual_claims) FROM health.insured WHERE chronic_disease = 1", k: 10},
	{name: "group_by_masked", sql: "SELECT birth_date AS birth_year, substr(name, 1, 1) AS surname, count(*) FROM civil.residents GROUP BY 1, 2 ORDER BY 1, surname", masks: residentMasks, k: 5},
	{name: "expressions", sql: "SELECT credit_code, registered_capital / 10000 AS wan, round(registered_capital / 3, 2) AS third, CASE WHEN registered_capital > 1000000 THEN 'large' WHEN registered_capital IS NULL THEN NULL ELSE 'small' END AS size, length(name) AS len, coalesce(legal_rep_name, 'unknown') AS rep FROM market.enterprises WHERE NOT (status = 'revoked') AND established BETWEEN '2010-01-01' AND '2020-12-31' AND -registered_capital < -5 LIMIT 10 OFFSET 20"},
	{name: "distinct_offset", sql: "SELECT DISTINCT lower(industry) AS industry FROM market.enterprises ORDER BY 1 LIMIT 100 OFFSET 5"},
	{name: "redact_mask", sql: "SELECT household_district, migrant, name FROM police.household WHERE migrant = 1 AND name IS NOT NULL", masks: map[string]sluice.MaskRule{"name": sluice.MaskRedact}},
}

func withObligations(f *Fragment, masks map[string]sluice.MaskRule, k int) *Fragment {
	c := *f
	c.Masks, c.MinGroupSize = masks, k
	return &c
}

func TestRenderGolden(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			pl := mustPlan(t, p, c.sql)
			f := withObligations(pl.Fragment, c.masks, c.k)
			dept, name, _ := strings.Cut(f.Dataset, ".")
			ds := cat.Dataset(dept, name)
			var b strings.Builder
			fmt.Fprintf(&b, "-- query\n%s\n-- normalized\n%s\n", c.sql, f.Normalized())
			fmt.Fprintf(&b, "-- usages\n%s\n-- aggregate\n%v\n", lin(pl.Usages), pl.Aggregate)
			fields, err := OutputFields(f, ds)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "-- fields\n%v\n", fields)
			render := Render
			if f.MinGroupSize > 0 {
				render = RenderUnits
			}
			for _, d := range []sluice.Driver{sluice.DriverSQLite, sluice.DriverPostgres, sluice.DriverMySQL} {
				sql, args, err := render(f, ds, d)
				if err != nil {
					t.Fatalf("%s: %v", d, err)
				}
				fmt.Fprintf(&b, "-- %s\n%s\n-- %s args\n%#v\n", d, sql, d, args)
				if strings.Count(sql, "?")+strings.Count(sql, "$") < len(args) && d != sluice.DriverPostgres {
					t.Errorf("%s: fewer placeholders than args", d)
				}
			}
			checkGolden(t, filepath.Join("testdata", "render", c.name+".golden"), b.String())
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./planner -run TestRenderGolden -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderDialectBasics(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	ds := cat.Dataset("market", "enterprises")
	f := mustPlan(t, p, "SELECT name AS \"a\"\"b`c\" FROM market.enterprises WHERE name = 'x''; DROP TABLE t; --' AND registered_capital > 1").Fragment
	tests := []struct {
		d    sluice.Driver
		want string
	}{
		{sluice.DriverSQLite, `SELECT "name" AS "a""b` + "`" + `c" FROM "mr"."enterprises" WHERE (("name" = ?) AND ("registered_capital" > ?))`},
		{sluice.DriverPostgres, `SELECT "name" AS "a""b` + "`" + `c" FROM "mr"."enterprises" WHERE (("name" = CAST($1 AS TEXT)) AND ("registered_capital" > CAST($2 AS INTEGER)))`},
		{sluice.DriverMySQL, "SELECT `name` AS `a\"b``c` FROM `mr`.`enterprises` WHERE ((`name` = ?) AND (`registered_capital` > ?))"},
	}
	for _, tc := range tests {
		sql, args, err := Render(f, ds, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if sql != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.d, sql, tc.want)
		}
		if len(args) != 2 || args[0] != "x'; DROP TABLE t; --" || args[1] != int64(1) {
			t.Errorf("%s: args %#v", tc.d, args)
		}
	}
	if _, _, err := Render(f, ds, "oracle"); sluice.ErrorCode(err) != sluice.EInvalid {
		t.Errorf("unknown dialect: %v", err)
	}
	if _, _, err := Render(f, cat.Dataset("civil", "residents"), sluice.DriverSQLite); err == nil {
		t.Error("rendered a fragment against another dataset")
	}
}

func TestLikeToGlob(t *testing.T) {
	for in, want := range map[string]string{
		"张%":       "张*",
		"a_b%":     "a?b*",
		`a\%b\_c`:  "a%b_c",
		"x*y?z[w]": "x[*]y[?]z[[]w]",
		`tail\`:    `tail\`,
		`\\`:       `\`,
		"":         "",
	} {
		if got := likeToGlob(in); got != want {
			t.Errorf("likeToGlob(%q) = %q, want %q", in, got, want)
		}
	}
}
