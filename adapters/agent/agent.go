// Package agent is the department agent: it runs next to a department's
// databases and serves its datasets to the broker over Arrow Flight with
// TLS, authenticating the broker by pinned client-certificate fingerprints.
//
// The agent is the department's enforcement point. It does not trust the
// broker to apply masks: it re-derives what a non-owner may see from its own
// catalog (hidden and join-key columns never leave, masked columns leave
// only masked, aggregate columns only inside aggregates over groups of at
// least k rows) and only ever tightens what the broker asked for.
//
// The package also holds Client, which the broker uses to talk to one agent.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.opentelemetry.io/otel/trace"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/crypto/pseudonym"
	"github.com/sluice-gov/sluice/planner"
)

const (
	defaultBatchRows       = 4096
	defaultMinGroupSize    = 10
	defaultShutdownTimeout = 5 * time.Second
)

type options struct {
	batchRows       int
	minGroupSize    int
	logger          *slog.Logger
	shutdownTimeout time.Duration
	auditLog        *auditlog.Log
	registry        string
	unitKey         *pseudonym.Key
	maxStreams      int                  // limit.go
	tracerProvider  trace.TracerProvider // tracing.go
}

// Option configures a Server.
type Option func(*options)

// WithBatchRows sets the number of rows per streamed record (default 4096).
func WithBatchRows(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.batchRows = n
		}
	}
}

// WithMinGroupSize sets the floor for the minimum group size enforced when a
// non-owner uses aggregate-level columns (default 10). Values below 1 are
// ignored: the floor can be raised but never switched off.
func WithMinGroupSize(k int) Option {
	return func(o *options) {
		if k > 0 {
			o.minGroupSize = k
		}
	}
}

// WithLogger sets the logger. The agent logs query ids, datasets, requesters,
// row counts and durations; never values, SQL text or bind arguments.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithUnitKey sets the agent's secret for person pseudonyms (see
// units.go). Without it New loads dept.Agent.UnitKey (creating the file if
// missing) or, when that is unset, draws a key that lives as long as the
// process: the broker's differencing guard can then compare releases only
// while the agent runs.
func WithUnitKey(k *pseudonym.Key) Option {
	return func(o *options) {
		if k != nil {
			o.unitKey = k
		}
	}
}

// WithShutdownTimeout bounds how long Serve waits for running streams to
// finish once its context ends before closing them hard (default 5s).
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.shutdownTimeout = d
		}
	}
}

// Server is one department's agent.
type Server struct {
	dept *sluice.Department
	opts options
	log  *slog.Logger
	dbs  map[string]*adapters.DB // by source name
	yaml []*sluice.Dataset       // the configuration's datasets, in order

	// catalog is the snapshot of every dataset served (the configuration's
	// and the registered ones); reg is the registry they are kept in.
	catalog atomic.Pointer[catalogView]
	reg     registryState

	// unitKey makes the pseudonyms of persons (units.go).
	unitKey *pseudonym.Key

	// auditLog records every fragment run (nil: none); ownsAuditLog says
	// New opened it, so Close closes it.
	auditLog     *auditlog.Log
	ownsAuditLog bool

	// metrics are the agent's Prometheus metrics, and opsDBs the sources
	// as New opened them, which /readyz pings (ops.go).
	metrics *opsMetrics
	opsDBs  map[string]*adapters.DB

	// tracer makes the agent's spans; traceShutdown flushes the provider
	// New made from the configuration (tracing.go).
	tracer        trace.Tracer
	traceShutdown func(context.Context) error

	// Test hooks: emitHook runs before each record is sent over Flight;
	// executeDone runs when an execution ends, with its error.
	emitHook    func(context.Context)
	executeDone func(error)
	// beforeFinish runs before a fragment's outcome entry is appended.
	beforeFinish func()
}

