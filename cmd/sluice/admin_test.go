package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

const adminTestToken = "slc_test-token"

// fakeAdmin is an httptest TLS server standing in for the broker's admin
// API: it checks each request against what the case expects and answers
// with the case's canned answer.
type fakeAdmin struct {
	srv    *httptest.Server
	caFile string

	mu     sync.Mutex
	expect *adminCase
	calls  int
	errs   []string
}

func newFakeAdmin(t *testing.T) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests make fail
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.caFile = filepath.Join(t.TempDir(), "broker.crt")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(f.caFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeAdmin) addr() string { return f.srv.Listener.Addr().String() }

// flags are the explicit connection flags of the tests.
func (f *fakeAdmin) flags() []string {
	return []string{"--admin", f.addr(), "--ca", f.caFile, "--token", adminTestToken, "--timeout", "10s"}
}

func (f *fakeAdmin) fail(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeAdmin) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	tc := f.expect
	if tc == nil {
		f.fail("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, `{"error":"unexpected"}`, http.StatusTeapot)
		return
	}
	if r.TLS == nil || r.TLS.Version != tls.VersionTLS13 {
		f.fail("the CLI must use TLS 1.3")
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+tc.token() {
		f.fail("Authorization = %q, want the bearer token", got)
	}
	if r.Method != tc.method || r.URL.Path != tc.path {
		f.fail("request %s %s, want %s %s", r.Method, r.URL.Path, tc.method, tc.path)
	}
	wantQ := tc.query
	if wantQ == nil {
		wantQ = url.Values{}
	}
	if got := r.URL.Query(); !reflect.DeepEqual(got, wantQ) {
		f.fail("query %v, want %v", got, wantQ)
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case tc.body == "" && len(body) > 0:
		f.fail("unexpected body %s", body)
	case tc.body != "":
		if r.Header.Get("Content-Type") != "application/json" {
			f.fail("Content-Type = %q", r.Header.Get("Content-Type"))
		}
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			f.fail("body is not JSON: %v: %s", err, body)
		}
		if err := json.Unmarshal([]byte(tc.body), &want); err != nil {
			f.fail("bad test: expected body: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			f.fail("body\n  %s\nwant\n  %s", body, tc.body)
		}
	}
	status := tc.status
	if status == 0 {
		status = http.StatusOK
	}
	ct := tc.contentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	io.WriteString(w, tc.answer)
}

// adminCase is one command line and the one call it must make.
type adminCase struct {
	name         string
	args         []string
	method, path string
	query        url.Values
	body         string // expected JSON body; "" for none
	status       int
	answer       string
	contentType  string
	bearer       string // expected token when not adminTestToken
	want         []string
	wantStderr   []string
}

func (tc *adminCase) token() string {
	if tc.bearer != "" {
		return tc.bearer
	}
	return adminTestToken
}

// exec runs the command line through run, as main does.
func (f *fakeAdmin) exec(t *testing.T, tc *adminCase, args []string) (stdout, stderr string, calls int, err error) {
	t.Helper()
	f.mu.Lock()
	f.expect, f.calls, f.errs = tc, 0, nil
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, &out, &errOut)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.errs {
		t.Errorf("%s: %s", strings.Join(args, " "), e)
	}
	return out.String(), errOut.String(), f.calls, err
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func localDay(y int, m time.Month, d int, end bool) string {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.Local)
	if end {
		t = t.AddDate(0, 0, 1).Add(-time.Second)
	}
	return t.Format(time.RFC3339)
}

const (
	fp64 = "3f1c0d8a9b7e6f5a4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5"

	appRefused = `{"id":"app-20260302-1a2b3c4d","applicant":"alice","department":"civil","provider":"health",
"items":[{"dataset":"health.insured","columns":["id_card","chronic_disease"]}],"purpose":"subsidy-review",
"justification":"verify subsidy eligibility against chronic illness","valid_from":"2026-03-01T00:00:00Z","valid_until":"2026-06-30T23:59:59Z",
"mode":"aggregate","k":10,"status":"refused","submitted_at":"2026-03-02T12:00:00Z","platform_due":"2026-03-05T12:00:00Z",
"forwarded_at":"2026-03-03T12:00:00Z","provider_due":"2026-03-17T12:00:00Z","decided_at":"2026-03-04T12:00:00Z",
"refusal_basis":"Health Data Regulation art. 12","refusal_reason":"diagnoses are not shared for subsidy review",
"history":[{"time":"2026-03-02T12:00:00Z","actor":"alice","role":"analyst","action":"submit","status":"submitted","note":"platform review due 2026-03-05"},
{"time":"2026-03-03T12:00:00Z","actor":"dave","role":"platform_admin","action":"forward","status":"forwarded"},
{"time":"2026-03-04T12:00:00Z","actor":"hana","role":"dept_admin","action":"refuse","status":"refused","note":"basis: Health Data Regulation art. 12"}]}`

	appSubmitted = `{"id":"app-20260302-aaaa0001","applicant":"alice","department":"civil","provider":"health",
"items":[{"dataset":"health.insured","columns":["id_card","chronic_disease"]},{"dataset":"health.claims","columns":["amount"]}],
"purpose":"subsidy-review","justification":"verify subsidy eligibility","valid_from":"2026-03-01T00:00:00Z","valid_until":"2026-06-30T23:59:59Z",
"mode":"aggregate","k":10,"status":"submitted","submitted_at":"2026-03-02T12:00:00Z","platform_due":"2026-03-05T12:00:00Z","history":[]}`

	appForwarded = `{"id":"app-20260302-aaaa0001","applicant":"alice","department":"civil","provider":"health",
"items":[{"dataset":"health.insured","columns":["id_card"]}],"purpose":"subsidy-review","justification":"verify subsidy eligibility",
"valid_from":"2026-03-01T00:00:00Z","valid_until":"2026-06-30T23:59:59Z","mode":"rows","status":"forwarded",
"submitted_at":"2026-03-02T12:00:00Z","platform_due":"2026-03-05T12:00:00Z","forwarded_at":"2026-03-03T12:00:00Z","provider_due":"2026-03-17T12:00:00Z","history":[]}`

	appApproved = `{"id":"app-20260302-aaaa0001","applicant":"alice","department":"civil","provider":"health",
"items":[{"dataset":"health.insured","columns":["id_card"]}],"purpose":"subsidy-review","justification":"verify subsidy eligibility",
"valid_from":"2026-03-01T00:00:00Z","valid_until":"2026-05-31T12:00:00Z","mode":"aggregate","k":20,"row_cap":500,
"row_filter":{"column":"district","values":["城东区","城西区"]},"status":"approved",
"submitted_at":"2026-03-02T12:00:00Z","platform_due":"2026-03-05T12:00:00Z","grant_ids":["app-20260302-aaaa0001-1"],"history":[]}`

	reportAnswer = `{"id":"rep-0001","reporter":"alice","department":"civil","dataset":"health.insured","provider":"health","column":"insurance_type",
"description":"insurance type is empty for many residents","row_ref":"110101********1234","status":"acknowledged","reason":"checking with the source system",
"created_at":"2026-03-02T12:00:00Z","updated_at":"2026-03-03T12:00:00Z",
"history":[{"time":"2026-03-02T12:00:00Z","actor":"alice","status":"submitted"},{"time":"2026-03-03T12:00:00Z","actor":"hana","status":"acknowledged","note":"checking with the source system"}],"seen":false}`

	changeAnswer = `{"version":7,"time":"2026-03-02T12:00:00Z","actor":"civil_admin","department":"civil","dataset":"allowance_payments",
"action":"register-dataset","summary":"5 columns, conditional","catalog_version":"9f86d081884c7d659a2feaa0c55ad015"}`

	proposal = `{"source":"main","table":"allowance_payments","dataset":{"department":"civil","name":"allowance_payments","share_class":"conditional",
"columns":[{"name":"id_card","type":"text","grade":"L4","release":"join_key","key_domain":"person"},{"name":"amount","type":"decimal","grade":"L2","release":"plain"}]}}`
)

