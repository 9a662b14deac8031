package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/crypto/auditchain"
	"github.com/sluice-gov/sluice/crypto/digest"
	"github.com/sluice-gov/sluice/planner"
)

const (
	actionAudit = "audit"

	// DefaultAuditPage and MaxAuditPage bound one "audit" action.
	DefaultAuditPage = 1000
	MaxAuditPage     = 10000

	auditAppendTimeout = 5 * time.Second
)

// WithAuditLog makes the agent record every fragment it runs in l. The
// caller keeps ownership: Close does not close l. Without this option New
// opens dept.Agent.AuditLog when it is set, and Close closes that log; with
// neither, the agent records nothing.
//
// Every fragment the agent is asked to run, over Flight (DoGet) and through
// Execute alike, leaves one outcome entry of kind "fragment" on the agent's
// chain; a fragment accepted and rendered leaves before it a write-ahead
// entry (Phase "begin", appended before its first record is sent; if that
// append fails nothing is sent), so an agent killed mid-stream leaves the
// record of what began leaving. Both hold the broker's anchor
// (BrokerAnchorHeader) when the request carried one. The outcomes:
//
//   - allow: the fragment ran to the end. Rows, Bytes and the fragment
//     record's Digest are a digest.Stream, under the output schema, of
//     exactly the records sent. The last record is held back until the entry
//     is appended; if the append fails, that record is never sent and the
//     stream ends with EUnavailable, so a reader never gets a complete result
//     the agent did not record (fail closed).
//   - deny: the agent's own enforcement refused it (hidden or join-key
//     column, share class none, …). Nothing was sent.
//   - error: anything else stopped it (unknown dataset, invalid fragment, a
//     database error, the reader going away); when the scan had started,
//     Rows, Bytes and Digest cover what was sent before it stopped.
//
// Plan is the SQL as rendered for the department's database, with bind
// placeholders and never the bound values; PlanHash and the fragment
// record's SQLHash are "sha256:" + hex(sha256(Plan)). A ticket that does not
// decode to a fragment names no query and no requester and is not recorded
// (it is refused before anything is read). GetSchema runs nothing and is not
// recorded.
//
// In the rare case that the entry was appended and the held-back record then
// could not be sent (the reader went away at the last moment), the log says
// allow for rows the reader may not have received; reconciliation with the
// broker's log shows it as a row mismatch.
func WithAuditLog(l *auditlog.Log) Option {
	return func(o *options) {
		if l != nil {
			o.auditLog = l
		}
	}
}

// openAuditLog opens the department's configured log unless one was given.
func (s *Server) openAuditLog(ctx context.Context) error {
	if s.opts.auditLog != nil {
		s.auditLog = s.opts.auditLog
		return nil
	}
	path := s.dept.Agent.AuditLog
	if path == "" {
		return nil
	}
	var signers []auditchain.Signer
	if key := s.dept.Agent.SigningKey; key != "" {
		// The department signs its own record, so its account of what left
		// stands as evidence independently of the broker's.
		signer, err := auditchain.LoadOrCreateEd25519(key)
		if err != nil {
			return &sluice.Error{Code: sluice.ErrorCode(err), Message: "agent of department " + s.dept.ID + ": signing key (agent.signing_key): " + sluice.ErrorMessage(err), Err: err}
		}
		if _, err := os.Stat(key + ".pub"); errors.Is(err, os.ErrNotExist) {
			if err := auditchain.WritePublicKey(key+".pub", signer); err != nil {
				return err
			}
		}
		signers = append(signers, signer)
	}
	l, err := auditlog.Open(ctx, path, signers...)
	if err != nil {
		code := sluice.ErrorCode(err)
		if code == sluice.EInternal {
			code = sluice.EUnavailable
		}
		return &sluice.Error{
			Code:    code,
			Message: "agent of department " + s.dept.ID + ": cannot open its audit log (agent.audit_log): " + sluice.ErrorMessage(err),
			Err:     err,
		}
	}
	s.auditLog, s.ownsAuditLog = l, true
	return nil
}

