package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness check of the broker.
type Check struct {
	// Name is what /readyz calls it: store, audit, keys, agent:<department>.
	Name string
	// Problem is what /readyz says when the check fails. The endpoint
	// answers without authentication, so the error itself (which may name
	// a file or a host) goes only to the operational log.
	Problem string
	Run     func(ctx context.Context) error
}

// Health serves /healthz and /readyz.
type Health struct {
	// Checks lists the checks to run now (the agents change with the
	// catalog, so the list is built at each request).
	Checks func() []Check
	// Timeout bounds each check (default 3s); a check still running then
	// counts as failed.
	Timeout time.Duration
	// Log receives the cause of each failed check (default: discarded).
	Log *slog.Logger
	// Metrics, when set, keeps sluice_broker_ready{check} up to date.
	Metrics *Broker
}

// CheckResult is one check's line in the /readyz body.
type CheckResult struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
}

// Readiness is the /readyz body.
type Readiness struct {
	Status   string        `json:"status"` // "ready" or "not ready"
	NotReady []string      `json:"not_ready,omitempty"`
	Checks   []CheckResult `json:"checks"`
}

// Ready runs every check concurrently, each within the timeout.
func (h *Health) Ready(ctx context.Context) Readiness {
	var checks []Check
	if h.Checks != nil {
		checks = h.Checks()
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	results := make([]CheckResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(cctx) }()
			var err error
			select {
			case err = <-done:
			case <-cctx.Done():
				err = cctx.Err()
			}
			results[i] = CheckResult{Name: c.Name, OK: err == nil}
			if err != nil {
				results[i].Problem = c.Problem
				if h.Log != nil {
					h.Log.Warn("not ready", "check", c.Name, "err", err)
				}
			}
		}()
	}
	wg.Wait()
	out := Readiness{Status: "ready", Checks: results}
	for _, r := range results {
		if !r.OK {
			out.Status = "not ready"
			out.NotReady = append(out.NotReady, r.Name)
		}
		if h.Metrics != nil {
			v := 0.0
			if r.OK {
				v = 1
			}
			h.Metrics.readyChecks.WithLabelValues(r.Name).Set(v)
		}
	}
	return out
}

// ServeHealthz answers 200 while the process serves HTTP at all.
func ServeHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// ServeReadyz answers 200 when every check passes, else 503 naming the
// checks that failed.
func (h *Health) ServeReadyz(w http.ResponseWriter, r *http.Request) {
	rd := h.Ready(r.Context())
	code := http.StatusOK
	if rd.Status != "ready" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rd)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
