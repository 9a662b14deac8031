package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/broker/admission"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/guard"
	"github.com/sluice-gov/sluice/broker/metrics"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/crypto/digest"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
	"github.com/sluice-gov/sluice/sandbox/gate"
)

// maxPurposeLen bounds the purpose header; purpose codes are short.
const maxPurposeLen = 128

// pendingQuery is an allowed, audited statement waiting for its DoGet.
type pendingQuery struct {
	principal sluice.Principal
	queryID   string
	fragment  *planner.Fragment
	schema    *arrow.Schema // what the client receives
	// agentSchema is what the agent of a single-dataset query sends: the
	// schema plus the sketches of a protected release's contributor sets.
	agentSchema *arrow.Schema
	entry       audit.Entry // the decision entry, as the template of the result entry
	release     *release    // the gate's obligations and the budget spent
	cross       *crossPlan  // a cross-department plan (fragment is nil)
	// units are the contributor sets of a protected release, which the
	// last gate strips; guarded says the differencing guard must admit
	// them before any row leaves (not under a differential-privacy
	// budget, whose noise bounds what differencing can learn).
	units   []planner.UnitSet
	guarded bool
	// st is the state the statement was decided under: it runs under it
	// too.
	st      *state.State
	created time.Time
	// slot is the query's admission slot while its work runs; the relay
	// releases it when the stream ends.
	slot *admission.Slot
	// trace is the statement's span context, which the fetch continues;
	// span is the fetch's, ended by the relay (tracing.go).
	trace trace.SpanContext
	span  trace.Span
}

// Decide runs everything but execution for one statement: plan, policy,
// obligations. It is what `sluice policy explain` shows and what
// GetFlightInfoStatement enforces.
func (s *Server) Decide(ctx context.Context, p sluice.Principal, purpose, queryID, sql string) (*planner.Plan, *policy.Decision, error) {
	return decide(ctx, s.snap(), s.now(), p, purpose, queryID, sql)
}

// Explain plans and decides a statement without running or auditing it.
func (parts *Parts) Explain(ctx context.Context, p sluice.Principal, purpose, sql string) (*planner.Plan, *policy.Decision, error) {
	st := state.New(parts.Catalog, parts.Purposes, parts.Grants, parts.Users, nil, parts.Policy.Current())
	return decide(ctx, st, time.Now(), p, purpose, "explain", sql)
}

// decide plans sql and decides it under st alone: the catalog, grants and
// the policy revision prepared over them belong to one snapshot.
func decide(ctx context.Context, st *state.State, now time.Time, p sluice.Principal, purpose, queryID, sql string) (*planner.Plan, *policy.Decision, error) {
	_, pspan := tracing.Start(ctx, "sluice.plan")
	plan, err := st.Planner.Plan(queryID, sql)
	tracing.End(pspan, err)
	if err != nil {
		return nil, nil, err
	}
	decided := time.Now()
	dctx, dspan := tracing.Start(ctx, "sluice.policy.decide")
	dec, err := st.Policy.Decide(dctx, policy.Input{
		Principal: p,
		Purpose:   purpose,
		Now:       now,
		Datasets:  plan.Datasets,
		Columns:   plan.Usages,
		Aggregate: plan.Aggregate,
		Joins:     joinPairs(plan),
	})
	metrics.FromContext(ctx).PolicyDecided(dec != nil && dec.Allow, err, time.Since(decided))
	if dec != nil {
		dspan.SetAttributes(tracing.Decision(dec.Allow))
	}
	tracing.End(dspan, err)
	if err != nil {
		return plan, nil, err
	}
	if dec.Allow {
		// One call: the planner runs its passes (obligations, row filters,
		// persons, clamps, verify) in the order planner.Passes declares.
		err := plan.Apply(st.Catalog, planObligations(st, dec, p, purpose))
		if len(plan.RowFilters) > 0 {
			dec.RowFilters = plan.RowFilters
		}
		if err != nil {
			return plan, dec, err
		}
	}
	return plan, dec, nil
}

