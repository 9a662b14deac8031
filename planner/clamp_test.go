package planner

import (
	"database/sql"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// testBounds is a BoundsFunc over "dataset.column" keys; any other column
// has no bounds, as a grant that states none.
func testBounds(m map[string]sluice.Bounds) BoundsFunc {
	return func(dataset, column string) (sluice.Bounds, error) {
		if b, ok := m[dataset+"."+column]; ok {
			return b, nil
		}
		return sluice.Bounds{}, sluice.Errorf(sluice.ENotSupported, "no clamp bounds for %s.%s", dataset, column)
	}
}

var healthBounds = map[string]sluice.Bounds{
	"health.insured.annual_claims":      {0, 5000},
	"health.insured.hospital_visits":    {0.5, 20.7}, // whole numbers within: [1, 20]
	"civil.residents.monthly_allowance": {-100.5, 600},
	"civil.residents.low_income":        {0.2, 0.8}, // no whole number within
}

func TestClampSumsSingleDataset(t *testing.T) {
	cases := []struct {
		name, sql string
		wantErr   string // substring of an ENotSupported error; "" = allowed
		wantSel   string // the normalized SELECT line after the rewrite
		wantNoisy []NoisyOutput
		// floatSum: fractional bounds make a decimal column's sum a
		// float (there is no decimal literal); otherwise the type stays.
		floatSum bool
	}{
		{
			name:      "count only",
			sql:       "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type",
			wantSel:   `SELECT insurance_type AS "insurance_type", count(*) AS "n"`,
			wantNoisy: []NoisyOutput{{Name: "n", Sensitivity: 1}},
		},
		{
			name:      "decimal sum with integral bounds",
			sql:       "SELECT insurance_type, SUM(annual_claims) AS claims, COUNT(*) AS n FROM health.insured GROUP BY insurance_type",
			wantSel:   `SELECT insurance_type AS "insurance_type", sum((CASE WHEN (annual_claims < 0) THEN 0 WHEN (annual_claims > 5000) THEN 5000 ELSE annual_claims END)) AS "claims", count(*) AS "n"`,
			wantNoisy: []NoisyOutput{{Name: "claims", Sum: true, Sensitivity: 5000}, {Name: "n", Sensitivity: 1}},
		},
		{
			name:      "integer column clamped to the whole numbers within its bounds",
			sql:       "SELECT SUM(hospital_visits) AS v FROM health.insured",
			wantSel:   `SELECT sum((CASE WHEN (hospital_visits < 1) THEN 1 WHEN (hospital_visits > 20) THEN 20 ELSE hospital_visits END)) AS "v"`,
			wantNoisy: []NoisyOutput{{Name: "v", Sum: true, Sensitivity: 20}},
		},
		{
			name:      "fractional negative bound, sensitivity is the larger magnitude",
			sql:       "SELECT district, SUM(monthly_allowance) AS a FROM civil.residents GROUP BY district",
			wantSel:   `SELECT district AS "district", sum((CASE WHEN (monthly_allowance < -100.5) THEN -100.5 WHEN (monthly_allowance > 600) THEN 600 ELSE monthly_allowance END)) AS "a"`,
			wantNoisy: []NoisyOutput{{Name: "a", Sum: true, Sensitivity: 600}},
			floatSum:  true,
		},
		{name: "sum without bounds", sql: "SELECT SUM(chronic_disease) AS c FROM health.insured", wantErr: "no clamp bounds for health.insured.chronic_disease"},
		{name: "sum of an expression", sql: "SELECT SUM(annual_claims * 2) AS c FROM health.insured", wantErr: "not the expression (annual_claims * 2)"},
		{name: "avg", sql: "SELECT AVG(annual_claims) AS c FROM health.insured", wantErr: "use SUM and COUNT"},
		{name: "max", sql: "SELECT MAX(annual_claims) AS c FROM health.insured", wantErr: "MAX (c) has no noisy release"},
		{name: "sum distinct", sql: "SELECT SUM(DISTINCT annual_claims) AS c FROM health.insured", wantErr: "SUM(DISTINCT"},
		{name: "expression over an aggregate", sql: "SELECT COUNT(*) + 0 AS n FROM health.insured", wantErr: "computes on an aggregate"},
		{name: "having on an aggregate", sql: "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type HAVING COUNT(*) > 100", wantErr: "HAVING cannot test an aggregate"},
		{name: "order by an aggregate", sql: "SELECT insurance_type, SUM(annual_claims) AS c FROM health.insured GROUP BY insurance_type ORDER BY c DESC", wantErr: "ORDER BY cannot sort on an aggregate"},
		{name: "no aggregate", sql: "SELECT insurance_type FROM health.insured GROUP BY insurance_type", wantErr: "only aggregates are released"},
		{name: "integer bounds with no whole number", sql: "SELECT SUM(low_income) AS l FROM civil.residents", wantErr: "leave no range"},
		{name: "order by a group key is fine", sql: "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type ORDER BY insurance_type",
			wantSel: `SELECT insurance_type AS "insurance_type", count(*) AS "n"`, wantNoisy: []NoisyOutput{{Name: "n", Sensitivity: 1}}},
	}
	cat := testCatalog(t)
	p := New(cat)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl := mustPlan(t, p, c.sql)
			err := pl.ClampSums(cat, testBounds(healthBounds))
			if c.wantErr != "" {
				if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want ENotSupported saying %q, got %v", c.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sel := strings.Split(pl.Fragment.Normalized(), "\n")[1]; sel != c.wantSel {
				t.Errorf("select\n got %s\nwant %s", sel, c.wantSel)
			}
			noisy, err := pl.Fragment.NoisyOutputs()
			if err != nil {
				t.Fatal(err)
			}
			if len(noisy) != len(c.wantNoisy) {
				t.Fatalf("noisy %+v, want %+v", noisy, c.wantNoisy)
			}
			for i := range noisy {
				if noisy[i] != c.wantNoisy[i] {
					t.Errorf("noisy[%d] = %+v, want %+v", i, noisy[i], c.wantNoisy[i])
				}
			}
			// The rewritten fragment is one every agent accepts, and it
			// still sums the type it summed.
			dept, name, _ := strings.Cut(pl.Fragment.Dataset, ".")
			ds := cat.Dataset(dept, name)
			if err := pl.Fragment.Validate(ds); err != nil {
				t.Fatalf("the clamped fragment does not validate: %v", err)
			}
			before, _ := OutputFields(mustPlan(t, p, c.sql).Fragment, ds)
			after, _ := OutputFields(pl.Fragment, ds)
			for i := range before {
				if c.floatSum && before[i].Type == sluice.TypeDecimal && after[i].Type == sluice.TypeFloat {
					continue
				}
				if before[i] != after[i] {
					t.Errorf("output %s was %s, is %s after clamping", before[i].Name, before[i].Type, after[i].Type)
				}
			}
		})
	}
}

