package planner

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

type passCase struct {
	name string
	sql  string
	o    Obligations
}

func passCases() []passCase {
	alice := sluice.Principal{Name: "alice", Role: sluice.RoleAnalyst, Department: "civil"}
	bob := sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	erin := sluice.Principal{Name: "erin", Role: sluice.RoleAnalyst, Department: "health"}
	return []passCase{
		{
			name: "single_masks_k",
			sql:  "SELECT name, district, COUNT(*) AS n, AVG(monthly_allowance) AS avg_allowance FROM civil.residents WHERE low_income = 1 GROUP BY name, district",
			o: Obligations{
				Requester: erin, Purpose: "public-health-planning",
				Masks:        map[string]map[string]sluice.MaskRule{"civil.residents": {"name": sluice.MaskSurname}},
				MinGroupSize: 10, Protected: map[string]int{"civil.residents": 10},
			},
		},
		{
			name: "cross_psi_protected",
			sql:  "SELECT r.district, COUNT(*) AS residents, AVG(i.annual_claims) AS avg_claims FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district",
			o: Obligations{
				Requester: alice, Purpose: "subsidy-review",
				MinGroupSize: 10, Protected: map[string]int{"health.insured": 10},
			},
		},
		{
			name: "single_row_filter",
			sql:  "SELECT household_district, name FROM police.household WHERE migrant = 1",
			o: Obligations{
				Requester: bob, Purpose: "enterprise-credit",
				Masks:      map[string]map[string]sluice.MaskRule{"police.household": {"name": sluice.MaskSurname}},
				RowFilters: map[string][]*sluice.RowFilter{"police.household": {{Column: "household_district", Values: []string{"城东区", "城西区"}}}},
			},
		},
		{
			name: "cross_row_filter",
			sql:  "SELECT e.name, e.credit_code, h.household_district FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card WHERE h.migrant = 1",
			o: Obligations{
				Requester: bob, Purpose: "enterprise-credit",
				RowFilters: map[string][]*sluice.RowFilter{"police.household": {{Column: "household_district", Values: []string{"城东区"}}}},
			},
		},
		{
			name: "single_dp_clamp",
			sql:  "SELECT insurance_type, COUNT(*) AS n, SUM(annual_claims) AS claims FROM health.insured GROUP BY insurance_type",
			o: Obligations{
				Requester: alice, Purpose: "public-health-planning",
				MinGroupSize: 10, Protected: map[string]int{"health.insured": 10},
				Budgets: []Budget{{Grant: "g-dp", Dataset: "health.insured"}}, Bounds: testBounds(healthBounds),
			},
		},
		{
			name: "cross_dp_clamp",
			sql:  "SELECT r.district, COUNT(*) AS n, SUM(i.annual_claims) AS claims FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district",
			o: Obligations{
				Requester: alice, Purpose: "public-health-planning",
				MinGroupSize: 10, Protected: map[string]int{"health.insured": 10},
				Budgets: []Budget{{Grant: "g-dp", Dataset: "health.insured"}}, Bounds: testBounds(healthBounds),
			},
		},
	}
}

