package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The W3C trace context (https://www.w3.org/TR/trace-context/) travels in
// gRPC metadata under the header names of the specification. The
// propagator is used directly, not through the process-wide global one, so
// Sluice's propagation does not depend on what else the process set.
var propagator = propagation.TraceContext{}

const traceparent = "traceparent"

// mdCarrier adapts gRPC metadata to the propagator.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) == 1 {
		return v[0]
	}
	// None, or several: a second traceparent is not silently chosen
	// between (the header rules of docs/architecture.md, section 1).
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Outgoing adds the trace context of the span in ctx to the outgoing gRPC
// metadata; ctx is returned as it is when it holds no valid span context
// (an untraced request pays nothing).
func Outgoing(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	md := metadata.MD{}
	propagator.Inject(ctx, mdCarrier(md))
	kv := make([]string, 0, 2*len(md))
	for k, vs := range md {
		for _, v := range vs {
			kv = append(kv, k, v)
		}
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// Incoming returns the remote span context the caller sent in the incoming
// gRPC metadata (invalid when there is none, or it is malformed).
func Incoming(ctx context.Context) trace.SpanContext {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(md.Get(traceparent)) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), mdCarrier(md)))
}

// WithIncoming puts the caller's trace context into ctx as the remote
// parent of the spans started below it.
func WithIncoming(ctx context.Context) context.Context {
	if sc := Incoming(ctx); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// UnaryClient and StreamClient carry the trace context of each call's
// context to the server (the broker's connections to agents):
// grpc.WithChainUnaryInterceptor(tracing.UnaryClient) and
// grpc.WithChainStreamInterceptor(tracing.StreamClient).
func UnaryClient(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(Outgoing(ctx), method, req, reply, cc, opts...)
}

// StreamClient: see UnaryClient.
func StreamClient(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(Outgoing(ctx), desc, cc, method, opts...)
}

// UnaryServer and StreamServer put the caller's trace context into each
// call's context (the agent's server): the agent's spans become children
// of the broker's.
func UnaryServer(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(WithIncoming(ctx), req)
}

// StreamServer: see UnaryServer.
func StreamServer(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	if nctx := WithIncoming(ctx); nctx != ctx {
		ss = &tracedStream{ServerStream: ss, ctx: nctx}
	}
	return handler(srv, ss)
}

type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *tracedStream) Context() context.Context { return s.ctx }
