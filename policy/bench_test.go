package policy

import (
	"context"
	"testing"
)

// BenchmarkDecide measures one decision against the demo catalog with the
// prepared query reused, the broker's steady state.
func BenchmarkDecide(b *testing.B) {
	e := demoEngine(b)
	ctx := context.Background()
	inputs := map[string]Input{
		"allow_aggregate": query(alice, "subsidy-review", true,
			use("civil.residents.id_card", join), use("civil.residents.district", grp, out),
			use("health.insured.id_card", join), use("health.insured.insurance_type", grp, out),
			use("health.insured.chronic_disease", agg, pred), use("health.insured.annual_claims", agg)),
		"allow_masked": query(bob, "enterprise-credit", false,
			use("police.household.name", out), use("police.household.household_district", out, grp)),
		"deny_many": query(bob, "enterprise-credit", false,
			use("police.criminal_records.offense", out), use("police.household.id_card", out),
			use("civil.residents.district", out)),
	}
	for name, in := range inputs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Decide(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
