package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/planner"
)

const (
	// maxTicketBytes bounds a fragment: real ones are a few KiB, and the
	// JSON decoder should never be handed an unbounded hostile input.
	maxTicketBytes = 1 << 20
	// maxRecvMsgBytes is what the agent accepts in one message (tickets,
	// descriptors, actions); maxSendMsgBytes leaves room for wide batches.
	maxRecvMsgBytes = 2 << 20
	maxSendMsgBytes = 64 << 20

	actionPing    = "ping"
	actionCatalog = "catalog"

	// reasonHeader carries a denial's reasons in the trailer, one value
	// each, so the broker can explain the denial as the agent saw it.
	reasonHeader = "x-sluice-reason"
	// codeHeader carries the sluice error code, which is finer than the
	// gRPC code (several sluice codes share Internal).
	codeHeader = "x-sluice-code"
)

// Serve serves the agent's Flight service on lis with TLS from the
// department's agent certificate, accepting only clients whose certificate
// fingerprint is in dept.Agent.BrokerFingerprints. When ctx ends it stops
// accepting calls, lets running streams finish for the shutdown timeout,
// then closes them, and returns nil.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	a := s.dept.Agent
	// Without pinned brokers anyone who can reach the port could claim to
	// be the owner department in a fragment: refuse to start.
	if len(a.BrokerFingerprints) == 0 {
		_ = lis.Close()
		return sluice.Errorf(sluice.EInvalid,
			"agent of department %s: agent.broker_fingerprints is empty; pin the broker's client certificate (sluice prints its fingerprint)", s.dept.ID)
	}
	cert, err := tlsutil.LoadKeyPair(a.TLSCert, a.TLSKey)
	if err != nil {
		_ = lis.Close()
		return &sluice.Error{Code: sluice.EInvalid, Message: "agent of department " + s.dept.ID + ": " + err.Error(), Err: err}
	}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsutil.ServerConfig(cert, a.BrokerFingerprints))),
		grpc.MaxRecvMsgSize(maxRecvMsgBytes),
		grpc.MaxSendMsgSize(maxSendMsgBytes),
		// Must admit the client's keepalive pings (see Dial), or the
		// server would answer them with GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ConnectionTimeout(10*time.Second),
		// The broker's trace context first, so every handler sees it.
		grpc.ChainUnaryInterceptor(tracing.UnaryServer),
		grpc.ChainStreamInterceptor(tracing.StreamServer, newStreamLimiter(s.maxStreams()).stream),
	)
	flight.RegisterFlightServiceServer(gs, &flightService{s: s})

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	s.log.Info("agent serving", "address", lis.Addr().String())

	select {
	case err := <-errc:
		if err == nil || errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return &sluice.Error{Code: sluice.EUnavailable, Message: "agent of department " + s.dept.ID + " stopped serving: " + err.Error(), Err: err}
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.opts.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.log.Warn("agent shutdown timed out; closing running streams")
		// Stop closes every connection at once, which is what ends the
		// broker's streams, but then waits for handlers to return; a
		// handler stuck in a database call that ignores its context must
		// not keep Serve from returning.
		go gs.Stop()
		select {
		case <-stopped:
		case <-time.After(s.opts.shutdownTimeout + time.Second):
			s.log.Error("agent stopped with fragment handlers still running")
			return nil
		}
	}
	<-errc
	s.log.Info("agent stopped")
	return nil
}

// flightService is the Flight face of a Server. Only DoGet, GetSchema and
// DoAction are implemented; the embedded base answers Unimplemented to the
// rest.
type flightService struct {
	flight.BaseFlightServer
	s *Server
}

// decodeFragment parses a ticket or command strictly: unknown fields are
// refused, because an obligation the agent does not understand must not be
// silently dropped.
func decodeFragment(raw []byte) (*planner.Fragment, error) {
	if len(raw) == 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "the ticket is empty; it must hold a fragment as JSON")
	}
	if len(raw) > maxTicketBytes {
		return nil, sluice.Errorf(sluice.EInvalid, "the ticket is %d bytes; fragments are limited to %d", len(raw), maxTicketBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f planner.Fragment
	if err := dec.Decode(&f); err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "the ticket is not a valid fragment: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, sluice.Errorf(sluice.EInvalid, "the ticket has data after the fragment")
	}
	return &f, nil
}

func (fs *flightService) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) (err error) {
	ctx := stream.Context()
	f, err := decodeFragment(tkt.GetTicket())
	if err != nil {
		return fs.s.statusError(ctx, err)
	}
	ctx, span := fs.s.startSpan(ctx, "sluice.agent.fragment", f)
	defer func() { tracing.End(span, err) }()
	sink := fs.newSink(ctx, stream)
	onSchema := func(sc *arrow.Schema) error { sink.start(sc); return nil }
	var rep execReport
	if _, err := fs.s.execute(ctx, f, onSchema, sink.emit, &rep); err != nil {
		// The writer is deliberately not closed: the error status must be
		// the last thing the reader sees, never a clean end of stream.
		return fs.s.statusError(ctx, err)
	}
	// Close sends the schema when no row was written.
	if err := sink.close(); err != nil {
		return fs.s.statusError(ctx, err)
	}
	// The suppressed-group count travels in the trailer: it is known only
	// once the last group has been read, and the trailer arrives with the
	// OK status, so a cut stream can never carry a count.
	if md := rep.trailer(); md != nil {
		if err := grpc.SetTrailer(ctx, md); err != nil {
			return fs.s.statusError(ctx, sluice.Errorf(sluice.EInternal, "set the trailer: %v", err))
		}
	}
	return nil
}