// planObligations hands the planner what the decision obliges: masks and k,
// the requester and purpose, the row filters of the grants it relies on and
// its differential-privacy budgets with their clamp bounds.
func planObligations(st *state.State, dec *policy.Decision, p sluice.Principal, purpose string) planner.Obligations {
	o := planner.Obligations{
		Requester:    p,
		Purpose:      purpose,
		Masks:        dec.Masks,
		MinGroupSize: dec.MinGroupSize,
		Protected:    dec.Protected,
		RowFilters:   rowFilters(st, dec.Grants),
	}
	if len(dec.DP) > 0 {
		o.Budgets = dpBudgets(dec)
		o.Bounds = dpBounds(dec)
	}
	return o
}

// rowFilters finds the row filters of the grants a decision relied on, per
// dataset.
func rowFilters(st *state.State, grantIDs []string) map[string][]*sluice.RowFilter {
	var out map[string][]*sluice.RowFilter
	for _, id := range grantIDs {
		g := st.GrantsByID[id]
		if g == nil || g.RowFilter == nil {
			continue
		}
		if out == nil {
			out = map[string][]*sluice.RowFilter{}
		}
		out[g.Dataset] = append(out[g.Dataset], g.RowFilter)
	}
	return out
}

// GetFlightInfoStatement plans, decides and audits an ad-hoc statement and
// returns a single-use ticket for its result.
func (s *Server) GetFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	start := time.Now()
	ctx, span := s.startStatement(ctx)
	defer span.End()
	p, ok := principalFrom(ctx)
	if !ok {
		return nil, toStatus(sluice.Errorf(sluice.EUnauthenticated, "not authenticated"))
	}
	sql := cmd.GetQuery()
	purpose := purposeHeader(ctx)
	// One state for the whole request: plan, decision, obligations and
	// the release (DoGet) all use it.
	st := s.snap()
	entry := audit.Entry{
		Kind:           "query",
		CatalogVersion: st.CatalogVersion,
		QueryID:        uuid.NewString(),
		Principal:      p.Name,
		Role:           string(p.Role),
		Department:     p.Department,
		Purpose:        purpose,
		ClientAddr:     clientAddr(ctx),
		SQL:            truncate(sql, 64<<10),
	}
	span.SetAttributes(tracing.AttrQueryID.String(entry.QueryID), tracing.AttrRequester.String(p.Department))
	fail := func(decision string, err error) (*flight.FlightInfo, error) {
		tracing.Fail(span, err)
		if cerr := clientEnded(ctx, start, err); cerr != err {
			err, decision = cerr, "error"
			entry.Reasons = append(entry.Reasons, cerr.(*sluice.Error).Reasons...)
		}
		entry.Decision = decision
		entry.Error = sluice.ErrorMessage(err)
		entry.DurationMS = msSince(start)
		aerr := s.record(context.WithoutCancel(ctx), &entry)
		s.observeEnd(p.Department, decision, err, aerr, time.Since(start))
		if aerr != nil {
			return nil, toStatus(aerr)
		}
		return nil, toStatus(err)
	}
	if len(cmd.GetTransactionId()) > 0 {
		return fail("error", sluice.Errorf(sluice.ENotSupported, "transactions are not supported: Sluice is read-only; send the statement without a transaction"))
	}
	if purpose == "" {
		return fail("error", sluice.Errorf(sluice.EInvalid, "no purpose declared: set the gRPC metadata header %s (Flight SQL driver: add %s=<purpose> to the DSN; sluice query: --purpose); registered purposes: %s", PurposeHeader, PurposeHeader, st.PurposeList()))
	}
	if len(purpose) > maxPurposeLen || strings.ContainsAny(purpose, "\r\n\x00") {
		return fail("error", sluice.Errorf(sluice.EInvalid, "the purpose header is not a purpose code; registered purposes: %s", st.PurposeList()))
	}
	plan, dec, err := decide(metrics.NewContext(ctx, s.metrics), st, s.now(), p, purpose, entry.QueryID, sql)
	if plan != nil {
		entry.Datasets = plan.Datasets
		entry.Columns = plan.Usages
		entry.Plan = plan.Normalized()
		entry.PlanHash = sha256Hex(entry.Plan)
	}
	if err != nil {
		return fail("error", err)
	}
	entry.PolicyRevision = dec.Revision
	entry.Reasons = reasonLines(dec)
	if !dec.Allow {
		derr := &sluice.Error{Code: sluice.EDenied, Message: denialMessage(dec), Reasons: entry.Reasons}
		return fail("deny", derr)
	}
	if plan.Fragment == nil {
		return s.admitCross(ctx, st, p, plan, dec, &entry, desc, start, fail)
	}
	ds := st.Catalog.Dataset(state.SplitDataset(plan.Fragment.Dataset))
	// With the masks known, the fragment's types can be checked fully.
	if err := plan.Fragment.Validate(ds); err != nil {
		return fail("error", err)
	}
	fields, err := planner.OutputFields(plan.Fragment, ds)
	if err != nil {
		return fail("error", err)
	}
	agentFields, err := planner.StreamFields(plan.Fragment, ds)
	if err != nil {
		return fail("error", err)
	}
	units, err := plan.Fragment.UnitSets()
	if err != nil {
		return fail("error", err)
	}
	if _, ok := st.Agents[ds.Department]; !ok {
		return fail("error", sluice.Errorf(sluice.EUnavailable, "no agent is configured for department %s; ask the platform admin to register it", ds.Department))
	}
	if err := s.checkGuard(units, dec); err != nil {
		return fail("error", err)
	}
	rel, err := s.planRelease(ctx, st, entry.QueryID, plan.Fragment, dec)
	if err != nil {
		if sluice.ErrorCode(err) == sluice.EDenied {
			return fail("deny", err)
		}
		return fail("error", err)
	}
	rel.obligations.Units = sketchUnits(units)
	return s.admit(ctx, &pendingQuery{principal: p, queryID: entry.QueryID, fragment: plan.Fragment, schema: adapters.Schema(fields),
		agentSchema: adapters.Schema(agentFields), entry: entry, release: rel, units: units, guarded: len(units) > 0 && len(dec.DP) == 0, st: st}, dec, desc, start)
}

