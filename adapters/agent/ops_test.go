package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	sluice "github.com/sluice-gov/sluice"
)

// TestOpsMetricsAndReadiness serves the agent's ops listener, fetches a
// fragment over Flight and checks that the counts moved with closed-set
// labels only; then closes the agent's sources and checks /readyz turns
// 503 naming the source.
func TestOpsMetricsAndReadiness(t *testing.T) {
	fx := newFixture(t, nil, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.srv.ServeOps(ctx, lis) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeOps: %v", err)
		}
	}()
	base := "http://" + lis.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := get("/healthz"); code != http.StatusOK || !strings.Contains(body, "alive") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"source:`) || !strings.Contains(body, `"keys"`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}

	c := fx.broker(t)
	if _, err := fetchAll(context.Background(), c, frag("residents", outsider, sel("district", col("district")))); err != nil {
		t.Fatal(err)
	}
	hidden := frag("residents", sluice.Principal{Name: "erin", Department: "SELECT * FROM residents"}, sel("id", col("id_card")))
	if _, err := fetchAll(context.Background(), c, hidden); err == nil {
		t.Fatal("a hidden column left the agent")
	}
	m := fx.srv.metrics
	if got := testutil.ToFloat64(m.fragments.WithLabelValues("ok", "health")); got != 1 {
		t.Errorf("fragments{ok,health} = %v", got)
	}
	if got := testutil.ToFloat64(m.rows.WithLabelValues("health")); got != 30 {
		t.Errorf("rows{health} = %v, want 30", got)
	}
	if got := testutil.ToFloat64(m.bytes.WithLabelValues("health")); got <= 0 {
		t.Errorf("bytes{health} = %v", got)
	}
	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, `sluice_agent_fragments_total{department="health",outcome="ok"} 1`) {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "sluice_") && (strings.Contains(line, "SELECT") || strings.Contains(line, "residents") || strings.Contains(line, "erin")) {
			t.Errorf("/metrics quotes a statement, dataset or requester: %s", line)
		}
	}
	if !strings.Contains(body, `sluice_agent_fragments_total{department="other",outcome=`) {
		t.Errorf("a department that is no identifier must be labelled other:\n%s", body)
	}

	// The sources go away: not ready, naming the source, never the error.
	fx.srv.Close()
	code, body = get("/readyz")
	var rd Readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || rd.Status != "not ready" || len(rd.NotReady) != 1 || !strings.HasPrefix(rd.NotReady[0], "source:") {
		t.Fatalf("/readyz with the sources closed: %d %s", code, body)
	}
	if strings.Contains(body, "closed") {
		t.Errorf("the body must not carry the error text: %s", body)
	}
}

// TestDeptLabelsBounded: a broker cannot grow the department label past
// maxDeptLabels values.
func TestDeptLabelsBounded(t *testing.T) {
	m := newOpsMetrics()
	seen := map[string]bool{}
	for i := 0; i < maxDeptLabels+10; i++ {
		seen[m.dept(frag("residents", sluice.Principal{Department: "d" + strings.Repeat("x", i%60) + string(rune('a'+i%26))}, nil))] = true
	}
	if len(seen) > maxDeptLabels+1 || !seen["other"] {
		t.Errorf("%d distinct department labels (other: %v), want at most %d and then other", len(seen), seen["other"], maxDeptLabels+1)
	}
}
