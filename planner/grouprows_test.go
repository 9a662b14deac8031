package planner

import (
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// TestRenderGroupRows: the k condition leaves HAVING, the row count joins
// the select list last, and LIMIT/OFFSET are left to the agent; anything
// else renders as Render would.
func TestRenderGroupRows(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	ds := cat.Dataset("health", "insured")
	base := mustPlan(t, p, "SELECT insurance_type, count(*) AS n FROM health.insured WHERE hospital_visits > 2 GROUP BY insurance_type HAVING avg(annual_claims) > 100 ORDER BY n DESC LIMIT 5 OFFSET 1").Fragment
	tests := []struct {
		d    sluice.Driver
		want string
	}{
		{sluice.DriverSQLite, `SELECT "insurance_type" AS "insurance_type", COUNT(*) AS "n", COUNT(*) AS "__sluice_group_rows" FROM`},
		{sluice.DriverMySQL, "SELECT `insurance_type` AS `insurance_type`, COUNT(*) AS `n`, COUNT(*) AS `__sluice_group_rows` FROM"},
	}
	for _, tc := range tests {
		sql, _, err := RenderGroupRows(withObligations(base, nil, 10), ds, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sql, tc.want) {
			t.Errorf("%s: %s\nwant prefix %s", tc.d, sql, tc.want)
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
	refused := []struct {
		name string
		f    *Fragment
	}{
		{"no minimum group size", withObligations(base, nil, 0)},
		{"distinct", func() *Fragment { f := withObligations(base, nil, 10); f.Distinct = true; return f }()},
		{"reserved alias", func() *Fragment {
			f := withObligations(base, nil, 10)
			f.Select = append([]SelectItem(nil), f.Select...)
			f.Select[1].Alias = strings.ToUpper(GroupRowsColumn)
			return f
		}()},
	}
	for _, tc := range refused {
		if _, _, err := RenderGroupRows(tc.f, ds, sluice.DriverSQLite); sluice.ErrorCode(err) != sluice.EInvalid {
			t.Errorf("%s: want EInvalid, got %v", tc.name, err)
		}
	}
}