// checkGuard refuses a protected release the broker could not guard
// against differencing: fail closed, before anything runs.
func (s *Server) checkGuard(units []planner.UnitSet, dec *policy.Decision) error {
	if len(units) > 0 && len(dec.DP) == 0 && s.guard == nil {
		return sluice.Errorf(sluice.EUnavailable, "this aggregate-only release must be checked against earlier releases (the differencing guard), but the broker keeps no guard store; ask the platform admin")
	}
	return nil
}

// admit records an allowed statement's decision and issues its single-use
// ticket. Fail closed: the decision is on record before a ticket exists.
func (s *Server) admit(ctx context.Context, pq *pendingQuery, dec *policy.Decision, desc *flight.FlightDescriptor, start time.Time) (*flight.FlightInfo, error) {
	entry := &pq.entry
	entry.Decision = "allow"
	entry.Obligations = obligations(dec)
	if pq.release != nil && pq.release.obligations.Epsilon > 0 {
		if entry.Obligations == nil {
			entry.Obligations = map[string]any{}
		}
		entry.Obligations["noise_epsilon"] = pq.release.obligations.Epsilon
	}
	entry.DurationMS = msSince(start)
	pq.trace = trace.SpanContextFromContext(ctx)
	if err := s.record(context.WithoutCancel(ctx), entry); err != nil {
		s.refund(pq.release)
		s.observeEnd(pq.principal.Department, entry.Decision, nil, err, time.Since(start))
		return nil, toStatus(err)
	}
	handle, err := newHandle()
	if err != nil {
		s.refund(pq.release)
		return nil, toStatus(err)
	}
	ticket, err := flightsql.CreateStatementQueryTicket([]byte(handle))
	if err != nil {
		s.refund(pq.release)
		return nil, toStatus(sluice.Errorf(sluice.EInternal, "create ticket: %v", err))
	}
	pq.created = s.now()
	s.mu.Lock()
	s.pending[handle] = pq
	s.mu.Unlock()
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(pq.schema, s.Alloc),
		FlightDescriptor: desc,
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: ticket}}},
		TotalRecords:     -1,
		TotalBytes:       -1,
	}, nil
}