// recordSink writes a fragment's records to a Flight stream once the
// schema is known; DoGet and the PSI exchange share it.
type recordSink struct {
	ctx    context.Context
	stream flight.DataStreamWriter
	hook   func(context.Context)
	w      *flight.Writer
}

func (fs *flightService) newSink(ctx context.Context, stream flight.DataStreamWriter) *recordSink {
	return &recordSink{ctx: ctx, stream: stream, hook: fs.s.emitHook}
}

func (k *recordSink) start(sc *arrow.Schema) {
	k.w = flight.NewRecordWriter(k.stream, ipc.WithSchema(sc), ipc.WithAllocator(memory.DefaultAllocator))
}

func (k *recordSink) emit(rec arrow.Record) error {
	if k.hook != nil {
		k.hook(k.ctx)
	}
	return k.w.Write(rec)
}

func (k *recordSink) close() error { return k.w.Close() }

func (fs *flightService) GetSchema(ctx context.Context, desc *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	if desc.GetType() != flight.DescriptorCMD {
		return nil, fs.s.statusError(ctx, sluice.Errorf(sluice.EInvalid, "GetSchema needs a command descriptor holding a fragment as JSON"))
	}
	f, err := decodeFragment(desc.GetCmd())
	if err != nil {
		return nil, fs.s.statusError(ctx, err)
	}
	sc, err := fs.s.Schema(f)
	if err != nil {
		return nil, fs.s.statusError(ctx, err)
	}
	return &flight.SchemaResult{Schema: flight.SerializeSchema(sc, memory.DefaultAllocator)}, nil
}

func (fs *flightService) DoAction(act *flight.Action, stream flight.FlightService_DoActionServer) error {
	var body []byte
	switch act.GetType() {
	case actionPing:
		body = []byte("ok")
	case actionCatalog:
		var err error
		if body, err = json.Marshal(fs.s.view().ordered); err != nil {
			return fs.s.statusError(stream.Context(), err)
		}
	case actionDescribe, actionRegister, actionUnregister: // registration: registry.go
		var err error
		switch act.GetType() {
		case actionDescribe:
			body, err = fs.describe(stream.Context(), act.GetBody())
		case actionRegister:
			body, err = fs.register(stream.Context(), act.GetBody())
		default:
			body, err = fs.unregister(stream.Context(), act.GetBody())
		}
		if err != nil {
			return fs.s.statusError(stream.Context(), err)
		}
	case actionAudit:
		return fs.serveAudit(act.GetBody(), stream)
	case actionPSIClose: // PSI hook: psi.go
		return fs.servePSIClose(act.GetBody(), stream)
	default:
		return fs.s.statusError(stream.Context(), sluice.Errorf(sluice.ENotSupported, "unknown action %q; the agent knows ping, catalog, audit, psi-close, describe, register-dataset and unregister-dataset", act.GetType()))
	}
	return stream.Send(&flight.Result{Body: body})
}

func (fs *flightService) ListActions(_ *flight.Empty, stream flight.FlightService_ListActionsServer) error {
	for _, a := range []*flight.ActionType{
		{Type: actionPing, Description: "health check; answers ok"},
		{Type: actionCatalog, Description: "the department's datasets as JSON, registered ones included"},
		{Type: actionAudit, Description: `the agent's fragment audit entries after {"since_seq": N, "limit": M}, one JSON entry per result`},
	} {
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	for _, a := range psiActionTypes { // PSI hook: psi.go
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	for _, a := range registryActionTypes { // registration: registry.go
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	return nil
}

// statusError maps err to a gRPC status whose message is safe to show the
// caller. Untyped errors may quote database values, so their text stays out
// of the status.
func (s *Server) statusError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the request was cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the request ran out of time")
	}
	var e *sluice.Error
	if !errors.As(err, &e) {
		return status.Errorf(codes.Internal, "internal error in the agent of department %s; the agent's log has the details", s.dept.ID)
	}
	md := metadata.Pairs(codeHeader, e.Code)
	for _, r := range e.Reasons {
		md.Append(reasonHeader, r)
	}
	_ = grpc.SetTrailer(ctx, md)
	return status.Error(grpcCode(e.Code), e.Error())
}

func grpcCode(code string) codes.Code {
	switch code {
	case sluice.EInvalid:
		return codes.InvalidArgument
	case sluice.EUnauthenticated:
		return codes.Unauthenticated
	case sluice.EDenied:
		return codes.PermissionDenied
	case sluice.ENotFound:
		return codes.NotFound
	case sluice.ENotSupported:
		return codes.Unimplemented
	case sluice.EUnavailable:
		return codes.Unavailable
	case sluice.EResource:
		return codes.ResourceExhausted
	}
	return codes.Internal
}

func sluiceCode(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return sluice.EInvalid
	case codes.Unauthenticated:
		return sluice.EUnauthenticated
	case codes.PermissionDenied:
		return sluice.EDenied
	case codes.NotFound:
		return sluice.ENotFound
	case codes.Unimplemented:
		return sluice.ENotSupported
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		return sluice.EUnavailable
	case codes.ResourceExhausted:
		return sluice.EResource
	}
	return sluice.EInternal
}

// cutStream reports whether an Internal or Unknown status is really the
// transport dying under a stream (an agent killed mid-way), which gRPC does
// not always report as Unavailable.
func cutStream(st *status.Status) bool {
	if st.Code() != codes.Internal && st.Code() != codes.Unknown {
		return false
	}
	m := strings.ToLower(st.Message())
	for _, s := range []string{"rst_stream", "transport", "connection", "eof", "stream terminated"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
