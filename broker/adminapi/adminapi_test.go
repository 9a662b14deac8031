package adminapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/adminapi"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/broker/workflow"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/policy"
)

// recorder keeps what the API records; with fail set it refuses, as an
// unavailable audit log does.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
	fail    bool
}

func (r *recorder) Record(_ context.Context, e *audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return sluice.Errorf(sluice.EUnavailable, "the audit log is unavailable")
	}
	r.entries = append(r.entries, *e)
	return nil
}

func (r *recorder) all() []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Entry(nil), r.entries...)
}

func (r *recorder) last() audit.Entry {
	es := r.all()
	if len(es) == 0 {
		return audit.Entry{}
	}
	return es[len(es)-1]
}

// reader is an empty audit log for the review endpoints.
type reader struct{}

func (reader) Search(context.Context, audit.Filter) ([]audit.Entry, error) { return nil, nil }
func (reader) Get(context.Context, int64) (*audit.Entry, error) {
	return nil, sluice.Errorf(sluice.ENotFound, "no entry")
}
func (reader) Verify(context.Context, ...audit.VerifyOption) (*audit.VerifyReport, error) {
	return &audit.VerifyReport{}, nil
}

var (
	dave = sluice.Principal{Name: "dave", Role: sluice.RolePlatformAdmin, Department: "platform"}
	bob  = sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
)

func noDial(context.Context, string, string, string) (state.AgentClient, error) {
	return nil, sluice.Errorf(sluice.EUnavailable, "no agents in this test")
}

// newWorkflow is a workflow over a fresh SQLite store with one department
// (no agent), the users dave and bob (tokens tok-<name>) and one purpose.
func newWorkflow(t *testing.T) *workflow.Service {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := policy.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wf, err := workflow.New(st, eng, workflow.Options{Dial: noDial})
	if err != nil {
		t.Fatal(err)
	}
	dept := &sluice.Department{ID: "market", Name: "Market Regulation Administration", Datasets: []*sluice.Dataset{{
		Name: "enterprises", Table: "enterprises", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain}},
	}}}
	var users []state.UserRecord
	for _, p := range []sluice.Principal{dave, bob} {
		users = append(users, state.UserRecord{Name: p.Name, Role: p.Role, Department: p.Department, TokenSHA256: state.HashToken("tok-" + p.Name)})
	}
	purposes := []sluice.Purpose{{Code: "enterprise-credit", Name: "Enterprise credit", LegalDuty: "Social Credit Measures, art. 4"}}
	if err := wf.Seed(ctx, []*sluice.Department{dept}, users, purposes, nil); err != nil {
		t.Fatal(err)
	}
	if err := wf.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	return wf
}

type harness struct {
	t   *testing.T
	api *adminapi.API
	srv *httptest.Server
	rec *recorder
	wf  *workflow.Service
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, rec: &recorder{}, wf: newWorkflow(t)}
	h.api = adminapi.New(adminapi.Config{Workflow: h.wf, Review: reader{}, Recorder: h.rec})
	h.srv = httptest.NewServer(h.api.Handler())
	t.Cleanup(h.srv.Close)
	return h
}

// call sends a request with token (none when ""), returning the status and
// the decoded JSON body.
func (h *harness) call(method, path, token, body string) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