// DoGetStatement streams an allowed statement's result: a single dataset's
// fragment straight from its agent, or a cross-department plan through the
// sandbox. The last batch is held back until the result is on the audit
// record, so a client never receives a complete result that the log does
// not account for.
func (s *Server) DoGetStatement(ctx context.Context, t flightsql.StatementQueryTicket) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	p, ok := principalFrom(ctx)
	if !ok {
		return nil, nil, toStatus(sluice.Errorf(sluice.EUnauthenticated, "not authenticated"))
	}
	handle := string(t.GetStatementHandle())
	s.mu.Lock()
	q := s.pending[handle]
	if q != nil && q.principal.Name == p.Name {
		delete(s.pending, handle)
	}
	s.mu.Unlock()
	if q == nil || q.principal.Name != p.Name {
		return nil, nil, toStatus(sluice.Errorf(sluice.EInvalid, "unknown, expired or already used statement handle: run the statement again"))
	}
	start := time.Now()
	ctx, span := s.startFetch(ctx, q)
	q.span = span
	slot, err := s.acquire(ctx, q)
	if err != nil {
		s.refund(q.release)
		s.recordResult(ctx, q, nil, digest.NewStream(q.schema), start, err, nil)
		tracing.End(span, err)
		return nil, nil, toStatus(err)
	}
	q.slot = slot
	schema, ch, err := s.doGet(ctx, q, start)
	if err != nil {
		slot.Release(false)
		tracing.End(span, err)
	}
	return schema, ch, err
}

// doGet runs an admitted statement; q.slot is released when its relay
// ends, or by the caller if doGet fails before that.
func (s *Server) doGet(ctx context.Context, q *pendingQuery, start time.Time) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	// Every fragment request shows the agent where the broker's log
	// stands (anchor.go).
	ctx = s.withBrokerAnchor(ctx, q)
	if q.cross != nil {
		return s.runCross(ctx, q, start)
	}
	st := q.st
	ds := st.Catalog.Dataset(state.SplitDataset(q.fragment.Dataset))
	var client state.AgentClient
	if ds != nil {
		client = st.Agents[ds.Department]
	}
	if client == nil {
		err := sluice.Errorf(sluice.EUnavailable, "dataset %s or its agent was removed from the catalog after the statement was planned; run it again", q.fragment.Dataset)
		s.refund(q.release)
		s.recordResult(ctx, q, nil, digest.NewStream(q.schema), start, err, nil)
		return nil, nil, toStatus(err)
	}
	frag := &fragmentTally{dept: ds.Department, dataset: ds.FullName(), tally: digest.NewStream(q.agentSchema)}
	frags := func() []audit.FragmentRecord { return []audit.FragmentRecord{frag.record()} }
	stream, err := client.Fetch(ctx, q.fragment)
	if err != nil {
		s.refund(q.release)
		s.recordResult(ctx, q, frags(), frag.tally, start, err, nil)
		return nil, nil, toStatus(err)
	}
	frag.peer = stream.AgentAnchor()
	if !stream.Schema().Equal(q.agentSchema) {
		stream.Release()
		s.refund(q.release)
		err := sluice.Errorf(sluice.EInternal, "the agent of department %s returned a different schema than the broker planned; the catalogs disagree, ask the platform admin to reload them", ds.Department)
		s.recordResult(ctx, q, frags(), frag.tally, start, err, nil)
		return nil, nil, toStatus(err)
	}
	var src recordSource = &streamOp{s: stream, schema: q.agentSchema, t: frag}
	var g *gate.Gate
	if q.release != nil && q.release.needed() {
		g, err = gate.New(src, q.release.obligations)
		if err == nil && !g.Schema().Equal(q.schema) {
			err = sluice.Errorf(sluice.EInternal, "the release gate would send a different schema than planned")
		}
		if err != nil {
			stream.Release()
			s.refund(q.release)
			s.recordResult(ctx, q, frags(), frag.tally, start, err, nil)
			return nil, nil, toStatus(err)
		}
		src = g
	}
	// The agent enforces the minimum group size of an aggregate fragment
	// and reports how many groups it suppressed once its stream has ended
	// cleanly; the client and the audit entry learn it as for a sandbox
	// result.
	report := func() map[string]any {
		out := map[string]any{}
		if n, ok := stream.SuppressedGroups(); ok {
			out["suppressed_groups"] = n
		}
		if g != nil && q.release.obligations.Epsilon > 0 {
			out["noise_applied"] = g.Report().NoiseApplied
		}
		return out
	}
	var sets func() []gate.ReleasedSet
	if g != nil {
		sets = g.Sets
	}
	// What the client gets is digested separately from what the agent
	// sent: the gate drops the sketches and groups, and noises values.
	result := digest.NewStream(q.schema)
	ch := make(chan flight.StreamChunk)
	go s.relay(ctx, q, src, stream.Release, result, frags, report, sets, start, ch)
	return q.schema, ch, nil
}