func TestAdminCommands(t *testing.T) {
	f := newFakeAdmin(t)
	dir := t.TempDir()
	classifyFile := filepath.Join(dir, "allowance.json")
	if err := os.WriteFile(classifyFile, []byte(proposal), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []adminCase{
		{name: "whoami", args: []string{"whoami"}, method: "GET", path: "/v1/whoami",
			answer: `{"name":"alice","role":"analyst","department":"civil"}`, want: []string{"alice (analyst, department civil)"}},
		{name: "catalog search", args: []string{"catalog", "search", "--q", "resident", "--grade", "l4", "--share-class", "conditional"},
			method: "GET", path: "/v1/catalog/datasets", query: url.Values{"q": {"resident"}, "grade": {"L4"}, "share_class": {"conditional"}},
			answer: `{"catalog_version":"0123456789abcdef0123","datasets":[{"department":"civil","name":"residents","title":"Registered residents","share_class":"conditional",
"legal_basis":"Civil Affairs Regulation art. 5","columns":[{"name":"id_card","type":"text","grade":"L4","release":"join_key","key_domain":"person"},
{"name":"district","type":"text","grade":"L1","release":"plain"}],"department_name":"民政局"}]}`,
			want: []string{"civil.residents", "民政局", "conditional", "Registered residents", " 2 ", "L4", "(1 dataset; catalog version 0123456789ab)"}},
		{name: "catalog changes", args: []string{"catalog", "changes", "--department", "civil", "--limit", "5"},
			method: "GET", path: "/v1/catalog/changes", query: url.Values{"department": {"civil"}, "limit": {"5"}},
			answer: `{"changes":[` + changeAnswer + `]}`,
			want:   []string{"version", "civil_admin", "register-dataset", "5 columns, conditional", fmtTime(mustTime("2026-03-02T12:00:00Z")), "(1 change)"}},
		{name: "catalog register-agent", args: []string{"catalog", "register-agent", "transport", "--address", "10.0.0.5:47480", "--fingerprint", "SHA256:" + strings.ToUpper(fp64), "--name", "交通运输局"},
			method: "PUT", path: "/v1/departments/transport/agent",
			body:   `{"name":"交通运输局","address":"10.0.0.5:47480","fingerprint":"sha256:` + fp64 + `"}`,
			answer: `{"version":8,"time":"2026-03-02T12:00:00Z","actor":"dave","department":"transport","action":"register-agent","summary":"agent at 10.0.0.5:47480","catalog_version":"abcdef0123456789"}`,
			want:   []string{"register-agent transport: agent at 10.0.0.5:47480", "catalog change 8 by dave", "abcdef012345"}},
		{name: "catalog tables", args: []string{"catalog", "tables", "civil", "--source", "main"},
			method: "GET", path: "/v1/departments/civil/tables", query: url.Values{"source": {"main"}},
			answer: `{"tables":["residents","allowance_payments"]}`, want: []string{"residents\nallowance_payments\n", "(2 tables;"}},
		{name: "catalog propose to stdout", args: []string{"catalog", "propose", "civil", "allowance_payments"},
			method: "GET", path: "/v1/departments/civil/tables/allowance_payments/proposal",
			answer: proposal, want: []string{`"table": "allowance_payments"`, `"release": "join_key"`}},
		{name: "catalog classify", args: []string{"catalog", "classify", "civil", classifyFile},
			method: "PUT", path: "/v1/departments/civil/datasets/allowance_payments", body: proposal,
			answer: changeAnswer, want: []string{"register-dataset civil.allowance_payments: 5 columns, conditional", "catalog change 7 by civil_admin"}},
		{name: "catalog remove", args: []string{"catalog", "remove", "civil", "civil.allowance_payments"},
			method: "DELETE", path: "/v1/departments/civil/datasets/allowance_payments",
			answer: `{"version":9,"time":"2026-03-02T12:00:00Z","actor":"civil_admin","department":"civil","dataset":"allowance_payments","action":"remove-dataset","summary":"removed","catalog_version":"ffff"}`,
			want:   []string{"remove-dataset civil.allowance_payments: removed"}},

		{name: "purposes list", args: []string{"purposes", "list"}, method: "GET", path: "/v1/purposes",
			answer: `{"purposes":[{"code":"subsidy-review","name":"低保资格复核","legal_duty":"Social Assistance Measures art. 10"}]}`,
			want:   []string{"subsidy-review", "低保资格复核", "Social Assistance Measures art. 10", "(1 purpose)"}},
		{name: "purposes set", args: []string{"purposes", "set", "flood-relief", "--name", "Flood relief", "--legal-duty", "Flood Control Law art. 45", "--description", "locate residents"},
			method: "PUT", path: "/v1/purposes/flood-relief",
			body:   `{"code":"flood-relief","name":"Flood relief","legal_duty":"Flood Control Law art. 45","description":"locate residents"}`,
			answer: `{"code":"flood-relief","name":"Flood relief","legal_duty":"Flood Control Law art. 45","description":"locate residents"}`,
			want:   []string{"purpose flood-relief: Flood relief", "legal duty:", "Flood Control Law art. 45"}},
		{name: "purposes remove", args: []string{"purposes", "remove", "flood-relief"}, method: "DELETE", path: "/v1/purposes/flood-relief",
			answer: `{"purpose":"flood-relief","removed":true}`, want: []string{"removed purpose flood-relief"}},

		{name: "users list", args: []string{"users", "list"}, method: "GET", path: "/v1/users",
			answer: `{"users":[{"name":"hana","role":"dept_admin","department":"health","created_at":"2026-03-01T12:00:00Z","created_by":"dave"},{"name":"erin","role":"analyst","department":"health","disabled":true,"created_at":"2026-03-01T12:00:00Z"}]}`,
			want:   []string{"hana", "dept_admin", "health", "active", "dave", "erin", "disabled", "(2 users)"}},
		{name: "users set", args: []string{"users", "set", "hana", "--role", "dept_admin", "--department", "health", "--cert-fingerprint", fp64},
			method: "PUT", path: "/v1/users/hana", body: `{"role":"dept_admin","department":"health","cert_fingerprint":"sha256:` + fp64 + `"}`,
			answer: `{"name":"hana","role":"dept_admin","department":"health","created_at":"2026-03-01T12:00:00Z","cert_fingerprint":"sha256:` + fp64 + `"}`,
			want:   []string{"user hana: dept_admin of health", "client certificate sha256:" + fp64}},
		{name: "users set disabled", args: []string{"users", "set", "erin", "--disabled", "--role", "analyst", "--department", "health"},
			method: "PUT", path: "/v1/users/erin", body: `{"role":"analyst","department":"health","disabled":true}`,
			answer: `{"name":"erin","role":"analyst","department":"health","disabled":true,"created_at":"2026-03-01T12:00:00Z"}`,
			want:   []string{"user erin: analyst of health, disabled"}},

		{name: "tokens list", args: []string{"tokens", "list", "hana"}, method: "GET", path: "/v1/users/hana/tokens",
			answer: `{"tokens":[{"id":"tok-01","user":"hana","label":"laptop","created_at":"2026-03-01T12:00:00Z","expires_at":"2099-03-01T12:00:00Z"},
{"id":"tok-02","user":"hana","created_at":"2026-03-01T12:00:00Z","expires_at":"2099-03-01T12:00:00Z","revoked_at":"2026-03-02T12:00:00Z"}]}`,
			want: []string{"tok-01", "laptop", "valid", "tok-02", "revoked", "(2 tokens of hana)"}},
		{name: "tokens issue", args: []string{"tokens", "issue", "hana", "--ttl", "720h", "--label", "etl job"},
			method: "POST", path: "/v1/users/hana/tokens", body: `{"label":"etl job","ttl":"720h"}`, status: http.StatusCreated,
			answer: `{"id":"tok-03","user":"hana","label":"etl job","created_at":"2026-03-02T12:00:00Z","expires_at":"2026-04-01T12:00:00Z","token":"slc_secret0123"}`,
			want:   []string{"issued token tok-03 for hana (etl job)", "\nslc_secret0123\n"}, wantStderr: []string{"shown only this once"}},
		{name: "tokens revoke", args: []string{"tokens", "revoke", "tok-03"}, method: "DELETE", path: "/v1/tokens/tok-03",
			answer: `{"token_id":"tok-03","revoked":true}`, want: []string{"revoked token tok-03"}},

		{name: "applications submit", args: []string{"applications", "submit",
			"--dataset", "health.insured", "--columns", "id_card, chronic_disease", "--dataset", "health.claims", "--columns", "amount",
			"--purpose", "subsidy-review", "--justification", "verify subsidy eligibility", "--from", "2026-03-01", "--until", "2026-06-30",
			"--mode", "aggregate", "--k", "10", "--row-filter", "district=城东区, 城西区", "--for-department"},
			method: "POST", path: "/v1/applications", status: http.StatusCreated,
			body: `{"items":[{"dataset":"health.insured","columns":["id_card","chronic_disease"]},{"dataset":"health.claims","columns":["amount"]}],
"for_department":true,"purpose":"subsidy-review","justification":"verify subsidy eligibility","valid_from":"` + localDay(2026, 3, 1, false) + `",
"valid_until":"` + localDay(2026, 6, 30, true) + `","mode":"aggregate","k":10,"row_filter":{"column":"district","values":["城东区","城西区"]}}`,
			answer: appSubmitted,
			want:   []string{"submitted application app-20260302-aaaa0001 to health: health.insured (id_card, chronic_disease); health.claims (amount)", "first review is due 2026-03-05"}},
		{name: "applications submit with clamp bounds", args: []string{"applications", "submit",
			"--dataset", "health.insured", "--columns", "annual_claims,hospital_visits", "--clamp", "annual_claims=0:5000, hospital_visits=-1:30.5",
			"--purpose", "subsidy-review", "--justification", "verify subsidy eligibility", "--from", "2026-03-01", "--until", "2026-06-30",
			"--mode", "aggregate", "--epsilon", "2", "--epsilon-per-query", "0.25"},
			method: "POST", path: "/v1/applications", status: http.StatusCreated,
			body: `{"items":[{"dataset":"health.insured","columns":["annual_claims","hospital_visits"],"clamp":{"annual_claims":[0,5000],"hospital_visits":[-1,30.5]}}],
"purpose":"subsidy-review","justification":"verify subsidy eligibility","valid_from":"` + localDay(2026, 3, 1, false) + `",
"valid_until":"` + localDay(2026, 6, 30, true) + `","mode":"aggregate","epsilon":2,"epsilon_per_query":0.25}`,
			answer: appSubmitted,
			want:   []string{"submitted application app-20260302-aaaa0001"}},
		{name: "applications show with clamp bounds", args: []string{"applications", "show", "app-20260302-aaaa0001"},
			method: "GET", path: "/v1/applications/app-20260302-aaaa0001",
			answer: strings.Replace(appSubmitted, `"columns":["amount"]}`, `"columns":["amount"],"clamp":{"amount":[0,5000]}}`, 1),
			want:   []string{"SUM clamped to", "health.claims  | amount", "amount [0, 5000]"}},
		{name: "applications list", args: []string{"applications", "list", "--status", "submitted,forwarded", "--provider", "health"},
			method: "GET", path: "/v1/applications", query: url.Values{"status": {"submitted,forwarded"}, "provider": {"health"}},
			answer: `{"applications":[` + appSubmitted + `,` + appForwarded + `]}`,
			want:   []string{"app-20260302-aaaa0001", "alice (civil)", "health.insured, health.claims", "platform", "2026-03-05", "provider:health", "2026-03-17", "(2 applications)"}},
		{name: "applications show refused", args: []string{"applications", "show", "app-20260302-1a2b3c4d"},
			method: "GET", path: "/v1/applications/app-20260302-1a2b3c4d", answer: appRefused,
			want: []string{"application app-20260302-1a2b3c4d — refused", "refusal basis:", "Health Data Regulation art. 12", "diagnoses are not shared",
				"health.insured | id_card, chronic_disease", "aggregate, k = 10", "dave (platform_admin)", "forward", "hana (dept_admin)", "refuse"}},
		{name: "applications forward", args: []string{"applications", "forward", "app-20260302-aaaa0001", "--note", "complete and necessary"},
			method: "POST", path: "/v1/applications/app-20260302-aaaa0001/forward", body: `{"note":"complete and necessary"}`,
			answer: appForwarded, want: []string{"forwarded application app-20260302-aaaa0001 to health; the provider's answer is due 2026-03-17"}},
		{name: "applications approve", args: []string{"applications", "approve", "app-20260302-aaaa0001", "--note", "ok", "--k", "20", "--mode", "aggregate",
			"--until", "2026-05-31", "--row-filter", "district=城东区,城西区", "--row-cap", "500"},
			method: "POST", path: "/v1/applications/app-20260302-aaaa0001/approve",
			body:   `{"note":"ok","mode":"aggregate","k":20,"valid_until":"` + localDay(2026, 5, 31, true) + `","row_filter":{"column":"district","values":["城东区","城西区"]},"row_cap":500}`,
			answer: appApproved,
			want:   []string{"approved application app-20260302-aaaa0001: 1 grant", "app-20260302-aaaa0001-1", "aggregate, k = 20, at most 500 rows per result", "district in (城东区, 城西区)", "next query"}},
		{name: "applications approve, tighter privacy", args: []string{"applications", "approve", "app-20260302-aaaa0001", "--note", "tighter",
			"--epsilon", "1", "--epsilon-per-query", "0.1", "--clamp", "health.insured.annual_claims=0:3000,health.insured.hospital_visits=0:10"},
			method: "POST", path: "/v1/applications/app-20260302-aaaa0001/approve",
			body:   `{"note":"tighter","epsilon":1,"epsilon_per_query":0.1,"clamp":{"health.insured":{"annual_claims":[0,3000],"hospital_visits":[0,10]}}}`,
			answer: appApproved,
			want:   []string{"approved application app-20260302-aaaa0001: 1 grant"}},
		{name: "applications refuse", args: []string{"applications", "refuse", "app-20260302-1a2b3c4d", "--basis", "Health Data Regulation art. 12", "--reason", "diagnoses are not shared for subsidy review"},
			method: "POST", path: "/v1/applications/app-20260302-1a2b3c4d/refuse",
			body:   `{"basis":"Health Data Regulation art. 12","reason":"diagnoses are not shared for subsidy review"}`,
			answer: appRefused, want: []string{"refused application app-20260302-1a2b3c4d; basis: Health Data Regulation art. 12"}},
		{name: "applications withdraw", args: []string{"applications", "withdraw", "app-20260302-aaaa0001"},
			method: "POST", path: "/v1/applications/app-20260302-aaaa0001/withdraw", body: `{}`,
			answer: strings.Replace(appSubmitted, `"status":"submitted"`, `"status":"withdrawn"`, 1), want: []string{"application app-20260302-aaaa0001 is now withdrawn"}},
		{name: "applications overdue", args: []string{"applications", "overdue"}, method: "GET", path: "/v1/applications/overdue",
			answer: `{"now":"2026-03-20T12:00:00Z","overdue":[{"application":` + appForwarded + `,"waiting_on":"provider:health","due":"2026-03-17T12:00:00Z","working_days_late":3}]}`,
			want:   []string{"working days late", "app-20260302-aaaa0001 | provider:health | 2026-03-17 | 3", "(1 application overdue)"}},

		{name: "grants list", args: []string{"grants", "list"}, method: "GET", path: "/v1/grants",
			answer: `{"grants":[{"id":"g-alice-health","grantee":"alice","dataset":"health.insured","columns":["id_card","chronic_disease"],"purpose":"subsidy-review",
"valid_from":"2026-01-01T00:00:00Z","valid_until":"2099-01-01T00:00:00Z","mode":"aggregate","k":10},
{"id":"g-frank-dp","grantee":"frank","dataset":"health.insured","columns":["annual_claims"],"purpose":"public-health-planning",
"valid_from":"2026-01-01T00:00:00Z","valid_until":"2099-01-01T00:00:00Z","mode":"aggregate","k":10,"epsilon":2,"epsilon_per_query":0.25,"clamp":{"annual_claims":[0,5000]}},
{"id":"g-erin","grantee":"erin","dataset":"civil.residents","columns":["district"],"purpose":"public-health-planning","valid_from":"2020-01-01T00:00:00Z","valid_until":"2021-01-01T00:00:00Z","mode":"rows"}]}`,
			want: []string{"g-alice-health", "id_card,chronic_disease", "aggregate, k = 10", "in force", "g-erin", "expired", "(3 grants)",
				"ε 2, 0.25 per query; SUM clamped: annual_claims [0, 5000]"}},
		{name: "grants revoke", args: []string{"grants", "revoke", "g-alice-health", "--reason", "purpose fulfilled"},
			method: "POST", path: "/v1/grants/g-alice-health/revoke", body: `{"reason":"purpose fulfilled"}`,
			answer: `{"id":"g-alice-health","grantee":"alice","dataset":"health.insured","columns":["id_card"],"purpose":"subsidy-review","valid_from":"2026-01-01T00:00:00Z","valid_until":"2099-01-01T00:00:00Z","mode":"aggregate","revoked":true,"revoked_at":"2026-03-02T12:00:00Z","revoked_by":"hana"}`,
			want:   []string{"revoked grant g-alice-health (alice on health.insured for subsidy-review)"}},

		{name: "usage", args: []string{"usage", "--dataset", "health.insured", "--department", "civil", "--purpose", "subsidy-review", "--since", "2026-03-01", "--until", "2026-03-31"},
			method: "GET", path: "/v1/usage",
			query: url.Values{"dataset": {"health.insured"}, "department": {"civil"}, "purpose": {"subsidy-review"}, "since": {"2026-03-01T00:00:00Z"}, "until": {"2026-04-01T00:00:00Z"}},
			answer: `{"usage":[{"day":"2026-03-02","dataset":"health.insured","department":"civil","calls":12,"denied":2,"rows":40,"purposes":["subsidy-review"]},
{"day":"2026-03-03","dataset":"health.insured","department":"civil","calls":3,"denied":0,"rows":5,"purposes":["subsidy-review"]}]}`,
			want: []string{"2026-03-02 | health.insured | civil", "12", "subsidy-review", "(2 rows; 15 calls, 2 denied, 45 rows released)"}},

		{name: "reports submit", args: []string{"reports", "submit", "--dataset", "health.insured", "--column", "insurance_type", "--description", "insurance type is empty for many residents", "--row-ref", "110101********1234"},
			method: "POST", path: "/v1/reports", status: http.StatusCreated,
			body:   `{"dataset":"health.insured","column":"insurance_type","description":"insurance type is empty for many residents","row_ref":"110101********1234"}`,
			answer: strings.Replace(reportAnswer, `"status":"acknowledged"`, `"status":"submitted"`, 1),
			want:   []string{"submitted report rep-0001 on health.insured to health; status submitted"}},
		{name: "reports list", args: []string{"reports", "list", "--status", "submitted,acknowledged"}, method: "GET", path: "/v1/reports",
			query: url.Values{"status": {"submitted,acknowledged"}}, answer: `{"reports":[` + reportAnswer + `]}`,
			want: []string{"rep-0001", "acknowledged *", "the reporter has not yet read", "insurance_type", "alice (civil)", "(1 report)"}},
		{name: "reports show", args: []string{"reports", "show", "rep-0001"}, method: "GET", path: "/v1/reports/rep-0001", answer: reportAnswer,
			want: []string{"report rep-0001 — acknowledged", "110101********1234", "checking with the source system", "hana"}},
		{name: "reports ack", args: []string{"reports", "ack", "rep-0001", "--reason", "checking with the source system"},
			method: "POST", path: "/v1/reports/rep-0001/acknowledge", body: `{"reason":"checking with the source system"}`,
			answer: reportAnswer, want: []string{"report rep-0001 is now acknowledged"}},
		{name: "reports correct", args: []string{"reports", "correct", "rep-0001"}, method: "POST", path: "/v1/reports/rep-0001/correct", body: `{}`,
			answer: strings.Replace(reportAnswer, `"status":"acknowledged"`, `"status":"corrected"`, 1), want: []string{"report rep-0001 is now corrected"}},
		{name: "reports reject", args: []string{"reports", "reject", "rep-0001", "--reason", "the value is right: resident insurance"},
			method: "POST", path: "/v1/reports/rep-0001/reject", body: `{"reason":"the value is right: resident insurance"}`,
			answer: strings.Replace(reportAnswer, `"status":"acknowledged"`, `"status":"rejected"`, 1), want: []string{"report rep-0001 is now rejected"}},
	}
	for i := range cases {
		tc := &cases[i]
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), f.flags()...)
			out, errOut, calls, err := f.exec(t, tc, args)
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, errOut)
			}
			if calls != 1 {
				t.Errorf("%d calls, want 1", calls)
			}
			t.Logf("sluice %s\n%s%s", strings.Join(tc.args, " "), out, errOut)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
			// --json prints the answer as it came (indented).
			out, _, _, err = f.exec(t, tc, append(args, "--json"))
			if err != nil {
				t.Fatalf("--json: %v", err)
			}
			var got, want any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("--json output is not JSON: %v\n%s", err, out)
			}
			json.Unmarshal([]byte(tc.answer), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("--json output differs from the answer:\n%s", out)
			}
		})
	}
}

