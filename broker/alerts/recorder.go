package alerts

import (
	"context"
	"log/slog"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// Appender is where entries are written: the audit log.
type Appender interface {
	Append(ctx context.Context, e *audit.Entry) error
}

// Recorder is the one way the broker writes its audit log: the Flight SQL
// service, the admin API and the grant watch all record through it. Each
// entry is appended, then the alert rules look at it; an alert is itself an
// entry.
type Recorder struct {
	log    Appender
	rules  *Engine // nil: no alert rules
	logger *slog.Logger
}

// NewRecorder records into log and raises the alerts of rules (nil: none);
// logger receives what cannot be recorded and the alerts raised (nil:
// discarded).
func NewRecorder(log Appender, rules *Engine, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{log: log, rules: rules, logger: logger}
}

// Record appends an entry to the audit log and then lets the alert rules
// look at it. Failing to write an alert does not undo the request it is
// about; failing to write e is the caller's error (fail closed).
func (r *Recorder) Record(ctx context.Context, e *audit.Entry) error {
	if err := r.log.Append(ctx, e); err != nil {
		// The request is refused (fail closed); the operator learns why
		// here, with the cause (never a protected value: entries hold
		// none beyond what the audit record keeps).
		r.logger.Error("audit append failed: the request is refused", "kind", e.Kind, "query_id", e.QueryID, "principal", e.Principal, "err", err)
		return err
	}
	if r.rules != nil {
		for _, a := range r.rules.Observe(*e) {
			r.Raise(ctx, a)
		}
	}
	return nil
}

// Raise writes an alert into the audit log and the operational log.
func (r *Recorder) Raise(ctx context.Context, a Alert) {
	if err := r.log.Append(context.WithoutCancel(ctx), a.Entry()); err != nil {
		r.logger.Error("audit append of an alert failed", "rule", a.Rule, "err", err)
		return
	}
	r.logger.Warn("alert", "rule", a.Rule, "principal", a.Principal, "message", a.Message)
}

// WatchGrants raises an alert for each grant about to expire, at start and
// then hourly, until ctx ends. grants gives the grants in force each time.
func (r *Recorder) WatchGrants(ctx context.Context, now func() time.Time, grants func() []sluice.Grant) {
	if r.rules == nil {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		for _, a := range r.rules.ExpiringGrants(now(), grants()) {
			r.Raise(ctx, a)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
