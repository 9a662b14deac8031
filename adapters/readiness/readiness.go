// Package readiness runs the checks behind a /readyz endpoint, for the
// broker (broker/metrics) and the agents (adapters/agent) alike: each check
// concurrently, each within a timeout (a check still running then counts
// as failed), and a body that names what failed but never the error — the
// endpoint answers without authentication, so the cause goes only to the
// operational log.
package readiness

import (
	"context"
	"sync"
	"time"
)

// Check is one readiness check.
type Check struct {
	// Name is what /readyz calls it (store, audit, keys, agent:<department>,
	// source:<name>).
	Name string
	// Problem is what /readyz says when the check fails.
	Problem string
	Run     func(ctx context.Context) error
}

// Result is one check's line in the /readyz body.
type Result struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
}

// Report is the /readyz body.
type Report struct {
	Status   string   `json:"status"` // "ready" or "not ready"
	NotReady []string `json:"not_ready,omitempty"`
	Checks   []Result `json:"checks"`
}

// Run runs every check concurrently, each within timeout, and calls failed
// (when not nil) with the cause of each failure.
func Run(ctx context.Context, checks []Check, timeout time.Duration, failed func(name string, err error)) Report {
	results := make([]Result, len(checks))
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
			results[i] = Result{Name: c.Name, OK: err == nil}
			if err != nil {
				results[i].Problem = c.Problem
				if failed != nil {
					failed(c.Name, err)
				}
			}
		}()
	}
	wg.Wait()
	out := Report{Status: "ready", Checks: results}
	for _, r := range results {
		if !r.OK {
			out.Status = "not ready"
			out.NotReady = append(out.NotReady, r.Name)
		}
	}
	return out
}
