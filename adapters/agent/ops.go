package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/readiness"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/planner"
)

// The agent's operational endpoints: Prometheus metrics, /healthz and
// /readyz, served over plain HTTP on agent.metrics_listen (ServeOps). They
// carry no protected value: labels are an outcome, an operation step and
// the requesting department (an identifier; past maxDeptLabels distinct
// ones, "other"), never SQL, a dataset, a requester's name or a value.
// The listener is meant for the department's management network or
// loopback, like any Prometheus exporter; the Flight service stays the only
// way to the data, behind mutual TLS. docs/operations.md lists every
// metric.

// maxDeptLabels bounds the department label's values: the requester's
// department comes from the broker, and a broker that is wrong must not be
// able to grow the agent's metrics without bound.
const maxDeptLabels = 64

// opsMetrics are one agent's metrics, in a registry of its own.
type opsMetrics struct {
	reg       *prometheus.Registry
	fragments *prometheus.CounterVec
	fragTime  *prometheus.HistogramVec
	rows      *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	psiKeys   *prometheus.CounterVec
	psiTime   *prometheus.HistogramVec
	ready     *prometheus.GaugeVec

	mu    sync.Mutex
	depts map[string]bool
}

var opsBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

func newOpsMetrics() *opsMetrics {
	m := &opsMetrics{reg: prometheus.NewRegistry(), depts: map[string]bool{}}
	m.fragments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_agent_fragments_total",
		Help: "Fragments the agent ran for Flight fetches (private joins: sluice_agent_psi_*), by outcome (ok, denied, error, cancelled) and requesting department.",
	}, []string{"outcome", "department"})
	m.fragTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_agent_fragment_duration_seconds",
		Help:    "Time to run a fragment and stream it, by outcome.",
		Buckets: opsBuckets,
	}, []string{"outcome"})
	m.rows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_agent_fragment_rows_total",
		Help: "Rows sent to the broker, by requesting department.",
	}, []string{"department"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_agent_fragment_bytes_total",
		Help: "Bytes of Arrow buffers sent to the broker, by requesting department.",
	}, []string{"department"})
	m.psiKeys = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_agent_psi_keys_total",
		Help: "Join keys blinded for private joins, by step (blind: the agent's own keys; reblind: the other side's).",
	}, []string{"step"})
	m.psiTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_agent_psi_duration_seconds",
		Help:    "Time of a private-join step (blind, reblind).",
		Buckets: opsBuckets,
	}, []string{"step"})
	m.ready = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_agent_ready",
		Help: "1 when the named readiness check (source:<name>, keys) passed at the last /readyz, else 0.",
	}, []string{"check"})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.fragments, m.fragTime, m.rows, m.bytes, m.psiKeys, m.psiTime, m.ready)
	return m
}

// dept is the department label of a requester.
func (m *opsMetrics) dept(f *planner.Fragment) string {
	if f == nil || f.Requester.Department == "" {
		return "none"
	}
	d := f.Requester.Department
	if !sluice.ValidIdentifier(d) {
		return "other"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.depts[d] {
		if len(m.depts) >= maxDeptLabels {
			return "other"
		}
		m.depts[d] = true
	}
	return d
}

// fragmentDone counts one fragment run.
func (m *opsMetrics) fragmentDone(f *planner.Fragment, rows, bytes int64, d time.Duration, err error) {
	if m == nil {
		return
	}
	o, dept := outcomeOf(err), m.dept(f)
	m.fragments.WithLabelValues(o, dept).Inc()
	m.fragTime.WithLabelValues(o).Observe(d.Seconds())
	m.rows.WithLabelValues(dept).Add(float64(max(rows, 0)))
	m.bytes.WithLabelValues(dept).Add(float64(max(bytes, 0)))
}

// psiStep observes one private-join step's keys and time.
func (m *opsMetrics) psiStep(step string, keys int64, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.psiKeys.WithLabelValues(step).Add(float64(max(keys, 0)))
	}
	m.psiTime.WithLabelValues(step).Observe(d.Seconds())
}

// countBytes wraps emit so that the Arrow buffer bytes of every record
// handed on are added to n.
func countBytes(emit func(arrow.Record) error, n *int64) func(arrow.Record) error {
	return func(rec arrow.Record) error {
		if err := emit(rec); err != nil {
			return err
		}
		for _, c := range rec.Columns() {
			for _, b := range c.Data().Buffers() {
				if b != nil {
					*n += int64(b.Len())
				}
			}
		}
		return nil
	}
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case sluice.ErrorCode(err) == sluice.EDenied:
		return "denied"
	}
	return "error"
}

// Registry is the agent's metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// OpsHandler serves /metrics, /healthz and /readyz.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeOpsJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := s.Ready(r.Context())
		code := http.StatusOK
		if rd.Status != "ready" {
			code = http.StatusServiceUnavailable
		}
		writeOpsJSON(w, code, rd)
	})
	return mux
}

// ServeOps serves OpsHandler over plain HTTP on lis until ctx ends.
func (s *Server) ServeOps(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{Handler: s.OpsHandler(), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	s.log.Info("agent metrics and health serving", "address", lis.Addr().String())
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return nil
}

// ReadyCheck is one check's line in the agent's /readyz body.
type ReadyCheck = readiness.Result

// Readiness is the agent's /readyz body.
type Readiness = readiness.Report

// opsCheckTimeout bounds each readiness check.
const opsCheckTimeout = 3 * time.Second

// Ready checks that every source database answers a ping and that the
// agent's keys are usable: its TLS certificate loads and is valid now, and
// its pseudonym key is loaded. The body names what failed, never the error
// (the endpoint is unauthenticated; the log has the cause).
func (s *Server) Ready(ctx context.Context) Readiness {
	var checks []readiness.Check
	names := make([]string, 0, len(s.dept.Sources))
	for _, src := range s.dept.Sources {
		names = append(names, src.Name)
	}
	slices.Sort(names)
	for _, n := range names {
		db := s.opsDBs[n]
		checks = append(checks, readiness.Check{Name: "source:" + n, Problem: "the source database " + n + " does not answer", Run: func(ctx context.Context) error {
			if db == nil {
				return sluice.Errorf(sluice.EUnavailable, "source %s is not open", n)
			}
			return db.Ping(ctx)
		}})
	}
	checks = append(checks, readiness.Check{Name: "keys", Problem: "the agent's TLS certificate is missing or not valid now, or its pseudonym key is not loaded", Run: s.keysReady})
	out := readiness.Run(ctx, checks, opsCheckTimeout, func(name string, err error) {
		s.log.Warn("agent not ready", "check", name, "err", err)
	})
	for _, r := range out.Checks {
		v := 1.0
		if !r.OK {
			v = 0
		}
		s.metrics.ready.WithLabelValues(r.Name).Set(v)
	}
	return out
}

func (s *Server) keysReady(context.Context) error {
	if s.unitKey == nil {
		return sluice.Errorf(sluice.EUnavailable, "no pseudonym key")
	}
	a := s.dept.Agent
	if a.TLSCert == "" && a.TLSKey == "" {
		return nil // an in-process agent (tests) serves no Flight listener
	}
	cert, err := tlsutil.LoadKeyPair(a.TLSCert, a.TLSKey)
	if err != nil {
		return err
	}
	if leaf := cert.Leaf; leaf != nil {
		if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return sluice.Errorf(sluice.EUnavailable, "the TLS certificate is valid from %s to %s", leaf.NotBefore, leaf.NotAfter)
		}
	}
	return nil
}

func writeOpsJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
