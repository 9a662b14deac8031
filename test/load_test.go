package test

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-gov/sluice/broker"
)

// The load test of admission control (issue 14): many analysts at once
// asking the tour's cross-department question (a private join of civil's
// residents with health's insured, persons counted), each with a 60 s
// deadline. Nothing may be lost: a client either gets its answer or is
// told early, with a retry delay, that the broker is busy; and the broker
// answers about as many per second as it does one at a time.

// loadCross is the tour's private-join question.
const loadCross = `SELECT r.district, COUNT(*) AS residents, AVG(i.annual_claims) AS avg_claims
     FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card
     WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district ORDER BY r.district`

// loadOutcome is how one client's query ended.
type loadOutcome struct {
	took  time.Duration
	rows  int
	err   error
	busy  bool          // ResourceExhausted from admission
	retry time.Duration // its RetryInfo
}

// loadClient is one analyst's connection, with her purpose.
type loadClient struct {
	user, purpose string
}

// runOne runs loadCross once for c under a deadline of d.
func runOne(t testing.TB, c loadClient, d time.Duration) loadOutcome {
	ctx, cl := flightClient(t, c.user)
	ctx = metadata.AppendToOutgoingContext(ctx, broker.PurposeHeader, c.purpose)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	began := time.Now()
	o := loadOutcome{}
	o.err = func() error {
		info, err := cl.Execute(ctx, loadCross)
		if err != nil {
			return err
		}
		rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
		if err != nil {
			return err
		}
		defer rd.Release()
		for rd.Next() {
			o.rows += int(rd.RecordBatch().NumRows())
		}
		return rd.Err()
	}()
	o.took = time.Since(began)
	if st, ok := status.FromError(o.err); ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "the broker is busy") {
		o.busy = true
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				o.retry = ri.RetryDelay.AsDuration()
			}
		}
	}
	return o
}

// loadRound runs n clients at once, one query each.
func loadRound(t testing.TB, clients []loadClient, n int, d time.Duration) ([]loadOutcome, time.Duration) {
	out := make([]loadOutcome, n)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = runOne(t, clients[i%len(clients)], d)
		}()
	}
	wg.Wait()
	return out, time.Since(began)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

func TestLoadConcurrentCrossJoins(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("SLUICE_LOAD") == "" {
		t.Skip("the load test takes about a minute: it runs in CI (CI=true) or with SLUICE_LOAD=1")
	}
	grant := erinRowsGrant(t)
	defer adminAPI(t, "POST", "/v1/grants/"+grant+"/revoke", "cheng", nil)
	clients := []loadClient{{"alice", "subsidy-review"}, {"erin", "public-health-planning"}}

	// One at a time: the rate the broker serves without competition.
	for _, c := range clients {
		if o := runOne(t, c, time.Minute); o.err != nil || o.rows == 0 {
			t.Fatalf("warm-up as %s: %v (%d rows)", c.user, o.err, o.rows)
		}
	}
	const solo = 10
	began := time.Now()
	for i := range solo {
		if o := runOne(t, clients[i%2], time.Minute); o.err != nil {
			t.Fatal(o.err)
		}
	}
	soloRate := solo / time.Since(began).Seconds()
	t.Logf("one at a time: %.2f queries/s", soloRate)

	for _, n := range []int{32, 64} {
		out, wall := loadRound(t, clients, n, 60*time.Second)
		var ok, busy, lost int
		var lat []time.Duration
		for i, o := range out {
			switch {
			case o.err == nil:
				if o.rows == 0 {
					t.Errorf("%d clients: client %d got no rows", n, i)
				}
				ok++
				lat = append(lat, o.took)
			case o.busy:
				busy++
				if o.retry <= 0 {
					t.Errorf("%d clients: a busy refusal without a retry delay: %v", n, o.err)
				}
			default:
				lost++
				t.Errorf("%d clients: client %d lost: %v (after %s)", n, i, o.err, o.took.Round(time.Millisecond))
			}
		}
		rate := float64(ok) / wall.Seconds()
		t.Logf("%d clients, 60 s deadline: %d answered, %d told busy, %d lost; %.2f queries/s (%.0f%% of one at a time); p50 %s, p99 %s; peak RSS of the process (broker and agents) %.0f MiB",
			n, ok, busy, lost, rate, 100*rate/soloRate, percentile(lat, 0.5).Round(time.Millisecond), percentile(lat, 0.99).Round(time.Millisecond), peakRSSMiB())
		// The target is within 20% of the one-at-a-time rate
		// (docs/benchmarks.md has the figures of a quiet machine); a
		// shared CI machine's noise moves both rates by more than that,
		// so the test fails only on a collapse (without admission, 15%).
		if rate < 0.6*soloRate {
			t.Errorf("%d clients: %.2f queries/s, under 60%% of the one-at-a-time rate %.2f", n, rate, soloRate)
		}
	}
}

// A deadline the queue cannot meet is refused early, explained, with a
// retry delay; the rest are answered.
func TestLoadShortDeadlinesToldBusyEarly(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("SLUICE_LOAD") == "" {
		t.Skip("a load test: it runs in CI (CI=true) or with SLUICE_LOAD=1")
	}
	c := loadClient{"alice", "subsidy-review"}
	for range 3 { // the broker learns what such a query costs
		if o := runOne(t, c, time.Minute); o.err != nil {
			t.Fatal(o.err)
		}
	}
	const n = 24
	deadline := 1500 * time.Millisecond
	out, _ := loadRound(t, []loadClient{c}, n, deadline)
	var ok, busy, late int
	for _, o := range out {
		switch {
		case o.err == nil:
			ok++
		case o.busy:
			busy++
			if o.retry < time.Second {
				t.Errorf("retry delay %s, want at least 1s: %v", o.retry, o.err)
			}
			if !strings.Contains(o.err.Error(), "retry after") {
				t.Errorf("refusal does not say when to retry: %v", o.err)
			}
		case errors.Is(o.err, context.DeadlineExceeded) || status.Code(o.err) == codes.DeadlineExceeded:
			late++
		default:
			t.Errorf("unexpected error: %v", o.err)
		}
	}
	t.Logf("%d clients with a %s deadline: %d answered, %d told busy, %d ran out of time", n, deadline, ok, busy, late)
	if busy == 0 {
		t.Errorf("no client was told the broker is busy: %d answered, %d late", ok, late)
	}
	if ok == 0 {
		t.Errorf("no client was answered")
	}
	if late > n/8 {
		t.Errorf("%d of %d clients ran out of time instead of being told early", late, n)
	}
}