// TestAdminFlagsAfterArguments: flags may come before or after the
// positional arguments.
func TestAdminFlagsAfterArguments(t *testing.T) {
	f := newFakeAdmin(t)
	tc := &adminCase{method: "POST", path: "/v1/applications/app-1/forward", body: `{"note":"n"}`, answer: appForwarded}
	args := append(append([]string{"applications", "forward"}, f.flags()...), "app-1", "--note", "n")
	if _, errOut, _, err := f.exec(t, tc, args); err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
}

func TestAdminCatalogFiles(t *testing.T) {
	f := newFakeAdmin(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "proposal.json")
	tc := &adminCase{method: "GET", path: "/v1/departments/civil/tables/allowance_payments/proposal", query: url.Values{"source": {"main"}}, answer: proposal}
	stdout, _, _, err := f.exec(t, tc, append([]string{"catalog", "propose", "civil", "allowance_payments", "--source", "main", "-o", out}, f.flags()...))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "sluice catalog classify civil "+out) || !strings.Contains(stdout, "2 columns") {
		t.Errorf("propose output: %s", stdout)
	}
	raw, err := os.ReadFile(out)
	if err != nil || !json.Valid(raw) || !bytes.Contains(raw, []byte(`"name": "allowance_payments"`)) {
		t.Fatalf("proposal file: %v %s", err, raw)
	}
	// An existing (possibly edited) file is not overwritten without --force.
	_, _, calls, err := f.exec(t, tc, append([]string{"catalog", "propose", "civil", "allowance_payments", "-o", out}, f.flags()...))
	assertUsageErr(t, err, "--force")
	if calls != 0 {
		t.Errorf("a usage error sent %d requests", calls)
	}
	// The edited file goes back as written.
	tc = &adminCase{method: "PUT", path: "/v1/departments/civil/datasets/allowance_payments", body: string(raw), answer: changeAnswer}
	if _, _, _, err := f.exec(t, tc, append([]string{"catalog", "classify", "civil", out}, f.flags()...)); err != nil {
		t.Fatal(err)
	}
	// CSV export to a file.
	csvFile := filepath.Join(dir, "catalog.csv")
	csvBody := "department,dataset,column\ncivil,civil.residents,id_card\n"
	tc = &adminCase{method: "GET", path: "/v1/catalog/export", query: url.Values{"format": {"csv"}, "department": {"civil"}}, answer: csvBody, contentType: "text/csv; charset=utf-8"}
	stdout, _, _, err = f.exec(t, tc, append([]string{"catalog", "export", "--format", "csv", "--department", "civil", "-o", csvFile}, f.flags()...))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(csvFile); string(got) != csvBody {
		t.Errorf("csv file = %q", got)
	}
	if !strings.Contains(stdout, "wrote the catalog (csv") {
		t.Errorf("export output: %s", stdout)
	}
	// JSON export to standard output.
	tc = &adminCase{method: "GET", path: "/v1/catalog/export", query: url.Values{"format": {"json"}}, answer: `{"catalog_version":"x","datasets":[]}`}
	stdout, _, _, err = f.exec(t, tc, append([]string{"catalog", "export"}, f.flags()...))
	if err != nil || !strings.Contains(stdout, `"catalog_version": "x"`) {
		t.Fatalf("json export: %v %s", err, stdout)
	}
}