// runCross executes a cross-department plan: fragments and private joins
// into a session of the sandbox engine, the release gates, then the
// client. The session holds everything in between; it is closed when the
// relay ends.
func (s *Server) runCross(ctx context.Context, q *pendingQuery, start time.Time) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	var tallies []*fragmentTally
	frags := func() []audit.FragmentRecord {
		out := make([]audit.FragmentRecord, 0, len(tallies))
		for _, t := range tallies {
			if t != nil {
				out = append(out, t.record())
			}
		}
		return out
	}
	result := digest.NewStream(q.schema)
	fail := func(err error) (*arrow.Schema, <-chan flight.StreamChunk, error) {
		s.refund(q.release)
		s.recordResult(ctx, q, frags(), result, start, err, nil)
		return nil, nil, toStatus(err)
	}
	c, err := q.cross.compile()
	if err == nil && !c.schema.Equal(q.schema) {
		err = sluice.Errorf(sluice.EInternal, "the sandbox would produce a different schema than planned")
	}
	if err != nil {
		return fail(err)
	}
	eng, err := s.sandboxEngine()
	if err != nil {
		return fail(err)
	}
	sess, err := eng.Session(ctx)
	if err != nil {
		return fail(err)
	}
	inputs, tl, err := s.openInputs(ctx, q.st, q.cross)
	tallies = tl
	if err != nil {
		sess.Close()
		return fail(err)
	}
	readers := append([]array.RecordReader(nil), inputs...)
	var gates builtGates
	ectx, espan := tracing.Start(ctx, "sluice.sandbox.query", tracing.AttrFragments.Int(len(inputs)))
	root, err := q.cross.run(ectx, sess, c, inputs, &gates)
	tracing.End(espan, err)
	if err != nil {
		// An agent's failure surfaces in the engine as a failed read:
		// the agent's own error names the department.
		err = inputError(readers, err)
		sess.Close()
		return fail(err)
	}
	report := func() map[string]any {
		if gates.aggregate == nil {
			return nil
		}
		rep := gates.aggregate.Report()
		out := map[string]any{"suppressed_groups": rep.SuppressedGroups}
		if q.cross.epsilon > 0 {
			out["noise_applied"] = rep.NoiseApplied
		}
		return out
	}
	var sets func() []gate.ReleasedSet
	if gates.final != nil {
		sets = gates.final.Sets
	}
	closeAll := func() {
		if h, ok := root.(*heldStream); ok {
			h.release()
		}
		sess.Close()
	}
	ch := make(chan flight.StreamChunk)
	go s.relay(ctx, q, &inputErrors{recordSource: root, readers: readers}, closeAll, result, frags, report, sets, start, ch)
	return q.schema, ch, nil
}

