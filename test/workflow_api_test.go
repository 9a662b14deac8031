package test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminAPI calls the demo broker's admin API as user ("" sends no token)
// and returns the status and the raw body.
func adminAPI(t testing.TB, method, path, user string, body []byte) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest(method, "https://"+world.AdminAddr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+tokenFor(t, user))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// TestAdminAPIBadRequests: malformed JSON, unknown fields, wrong roles,
// unknown ids, oversized bodies, a refusal without a legal basis — each gets
// a 4xx with a clear message and changes nothing.
func TestAdminAPIBadRequests(t *testing.T) {
	// An application to refuse, from alice to the police.
	app := `{"items":[{"dataset":"police.household","columns":["household_district","migrant"]}],"purpose":"subsidy-review",
		"justification":"cross-check migrant households for the subsidy review","valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z","mode":"aggregate","k":10}`
	status, raw := adminAPI(t, "POST", "/v1/applications", "alice", []byte(app))
	if status != http.StatusCreated {
		t.Fatalf("apply: %d %s", status, raw)
	}
	var created struct {
		ID          string    `json:"id"`
		Status      string    `json:"status"`
		PlatformDue time.Time `json:"platform_due"`
	}
	if err := json.Unmarshal(raw, &created); err != nil || created.ID == "" || created.Status != "submitted" {
		t.Fatalf("apply answered %s", raw)
	}
	if created.PlatformDue.IsZero() {
		t.Fatalf("no platform deadline in %s", raw)
	}

	snapshot := func() string {
		var b strings.Builder
		for _, p := range []string{"/v1/applications", "/v1/grants", "/v1/purposes", "/v1/users", "/v1/reports"} {
			st, body := adminAPI(t, "GET", p, "dave", nil)
			if st != 200 {
				t.Fatalf("GET %s: %d %s", p, st, body)
			}
			b.Write(body)
		}
		return b.String()
	}
	before := snapshot()

	big := append([]byte(`{"justification":"`), bytes.Repeat([]byte("x"), 2<<20)...)
	big = append(big, []byte(`"}`)...)
	cases := []struct {
		name, method, path, user string
		body                     string
		status                   int
		want                     string
	}{
		{"no token", "GET", "/v1/applications", "", "", 401, "Bearer"},
		{"malformed JSON", "POST", "/v1/applications", "alice", `{"items": [`, 400, "not valid JSON"},
		{"unknown field", "POST", "/v1/applications", "alice", `{"itemz": []}`, 400, `unknown field "itemz"`},
		{"trailing data", "POST", "/v1/applications", "alice", app + `{}`, 400, "after its JSON value"},
		{"empty body", "POST", "/v1/applications", "alice", "", 400, "needs a JSON body"},
		{"platform-set fields", "POST", "/v1/applications", "alice", `{"id":"mine","status":"approved"}`, 400, "set by the platform"},
		{"wrong role applies", "POST", "/v1/applications", "carol", app, 403, "may not call POST /v1/applications"},
		{"analyst forwards", "POST", "/v1/applications/" + created.ID + "/forward", "alice", "", 403, "roles that may: platform_admin"},
		{"wrong provider refuses", "POST", "/v1/applications/" + created.ID + "/refuse", "hana", `{"basis":"art. 9"}`, 403, "only the platform admin"},
		{"wrong department approves", "POST", "/v1/applications/" + created.ID + "/approve", "hana", "", 403, "only an admin of the provider police"},
		{"refusal without basis", "POST", "/v1/applications/" + created.ID + "/refuse", "dave", `{"reason":"not needed"}`, 400, "must cite its legal or policy basis"},
		{"approve before forward", "POST", "/v1/applications/" + created.ID + "/approve", "paul", "", 409, "only a forwarded application"},
		{"unknown application", "GET", "/v1/applications/app-nope", "dave", "", 404, "app-nope"},
		{"unknown grant", "POST", "/v1/grants/nope/revoke", "dave", "", 404, "nope"},
		{"unknown token", "DELETE", "/v1/tokens/tok-nope", "dave", "", 404, "tok-nope"},
		{"unknown report", "GET", "/v1/reports/err-nope", "alice", "", 404, "err-nope"},
		{"unknown dataset", "POST", "/v1/applications", "alice", strings.Replace(app, "police.household", "police.nothing", 1), 404, "police.nothing"},
		{"unconditional needs none", "POST", "/v1/applications", "alice", strings.Replace(strings.Replace(app, "police.household", "market.enterprises", 1), `"household_district","migrant"`, `"district"`, 1), 400, "no application is needed"},
		{"share class none", "POST", "/v1/applications", "alice", strings.Replace(strings.Replace(app, "police.household", "police.criminal_records", 1), `"household_district","migrant"`, `"offense"`, 1), 400, "not shared"},
		{"unknown purpose", "POST", "/v1/applications", "alice", strings.Replace(app, "subsidy-review", "curiosity", 1), 400, "not a registered purpose"},
		{"oversized body", "POST", "/v1/applications", "alice", string(big), 400, "larger than"},
		{"bad purpose", "PUT", "/v1/purposes/x", "dave", `{"name":"X"}`, 400, "legal_duty"},
		{"purpose code mismatch", "PUT", "/v1/purposes/x", "dave", `{"code":"y","name":"Y","legal_duty":"z"}`, 400, "differs"},
		{"bad role for user", "PUT", "/v1/users/zed", "dave", `{"role":"king","department":"civil"}`, 400, "role"},
		{"analyst creates user", "PUT", "/v1/users/zed", "alice", `{"role":"analyst","department":"civil"}`, 403, "platform_admin"},
		{"token for another user", "POST", "/v1/users/bob/tokens", "alice", "", 403, "only the platform admin"},
		{"token ttl too long", "POST", "/v1/users/alice/tokens", "alice", `{"ttl":"100000h"}`, 400, "tokens always expire"},
		{"unknown query parameter", "GET", "/v1/applications?stat=submitted", "dave", "", 400, `unknown query parameter "stat"`},
		{"bad status filter", "GET", "/v1/applications?status=pending", "dave", "", 400, "status must be"},
		{"method not allowed", "PATCH", "/v1/applications", "dave", "", 405, "not allowed"},
		{"no such endpoint", "GET", "/v1/nothing", "dave", "", 404, "no such endpoint"},
		{"report too short", "POST", "/v1/reports", "alice", `{"dataset":"health.insured","description":"bad"}`, 400, "10 to 4000"},
		{"reject report without reason", "POST", "/v1/reports/err-nope/reject", "hana", "", 404, "err-nope"},
		{"register agent bad fingerprint", "PUT", "/v1/departments/transport/agent", "dave", `{"address":"127.0.0.1:1","fingerprint":"abc","name":"T"}`, 400, "fingerprint"},
		{"classify as another department", "PUT", "/v1/departments/health/datasets/x", "paul", `{"table":"x","dataset":{}}`, 403, "only an admin of department health"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			status, raw := adminAPI(t, tc.method, tc.path, tc.user, body)
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("answer is not JSON: %q", raw)
			}
			if status != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("%s %s as %s: got %d %q, want %d mentioning %q", tc.method, tc.path, tc.user, status, e.Error, tc.status, tc.want)
			}
		})
	}
	if after := snapshot(); after != before {
		t.Errorf("bad requests changed the state:\nbefore %s\nafter  %s", before, after)
	}

	// The applicant sees its application still waiting, and can withdraw it.
	status, raw = adminAPI(t, "POST", "/v1/applications/"+created.ID+"/withdraw", "alice", nil)
	if status != 200 || !strings.Contains(string(raw), `"status":"withdrawn"`) {
		t.Fatalf("withdraw: %d %s", status, raw)
	}
}
