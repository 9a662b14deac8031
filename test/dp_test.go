package test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/budget"
)

// TestDifferentialPrivacyBudget: alice's public-health-planning grant has a
// budget of ε = 1 spent 0.25 per query. Counts come back with Laplace noise
// (scale 1/0.25 = 4), the fifth query is refused before it runs, and a SUM
// is refused for free: the grant states no clamp bounds.
func TestDifferentialPrivacyBudget(t *testing.T) {
	const purpose = "public-health-planning"
	_, _, err := query(t, "alice", purpose, "SELECT insurance_type, SUM(hospital_visits) AS v FROM health.insured GROUP BY insurance_type")
	if err == nil || !strings.Contains(err.Error(), "Unimplemented") || !strings.Contains(err.Error(), "states no clamp bounds for health.insured.hospital_visits") {
		t.Fatalf("SUM under a DP grant without clamp bounds must be refused, got %v", err)
	}
	truth := map[string]float64{}
	rows := directStrings(t, "health", "SELECT insurance_type, COUNT(*) FROM insured GROUP BY insurance_type")
	for _, r := range rows {
		n, _ := strconv.ParseFloat(r[1], 64)
		truth[r[0]] = n
	}
	// The column that requires differential privacy: refused under her
	// aggregate-only grant (k alone), counted with noise under the budget.
	mental := "SELECT insurance_type, COUNT(*) AS n FROM health.insured WHERE severe_mental_illness = 1 GROUP BY insurance_type"
	if _, _, err := query(t, "alice", "subsidy-review", mental); err == nil || !strings.Contains(err.Error(), "[dp_required] health.insured.severe_mental_illness") {
		t.Fatalf("the DP-only column under k alone: want dp_required, got %v", err)
	}
	mentalTruth := map[string]float64{}
	for _, r := range directStrings(t, "health", "SELECT insurance_type, COUNT(*) FROM insured WHERE severe_mental_illness = 1 GROUP BY insurance_type") {
		n, _ := strconv.ParseFloat(r[1], 64)
		mentalTruth[r[0]] = n
	}
	const stmt = "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type"
	for i := 0; i < 4; i++ {
		stmt, truth := stmt, truth
		if i == 3 {
			stmt, truth = mental, mentalTruth
		}
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

// dpAnalyst is a market analyst the DP tests create, so that the grant
// they are given changes nothing for the demo users other tests query as.
const dpAnalyst = "frank"

// newMarketAnalyst creates a market analyst through the admin API with a
// token the tests query with, and returns a validity period for the
// applications it makes (from an hour ago, for three months).
func newMarketAnalyst(t *testing.T, name string) (from, until string) {
	t.Helper()
	mustAPI(t, 200, "PUT", "/v1/users/"+name, "dave", `{"role":"analyst","department":"market"}`)
	var tok struct {
		Secret string `json:"token"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/users/"+name+"/tokens", "dave", `{"ttl":"2h","label":"dp test"}`), &tok)
	issuedTokens.Store(name, tok.Secret)
	return time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().AddDate(0, 3, 0).UTC().Format(time.RFC3339)
}

// dpSumGrant creates frank, has him apply for health.insured under
// public-health-planning with a budget of ε = 2 (0.25 per query) and clamp
// bounds, and health's admin approve it: the budget is his alone.
func dpSumGrant(t *testing.T) {
	t.Helper()
	from, until := newMarketAnalyst(t, dpAnalyst)
	app := func(clamp string) string {
		return fmt.Sprintf(`{"items":[{"dataset":"health.insured","columns":["id_card","insurance_type","chronic_disease","annual_claims","hospital_visits"],"clamp":%s}],
		"purpose":"public-health-planning","justification":"claims per insurance type, with noise, for planning","valid_from":%q,"valid_until":%q,
		"mode":"aggregate","k":10,"epsilon":2,"epsilon_per_query":0.25}`, clamp, from, until)
	}
	// Bounds the catalog cannot take are refused when applying.
	for _, c := range []struct{ clamp, want string }{
		{`{"insurance_type":[0,1]}`, "items[0].clamp.insurance_type: health.insured.insurance_type is a text column"},
		{`{"hospital_visits":[0,2.5]}`, "whole-number bounds"},
		{`{"hospital_visit":[0,1]}`, "items[0].clamp.hospital_visit: column"},
		{`{"annual_claims":[5000,0]}`, "the lower bound 5000 must be below the upper bound 0"},
		{`{"annual_claims":[5000]}`, "two numbers [lo, hi]"},
	} {
		if raw := mustAPI(t, 400, "POST", "/v1/applications", dpAnalyst, app(c.clamp)); !strings.Contains(string(raw), c.want) {
			t.Fatalf("clamp %s: want %q, got %s", c.clamp, c.want, raw)
		}
	}
	var a struct {
		ID       string   `json:"id"`
		Status   string   `json:"status"`
		GrantIDs []string `json:"grant_ids"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/applications", dpAnalyst, app(`{"annual_claims":[0,5000],"hospital_visits":[0,20]}`)), &a)
	mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/forward", "dave", `{"note":"ok"}`)
	decodeJSON(t, mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/approve", "hana", `{"note":"noisy sums only"}`), &a)
	if a.Status != "approved" || len(a.GrantIDs) != 1 {
		t.Fatalf("approval: %+v", a)
	}
	if raw := mustAPI(t, 200, "GET", "/v1/grants", dpAnalyst, ""); !strings.Contains(string(raw), `"clamp":{"annual_claims":[0,5000],"hospital_visits":[0,20]}`) {
		t.Fatalf("the grant does not carry its clamp bounds: %s", raw)
	}
	// Civil affairs' residents, aggregate-only and without a budget of
	// their own, for the question across departments.
	civil := fmt.Sprintf(`{"items":[{"dataset":"civil.residents","columns":["id_card","district","low_income"]}],
		"purpose":"public-health-planning","justification":"claims per district, with noise, for planning","valid_from":%q,"valid_until":%q,
		"mode":"aggregate","k":10}`, from, until)
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/applications", dpAnalyst, civil), &a)
	mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/forward", "dave", `{"note":"ok"}`)
	decodeJSON(t, mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/approve", "cheng", `{"note":"aggregates only"}`), &a)
	if a.Status != "approved" {
		t.Fatalf("approval: %+v", a)
	}
}

// dpBudget is what 'sluice budget --principal frank' prints for the purpose.
func dpBudget(t *testing.T) budget.Budget {
	t.Helper()
	b, err := budget.Open(context.Background(), storePath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	list, err := b.List(context.Background(), dpAnalyst)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.Purpose == "public-health-planning" {
			return x
		}
	}
	t.Fatalf("%s has no public-health-planning budget: %+v", dpAnalyst, list)
	return budget.Budget{}
}

// floats parses the named columns of rows keyed by the first column.
func floats(t *testing.T, rows [][]string, col int) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range rows {
		x, err := strconv.ParseFloat(r[col], 64)
		if err != nil {
			t.Fatalf("%q is not a number: %v", r[col], err)
		}
		out[r[0]] = x
	}
	return out
}

// TestDifferentialPrivacySum: under a grant with clamp bounds, SUM is
// released with Laplace noise around the clamped sum (each claim counted as
// at most 5000 at the source, which the demo's inpatient stays far exceed),
// on one dataset and across departments; what cannot be bounded is refused
// before any budget is spent; each release spends ε = 0.25.
func TestDifferentialPrivacySum(t *testing.T) {
	const purpose = "public-health-planning"
	dpSumGrant(t)
	if b := dpBudget(t); b.Limit != 2 || b.Spent != 0 {
		t.Fatalf("budget before any query: %+v", b)
	}

	refusals := []struct{ name, sql, want string }{
		{"sum without bounds", "SELECT insurance_type, SUM(chronic_disease) AS c FROM health.insured GROUP BY insurance_type", "states no clamp bounds for health.insured.chronic_disease"},
		// The policy refuses these before the noise is planned.
		{"sum of an expression", "SELECT insurance_type, SUM(annual_claims * 2) AS c FROM health.insured GROUP BY insurance_type", "PermissionDenied desc = denied by policy; [aggregate_expression] health.insured.annual_claims"},
		{"avg", "SELECT insurance_type, AVG(annual_claims) AS c FROM health.insured GROUP BY insurance_type", "use SUM and COUNT"},
		{"max", "SELECT insurance_type, MAX(annual_claims) AS c FROM health.insured GROUP BY insurance_type", "[order_statistic] health.insured.annual_claims"},
		{"order by a sum", "SELECT insurance_type, SUM(annual_claims) AS c FROM health.insured GROUP BY insurance_type ORDER BY c", "ORDER BY cannot sort on an aggregate"},
		{"across departments, a column without a budget", "SELECT r.district, SUM(r.low_income) AS c FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district", "no budgeted grant the query relies on gives clamp bounds for civil.residents.low_income"},
		// A legal representative may represent several enterprises: their
		// claims would count once per enterprise, beyond what the noise covers.
		{"across departments, a one-to-many join", "SELECT e.industry, SUM(i.annual_claims) AS c FROM market.enterprises e JOIN health.insured i ON e.legal_rep_id_card = i.id_card GROUP BY e.industry", "market.enterprises.legal_rep_id_card is not declared unique"},
		{"across departments, a one-to-many join counting", "SELECT e.industry, COUNT(*) AS n FROM market.enterprises e JOIN health.insured i ON e.legal_rep_id_card = i.id_card GROUP BY e.industry", "market.enterprises.legal_rep_id_card is not declared unique"},
	}
	for _, c := range refusals {
		t.Run("refused/"+c.name, func(t *testing.T) {
			_, _, err := query(t, dpAnalyst, purpose, c.sql)
			if err == nil || !(strings.Contains(err.Error(), "Unimplemented") || strings.Contains(err.Error(), "PermissionDenied")) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want Unimplemented or PermissionDenied saying %q, got %v", c.want, err)
			}
		})
	}
	if b := dpBudget(t); b.Spent != 0 || b.Queries != 0 {
		t.Fatalf("refused queries spent budget: %+v", b)
	}

	// Ground truth from health's own database: the sum of the claims each
	// clamped to [0, 5000], and the raw sum the clamp keeps out.
	direct := directStrings(t, "health", `SELECT insurance_type,
		SUM(CASE WHEN annual_claims < 0 THEN 0 WHEN annual_claims > 5000 THEN 5000 ELSE annual_claims END),
		SUM(annual_claims), SUM(CASE WHEN hospital_visits > 20 THEN 20 ELSE hospital_visits END), COUNT(*),
		SUM(annual_claims > 5000)
		FROM insured GROUP BY insurance_type`)
	clamped, raw, visits, counts := floats(t, direct, 1), floats(t, direct, 2), floats(t, direct, 3), floats(t, direct, 4)
	for g, n := range floats(t, direct, 5) {
		// Laplace scale 5000/0.25 = 20000: the clamp must matter far more
		// than the noise, or this test would show nothing.
		if n < 100 || raw[g]-clamped[g] < 100*20000 {
			t.Fatalf("group %s: %v claims above 5000, raw %v vs clamped %v: the data has too few outliers to tell", g, n, raw[g], clamped[g])
		}
	}

	t.Run("single dataset", func(t *testing.T) {
		const stmt = "SELECT insurance_type, SUM(annual_claims) AS claims FROM health.insured GROUP BY insurance_type"
		moved := false
		for i := 0; i < 3; i++ {
			_, rows, err := query(t, dpAnalyst, purpose, stmt)
			if err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
			if len(rows) != len(clamped) {
				t.Fatalf("want %d groups, got %v", len(clamped), rows)
			}
			for g, x := range floats(t, rows, 1) {
				// 15 scales: exceeded with probability e^-15 per value.
				if math.Abs(x-clamped[g]) > 15*20000 {
					t.Fatalf("noisy sum %v for %s is not near the clamped sum %v (raw %v)", x, g, clamped[g], raw[g])
				}
				moved = moved || x != clamped[g]
			}
		}
		if !moved {
			t.Fatal("three releases equal the true clamped sums: no noise was added")
		}
		// The agent was sent the clamp: the audit entry's plan is the
		// fragment it ran.
		es, err := openAudit(t).Search(context.Background(), audit.Filter{Principal: dpAnalyst, Purpose: purpose, Kind: audit.KindQuery, Decision: audit.DecisionAllow})
		if err != nil || len(es) == 0 {
			t.Fatalf("no allowed entry: %v", err)
		}
		e := es[len(es)-1]
		if !strings.Contains(e.Plan, "sum((CASE WHEN (annual_claims < 0) THEN 0 WHEN (annual_claims > 5000) THEN 5000 ELSE annual_claims END))") {
			t.Fatalf("the fragment does not clamp at the source:\n%s", e.Plan)
		}
		if fmt.Sprint(e.Obligations["noise_epsilon"]) != "0.25" {
			t.Fatalf("obligations %v", e.Obligations)
		}
	})

	t.Run("two noisy columns share the epsilon", func(t *testing.T) {
		_, rows, err := query(t, dpAnalyst, purpose, "SELECT insurance_type, SUM(hospital_visits) AS visits, COUNT(*) AS n FROM health.insured GROUP BY insurance_type")
		if err != nil {
			t.Fatal(err)
		}
		// Scales: 20·2/0.25 = 160 for the visits, 1·2/0.25 = 8 for n.
		for g, x := range floats(t, rows, 1) {
			if math.Abs(x-visits[g]) > 15*160 {
				t.Fatalf("noisy visits %v for %s not near %v", x, g, visits[g])
			}
		}
		for g, x := range floats(t, rows, 2) {
			if math.Abs(x-counts[g]) > 15*8 {
				t.Fatalf("noisy count %v for %s not near %v", x, g, counts[g])
			}
		}
	})

	t.Run("across departments", func(t *testing.T) {
		const stmt = "SELECT r.district, SUM(i.annual_claims) AS claims, COUNT(*) AS n FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card GROUP BY r.district"
		_, rows, err := query(t, dpAnalyst, purpose, stmt)
		if err != nil {
			t.Fatal(err)
		}
		truth := rowsOf(t, attached(t, "civil", "health"), `SELECT r.district,
			SUM(CASE WHEN i.annual_claims < 0 THEN 0 WHEN i.annual_claims > 5000 THEN 5000 ELSE i.annual_claims END), COUNT(*)
			FROM residents r JOIN o.insured i ON r.id_card = i.id_card GROUP BY r.district HAVING COUNT(*) >= 10`)
		want := floats(t, truth, 1)
		if len(rows) == 0 || len(rows) != len(want) {
			t.Fatalf("groups: got %v, want those of %v", rows, truth)
		}
		// Scale 5000·2/0.25 = 40000 for the sums.
		for g, x := range floats(t, rows, 1) {
			if math.Abs(x-want[g]) > 15*40000 {
				t.Fatalf("noisy sum %v for %s is not near the clamped sum %v", x, g, want[g])
			}
		}
		es, err := openAudit(t).Search(context.Background(), audit.Filter{Principal: dpAnalyst, Purpose: purpose, Kind: audit.KindQuery, Decision: audit.DecisionAllow})
		if err != nil || len(es) == 0 {
			t.Fatalf("no allowed entry: %v", err)
		}
		if p := es[len(es)-1].Plan; !strings.Contains(p, `(CASE WHEN (i.annual_claims < 0) THEN 0 WHEN (i.annual_claims > 5000) THEN 5000 ELSE i.annual_claims END) AS "$clamp1"`) {
			t.Fatalf("the sandbox does not clamp before the aggregate:\n%s", p)
		}
	})

	// Five releases at 0.25 each; what 'sluice budget' shows.
	if b := dpBudget(t); b.Spent != 1.25 || b.Remaining != 0.75 || b.Queries != 5 {
		t.Fatalf("budget after five releases: %+v", b)
	}
}

// TestApprovalTightensPrivacy: the provider may lower the budget and
// narrow the clamp bounds when approving, never loosen them or add a
// budget the analyst did not ask for; each refused approval changes
// nothing and the application stays forwarded.
func TestApprovalTightensPrivacy(t *testing.T) {
	const analyst = "gina" // her own budget: nothing here touches frank's
	from, until := newMarketAnalyst(t, analyst)
	apply := func(body string) string {
		var a struct {
			ID string `json:"id"`
		}
		decodeJSON(t, mustAPI(t, 201, "POST", "/v1/applications", analyst, body), &a)
		mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/forward", "dave", `{"note":"ok"}`)
		return a.ID
	}
	health := apply(fmt.Sprintf(`{"items":[{"dataset":"health.insured","columns":["insurance_type","annual_claims"],"clamp":{"annual_claims":[0,5000]}}],
		"purpose":"public-health-planning","justification":"claims per insurance type, with noise","valid_from":%q,"valid_until":%q,
		"mode":"aggregate","k":10,"epsilon":2,"epsilon_per_query":0.25}`, from, until))
	civil := apply(fmt.Sprintf(`{"items":[{"dataset":"civil.residents","columns":["district"]}],
		"purpose":"public-health-planning","justification":"residents per district","valid_from":%q,"valid_until":%q,"mode":"aggregate","k":10}`, from, until))

	for _, c := range []struct{ name, id, admin, body, want string }{
		{"raise the budget", health, "hana", `{"epsilon":3}`, "can lower the budget, not raise it above 2"},
		{"raise the per-query spend", health, "hana", `{"epsilon_per_query":0.5}`, "not raise it above 0.25"},
		{"widen the bounds", health, "hana", `{"clamp":{"health.insured":{"annual_claims":[0,6000]}}}`, "within the bounds applied for, [0, 5000]"},
		{"invert the bounds", health, "hana", `{"clamp":{"health.insured":{"annual_claims":[3000,1000]}}}`, "within the bounds applied for"},
		{"bound a column applied for without bounds", health, "hana", `{"clamp":{"health.insured":{"insurance_type":[0,1]}}}`, "approval can narrow bounds, not add them"},
		{"bound another dataset", health, "hana", `{"clamp":{"civil.residents":{"district":[0,1]}}}`, "the application has no such dataset"},
		{"add a budget", civil, "cheng", `{"epsilon":1}`, "approval cannot add one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if raw := mustAPI(t, 400, "POST", "/v1/applications/"+c.id+"/approve", c.admin, c.body); !strings.Contains(string(raw), c.want) {
				t.Fatalf("want %q, got %s", c.want, raw)
			}
		})
	}

	var a struct {
		Status   string   `json:"status"`
		GrantIDs []string `json:"grant_ids"`
	}
	decodeJSON(t, mustAPI(t, 200, "POST", "/v1/applications/"+health+"/approve", "hana",
		`{"note":"narrower","epsilon":1,"epsilon_per_query":0.1,"clamp":{"health.insured":{"annual_claims":[0,3000]}}}`), &a)
	if a.Status != "approved" || len(a.GrantIDs) != 1 {
		t.Fatalf("approval: %+v", a)
	}
	raw := string(mustAPI(t, 200, "GET", "/v1/grants", analyst, ""))
	if !strings.Contains(raw, `"epsilon":1,"epsilon_per_query":0.1`) || !strings.Contains(raw, `"clamp":{"annual_claims":[0,3000]}`) {
		t.Fatalf("the grant does not carry the tightened budget and bounds: %s", raw)
	}
	// The narrower bound is the one the agent clamps to.
	if _, _, err := query(t, analyst, "public-health-planning", "SELECT insurance_type, SUM(annual_claims) AS c FROM health.insured GROUP BY insurance_type"); err != nil {
		t.Fatal(err)
	}
	es, err := openAudit(t).Search(context.Background(), audit.Filter{Principal: analyst, Kind: audit.KindQuery, Decision: audit.DecisionAllow})
	if err != nil || len(es) == 0 {
		t.Fatalf("no allowed entry: %v", err)
	}
	if p := es[len(es)-1].Plan; !strings.Contains(p, "WHEN (annual_claims > 3000) THEN 3000") {
		t.Fatalf("the fragment does not clamp to the approved bound:\n%s", p)
	}
}
