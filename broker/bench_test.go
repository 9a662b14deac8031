package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
)

type statement string

func (s statement) GetQuery() string         { return string(s) }
func (s statement) GetTransactionId() []byte { return nil }

// BenchmarkBrokerOverhead measures what the broker adds to a small query
// before any agent is contacted: parse, resolve, lineage, policy decision,
// obligations, output schema and the fail-closed audit append (an fsync'd
// SQLite transaction). It reports the median per query.
func BenchmarkBrokerOverhead(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	w, err := demo.Generate(ctx, demo.Options{Dir: dir, Scale: 1})
	if err != nil {
		b.Fatal(err)
	}
	cfg := &broker.Config{Users: filepath.Join(dir, "users-hashed.json"), Purposes: w.PurposesFile, Grants: w.GrantsFile}
	for _, d := range demo.Departments {
		cfg.Departments = append(cfg.Departments, w.DepartmentFiles[d])
	}
	if err := os.WriteFile(cfg.Users, []byte("[]"), 0o600); err != nil {
		b.Fatal(err)
	}
	parts, err := broker.LoadParts(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(ctx, filepath.Join(dir, "broker.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	agents := map[string]state.AgentClient{"civil": nil, "health": nil, "market": nil, "police": nil}
	srv, err := broker.New(parts.Catalog, parts.Policy, log, parts.Users, broker.WithAgents(agents), broker.WithPurposes(parts.Purposes))
	if err != nil {
		b.Fatal(err)
	}
	bob := sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	qctx := broker.WithPrincipal(metadata.NewIncomingContext(ctx, metadata.Pairs(broker.PurposeHeader, "enterprise-credit")), bob)
	q := statement("SELECT name, household_district FROM police.household WHERE migrant = 1 AND household_district = '城东区' LIMIT 20")
	desc := &flight.FlightDescriptor{Type: flight.DescriptorCMD}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := srv.GetFlightInfoStatement(qctx, q, desc); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
}
