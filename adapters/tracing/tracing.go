// Package tracing is Sluice's OpenTelemetry tracing, shared by the broker
// and the department agents: the tracer provider a `tracing` configuration
// section asks for, the W3C trace context (traceparent) carried in gRPC
// metadata from the broker to an agent, and the few helpers the query path
// starts and ends its spans with (docs/operations.md, "Traces").
//
// It lives under adapters/ because both sides of the trust boundary use it
// and an agent must not import anything under broker/; it imports nothing
// of Sluice but the domain package.
//
// What a span may carry: query ids, department ids, dataset names, cost
// classes, audit entry kinds, counts and outcomes — what the audit entry
// already holds in clear. Never SQL text, values, purposes, principals or
// tokens; a span's error status carries the Sluice error code ("denied",
// "unavailable"), not the message, which can quote the statement.
package tracing

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
)

// Scope is the instrumentation scope of every Sluice span.
const Scope = "github.com/sluice-gov/sluice"

// Span attribute keys. The values are identifiers the audit entry holds in
// clear (see the package comment).
const (
	AttrQueryID    = attribute.Key("sluice.query_id")
	AttrDepartment = attribute.Key("sluice.department") // the department whose agent serves (or, on a statement, the requester's)
	AttrRequester  = attribute.Key("sluice.requester_department")
	AttrDataset    = attribute.Key("sluice.dataset") // department.dataset
	AttrDecision   = attribute.Key("sluice.decision")
	AttrKind       = attribute.Key("sluice.audit.kind")
	AttrClass      = attribute.Key("sluice.admission.class")
	AttrRows       = attribute.Key("sluice.rows")
	AttrKeys       = attribute.Key("sluice.psi.keys")
	AttrFragments  = attribute.Key("sluice.fragments")
)

// Decision is the attribute of a policy decision: allow or deny.
func Decision(allow bool) attribute.KeyValue {
	if allow {
		return AttrDecision.String("allow")
	}
	return AttrDecision.String("deny")
}

// Options name the process a provider traces.
type Options struct {
	// Service is the resource's service.name: sluice-broker or
	// sluice-agent.
	Service string
	// Attributes are added to the resource (an agent's department).
	Attributes []attribute.KeyValue
	// Stdout is where exporter stdout writes (default os.Stdout).
	Stdout io.Writer
}

// NewProvider returns the tracer provider cfg asks for and the function
// that flushes and stops it. With the exporter off (the default) it is the
// no-op provider: spans cost a context lookup and nothing is recorded.
func NewProvider(ctx context.Context, cfg sluice.TracingConfig, o Options) (trace.TracerProvider, func(context.Context) error, error) {
	if field, problem := cfg.Check(); field != "" {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "tracing.%s %s", field, problem)
	}
	if !cfg.Enabled() {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Exporter {
	case sluice.TraceExporterStdout:
		w := o.Stdout
		if w == nil {
			w = os.Stdout
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	case sluice.TraceExporterOTLP:
		var opts []otlptracegrpc.Option
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		// New does not connect: a collector that is down loses spans
		// (the batcher drops them), never a query.
		exp, err = otlptracegrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "tracing: cannot create the %s exporter: %v", cfg.Exporter, err)
	}
	service := o.Service
	if service == "" {
		service = "sluice"
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(append([]attribute.KeyValue{attribute.String("service.name", service)}, o.Attributes...)...))
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInternal, "tracing: resource: %v", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// A trace starts sampled at the ratio; a span with a parent (an
		// agent's, under the broker's) follows the parent's decision.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
	)
	return tp, tp.Shutdown, nil
}

// Tracer is the Sluice tracer of tp; nil means the no-op provider.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(Scope)
}

// Start starts a child of the span in ctx with the same provider: a
// request that is not traced (no span, or the no-op provider) gets a no-op
// span, so the code below the broker's and agent's entry points needs no
// tracer of its own.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return trace.SpanFromContext(ctx).TracerProvider().Tracer(Scope).Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends span (nil: none), marking it failed when err is not nil. The status
// carries the Sluice error code only (see the package comment).
func End(span trace.Span, err error) {
	if span == nil {
		return
	}
	Fail(span, err)
	span.End()
}

// Fail marks span failed with err's code, if err is not nil.
func Fail(span trace.Span, err error) {
	if err == nil || span == nil || !span.IsRecording() {
		return
	}
	code := sluice.ErrorCode(err)
	var se *sluice.Error
	if st, ok := status.FromError(err); ok && !errors.As(err, &se) {
		// A status already on its way to the client: its gRPC code.
		code = strings.ToLower(st.Code().String())
	}
	switch {
	case errors.Is(err, context.Canceled):
		code = "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		code = "deadline_exceeded"
	case code == "":
		code = "error"
	}
	span.SetStatus(codes.Error, code)
}

// TraceID is the hex trace id of the span in ctx when that span is
// sampled (its trace is exported), else "": an audit entry names only a
// trace that can be found.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	return sc.TraceID().String()
}