// inputErrors reports an agent's error in place of the engine's when a
// fragment stream failed while the engine read it.
type inputErrors struct {
	recordSource
	readers []array.RecordReader
}

func (e *inputErrors) Next(ctx context.Context) (arrow.Record, error) {
	rec, err := e.recordSource.Next(ctx)
	if err != nil && !errors.Is(err, io.EOF) {
		err = inputError(e.readers, err)
	}
	return rec, err
}

// inputError is the first fragment stream's error, if one failed, else
// err.
func inputError(readers []array.RecordReader, err error) error {
	for _, r := range readers {
		if r == nil {
			continue
		}
		if sr, ok := r.(*streamReader); ok {
			if ierr := sr.Err(); ierr != nil {
				return ierr
			}
		}
	}
	return err
}

// maxGuardedRows bounds what the broker holds back while the
// differencing guard decides: an aggregate-only result has one row per
// group of at least k persons.
const maxGuardedRows = 100_000

// relay pulls the result and hands it to the client. It holds the last
// batch back until the result entry is committed, so a client never
// receives a complete result the log does not account for; a guarded
// release (q.guarded) holds every batch back until the differencing guard
// has admitted the released groups and their sketches are on record. The
// release report (suppressed groups) goes to the client as the last
// batch's app metadata.
func (s *Server) relay(ctx context.Context, q *pendingQuery, src recordSource, closeSrc func(), result *digest.Stream, frags func() []audit.FragmentRecord, report func() map[string]any, sets func() []gate.ReleasedSet, start time.Time, ch chan<- flight.StreamChunk) {
	defer close(ch)
	defer closeSrc()
	var err error
	// The slot goes back when the work is done (closeSrc has run); a run
	// that ended cleanly is a sample of the class's cost.
	defer func() { q.slot.Release(err == nil) }()
	// The release (gates, guard, result entry, hand-off) and the fetch
	// end with the relay (tracing.go).
	defer func() { tracing.End(q.span, err) }()
	ctx, rspan := tracing.Start(ctx, "sluice.release")
	defer func() { tracing.End(rspan, err) }()
	released := false
	send := func(c flight.StreamChunk) bool {
		select {
		case ch <- c:
			return true
		case <-ctx.Done():
			if c.Data != nil {
				c.Data.Release()
			}
			return false
		}
	}
	extra := func() map[string]any {
		if report == nil {
			return nil
		}
		return report()
	}
	var held []arrow.Record
	releaseHeld := func() {
		for _, r := range held {
			r.Release()
		}
		held = nil
	}
	defer releaseHeld()
	var rows int64
	for {
		rec, nerr := src.Next(ctx)
		if nerr != nil {
			if !errors.Is(nerr, io.EOF) {
				err = nerr
			}
			break
		}
		if rec.NumRows() == 0 {
			rec.Release()
			continue
		}
		// The digest covers exactly what is handed to the client.
		result.Add(rec)
		rows += rec.NumRows()
		if q.guarded {
			if rows > maxGuardedRows {
				rec.Release()
				err = sluice.Errorf(sluice.EResource, "the aggregate-only result has more than %d groups; narrow the query (WHERE, fewer GROUP BY keys)", maxGuardedRows)
				break
			}
			held = append(held, rec)
			continue
		}
		if len(held) > 0 {
			last := held[0]
			held = held[:0]
			if !send(flight.StreamChunk{Data: last}) {
				rec.Release()
				s.recordResult(ctx, q, frags(), result, start, ctx.Err(), extra())
				return
			}
			released = true
		}
		held = append(held, rec)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	ex := extra()
	var ticket *guard.Ticket
	if err == nil && q.guarded {
		var gsets []guard.Set
		gctx, gspan := tracing.Start(ctx, "sluice.release.guard")
		ticket, gsets, err = s.admitSets(gctx, q, sets)
		tracing.End(gspan, err)
		if err == nil {
			if ex == nil {
				ex = map[string]any{}
			}
			ex["differencing_guard"] = map[string]any{"sets": len(gsets), "digest": guard.Digest(gsets)}
		}
	}
	if err != nil && !released {
		s.refund(q.release)
	}
	if err != nil && q.guarded {
		// Nothing was handed to the client: the record says so.
		result = digest.NewStream(q.schema)
	}
	if ticket != nil {
		// The sketches go on record before the rows leave: a release
		// that is out must be in the guard's memory.
		if cerr := ticket.Commit(context.WithoutCancel(ctx)); cerr != nil {
			err = cerr
		}
	}
	if aerr := s.recordResult(ctx, q, frags(), result, start, err, ex); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		send(flight.StreamChunk{Err: toStatus(err)})
		return
	}
	var meta []byte
	if len(ex) > 0 {
		meta, _ = json.Marshal(clientReport(ex))
	}
	if len(held) == 0 && meta != nil {
		// No rows at all: the report still reaches the client.
		b := array.NewRecordBuilder(memory.DefaultAllocator, q.schema)
		held = append(held, b.NewRecord())
		b.Release()
	}
	for i, rec := range held {
		c := flight.StreamChunk{Data: rec}
		if i == len(held)-1 {
			c.AppMetadata = meta
		}
		held[i] = nil
		if !send(c) {
			for _, r := range held[i+1:] {
				r.Release()
			}
			held = nil
			return
		}
	}
	held = nil
}

