package planner

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// multiCatalog is the demo world plus tax.payers, whose join key is of the
// enterprise domain.
func multiCatalog(t testing.TB) *sluice.Catalog {
	t.Helper()
	depts := testCatalog(t).Departments()
	tax := &sluice.Department{ID: "tax", Name: "Tax Bureau", Datasets: []*sluice.Dataset{{
		Name: "payers", ShareClass: sluice.ShareConditional, LegalBasis: "Tax Collection Law, art. 8",
		Columns: []*sluice.Column{
			{Name: "credit_code", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseJoinKey, KeyDomain: "enterprise"},
			{Name: "tax_paid", Type: sluice.TypeDecimal, Grade: sluice.GradeL3, Release: sluice.ReleaseAggregate},
			{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
		},
	}}}
	if err := tax.Validate(); err != nil {
		t.Fatal(err)
	}
	cat, err := sluice.NewCatalog(append(depts, tax)...)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

type multiCase struct{ name, sql string }

var multiCases = []multiCase{
	{"tour_alice", "SELECT r.district, COUNT(*) AS residents, AVG(i.annual_claims) AS avg_claims FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district"},
	{"tour_bob", "SELECT e.name, e.credit_code, h.household_district FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card WHERE h.migrant = 1"},
	{"left_join_where_right_stays_above", "SELECT r.district, i.insurance_type FROM civil.residents r LEFT JOIN health.insured i ON r.id_card = i.id_card AND i.hospital_visits > 2 AND r.gender = 'f' WHERE r.low_income = 1 AND i.insurance_type IS NULL"},
	{"comma_join", "SELECT e.industry, count(DISTINCT h.household_district) AS districts FROM market.enterprises e, police.household h WHERE e.legal_rep_id_card = h.id_card AND e.status = 'active' GROUP BY e.industry HAVING count(*) >= 10 ORDER BY districts DESC LIMIT 5"},
	{"plain_hash_join", "SELECT e.name, r.gender FROM market.enterprises AS e JOIN civil.residents AS r ON e.district = r.district AND e.registered_capital > r.monthly_allowance WHERE e.status = 'active'"},
	{"three_way", "SELECT r.district, h.household_district, count(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card JOIN police.household h ON r.district = h.household_district GROUP BY r.district, h.household_district"},
	{"expressions_group_order", "SELECT lower(e.industry) AS ind, sum(CASE WHEN i.chronic_disease = 1 THEN i.annual_claims ELSE 0 END) AS claims, max(e.registered_capital) / 10000 AS wan FROM market.enterprises e JOIN health.insured i ON e.legal_rep_id_card = i.id_card GROUP BY lower(e.industry) ORDER BY count(*) DESC, ind"},
	{"derived_flattened", "SELECT s.d, count(*) AS n FROM (SELECT id_card AS pid, district AS d FROM civil.residents WHERE low_income = 1) AS s JOIN health.insured i ON s.pid = i.id_card WHERE s.d <> '城北区' GROUP BY s.d"},
	{"derived_aggregate", "SELECT e.district, e.name, t.n FROM market.enterprises e JOIN (SELECT district, count(*) AS n FROM civil.residents WHERE low_income = 1 GROUP BY district) t ON e.district = t.district WHERE t.n > 100 ORDER BY t.n DESC"},
	{"in_subquery_psi", "SELECT district, count(*) AS n FROM civil.residents WHERE id_card IN (SELECT id_card FROM police.household WHERE migrant = 1) GROUP BY district"},
	{"in_subquery_plain", "SELECT name FROM market.enterprises WHERE district IN (SELECT household_district FROM police.household h GROUP BY household_district HAVING count(*) > 50) AND status = 'active'"},
	{"distinct_order_limit", "SELECT DISTINCT e.industry, h.household_district FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card ORDER BY e.industry LIMIT 10 OFFSET 5"},
	{"hidden_order", "SELECT e.name FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card ORDER BY e.established DESC, h.migrant LIMIT 3"},
	{"self_join", "SELECT a.name, b.name AS other FROM market.enterprises a JOIN market.enterprises b ON a.legal_rep_id_card = b.legal_rep_id_card WHERE a.credit_code < b.credit_code"},
	{"derived_rename_constants", "SELECT h.name, s.insurance_type FROM police.household h JOIN (SELECT id_card AS k, insurance_type FROM health.insured) s ON h.id_card = s.k WHERE 1 = 1"},
	{"star_plain_join", "SELECT * FROM tax.payers t JOIN police.household h ON t.district = h.household_district"},
	// FROM lists a pair with no condition between them: the planner joins
	// household after enterprises, which it shares a condition with.
	{"join_order_from_where", "SELECT e.name, t.tax_paid FROM market.enterprises e, police.household h, tax.payers t WHERE e.credit_code = t.credit_code AND t.district = h.household_district AND h.migrant = 1"},
	{"exists_psi", "SELECT name FROM market.enterprises e WHERE EXISTS (SELECT 1 FROM police.household h WHERE h.id_card = e.legal_rep_id_card AND h.migrant = 1)"},
	{"not_exists_residual", "SELECT e.name FROM market.enterprises e WHERE NOT EXISTS (SELECT * FROM tax.payers t WHERE t.district = e.district AND t.tax_paid > e.registered_capital AND t.district <> '城北区')"},
	{"not_in_null_aware", "SELECT name FROM market.enterprises WHERE district NOT IN (SELECT household_district FROM police.household WHERE migrant = 1) AND status = 'active'"},
	{"scalar_subquery_correlated", "SELECT e.name, e.registered_capital FROM market.enterprises e WHERE e.registered_capital >= (SELECT 0.5 * max(e2.registered_capital) FROM market.enterprises e2 WHERE e2.district = e.district AND e2.status = 'active') AND e.status = 'active'"},
	{"scalar_subquery_uncorrelated", "SELECT e.name FROM market.enterprises e WHERE e.registered_capital / 2 > (SELECT avg(t.tax_paid) FROM tax.payers t WHERE t.district <> '城北区')"},
	{"scalar_subquery_having", "SELECT e.district, sum(e.registered_capital) AS cap FROM market.enterprises e GROUP BY e.district HAVING sum(e.registered_capital) > (SELECT 0.1 * sum(t.tax_paid) FROM tax.payers t)"},
	{"single_dataset_cte", "WITH low AS (SELECT district, monthly_allowance FROM civil.residents WHERE low_income = 1) SELECT district, count(*) AS n, avg(monthly_allowance) AS a FROM low GROUP BY district"},
	{"union_all_ordered", "SELECT household_district AS district, 'household' AS source FROM police.household WHERE migrant = 1 UNION ALL SELECT district, industry FROM market.enterprises ORDER BY 1, 2 DESC LIMIT 20"},
	{"except_districts", "SELECT district FROM market.enterprises EXCEPT SELECT household_district FROM police.household WHERE migrant = 1 ORDER BY district"},
	{"intersect_all_in_join", "SELECT e.name FROM market.enterprises e JOIN (SELECT household_district AS district FROM police.household INTERSECT ALL SELECT district FROM tax.payers) u ON e.district = u.district"},
	{"scalar_subquery_select_list", "SELECT e.district, count(*) AS n, count(*) * 100.0 / (SELECT count(h.migrant) FROM police.household h) AS per_hundred, (SELECT avg(t.tax_paid) FROM tax.payers t) AS avg_tax FROM market.enterprises e GROUP BY e.district"},
	{"scalar_subquery_select_correlated", "SELECT e.name, (SELECT count(*) FROM police.household h WHERE h.household_district = e.district AND h.migrant = 1) AS migrants FROM market.enterprises e"},
	{"scalar_subquery_select_correlated_grouped", "SELECT e.district, count(*) AS n, (SELECT avg(t.tax_paid) FROM tax.payers t WHERE t.district = e.district) AS tax FROM market.enterprises e GROUP BY e.district"},
	{"union_in_join", "SELECT e.name, u.district FROM market.enterprises e JOIN (SELECT household_district AS district FROM police.household UNION SELECT district FROM tax.payers) u ON e.district = u.district"},
	{"window_over_groups", "SELECT e.district, count(*) AS n, sum(e.registered_capital) AS cap, rank() OVER (ORDER BY count(*) DESC) AS r, sum(sum(e.registered_capital)) OVER () AS total FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card WHERE h.migrant = 1 GROUP BY e.district HAVING count(*) > 2 ORDER BY r, e.district"},
	{"window_over_groups_partitioned", "SELECT e.district, e.industry, count(*) AS n, row_number() OVER (PARTITION BY e.district ORDER BY count(*) DESC, e.industry) AS pos FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card GROUP BY e.district, e.industry ORDER BY e.district, pos"},
	{"window_functions", "SELECT e.name, e.district, rank() OVER (PARTITION BY e.district ORDER BY e.registered_capital DESC) AS r, sum(e.registered_capital) OVER (PARTITION BY e.district) AS total, count(*) OVER () AS n FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card WHERE h.migrant = 1 ORDER BY e.district, r"},
	{"mixed_key_release", "SELECT e.name FROM market.enterprises e JOIN police.household h ON e.legal_rep_name = h.id_card"},
}

func TestMultiGolden(t *testing.T) {
	cat := multiCatalog(t)
	p := New(cat)
	for _, c := range multiCases {
		t.Run(c.name, func(t *testing.T) {
			pl := mustPlan(t, p, c.sql)
			if pl.Fragment != nil {
				t.Fatalf("multi-dataset plan has a single Fragment")
			}
			var b strings.Builder
			fmt.Fprintf(&b, "-- query\n%s\n", c.sql)
			for i, f := range pl.Fragments {
				dept, name, _ := strings.Cut(f.Dataset, ".")
				ds := cat.Dataset(dept, name)
				sql, args, err := Render(f, ds, sluice.DriverSQLite)
				if err != nil {
					t.Fatalf("render fragment %d: %v", i, err)
				}
				fmt.Fprintf(&b, "-- fragment %d\n%s\n-- fragment %d sqlite\n%s %#v\n", i, f.Normalized(), i, sql, args)
				if f.QueryID != "q-test" {
					t.Errorf("fragment %d query id %q", i, f.QueryID)
				}
			}
			fmt.Fprintf(&b, "-- sandbox\n%s\n", pl.Sandbox.Normalized())
			fmt.Fprintf(&b, "-- usages\n%s\n", strings.ReplaceAll(linDS(pl.Usages), " ", "\n"))
			fmt.Fprintf(&b, "-- join pairs\n")
			for _, jp := range pl.JoinPairs {
				fmt.Fprintf(&b, "%s.%s = %s.%s psi=%v %s\n", jp.Left.Dataset, jp.Left.Column, jp.Right.Dataset, jp.Right.Column, jp.PSI, jp.KeyDomain)
			}
			fmt.Fprintf(&b, "-- datasets\n%v\n-- aggregate\n%v\n", pl.Datasets, pl.Aggregate)
			checkGolden(t, filepath.Join("testdata", "multi", c.name+".golden"), b.String())
		})
	}
}

// linDS is lin with the dataset of each column.
func linDS(us []sluice.ColumnUsage) string {
	var parts []string
	for _, u := range us {
		parts = append(parts, u.Dataset+"."+lin([]sluice.ColumnUsage{u}))
	}
	return strings.Join(parts, " ")
}

func TestMultiLineage(t *testing.T) {
	p := New(multiCatalog(t))
	tests := []struct{ sql, want string }{
		// aliases and joins
		{"SELECT r.district AS d FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card",
			"civil.residents.district:output civil.residents.id_card:join_key health.insured.id_card:join_key"},
		{"SELECT district FROM civil.residents JOIN health.insured ON residents.id_card = insured.id_card WHERE insurance_type = 'employee'",
			"civil.residents.district:output civil.residents.id_card:join_key health.insured.id_card:join_key health.insured.insurance_type:predicate"},
		// expressions through joins
		{"SELECT substr(r.name, 1, 1) AS s, i.hospital_visits * 2 AS v FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card",
			"civil.residents.id_card:join_key civil.residents.name:output* health.insured.hospital_visits:output* health.insured.id_card:join_key"},
		{"SELECT CASE WHEN i.chronic_disease = 1 THEN r.district END AS d FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card",
			"civil.residents.district:output* civil.residents.id_card:join_key health.insured.chronic_disease:output+predicate* health.insured.id_card:join_key"},
		// ON residuals are predicates; keys on expressions are predicates too
		{"SELECT e.name FROM market.enterprises e JOIN civil.residents r ON e.district = r.district AND e.registered_capital > r.monthly_allowance",
			"civil.residents.district:join_key civil.residents.monthly_allowance:predicate market.enterprises.district:join_key market.enterprises.name:output market.enterprises.registered_capital:predicate"},
		{"SELECT e.name FROM market.enterprises e JOIN (SELECT lower(district) AS d FROM civil.residents GROUP BY lower(district)) s ON e.district = s.d",
			"civil.residents.district:group+join_key+predicate* market.enterprises.district:join_key market.enterprises.name:output"},
		// derived tables: the outer use is the use of the source column
		{"SELECT s.n FROM (SELECT id_card AS pid, name AS n, low_income FROM civil.residents) s JOIN health.insured i ON s.pid = i.id_card WHERE s.low_income = 1",
			"civil.residents.id_card:join_key civil.residents.low_income:predicate civil.residents.name:output health.insured.id_card:join_key"},
		{"SELECT s.ym FROM (SELECT substr(r.phone, 1, 3) AS ym, r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card) s ORDER BY s.district",
			"civil.residents.district:order civil.residents.id_card:join_key civil.residents.phone:output* health.insured.id_card:join_key"},
		{"SELECT t.d, t.total FROM (SELECT r.district AS d, sum(i.annual_claims) AS total FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district) t WHERE t.total > 1000",
			"civil.residents.district:group+output civil.residents.id_card:join_key health.insured.annual_claims:aggregate health.insured.id_card:join_key"},
		// unused derived columns are pruned (never fetched), except under DISTINCT
		{"SELECT s.d FROM (SELECT r.district AS d, r.phone AS p FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card) s",
			"civil.residents.district:output civil.residents.id_card:join_key health.insured.id_card:join_key"},
		{"SELECT count(*) AS n FROM (SELECT DISTINCT r.district, i.insurance_type FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card) s",
			"civil.residents.district:group civil.residents.id_card:join_key health.insured.id_card:join_key health.insured.insurance_type:group"},
		// IN subqueries: both key columns are join keys, others per use
		{"SELECT name FROM market.enterprises WHERE legal_rep_id_card IN (SELECT id_card FROM police.household WHERE migrant = 1)",
			"market.enterprises.legal_rep_id_card:join_key market.enterprises.name:output police.household.id_card:join_key police.household.migrant:predicate"},
		{"SELECT count(*) FROM market.enterprises WHERE district IN (SELECT upper(household_district) FROM police.household)",
			"market.enterprises.district:join_key police.household.household_district:join_key+predicate*"},
		// aggregates through joins; HAVING and ORDER BY
		{"SELECT i.insurance_type, count(DISTINCT r.district) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY i.insurance_type HAVING avg(r.monthly_allowance) > 100 ORDER BY max(i.annual_claims)",
			"civil.residents.district:distinct_aggregate civil.residents.id_card:join_key civil.residents.monthly_allowance:aggregate health.insured.annual_claims:order_statistic health.insured.id_card:join_key health.insured.insurance_type:group+output"},
		// an aggregate of an expression, through a derived table too
		{"SELECT sum(CASE WHEN r.phone = '1' THEN i.annual_claims ELSE 0 END) AS s FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card",
			"civil.residents.id_card:join_key civil.residents.phone:aggregate_expression+predicate health.insured.annual_claims:aggregate_expression health.insured.id_card:join_key"},
		{"SELECT sum(t.x) AS s FROM (SELECT i.annual_claims * 2 AS x, r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card) AS t",
			"civil.residents.id_card:join_key health.insured.annual_claims:aggregate_expression health.insured.id_card:join_key"},
		// LEFT JOIN: right-side WHERE stays above but is still a predicate
		{"SELECT r.district FROM civil.residents r LEFT JOIN health.insured i ON r.id_card = i.id_card WHERE i.chronic_disease = 1",
			"civil.residents.district:output civil.residents.id_card:join_key health.insured.chronic_disease:predicate health.insured.id_card:join_key"},
	}
	for _, tc := range tests {
		pl := mustPlan(t, p, tc.sql)
		if got := linDS(pl.Usages); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.sql, got, tc.want)
		}
		checkFragmentsCovered(t, tc.sql, pl)
	}
}

