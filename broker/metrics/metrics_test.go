package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// TestLabelsStayInTheirSets: whatever a caller passes, a label value is
// one of a small closed set, never free text.
func TestLabelsStayInTheirSets(t *testing.T) {
	for in, want := range map[string]string{
		"health": "health", "": "none", "SELECT id_card FROM police.household": "other", "a b": "other",
		strings.Repeat("x", 100): "other",
	} {
		if got := Department(in); got != want {
			t.Errorf("Department(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"ok": "ok", "denied": "denied", "drop table": "other"} {
		if got := Outcome(in); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", in, got, want)
		}
	}
	if Kind("query") != "query" || Kind("select 1") != "other" {
		t.Error("Kind lets free text through")
	}
	if granteeDept("dept:civil") != "civil" || granteeDept("alice") != "user" {
		t.Error("a user grantee must not become a label")
	}
	cases := map[error]string{
		nil:                                    OutcomeOK,
		context.Canceled:                       OutcomeCancelled,
		sluice.Errorf(sluice.EDenied, "no"):    OutcomeDenied,
		sluice.Errorf(sluice.EUnavailable, ""): OutcomeError,
	}
	for err, want := range cases {
		if got := OutcomeOf(err); got != want {
			t.Errorf("OutcomeOf(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestNilRecordsNothing: a broker without metrics can call every method.
func TestNilRecordsNothing(t *testing.T) {
	var m *Broker
	m.QueryDone(OutcomeOK, "civil", time.Second)
	m.PolicyDecided(true, nil, time.Millisecond)
	m.Fragment("civil", 1, 2)
	m.PSI(time.Second, "civil", 1, "police", 2)
	m.DPReserved("dept:civil", 0.1)
	m.DPRefunded("dept:civil", 0.1)
	if m.AuditLog(nil) != nil {
		t.Error("AuditLog(nil) on nil metrics")
	}
	if FromContext(context.Background()) != nil {
		t.Error("FromContext without metrics")
	}
}

type failingLog struct{ err error }

func (f failingLog) Append(context.Context, *audit.Entry) error { return f.err }

// TestCounts: each method moves its series and only its series; two
// brokers in one process keep their own counts.
func TestCounts(t *testing.T) {
	m, other := New(), New()
	m.QueryDone(OutcomeOK, "civil", 2*time.Second)
	m.QueryDone(OutcomeDenied, "civil", time.Millisecond)
	m.Fragment("health", 10, 400)
	m.PSI(time.Second, "civil", 5, "civil", 7)
	m.DPReserved("dept:market", 0.5)
	m.DPRefunded("dept:market", 0.25)
	if got := testutil.ToFloat64(m.queries.WithLabelValues("ok", "civil")); got != 1 {
		t.Errorf("ok/civil = %v", got)
	}
	if got := testutil.ToFloat64(other.queries.WithLabelValues("ok", "civil")); got != 0 {
		t.Errorf("another broker's registry counted %v", got)
	}
	if got := testutil.ToFloat64(m.fragBytes.WithLabelValues("health")); got != 400 {
		t.Errorf("fragment bytes = %v", got)
	}
	if got := testutil.ToFloat64(m.psiKeys.WithLabelValues("civil")); got != 12 {
		t.Errorf("psi keys of a self-join = %v, want both sides", got)
	}
	if got := testutil.ToFloat64(m.dpReserved.WithLabelValues("market")) - testutil.ToFloat64(m.dpRefunded.WithLabelValues("market")); got != 0.25 {
		t.Errorf("epsilon spent = %v", got)
	}
	ctx := NewContext(context.Background(), m)
	FromContext(ctx).PolicyDecided(false, nil, time.Millisecond)
	if n := testutil.CollectAndCount(m.policyTime); n != 1 {
		t.Errorf("policy decisions: %d series", n)
	}
	l := m.AuditLog(failingLog{err: errors.New("locked")})
	if err := l.Append(context.Background(), &audit.Entry{Kind: "result"}); err == nil {
		t.Fatal("the wrapper swallowed the error")
	}
	if got := testutil.ToFloat64(m.auditFails.WithLabelValues("result")); got != 1 {
		t.Errorf("audit failures = %v", got)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "sluice_broker_audit_append_seconds"); err != nil || n != 1 {
		t.Errorf("audit append series: %d %v", n, err)
	}
}

// TestReadyz: 200 when every check passes; 503 naming the failed and the
// timed-out check with its fixed problem text (never the error), and the
// readiness gauge follows.
func TestReadyz(t *testing.T) {
	fail := false
	m := New()
	h := &Health{Metrics: m, Timeout: 200 * time.Millisecond, Checks: func() []Check {
		return []Check{
			{Name: "store", Problem: "the store does not answer", Run: func(context.Context) error { return nil }},
			{Name: "audit", Problem: "the audit log cannot be written", Run: func(context.Context) error {
				if fail {
					return errors.New("secret path /var/lib/x is locked")
				}
				return nil
			}},
		}
	}}
	get := func() (int, Readiness, string) {
		w := httptest.NewRecorder()
		h.ServeReadyz(w, httptest.NewRequest("GET", "/readyz", nil))
		var r Readiness
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return w.Code, r, w.Body.String()
	}
	if code, r, _ := get(); code != http.StatusOK || r.Status != "ready" || len(r.Checks) != 2 {
		t.Fatalf("ready: %d %+v", code, r)
	}
	fail = true
	code, r, body := get()
	if code != http.StatusServiceUnavailable || r.Status != "not ready" || len(r.NotReady) != 1 || r.NotReady[0] != "audit" {
		t.Fatalf("not ready: %d %+v", code, r)
	}
	if strings.Contains(body, "secret") || !strings.Contains(body, "the audit log cannot be written") {
		t.Errorf("the body must carry the fixed problem, not the error: %s", body)
	}
	if got := testutil.ToFloat64(m.readyChecks.WithLabelValues("audit")); got != 0 {
		t.Errorf("sluice_broker_ready{check=audit} = %v", got)
	}
	h.Checks = func() []Check {
		return []Check{{Name: "agent:police", Problem: "slow", Run: func(ctx context.Context) error { time.Sleep(5 * time.Second); return nil }}}
	}
	start := time.Now()
	if code, r, _ := get(); code != http.StatusServiceUnavailable || r.NotReady[0] != "agent:police" || time.Since(start) > 2*time.Second {
		t.Errorf("a hanging check: %d %+v after %s", code, r, time.Since(start))
	}
	w := httptest.NewRecorder()
	ServeHealthz(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "alive") {
		t.Errorf("healthz: %d %s", w.Code, w.Body)
	}
}
