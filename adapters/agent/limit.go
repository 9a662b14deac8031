package agent

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The agent bounds its own concurrency, whatever the broker admits: a
// department's database and CPU serve the department first. At most
// maxStreams fragment streams and private-join exchanges run at once; up
// to as many again wait, each for at most maxWait (a query may hold one
// of the agent's streams while it asks for another, so waiting forever
// could deadlock queries against each other); beyond that the agent
// answers ResourceExhausted, and the broker reports the department as
// busy.

// defaultMaxStreams is the bound without configuration: four per core,
// enough to keep a database busy while streams wait on the network.
func defaultMaxStreams() int { return 4 * runtime.GOMAXPROCS(0) }

// maxWait bounds how long a stream waits for a slot.
const maxWait = 5 * time.Second

// WithMaxConcurrent bounds the streams the agent serves at once (n < 1:
// the default, four per CPU core; agent.max_concurrent in the department
// file).
func WithMaxConcurrent(n int) Option {
	return func(o *options) { o.maxStreams = n }
}

// streamLimiter is the agent's bound.
type streamLimiter struct {
	slots   chan struct{} // running
	waiting chan struct{} // waiting for a slot
	wait    time.Duration // the longest wait (maxWait)
}

func newStreamLimiter(n int) *streamLimiter {
	if n < 1 {
		n = defaultMaxStreams()
	}
	return &streamLimiter{slots: make(chan struct{}, n), waiting: make(chan struct{}, n), wait: maxWait}
}

// acquire takes a slot, waiting while the caller's context lasts, or
// refuses at once when too many already wait.
func (l *streamLimiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.waiting <- struct{}{}:
	default:
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("the agent is busy: %d requests are running and %d waiting, its limit (agent.max_concurrent); retry later", cap(l.slots), cap(l.waiting)))
	}
	defer func() { <-l.waiting }()
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-t.C:
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("the agent is busy: its %d streams (agent.max_concurrent) stayed taken for %s; retry later", cap(l.slots), l.wait))
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (l *streamLimiter) release() { <-l.slots }

// stream is the gRPC interceptor: the Flight streams that carry data
// (DoGet: fragments and blinded keys; DoExchange: reblinding) run under
// the bound. Actions (closing a private-join session, describing a
// table) are short and end work rather than start it: they go through.
func (l *streamLimiter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	switch info.FullMethod {
	case "/arrow.flight.protocol.FlightService/DoGet", "/arrow.flight.protocol.FlightService/DoExchange":
	default:
		return handler(srv, ss)
	}
	if err := l.acquire(ss.Context()); err != nil {
		return err
	}
	defer l.release()
	return handler(srv, ss)
}

// maxStreams is the configured bound: the option's, else the department
// file's agent.max_concurrent (0: the default).
func (s *Server) maxStreams() int {
	if s.opts.maxStreams > 0 {
		return s.opts.maxStreams
	}
	return s.dept.Agent.MaxConcurrent
}
