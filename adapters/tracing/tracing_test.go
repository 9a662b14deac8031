package tracing

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
)

// TestPropagation: the trace context of the span in a client's context
// arrives in the server's as the remote parent; untraced calls carry
// nothing, and two traceparent headers are not chosen between.
func TestPropagation(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, span := Tracer(tp).Start(context.Background(), "client")
	defer span.End()

	out := Outgoing(ctx)
	md, _ := metadata.FromOutgoingContext(out)
	if len(md.Get("traceparent")) != 1 {
		t.Fatalf("outgoing metadata %v: want one traceparent", md)
	}
	in := metadata.NewIncomingContext(context.Background(), md)
	sc := Incoming(in)
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsSampled() {
		t.Fatalf("incoming span context %+v, want the client's span %+v", sc, span.SpanContext())
	}
	// A span started under it on the server is its child.
	_, child := Tracer(tp).Start(WithIncoming(in), "server")
	child.End()
	got := exp.GetSpans()
	if len(got) != 1 || got[0].Parent.SpanID() != span.SpanContext().SpanID() || got[0].SpanContext.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("server span %+v is not the client span's child", got)
	}

	if _, ok := metadata.FromOutgoingContext(Outgoing(context.Background())); ok {
		t.Error("an untraced call got outgoing metadata")
	}
	if Incoming(context.Background()).IsValid() || Incoming(metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", "garbage"))).IsValid() {
		t.Error("a missing or malformed traceparent gave a span context")
	}
	two := metadata.Join(md, metadata.Pairs("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
	if Incoming(metadata.NewIncomingContext(context.Background(), two)).IsValid() {
		t.Error("two traceparent headers: one was chosen")
	}
}

// TestTraceID: the audit entry names only a sampled trace.
func TestTraceID(t *testing.T) {
	on := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	ctx, span := Tracer(on).Start(context.Background(), "s")
	defer span.End()
	if id := TraceID(ctx); len(id) != 32 || id != span.SpanContext().TraceID().String() {
		t.Fatalf("TraceID %q, want the span's", id)
	}
	off := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	ctx, span2 := Tracer(off).Start(context.Background(), "s")
	defer span2.End()
	if id := TraceID(ctx); id != "" {
		t.Fatalf("TraceID of a trace not sampled: %q", id)
	}
	if TraceID(context.Background()) != "" {
		t.Fatal("TraceID without a span")
	}
	ctx, span3 := Tracer(nil).Start(context.Background(), "s")
	defer span3.End()
	if TraceID(ctx) != "" {
		t.Fatal("TraceID of the no-op tracer")
	}
}

// TestStartFollowsTheParent: Start uses the provider of the span in the
// context, so untraced requests get no-op spans.
func TestStartFollowsTheParent(t *testing.T) {
	_, s := Start(context.Background(), "orphan")
	if s.IsRecording() || s.SpanContext().IsValid() {
		t.Fatal("a span without a traced parent records")
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, root := Tracer(tp).Start(context.Background(), "root")
	_, child := Start(ctx, "child", AttrQueryID.String("q1"))
	End(child, sluice.Errorf(sluice.EDenied, "denied by policy: SELECT secret FROM t"))
	root.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "child" || spans[0].Parent.SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("spans %+v", spans)
	}
	// The status says the code, never the message (it can quote SQL).
	if spans[0].Status.Code != codes.Error || spans[0].Status.Description != "denied" {
		t.Fatalf("status %+v, want Error with the code only", spans[0].Status)
	}
	End(nil, errors.New("x")) // no span: nothing to do, no panic
}

// TestNewProvider: off is the no-op provider; stdout writes spans; bad
// sections are refused.
func TestNewProvider(t *testing.T) {
	ctx := context.Background()
	tp, shutdown, err := NewProvider(ctx, sluice.TracingConfig{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Fatalf("tracing off gave %T, want the no-op provider", tp)
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	half := 1.0
	tp, shutdown, err = NewProvider(ctx, sluice.TracingConfig{Exporter: "stdout", SampleRatio: &half}, Options{Service: "sluice-test", Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	_, span := Tracer(tp).Start(ctx, "sluice.statement", trace.WithAttributes(AttrQueryID.String("q-42")))
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, `"sluice.statement"`) || !strings.Contains(out, "q-42") || !strings.Contains(out, "sluice-test") {
		t.Fatalf("stdout exporter wrote %q", out)
	}
	tp, shutdown, err = NewProvider(ctx, sluice.TracingConfig{Exporter: "otlp", Endpoint: "127.0.0.1:4317", Insecure: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(*sdktrace.TracerProvider); !ok {
		t.Fatalf("otlp gave %T", tp)
	}
	sctx, cancel := context.WithTimeout(ctx, 0)
	cancel()
	_ = shutdown(sctx) // nothing listens; shutting down must not hang
	if _, _, err := NewProvider(ctx, sluice.TracingConfig{Exporter: "zipkin"}, Options{}); err == nil || !strings.Contains(err.Error(), "tracing.exporter") {
		t.Fatalf("bad exporter: %v", err)
	}
}