// TestNoisyOutputsRefusesUnclampedSums: the gate's sensitivity is read from
// the clamp the fragment computes; a sum that merely looks like one, or
// none, is never released.
func TestNoisyOutputsRefusesUnclampedSums(t *testing.T) {
	col := func() *Expr { return &Expr{Kind: KindColumn, Column: "annual_claims"} }
	lit := func(s string) *Expr { return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: s}} }
	clamp := func(lo, thenLo, hi, thenHi string, els *Expr) *Expr {
		return &Expr{Kind: KindCase, HasElse: true, Args: []*Expr{
			{Kind: KindBinary, Op: "<", Args: []*Expr{col(), lit(lo)}}, lit(thenLo),
			{Kind: KindBinary, Op: ">", Args: []*Expr{col(), lit(hi)}}, lit(thenHi),
			els,
		}}
	}
	cases := []struct {
		name string
		arg  *Expr
		ok   bool
	}{
		{"clamped", clamp("0", "0", "10", "10", col()), true},
		{"bare column", col(), false},
		{"then differs from the bound", clamp("0", "0", "10", "1000000", col()), false},
		{"else is another value", clamp("0", "0", "10", "10", lit("99999")), false},
		{"bounds reversed", clamp("10", "10", "0", "0", col()), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &Fragment{Dataset: "health.insured", Select: []SelectItem{{Alias: "s", Expr: &Expr{Kind: KindAggregate, Func: "sum", Args: []*Expr{c.arg}}}}}
			out, err := f.NoisyOutputs()
			if c.ok {
				if err != nil || len(out) != 1 || out[0].Sensitivity != 10 || !out[0].Sum {
					t.Fatalf("got %+v, %v", out, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("an unclamped sum was accepted: %+v", out)
			}
		})
	}
}

