package planner

import (
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// FuzzPlan feeds arbitrary text through parse -> resolve -> plan ->
// apply -> render. Any answer is fine except a panic (Plan turns one into
// an internal error, which fails here too) or a plan that does not render.
// CI runs it briefly (.ci/run); run longer with
// go test ./planner -run '^$' -fuzz FuzzPlan -fuzztime 5m.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		"SELECT district, count(*) AS n FROM civil.residents WHERE low_income = 1 GROUP BY district HAVING count(*) > 3 ORDER BY n DESC LIMIT 5",
		`SELECT "district", count(*) FILTER (WHERE gender ILIKE 'F') AS 人数 FROM civil.residents AS r WHERE r.birth_date >= DATE '1990-01-01' GROUP BY 1`,
		"SELECT r.district, avg(i.annual_claims) FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district",
		"SELECT e.name FROM market.enterprises e LEFT JOIN (SELECT id_card, household_district FROM police.household) h ON e.legal_rep_id_card = h.id_card WHERE e.district IS DISTINCT FROM h.household_district",
		"SELECT name FROM market.enterprises WHERE legal_rep_id_card IN (SELECT id_card FROM police.household WHERE migrant = 1) FETCH FIRST 3 ROWS ONLY",
		"SELECT CASE WHEN low_income = 1 THEN SUBSTRING(name FROM 1 FOR 1) ELSE coalesce(phone, '-') END FROM civil.residents ORDER BY id_card DESC NULLS LAST",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"SELECT name, rank() OVER (PARTITION BY district ORDER BY birth_date DESC) AS r, sum(monthly_allowance) OVER () FROM civil.residents ORDER BY r",
		"WITH l AS (SELECT id_card, district FROM civil.residents WHERE low_income = 1) SELECT l.district, count(*) FILTER (WHERE i.chronic_disease = 1) FROM l JOIN health.insured i ON l.id_card = i.id_card GROUP BY 1 HAVING count(*) > (SELECT avg(hospital_visits) FROM health.insured)",
		"SELECT e.name FROM market.enterprises e WHERE NOT EXISTS (SELECT 1 FROM police.household h WHERE h.household_district = e.district AND h.migrant = 1) AND e.district NOT IN (SELECT district FROM civil.residents)",
		"SELECT district || '-' || gender, CAST(low_income AS DOUBLE PRECISION) / 2, EXTRACT(YEAR FROM birth_date) FROM civil.residents WHERE birth_date < DATE '1990-01-01' + INTERVAL '1 year 2 months' UNION ALL SELECT district, 0.06 + 0.01, 1 FROM market.enterprises ORDER BY 1 LIMIT 3",
		"SELECT a FROM t.u UNION SELECT b FROM t.v",
		"SELECT district FROM civil.residents EXCEPT ALL SELECT household_district FROM police.household INTERSECT SELECT district FROM market.enterprises ORDER BY 1",
		"SELECT date_trunc('month', birth_date) AS m, count(*) AS n, rank() OVER (ORDER BY count(*) DESC) AS r, sum(count(*)) OVER () FROM civil.residents GROUP BY 1 ORDER BY n NULLS LAST, m DESC NULLS FIRST",
	} {
		f.Add(s)
	}
	cat := testCatalog(f)
	p := New(cat)
	f.Fuzz(func(t *testing.T, sql string) {
		pl, err := p.Plan("fuzz", sql)
		if err != nil {
			if sluice.ErrorCode(err) == sluice.EInternal {
				t.Fatalf("internal error for %q: %v", sql, err)
			}
			return
		}
		if err := pl.Apply(cat, Obligations{MinGroupSize: 10, Purpose: "fuzz"}); err != nil {
			if sluice.ErrorCode(err) == sluice.EInternal {
				t.Fatalf("internal error applying %q: %v", sql, err)
			}
			return
		}
		for _, fr := range pl.fragments() {
			dept, name, _ := strings.Cut(fr.Dataset, ".")
			ds := cat.Dataset(dept, name)
			for _, d := range []sluice.Driver{sluice.DriverSQLite, sluice.DriverPostgres, sluice.DriverMySQL} {
				if _, _, err := Render(fr, ds, d); err != nil && sluice.ErrorCode(err) == sluice.EInternal {
					t.Fatalf("internal error rendering %q for %s: %v", sql, d, err)
				}
			}
		}
	})
}