// clientReport is what the client is told of the release: the guard's
// digest is for the audit record, not the analyst.
func clientReport(ex map[string]any) map[string]any {
	out := make(map[string]any, len(ex))
	for k, v := range ex {
		if k != "differencing_guard" {
			out[k] = v
		}
	}
	return out
}

// admitSets hands the released groups' contributor sets to the
// differencing guard, scoped to the requester's department and each
// protected dataset.
func (s *Server) admitSets(ctx context.Context, q *pendingQuery, sets func() []gate.ReleasedSet) (*guard.Ticket, []guard.Set, error) {
	if s.guard == nil {
		return nil, nil, sluice.Errorf(sluice.EUnavailable, "this aggregate-only release must be checked against earlier releases, but the broker keeps no guard store; ask the platform admin")
	}
	if sets == nil {
		return nil, nil, sluice.Errorf(sluice.EInternal, "the release gate kept no sketches of the released groups; refusing")
	}
	var out []guard.Set
	for _, r := range sets() {
		out = append(out, guard.Set{
			Scope:  guard.Scope{Department: q.principal.Department, Dataset: r.Dataset},
			K:      r.K,
			Sketch: r.Sketch,
			Label:  fmt.Sprintf("row %d", r.Row+1),
		})
	}
	t, err := s.guard.Admit(ctx, q.queryID, q.principal.Name, out)
	if err != nil {
		return nil, nil, err
	}
	return t, out, nil
}