// TestClampRenderedPerDialect: the bounds reach the agent's SQL as bind
// parameters typed like the column (integers as integers), inside the SUM.
func TestClampRenderedPerDialect(t *testing.T) {
	cat := testCatalog(t)
	pl := mustPlan(t, New(cat), "SELECT SUM(hospital_visits) AS v, SUM(annual_claims) AS c FROM health.insured")
	if err := pl.ClampSums(cat, testBounds(map[string]sluice.Bounds{"health.insured.hospital_visits": {0, 20}, "health.insured.annual_claims": {0, 2500.5}})); err != nil {
		t.Fatal(err)
	}
	ds := cat.Dataset("health", "insured")
	cases := []struct {
		d    sluice.Driver
		want string
	}{
		{sluice.DriverSQLite, `SELECT SUM((CASE WHEN ("hospital_visits" < ?) THEN ? WHEN ("hospital_visits" > ?) THEN ? ELSE "hospital_visits" END)) AS "v", SUM((CASE WHEN ("annual_claims" < ?) THEN ? WHEN ("annual_claims" > ?) THEN ? ELSE "annual_claims" END)) AS "c" FROM "insured"`},
		{sluice.DriverPostgres, `SELECT SUM((CASE WHEN ("hospital_visits" < CAST($1 AS INTEGER)) THEN CAST($2 AS INTEGER) WHEN ("hospital_visits" > CAST($3 AS INTEGER)) THEN CAST($4 AS INTEGER) ELSE "hospital_visits" END)) AS "v", SUM((CASE WHEN ("annual_claims" < CAST($5 AS INTEGER)) THEN CAST($6 AS INTEGER) WHEN ("annual_claims" > CAST($7 AS DOUBLE PRECISION)) THEN CAST($8 AS DOUBLE PRECISION) ELSE "annual_claims" END)) AS "c" FROM "insured"`},
		{sluice.DriverMySQL, "SELECT SUM((CASE WHEN (`hospital_visits` < ?) THEN ? WHEN (`hospital_visits` > ?) THEN ? ELSE `hospital_visits` END)) AS `v`, SUM((CASE WHEN (`annual_claims` < ?) THEN ? WHEN (`annual_claims` > ?) THEN ? ELSE `annual_claims` END)) AS `c` FROM `insured`"},
	}
	for _, c := range cases {
		t.Run(string(c.d), func(t *testing.T) {
			q, args, err := Render(pl.Fragment, ds, c.d)
			if err != nil {
				t.Fatal(err)
			}
			if q != c.want {
				t.Errorf("sql\n got %s\nwant %s", q, c.want)
			}
			want := []any{int64(0), int64(0), int64(20), int64(20), int64(0), int64(0), 2500.5, 2500.5}
			if len(args) != len(want) {
				t.Fatalf("args %#v, want %#v", args, want)
			}
			for i := range want {
				if args[i] != want[i] {
					t.Errorf("arg %d = %#v, want %#v", i, args[i], want[i])
				}
			}
		})
	}
}