// TestAuthentication: a call without a valid token is refused with 401 and
// recorded as a refused authentication; a valid one runs as its user and
// is recorded too.
func TestAuthentication(t *testing.T) {
	h := newHarness(t)
	for _, token := range []string{"", "tok-nobody"} {
		code, body := h.call("GET", "/v1/whoami", token, "")
		if code != http.StatusUnauthorized || body["error"] == nil {
			t.Fatalf("token %q: %d %v", token, code, body)
		}
		e := h.rec.last()
		if e.Kind != audit.KindAuth || e.Decision != audit.DecisionDeny || e.Principal != "(unauthenticated)" || e.Error == "" {
			t.Fatalf("token %q recorded as %+v", token, e)
		}
	}
	code, body := h.call("GET", "/v1/whoami", "tok-bob", "")
	if code != http.StatusOK || body["name"] != "bob" {
		t.Fatalf("whoami: %d %v", code, body)
	}
	if e := h.rec.last(); e.Kind != audit.KindMetadata || e.Decision != audit.DecisionAllow || e.Principal != "bob" || e.Reasons[0] != "admin GET /v1/whoami" {
		t.Fatalf("a read recorded as %+v", e)
	}
	// A pinned client certificate is the alternative to a token.
	raw := []byte("bob's certificate")
	if _, err := h.wf.PutUser(context.Background(), dave, sluice.User{Name: "bob", Role: sluice.RoleAnalyst, Department: "market", CertFingerprint: tlsutil.Fingerprint(raw)}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/whoami", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: raw}}}
	w := httptest.NewRecorder()
	h.api.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"name":"bob"`) {
		t.Fatalf("certificate authentication: %d %s", w.Code, w.Body)
	}
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte("someone else's")}}}
	w = httptest.NewRecorder()
	h.api.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("an unregistered certificate: %d %s", w.Code, w.Body)
	}
}

// TestRoles: a route's roles are checked before anything runs, and the
// refusal is recorded with the kind the call would have had.
func TestRoles(t *testing.T) {
	h := newHarness(t)
	code, _ := h.call("GET", "/v1/users", "tok-bob", "")
	if code != http.StatusForbidden {
		t.Fatalf("an analyst listing users: %d", code)
	}
	if e := h.rec.last(); e.Kind != audit.KindMetadata || e.Decision != audit.DecisionDeny || !strings.Contains(e.Error, "auditor, platform_admin") {
		t.Fatalf("refused read recorded as %+v", e)
	}
	code, _ = h.call("PUT", "/v1/purposes/tax-audit", "tok-bob", `{"name": "Tax audit", "legal_duty": "Tax Law, art. 1"}`)
	if code != http.StatusForbidden {
		t.Fatalf("an analyst changing the purposes registry: %d", code)
	}
	if e := h.rec.last(); e.Kind != audit.KindAdmin || e.Decision != audit.DecisionDeny {
		t.Fatalf("refused change recorded as %+v", e)
	}
	if _, ok := h.wf.Current().Purposes["tax-audit"]; ok {
		t.Fatal("the refused change happened")
	}
}

// TestAuditedChange: a change is recorded before it runs (admin) and its
// outcome after (result, with what it touched), under one call id; it
// applies to the state in force at once. A failed change records its error.
func TestAuditedChange(t *testing.T) {
	h := newHarness(t)
	code, body := h.call("PUT", "/v1/purposes/tax-audit", "tok-dave", `{"name": "Tax audit", "legal_duty": "Tax Law, art. 1"}`)
	if code != http.StatusOK || body["code"] != "tax-audit" {
		t.Fatalf("put purpose: %d %v", code, body)
	}
	es := h.rec.all()
	if len(es) != 2 {
		t.Fatalf("want the call and its outcome recorded, got %+v", es)
	}
	call, outcome := es[0], es[1]
	if call.Kind != audit.KindAdmin || call.Decision != audit.DecisionAllow || call.Principal != "dave" || call.Reasons[0] != "admin PUT /v1/purposes/tax-audit" {
		t.Fatalf("call recorded as %+v", call)
	}
	if outcome.Kind != audit.KindResult || outcome.QueryID != call.QueryID || outcome.Decision != audit.DecisionAllow || outcome.Obligations["purpose"] != "tax-audit" {
		t.Fatalf("outcome recorded as %+v", outcome)
	}
	if _, ok := h.wf.Current().Purposes["tax-audit"]; !ok {
		t.Fatal("the new purpose is not in the state in force")
	}
	code, _ = h.call("PUT", "/v1/purposes/no-duty", "tok-dave", `{"name": "No duty"}`)
	if code != http.StatusBadRequest {
		t.Fatalf("a purpose without its legal duty: %d", code)
	}
	if e := h.rec.last(); e.Kind != audit.KindResult || e.Decision != audit.DecisionError || !strings.Contains(e.Error, "legal_duty") {
		t.Fatalf("failed change recorded as %+v", e)
	}
	code, _ = h.call("PUT", "/v1/purposes/typo", "tok-dave", `{"name": "Typo", "legal_duty": "x", "legal_dutty": "y"}`)
	if code != http.StatusBadRequest {
		t.Fatalf("a body with an unknown field: %d", code)
	}
}

// TestFailClosed: no record of the call, no call.
func TestFailClosed(t *testing.T) {
	h := newHarness(t)
	h.rec.fail = true
	code, body := h.call("PUT", "/v1/purposes/tax-audit", "tok-dave", `{"name": "Tax audit", "legal_duty": "Tax Law, art. 1"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body["error"].(string), "audit") {
		t.Fatalf("with the audit log down: %d %v", code, body)
	}
	purposes, err := h.wf.Purposes(context.Background())
	if err != nil || len(purposes) != 1 {
		t.Fatalf("the change ran without a record: %+v %v", purposes, err)
	}
}

// TestWithoutWorkflow: a broker whose state comes from files serves the
// review and catalog endpoints; the workflow endpoints answer 501.
func TestWithoutWorkflow(t *testing.T) {
	users, err := state.NewUsers([]state.UserRecord{{Name: "dave", Role: sluice.RolePlatformAdmin, Department: "platform", TokenSHA256: state.HashToken("tok-dave")}})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := sluice.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	api := adminapi.New(adminapi.Config{State: state.Static(state.New(cat, nil, nil, users, nil, nil)), Review: reader{}, Recorder: rec,
		Now: func() time.Time { return time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC) }})
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	get := func(path string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok-dave")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{"/v1/catalog/datasets": 200, "/v1/audit/entries": 200, "/v1/purposes": 501, "/v1/calendar": 501} {
		if got := get(path); got != want {
			t.Errorf("GET %s: %d, want %d", path, got, want)
		}
	}
}

// TestUnknownRoutes: an unknown path is 404; a known path with another
// method is 405 naming the methods it takes. Neither reaches a handler.
func TestUnknownRoutes(t *testing.T) {
	h := newHarness(t)
	if code, _ := h.call("GET", "/v1/nothing", "tok-dave", ""); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
	req, _ := http.NewRequest("DELETE", h.srv.URL+"/v1/whoami", nil)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("wrong method: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if n := len(h.rec.all()); n != 0 {
		t.Fatalf("%d entries recorded for routes that do not exist", n)
	}
}

// TestServeNeedsTLS: the admin API never serves tokens in clear.
func TestServeNeedsTLS(t *testing.T) {
	api := adminapi.New(adminapi.Config{Workflow: newWorkflow(t), Review: reader{}, Recorder: &recorder{}})
	err := api.Serve(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("serving without TLS: %v", err)
	}
}