// AuditLog returns the log the agent records fragments in, or nil.
func (s *Server) AuditLog() *auditlog.Log { return s.auditLog }

// planHash is the hash recorded for rendered fragment SQL.
func planHash(sqlText string) string {
	if sqlText == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(sqlText))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// fragmentRun records one fragment execution in the agent's audit log.
type fragmentRun struct {
	s       *Server
	f       *planner.Fragment
	start   time.Time
	dataset string // the catalog's name once the fragment is accepted
	sqlText string
	tally   *digest.Stream // over the records sent; nil until the scan starts
	held    arrow.Record   // produced but not yet sent
	sent    int64          // rows sent
	// suppressed counts the groups the agent dropped for being under the
	// fragment's k, when it gated them itself (nil otherwise).
	suppressed func() int64
	// recorded is set once the outcome entry was appended, or the final
	// append was attempted: a run leaves at most one outcome entry, after
	// its write-ahead entry.
	recorded bool
	// peer is what the broker showed of its log with the request (nil when
	// it sent nothing, or the fragment runs in-process).
	peer *auditchain.Anchor
}

// BrokerAnchorHeader carries, in a fragment request's metadata, what the
// broker shows of its own log: the seq and hash of the query's decision
// entry and its latest signed checkpoint (auditchain.Anchor, as JSON).
// AgentAnchorHeader carries back, in the response header sent before the
// first batch, the agent's write-ahead entry and its latest signed
// checkpoint. Each side keeps the other's in its own chain, so neither can
// cut its log back below what the other saw (auditchain.CheckAnchors).
const (
	BrokerAnchorHeader = "x-sluice-broker-anchor"
	AgentAnchorHeader  = "x-sluice-agent-anchor"
)

// brokerAnchor reads the broker's anchor from a request's metadata. More
// than one is refused, as is one that does not parse.
func brokerAnchor(ctx context.Context) (*auditchain.Anchor, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(BrokerAnchorHeader)
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
		return auditchain.DecodeAnchor(vals[0])
	}
	return nil, sluice.Errorf(sluice.EInvalid, "the request carries %d %s headers; a fragment request carries exactly one", len(vals), BrokerAnchorHeader)
}

func (s *Server) newRun(f *planner.Fragment, start time.Time) *fragmentRun {
	if s.auditLog == nil || f == nil {
		return nil
	}
	return &fragmentRun{s: s, f: f, start: start, dataset: f.Dataset}
}

// begin records the fragment write-ahead, once it is accepted and rendered
// and before its first batch leaves: an entry with Phase "begin" naming
// the query, requester, purpose, dataset and rendered SQL, holding the
// broker's anchor. If the agent is killed mid-stream, that entry is the
// record of what began leaving (reconciliation reports it interrupted).
// Fail closed: when it cannot be appended nothing is sent. The entry's
// seq and hash and the log's latest checkpoint go back to the broker in
// the response header (AgentAnchorHeader) before any batch.
func (r *fragmentRun) begin(ctx context.Context, ds *sluice.Dataset, schema *arrow.Schema, sqlText string) error {
	r.dataset = ds.FullName()
	r.sqlText = sqlText
	e := r.entry(auditchain.DecisionAllow, nil)
	e.Phase = auditchain.PhaseBegin
	e.DurationMS = 0
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditAppendTimeout)
	defer cancel()
	if err := r.s.auditLog.Append(actx, e); err != nil {
		r.s.log.Error("agent audit log append failed; the fragment was refused before anything was sent",
			"query_id", r.f.QueryID, "dataset", r.dataset, "code", sluice.ErrorCode(err))
		r.recorded = true // nothing was sent; there is no outcome to record
		return &sluice.Error{
			Code: sluice.EUnavailable,
			Message: fmt.Sprintf("the agent's audit log is unavailable (%s); department %s refused the fragment because it could not record it before sending (fail closed); try again when the agent's log is repaired",
				sluice.ErrorMessage(err), r.s.dept.ID),
			Err: err,
		}
	}
	r.tally = digest.NewStream(schema)
	a := &auditchain.Anchor{Seq: e.Seq, Hash: e.Hash, Checkpoint: r.s.auditLog.LastCheckpoint().Signed()}
	if v, err := auditchain.EncodeAnchor(a); err == nil {
		// Outside a gRPC call (Execute) there is no header to set.
		_ = grpc.SetHeader(ctx, metadata.Pairs(AgentAnchorHeader, v))
	}
	return nil
}

