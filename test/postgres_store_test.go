package test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// TestBrokerOnPostgres runs a second demo broker whose whole state —
// catalog, users, purposes, grants, budgets, applications and the audit
// log — lives in PostgreSQL, and walks a grant's life through it: a denied
// query, an application approved, the query allowed, the grant revoked,
// denied again; then the audit chain verifies. (The store packages run
// their full suites on both backends; this checks the broker wired to it.)
func TestBrokerOnPostgres(t *testing.T) {
	pgURL := dbtest.PostgresSchema(t)
	ctx := context.Background()
	w, err := demo.Start(ctx, demo.RunOptions{Addr: "127.0.0.1:0", Dir: t.TempDir(), Scale: 1, Store: pgURL})
	if err != nil {
		t.Fatalf("demo on PostgreSQL: %v", err)
	}
	t.Cleanup(func() { w.Stop() })

	api := func(method, path, user, body string) (int, string) {
		t.Helper()
		saved := world
		world = w
		defer func() { world = saved }()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		st, raw := adminAPI(t, method, path, user, b)
		return st, string(raw)
	}
	run := func(user, purpose, stmt string) error {
		tok, err := w.Token(user)
		if err != nil {
			t.Fatal(err)
		}
		q := url.Values{"token": {tok}, "tls": {"skip-verify"}, broker.PurposeHeader: {purpose}}
		db, err := sql.Open("flightsql", "flightsql://"+w.BrokerAddr+"?"+q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rows, err := db.QueryContext(qctx, stmt)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
		}
		return rows.Err()
	}

	stmt := "SELECT industry, COUNT(*) AS n FROM market.enterprises GROUP BY industry"
	if err := run("erin", "public-health-planning", stmt); err != nil {
		t.Fatalf("unconditional data on the PostgreSQL broker: %v", err)
	}
	police := "SELECT household_district, COUNT(*) AS n FROM police.household GROUP BY household_district"
	if err := run("erin", "public-health-planning", police); err == nil {
		t.Fatal("conditional data without a grant was allowed")
	}
	from, until := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339)
	st, body := api("POST", "/v1/applications", "erin", `{"items":[{"dataset":"police.household","columns":["household_district"]}],"purpose":"public-health-planning",
		"justification":"households per district for clinic planning","valid_from":"`+from+`","valid_until":"`+until+`","mode":"aggregate","k":10}`)
	if st != 201 {
		t.Fatalf("apply: %d %s", st, body)
	}
	var app struct {
		ID       string   `json:"id"`
		GrantIDs []string `json:"grant_ids"`
	}
	json.Unmarshal([]byte(body), &app)
	if st, body = api("POST", "/v1/applications/"+app.ID+"/forward", "dave", ""); st != 200 {
		t.Fatalf("forward: %d %s", st, body)
	}
	if st, body = api("POST", "/v1/applications/"+app.ID+"/approve", "paul", ""); st != 200 {
		t.Fatalf("approve: %d %s", st, body)
	}
	json.Unmarshal([]byte(body), &app)
	if err := run("erin", "public-health-planning", police); err != nil {
		t.Fatalf("after approval: %v", err)
	}
	if st, body = api("POST", "/v1/grants/"+app.GrantIDs[0]+"/revoke", "paul", ""); st != 200 {
		t.Fatalf("revoke: %d %s", st, body)
	}
	if err := run("erin", "public-health-planning", police); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("after revocation: %v", err)
	}
	st, body = api("GET", "/v1/audit/verify", "carol", "")
	if st != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("audit verify on PostgreSQL: %d %s", st, body)
	}
	st, body = api("GET", "/v1/usage?dataset=police.household", "paul", "")
	if st != 200 || !strings.Contains(body, `"denied":`) {
		t.Fatalf("usage on PostgreSQL: %d %s", st, body)
	}
}