// checkFragmentsCovered: every column a fragment releases to the broker
// has a usage, so the policy judges it.
func checkFragmentsCovered(t *testing.T, sql string, pl *Plan) {
	t.Helper()
	for _, f := range pl.Fragments {
		for _, it := range f.Select {
			found := false
			for _, u := range pl.Usages {
				if u.Dataset == f.Dataset && u.Column == it.Expr.Column && len(u.Usages) > 0 {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: fragment %s releases %s without a usage", sql, f.Dataset, it.Expr.Column)
			}
		}
	}
}

func TestMultiPushdown(t *testing.T) {
	p := New(multiCatalog(t))
	tests := []struct {
		sql     string
		where   []string // each fragment's WHERE
		sandbox string
	}{
		// LEFT JOIN: WHERE on the right stays above the join; ON on the
		// right is pushed into the right fragment; ON on the left stays a
		// residual; WHERE on the left is pushed into the left fragment.
		{"SELECT r.district FROM civil.residents r LEFT JOIN health.insured i ON r.id_card = i.id_card AND i.hospital_visits > 1 AND r.low_income = 1 WHERE r.gender = 'f' AND i.insurance_type = 'employee'",
			[]string{"(gender = 'f')", "(hospital_visits > 1)"},
			"project r.district AS \"district\"\n  filter (i.insurance_type = 'employee')\n    join left psi(person) keys r.id_card = i.id_card residual (r.low_income = 1)\n      fragment 0\n      fragment 1"},
		// a condition on both sides of a LEFT JOIN in WHERE stays above
		{"SELECT r.district FROM civil.residents r LEFT JOIN health.insured i ON r.id_card = i.id_card WHERE r.low_income = 1 OR i.chronic_disease = 1",
			[]string{"", ""},
			"project r.district AS \"district\"\n  filter ((r.low_income = 1) OR (i.chronic_disease = 1))\n    join left psi(person) keys r.id_card = i.id_card\n      fragment 0\n      fragment 1"},
		// inner joins: every single-table conjunct of WHERE and ON is pushed
		{"SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card AND i.hospital_visits > 1 AND r.low_income = 1 WHERE r.gender = 'f' AND i.insurance_type = 'employee' AND (r.district = 'a' OR i.chronic_disease = 0)",
			[]string{"((gender = 'f') AND (low_income = 1))", "((insurance_type = 'employee') AND (hospital_visits > 1))"},
			"project r.district AS \"district\"\n  join inner psi(person) keys r.id_card = i.id_card residual ((r.district = 'a') OR (i.chronic_disease = 0))\n    fragment 0\n    fragment 1"},
		// under the nullable side, an inner join still takes the LEFT JOIN's ON conditions
		{"SELECT e.name FROM market.enterprises e LEFT JOIN (police.household h JOIN health.insured i ON h.id_card = i.id_card) ON e.district = h.household_district AND i.insurance_type = 'resident' WHERE h.migrant = 1",
			[]string{"", "", "(insurance_type = 'resident')"},
			"project e.name AS \"name\"\n  filter (h.migrant = 1)\n    join left keys e.district = h.household_district\n      fragment 0\n      join inner psi(person) keys h.id_card = i.id_card\n        fragment 1\n        fragment 2"},
		// a left-side WHERE under a later LEFT JOIN is still pushed down
		{"SELECT e.name FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card LEFT JOIN civil.residents r ON h.household_district = r.district WHERE h.migrant = 1 AND e.status = 'active'",
			[]string{"(status = 'active')", "(migrant = 1)", ""},
			"project e.name AS \"name\"\n  join left keys h.household_district = r.district\n    join inner psi(person) keys e.legal_rep_id_card = h.id_card\n      fragment 0\n      fragment 1\n    fragment 2"},
	}
	for _, tc := range tests {
		pl := mustPlan(t, p, tc.sql)
		if len(pl.Fragments) != len(tc.where) {
			t.Fatalf("%s: %d fragments", tc.sql, len(pl.Fragments))
		}
		for i, f := range pl.Fragments {
			got := ""
			if f.Where != nil {
				got = normExpr(f.Where, 0)
			}
			if got != tc.where[i] {
				t.Errorf("%s: fragment %d WHERE %s, want %s", tc.sql, i, got, tc.where[i])
			}
		}
		if got := pl.Sandbox.Normalized(); got != tc.sandbox {
			t.Errorf("%s: sandbox\n%s\nwant\n%s", tc.sql, got, tc.sandbox)
		}
	}
}

func TestMultiPSI(t *testing.T) {
	p := New(multiCatalog(t))
	// Same domain: PSI, the key is each fragment's first column.
	pl := mustPlan(t, p, "SELECT h.household_district, count(*) FROM police.household h JOIN civil.residents r ON r.id_card = h.id_card GROUP BY h.household_district")
	j := pl.Sandbox.Inputs[0].Inputs[0]
	if j.Op != OpJoin || !j.PSI || j.KeyDomain != "person" || len(j.Keys) != 1 {
		t.Fatalf("want a PSI join, got\n%s", pl.Sandbox.Normalized())
	}
	for i, f := range pl.Fragments {
		if f.Select[0].Expr.Column != "id_card" {
			t.Errorf("fragment %d: first item %s, want the key", i, f.Select[0].Alias)
		}
	}
	if len(pl.JoinPairs) != 1 || !pl.JoinPairs[0].PSI || pl.JoinPairs[0].Left != (ColumnRef{"police.household", "id_card"}) || pl.JoinPairs[0].Right != (ColumnRef{"civil.residents", "id_card"}) {
		t.Errorf("join pairs %+v", pl.JoinPairs)
	}
	// A further equality of a PSI join becomes a residual.
	pl = mustPlan(t, p, "SELECT r.gender FROM police.household h JOIN civil.residents r ON r.id_card = h.id_card AND h.household_district = r.district")
	if got := pl.Sandbox.Normalized(); !strings.Contains(got, "join inner psi(person) keys h.id_card = r.id_card residual (h.household_district = r.district)") {
		t.Errorf("got\n%s", got)
	}
	// join_key on one side only: a plain join the policy must refuse.
	pl = mustPlan(t, p, "SELECT e.name FROM market.enterprises e JOIN police.household h ON e.credit_code = h.id_card")
	if pl.Sandbox.Inputs[0].PSI || len(pl.JoinPairs) != 1 || pl.JoinPairs[0].PSI {
		t.Errorf("mixed release join: %s %+v", pl.Sandbox.Normalized(), pl.JoinPairs)
	}
	// A key computed by an expression is a predicate use, with an empty ColumnRef.
	pl = mustPlan(t, p, "SELECT e.name FROM market.enterprises e JOIN (SELECT upper(id_card) AS k FROM police.household GROUP BY upper(id_card)) s ON e.credit_code = s.k")
	if pl.JoinPairs[0].Right != (ColumnRef{}) || pl.JoinPairs[0].PSI {
		t.Errorf("computed key pair %+v", pl.JoinPairs)
	}
	if got := linDS(pl.Usages); !strings.Contains(got, "police.household.id_card:group+join_key+predicate*") {
		t.Errorf("computed key usages %s", got)
	}
}

func TestMultiErrors(t *testing.T) {
	p := New(multiCatalog(t))
	tests := []struct{ name, sql, code, want string }{
		{"domain mismatch", "SELECT t.district FROM tax.payers t JOIN police.household h ON t.credit_code = h.id_card", sluice.EInvalid, "cannot join enterprise keys with person keys"},
		{"domain mismatch in", "SELECT district FROM tax.payers WHERE credit_code IN (SELECT id_card FROM civil.residents)", sluice.EInvalid, "cannot join enterprise keys with person keys"},
		{"type mismatch", "SELECT e.name FROM market.enterprises e JOIN civil.residents r ON e.registered_capital = r.district", sluice.EInvalid, "cannot compare decimal with text"},
		{"in type mismatch", "SELECT name FROM market.enterprises WHERE registered_capital IN (SELECT household_district FROM police.household)", sluice.EInvalid, "key types differ"},
		{"cross join", "SELECT e.name, r.district FROM market.enterprises e, civil.residents r", sluice.ENotSupported, "cross joins) are not supported yet"},
		{"non-equi join", "SELECT e.name FROM market.enterprises e JOIN civil.residents r ON e.registered_capital > r.monthly_allowance", sluice.ENotSupported, "not supported yet"},
		{"right join", "SELECT e.name FROM market.enterprises e RIGHT JOIN civil.residents r ON e.district = r.district", sluice.ENotSupported, "RIGHT JOIN is not supported yet"},
		{"natural join", "SELECT e.name FROM market.enterprises e NATURAL JOIN civil.residents r", sluice.ENotSupported, "not supported yet"},
		{"using", "SELECT e.name FROM market.enterprises e JOIN civil.residents r USING (district)", sluice.ENotSupported, "USING is not supported yet"},
		{"psi key output", "SELECT r.id_card FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card", sluice.ENotSupported, "private join key other than as the join key is not supported yet"},
		{"psi key count distinct", "SELECT count(DISTINCT i.id_card) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card", sluice.ENotSupported, "private join key"},
		{"psi key order", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card ORDER BY r.id_card LIMIT 1", sluice.ENotSupported, "private join key"},
		{"psi twice", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card JOIN police.household h ON r.id_card = h.id_card", sluice.ENotSupported, "from an earlier join is not supported yet"},
		{"psi twice same fragment", "SELECT r.district FROM police.household h JOIN civil.residents r ON r.id_card = h.id_card WHERE r.id_card IN (SELECT id_card FROM health.insured)", sluice.ENotSupported, "not supported yet"},
		{"psi from join", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.district = i.insurance_type JOIN police.household h ON i.id_card = h.id_card", sluice.ENotSupported, "from an earlier join is not supported yet"},
		{"psi from aggregate subquery", "SELECT s.n FROM (SELECT id_card, count(*) AS n FROM civil.residents GROUP BY id_card) s JOIN health.insured i ON s.id_card = i.id_card", sluice.ENotSupported, "from a subquery"},
		{"two psi pairs", "SELECT r.district FROM civil.residents r JOIN market.enterprises e ON r.id_card = e.legal_rep_id_card AND r.id_card = e.legal_rep_id_card", sluice.ENotSupported, "two private key pairs"},
		{"not in", "SELECT name FROM market.enterprises WHERE legal_rep_id_card NOT IN (SELECT id_card FROM police.household)", sluice.ENotSupported, "NOT IN (SELECT ...) on a private join key is not supported yet; use IN (SELECT ...) or a join (at line 1, column 61)"},
		{"in under or", "SELECT name FROM market.enterprises WHERE status = 'x' OR legal_rep_id_card IN (SELECT id_card FROM police.household)", sluice.ENotSupported, "subqueries inside other conditions"},
		{"exists without an equality", "SELECT name FROM market.enterprises e WHERE EXISTS (SELECT 1 FROM police.household h WHERE h.household_district <> e.district)", sluice.ENotSupported, "EXISTS (SELECT ...) needs an equality"},
		{"exists grouped", "SELECT name FROM market.enterprises e WHERE EXISTS (SELECT 1 FROM police.household h WHERE h.id_card = e.legal_rep_id_card GROUP BY h.id_card)", sluice.ENotSupported, "EXISTS (SELECT ...) with GROUP BY"},
		{"not exists on a private key", "SELECT name FROM market.enterprises e WHERE NOT EXISTS (SELECT 1 FROM police.household h WHERE h.id_card = e.legal_rep_id_card)", sluice.ENotSupported, "NOT EXISTS on a private join key is not supported yet"},
		{"exists correlated two levels up", "SELECT name FROM market.enterprises e WHERE EXISTS (SELECT 1 FROM police.household h WHERE h.id_card = e.legal_rep_id_card AND EXISTS (SELECT 1 FROM tax.payers t WHERE t.district = e.district))", sluice.ENotSupported, "a subquery inside EXISTS"},
		{"scalar subquery count", "SELECT e.name FROM market.enterprises e WHERE 2 < (SELECT count(*) FROM police.household h WHERE h.household_district = e.district)", sluice.ENotSupported, "not NULL over no rows (COUNT"},
		{"scalar subquery non-equality", "SELECT e.name FROM market.enterprises e WHERE e.registered_capital > (SELECT max(t.tax_paid) FROM tax.payers t WHERE t.district <> e.district)", sluice.ENotSupported, "must be an equality between one of its columns and one of the subquery's"},
		{"scalar subquery under or", "SELECT e.name FROM market.enterprises e WHERE e.status = 'x' OR e.registered_capital > (SELECT max(t.tax_paid) FROM tax.payers t WHERE t.district = e.district)", sluice.ENotSupported, "subqueries inside other conditions"},
		{"scalar subquery two columns", "SELECT e.name FROM market.enterprises e WHERE e.registered_capital > (SELECT max(t.tax_paid), min(t.tax_paid) FROM tax.payers t WHERE t.district = e.district)", sluice.ENotSupported, "must compute one aggregate"},
		{"scalar subquery in having without group by", "SELECT sum(e.registered_capital) AS cap FROM market.enterprises e HAVING sum(e.registered_capital) > (SELECT sum(t.tax_paid) FROM tax.payers t)", sluice.ENotSupported, "a scalar subquery in HAVING without GROUP BY is not supported yet"},
		{"union column count", "SELECT district, name FROM market.enterprises UNION SELECT household_district FROM police.household", sluice.EInvalid, "same number of columns: 2 and 1"},
		{"union column kinds", "SELECT registered_capital FROM market.enterprises UNION SELECT household_district FROM police.household", sluice.EInvalid, "column 1 of the UNION is decimal in one SELECT and text in the other"},
		{"except column count", "SELECT district, name FROM market.enterprises EXCEPT SELECT household_district FROM police.household", sluice.EInvalid, "each SELECT of a EXCEPT must have the same number of columns"},
		{"intersect order by expression", "SELECT district FROM market.enterprises INTERSECT SELECT household_district FROM police.household ORDER BY lower(district)", sluice.ENotSupported, "ORDER BY of a INTERSECT may name its output columns"},
		{"union order by expression", "SELECT district FROM market.enterprises UNION SELECT household_district FROM police.household ORDER BY lower(district)", sluice.ENotSupported, "ORDER BY of a UNION may name its output columns"},
		{"exists under or", "SELECT name FROM market.enterprises e WHERE status = 'x' OR EXISTS (SELECT 1 FROM police.household h WHERE h.id_card = e.legal_rep_id_card)", sluice.ENotSupported, "subqueries inside other conditions"},
		{"correlated in", "SELECT r.district FROM civil.residents r WHERE r.id_card IN (SELECT i.id_card FROM health.insured i WHERE i.insurance_type = r.district)", sluice.ENotSupported, "correlated subqueries"},
		{"correlated derived", "SELECT r.district FROM civil.residents r JOIN (SELECT i.id_card FROM health.insured i WHERE i.insurance_type = district) s ON r.id_card = s.id_card", sluice.ENotSupported, "correlated subqueries"},
		{"in expression", "SELECT name FROM market.enterprises WHERE lower(district) IN (SELECT household_district FROM police.household)", sluice.ENotSupported, "not supported yet"},
		{"in two columns", "SELECT name FROM market.enterprises WHERE district IN (SELECT household_district, migrant FROM police.household)", sluice.EInvalid, "exactly one column"},
		{"scalar subquery select", "SELECT (SELECT 1 FROM police.household) FROM market.enterprises", sluice.ENotSupported, "a scalar subquery must compute one aggregate over its rows"},
		{"correlated scalar subquery in a grouped select list on a column not grouped", "SELECT e.district, count(*), (SELECT avg(t.tax_paid) FROM tax.payers t WHERE t.district = e.name) AS tax FROM market.enterprises e GROUP BY e.district", sluice.EInvalid, "names e.name of the enclosing query, which is not a GROUP BY key"},
		{"correlated scalar subquery in the select list not NULL over no rows", "SELECT e.name, (SELECT count(*) + 1 FROM police.household h WHERE h.household_district = e.district) AS n FROM market.enterprises e", sluice.ENotSupported, "whose value over no rows is not NULL"},
		{"scalar subquery in the select list without GROUP BY", "SELECT count(*) AS n, (SELECT count(*) FROM police.household) AS m FROM market.enterprises", sluice.ENotSupported, "aggregates without GROUP BY is not supported yet"},
		{"scalar subquery under LIKE in the select list", "SELECT e.name LIKE (SELECT max(h.name) FROM police.household h) FROM market.enterprises e", sluice.ENotSupported, "a subquery here is not supported yet"},
		{"derived without alias", "SELECT name FROM market.enterprises e JOIN (SELECT id_card FROM police.household) ON e.legal_rep_id_card = id_card", sluice.EInvalid, ""},
		{"ambiguous column", "SELECT district FROM market.enterprises e JOIN civil.residents r ON e.district = r.district", sluice.EInvalid, "ambiguous"},
		{"duplicate alias", "SELECT r.district FROM civil.residents r JOIN health.insured r ON r.id_card = r.id_card", sluice.EInvalid, "used twice"},
		{"duplicate table", "SELECT name FROM market.enterprises JOIN market.enterprises ON credit_code = credit_code", sluice.EInvalid, "used twice"},
		{"on other table", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = h.id_card JOIN police.household h ON h.id_card = i.id_card", sluice.EInvalid, "names no table"},
		{"unknown column", "SELECT r.salary FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card", sluice.EInvalid, `no column "salary"`},
		{"unknown table", "SELECT 1 FROM civil.residents r JOIN tax.nothing n ON r.id_card = n.id", sluice.EInvalid, "unknown dataset"},
		{"sum distinct", "SELECT sum(DISTINCT i.annual_claims) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card", sluice.ENotSupported, "SUM(DISTINCT ...) is not supported yet"},
		{"ungrouped", "SELECT r.district, i.insurance_type, count(*) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district", sluice.EInvalid, "must appear in GROUP BY"},
		{"where aggregate", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card WHERE count(*) > 1", sluice.EInvalid, "not allowed here"},
		{"on aggregate", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card AND count(*) > 1", sluice.EInvalid, "not allowed here"},
		{"where not boolean", "SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card WHERE r.low_income", sluice.EInvalid, "WHERE needs a condition"},
		{"dotted alias", `SELECT 1 FROM civil.residents "a.b" JOIN health.insured i ON "a.b".id_card = i.id_card`, sluice.EInvalid, "must not contain a dot"},
		{"unused subquery", "SELECT count(*) FROM (SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card) s", sluice.ENotSupported, "not supported yet"},
		{"window over an expression", "SELECT sum(e.registered_capital * 2) OVER (PARTITION BY e.district) FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card", sluice.ENotSupported, "must be columns; compute (registered_capital * 2) in a subquery first"},
		{"window over groups over an expression of aggregates", "SELECT e.district, rank() OVER (ORDER BY count(*) * 2) FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card GROUP BY e.district", sluice.ENotSupported, "must be columns"},
		{"window over groups naming a column not grouped", "SELECT e.district, rank() OVER (ORDER BY e.name) FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card GROUP BY e.district", sluice.EInvalid, "column e.name must appear in GROUP BY"},
		{"window inside a window", "SELECT sum(rank() OVER (ORDER BY e.district)) OVER () FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card", sluice.ENotSupported, "a window function inside a window function"},
		{"window in where", "SELECT e.name FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card WHERE row_number() OVER () < 3", sluice.EInvalid, "window functions may appear only in the select list or ORDER BY"},
		{"window frame", "SELECT sum(e.registered_capital) OVER (ORDER BY e.name ROWS UNBOUNDED PRECEDING) FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card", sluice.ENotSupported, "window frames"},
		{"window function unknown", "SELECT ntile(4) OVER (ORDER BY e.name) FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card", sluice.ENotSupported, "window function ntile is not supported yet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := p.Plan("q", tc.sql)
			if err == nil {
				t.Fatalf("Plan succeeded, want %s %q; plan:\n%s", tc.code, tc.want, pl.Normalized())
			}
			var se *sluice.Error
			if !errorsAs(err, &se) {
				t.Fatalf("error %T %v", err, err)
			}
			if se.Code != tc.code || !strings.Contains(se.Message, tc.want) {
				t.Fatalf("got %s %q, want %s containing %q", se.Code, se.Message, tc.code, tc.want)
			}
		})
	}
}

func TestMultiAggregateFlag(t *testing.T) {
	p := New(multiCatalog(t))
	tests := []struct {
		sql  string
		want bool
	}{
		{"SELECT r.district, count(*) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district", true},
		{"SELECT avg(i.annual_claims) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card", true},
		{"SELECT r.district FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card", false},
		{"SELECT t.d, t.n FROM (SELECT r.district AS d, count(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district) t", false},
		{"SELECT count(*) FROM (SELECT r.district AS d FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district) t GROUP BY t.d", true},
	}
	for _, tc := range tests {
		if got := mustPlan(t, p, tc.sql).Aggregate; got != tc.want {
			t.Errorf("%s: Aggregate = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// TestMultiFragmentsValidate: every fragment of every golden plan is one
// its agent accepts, and the single-dataset fields stay empty.
func TestMultiFragmentsValidate(t *testing.T) {
	cat := multiCatalog(t)
	p := New(cat)
	for _, c := range multiCases {
		pl := mustPlan(t, p, c.sql)
		if pl.Fragment != nil || pl.Sandbox == nil || len(pl.Fragments) < 1 {
			t.Fatalf("%s: plan shape", c.name)
		}
		for _, f := range pl.Fragments {
			dept, name, _ := strings.Cut(f.Dataset, ".")
			if err := f.Validate(cat.Dataset(dept, name)); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		checkFragmentsCovered(t, c.sql, pl)
	}
	// Single-dataset plans keep the old shape.
	pl := mustPlan(t, p, "SELECT district FROM civil.residents")
	if pl.Fragment == nil || pl.Fragments != nil || pl.Sandbox != nil || pl.JoinPairs != nil {
		t.Fatalf("single-dataset plan shape changed")
	}
}