// TestClampExec runs a clamped SUM on each reachable database over the
// residents plus one outlier allowance far above the bound: the database
// adds up the clamped values, never the outlier.
func TestClampExec(t *testing.T) {
	dbs := []struct {
		d          sluice.Driver
		open       func(t *testing.T) *sql.DB
		outlierSQL string
	}{
		{sluice.DriverSQLite, func(t *testing.T) *sql.DB {
			db, err := sql.Open("sqlite", ":memory:")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			db.SetMaxOpenConns(1)
			return db
		}, `INSERT INTO "%s" VALUES ('110105199901010000', '钱七', 'm', '1999-01-01', '城东区', NULL, 1, 1000000)`},
		{sluice.DriverPostgres, func(t *testing.T) *sql.DB {
			return openOrSkip(t, "pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
		}, `INSERT INTO "%s" VALUES ('110105199901010000', '钱七', 'm', '1999-01-01', '城东区', NULL, 1, 1000000)`},
		{sluice.DriverMySQL, func(t *testing.T) *sql.DB {
			return openOrSkip(t, "mysql", "root@tcp(127.0.0.1:3306)/test?charset=utf8mb4")
		}, "INSERT INTO `%s` VALUES ('110105199901010000', '钱七', 'm', '1999-01-01', '城东区', NULL, 1, 1000000)"},
	}
	// True allowances: 500.50 620.00 0 480.25 0 700.00 and the outlier
	// 1000000; by district 城东区 {500.50, 620, 0, 1000000}, 城西区
	// {480.25, 0}, 湟中区 {700}.
	cases := []struct {
		name   string
		bounds sluice.Bounds
		want   []string
	}{
		{"integral bounds", sluice.Bounds{0, 600}, []string{"城东区|1700.50|4", "城西区|480.25|2", "湟中区|600.00|1"}},
		{"fractional bounds", sluice.Bounds{10.5, 550.25}, []string{"城东区|1611.50|4", "城西区|490.75|2", "湟中区|550.25|1"}},
	}
	cat := testCatalog(t)
	for _, d := range dbs {
		t.Run(string(d.d), func(t *testing.T) {
			db := d.open(t)
			ds := execDataset(t)
			createResidents(t, db, d.d, ds.Table)
			if _, err := db.Exec(strings.Replace(d.outlierSQL, "%s", ds.Table, 1)); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					pl := mustPlan(t, New(cat), "SELECT district, SUM(monthly_allowance) AS a, COUNT(*) AS n FROM civil.residents GROUP BY district ORDER BY district")
					if err := pl.ClampSums(cat, testBounds(map[string]sluice.Bounds{"civil.residents.monthly_allowance": c.bounds})); err != nil {
						t.Fatal(err)
					}
					q, args, err := Render(pl.Fragment, ds, d.d)
					if err != nil {
						t.Fatal(err)
					}
					got := query(t, db, q, args)
					for i := range got { // decimals come back with the column's scale or as floats
						parts := strings.Split(got[i], "|")
						parts[1] = fixed2(parts[1])
						got[i] = strings.Join(parts, "|")
					}
					if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
						t.Errorf("%s\n got %q\nwant %q", q, got, c.want)
					}
				})
			}
		})
	}
}

// fixed2 writes a decimal number with two places.
func fixed2(s string) string {
	whole, frac, _ := strings.Cut(s, ".")
	frac += "00"
	return whole + "." + frac[:2]
}

