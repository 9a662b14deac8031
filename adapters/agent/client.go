package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/crypto/auditchain"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/planner"
)

// Client is the broker's connection to one department's agent.
type Client struct {
	dept string
	conn *grpc.ClientConn
	fc   flight.FlightServiceClient
}

// Dial prepares a connection to the agent of department at addr, trusting it
// only if its certificate has fingerprint serverPin and presenting
// clientCert. It does not connect: the first call does, so an agent that is
// down shows up as EUnavailable on that call, not here.
func Dial(ctx context.Context, department, addr, serverPin string, clientCert tls.Certificate) (*Client, error) {
	_ = ctx // grpc.NewClient does not block; kept for symmetry with other openers
	if addr == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the agent of department %s has no address configured", department)
	}
	if serverPin == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the agent of department %s has no certificate fingerprint configured; pin it (agent.fingerprint)", department)
	}
	var cc *tls.Certificate
	if len(clientCert.Certificate) > 0 {
		cc = &clientCert
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsutil.PinnedClientConfig(serverPin, cc))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxSendMsgBytes), grpc.MaxCallSendMsgSize(maxRecvMsgBytes)),
		// Pings find a dead agent during a long, quiet query instead of
		// waiting for TCP to notice.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Each call carries the trace context of its span (adapters/tracing).
		grpc.WithChainUnaryInterceptor(tracing.UnaryClient), grpc.WithChainStreamInterceptor(tracing.StreamClient),
	)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "the agent address %q of department %s is not usable: %v", addr, department, err)
	}
	return &Client{dept: department, conn: conn, fc: flight.NewFlightServiceClient(conn)}, nil
}

// Department is the id of the department whose agent this client talks to.
func (c *Client) Department() string { return c.dept }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// fetch is Fetch (tracing.go) without its span.
func (c *Client) fetch(ctx context.Context, f *planner.Fragment) (*Stream, error) {
	tkt, err := encodeFragment(f)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	gs, err := c.fc.DoGet(sctx, &flight.Ticket{Ticket: tkt})
	if err != nil {
		cancel()
		return nil, c.mapError(err, nil)
	}
	// The first message is the schema or the agent's refusal.
	rdr, err := flight.NewRecordReader(gs, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		cancel()
		return nil, c.mapError(err, trailer(gs))
	}
	return &Stream{c: c, gs: gs, rdr: rdr, cancel: cancel}, nil
}

// Schema asks the agent for the output schema of f after its enforcement,
// without running it.
func (c *Client) Schema(ctx context.Context, f *planner.Fragment) (*arrow.Schema, error) {
	cmd, err := encodeFragment(f)
	if err != nil {
		return nil, err
	}
	var md metadata.MD
	res, err := c.fc.GetSchema(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd}, grpc.Trailer(&md))
	if err != nil {
		return nil, c.mapError(err, md)
	}
	sc, err := flight.DeserializeSchema(res.GetSchema(), memory.DefaultAllocator)
	if err != nil {
		return nil, &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("the agent of department %s sent a schema that cannot be read: %v", c.dept, err), Err: err}
	}
	return sc, nil
}

// Ping checks that the agent is up and accepts this client.
func (c *Client) Ping(ctx context.Context) error {
	body, err := c.action(ctx, actionPing)
	if err != nil {
		return err
	}
	if string(body) != "ok" {
		return sluice.Errorf(sluice.EUnavailable, "the agent of department %s answered ping with %q", c.dept, body)
	}
	return nil
}

// Catalog returns the datasets the agent serves, for the broker to compare
// with the catalog it holds.
func (c *Client) Catalog(ctx context.Context) ([]*sluice.Dataset, error) {
	body, err := c.action(ctx, actionCatalog)
	if err != nil {
		return nil, err
	}
	var out []*sluice.Dataset
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("the agent of department %s sent a catalog that cannot be read: %v", c.dept, err), Err: err}
	}
	for _, ds := range out {
		if ds != nil {
			ds.Department = c.dept
		}
	}
	return out, nil
}

