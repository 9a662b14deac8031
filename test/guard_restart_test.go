package test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// TestDifferencingGuardSurvivesRestart: the broker's memory of what it
// released lives in its store. A demo world releases a total to alice,
// stops, starts again over the same folder and store, and refuses the
// total without one person — on a SQLite store and on PostgreSQL. Rerunning
// the first query is still allowed: the same persons, no difference.
func TestDifferencingGuardSurvivesRestart(t *testing.T) {
	top := topClaims(t, 1)[0]
	first := "SELECT insurance_type, COUNT(*) AS n, AVG(annual_claims) AS a FROM health.insured WHERE hospital_visits > 0 GROUP BY insurance_type"
	near := fmt.Sprintf("SELECT insurance_type, COUNT(*) AS n, AVG(annual_claims) AS a FROM health.insured WHERE hospital_visits > 0 AND annual_claims < %v GROUP BY insurance_type", top)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			store := ""
			if backend == "postgres" {
				store = dbtest.PostgresSchema(t)
			}
			dir := t.TempDir()
			start := func() *demo.Running {
				w, err := demo.Start(context.Background(), demo.RunOptions{Addr: "127.0.0.1:0", Dir: dir, Scale: 1, Store: store})
				if err != nil {
					t.Fatalf("start the demo on %s: %v", backend, err)
				}
				return w
			}
			run := func(w *demo.Running, stmt string) ([][]string, error) {
				tok, err := w.Token("alice")
				if err != nil {
					t.Fatal(err)
				}
				q := url.Values{"token": {tok}, "tls": {"skip-verify"}, broker.PurposeHeader: {"subsidy-review"}}
				db, err := sql.Open("flightsql", "flightsql://"+w.BrokerAddr+"?"+q.Encode())
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				rows, err := db.QueryContext(ctx, stmt)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				var out [][]string
				for rows.Next() {
					var typ string
					var n int64
					var a float64
					if err := rows.Scan(&typ, &n, &a); err != nil {
						t.Fatal(err)
					}
					out = append(out, []string{typ, fmt.Sprint(n), fmt.Sprintf("%.4f", a)})
				}
				return out, rows.Err()
			}
			w := start()
			before, err := run(w, first)
			if err != nil || len(before) == 0 {
				t.Fatalf("the first release: %v %v", before, err)
			}
			if err := w.Stop(); err != nil {
				t.Fatal(err)
			}
			w = start()
			t.Cleanup(func() { w.Stop() })
			if rows, err := run(w, near); err == nil || !strings.Contains(err.Error(), "PermissionDenied") || !strings.Contains(err.Error(), "differs from a group released by query") {
				t.Fatalf("after the restart the guard let %v out (%v)", rows, err)
			}
			again, err := run(w, first)
			if err != nil || sorted(again) != sorted(before) {
				t.Fatalf("rerunning the first query after the restart: %v %v, want %v", again, err, before)
			}
		})
	}
}
