package broker

import (
	"context"
	"crypto/tls"
	"net/http"
	"slices"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/metrics"
	"github.com/sluice-gov/sluice/broker/state"
)

// readiness is what the broker's /readyz checks: the workflow store
// answers, the audit log can be written (its write lock taken and the
// chain head found where this broker left it), the TLS certificate is
// valid and the checkpoint keys load, and every department's agent
// answers a ping.
type readiness struct {
	store interface {
		Meta(ctx context.Context, key string) (string, bool, error)
	}
	audit interface {
		Ready(ctx context.Context) error
	}
	cert *tls.Certificate
	cfg  *Config
	src  state.Source
	now  func() time.Time
}

func (r *readiness) checks() []metrics.Check {
	out := []metrics.Check{
		{Name: "store", Problem: "the workflow store does not answer", Run: func(ctx context.Context) error {
			_, _, err := r.store.Meta(ctx, "readiness")
			return err
		}},
		{Name: "audit", Problem: "the audit log cannot be written: queries are refused until it can", Run: r.audit.Ready},
		{Name: "keys", Problem: "the TLS certificate is not valid now, or a checkpoint key does not load", Run: r.keys},
	}
	st := r.src.Current()
	depts := make([]string, 0, len(st.Agents))
	for d := range st.Agents {
		depts = append(depts, d)
	}
	slices.Sort(depts)
	for _, d := range depts {
		c := st.Agents[d]
		out = append(out, metrics.Check{Name: "agent:" + metrics.Department(d), Problem: "the agent of department " + metrics.Department(d) + " does not answer",
			Run: func(ctx context.Context) error {
				if p, ok := c.(interface{ Ping(context.Context) error }); ok {
					return p.Ping(ctx)
				}
				return nil
			}})
	}
	return out
}

func (r *readiness) keys(context.Context) error {
	if leaf := r.cert.Leaf; leaf != nil {
		now := r.now()
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return sluice.Errorf(sluice.EUnavailable, "the broker's TLS certificate is valid from %s to %s", leaf.NotBefore, leaf.NotAfter)
		}
	}
	_, err := r.cfg.AuditPublicKeys()
	return err
}

// opsHandlers are the admin listener's health, readiness and metrics
// endpoints.
func opsHandlers(m *metrics.Broker, h *metrics.Health) (healthz, readyz, metricsH http.Handler) {
	return http.HandlerFunc(metrics.ServeHealthz), http.HandlerFunc(h.ServeReadyz), m.Handler()
}
