package planner

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// A CTE plans exactly as the derived table it names: the same fragments,
// sandbox plan, usages and join pairs for the policy.
func TestCTEInlining(t *testing.T) {
	p := New(multiCatalog(t))
	same := func(pl *Plan) string {
		b, err := json.Marshal(struct {
			Plan  string
			Pairs []JoinPair
			Use   []sluice.ColumnUsage
		}{pl.Normalized(), pl.JoinPairs, pl.Usages})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct{ name, cte, derived string }{
		{"joined with a dataset",
			"WITH low AS (SELECT id_card AS pid, district FROM civil.residents WHERE low_income = 1) SELECT low.district, count(*) AS n FROM low JOIN health.insured i ON low.pid = i.id_card GROUP BY low.district",
			"SELECT low.district, count(*) AS n FROM (SELECT id_card AS pid, district FROM civil.residents WHERE low_income = 1) AS low JOIN health.insured i ON low.pid = i.id_card GROUP BY low.district"},
		{"an aggregate CTE under an alias",
			`WITH per_district AS (SELECT district, count(*) AS n FROM civil.residents GROUP BY district) SELECT e.name, d.n FROM market.enterprises e JOIN per_district AS d ON e.district = d.district`,
			`SELECT e.name, d.n FROM market.enterprises e JOIN (SELECT district, count(*) AS n FROM civil.residents GROUP BY district) AS d ON e.district = d.district`},
		{"a column list",
			"WITH m (k, ind) AS (SELECT legal_rep_id_card, industry FROM market.enterprises) SELECT m.ind FROM m JOIN police.household h ON m.k = h.id_card",
			"SELECT m.ind FROM (SELECT legal_rep_id_card AS k, industry AS ind FROM market.enterprises) AS m JOIN police.household h ON m.k = h.id_card"},
		{"a CTE over an earlier one, referenced twice",
			"WITH a AS (SELECT district, industry FROM market.enterprises), b AS (SELECT district FROM a WHERE industry = 'x') SELECT b.district, b2.district AS d2 FROM b JOIN b AS b2 ON b.district = b2.district",
			"SELECT b.district, b2.district AS d2 FROM (SELECT district FROM (SELECT district, industry FROM market.enterprises) AS a WHERE industry = 'x') AS b JOIN (SELECT district FROM (SELECT district, industry FROM market.enterprises) AS a WHERE industry = 'x') AS b2 ON b.district = b2.district"},
		{"a column list on a subquery in FROM",
			"SELECT m.ind FROM (SELECT legal_rep_id_card, industry FROM market.enterprises) AS m (k, ind) JOIN police.household h ON m.k = h.id_card",
			"SELECT m.ind FROM (SELECT legal_rep_id_card AS k, industry AS ind FROM market.enterprises) AS m JOIN police.household h ON m.k = h.id_card"},
		{"a column list on a CTE reference",
			"WITH c AS (SELECT legal_rep_id_card, industry FROM market.enterprises) SELECT m.ind FROM c AS m (k, ind) JOIN police.household h ON m.k = h.id_card",
			"SELECT m.ind FROM (SELECT legal_rep_id_card AS k, industry AS ind FROM market.enterprises) AS m JOIN police.household h ON m.k = h.id_card"},
		{"in an IN subquery, an inner WITH shadowing an outer one",
			"WITH h AS (SELECT insurance_type AS d FROM health.insured) SELECT name FROM market.enterprises WHERE district IN (WITH h AS (SELECT household_district AS d FROM police.household) SELECT d FROM h)",
			"SELECT name FROM market.enterprises WHERE district IN (SELECT d FROM (SELECT household_district AS d FROM police.household) AS h)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := same(mustPlan(t, p, tc.cte)), same(mustPlan(t, p, tc.derived))
			if a != b {
				t.Errorf("the CTE plans differently from the derived table:\n cte     %s\n derived %s", a, b)
			}
		})
	}
}

func TestCTEErrors(t *testing.T) {
	p := New(multiCatalog(t))
	for _, tc := range []struct{ name, sql, code, want string }{
		{"recursive", "WITH RECURSIVE r AS (SELECT 1 AS n FROM civil.residents UNION ALL SELECT n + 1 FROM r) SELECT n FROM r", sluice.ENotSupported, "WITH RECURSIVE is not supported yet (at line 1, column 16)"},
		{"duplicate name", "WITH a AS (SELECT district FROM civil.residents), A AS (SELECT district FROM health.insured) SELECT 1 FROM a", sluice.EInvalid, "WITH names a twice"},
		{"too many columns", "WITH a (x, y) AS (SELECT district FROM civil.residents) SELECT x FROM a JOIN health.insured i ON a.x = i.insurance_type", sluice.EInvalid, "WITH a names 2 columns but its query selects 1"},
		{"column list over star", "WITH a (x) AS (SELECT * FROM civil.residents) SELECT x FROM a JOIN health.insured i ON a.x = i.insurance_type", sluice.ENotSupported, "a column list for WITH a whose query selects * is not supported yet"},
		{"a later CTE is not visible to an earlier one", "WITH a AS (SELECT district FROM b), b AS (SELECT district FROM civil.residents) SELECT a.district FROM a JOIN health.insured i ON a.district = i.insurance_type", sluice.EInvalid, "needs its department"},
		{"out of scope", "SELECT x.district FROM (WITH c AS (SELECT district FROM civil.residents) SELECT district FROM c) x JOIN c ON x.district = c.district", sluice.EInvalid, "needs its department"},
		{"a CTE cannot stand for a dataset's column", "WITH r AS (SELECT district FROM civil.residents) SELECT r.phone FROM r JOIN health.insured i ON r.district = i.insurance_type", sluice.EInvalid, `has no column "phone"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Plan("q", tc.sql)
			if sluice.ErrorCode(err) != tc.code || !strings.Contains(sluice.ErrorMessage(err), tc.want) {
				t.Errorf("got %s %v, want %s containing %q", sluice.ErrorCode(err), err, tc.code, tc.want)
			}
		})
	}
}

// A chain of CTEs each referencing the one before twice expands to 2^n
// queries: refused at once, before anything walks the expansion.
func TestCTEExpansionBounded(t *testing.T) {
	p := New(multiCatalog(t))
	var b strings.Builder
	b.WriteString("WITH a0 AS (SELECT district FROM civil.residents)")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, ", a%d AS (SELECT x.district FROM a%d x JOIN a%d y ON x.district = y.district)", i, i-1, i-1)
	}
	b.WriteString(" SELECT district FROM a39")
	start := time.Now()
	_, err := p.Plan("q", b.String())
	if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), "expands to more than 256 queries") {
		t.Errorf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing took %v", d)
	}
}
