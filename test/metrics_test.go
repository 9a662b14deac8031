package test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// opsGet fetches url (https for the broker's admin listener, http for an
// agent's metrics listener) as user ("" sends no token).
func opsGet(t testing.TB, url, user string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+tokenFor(t, user))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// scrape reads a /metrics endpoint and parses the text exposition format.
func scrape(t testing.TB, url, user string) map[string]*dto.MetricFamily {
	t.Helper()
	status, raw := opsGet(t, url, user)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v", url, err)
	}
	return fams
}

// sample is the value of the series of family name whose labels include
// want (a counter's value, a histogram's sample count), 0 when absent.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	total := 0.0
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

// labelValue is what a Sluice metric's label may hold: an outcome, a kind,
// a department id, a check name — never SQL, a name or a value.
var labelValue = regexp.MustCompile(`^[a-z0-9_:]{1,64}$`)

// checkLabels fails on any label value of a sluice_ metric outside the
// closed sets, or quoting the statements the test ran.
func checkLabels(t *testing.T, where string, fams map[string]*dto.MetricFamily, stmts ...string) {
	t.Helper()
	n := 0
	for name, f := range fams {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		n++
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if !labelValue.MatchString(v) {
					t.Errorf("%s: %s{%s=%q}: label value outside the closed sets", where, name, l.GetName(), v)
				}
				for _, s := range stmts {
					for _, word := range strings.Fields(strings.ToLower(s)) {
						if len(word) > 6 && strings.Contains(strings.ToLower(v), strings.Trim(word, "(),*")) {
							t.Errorf("%s: %s{%s=%q} quotes the statement (%q)", where, name, l.GetName(), v, word)
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Errorf("%s: no sluice_ metric at all", where)
	}
}

// TestMetrics runs an answered, a denied and a private-join query through
// the demo and checks that the broker's and the agents' metrics moved,
// labelled only from the closed sets; and that the broker's /metrics needs
// an auditor's or platform admin's token.
func TestMetrics(t *testing.T) {
	brokerURL := "https://" + world.AdminAddr + "/metrics"
	if status, _ := opsGet(t, brokerURL, ""); status != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", status)
	}
	if status, raw := opsGet(t, brokerURL, "alice"); status != http.StatusForbidden || !strings.Contains(string(raw), "auditor") {
		t.Errorf("/metrics as an analyst: %d %s, want 403 naming the roles that may", status, raw)
	}
	healthURL := "http://" + world.AgentOpsAddrs["health"] + "/metrics"
	civilURL := "http://" + world.AgentOpsAddrs["civil"] + "/metrics"
	before := scrape(t, brokerURL, "carol")
	agentBefore := scrape(t, healthURL, "")
	civilBefore := scrape(t, civilURL, "")

	const (
		answered = "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type"
		denied   = "SELECT id_card FROM police.household LIMIT 1"
		joined   = "SELECT COUNT(*) AS n FROM civil.residents r JOIN police.household h ON r.id_card = h.id_card"
	)
	if _, _, err := query(t, "alice", "subsidy-review", answered); err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(t, "alice", "subsidy-review", denied); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("want a denial, got %v", err)
	}
	if _, _, err := query(t, "alice", "subsidy-review", joined); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, brokerURL, "dave")

	moved := func(name string, labels map[string]string, atLeast float64) {
		t.Helper()
		b, a := sample(before, name, labels), sample(after, name, labels)
		if a-b < atLeast {
			t.Errorf("%s%v: %v → %v, want +%v at least", name, labels, b, a, atLeast)
		}
	}
	moved("sluice_broker_queries_total", map[string]string{"outcome": "ok", "department": "civil"}, 2)
	moved("sluice_broker_queries_total", map[string]string{"outcome": "denied", "department": "civil"}, 1)
	moved("sluice_broker_query_duration_seconds", map[string]string{"outcome": "ok", "department": "civil"}, 2)
	moved("sluice_broker_policy_decision_seconds", map[string]string{"outcome": "allow"}, 2)
	moved("sluice_broker_policy_decision_seconds", map[string]string{"outcome": "deny"}, 1)
	moved("sluice_broker_audit_append_seconds", map[string]string{"kind": "query"}, 3)
	moved("sluice_broker_audit_append_seconds", map[string]string{"kind": "result"}, 2)
	moved("sluice_broker_fragment_rows_total", map[string]string{"department": "health"}, 1)
	moved("sluice_broker_fragment_bytes_total", map[string]string{"department": "health"}, 1)
	moved("sluice_broker_psi_keys_total", map[string]string{"department": "civil"}, 1)
	moved("sluice_broker_psi_keys_total", map[string]string{"department": "police"}, 1)
	moved("sluice_broker_psi_duration_seconds", nil, 1)
	// Admission: one single-department and one cross-department query
	// started (the denial never reached a slot), each wait observed.
	moved("sluice_broker_admission_admitted_total", map[string]string{"class": "single"}, 1)
	moved("sluice_broker_admission_admitted_total", map[string]string{"class": "cross"}, 1)
	moved("sluice_broker_admission_wait_seconds", map[string]string{"class": "cross"}, 1)
	if sample(after, "sluice_broker_admission_limit", map[string]string{"class": "cross"}) < 1 {
		t.Error("sluice_broker_admission_limit{class=cross} is missing")
	}
	if f := after["sluice_broker_admission_waiting"]; f == nil || f.GetType() != dto.MetricType_GAUGE {
		t.Errorf("sluice_broker_admission_waiting is not a gauge: %v", f)
	}
	if after["process_resident_memory_bytes"] == nil || after["go_goroutines"] == nil {
		t.Error("the process and Go collectors are missing (resident memory covers the sandbox engine)")
	}
	if f := after["sluice_broker_queries_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("sluice_broker_queries_total is not a counter: %v", f)
	}
	if f := after["sluice_broker_query_duration_seconds"]; f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("sluice_broker_query_duration_seconds is not a histogram: %v", f)
	}
	checkLabels(t, "broker", after, answered, denied, joined)

	agentAfter := scrape(t, healthURL, "")
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"sluice_agent_fragments_total", map[string]string{"outcome": "ok", "department": "civil"}},
		{"sluice_agent_fragment_duration_seconds", map[string]string{"outcome": "ok"}},
		{"sluice_agent_fragment_rows_total", map[string]string{"department": "civil"}},
		{"sluice_agent_fragment_bytes_total", map[string]string{"department": "civil"}},
	} {
		if b, a := sample(agentBefore, c.name, c.labels), sample(agentAfter, c.name, c.labels); a <= b {
			t.Errorf("health agent %s%v: %v → %v, want it to move", c.name, c.labels, b, a)
		}
	}
	checkLabels(t, "health agent", agentAfter, answered)
	civilAfter := scrape(t, civilURL, "")
	for _, step := range []string{"blind", "reblind"} {
		l := map[string]string{"step": step}
		if b, a := sample(civilBefore, "sluice_agent_psi_keys_total", l), sample(civilAfter, "sluice_agent_psi_keys_total", l); a <= b {
			t.Errorf("civil agent sluice_agent_psi_keys_total{step=%s}: %v → %v, want it to move", step, b, a)
		}
	}
	checkLabels(t, "civil agent", civilAfter, joined)
}

