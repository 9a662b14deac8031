package broker

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/broker/audit"
)

// Traces (docs/operations.md, "Traces"): one trace per query. The
// statement (GetFlightInfo) is its root span, with the plan, the policy
// decision and the audit append below it; the fetch (DoGet) continues the
// same trace — the pending statement keeps the statement's span context —
// with the admission wait, each call to an agent (adapters/agent, which
// carries the trace context to the agent in gRPC metadata), the private
// join, the sandbox engine, the release and the result's audit append. The
// audit entries of the query carry the trace id.

// WithTracerProvider makes the broker record its spans with tp instead of
// the provider its configuration's tracing section asks for (tests, or a
// process that set up OpenTelemetry itself). Without either the tracer is
// a no-op.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.tracerProvider = tp }
}

// startStatement starts a statement's root span. A client's own trace
// context is not continued but linked: the trace id goes into the audit
// record, so the broker chooses it, never the caller.
func (s *Server) startStatement(ctx context.Context) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer)}
	if sc := tracing.Incoming(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return s.tracer.Start(ctx, "sluice.statement", opts...)
}

// startFetch starts a DoGet's span as a child of its statement's.
func (s *Server) startFetch(ctx context.Context, q *pendingQuery) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(tracing.AttrQueryID.String(q.queryID), tracing.AttrRequester.String(q.principal.Department))}
	if q.trace.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, q.trace)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return s.tracer.Start(ctx, "sluice.fetch", opts...)
}

// recordTraced is record with its own span; the entry takes the trace id
// of a sampled trace.
func (s *Server) recordTraced(ctx context.Context, e *audit.Entry) error {
	ctx, span := tracing.Start(ctx, "sluice.audit.append", tracing.AttrKind.String(e.Kind), tracing.AttrQueryID.String(e.QueryID))
	if e.TraceID == "" {
		e.TraceID = tracing.TraceID(ctx)
	}
	err := s.rec.Record(ctx, e)
	span.SetAttributes(tracing.AttrDecision.String(e.Decision))
	tracing.End(span, err)
	return err
}

// tracerFromConfig puts the tracer provider of the configuration's
// tracing section before opts (unless they set one) and returns the
// function that flushes and stops it, which Open's close function calls.
func tracerFromConfig(ctx context.Context, cfg *Config, opts []Option) ([]Option, func() error, error) {
	if configured(opts).tracerProvider != nil {
		return opts, func() error { return nil }, nil
	}
	tp, shutdown, err := tracing.NewProvider(ctx, cfg.Tracing, tracing.Options{Service: "sluice-broker"})
	if err != nil {
		return nil, nil, err
	}
	flush := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return shutdown(ctx)
	}
	return append([]Option{WithTracerProvider(tp)}, opts...), flush, nil
}