func TestClampSumsAcrossDepartments(t *testing.T) {
	bounds := map[string]sluice.Bounds{"health.insured.annual_claims": {0, 5000}, "health.insured.hospital_visits": {0, 30}}
	cases := []struct {
		name, sql string
		wantErr   string
		wantPlan  []string // lines the normalized sandbox must contain
		wantNoisy []NoisyOutput
	}{
		{
			name: "sum over a joined column is clamped below the aggregate",
			sql:  "SELECT r.district, SUM(i.annual_claims) AS claims, COUNT(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district",
			wantPlan: []string{
				`  aggregate group r.district aggs sum($clamp1) AS "$1", count_star() AS "$2"`,
				`    project r.district AS "r.district", (CASE WHEN (i.annual_claims < 0) THEN 0 WHEN (i.annual_claims > 5000) THEN 5000 ELSE i.annual_claims END) AS "$clamp1"`,
				`      join inner psi(person) keys r.id_card = i.id_card`,
			},
			wantNoisy: []NoisyOutput{{Name: "$1", Sum: true, Sensitivity: 5000}, {Name: "$2", Sensitivity: 1}},
		},
		{
			name:      "a LEFT join on unique keys counts",
			sql:       "SELECT h.household_district, COUNT(*) AS n FROM health.insured i LEFT JOIN police.household h ON i.id_card = h.id_card GROUP BY h.household_district",
			wantNoisy: []NoisyOutput{{Name: "$1", Sensitivity: 1}},
		},
		{
			name: "post-processing above the aggregate is fine",
			sql:  "SELECT r.district, SUM(i.hospital_visits) / 2 AS half FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card WHERE r.low_income = 1 GROUP BY r.district ORDER BY half DESC LIMIT 3",
			wantPlan: []string{
				`(CASE WHEN (i.hospital_visits < 0) THEN 0 WHEN (i.hospital_visits > 30) THEN 30 ELSE i.hospital_visits END) AS "$clamp1"`,
			},
			wantNoisy: []NoisyOutput{{Name: "$1", Sum: true, Sensitivity: 30}},
		},
		{name: "sum of an expression", sql: "SELECT r.district, SUM(i.annual_claims + 1) AS c FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district", wantErr: "not the expression (i.annual_claims + 1)"},
		{name: "sum of the analyst's own column has no bounds", sql: "SELECT r.district, SUM(r.monthly_allowance) AS c FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district", wantErr: "no clamp bounds for civil.residents.monthly_allowance"},
		{name: "avg", sql: "SELECT r.district, AVG(i.annual_claims) AS c FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district", wantErr: "use SUM and COUNT"},
		{name: "one-to-many join", sql: "SELECT e.industry, SUM(i.annual_claims) AS c FROM market.enterprises e JOIN health.insured i ON e.legal_rep_id_card = i.id_card GROUP BY e.industry", wantErr: "market.enterprises.legal_rep_id_card is not declared unique"},
		{name: "one-to-many join, counting only", sql: "SELECT i.insurance_type, COUNT(*) AS n FROM health.insured i JOIN market.enterprises e ON i.id_card = e.legal_rep_id_card GROUP BY i.insurance_type", wantErr: "market.enterprises.legal_rep_id_card is not declared unique"},
		{name: "join on a plain, non-unique column", sql: "SELECT r.gender, COUNT(*) AS n FROM civil.residents r JOIN police.household h ON r.district = h.household_district GROUP BY r.gender", wantErr: "civil.residents.district is not declared unique"},
		{name: "two aggregates", sql: "SELECT e.district, t.n FROM market.enterprises e JOIN (SELECT district, count(*) AS n FROM civil.residents GROUP BY district) t ON e.district = t.district", wantErr: "the aggregate must be the query's last step"},
		{name: "aggregate then aggregate", sql: "SELECT t.n, COUNT(*) AS groups FROM (SELECT r.district, COUNT(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district) t GROUP BY t.n", wantErr: "may aggregate only once"},
	}
	cat := testCatalog(t)
	p := New(cat)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl := mustPlan(t, p, c.sql)
			err := pl.ClampSums(cat, testBounds(bounds))
			if c.wantErr != "" {
				if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want ENotSupported saying %q, got %v\n%s", c.wantErr, err, pl.Sandbox.Normalized())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			norm := pl.Sandbox.Normalized()
			for _, l := range c.wantPlan {
				if !strings.Contains(norm, l) {
					t.Errorf("the sandbox plan lacks %q:\n%s", l, norm)
				}
			}
			agg := pl.Sandbox
			for agg.Op != OpAggregate {
				agg = agg.Inputs[0]
			}
			noisy, err := NoisyAggs(agg)
			if err != nil {
				t.Fatal(err)
			}
			if len(noisy) != len(c.wantNoisy) {
				t.Fatalf("noisy %+v, want %+v", noisy, c.wantNoisy)
			}
			for i := range noisy {
				if noisy[i] != c.wantNoisy[i] {
					t.Errorf("noisy[%d] = %+v, want %+v", i, noisy[i], c.wantNoisy[i])
				}
			}
		})
	}
}
