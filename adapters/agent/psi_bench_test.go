package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/psi"
)

// BenchmarkPSIAgent runs the agent's half of a private join over Flight
// with TLS on loopback: psi-blind of n keys, then psi-reblind of n points,
// and reports the wall time per key of each (both on this machine's CPUs).
func BenchmarkPSIAgent(b *testing.B) {
	const n = 20000
	dir := b.TempDir()
	db := filepath.Join(dir, "keys.db")
	execAll(b, db, `CREATE TABLE people (id_card TEXT, district TEXT)`,
		fmt.Sprintf(`INSERT INTO people WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d)
		 SELECT printf('1101051949%%08d', x), 'A' FROM c`, n))
	fx := startAgent(b, dir, func(pins []string) *sluice.Department {
		return &sluice.Department{
			ID: "civil", Name: "Civil",
			Agent:   sluice.AgentInfo{TLSCert: filepath.Join(dir, "agent.pem"), TLSKey: filepath.Join(dir, "agent.key"), BrokerFingerprints: pins},
			Sources: []sluice.Source{{Name: "main", Driver: sluice.DriverSQLite, DSN: db}},
			Datasets: []*sluice.Dataset{{
				Name: "people", Source: "main", ShareClass: sluice.ShareUnconditional,
				Columns: []*sluice.Column{
					{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "person"},
					{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
				},
			}},
		}
	}, nil, nil)
	c := fx.broker(b)
	ctx := context.Background()
	var blindNS, reblindNS int64
	for b.Loop() {
		start := b.Elapsed()
		s, err := c.PSIBlind(ctx, psiFrag("civil.people", "k", col("id_card"), "d", col("district")), "id_card", "person")
		if err != nil {
			b.Fatal(err)
		}
		keys := make([][]byte, 0, n)
		for s.Next() {
			col := s.Record().Column(0).(*array.Binary)
			for i := 0; i < col.Len(); i++ {
				keys = append(keys, append([]byte(nil), col.Value(i)...))
			}
		}
		if err := s.Err(); err != nil {
			b.Fatal(err)
		}
		s.Release()
		mid := b.Elapsed()
		out, err := c.PSIReblind(ctx, s.Session, keys)
		if err != nil || len(out) != n || len(out[0]) != psi.PointLen {
			b.Fatal(len(out), err)
		}
		if err := c.PSIClose(ctx, s.Session); err != nil {
			b.Fatal(err)
		}
		blindNS += int64(mid - start)
		reblindNS += int64(b.Elapsed() - mid)
	}
	b.ReportMetric(float64(blindNS)/float64(b.N*n), "blind-ns/key")
	b.ReportMetric(float64(reblindNS)/float64(b.N*n), "reblind-ns/key")
}