// TestPassesGolden prints each plan after every pass of passes, in the
// declared order, and checks the whole against testdata/passes/.
func TestPassesGolden(t *testing.T) {
	cat := testCatalog(t)
	p := New(cat)
	for _, c := range passCases() {
		t.Run(c.name, func(t *testing.T) {
			pl := mustPlan(t, p, c.sql)
			var b strings.Builder
			fmt.Fprintf(&b, "-- query\n%s\n-- planned\n%s\n", c.sql, pl.Normalized())
			o := c.o
			prev := pl.Normalized()
			for _, pass := range passes {
				if err := pass.Run(pl, cat, &o); err != nil {
					t.Fatalf("pass %s: %v", pass.Name, err)
				}
				fmt.Fprintf(&b, "-- after %s\n", pass.Name)
				if n := pl.Normalized(); n == prev {
					b.WriteString("(unchanged)\n")
				} else {
					b.WriteString(n + "\n")
					prev = n
				}
			}
			for _, f := range pl.fragments() {
				if f.Requester != c.o.Requester || f.Purpose != c.o.Purpose {
					t.Errorf("fragment %s: requester %+v, purpose %q", f.Dataset, f.Requester, f.Purpose)
				}
			}
			if len(pl.RowFilters) > 0 {
				fmt.Fprintf(&b, "-- row filters\n%s\n", strings.Join(pl.RowFilters, "\n"))
			}
			if len(pl.UnitSets) > 0 {
				b.WriteString("-- unit sets\n")
				for _, s := range pl.UnitSets {
					fmt.Fprintf(&b, "%s: %s k=%d of=%q\n", s.Column, s.Dataset, s.K, s.Of)
				}
			}
			checkGolden(t, filepath.Join("testdata", "passes", c.name+".golden"), b.String())

			// Apply runs the same passes to the same end.
			again := mustPlan(t, p, c.sql)
			if err := again.Apply(cat, c.o); err != nil {
				t.Fatal(err)
			}
			if again.Normalized() != pl.Normalized() || !reflect.DeepEqual(again.RowFilters, pl.RowFilters) || !reflect.DeepEqual(again.UnitSets, pl.UnitSets) {
				t.Errorf("Apply differs from the passes run one by one:\n%s\n--- passes\n%s", again.Normalized(), pl.Normalized())
			}
		})
	}
}

// TestPassOrder: Apply runs Passes in the order the list declares, and
// the first error stops the rest and is returned as the pass made it.
func TestPassOrder(t *testing.T) {
	var names []string
	for _, pass := range passes {
		if pass.Name == "" || pass.Run == nil {
			t.Fatalf("a pass without a name or a function: %+v", pass)
		}
		names = append(names, pass.Name)
	}
	if want := []string{"obligations", "row_filters", "privacy_units", "clamps", "verify"}; !reflect.DeepEqual(names, want) {
		t.Errorf("passes %v, want %v", names, want)
	}

	// Record what Apply runs, through the declared list itself.
	orig := passes
	t.Cleanup(func() { passes = orig })
	var ran []string
	passes = nil
	for _, pass := range orig {
		passes = append(passes, Pass{Name: pass.Name, Run: func(p *Plan, cat *sluice.Catalog, o *Obligations) error {
			ran = append(ran, pass.Name)
			return pass.Run(p, cat, o)
		}})
	}
	cat := testCatalog(t)
	p := New(cat)
	c := passCases()[1]
	if err := mustPlan(t, p, c.sql).Apply(cat, c.o); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ran, names) {
		t.Errorf("Apply ran %v, want %v", ran, names)
	}

	// A budget on a dataset without a privacy unit: the clamps pass
	// refuses, verify never runs, the error is the pass's own.
	ran = nil
	o := Obligations{Budgets: []Budget{{Grant: "g-dp", Dataset: "market.enterprises"}}, Bounds: testBounds(nil)}
	err := mustPlan(t, p, "SELECT industry, COUNT(*) AS n FROM market.enterprises GROUP BY industry").Apply(cat, o)
	if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(sluice.ErrorMessage(err), "market.enterprises declares no unique person identifier") {
		t.Fatalf("want the clamps pass's refusal, got %v", err)
	}
	if want := []string{"obligations", "row_filters", "privacy_units", "clamps"}; !reflect.DeepEqual(ran, want) {
		t.Errorf("after an error in clamps Apply ran %v, want %v", ran, want)
	}

	// Any list: the first error stops it.
	ran = nil
	boom := errors.New("boom")
	list := []Pass{
		{Name: "a", Run: func(*Plan, *sluice.Catalog, *Obligations) error { ran = append(ran, "a"); return nil }},
		{Name: "b", Run: func(*Plan, *sluice.Catalog, *Obligations) error { ran = append(ran, "b"); return boom }},
		{Name: "c", Run: func(*Plan, *sluice.Catalog, *Obligations) error { ran = append(ran, "c"); return nil }},
	}
	if err := mustPlan(t, p, c.sql).runPasses(list, cat, &Obligations{}); err != boom {
		t.Errorf("want the failing pass's error, got %v", err)
	}
	if !reflect.DeepEqual(ran, []string{"a", "b"}) {
		t.Errorf("ran %v, want a, b", ran)
	}
}
