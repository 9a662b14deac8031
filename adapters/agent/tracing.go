package agent

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/planner"
)

// Tracing (docs/operations.md, "Traces"): the agent's spans — serving a
// fragment, each private-join step — are children of the broker's span
// that asked, through the W3C trace context the broker sends in gRPC
// metadata (adapters/tracing); on the broker's side the client below
// makes a span per call to the agent.

// WithTracerProvider makes the agent record its spans with tp instead of
// the provider its department file's agent.tracing section asks for
// (tests, or a process that set up OpenTelemetry itself).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// openTracing sets up the agent's tracer from the option or the
// configuration (off by default: a no-op tracer).
func (s *Server) openTracing(ctx context.Context) error {
	tp := s.opts.tracerProvider
	if tp == nil {
		p, shutdown, err := tracing.NewProvider(ctx, s.dept.Agent.Tracing, tracing.Options{
			Service:    "sluice-agent",
			Attributes: []attribute.KeyValue{tracing.AttrDepartment.String(s.dept.ID)},
		})
		if err != nil {
			return err
		}
		tp, s.traceShutdown = p, shutdown
	}
	s.tracer = tracing.Tracer(tp)
	return nil
}

// closeTracing flushes the spans not yet exported.
func (s *Server) closeTracing() error {
	if s.traceShutdown == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.traceShutdown(ctx)
	s.traceShutdown = nil
	return err
}

// startSpan starts one of the agent's server-side spans; f, when known,
// names the query, dataset and requesting department (never SQL or
// values).
func (s *Server) startSpan(ctx context.Context, name string, f *planner.Fragment) (context.Context, trace.Span) {
	t := s.tracer
	if t == nil {
		t = tracing.Tracer(nil)
	}
	attrs := []attribute.KeyValue{tracing.AttrDepartment.String(s.dept.ID)}
	attrs = append(attrs, fragmentAttrs(f)...)
	return t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// fragmentAttrs are a fragment's identifiers as span attributes.
func fragmentAttrs(f *planner.Fragment) []attribute.KeyValue {
	if f == nil {
		return nil
	}
	return []attribute.KeyValue{
		tracing.AttrQueryID.String(clipID(f.QueryID)),
		tracing.AttrDataset.String(clipID(f.Dataset)),
		tracing.AttrRequester.String(clipID(f.Requester.Department)),
	}
}

// clipID bounds an identifier taken from a request before it is validated.
func clipID(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// Fetch asks the agent to run f and returns the stream of its records. A
// refusal by the agent (denied, invalid, unknown dataset) is returned here.
// The call's span (sluice.agent.fetch) ends when the stream is released.
func (c *Client) Fetch(ctx context.Context, f *planner.Fragment) (*Stream, error) {
	ctx, span := c.startSpan(ctx, "sluice.agent.fetch", f)
	st, err := c.fetch(ctx, f)
	if err != nil {
		tracing.End(span, err)
		return nil, err
	}
	st.span = span
	return st, nil
}

// PSIBlind asks the agent to run f, whose first select item is the bare
// join key column keyColumn of key domain keyDomain, and to return its rows
// with the key blinded under a fresh secret. A refusal by the agent is
// returned here. The caller must call PSIClose when the join is done (the
// agent also drops idle sessions after its TTL). The call's span
// (sluice.psi.blind) ends when the stream is released.
func (c *Client) PSIBlind(ctx context.Context, f *planner.Fragment, keyColumn, keyDomain string) (*PSIStream, error) {
	ctx, span := c.startSpan(ctx, "sluice.psi.blind", f)
	ps, err := c.psiBlind(ctx, f, keyColumn, keyDomain)
	if err != nil {
		tracing.End(span, err)
		return nil, err
	}
	ps.span = span
	return ps, nil
}

// PSIReblind sends points (the other party's blinded keys; nil entries are
// kept as nil) to the agent and returns its secret applied to each, in
// order. A session answers one reblind only.
func (c *Client) PSIReblind(ctx context.Context, session string, points [][]byte) (out [][]byte, err error) {
	ctx, span := c.startSpan(ctx, "sluice.psi.reblind", nil, tracing.AttrKeys.Int(len(points)))
	defer func() { tracing.End(span, err) }()
	return c.psiReblind(ctx, session, points)
}

// startSpan starts the broker's span of a call to this agent, a child of
// the span in ctx (none when the request is not traced).
func (c *Client) startSpan(ctx context.Context, name string, f *planner.Fragment, extra ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs := append([]attribute.KeyValue{tracing.AttrDepartment.String(c.dept)}, fragmentAttrs(f)...)
	ctx, span := tracing.Start(ctx, name, append(attrs, extra...)...)
	return ctx, span
}

// endSpan ends the stream's span, if it has one, with its error.
func (s *Stream) endSpan() {
	if s.span != nil {
		tracing.End(s.span, s.err)
	}
}
