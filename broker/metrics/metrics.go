// Package metrics is the broker's operational telemetry: its Prometheus
// metrics (one registry per broker, never the process-wide default, so
// several brokers in one process do not collide) and its health and
// readiness checks (health.go).
//
// Labels come only from small closed sets: an outcome, an audit entry
// kind, a department id. No SQL text, purpose, principal, dataset or value
// is ever a label; a label value outside its set is reported as "other".
// docs/operations.md lists every metric.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// Outcomes of a query, the values of the outcome label.
const (
	OutcomeOK        = "ok"        // answered
	OutcomeDenied    = "denied"    // refused by the policy or the differencing guard
	OutcomeError     = "error"     // failed: invalid, unsupported, an agent or store unavailable, …
	OutcomeCancelled = "cancelled" // the client cancelled or its deadline passed
)

// Broker holds a broker's metrics. A nil *Broker records nothing.
type Broker struct {
	reg *prometheus.Registry

	queries      *prometheus.CounterVec
	queryTime    *prometheus.HistogramVec
	policyTime   *prometheus.HistogramVec
	auditTime    *prometheus.HistogramVec
	auditFails   *prometheus.CounterVec
	fragRows     *prometheus.CounterVec
	fragBytes    *prometheus.CounterVec
	psiKeys      *prometheus.CounterVec
	psiTime      prometheus.Histogram
	dpReserved   *prometheus.CounterVec
	dpRefunded   *prometheus.CounterVec
	readyChecks  *prometheus.GaugeVec
	queueWait    *prometheus.HistogramVec // admission.go
	buildVersion string
}

// latencyBuckets span a policy decision (sub-millisecond) to a large
// private join (a minute).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// New makes a broker's metrics in a registry of their own, with the Go
// runtime's and the process's collectors (resident memory includes the
// sandbox engine's, which runs in the broker's process).
func New() *Broker {
	m := &Broker{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_queries_total",
		Help: "Statements finished, by outcome (ok, denied, error, cancelled) and the requesting principal's department.",
	}, []string{"outcome", "department"})
	m.queryTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_broker_query_duration_seconds",
		Help:    "Time a statement spent in the broker (planning and decision, then fetching and releasing), by outcome and requesting department.",
		Buckets: latencyBuckets,
	}, []string{"outcome", "department"})
	m.policyTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_broker_policy_decision_seconds",
		Help:    "Time the policy (OPA) took to decide a statement, by outcome (allow, deny, error).",
		Buckets: latencyBuckets,
	}, []string{"outcome"})
	m.auditTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_broker_audit_append_seconds",
		Help:    "Time to append one entry to the audit log (group commit included), by entry kind.",
		Buckets: latencyBuckets,
	}, []string{"kind"})
	m.auditFails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_audit_append_failures_total",
		Help: "Audit appends that failed (the request was refused: no entry, no data), by entry kind.",
	}, []string{"kind"})
	m.fragRows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_fragment_rows_total",
		Help: "Rows received from department agents, by providing department.",
	}, []string{"department"})
	m.fragBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_fragment_bytes_total",
		Help: "Bytes (canonical encoding, as digested for the audit entry) received from department agents, by providing department.",
	}, []string{"department"})
	m.psiKeys = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_psi_keys_total",
		Help: "Blinded join keys received in private joins, by providing department.",
	}, []string{"department"})
	m.psiTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sluice_broker_psi_duration_seconds",
		Help:    "Time to blind and re-blind both sides of a private join.",
		Buckets: latencyBuckets,
	})
	m.dpReserved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_dp_epsilon_reserved_total",
		Help: "Differential-privacy budget (epsilon) reserved before queries ran, by grantee department (user grantees: \"user\").",
	}, []string{"department"})
	m.dpRefunded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_dp_epsilon_refunded_total",
		Help: "Differential-privacy budget (epsilon) given back for queries that released nothing, by grantee department; spent = reserved - refunded.",
	}, []string{"department"})
	m.readyChecks = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_broker_ready",
		Help: "1 when the named readiness check (store, audit, keys, agents) passed at the last /readyz, else 0.",
	}, []string{"check"})
	for _, c := range []prometheus.Collector{m.queries, m.queryTime, m.policyTime, m.auditTime, m.auditFails,
		m.fragRows, m.fragBytes, m.psiKeys, m.psiTime, m.dpReserved, m.dpRefunded, m.readyChecks} {
		f(c)
	}
	return m
}

