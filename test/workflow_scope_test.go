package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// decodeJSON fails the test unless raw decodes into v.
func decodeJSON(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("not the expected JSON: %v\n%s", err, raw)
	}
}

func mustAPI(t *testing.T, want int, method, path, user, body string) []byte {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	status, raw := adminAPI(t, method, path, user, b)
	if status != want {
		t.Fatalf("%s %s as %s: %d %s (want %d)", method, path, user, status, raw, want)
	}
	return raw
}

// TestGrantRowFilter: the provider approves with a row filter (one
// district); the analyst's query sees only that district's rows, counted
// exactly as the provider's database counts them.
func TestGrantRowFilter(t *testing.T) {
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	until := time.Now().AddDate(0, 6, 0).UTC().Format(time.RFC3339)
	app := fmt.Sprintf(`{"items":[{"dataset":"civil.residents","columns":["district","low_income"]}],"purpose":"public-health-planning",
		"justification":"low-income residents per district for clinic planning","valid_from":%q,"valid_until":%q,"mode":"aggregate","k":10}`, from, until)
	var a struct {
		ID       string   `json:"id"`
		Status   string   `json:"status"`
		GrantIDs []string `json:"grant_ids"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/applications", "erin", app), &a)
	mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/forward", "dave", `{"note":"ok"}`)
	// Only a plain column can filter rows.
	mustAPI(t, 400, "POST", "/v1/applications/"+a.ID+"/approve", "cheng", `{"row_filter":{"column":"phone","values":["x"]}}`)
	decodeJSON(t, mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/approve", "cheng", `{"row_filter":{"column":"district","values":["城东区"]},"note":"only the eastern district"}`), &a)
	if a.Status != "approved" || len(a.GrantIDs) != 1 {
		t.Fatalf("approval: %+v", a)
	}

	stmt := "SELECT district, low_income, COUNT(*) AS n FROM civil.residents GROUP BY district, low_income"
	_, rows, err := query(t, "erin", "public-health-planning", stmt)
	if err != nil {
		t.Fatalf("query within the filtered grant: %v", err)
	}
	want := directStrings(t, "civil", "SELECT district, low_income, COUNT(*) FROM residents WHERE district = '城东区' GROUP BY district, low_income HAVING COUNT(*) >= 10")
	if got, w := sorted(rows), sorted(want); got != w || len(rows) == 0 {
		t.Fatalf("filtered rows:\n got %s\nwant %s", got, w)
	}
	// A WHERE naming another district cannot widen the filter.
	_, rows, err = query(t, "erin", "public-health-planning", "SELECT COUNT(*) AS n FROM civil.residents WHERE district = '城西区'")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 && rows[0][0] != "0" {
		t.Fatalf("a WHERE on another district returned %v; the row filter must keep it out", rows)
	}
	// The audit entry records the filter as an obligation.
	raw := mustAPI(t, 200, "GET", "/v1/audit/entries?principal=erin&dataset=civil.residents&decision=allow&kind=query&limit=5", "carol", "")
	if !strings.Contains(string(raw), "district in (城东区)") {
		t.Fatalf("audit entry lacks the row filter: %s", raw)
	}
	mustAPI(t, 200, "POST", "/v1/grants/"+a.GrantIDs[0]+"/revoke", "cheng", `{"reason":"test over"}`)
	if _, _, err := query(t, "erin", "public-health-planning", stmt); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("after revocation: %v", err)
	}
}

// TestErrorReports: an analyst reports a suspected error; the provider's
// queue shows it; a rejection needs a reason; the reporter is told.
func TestErrorReports(t *testing.T) {
	var r struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Provider string `json:"provider"`
		Reason   string `json:"reason"`
		Seen     bool   `json:"seen"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/reports", "bob",
		`{"dataset":"police.household","column":"household_district","description":"enterprise legal rep registered in two districts","row_ref":"110101********1234"}`), &r)
	if r.Status != "submitted" || r.Provider != "police" {
		t.Fatalf("report: %+v", r)
	}
	// The provider's queue shows it; another department's admin does not see it.
	if raw := mustAPI(t, 200, "GET", "/v1/reports?status=submitted", "paul", ""); !strings.Contains(string(raw), r.ID) {
		t.Fatalf("police queue lacks %s: %s", r.ID, raw)
	}
	if raw := mustAPI(t, 200, "GET", "/v1/reports", "hana", ""); strings.Contains(string(raw), r.ID) {
		t.Fatalf("health's admin sees police's report: %s", raw)
	}
	mustAPI(t, 403, "POST", "/v1/reports/"+r.ID+"/acknowledge", "bob", "")
	mustAPI(t, 200, "POST", "/v1/reports/"+r.ID+"/acknowledge", "paul", "")
	mustAPI(t, 400, "POST", "/v1/reports/"+r.ID+"/reject", "paul", "")
	mustAPI(t, 200, "POST", "/v1/reports/"+r.ID+"/reject", "paul", `{"reason":"the register shows one district; the other is the enterprise's address"}`)
	mustAPI(t, 409, "POST", "/v1/reports/"+r.ID+"/correct", "paul", "")
	// The reporter sees the outcome and why, flagged unseen until read.
	if raw := mustAPI(t, 200, "GET", "/v1/reports", "bob", ""); !strings.Contains(string(raw), `"seen":false`) {
		t.Fatalf("the reporter's list does not flag the news: %s", raw)
	}
	decodeJSON(t, mustAPI(t, 200, "GET", "/v1/reports/"+r.ID, "bob", ""), &r)
	if r.Status != "rejected" || !strings.Contains(r.Reason, "one district") {
		t.Fatalf("reporter sees %+v", r)
	}
	decodeJSON(t, mustAPI(t, 200, "GET", "/v1/reports/"+r.ID, "bob", ""), &r)
	if !r.Seen {
		t.Fatalf("reading the report did not mark it seen")
	}
}

