package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/planner"
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
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
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
				cancel()
				if rows == 0 {
					b.Fatal("no rows")
				}
			}
		})
	}
}

// erinRowsGrant gives erin rows of civil.residents for the benchmark, so
// that nothing in the cross-department question is protected for her.
func erinRowsGrant(b testing.TB) string {
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
		"purpose":"public-health-planning","justification":"clinic planning benchmark","valid_from":%q,"valid_until":%q,"mode":"rows"}`, from, until))
	id := a.ID
	step(200, "POST", "/v1/applications/"+id+"/forward", "dave", `{"note":"ok"}`)
	step(200, "POST", "/v1/applications/"+id+"/approve", "cheng", `{"note":"benchmark"}`)
	if a.Status != "approved" || len(a.GrantIDs) != 1 {
		b.Fatalf("approval: %+v", a)
	}
	return a.GrantIDs[0]
}

// BenchmarkTourUnitsAtTheAgent isolates what counting persons costs the
// health agent on the README's single-dataset question: the same fragment
// fetched over Flight as the broker would send it for erin (her own
// department's data: no minimum group size) and for alice (k = 10: the
// database lists each group's persons per contributor set, the agent
// hashes them into sketches and drops groups under k).
//
//	go test -run xxx -bench TourUnitsAtTheAgent -benchtime 500x ./test/
func BenchmarkTourUnitsAtTheAgent(b *testing.B) {
	c := deptAgent(b, "health")
	pl, err := planner.New(mustCatalog(b)).Plan("bench", "SELECT insurance_type, COUNT(*) AS insured, AVG(annual_claims) AS avg_claims FROM health.insured WHERE chronic_disease = 1 GROUP BY insurance_type")
	if err != nil {
		b.Fatal(err)
	}
	for _, c2 := range []struct {
		name string
		p    sluice.Principal
		k    int
	}{
		{"owner", sluice.Principal{Name: "erin", Role: sluice.RoleAnalyst, Department: "health"}, 0},
		{"persons-counted", sluice.Principal{Name: "alice", Role: sluice.RoleAnalyst, Department: "civil"}, 10},
	} {
		b.Run(c2.name, func(b *testing.B) {
			f := *pl.Fragment
			f.Requester, f.Purpose, f.MinGroupSize = c2.p, "subsidy-review", c2.k
			for b.Loop() {
				s, err := c.Fetch(context.Background(), &f)
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for s.Next() {
					rows += int(s.Record().NumRows())
				}
				if err := s.Err(); err != nil {
					b.Fatal(err)
				}
				s.Release()
				if rows != 2 {
					b.Fatalf("%d groups", rows)
				}
			}
		})
	}
}

// mustCatalog is the demo broker's catalog.
func mustCatalog(b *testing.B) *sluice.Catalog {
	b.Helper()
	cfg, err := broker.LoadConfig(world.BrokerConfig)
	if err != nil {
		b.Fatal(err)
	}
	parts, err := broker.LoadParts(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	return parts.Catalog
}
