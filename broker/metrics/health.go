package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluice-gov/sluice/adapters/readiness"
)

// Check is one readiness check of the broker (adapters/readiness, shared
// with the agents): Name is what /readyz calls it (store, audit, keys,
// agent:<department>); Problem is what it says when the check fails.
type Check = readiness.Check

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
type CheckResult = readiness.Result

// Readiness is the /readyz body.
type Readiness = readiness.Report

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
	out := readiness.Run(ctx, checks, timeout, func(name string, err error) {
		if h.Log != nil {
			h.Log.Warn("not ready", "check", name, "err", err)
		}
	})
	if h.Metrics != nil {
		for _, r := range out.Checks {
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
