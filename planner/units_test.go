package planner

import (
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// TestUnitSets: every row of the group first, then each bare aggregate
// argument once, in order of first appearance (SELECT, HAVING, ORDER BY);
// an aggregate of an expression has no nameable contributors.
func TestUnitSets(t *testing.T) {
	p := New(testCatalog(t))
	f := withObligations(mustPlan(t, p, "SELECT insurance_type, COUNT(*) AS n, AVG(annual_claims) AS a, SUM(annual_claims) AS s FROM health.insured GROUP BY insurance_type HAVING COUNT(hospital_visits) > 3 ORDER BY AVG(chronic_disease)").Fragment, nil, 10)
	sets, err := f.UnitSets()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sets {
		if s.Dataset != "health.insured" || s.K != 10 {
			t.Fatalf("set %+v: want health.insured, k 10", s)
		}
		got = append(got, s.Column+"="+s.Of)
	}
	want := "__sluice_units_0= __sluice_units_1=annual_claims __sluice_units_2=hospital_visits __sluice_units_3=chronic_disease"
	if strings.Join(got, " ") != want {
		t.Fatalf("sets %v\nwant %s", got, want)
	}
	if sets, _ := withObligations(f, nil, 0).UnitSets(); sets != nil {
		t.Fatalf("a fragment without k has no sets: %v", sets)
	}
	expr := withObligations(mustPlan(t, p, "SELECT SUM(CASE WHEN hospital_visits > 3 THEN annual_claims ELSE 0 END) AS s FROM health.insured").Fragment, nil, 10)
	if _, err := expr.UnitSets(); sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(sluice.ErrorMessage(err), "bare column") {
		t.Fatalf("an aggregate of an expression: want ENotSupported naming bare columns, got %v", err)
	}
}

// TestRenderUnits: the k condition and LIMIT/OFFSET leave the SQL, each
// set's list and count join the select list, the person key is read even
// when masks wrap the table, and every dialect lists with its own
// function.
func TestRenderUnits(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	ds := cat.Dataset("health", "insured")
	base := mustPlan(t, p, "SELECT insurance_type, count(*) AS n, avg(annual_claims) AS a FROM health.insured WHERE hospital_visits > 2 GROUP BY insurance_type HAVING avg(annual_claims) > 100 ORDER BY n DESC LIMIT 5 OFFSET 1").Fragment
	tests := []struct {
		d    sluice.Driver
		want []string
	}{
		{sluice.DriverSQLite, []string{`group_concat("id_card", ',') AS "__sluice_units_0", COUNT("id_card") AS "__sluice_unitn_0"`,
			`CASE WHEN COUNT(CASE WHEN "annual_claims" IS NOT NULL THEN "id_card" END) = COUNT("id_card") THEN NULL ELSE group_concat(CASE WHEN "annual_claims" IS NOT NULL THEN "id_card" END, ',') END AS "__sluice_units_1"`}},
		{sluice.DriverPostgres, []string{`string_agg(CAST("id_card" AS TEXT), ',') AS "__sluice_units_0"`}},
		{sluice.DriverMySQL, []string{"GROUP_CONCAT(`id_card` SEPARATOR ',') AS `__sluice_units_0`, COUNT(`id_card`) AS `__sluice_unitn_0`"}},
	}
	for _, tc := range tests {
		sql, _, err := RenderUnits(withObligations(base, nil, 10), ds, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(sql, w) {
				t.Errorf("%s: %s\nwant it to contain %s", tc.d, sql, w)
			}
		}
		for _, banned := range []string{"COUNT(*) >=", "LIMIT", "OFFSET"} {
			if strings.Contains(sql, banned) {
				t.Errorf("%s: %q left in %s", tc.d, banned, sql)
			}
		}
		if !strings.Contains(sql, "HAVING") || !strings.Contains(sql, "ORDER BY 2 DESC") {
			t.Errorf("%s: the analyst's HAVING or ORDER BY is lost: %s", tc.d, sql)
		}
	}
	// Masks wrap the table in a derived table: the key must be in it.
	civil := cat.Dataset("civil", "residents")
	masked := withObligations(mustPlan(t, p, "SELECT name, count(*) AS n FROM civil.residents GROUP BY name").Fragment, map[string]sluice.MaskRule{"name": sluice.MaskSurname}, 10)
	sql, _, err := RenderUnits(masked, civil, sluice.DriverSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sql, `"id_card" AS "__sluice_unit" FROM "residents") AS "t"`) || !strings.Contains(sql, `group_concat("__sluice_unit", ',')`) {
		t.Errorf("the raw person key is not read through the masking derived table: %s", sql)
	}
	fields, err := UnitScanFields(withObligations(base, nil, 10), ds)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fields {
		names = append(names, f.Name+":"+string(f.Type))
	}
	if got := strings.Join(names, " "); got != "insurance_type:text n:integer a:float __sluice_units_0:text __sluice_unitn_0:integer __sluice_units_1:text __sluice_unitn_1:integer" {
		t.Errorf("scan fields %s", got)
	}
	stream, err := StreamFields(withObligations(base, nil, 10), ds)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(stream); n != 5 || stream[3].Type != sluice.TypeBinary || stream[4].Name != "__sluice_units_1" {
		t.Errorf("stream fields %v: want the outputs and one binary sketch per set", stream)
	}
	noUnit := *ds
	noUnit.Columns = append([]*sluice.Column(nil), ds.Columns...)
	for i, c := range noUnit.Columns {
		if c.Name == "id_card" {
			cc := *c
			cc.Unique = false
			noUnit.Columns[i] = &cc
		}
	}
	refused := []struct {
		name string
		f    *Fragment
		ds   *sluice.Dataset
		code string
	}{
		{"no minimum group size", withObligations(base, nil, 0), ds, sluice.EInvalid},
		{"distinct", func() *Fragment { f := withObligations(base, nil, 10); f.Distinct = true; return f }(), ds, sluice.ENotSupported},
		{"no person key", withObligations(base, nil, 10), &noUnit, sluice.ENotSupported},
		{"reserved alias", func() *Fragment {
			f := withObligations(base, nil, 10)
			f.Select = append([]SelectItem(nil), f.Select...)
			f.Select[1].Alias = strings.ToUpper(UnitSetPrefix) + "0"
			return f
		}(), ds, sluice.EInvalid},
	}
	for _, tc := range refused {
		if _, _, err := RenderUnits(tc.f, tc.ds, sluice.DriverSQLite); sluice.ErrorCode(err) != tc.code {
			t.Errorf("%s: want %s, got %v", tc.name, tc.code, err)
		}
	}
}

// TestCountUnits: a protected fragment streams its persons' pseudonyms,
// they reach the one aggregate through every operator, one set per
// protected fragment and aggregate column is collected there and carried
// to the top; shapes the units cannot follow are refused.
func TestCountUnits(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	pl := mustPlan(t, p, "SELECT r.district, COUNT(*) AS residents, AVG(i.annual_claims) AS avg_claims FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district HAVING COUNT(*) > 1 ORDER BY r.district")
	if err := pl.CountUnits(cat, map[string]int{"health.insured": 10}); err != nil {
		t.Fatal(err)
	}
	var civilF, healthF *Fragment
	for _, f := range pl.Fragments {
		switch f.Dataset {
		case "civil.residents":
			civilF = f
		case "health.insured":
			healthF = f
		}
	}
	if civilF.UnitAlias != "" || healthF.UnitAlias != "i.$unit" {
		t.Fatalf("unit aliases: civil %q, health %q; want only health's, i.$unit", civilF.UnitAlias, healthF.UnitAlias)
	}
	if len(pl.UnitSets) != 2 || pl.UnitSets[0].Of != "" || pl.UnitSets[1].Of == "" || pl.UnitSets[1].K != 10 || pl.UnitSets[0].Dataset != "health.insured" {
		t.Fatalf("unit sets %+v: want every row and the AVG's column, of health.insured, k 10", pl.UnitSets)
	}
	norm := pl.Sandbox.Normalized()
	for _, want := range []string{"units(i.$unit) AS", "CASE WHEN", "IS NOT NULL) THEN i.$unit"} {
		if !strings.Contains(norm, want) {
			t.Errorf("the sandbox plan lacks %q:\n%s", want, norm)
		}
	}
	if err := pl.Verify(); err != nil {
		t.Fatalf("the plan with units does not verify: %v\n%s", err, norm)
	}
	top := pl.outputsOf(pl.Sandbox)
	for _, s := range pl.UnitSets {
		found := false
		for _, o := range top {
			found = found || o == s.Column
		}
		if !found {
			t.Errorf("set %s does not reach the top: outputs %v", s.Column, top)
		}
	}
	refused := []struct{ name, sql string }{
		{"second aggregate", "SELECT t.district, COUNT(*) AS n FROM (SELECT r.district, COUNT(*) AS c FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district) AS t GROUP BY t.district"},
		{"distinct", "SELECT DISTINCT r.district, COUNT(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district"},
		{"protected IN subquery", "SELECT r.district, COUNT(*) AS n FROM civil.residents r WHERE r.id_card IN (SELECT id_card FROM health.insured WHERE chronic_disease = 1) GROUP BY r.district"},
	}
	for _, c := range refused {
		pl, err := p.Plan("q", c.sql)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := pl.CountUnits(cat, map[string]int{"health.insured": 10}); sluice.ErrorCode(err) != sluice.ENotSupported {
			t.Errorf("%s: want ENotSupported, got %v", c.name, err)
		}
	}
}

// An aggregate over unprotected rows only, below the release's aggregate,
// counts no person and is allowed; one over protected rows is not.
func TestCountUnitsUnprotectedSecondAggregate(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	ok := []string{
		"SELECT r.district, d.c, COUNT(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card JOIN (SELECT district, COUNT(*) AS c FROM market.enterprises GROUP BY district) d ON d.district = r.district GROUP BY r.district, d.c",
		"SELECT insurance_type, COUNT(*) AS n FROM health.insured WHERE annual_claims > (SELECT AVG(registered_capital) FROM market.enterprises) GROUP BY insurance_type",
	}
	for _, q := range ok {
		pl := mustPlan(t, p, q)
		if err := pl.CountUnits(cat, map[string]int{"health.insured": 10}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(pl.UnitSets) == 0 || pl.UnitSets[0].Dataset != "health.insured" {
			t.Fatalf("%s: unit sets %+v, want health.insured's", q, pl.UnitSets)
		}
		if err := pl.Verify(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The same derived table, but of the protected dataset: a second
	// aggregate over its persons.
	pl := mustPlan(t, p, "SELECT r.district, d.c, COUNT(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card JOIN (SELECT insurance_type, COUNT(*) AS c FROM health.insured GROUP BY insurance_type) d ON d.insurance_type = i.insurance_type GROUP BY r.district, d.c")
	if err := pl.CountUnits(cat, map[string]int{"health.insured": 10}); sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), "aggregate only once") {
		t.Fatalf("want the second-aggregate refusal, got %v", err)
	}
}