// TestAdminAPIErrors: the API's {"error"} answers become the message, with
// the core's error code for the HTTP status, and exit code 1.
func TestAdminAPIErrors(t *testing.T) {
	f := newFakeAdmin(t)
	for _, c := range []struct {
		status int
		answer string
		code   string
		msg    string
	}{
		{400, `{"error":"purpose: \"x\" is not a registered purpose"}`, sluice.EInvalid, `purpose: "x" is not a registered purpose`},
		{401, `{"error":"the token is not valid: unknown, expired or revoked"}`, sluice.EUnauthenticated, "the token is not valid"},
		{403, `{"error":"role analyst may not call GET /v1/users"}`, sluice.EDenied, "role analyst may not call"},
		{404, `{"error":"no application app-x that you may see"}`, sluice.ENotFound, "no application app-x"},
		{409, `{"error":"application app-x is already approved"}`, sluice.EConflict, "already approved"},
		{501, `{"error":"this broker runs without a workflow store"}`, sluice.ENotSupported, "without a workflow store"},
		{503, `{"error":"the agent at 10.0.0.5:1 did not answer"}`, sluice.EUnavailable, "did not answer"},
		{502, "<html>Bad Gateway</html>", sluice.EUnavailable, "GET /v1/whoami: HTTP 502 Bad Gateway: <html>Bad Gateway</html>"},
		{500, `{"error":"internal error"}`, sluice.EInternal, "internal error"},
	} {
		tc := &adminCase{method: "GET", path: "/v1/whoami", status: c.status, answer: c.answer}
		_, _, _, err := f.exec(t, tc, append([]string{"whoami"}, f.flags()...))
		if err == nil {
			t.Errorf("%d: no error", c.status)
			continue
		}
		if got := sluice.ErrorCode(err); got != c.code {
			t.Errorf("%d: code %s, want %s", c.status, got, c.code)
		}
		if msg := describe(err); !strings.Contains(msg, c.msg) {
			t.Errorf("%d: message %q does not contain %q", c.status, msg, c.msg)
		}
		var ee *exitError
		if errors.As(err, &ee) {
			t.Errorf("%d: an API error is not a usage error (exit 2)", c.status)
		}
	}
}