// New opens every source of dept and checks that each dataset names one.
// With WithRegistry it then loads the registered datasets and checks each
// against its source.
func New(ctx context.Context, dept *sluice.Department, opts ...Option) (*Server, error) {
	if dept == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "agent: no department configuration given")
	}
	o := options{
		batchRows:       defaultBatchRows,
		minGroupSize:    defaultMinGroupSize,
		logger:          slog.New(slog.DiscardHandler),
		shutdownTimeout: defaultShutdownTimeout,
	}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		dept: dept,
		opts: o,
		log:  o.logger.With("department", dept.ID),
		dbs:  map[string]*adapters.DB{},

		metrics: newOpsMetrics(),
	}
	sources := map[string]sluice.Source{}
	for _, src := range dept.Sources {
		sources[src.Name] = src
	}
	for _, ds := range dept.Datasets {
		if ds == nil {
			continue
		}
		ds.Department = dept.ID
		if _, ok := sources[ds.Source]; !ok {
			return nil, sluice.Errorf(sluice.EInvalid,
				"agent of department %s: dataset %s names source %q, which is not declared under sources", dept.ID, ds.Name, ds.Source)
		}
		s.yaml = append(s.yaml, ds)
	}
	s.setView(nil)
	if err := s.openTracing(ctx); err != nil {
		return nil, err
	}
	for _, src := range dept.Sources {
		db, err := adapters.Open(ctx, src)
		if err != nil {
			_ = s.Close()
			return nil, &sluice.Error{
				Code:    sluice.EUnavailable,
				Message: "agent of department " + dept.ID + ": cannot open source " + src.Name + ": " + sluice.ErrorMessage(err),
				Err:     err,
			}
		}
		s.dbs[src.Name] = db
	}
	s.opsDBs = maps.Clone(s.dbs)
	if err := s.openAuditLog(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.openUnitKey(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.loadRegistry(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every source, and the audit log if New opened it.
func (s *Server) Close() error {
	var errs []error
	// Private-join secrets die with the agent, not only by their TTL.
	s.ClosePSISessions()
	if err := s.closeTracing(); err != nil {
		errs = append(errs, err)
	}
	if s.auditLog != nil && s.ownsAuditLog {
		if err := s.auditLog.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for name, db := range s.dbs {
		if err := db.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(s.dbs, name)
	}
	return errors.Join(errs...)
}

// Department returns the id of the department the agent serves.
func (s *Server) Department() string { return s.dept.ID }

// prepared is a fragment the agent has checked and is ready to run.
type prepared struct {
	f      *planner.Fragment // the agent's own copy, with enforced obligations
	ds     *sluice.Dataset
	db     *adapters.DB
	fields []planner.Field // what is sent
	// scanFields are what the database returns when they differ from
	// fields: a protected fragment's person keys (see units.go).
	scanFields []planner.Field
	unit       *sluice.Column // the privacy unit, when persons are counted
}

// prepare finds the dataset, validates the fragment and applies the agent's
// own obligations to a copy of it, so the caller's fragment is never changed.
func (s *Server) prepare(f *planner.Fragment) (*prepared, error) {
	if f == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "no fragment given")
	}
	ds, err := s.dataset(f.Dataset)
	if err != nil {
		return nil, err
	}
	fc := *f
	fc.Masks = make(map[string]sluice.MaskRule, len(f.Masks))
	for k, v := range f.Masks {
		fc.Masks[k] = v
	}
	if err := fc.Validate(ds); err != nil {
		return nil, asInvalid(err)
	}
	if err := enforce(&fc, ds, s.dept.ID, s.opts.minGroupSize); err != nil {
		return nil, err
	}
	// A forced mask changes a column's type (a date masked to its year is
	// an integer), which can make a fragment that was valid for the
	// broker's masks meaningless; check it again as it will run.
	if err := fc.Validate(ds); err != nil {
		return nil, asInvalid(err)
	}
	db := s.dbs[ds.Source]
	if db == nil {
		return nil, sluice.Errorf(sluice.EUnavailable, "the source of dataset %s is not open", ds.FullName())
	}
	return prepareUnits(&prepared{f: &fc, ds: ds, db: db})
}

// prepareUnits types what the database returns and what is sent for a
// prepared fragment, with the person keys of a protected one.
func prepareUnits(p *prepared) (*prepared, error) {
	fields, err := planner.OutputFields(p.f, p.ds)
	if err != nil {
		return nil, asInvalid(err)
	}
	p.fields, p.scanFields = fields, fields
	switch {
	case p.f.MinGroupSize > 0:
		if p.unit, err = requireUnit(p.ds); err != nil {
			return nil, err
		}
		if p.f.Distinct {
			return nil, sluice.Errorf(sluice.ENotSupported, "SELECT DISTINCT is not supported yet in an aggregate-only release; use GROUP BY")
		}
		if p.scanFields, err = planner.UnitScanFields(p.f, p.ds); err != nil {
			return nil, asInvalid(err)
		}
	case p.f.UnitAlias != "":
		if p.unit, err = requireUnit(p.ds); err != nil {
			return nil, err
		}
		p.scanFields = append(append([]planner.Field(nil), fields...), unitField(p.f, p.unit))
	}
	if p.fields, err = planner.StreamFields(p.f, p.ds); err != nil {
		return nil, asInvalid(err)
	}
	return p, nil
}

func (s *Server) dataset(full string) (*sluice.Dataset, error) {
	dept, name, ok := strings.Cut(full, ".")
	if !ok {
		return nil, sluice.Errorf(sluice.EInvalid, "fragment dataset %q is not of the form department.dataset", full)
	}
	if !strings.EqualFold(dept, s.dept.ID) {
		return nil, sluice.Errorf(sluice.ENotFound, "dataset %s is not served by the agent of department %s", full, s.dept.ID)
	}
	ds := s.view().byName[strings.ToLower(name)]
	if ds == nil {
		return nil, sluice.Errorf(sluice.ENotFound, "department %s has no dataset %q", s.dept.ID, name)
	}
	return ds, nil
}

// asInvalid keeps typed errors and marks untyped ones as invalid requests:
// the planner's checks only fail on what the broker sent.
func asInvalid(err error) error {
	var e *sluice.Error
	if errors.As(err, &e) {
		return err
	}
	return &sluice.Error{Code: sluice.EInvalid, Message: err.Error(), Err: err}
}

// Execute enforces the agent's obligations on f, renders it for the
// dataset's database and streams the result to emit. The records passed to
// emit are released when emit returns; Retain them to keep them.
//
// When the agent has an audit log, Execute records the run there exactly as
// a Flight fetch is recorded (see WithAuditLog), including holding back the
// last record until the entry is appended: an in-process caller is also a
// use of the department's data.
func (s *Server) Execute(ctx context.Context, f *planner.Fragment, emit func(arrow.Record) error) (rows int64, err error) {
	return s.execute(ctx, f, nil, emit, nil)
}

// execute is Execute with a callback that receives the output schema before
// any row, so that a Flight stream can announce it even for empty results,
// and a report (may be nil) filled in when the execution succeeds.
func (s *Server) execute(ctx context.Context, f *planner.Fragment, onSchema func(*arrow.Schema) error, emit func(arrow.Record) error, rep *execReport) (rows int64, err error) {
	start := time.Now()
	run := s.newRun(f, start)
	var sentBytes int64
	emit = countBytes(emit, &sentBytes)
	defer func() {
		if run != nil {
			run.discard()
			if err != nil {
				run.fail(ctx, err)
			}
		}
		s.logQuery(f, rows, time.Since(start), err)
		s.metrics.fragmentDone(f, rows, sentBytes, time.Since(start), err)
		if s.executeDone != nil {
			s.executeDone(err)
		}
	}()
	if run != nil {
		// The broker's anchor goes on every entry of the run, a refusal's
		// too.
		if run.peer, err = brokerAnchor(ctx); err != nil {
			return 0, err
		}
	}
	p, err := s.prepare(f)
	if err != nil {
		return 0, err
	}
	schema := adapters.Schema(p.fields)
	if onSchema != nil {
		if err := onSchema(schema); err != nil {
			return 0, err
		}
	}
	// A minimum group size is enforced here rather than in HAVING, so the
	// agent can count the groups it suppresses (see groupFilter).
	var (
		sqlText string
		args    []any
		gf      *groupFilter
	)
	switch {
	case countsGroups(p.f):
		sqlText, args, gf, err = s.newGroupFilter(p, nil)
	case p.f.UnitAlias != "":
		if sqlText, args, err = planner.Render(withUnitItem(p.f, p.unit), p.ds, p.db.Driver()); err != nil {
			err = asInvalid(err)
		}
	default:
		if sqlText, args, err = planner.Render(p.f, p.ds, p.db.Driver()); err != nil {
			err = asInvalid(err)
		}
	}
	if err != nil {
		return 0, err
	}
	// A stream whose reader has gone must stop the scan, not block it: every
	// emit first checks the context.
	guarded := func(rec arrow.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(rec); err != nil {
			// A failed send to a reader that has gone is a cancellation,
			// not an agent fault.
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
		return nil
	}
	send := guarded
	if run != nil {
		if err := run.begin(ctx, p.ds, schema, sqlText); err != nil {
			return 0, err
		}
		send = run.hold(guarded)
	}
	scanTo := send
	if gf != nil {
		gf.emit, scanTo = send, gf.push
		if run != nil {
			run.suppressed = gf.suppressed
		}
	}
	if p.f.UnitAlias != "" {
		scope, err := unitScope(p.f, p.ds)
		if err != nil {
			return 0, err
		}
		hash := unitHash(s.unitKey.Scope(scope))
		scanTo = func(rec arrow.Record) error {
			out, err := pseudonymise(rec, schema, hash)
			if err != nil {
				return err
			}
			defer out.Release()
			return send(out)
		}
	}
	n, err := p.db.Scan(ctx, sqlText, args, p.scanFields, s.opts.batchRows, scanTo)
	if gf != nil {
		n = gf.sent
	}
	if run != nil {
		n = run.sent
		if err == nil {
			err = run.finish(ctx, guarded)
			n = run.sent
		}
	}
	if err != nil {
		return n, err
	}
	if rep != nil && gf != nil {
		rep.Counted, rep.SuppressedGroups = true, gf.suppressed()
	}
	return n, nil
}

// Schema returns the output schema f would have, after enforcement, without
// running it.
func (s *Server) Schema(f *planner.Fragment) (*arrow.Schema, error) {
	p, err := s.prepare(f)
	if err != nil {
		return nil, err
	}
	return adapters.Schema(p.fields), nil
}

func (s *Server) logQuery(f *planner.Fragment, rows int64, d time.Duration, err error) {
	attrs := []any{"rows", rows, "duration", d}
	if f != nil {
		attrs = append(attrs, "query_id", f.QueryID, "dataset", f.Dataset,
			"requester", f.Requester.Name, "requester_department", f.Requester.Department, "purpose", f.Purpose)
	}
	if err == nil {
		s.log.Info("fragment served", attrs...)
		return
	}
	// Only the code and the caller-safe message of typed errors are logged;
	// an untyped error could quote a value from the database.
	attrs = append(attrs, "code", errorCode(err))
	var e *sluice.Error
	if errors.As(err, &e) {
		attrs = append(attrs, "error", e.Error())
	}
	s.log.Warn("fragment failed", attrs...)
}

// errorCode is sluice.ErrorCode that also recognises cancellation, which is
// the reader going away rather than a bug.
func errorCode(err error) string {
	var e *sluice.Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return sluice.EInternal
}
