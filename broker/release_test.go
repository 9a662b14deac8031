package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
	"github.com/sluice-gov/sluice/planner"
)

// dpParts loads the demo world's configuration with one more grant: bob's
// budget on health.insured, with the given clamp bounds.
func dpParts(t *testing.T, clamp map[string]sluice.Bounds, edits ...func(*demo.World)) (*broker.Parts, error) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	w, err := demo.Generate(ctx, demo.Options{Dir: dir, Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range edits {
		edit(w)
	}
	now := time.Now().UTC().Truncate(time.Second)
	g := sluice.Grant{ID: "bob-health-dp", Grantee: "bob", Dataset: "health.insured",
		Columns: []string{"id_card", "insurance_type", "chronic_disease", "annual_claims", "hospital_visits"},
		Purpose: "public-health-planning", ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour),
		Mode: sluice.ModeAggregate, K: 10, Epsilon: 1, EpsilonPerQuery: 0.25, Clamp: clamp}
	if err := demo.WriteGrants(w.GrantsFile, append(w.Grants, g)); err != nil {
		t.Fatal(err)
	}
	cfg := &broker.Config{Users: filepath.Join(dir, "users-hashed.json"), Purposes: w.PurposesFile, Grants: w.GrantsFile}
	for _, d := range demo.Departments {
		cfg.Departments = append(cfg.Departments, w.DepartmentFiles[d])
	}
	if err := os.WriteFile(cfg.Users, []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	return broker.LoadParts(ctx, cfg)
}

// TestDPSumDecision: with a grants file carrying clamp bounds, the plan
// the agent receives clamps each SUM at the source and the explanation
// names the bounds; what cannot be clamped is refused at decision time,
// before any budget exists to spend. A clamp the catalog cannot take
// stops the broker at start-up, naming the file and the grant.
func TestDPSumDecision(t *testing.T) {
	parts, err := dpParts(t, map[string]sluice.Bounds{"annual_claims": {0, 5000}, "hospital_visits": {0, 20}})
	if err != nil {
		t.Fatal(err)
	}
	bob := sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	cases := []struct {
		name, sql string
		wantErr   string
		wantPlan  []string
	}{
		{name: "single dataset", sql: "SELECT insurance_type, SUM(annual_claims) AS claims, COUNT(*) AS n FROM health.insured GROUP BY insurance_type",
			wantPlan: []string{`sum((CASE WHEN (annual_claims < 0) THEN 0 WHEN (annual_claims > 5000) THEN 5000 ELSE annual_claims END)) AS "claims"`}},
		// One person may represent several enterprises (test/dp_test.go has
		// the one-to-one join that is released).
		{name: "across departments, one-to-many", sql: "SELECT e.industry, SUM(i.hospital_visits) AS visits FROM market.enterprises e JOIN health.insured i ON e.legal_rep_id_card = i.id_card GROUP BY e.industry",
			wantErr: "market.enterprises.legal_rep_id_card is not declared unique"},
		{name: "no bounds", sql: "SELECT SUM(chronic_disease) AS c FROM health.insured", wantErr: "budget of grant bob-health-dp: the grant states no clamp bounds for health.insured.chronic_disease"},
		{name: "avg", sql: "SELECT AVG(annual_claims) AS c FROM health.insured", wantErr: "use SUM and COUNT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan, dec, err := parts.Explain(context.Background(), bob, "public-health-planning", c.sql)
			if c.wantErr != "" {
				if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want ENotSupported saying %q, got %v", c.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !dec.Allow || len(dec.DP) != 1 {
				t.Fatalf("decision:\n%s", dec.Explain())
			}
			norm := plan.Normalized()
			for _, w := range c.wantPlan {
				if !strings.Contains(norm, w) {
					t.Errorf("plan lacks %q:\n%s", w, norm)
				}
			}
			if ex := dec.Explain(); !strings.Contains(ex, "SUM(health.insured.annual_claims): each value clamped to [0, 5000] at the source (sensitivity 5000)") {
				t.Errorf("explanation lacks the bounds:\n%s", ex)
			}
		})
	}

	_, err = dpParts(t, map[string]sluice.Bounds{"insurance_type": {0, 1}})
	if sluice.ErrorCode(err) != sluice.EInvalid || !strings.Contains(err.Error(), "grants[5] (bob-health-dp).clamp.insurance_type: health.insured.insurance_type is a text column") {
		t.Fatalf("a clamp on a text column must stop the broker, got %v", err)
	}
}

// TestDPNeedsAPrivacyUnit: a budget on a dataset that does not declare one
// row per person (no unique join_key) releases nothing, COUNT included,
// and the refusal says why.
func TestDPNeedsAPrivacyUnit(t *testing.T) {
	parts, err := dpParts(t, nil, func(w *demo.World) {
		f := w.DepartmentFiles["health"]
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.ReplaceAll(string(raw), "unique: true", "unique: false")
		if edited == string(raw) {
			t.Fatalf("%s declares nothing unique; the test would show nothing", f)
		}
		if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	bob := sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	_, dec, err := parts.Explain(context.Background(), bob, "public-health-planning", "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type")
	if err != nil {
		t.Fatal(err)
	}
	// The policy refuses first: persons can be counted only by a person key.
	if dec.Allow || len(dec.Reasons) != 1 || dec.Reasons[0].Rule != "no_privacy_unit" || !strings.Contains(dec.Reasons[0].Message, "no unique person key") {
		t.Fatalf("want a denial no_privacy_unit, got %+v", dec)
	}
	// And the broker's own check, should a policy ever let it through.
	if err := planner.CheckPrivacyUnits(parts.Catalog, []planner.Budget{{Grant: "g", Dataset: "health.insured"}}); sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), "health.insured declares no unique person identifier") {
		t.Fatalf("want ENotSupported about the person identifier, got %v", err)
	}
}