// hold wraps send so that each record is sent only once the next one exists:
// the last record stays held until finish.
func (r *fragmentRun) hold(send func(arrow.Record) error) func(arrow.Record) error {
	return func(rec arrow.Record) error {
		if h := r.held; h != nil {
			r.held = nil
			err := send(h)
			if err == nil {
				r.tally.Add(h)
				r.sent += h.NumRows()
			}
			h.Release()
			if err != nil {
				return err
			}
		}
		rec.Retain()
		r.held = rec
		return nil
	}
}

// finish records the complete stream and then sends the held record. If the
// entry cannot be appended the held record is dropped and the error is
// EUnavailable.
func (r *fragmentRun) finish(ctx context.Context, send func(arrow.Record) error) error {
	h := r.held
	r.held = nil
	if h != nil {
		defer h.Release()
		r.tally.Add(h)
	}
	r.recorded = true
	if r.s.beforeFinish != nil {
		r.s.beforeFinish()
	}
	if err := r.append(ctx, auditchain.DecisionAllow, nil); err != nil {
		r.s.log.Error("agent audit log append failed; the end of the result was withheld",
			"query_id", r.f.QueryID, "dataset", r.dataset, "code", sluice.ErrorCode(err))
		return &sluice.Error{
			Code: sluice.EUnavailable,
			Message: fmt.Sprintf("the agent's audit log is unavailable (%s); department %s withheld the end of the result because it could not record it (fail closed); try again when the agent's log is repaired",
				sluice.ErrorMessage(err), r.s.dept.ID),
			Err: err,
		}
	}
	if h == nil {
		return nil
	}
	if err := send(h); err != nil {
		return err
	}
	r.sent += h.NumRows()
	return nil
}

// fail records a run that did not complete. A failure to append is logged:
// nothing more is sent either way.
func (r *fragmentRun) fail(ctx context.Context, cause error) {
	if r.recorded {
		return
	}
	r.recorded = true
	decision := auditchain.DecisionError
	if sluice.ErrorCode(cause) == sluice.EDenied {
		decision = auditchain.DecisionDeny
	}
	if err := r.append(ctx, decision, cause); err != nil {
		r.s.log.Error("agent audit log append failed for a refused or failed fragment",
			"query_id", r.f.QueryID, "dataset", r.dataset, "code", sluice.ErrorCode(err))
	}
}

// discard releases a record still held.
func (r *fragmentRun) discard() {
	if r.held != nil {
		r.held.Release()
		r.held = nil
	}
}

func (r *fragmentRun) append(ctx context.Context, decision string, cause error) error {
	e := r.entry(decision, cause)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditAppendTimeout)
	defer cancel()
	return r.s.auditLog.Append(actx, e)
}

// entry is the run's entry as it stands.
func (r *fragmentRun) entry(decision string, cause error) *auditchain.Entry {
	f := r.f
	e := &auditchain.Entry{
		Kind:       auditchain.KindFragment,
		QueryID:    f.QueryID,
		Principal:  f.Requester.Name,
		Role:       string(f.Requester.Role),
		Department: f.Requester.Department,
		Purpose:    f.Purpose,
		Datasets:   []string{r.dataset},
		Plan:       r.sqlText,
		PlanHash:   planHash(r.sqlText),
		Decision:   decision,
		DurationMS: float64(time.Since(r.start).Microseconds()) / 1000,
		Peer:       r.peer,
	}
	if r.suppressed != nil && cause == nil {
		// The same count the broker records and the client is told.
		e.Obligations = map[string]any{"suppressed_groups": r.suppressed()}
	}
	if cause != nil {
		e.Error = safeMessage(cause)
		var se *sluice.Error
		if errors.As(cause, &se) {
			e.Reasons = se.Reasons
		}
	}
	if r.tally != nil {
		e.Rows = r.tally.Rows()
		e.Bytes = r.tally.Bytes()
		e.Fragments = []auditchain.FragmentRecord{{
			Department: r.s.dept.ID,
			Dataset:    r.dataset,
			SQLHash:    e.PlanHash,
			Rows:       r.tally.Rows(),
			Bytes:      r.tally.Bytes(),
			Digest:     r.tally.Sum(),
		}}
	}
	return e
}

