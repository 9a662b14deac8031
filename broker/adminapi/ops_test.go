package adminapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-gov/sluice/broker/adminapi"
	"github.com/sluice-gov/sluice/broker/audit"
)

// TestOpsEndpoints: /healthz and /readyz answer without a token; /metrics
// needs a platform admin's or an auditor's authentication, a refusal is
// audited and a successful scrape is not; other methods fall through to
// the API's 405.
func TestOpsEndpoints(t *testing.T) {
	h := &harness{t: t, rec: &recorder{}, wf: newWorkflow(t)}
	text := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(s)) })
	}
	h.api = adminapi.New(adminapi.Config{Workflow: h.wf, Review: reader{}, Recorder: h.rec,
		Ops: &adminapi.Ops{Healthz: text("alive"), Readyz: text("ready"), Metrics: text("sluice_broker_queries_total 1\n")}})
	h.srv = httptest.NewServer(h.api.Handler())
	t.Cleanup(h.srv.Close)

	for path, want := range map[string]string{"/healthz": "alive", "/readyz": "ready"} {
		code, body := h.call("GET", path, "", "")
		if code != http.StatusOK || body["raw"] != want {
			t.Errorf("GET %s without a token: %d %v", path, code, body)
		}
	}
	n := len(h.rec.all())
	if code, _ := h.call("GET", "/metrics", "", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d", code)
	}
	if e := h.rec.last(); len(h.rec.all()) != n+1 || e.Kind != audit.KindAuth || e.Decision != audit.DecisionDeny {
		t.Errorf("a refused scrape must be audited as a failed authentication, got %+v", e)
	}
	code, body := h.call("GET", "/metrics", "tok-bob", "")
	if code != http.StatusForbidden || !strings.Contains(body["error"].(string), "auditor") {
		t.Errorf("/metrics as an analyst: %d %v", code, body)
	}
	if e := h.rec.last(); len(h.rec.all()) != n+2 || e.Decision != audit.DecisionDeny || e.Principal != "bob" {
		t.Errorf("a scrape refused by role must be audited, got %+v", e)
	}
	code, body = h.call("GET", "/metrics", "tok-dave", "")
	if code != http.StatusOK || !strings.Contains(body["raw"].(string), "sluice_broker_queries_total") {
		t.Errorf("/metrics as a platform admin: %d %v", code, body)
	}
	if len(h.rec.all()) != n+2 {
		t.Errorf("a successful scrape wrote %d audit entries, want none", len(h.rec.all())-n-2)
	}
	if code, _ := h.call("POST", "/metrics", "tok-dave", ""); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", code)
	}
	// Without Ops the paths are unknown, as before.
	plain := newHarness(t)
	if code, _ := plain.call("GET", "/healthz", "", ""); code != http.StatusNotFound {
		t.Errorf("/healthz without Ops: %d", code)
	}
}
