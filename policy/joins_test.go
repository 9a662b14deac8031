package policy

import (
	"context"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// TestJoinKeysOnlyThroughPSI: a non-owner's join_key column may be an
// equality join key only in a private-set-intersection pair.
func TestJoinKeysOnlyThroughPSI(t *testing.T) {
	e := demoEngine(t)
	bob := sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	in := func(psi bool) Input {
		return Input{
			Principal: bob, Purpose: "enterprise-credit",
			Datasets: []string{"market.enterprises", "police.household"},
			Columns: []sluice.ColumnUsage{
				{Dataset: "market.enterprises", Column: "legal_rep_id_card", Usages: []sluice.Usage{sluice.UseJoinKey}},
				{Dataset: "market.enterprises", Column: "name", Usages: []sluice.Usage{sluice.UseOutput}},
				{Dataset: "police.household", Column: "id_card", Usages: []sluice.Usage{sluice.UseJoinKey}},
			},
			Joins: []JoinPair{{
				Left:  JoinSide{Dataset: "market.enterprises", Column: "legal_rep_id_card"},
				Right: JoinSide{Dataset: "police.household", Column: "id_card"},
				PSI:   psi,
			}},
		}
	}
	d, err := e.Decide(context.Background(), in(true))
	if err != nil || !d.Allow {
		t.Fatalf("a PSI join on join keys must be allowed: %+v %v", d, err)
	}
	d, err = e.Decide(context.Background(), in(false))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || len(d.Reasons) == 0 || d.Reasons[0].Rule != "join_key_plain_join" || d.Reasons[0].Column != "id_card" {
		t.Fatalf("a plain join exposing police.household.id_card must be denied: %+v", d)
	}
}
