package test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-gov/sluice/broker/audit"
)

// TestDifferentialPrivacyBudget: alice's public-health-planning grant has a
// budget of ε = 1 spent 0.25 per query. Counts come back with Laplace noise
// (scale 1/0.25 = 4), the fifth query is refused before it runs, and only
// COUNT may be released under a budget.
func TestDifferentialPrivacyBudget(t *testing.T) {
	const purpose = "public-health-planning"
	_, _, err := query(t, "alice", purpose, "SELECT insurance_type, SUM(hospital_visits) AS v FROM health.insured GROUP BY insurance_type")
	if err == nil || !strings.Contains(err.Error(), "only COUNT") {
		t.Fatalf("SUM under a DP grant must be refused, got %v", err)
	}
	truth := map[string]float64{}
	rows := directStrings(t, "health", "SELECT insurance_type, COUNT(*) FROM insured GROUP BY insurance_type")
	for _, r := range rows {
		n, _ := strconv.ParseFloat(r[1], 64)
		truth[r[0]] = n
	}
	const stmt = "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type"
	for i := 0; i < 4; i++ {
		_, got, err := query(t, "alice", purpose, stmt)
		if err != nil {
			t.Fatalf("query %d within the budget: %v", i+1, err)
		}
		if len(got) != len(truth) {
			t.Fatalf("want %d groups, got %v", len(truth), got)
		}
		for _, r := range got {
			n, err := strconv.ParseFloat(r[1], 64)
			if err != nil || math.Abs(n-truth[r[0]]) > 80 {
				t.Fatalf("noisy count %q for %s is not near the true %v (Laplace scale 4)", r[1], r[0], truth[r[0]])
			}
		}
	}
	_, _, err = query(t, "alice", purpose, stmt)
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") || !strings.Contains(err.Error(), "remains") {
		t.Fatalf("the fifth query must be refused for lack of budget, got %v", err)
	}
	log := openAudit(t)
	es, err := log.Search(context.Background(), audit.Filter{Principal: "alice", Purpose: purpose, Kind: audit.KindQuery, Decision: audit.DecisionAllow})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("want 4 allowed decisions under the budget, got %d", len(es))
	}
	for _, e := range es {
		if e.Obligations["noise_epsilon"] == nil {
			t.Fatalf("decision %d does not record the noise: %+v", e.Seq, e.Obligations)
		}
	}
}
