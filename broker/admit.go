package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/broker/admission"
)

// Admission control (broker/admission): an allowed query's work — the
// agent's stream, or the private joins and the sandbox — starts only when
// its cost class has a free slot. The ticket is issued as before; the
// wait, or the early "busy", happens when the client fetches it (DoGet).

// AdmissionConfig is the admission section of the broker's configuration:
// limits per cost class. Zero fields take the defaults (DefaultAdmission).
type AdmissionConfig struct {
	Single ClassLimits `yaml:"single"`
	Cross  ClassLimits `yaml:"cross"`
}

// ClassLimits bound one cost class.
type ClassLimits struct {
	// Concurrency is how many queries of the class run at once.
	Concurrency int `yaml:"concurrency"`
	// Queue is how many more may wait; beyond it the broker answers
	// ResourceExhausted with a retry delay.
	Queue int `yaml:"queue"`
	// PerPrincipal bounds one user's waiting queries.
	PerPrincipal int `yaml:"per_principal"`
	// Expected is the run time assumed for a query of the class until the
	// broker has measured one (0: no early deadline refusals until then).
	Expected time.Duration `yaml:"expected"`
}

// DefaultAdmission are the limits without configuration: cross-department
// queries, CPU-bound in the private join, one per core; relayed
// single-department streams, bound by the agents, eight per core.
func DefaultAdmission() AdmissionConfig {
	n := runtime.GOMAXPROCS(0)
	return AdmissionConfig{
		Single: ClassLimits{Concurrency: 8 * n, Queue: 256, PerPrincipal: 64},
		Cross:  ClassLimits{Concurrency: n, Queue: 64, PerPrincipal: 32},
	}
}

// withDefaults fills zero fields from DefaultAdmission.
func (a AdmissionConfig) withDefaults() AdmissionConfig {
	d := DefaultAdmission()
	fill := func(c *ClassLimits, d ClassLimits) {
		if c.Concurrency == 0 {
			c.Concurrency = d.Concurrency
		}
		if c.Queue == 0 {
			c.Queue = d.Queue
		}
		if c.PerPrincipal == 0 {
			c.PerPrincipal = min(d.PerPrincipal, c.Queue)
		}
	}
	fill(&a.Single, d.Single)
	fill(&a.Cross, d.Cross)
	return a
}

// check reports the first bad value, naming its configuration field.
func (a AdmissionConfig) check() (field, problem string) {
	for _, c := range []struct {
		name string
		l    ClassLimits
	}{{"single", a.Single}, {"cross", a.Cross}} {
		switch {
		case c.l.Concurrency < 0:
			return "admission." + c.name + ".concurrency", "must not be negative (0 means the default)"
		case c.l.Queue < 0:
			return "admission." + c.name + ".queue", "must not be negative (0 means the default)"
		case c.l.PerPrincipal < 0:
			return "admission." + c.name + ".per_principal", "must not be negative (0 means the default)"
		case c.l.PerPrincipal > 0 && c.l.Queue > 0 && c.l.PerPrincipal > c.l.Queue:
			return "admission." + c.name + ".per_principal", fmt.Sprintf("is %d, more than the queue (%d)", c.l.PerPrincipal, c.l.Queue)
		case c.l.Expected < 0:
			return "admission." + c.name + ".expected", "must not be negative"
		}
	}
	return "", ""
}

func (a AdmissionConfig) controller() (*admission.Controller, error) {
	a = a.withDefaults()
	lim := func(c ClassLimits) admission.Limits {
		return admission.Limits{Concurrency: c.Concurrency, Queue: c.Queue, PerPrincipal: c.PerPrincipal, Initial: c.Expected}
	}
	return admission.New(map[admission.Class]admission.Limits{admission.Single: lim(a.Single), admission.Cross: lim(a.Cross)})
}

// WithAdmission sets the admission limits (zero fields: defaults).
func WithAdmission(a AdmissionConfig) Option {
	return func(s *Server) { s.admissionCfg = &a }
}

// Admission is the broker's admission controller (for status and metrics).
func (s *Server) Admission() *admission.Controller { return s.admission }

// acquire waits for a slot of q's class. A refusal is an EResource error
// carrying the retry delay (toStatus sends it as RetryInfo); a client
// that went away gets its own cancellation.
func (s *Server) acquire(ctx context.Context, q *pendingQuery) (*admission.Slot, error) {
	class := admission.Single
	if q.cross != nil {
		class = admission.Cross
	}
	_, wspan := tracing.Start(ctx, "sluice.admission.wait", tracing.AttrClass.String(string(class)))
	slot, err := s.admission.Acquire(ctx, admission.Request{Class: class, Principal: q.principal.Name, Department: q.principal.Department})
	tracing.End(wspan, err)
	var busy *admission.Busy
	switch {
	case err == nil:
		s.metrics.QueueWaited(class, slot.Waited)
		return slot, nil
	case errors.As(err, &busy):
		s.log.Info("query refused: the broker is busy", "query_id", q.queryID, "class", string(class), "reason", busy.Reason, "ahead", busy.Ahead, "retry_after", busy.RetryAfter)
		return nil, &sluice.Error{Code: sluice.EResource, Message: busy.Error(), Err: busy}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	default:
		return nil, sluice.Errorf(sluice.EInternal, "admission: %v", err)
	}
}
