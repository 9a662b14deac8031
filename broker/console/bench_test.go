package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/broker/audit"
)

// benchEntries is the size of the audit log the audit browser is
// benchmarked over (issue 15: under 200 ms at the median).
const benchEntries = 100_000

// fill appends n entries like a busy broker's: queries and results by
// several principals of several departments on several datasets, some
// denied, concurrently (the log commits them in groups).
func fill(b *testing.B, lg *audit.Log, n int) {
	ctx := context.Background()
	principals := []string{"alice", "bob", "erin", "frank", "grace", "heidi"}
	depts := []string{"civil", "market", "health", "police"}
	datasets := []string{"police.household", "market.enterprises", "health.insured", "civil.subsidies"}
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				e := &audit.Entry{Kind: audit.KindQuery, QueryID: fmt.Sprintf("q-%d", i), Principal: principals[i%len(principals)],
					Role: "analyst", Department: depts[i%len(depts)], Purpose: "enterprise-credit",
					SQL: "SELECT district, COUNT(*) FROM " + datasets[i%len(datasets)] + " GROUP BY district", Datasets: []string{datasets[i%len(datasets)]},
					Decision: audit.DecisionAllow, Reasons: []string{"allowed under grant g-1"}, PolicyRevision: "rev-1", Plan: "Aggregate[count] <- Scan"}
				if i%17 == 0 {
					e.Decision, e.Reasons = audit.DecisionDeny, []string{"column police.household.id_number (L4) may not appear in the output"}
				}
				if err := lg.Append(ctx, e); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAuditBrowser loads the audit browser's list page (50 entries,
// through the real handler over TLS, including the audit record of the
// view) over a SQLite audit log of 100,000 entries, and reports the median.
func BenchmarkAuditBrowser(b *testing.B) {
	w := benchWorld(b)
	carol, _ := w.login("carol")
	for _, bc := range []struct{ name, query string }{
		{"newest", ""},
		{"principal+decision", "?principal=bob&decision=deny"},
		{"dataset", "?dataset=health.insured"},
		{"page2", "?before=" + fmt.Sprint(benchEntries-50)},
		// Worst cases: filters nothing matches scan the whole log.
		{"dataset-no-match", "?dataset=none.nothing"},
		{"principal-no-match", "?principal=nobody"},
		{"time-range", "?since=" + url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)) + "&kind=query"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				start := time.Now()
				resp, body := w.do(carol, "GET", "/console/audit"+bc.query, nil)
				times = append(times, time.Since(start))
				if resp.StatusCode != http.StatusOK || len(body) < 500 {
					b.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms/median")
		})
	}
}

var (
	benchOnce sync.Once
	benchW    *world
	benchDir  string
)

// benchWorld is built once per process: filling the log takes a while.
func benchWorld(b *testing.B) *world {
	benchOnce.Do(func() {
		tb := &onceTB{TB: b}
		benchW = newWorld(tb)
		start := time.Now()
		fill(b, benchW.log, benchEntries)
		b.Logf("filled the audit log with %d entries in %s", benchEntries, time.Since(start).Round(time.Millisecond))
	})
	benchW.t = b
	return benchW
}

// onceTB keeps the world's temporary files until the process ends (the
// benchmark function runs several times over the same world).
type onceTB struct{ testing.TB }

func (o *onceTB) TempDir() string {
	if benchDir == "" {
		d, err := os.MkdirTemp("", "console-bench-")
		if err != nil {
			o.TB.Fatal(err)
		}
		benchDir = d
	}
	d, err := os.MkdirTemp(benchDir, "w")
	if err != nil {
		o.TB.Fatal(err)
	}
	return d
}

func (o *onceTB) Cleanup(func()) {}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}