func assertUsageErr(t *testing.T, err error, want string) {
	t.Helper()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("want a usage error (exit 2) containing %q, got %T %v", want, err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("usage error %q does not contain %q", err, want)
	}
}

// TestAdminCLIUsageErrors: bad command lines fail with exit 2 and a clear
// message before any request is sent.
func TestAdminCLIUsageErrors(t *testing.T) {
	f := newFakeAdmin(t)
	dir := t.TempDir()
	noName := filepath.Join(dir, "noname.json")
	os.WriteFile(noName, []byte(`{"table":"t","dataset":{"share_class":"conditional","columns":[]}}`), 0o644)
	otherDept := filepath.Join(dir, "other.json")
	os.WriteFile(otherDept, []byte(`{"table":"t","dataset":{"department":"health","name":"t","columns":[]}}`), 0o644)
	notJSON := filepath.Join(dir, "bad.json")
	os.WriteFile(notJSON, []byte(`{"table": `), 0o644)
	submit := func(extra ...string) []string {
		base := []string{"applications", "submit", "--dataset", "health.insured", "--columns", "id_card", "--purpose", "subsidy-review",
			"--justification", "verify subsidy eligibility", "--from", "2026-03-01", "--until", "2026-06-30", "--mode", "rows"}
		return append(base, extra...)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"applications"}, "usage: sluice applications"},
		{[]string{"applications", "frobnicate"}, `unknown applications command "frobnicate"`},
		{[]string{"applications", "show"}, "applications show takes ID; got none"},
		{[]string{"applications", "approve", "app-1", "--clamp", "annual_claims=0:3000"}, "name a column as DEPT.DATASET.COLUMN"},
		{[]string{"applications", "approve", "app-1", "--clamp", "health.insured.annual_claims=0"}, "write DEPT.DATASET.COLUMN=LO:HI"},
		{[]string{"applications", "approve", "app-1", "--epsilon", "-1"}, "must not be negative"},
		{[]string{"applications", "show", "a", "b"}, "got 2 (a b)"},
		{[]string{"applications", "submit", "--purpose", "p"}, "--dataset and --columns are required"},
		{[]string{"applications", "submit", "--columns", "a", "--dataset", "health.insured"}, "give its --dataset first"},
		{[]string{"applications", "submit", "--dataset", "insured", "--columns", "a"}, "department.dataset"},
		{[]string{"applications", "submit", "--dataset", "health.insured", "--columns", "a", "--columns", "b"}, "already has --columns"},
		{[]string{"applications", "submit", "--clamp", "a=0:1", "--dataset", "health.insured"}, "give its --dataset first"},
		{append(submit(), "--clamp", "annual_claims=0-5000"), "write COLUMN=LO:HI"},
		{append(submit(), "--clamp", "annual_claims=0:high"), "write COLUMN=LO:HI"},
		{append(submit(), "--clamp", "a=0:1", "--clamp", "b=0:1"), "already has --clamp"},
		{[]string{"applications", "submit", "--dataset", "health.insured", "--columns", "a", "--dataset", "health.claims", "--purpose", "p"}, "--dataset health.claims has no --columns"},
		{append(submit(), "--purpose", ""), "--purpose is required"},
		{append(submit(), "--justification", "short"), "at least 10 characters"},
		{append(submit(), "--from", "2026-13-01"), `--from "2026-13-01" is not a date`},
		{append(submit(), "--until", "30/06/2026"), `--until "30/06/2026" is not a date`},
		{append(submit(), "--from", "2026-07-01"), "must not be before --from"},
		{append(submit(), "--mode", "everything"), "--mode must be rows or aggregate"},
		{append(submit(), "--mode", ""), "--mode is required"},
		{append(submit(), "--row-filter", "district"), "write column=value1,value2"},
		{append(submit(), "--row-filter", "=城东区"), "write column=value1,value2"},
		{append(submit(), "--row-filter", "district=a,,b"), "a value is empty"},
		{append(submit(), "--k", "-1"), "must not be negative"},
		{[]string{"applications", "approve", "app-1", "--until", "tomorrow"}, `--until "tomorrow" is not a date`},
		{[]string{"applications", "approve", "app-1", "--row-filter", "district="}, "a value is empty"},
		{[]string{"applications", "approve", "app-1", "--k", "0"}, "--k must be at least 1"},
		{[]string{"applications", "approve", "app-1", "--mode", "all"}, "--mode must be rows or aggregate"},
		{[]string{"applications", "refuse", "app-1"}, "--basis is required"},
		{[]string{"applications", "refuse", "app-1", "--note", "x"}, "flag provided but not defined: -note"},
		{[]string{"applications", "list", "--status", "open"}, "--status must be submitted, forwarded, approved, refused or withdrawn"},
		{[]string{"reports", "reject", "rep-1"}, "--reason is required"},
		{[]string{"reports", "submit", "--dataset", "health.insured", "--description", "wrong"}, "10 to 4000 characters"},
		{[]string{"reports", "submit", "--description", "this value is wrong"}, "--dataset is required"},
		{[]string{"reports", "list", "--status", "open"}, "--status must be"},
		{[]string{"purposes", "set", "flood", "--name", "Flood relief"}, "--legal-duty is required"},
		{[]string{"purposes", "set", "--name", "n", "--legal-duty", "l"}, "purposes set takes CODE"},
		{[]string{"users", "set", "hana", "--role", "boss", "--department", "health"}, "--role must be analyst, dept_admin, platform_admin or auditor"},
		{[]string{"users", "set", "hana", "--role", "analyst"}, "--department is required"},
		{[]string{"users", "set", "hana", "--role", "analyst", "--department", "health", "--cert-fingerprint", "abc"}, "--cert-fingerprint"},
		{[]string{"tokens", "issue", "hana", "--ttl", "30days"}, `--ttl "30days" is not a positive duration`},
		{[]string{"tokens", "list"}, "tokens list takes USER"},
		{[]string{"catalog", "register-agent", "transport", "--fingerprint", fp64}, "--address is required"},
		{[]string{"catalog", "register-agent", "transport", "--address", "10.0.0.5:1"}, "--fingerprint is required"},
		{[]string{"catalog", "register-agent", "transport", "--address", "10.0.0.5:1", "--fingerprint", "sha256:xyz"}, "--fingerprint"},
		{[]string{"catalog", "register-agent", "trans-port", "--address", "10.0.0.5:1", "--fingerprint", fp64}, "department id"},
		{[]string{"catalog", "search", "--grade", "L9"}, "--grade must be L1, L2, L3 or L4"},
		{[]string{"catalog", "search", "--share-class", "open"}, "--share-class must be"},
		{[]string{"catalog", "export", "--format", "xml"}, "--format must be json or csv"},
		{[]string{"catalog", "export", "--format", "csv", "--json"}, "contradict"},
		{[]string{"catalog", "changes", "--limit", "0"}, "--limit must be between"},
		{[]string{"catalog", "classify", "civil", filepath.Join(dir, "missing.json")}, "cannot read"},
		{[]string{"catalog", "classify", "civil", noName}, "no dataset.name"},
		{[]string{"catalog", "classify", "civil", otherDept}, "of department health, not civil"},
		{[]string{"catalog", "classify", "civil", notJSON}, "not valid JSON"},
		{[]string{"catalog", "tables"}, "catalog tables takes DEPT"},
		{[]string{"usage", "--since", "March"}, `--since "March" is not a date`},
		{[]string{"usage", "--since", "2026-03-05", "--until", "2026-03-01"}, "must not be before --since"},
		{[]string{"usage", "--dataset", "insured"}, "department.dataset"},
		{[]string{"whoami", "extra"}, "whoami takes no arguments"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, _, calls, err := f.exec(t, nil, append(append([]string{}, c.args...), f.flags()...))
			assertUsageErr(t, err, c.want)
			if calls != 0 {
				t.Errorf("a usage error sent %d requests", calls)
			}
		})
	}
}