// readiness is a /readyz answer.
type readiness struct {
	Status   string   `json:"status"`
	NotReady []string `json:"not_ready"`
	Checks   []struct {
		Name    string `json:"name"`
		OK      bool   `json:"ok"`
		Problem string `json:"problem"`
	} `json:"checks"`
}

func readyz(t *testing.T, url string) (int, readiness) {
	t.Helper()
	status, raw := opsGet(t, url, "")
	var r readiness
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %s", url, status, raw)
	}
	if (status == http.StatusOK) != (r.Status == "ready") || (status != http.StatusOK && status != http.StatusServiceUnavailable) {
		t.Fatalf("GET %s: status %d with body %+v", url, status, r)
	}
	return status, r
}

// waitReady polls url until its readiness is want (and, when not ready,
// names check), within 20 s.
func waitReady(t *testing.T, url string, want bool, check string) readiness {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, r := readyz(t, url)
		ok := status == http.StatusOK
		if ok == want && (want || slices.Contains(r.NotReady, check)) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %+v; want ready=%v (naming %q)", url, status, r, want, check)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHealthAndReadiness: /healthz and /readyz answer without a token;
// /readyz turns 503 naming the audit log while the audit store is locked,
// and naming the agent (and, on the agent's own listener, its source)
// while an agent is down, and 200 again once each is back.
func TestHealthAndReadiness(t *testing.T) {
	broker := "https://" + world.AdminAddr
	agentOps := "http://" + world.AgentOpsAddrs["health"]
	for _, u := range []string{broker + "/healthz", agentOps + "/healthz"} {
		if status, raw := opsGet(t, u, ""); status != http.StatusOK || !strings.Contains(string(raw), "alive") {
			t.Errorf("GET %s: %d %s", u, status, raw)
		}
	}
	r := waitReady(t, broker+"/readyz", true, "")
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
	}
	for _, want := range []string{"store", "audit", "keys", "agent:civil", "agent:health", "agent:market", "agent:police"} {
		if !slices.Contains(names, want) {
			t.Errorf("broker /readyz checks %v, missing %s", names, want)
		}
	}
	r = waitReady(t, agentOps+"/readyz", true, "")
	if len(r.Checks) < 2 {
		t.Errorf("agent /readyz checks %+v, want its sources and keys", r.Checks)
	}

	// The audit store goes down and comes back.
	unlock := lockStore(t)
	locked := true
	defer func() {
		if locked { // a failed check must not leave the store locked for the next test
			unlock()
		}
	}()
	r = waitReady(t, broker+"/readyz", false, "audit")
	for _, c := range r.Checks {
		if c.Name == "audit" && (c.OK || !strings.Contains(c.Problem, "audit log")) {
			t.Errorf("audit check %+v, want a problem naming the audit log", c)
		}
	}
	unlock()
	locked = false
	waitReady(t, broker+"/readyz", true, "")

	// An agent goes down and comes back.
	world.KillAgent("health")
	down := true
	defer func() {
		if down { // a failed check must not leave the agent down for the next test
			world.RestartAgent("health")
		}
	}()
	waitReady(t, broker+"/readyz", false, "agent:health")
	waitReady(t, agentOps+"/readyz", false, "source:main")
	down = false
	if err := world.RestartAgent("health"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, broker+"/readyz", true, "")
	waitReady(t, agentOps+"/readyz", true, "")
}