// AuditEntries returns the agent's fragment audit entries with sequence
// numbers above sinceSeq, oldest first: at most limit of them (0 for
// DefaultAuditPage, at most MaxAuditPage). Fewer than limit means the end of
// the agent's log. Each entry is checked on arrival: it must be a fragment
// entry whose Hash matches its content, in increasing sequence order, and
// linked to the entry before it when the two are consecutive. An agent
// without an audit log answers ENotSupported.
func (c *Client) AuditEntries(ctx context.Context, sinceSeq int64, limit int) ([]auditchain.Entry, error) {
	if sinceSeq < 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "audit since_seq must not be negative; got %d", sinceSeq)
	}
	if limit == 0 {
		limit = DefaultAuditPage
	}
	if limit < 0 || limit > MaxAuditPage {
		return nil, sluice.Errorf(sluice.EInvalid, "audit page limit must be between 1 and %d (0 for the default %d); got %d", MaxAuditPage, DefaultAuditPage, limit)
	}
	req, err := json.Marshal(auditRequest{SinceSeq: sinceSeq, Limit: limit})
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "the audit request cannot be encoded: %v", err)
	}
	bodies, err := c.actionResults(ctx, actionAudit, req)
	if err != nil {
		return nil, err
	}
	if len(bodies) > limit {
		return nil, c.badAudit("sent %d audit entries for a page of %d", len(bodies), limit)
	}
	out := make([]auditchain.Entry, 0, len(bodies))
	prev := &auditchain.Entry{Seq: sinceSeq}
	for i, b := range bodies {
		e, err := auditchain.Decode(b)
		if err != nil {
			return nil, c.badAudit("sent audit entry %d of the page that cannot be read: %v", i+1, err)
		}
		switch {
		case e.Kind != auditchain.KindFragment:
			return nil, c.badAudit("sent audit entry %d of kind %q; only fragment entries are served", e.Seq, e.Kind)
		case e.Seq <= prev.Seq:
			return nil, c.badAudit("sent audit entry %d after entry %d; entries must come in increasing order after %d", e.Seq, prev.Seq, sinceSeq)
		case e.Hash == "" || e.ComputeHash() != e.Hash:
			return nil, c.badAudit("sent audit entry %d whose hash does not match its content; run `sluice audit verify` on the agent's log", e.Seq)
		case i > 0 && e.Seq == prev.Seq+1 && e.PrevHash != prev.Hash:
			return nil, c.badAudit("sent audit entry %d that is not linked to entry %d; run `sluice audit verify` on the agent's log", e.Seq, prev.Seq)
		}
		out = append(out, *e)
		prev = e
	}
	return out, nil
}

// AllAuditEntries pages through the agent's whole fragment log with
// AuditEntries and returns every entry, oldest first. It holds the whole log
// in memory; for a long-running agent page with AuditEntries from the last
// sequence number already reconciled.
func (c *Client) AllAuditEntries(ctx context.Context) ([]auditchain.Entry, error) {
	var out []auditchain.Entry
	var since int64
	for {
		page, err := c.AuditEntries(ctx, since, MaxAuditPage)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < MaxAuditPage {
			return out, nil
		}
		since = page[len(page)-1].Seq
	}
}

func (c *Client) badAudit(format string, args ...any) error {
	return sluice.Errorf(sluice.EInternal, "the agent of department %s %s", c.dept, fmt.Sprintf(format, args...))
}

func (c *Client) action(ctx context.Context, typ string) ([]byte, error) {
	results, err := c.actionResults(ctx, typ, nil)
	if err != nil {
		return nil, err
	}
	var body []byte
	for _, r := range results {
		body = append(body, r...)
	}
	return body, nil
}

// actionResults runs an action and returns the body of each result.
func (c *Client) actionResults(ctx context.Context, typ string, body []byte) ([][]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.fc.DoAction(ctx, &flight.Action{Type: typ, Body: body})
	if err != nil {
		return nil, c.mapError(err, nil)
	}
	var out [][]byte
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, c.mapError(err, trailer(st))
		}
		out = append(out, r.GetBody())
	}
}

func encodeFragment(f *planner.Fragment) ([]byte, error) {
	if f == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "no fragment given")
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, &sluice.Error{Code: sluice.EInvalid, Message: "the fragment cannot be encoded: " + err.Error(), Err: err}
	}
	if len(b) > maxTicketBytes {
		return nil, sluice.Errorf(sluice.EInvalid, "the fragment for %s is %d bytes encoded; the limit is %d", f.Dataset, len(b), maxTicketBytes)
	}
	return b, nil
}

// trailer returns a stream's trailer without blocking on a live stream:
// gRPC only fills it once the stream has ended, which is the case after a
// Recv error.
func trailer(s grpc.ClientStream) metadata.MD { return s.Trailer() }