// TestAdminConnection: the address and certificate from a broker
// configuration, demo users' tokens, missing credentials and a broker
// certificate that is not trusted.
func TestAdminConnection(t *testing.T) {
	f := newFakeAdmin(t)
	t.Setenv("SLUICE_TOKEN", "")
	t.Setenv("SLUICE_ADMIN", "")
	t.Setenv("SLUICE_CA", "")
	dir := t.TempDir()
	crt, _ := os.ReadFile(f.caFile)
	os.MkdirAll(filepath.Join(dir, "tls"), 0o755)
	os.WriteFile(filepath.Join(dir, "tls", "broker.crt"), crt, 0o644)
	// The broker listens on all interfaces; the CLI dials loopback.
	port := f.addr()[strings.LastIndex(f.addr(), ":")+1:]
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:47470\nadmin_listen: 0.0.0.0:"+port+"\ntls_cert: tls/broker.crt\ntls_key: tls/broker.key\nstore: broker.db\n"), 0o644)
	users := filepath.Join(dir, "users.json")
	os.WriteFile(users, []byte(`[{"name":"dave","role":"platform_admin","token":"dave-token"}]`), 0o600)

	tc := &adminCase{method: "GET", path: "/v1/whoami", bearer: "dave-token", answer: `{"name":"dave","role":"platform_admin","department":"platform"}`}
	out, _, _, err := f.exec(t, tc, []string{"whoami", "--config", cfg, "--user", "dave", "--users", users})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "dave (platform_admin, department platform)") {
		t.Errorf("output: %s", out)
	}

	_, _, calls, err := f.exec(t, nil, []string{"whoami", "--config", cfg})
	assertUsageErr(t, err, "no credentials")
	_, _, _, err = f.exec(t, nil, []string{"whoami", "--config", cfg, "--user", "zoe", "--users", users})
	assertUsageErr(t, err, "--user zoe is not in")
	_, _, _, err = f.exec(t, nil, []string{"whoami", "--config", filepath.Join(dir, "none.yaml"), "--token", "t"})
	assertUsageErr(t, err, "no admin API address")
	noAdmin := filepath.Join(dir, "noadmin.yaml")
	os.WriteFile(noAdmin, []byte("listen: 127.0.0.1:47470\n"), 0o644)
	_, _, _, err = f.exec(t, nil, []string{"whoami", "--config", noAdmin, "--token", "t"})
	assertUsageErr(t, err, "has no admin_listen")
	if calls != 0 {
		t.Errorf("%d requests without credentials", calls)
	}

	// A certificate that is not the broker's: the handshake fails and the
	// message points at --ca.
	otherCA := filepath.Join(dir, "other.crt")
	otherPEM, _, err := tlsutil.GenerateSelfSigned("not-the-broker", nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(otherCA, otherPEM, 0o644)
	f.mu.Lock()
	f.expect = nil
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out2, errOut bytes.Buffer
	err = run(ctx, []string{"whoami", "--admin", f.addr(), "--ca", otherCA, "--token", "t"}, &out2, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--ca") || sluice.ErrorCode(err) != sluice.EUnauthenticated {
		t.Fatalf("untrusted certificate: %v", err)
	}
	f.mu.Lock()
	if f.calls != 0 {
		t.Errorf("a request reached a server the CLI does not trust")
	}
	f.errs = nil
	f.mu.Unlock()
}