// safeMessage is what the audit entry says about an error: the caller-safe
// message of a typed error, never the text of an untyped one (which could
// quote a database value).
func safeMessage(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "the request was cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "the request ran out of time"
	}
	var e *sluice.Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return "internal error in the agent; the agent's log has the details"
}

// auditRequest is the body of the "audit" action.
type auditRequest struct {
	SinceSeq int64 `json:"since_seq"`
	Limit    int   `json:"limit,omitempty"`
}

func decodeAuditRequest(raw []byte) (auditRequest, error) {
	var req auditRequest
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, sluice.Errorf(sluice.EInvalid, `the audit request is not valid JSON of the form {"since_seq": N, "limit": M}: %v`, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return req, sluice.Errorf(sluice.EInvalid, "the audit request has data after the request")
		}
	}
	if req.SinceSeq < 0 {
		return req, sluice.Errorf(sluice.EInvalid, "audit since_seq must not be negative; got %d", req.SinceSeq)
	}
	if req.Limit == 0 {
		req.Limit = DefaultAuditPage
	}
	if req.Limit < 0 || req.Limit > MaxAuditPage {
		return req, sluice.Errorf(sluice.EInvalid, "audit limit must be between 1 and %d (0 for the default %d); got %d", MaxAuditPage, DefaultAuditPage, req.Limit)
	}
	return req, nil
}

// auditEntries returns up to limit fragment entries with Seq > since, in
// sequence order. Fewer than limit means the end of the log was reached.
func (s *Server) auditEntries(ctx context.Context, since int64, limit int) ([]auditchain.Entry, error) {
	if s.auditLog == nil {
		return nil, sluice.Errorf(sluice.ENotSupported,
			"the agent of department %s keeps no audit log; set agent.audit_log in its department file", s.dept.ID)
	}
	head := s.auditLog.Head().Seq
	var out []auditchain.Entry
	next := since
	for len(out) < limit && next < head {
		page, err := s.auditLog.Entries(ctx, next, int(min(head-next, int64(limit-len(out)))))
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			page = []auditchain.Entry{{}} // reported as missing below
		}
		for _, e := range page {
			if e.Seq != next+1 {
				return nil, sluice.Errorf(sluice.EInternal,
					"the audit log of the agent of department %s has no entry %d below its head %d; run `sluice audit verify` on the agent's log", s.dept.ID, next+1, head)
			}
			next = e.Seq
			if e.Kind == auditchain.KindFragment {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// serveAudit answers the "audit" action: one Result per entry, each the
// entry's JSON (its canonical encoding with Hash filled in, auditchain.Encode).
func (fs *flightService) serveAudit(raw []byte, stream flight.FlightService_DoActionServer) error {
	ctx := stream.Context()
	req, err := decodeAuditRequest(raw)
	if err != nil {
		return fs.s.statusError(ctx, err)
	}
	entries, err := fs.s.auditEntries(ctx, req.SinceSeq, req.Limit)
	if err != nil {
		return fs.s.statusError(ctx, err)
	}
	for i := range entries {
		body, err := auditchain.Encode(&entries[i])
		if err != nil {
			return fs.s.statusError(ctx, sluice.Errorf(sluice.EInternal, "audit entry %d cannot be encoded: %v", entries[i].Seq, err))
		}
		if err := stream.Send(&flight.Result{Body: body}); err != nil {
			return err
		}
	}
	return nil
}
