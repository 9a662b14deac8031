package planner

import (
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// BenchmarkPlan measures the planner's share of a typical small query:
// parse, resolve, lineage, then render with masks.
func BenchmarkPlan(b *testing.B) {
	cat := testCatalog(b)
	p := New(cat)
	ds := cat.Dataset("civil", "residents")
	const q = "SELECT district, birth_date AS year, count(*) AS n, avg(monthly_allowance) FROM civil.residents WHERE low_income = 1 AND name LIKE '张%' GROUP BY district, birth_date HAVING count(*) > 3 ORDER BY n DESC LIMIT 50"
	b.ReportAllocs()
	for b.Loop() {
		pl, err := p.Plan("bench", q)
		if err != nil {
			b.Fatal(err)
		}
		f := pl.Fragment
		f.Masks = map[string]sluice.MaskRule{"name": sluice.MaskSurname, "birth_date": sluice.MaskYear}
		if _, _, err := Render(f, ds, sluice.DriverPostgres); err != nil {
			b.Fatal(err)
		}
	}
}