// TestAdminHelp: every command answers -h with its usage (exit 2 as for
// the other commands) and the groups list their commands.
func TestAdminHelp(t *testing.T) {
	groups := map[string][]adminSub{"catalog": catalogSubs, "purposes": purposeSubs, "users": userSubs, "tokens": tokenSubs,
		"applications": applicationSubs, "grants": grantSubs, "reports": reportSubs}
	for g, subs := range groups {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{g, "help"}, &out, &errOut); err != nil {
			t.Fatalf("%s help: %v", g, err)
		}
		help := out.String()
		for _, s := range subs {
			if !strings.Contains(help, "sluice "+s.synopsis) {
				t.Errorf("%s help lacks %q", g, s.synopsis)
			}
			out.Reset()
			errOut.Reset()
			err := run(context.Background(), []string{g, s.name, "-h"}, &out, &errOut)
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("%s %s -h: %v", g, s.name, err)
			}
			if !strings.Contains(errOut.String(), "Usage: sluice "+s.synopsis) || !strings.Contains(errOut.String(), "Connection flags:") {
				t.Errorf("%s %s -h: %s", g, s.name, errOut.String())
			}
		}
	}
	for _, cmd := range []string{"usage", "whoami"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{cmd, "--help"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "-json") {
			t.Errorf("%s --help: %v %s", cmd, err, errOut.String())
		}
	}
}