// mapError turns what gRPC reports into a *sluice.Error, restoring the
// agent's code and reasons from the trailer when it sent them.
func (c *Client) mapError(err error, md metadata.MD) error {
	if err == nil {
		return nil
	}
	var se *sluice.Error
	if errors.As(err, &se) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("the request to the agent of department %s was cancelled: %v", c.dept, err), Err: err}
		}
		return &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("the stream from the agent of department %s cannot be read: %v", c.dept, err), Err: err}
	}
	code := sluiceCode(st.Code())
	fromAgent := false
	if cutStream(st) {
		code = sluice.EUnavailable
	} else if v := md.Get(codeHeader); len(v) == 1 && v[0] != "" {
		code, fromAgent = v[0], true
	}
	out := &sluice.Error{Code: code, Message: st.Message(), Reasons: md.Get(reasonHeader), Err: err}
	if code == sluice.EUnavailable {
		if fromAgent {
			out.Message = fmt.Sprintf("the agent of department %s is unavailable: %s", c.dept, st.Message())
		} else {
			// Transport text names internal addresses; it stays in Err for
			// the broker's log, not in what the analyst reads.
			out.Message = fmt.Sprintf("the agent of department %s is unavailable (its connection failed or was cut); nothing partial was released — try again, or ask the department's data admin to check its agent", c.dept)
		}
	}
	return out
}

// Stream is the result of Fetch: the agent's records, in order.
type Stream struct {
	c      *Client
	gs     flight.FlightService_DoGetClient
	rdr    *flight.Reader
	cancel context.CancelFunc

	err  error
	done bool
	once sync.Once
	span trace.Span // the call's span (tracing.go), ended by Release
}

// Schema is the schema of the stream's records.
func (s *Stream) Schema() *arrow.Schema { return s.rdr.Schema() }

// Next advances to the next record. It returns false at the end of the
// stream and on error; check Err.
func (s *Stream) Next() bool {
	if s.done {
		return false
	}
	if s.rdr.Next() {
		return true
	}
	s.done = true
	if err := s.rdr.Err(); err != nil {
		s.err = s.c.mapError(err, trailer(s.gs))
		s.cancel()
		return false
	}
	// The reader also stops at an end-of-stream marker, which does not
	// prove that the call succeeded; only the final status does. Anything
	// short of a clean io.EOF is an error, never a short result.
	if _, err := s.gs.Recv(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the end of the stream")
		}
		s.err = s.c.mapError(err, trailer(s.gs))
		s.cancel()
	}
	return false
}

// SuppressedGroups is how many groups the agent suppressed for having
// fewer rows than the fragment's minimum group size, which it reports in
// the trailer when it enforced that size itself. ok is false until the
// stream has ended cleanly, and when the agent reported no count (the
// fragment had no minimum group size, or the agent predates the report).
func (s *Stream) SuppressedGroups() (n int64, ok bool) {
	if !s.done || s.err != nil {
		return 0, false
	}
	v := s.gs.Trailer().Get(suppressedHeader)
	if len(v) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Record is the current record, valid until the next call to Next.
func (s *Stream) Record() arrow.Record { return s.rdr.Record() }

// Err is the error that ended the stream, if any, as a *sluice.Error. A
// stream cut mid-way is EUnavailable naming the department.
func (s *Stream) Err() error { return s.err }

// Release ends the call, telling the agent to stop if it is still sending,
// and frees the current record. It is safe to call more than once.
func (s *Stream) Release() {
	s.once.Do(func() {
		s.cancel()
		s.rdr.Release()
		s.endSpan()
	})
}

// AgentAnchor is what the agent showed of its own log when it began
// serving: the seq and hash of its write-ahead entry for the fragment and
// its latest signed checkpoint (AgentAnchorHeader, in the response header
// that arrives with the first message). It is nil when the agent sent none
// (it keeps no audit log) or sent one that does not parse. The broker
// records it in its result entry, so the agent's log cannot later be cut
// back below it unnoticed.
func (s *Stream) AgentAnchor() *auditchain.Anchor {
	md, err := s.gs.Header()
	if err != nil {
		return nil
	}
	v := md.Get(AgentAnchorHeader)
	if len(v) != 1 {
		return nil
	}
	a, err := auditchain.DecodeAnchor(v[0])
	if err != nil {
		return nil
	}
	return a
}