// recordResult appends the completion entry of a query: rows, bytes and the
// digest of what each department's fragment delivered and of what the
// client got, and the release report.
func (s *Server) recordResult(ctx context.Context, q *pendingQuery, frags []audit.FragmentRecord, result *digest.Stream, start time.Time, cause error, report map[string]any) error {
	e := q.entry
	e.Seq, e.Hash, e.PrevHash, e.Time = 0, "", "", time.Time{}
	e.Kind = "result"
	e.Rows = result.Rows()
	e.Bytes = result.Bytes()
	e.ResultDigest = result.Sum()
	e.Fragments = frags
	for i := range e.Fragments {
		e.Fragments[i].SQLHash = e.PlanHash
	}
	if len(report) > 0 {
		o := map[string]any{}
		for k, v := range e.Obligations {
			o[k] = v
		}
		for k, v := range report {
			o[k] = v
		}
		e.Obligations = o
	}
	e.DurationMS = msSince(start)
	e.Decision = "allow"
	// The client's own cancellation or deadline is recorded as such, not
	// as the agent failure it caused downstream.
	if cerr := clientEnded(ctx, start, cause); cerr != cause {
		cause = cerr
		e.Reasons = append(append([]string(nil), e.Reasons...), cerr.(*sluice.Error).Reasons...)
	}
	if cause != nil {
		e.Decision = "error"
		if sluice.ErrorCode(cause) == sluice.EDenied {
			// The differencing guard refused the release.
			e.Decision = "deny"
			var se *sluice.Error
			if errors.As(cause, &se) {
				e.Reasons = se.Reasons
			}
		}
		e.Error = sluice.ErrorMessage(cause)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	aerr := s.record(actx, &e)
	s.observeResult(q, e.Decision, cause, aerr, frags, start)
	if err := aerr; err != nil {
		s.log.Error("audit append of a query result failed", "query_id", q.queryID, "err", err)
		return err
	}
	s.log.Info("query", "query_id", q.queryID, "principal", q.principal.Name, "datasets", q.entry.Datasets, "rows", e.Rows, "ms", e.DurationMS, "error", e.Error)
	return nil
}

// denialMessage is what the analyst reads: every reason, with its rule,
// dataset, column and legal basis.
func denialMessage(d *policy.Decision) string {
	var b strings.Builder
	b.WriteString("denied by policy")
	for _, r := range d.Reasons {
		b.WriteString("; ")
		b.WriteString(reasonLine(r))
	}
	return b.String()
}

func reasonLine(r policy.Reason) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]", r.Rule)
	if r.Dataset != "" {
		b.WriteString(" ")
		b.WriteString(r.Dataset)
		if r.Column != "" {
			b.WriteString(".")
			b.WriteString(r.Column)
		}
		b.WriteString(":")
	}
	b.WriteString(" ")
	b.WriteString(r.Message)
	if r.LegalBasis != "" && !strings.Contains(r.Message, r.LegalBasis) {
		fmt.Fprintf(&b, " (legal basis: %s)", r.LegalBasis)
	}
	return b.String()
}

func reasonLines(d *policy.Decision) []string {
	out := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		out = append(out, reasonLine(r))
	}
	return out
}

func obligations(d *policy.Decision) map[string]any {
	o := map[string]any{}
	if len(d.Masks) > 0 {
		o["masks"] = d.Masks
	}
	if d.MinGroupSize > 0 {
		o["min_group_size"] = d.MinGroupSize
	}
	if len(d.Protected) > 0 {
		// k in persons, per protected dataset.
		o["protected"] = d.Protected
	}
	if d.RowCap > 0 {
		o["row_cap"] = d.RowCap
	}
	if len(d.DP) > 0 {
		o["dp"] = d.DP
	}
	if len(d.Grants) > 0 {
		o["grants"] = d.Grants
	}
	if len(d.RowFilters) > 0 {
		o["row_filters"] = d.RowFilters
	}
	if len(o) == 0 {
		return nil
	}
	return o
}

func newHandle() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", sluice.Errorf(sluice.EInternal, "random handle: %v", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// joinPairs hands the planner's join pairs to the policy.
func joinPairs(plan *planner.Plan) []policy.JoinPair {
	out := make([]policy.JoinPair, len(plan.JoinPairs))
	for i, j := range plan.JoinPairs {
		out[i] = policy.JoinPair{
			Left:  policy.JoinSide{Dataset: j.Left.Dataset, Column: j.Left.Column},
			Right: policy.JoinSide{Dataset: j.Right.Dataset, Column: j.Right.Column},
			PSI:   j.PSI,
		}
	}
	return out
}
