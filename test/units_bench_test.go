package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/sluice-gov/sluice/broker"
)

// BenchmarkTourAggregates measures what counting persons and the
// differencing guard cost on the README's aggregate questions, end to end
// (Flight SQL client, broker, agents, back): each question asked by alice
// under her aggregate-only grant (persons listed, hashed and sketched at
// the agent or counted in the sandbox, every group checked by the guard)
// and, side by side, the very same SQL asked by erin, for whom nothing is
// protected (health is her own department's; civil's rows come to her
// under a rows grant this benchmark gives her and revokes at the end).
//
//	go test -run xxx -bench TourAggregates -benchtime 200x ./test/
func BenchmarkTourAggregates(b *testing.B) {
	single := "SELECT insurance_type, COUNT(*) AS insured, AVG(annual_claims) AS avg_claims FROM health.insured WHERE chronic_disease = 1 GROUP BY insurance_type"
	cross := `SELECT r.district, COUNT(*) AS residents, AVG(i.annual_claims) AS avg_claims
     FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card
     WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district ORDER BY r.district`
	grant := erinRowsGrant(b)
	defer func() {
		if st, raw := adminAPI(b, "POST", "/v1/grants/"+grant+"/revoke", "cheng", nil); st != 200 {
			b.Errorf("revoke the benchmark's grant: %d %s", st, raw)
		}
	}()
	cases := []struct{ name, user, purpose, sql string }{
		{"single/unprotected", "erin", "public-health-planning", single},
		{"single/persons-counted", "alice", "subsidy-review", single},
		{"cross/unprotected", "erin", "public-health-planning", cross},
		{"cross/persons-counted", "alice", "subsidy-review", cross},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx, cl := flightClient(b, c.user)
			ctx = metadata.AppendToOutgoingContext(ctx, broker.PurposeHeader, c.purpose)
			for b.Loop() {
				info, err := cl.Execute(ctx, c.sql)
				if err != nil {
					b.Fatal(err)
				}
				rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for rd.Next() {
					rows += int(rd.Record().NumRows())
				}
				if err := rd.Err(); err != nil {
					b.Fatal(err)
				}
				rd.Release()
				if rows == 0 {
					b.Fatal("no rows")
				}
			}
		})
	}
}

// erinRowsGrant gives erin rows of civil.residents for the benchmark, so
// that nothing in the cross-department question is protected for her.
func erinRowsGrant(b *testing.B) string {
	b.Helper()
	from, until := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)
	var a struct {
		ID       string   `json:"id"`
		Status   string   `json:"status"`
		GrantIDs []string `json:"grant_ids"`
	}
	step := func(want int, method, path, user, body string) {
		st, raw := adminAPI(b, method, path, user, []byte(body))
		if st != want {
			b.Fatalf("%s %s: %d %s", method, path, st, raw)
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			b.Fatal(err)
		}
	}
	step(201, "POST", "/v1/applications", "erin", fmt.Sprintf(`{"items":[{"dataset":"civil.residents","columns":["id_card","district","low_income"]}],
		"purpose":"public-health-planning","justification":"benchmark","valid_from":%q,"valid_until":%q,"mode":"rows"}`, from, until))
	id := a.ID
	step(200, "POST", "/v1/applications/"+id+"/forward", "dave", `{"note":"ok"}`)
	step(200, "POST", "/v1/applications/"+id+"/approve", "cheng", `{"note":"benchmark"}`)
	if a.Status != "approved" || len(a.GrantIDs) != 1 {
		b.Fatalf("approval: %+v", a)
	}
	_ = context.Background
	return a.GrantIDs[0]
}