// Registry is the broker's registry (tests gather from it).
func (m *Broker) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Broker) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// QueryDone counts a finished statement and its time in the broker.
func (m *Broker) QueryDone(outcome, department string, d time.Duration) {
	if m == nil {
		return
	}
	outcome, department = Outcome(outcome), Department(department)
	m.queries.WithLabelValues(outcome, department).Inc()
	m.queryTime.WithLabelValues(outcome, department).Observe(d.Seconds())
}

// PolicyDecided observes the time of one policy decision.
func (m *Broker) PolicyDecided(allow bool, err error, d time.Duration) {
	if m == nil {
		return
	}
	o := "deny"
	switch {
	case err != nil:
		o = "error"
	case allow:
		o = "allow"
	}
	m.policyTime.WithLabelValues(o).Observe(d.Seconds())
}

// Fragment counts what one department's agent delivered.
func (m *Broker) Fragment(department string, rows, bytes int64) {
	if m == nil {
		return
	}
	d := Department(department)
	m.fragRows.WithLabelValues(d).Add(float64(max(rows, 0)))
	m.fragBytes.WithLabelValues(d).Add(float64(max(bytes, 0)))
}

// PSI observes one private join: the blinded keys each side's department
// sent, and the time.
func (m *Broker) PSI(d time.Duration, dept1 string, keys1 int, dept2 string, keys2 int) {
	if m == nil {
		return
	}
	m.psiKeys.WithLabelValues(Department(dept1)).Add(float64(keys1))
	m.psiKeys.WithLabelValues(Department(dept2)).Add(float64(keys2))
	m.psiTime.Observe(d.Seconds())
}

// DPReserved counts epsilon reserved from a grantee's budget.
func (m *Broker) DPReserved(grantee string, epsilon float64) {
	if m == nil || epsilon <= 0 {
		return
	}
	m.dpReserved.WithLabelValues(granteeDept(grantee)).Add(epsilon)
}

// DPRefunded counts epsilon given back to a grantee's budget.
func (m *Broker) DPRefunded(grantee string, epsilon float64) {
	if m == nil || epsilon <= 0 {
		return
	}
	m.dpRefunded.WithLabelValues(granteeDept(grantee)).Add(epsilon)
}

// Appender is what the audit log offers the recorder.
type Appender interface {
	Append(ctx context.Context, e *audit.Entry) error
}

// AuditLog wraps an audit log so that every append is timed and every
// failure counted, whoever appends (queries, the admin API, alerts).
func (m *Broker) AuditLog(l Appender) Appender {
	if m == nil || l == nil {
		return l
	}
	return &timedLog{l: l, m: m}
}

type timedLog struct {
	l Appender
	m *Broker
}

func (t *timedLog) Append(ctx context.Context, e *audit.Entry) error {
	start := time.Now()
	kind := Kind(e.Kind)
	err := t.l.Append(ctx, e)
	t.m.auditTime.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		t.m.auditFails.WithLabelValues(kind).Inc()
	}
	return err
}

// OutcomeOf classifies how a statement ended.
func OutcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCancelled
	case sluice.ErrorCode(err) == sluice.EDenied:
		return OutcomeDenied
	}
	return OutcomeError
}

// Outcome keeps an outcome label inside its set.
func Outcome(o string) string {
	switch o {
	case OutcomeOK, OutcomeDenied, OutcomeError, OutcomeCancelled:
		return o
	}
	return "other"
}

// Kind keeps an audit kind label inside its set.
func Kind(k string) string {
	switch k {
	case audit.KindQuery, audit.KindResult, audit.KindMetadata, audit.KindAuth, audit.KindFragment, audit.KindAlert, audit.KindAdmin:
		return k
	}
	return "other"
}

// Department keeps a department label to what a department id can be (an
// identifier, as the catalog requires); "none" for a principal without one.
func Department(d string) string {
	switch {
	case d == "":
		return "none"
	case sluice.ValidIdentifier(d):
		return d
	}
	return "other"
}

// granteeDept is the department of a grant's grantee (dept:<id>); a grant
// to one user is labelled "user", never with the user's name.
func granteeDept(g string) string {
	if len(g) > 5 && g[:5] == "dept:" {
		return Department(g[5:])
	}
	return "user"
}

type ctxKey struct{}

// NewContext carries m to code that has no server at hand (the decision,
// shared with `sluice policy explain`, which records nothing).
func NewContext(ctx context.Context, m *Broker) context.Context {
	return context.WithValue(ctx, ctxKey{}, m)
}

// FromContext is the metrics NewContext put in ctx, or nil (which records
// nothing).
func FromContext(ctx context.Context) *Broker {
	m, _ := ctx.Value(ctxKey{}).(*Broker)
	return m
}
