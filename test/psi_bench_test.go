package test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cloudflare/circl/dh/x25519"

	"github.com/sluice-gov/sluice/cmd/sluice/demo"
	"github.com/sluice-gov/sluice/crypto/psi"
)

// BenchmarkPSI1Mx1M runs a private join of about 1,000,000 × 1,000,000 keys
// end to end: the demo world at scale 50 (1,000,000 residents in civil
// affairs, 1,084,650 people in the police household register), alice's
// aggregate-only grant, two real agents and the broker on this machine.
// Alongside it measures the chosen group's raw scalar multiplication, so
// the cost per key can be set against the arithmetic floor: a key pair
// needs two hash-to-group operations and four scalar multiplications.
//
//	go test -run xxx -bench PSI1Mx1M -benchtime 1x -timeout 30m ./test/
func BenchmarkPSI1Mx1M(b *testing.B) {
	dir := filepath.Join(os.TempDir(), "sluice-psi-bench-v1")
	ctx := context.Background()
	w, err := demo.Start(ctx, demo.RunOptions{Addr: "127.0.0.1:0", Dir: dir, Scale: 50})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	saved, savedTimeout := world, queryTimeout
	world, queryTimeout = w, 20*time.Minute
	defer func() { world, queryTimeout = saved, savedTimeout }()
	left, right := countRows(b, w, "civil", "residents"), countRows(b, w, "police", "household")

	// The floor: one core's raw scalar multiplication (circl's X25519
	// ladder, without the hash and the point checks), measured now.
	sec, err := psi.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	var k, p x25519.Key
	copy(p[:], sec.Blind("110105194912310021", "person"))
	if _, err := rand.Read(k[:]); err != nil {
		b.Fatal(err)
	}
	const n = 4000
	t0 := time.Now()
	for i := 0; i < n; i++ {
		x25519.Shared(&p, &k, &p)
	}
	mult := time.Since(t0) / n

	stmt := "SELECT COUNT(*) AS n FROM civil.residents r JOIN police.household h ON r.id_card = h.id_card"
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		_, rows, err := query(b, "alice", "subsidy-review", stmt)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		if len(rows) != 1 {
			b.Fatalf("want one count, got %v", rows)
		}
		if i == 0 {
			b.Logf("matched %s of %d × %d keys", rows[0][0], left, right)
		}
	}
	b.StopTimer()
	per := elapsed / time.Duration(b.N)
	perKey := float64(per.Microseconds()) / float64(left+right) * 2 // per key pair, wall time
	cores := float64(runtime.GOMAXPROCS(0))
	floor := 4 * float64(mult.Nanoseconds()) / 1000 / cores // four multiplications per pair, spread over the cores
	b.ReportMetric(per.Seconds(), "s/join")
	b.ReportMetric(perKey, "µs/key-pair")
	b.ReportMetric(float64(mult.Nanoseconds())/1000, "µs/scalar-mult")
	b.ReportMetric(floor/perKey*100, "%-of-floor")
}

func countRows(b *testing.B, w *demo.Running, dept, table string) int64 {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+w.World.DatabaseFiles[dept]+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM %s", table)).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