// TestUsageStatistics: calls, denials, rows and purposes per dataset and
// requesting department, from the audit log, visible to the provider.
func TestUsageStatistics(t *testing.T) {
	query(t, "bob", "enterprise-credit", "SELECT household_district, COUNT(*) AS n FROM police.household GROUP BY household_district")
	query(t, "bob", "enterprise-credit", "SELECT offense FROM police.criminal_records")
	var u struct {
		Usage []struct {
			Day, Dataset, Department string
			Calls, Denied, Rows      int64
			Purposes                 []string
		} `json:"usage"`
	}
	decodeJSON(t, mustAPI(t, 200, "GET", "/v1/usage?department=market", "paul", ""), &u)
	found := map[string]bool{}
	for _, r := range u.Usage {
		if r.Department != "market" {
			t.Errorf("asked for market, got %+v", r)
		}
		switch r.Dataset {
		case "police.household":
			found["household"] = r.Calls >= 1 && r.Rows >= 5 && strings.Contains(strings.Join(r.Purposes, ","), "enterprise-credit")
		case "police.criminal_records":
			found["criminal"] = r.Denied >= 1
		}
	}
	if !found["household"] || !found["criminal"] {
		t.Fatalf("usage rows do not show bob's calls: %+v", u.Usage)
	}
	// An analyst sees only its own department's requests.
	decodeJSON(t, mustAPI(t, 200, "GET", "/v1/usage", "alice", ""), &u)
	for _, r := range u.Usage {
		if r.Department != "civil" {
			t.Fatalf("alice sees %s's usage", r.Department)
		}
	}
}

// TestTokensExpireAndRevoke: issued tokens work at once, stop working when
// revoked (expiry is TestTokenExpiry in broker/); a client certificate
// registered to a user authenticates instead of a token.
func TestTokensExpireAndRevoke(t *testing.T) {
	mustAPI(t, 200, "PUT", "/v1/users/gina", "dave", `{"role":"analyst","department":"civil"}`)
	var tok struct {
		ID     string `json:"id"`
		Secret string `json:"token"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/users/gina/tokens", "dave", `{"ttl":"2m","label":"test"}`), &tok)
	whoami := func(token string) int {
		req, _ := http.NewRequest("GET", "https://"+world.AdminAddr+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := whoami(tok.Secret); st != 200 {
		t.Fatalf("fresh token: %d", st)
	}
	// Listing never shows the secret.
	if raw := mustAPI(t, 200, "GET", "/v1/users/gina/tokens", "dave", ""); strings.Contains(string(raw), tok.Secret) || strings.Contains(string(raw), state.HashToken(tok.Secret)) {
		t.Fatalf("token list leaks the secret or its hash: %s", raw)
	}
	mustAPI(t, 200, "DELETE", "/v1/tokens/"+tok.ID, "dave", "")
	if st := whoami(tok.Secret); st != 401 {
		t.Fatalf("revoked token: %d, want 401", st)
	}

	// A client certificate pinned to gina, over Flight SQL.
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "gina.crt"), filepath.Join(dir, "gina.key")
	if err := tlsutil.WriteSelfSigned(crt, key, "gina", nil); err != nil {
		t.Fatal(err)
	}
	fp, err := tlsutil.FingerprintFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	mustAPI(t, 200, "PUT", "/v1/users/gina", "dave", fmt.Sprintf(`{"role":"analyst","department":"civil","cert_fingerprint":%q}`, fp))
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := flightsql.NewClient(world.BrokerAddr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}})))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, broker.PurposeHeader, "subsidy-review")
	info, err := cl.Execute(ctx, "SELECT COUNT(*) AS n FROM civil.residents")
	if err != nil {
		t.Fatalf("query with gina's client certificate: %v", err)
	}
	if len(info.Endpoint) != 1 {
		t.Fatalf("endpoints: %d", len(info.Endpoint))
	}
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	for rdr.Next() {
	}
	rdr.Release()

}
