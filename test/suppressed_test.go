package test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
)

// TestSuppressedGroupsSingleDataset: alice's grant on health.insured is
// aggregate-only with k = 10, which her agent enforces on single-dataset
// queries. Groups under k are suppressed at the source and their number is
// told to the client (the suppressed_groups app metadata of the last batch)
// and recorded in the audit result entry, exactly as for a sandbox result;
// the counts are checked against the health database directly.
func TestSuppressedGroupsSingleDataset(t *testing.T) {
	db := direct(t, "health")
	// Thresholds on annual_claims that shape the groups: some under k and
	// some over, all under, none under.
	shapes := []struct {
		name string
		want func(small, big int) bool
	}{
		{"some groups under k", func(small, big int) bool { return small > 0 && big > 0 }},
		{"every group under k", func(small, big int) bool { return small > 0 && big == 0 }},
		{"no group under k", func(small, big int) bool { return small == 0 && big > 1 }},
	}
	candidates := claimThresholds(t, db)
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			// Each shape is asked by an analyst of a department of its own:
			// the differencing guard compares a department's releases, and
			// these thresholds lie close together on purpose.
			analyst := labAnalyst(t)
			threshold, truth, ok := 0.0, map[string]int(nil), false
			for _, c := range candidates {
				counts := groupCounts(t, db, c)
				small, big := 0, 0
				for _, n := range counts {
					if n < 10 {
						small++
					} else {
						big++
					}
				}
				if shape.want(small, big) {
					threshold, truth, ok = c, counts, true
					break
				}
			}
			if !ok {
				t.Fatal("no claims threshold gives this shape of groups; the demo data changed")
			}
			var wantRows []string
			wantSuppressed := 0
			for typ, n := range truth {
				if n < 10 {
					wantSuppressed++
				} else {
					wantRows = append(wantRows, fmt.Sprintf("%s=%d", typ, n))
				}
			}
			sort.Strings(wantRows)
			stmt := fmt.Sprintf("SELECT insurance_type, COUNT(*) AS n FROM health.insured WHERE annual_claims > %v GROUP BY insurance_type ORDER BY insurance_type", threshold)

			// Through the database/sql driver: only the groups of k or more.
			_, got, err := query(t, analyst, "subsidy-review", stmt)
			if err != nil {
				t.Fatal(err)
			}
			var gotRows []string
			for _, r := range got {
				gotRows = append(gotRows, r[0]+"="+r[1])
			}
			if fmt.Sprint(gotRows) != fmt.Sprint(wantRows) {
				t.Fatalf("released %v, want %v", gotRows, wantRows)
			}

			// Through the Flight client: the count in the app metadata.
			meta := lastAppMetadata(t, analyst, "subsidy-review", stmt)
			var rep map[string]any
			if err := json.Unmarshal(meta, &rep); err != nil {
				t.Fatalf("app metadata %q: %v", meta, err)
			}
			if fmt.Sprint(rep["suppressed_groups"]) != fmt.Sprint(wantSuppressed) {
				t.Fatalf("suppressed_groups %v, want %d (ground truth %v)", rep["suppressed_groups"], wantSuppressed, truth)
			}
			if len(rep) != 1 {
				t.Fatalf("the app metadata says more than the count: %v", rep)
			}

			// And in the audit result entry.
			l := openAudit(t)
			es, err := l.Search(context.Background(), audit.Filter{Principal: analyst, Kind: audit.KindResult, Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			var last *audit.Entry
			for i := range es {
				if es[i].SQL == stmt && (last == nil || es[i].Seq > last.Seq) {
					last = &es[i]
				}
			}
			if last == nil || last.Decision != audit.DecisionAllow {
				t.Fatalf("no allowed result entry for %q: %+v", stmt, last)
			}
			if fmt.Sprint(last.Obligations["suppressed_groups"]) != fmt.Sprint(wantSuppressed) {
				t.Fatalf("audit result entry obligations %v, want suppressed_groups %d", last.Obligations, wantSuppressed)
			}
		})
	}
}

// claimThresholds lists distinct annual_claims values, highest first,
// with -1 (every row) last.
func claimThresholds(t *testing.T, db *sql.DB) []float64 {
	t.Helper()
	rows, err := db.Query("SELECT DISTINCT CAST(annual_claims AS REAL) FROM insured ORDER BY 1 DESC LIMIT 3000")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []float64
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return append(out, -1)
}

// lastAppMetadata runs stmt with the plain Flight SQL client and returns
// the app metadata of the last batch, where the broker puts its release
// report.
func lastAppMetadata(t *testing.T, user, purpose, stmt string) []byte {
	t.Helper()
	ctx, cl := flightClient(t, user)
	ctx = metadata.AppendToOutgoingContext(ctx, broker.PurposeHeader, purpose)
	info, err := cl.Execute(ctx, stmt)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var meta []byte
	for rd.Next() {
		meta = rd.LatestAppMetadata()
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	if meta == nil {
		t.Fatal("the result carries no app metadata")
	}
	return meta
}
