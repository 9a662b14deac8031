// Package broker is the analysts' entry point: a Flight SQL service over TLS
// that authenticates bearer tokens, reads the declared purpose, plans each
// statement, asks the policy, writes the audit entry and only then streams
// the department agent's fragment to the client.
//
// The query path decides every request under one snapshot, a
// broker/state.State, which it reads through state.Source — the one
// interface between it and the workflow (broker/workflow), which builds
// and swaps the snapshots. The admin API is broker/adminapi. Open (open.go)
// assembles the three from a configuration file.
package broker

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/broker/admission"
	"github.com/sluice-gov/sluice/broker/alerts"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/broker/guard"
	"github.com/sluice-gov/sluice/broker/metrics"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/policy"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

// PurposeHeader is the gRPC metadata key that carries the declared purpose.
const PurposeHeader = "x-sluice-purpose"

// ArrowVersion is the Arrow library the broker speaks, reported through
// GetSqlInfo.
const ArrowVersion = "18.9.0"

// Version is reported through GetSqlInfo.
const Version = "0.1.0"

// AuditLog is where every request is recorded before any row is released.
type AuditLog interface {
	Append(ctx context.Context, e *audit.Entry) error
}

// handleTTL is how long an allowed statement's handle waits for its DoGet.
const handleTTL = 5 * time.Minute

// Server is the broker's Flight SQL service.
type Server struct {
	flightsql.BaseServer

	tls *tls.Config
	log *slog.Logger
	now func() time.Time
	// audit and alerts make rec, the recorder every entry goes through.
	audit  AuditLog
	alerts *alerts.Engine
	rec    *alerts.Recorder
	// budgets keeps differential-privacy budgets.
	budgets *budget.Store
	// guard is the differencing guard: the sketches of every protected
	// release, by grantee department and dataset.
	guard *guard.Store
	// The sandbox engine's limits per cross-department query, and the
	// engine, opened at the first such query (sandboxEngine).
	sandboxLimits engine.Limits
	engineOnce    sync.Once
	engine        *engine.Engine
	engineErr     error
	// src gives the state in force (broker/state): the workflow service,
	// or, without one, the state New builds from its arguments (boot
	// collects the options' parts for it).
	src  state.Source
	boot bootParts
	// metrics are the broker's Prometheus metrics (broker/metrics).
	metrics *metrics.Broker
	// admission decides when an allowed query's work starts (admit.go).
	admissionCfg *AdmissionConfig
	admission    *admission.Controller
	// tracer makes the query's spans (tracing.go): tracerProvider's, or
	// a no-op.
	tracerProvider trace.TracerProvider
	tracer         trace.Tracer

	mu      sync.Mutex
	pending map[string]*pendingQuery
}

// Option configures a Server.
type Option func(*Server)

// WithTLS sets the server's TLS configuration; without it the service
// refuses to start (tokens must never travel in clear).
func WithTLS(c *tls.Config) Option { return func(s *Server) { s.tls = c } }

// WithLogger sets the operational logger. It never receives SQL literals or
// result values.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithGuard keeps the differencing guard's memory of released groups in
// g; without it a protected (aggregate-only) release is refused.
func WithGuard(g *guard.Store) Option { return func(s *Server) { s.guard = g } }

// WithState makes the broker read the state in force from src (the
// workflow service, broker/workflow) instead of building a fixed one from
// New's arguments: a change then applies to the very next request.
func WithState(src state.Source) Option { return func(s *Server) { s.src = src } }

// WithAgents sets the department agents' clients by department id (for the
// state New builds).
func WithAgents(a map[string]state.AgentClient) Option { return func(s *Server) { s.boot.agents = a } }

// bootParts are what options give New for the state it builds.
type bootParts struct {
	agents   map[string]state.AgentClient
	grants   []sluice.Grant
	purposes []sluice.Purpose
}

// WithAlerts raises review alerts from every audit entry; grants are
// the grants in force for the state New builds.
func WithAlerts(e *alerts.Engine, grants []sluice.Grant) Option {
	return func(s *Server) { s.alerts, s.boot.grants = e, grants }
}

// WithSandboxLimits sets the limits of each cross-department query in the
// sandbox engine: memory (spilling to disk beyond it), threads, spill
// directory and size, and time.
func WithSandboxLimits(lim engine.Limits) Option {
	return func(s *Server) { s.sandboxLimits = lim }
}

// closeEngine closes the sandbox engine if it was opened (its spill
// directory goes with it).
func (s *Server) closeEngine() {
	s.engineOnce.Do(func() { s.engineErr = sluice.Errorf(sluice.EUnavailable, "the broker is shutting down") })
	if s.engine != nil {
		s.engine.Close()
	}
}

// sandboxEngine opens the sandbox engine once, at the first
// cross-department query.
func (s *Server) sandboxEngine() (*engine.Engine, error) {
	s.engineOnce.Do(func() {
		s.engine, s.engineErr = engine.Open(context.Background(), s.sandboxLimits)
	})
	return s.engine, s.engineErr
}

// WithGrants tells the broker the grants in force (for the state New
// builds).
func WithGrants(grants []sluice.Grant) Option {
	return func(s *Server) { s.boot.grants = grants }
}

// WithPurposes sets the purposes registry (for the state New builds).
func WithPurposes(ps []sluice.Purpose) Option {
	return func(s *Server) { s.boot.purposes = ps }
}

// New assembles a broker from its parts. The policy engine must already
// hold the catalog, purposes and grants (policy.Engine.Update); they are
// the state the broker decides under unless WithState gives another
// source.
func New(cat *sluice.Catalog, eng *policy.Engine, log AuditLog, users *state.Users, opts ...Option) (*Server, error) {
	s := &Server{
		audit:   log,
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		pending: map[string]*pendingQuery{},
	}
	s.Alloc = memory.DefaultAllocator
	for _, o := range opts {
		o(s)
	}
	if cat == nil || eng == nil || log == nil || users == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "broker: catalog, policy, audit log and users are all required")
	}
	if s.boot.agents == nil {
		s.boot.agents = map[string]state.AgentClient{}
	}
	if s.src == nil {
		s.src = state.Static(state.New(cat, s.boot.purposes, s.boot.grants, users, s.boot.agents, eng.Current()))
	}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	s.rec = alerts.NewRecorder(s.metrics.AuditLog(log), s.alerts, s.log)
	s.tracer = tracing.Tracer(s.tracerProvider)
	acfg := DefaultAdmission()
	if s.admissionCfg != nil {
		acfg = *s.admissionCfg
	}
	if field, problem := acfg.check(); field != "" {
		return nil, sluice.Errorf(sluice.EInvalid, "broker: %s %s", field, problem)
	}
	ctl, err := acfg.controller()
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "broker: %v", err)
	}
	s.admission = ctl
	s.metrics.WatchAdmission(ctl)
	info := map[flightsql.SqlInfo]any{
		flightsql.SqlInfoFlightSqlServerName:         "Sluice",
		flightsql.SqlInfoFlightSqlServerVersion:      Version,
		flightsql.SqlInfoFlightSqlServerArrowVersion: ArrowVersion,
		flightsql.SqlInfoFlightSqlServerReadOnly:     true,
		flightsql.SqlInfoFlightSqlServerSql:          true,
		flightsql.SqlInfoFlightSqlServerSubstrait:    false,
		flightsql.SqlInfoFlightSqlServerTransaction:  int32(0),
		flightsql.SqlInfoFlightSqlServerCancel:       false,
		// The dialect is PostgreSQL's grammar (planner/sqlast): names are
		// quoted with double quotes; the catalog matches names without
		// regard to case, quoted or not.
		flightsql.SqlInfoIdentifierQuoteChar:           `"`,
		flightsql.SqlInfoIdentifierCase:                int32(flightsql.SqlCaseSensitivityCaseInsensitive),
		flightsql.SqlInfoQuotedIdentifierCase:          int32(flightsql.SqlCaseSensitivityCaseInsensitive),
		flightsql.SqlInfoDDLCatalog:                    false,
		flightsql.SqlInfoSelectForUpdateSupported:      false,
		flightsql.SqlInfoStoredProceduresSupported:     false,
		flightsql.SqlInfoSupportsColumnAliasing:        true,
		flightsql.SqlInfoNullPlusNullIsNull:            true,
		flightsql.SqlInfoSupportsTableCorrelationNames: true,
		flightsql.SqlInfoSupportsExpressionsInOrderBy:  true,
		// What the planner plans today (docs/sql.md): subqueries in
		// comparisons, EXISTS and IN (not quantified ANY/ALL), LEFT JOIN
		// as the one outer join, UNION and UNION ALL.
		flightsql.SqlInfoSupportedSubqueries:    int32(1<<0 | 1<<1 | 1<<2),
		flightsql.SqlInfoOuterJoinsSupportLevel: int32(1),
		flightsql.SqlInfoSupportedUnions:        int32(1<<0 | 1<<1), // UNION, UNION ALL
		flightsql.SqlInfoStringFunctions:        []string{"lower", "upper", "length", "substr", "substring", "trim", "coalesce"},
		flightsql.SqlInfoNumericFunctions:       []string{"abs", "round"},
		flightsql.SqlInfoDateTimeFunctions:      []string{"extract", "date_trunc"},
	}
	for id, v := range info {
		if err := s.RegisterSqlInfo(id, v); err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "register sql info: %v", err)
		}
	}
	return s, nil
}

// snap is the state in force; a request loads it once.
func (s *Server) snap() *state.State { return s.src.Current() }

// WithMetrics records the broker's metrics in m (default: a registry of
// its own, see Metrics).
func WithMetrics(m *metrics.Broker) Option { return func(s *Server) { s.metrics = m } }

// Metrics are the broker's metrics, served at /metrics on the admin
// listener.
func (s *Server) Metrics() *metrics.Broker { return s.metrics }

// Recorder is the recorder every audit entry of this broker goes through
// (the admin API records through it too).
func (s *Server) Recorder() *alerts.Recorder { return s.rec }

// Serve runs the Flight SQL service on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if s.tls == nil {
		return sluice.Errorf(sluice.EInvalid, "broker: TLS is required (tokens must never travel in clear); configure tls_cert and tls_key")
	}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(acceptClientCerts(s.tls))),
		grpc.ChainUnaryInterceptor(s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamAuth),
		grpc.MaxRecvMsgSize(4<<20),
	)
	flight.RegisterFlightServiceServer(gs, flightsql.NewFlightServer(s))
	defer s.closeEngine()
	go s.expireHandles(ctx)
	go s.rec.WatchGrants(ctx, s.now, func() []sluice.Grant { return s.snap().Grants })
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		gs.Stop()
	}
	return nil
}

// expireHandles drops statement handles nobody fetched, so an abandoned
// query does not hold its plan forever.
func (s *Server) expireHandles(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cutoff := s.now().Add(-handleTTL)
			s.mu.Lock()
			for h, q := range s.pending {
				if q.created.Before(cutoff) {
					delete(s.pending, h)
				}
			}
			s.mu.Unlock()
		}
	}
}

// record appends an entry to the audit log and lets the alert rules look
// at it (alerts.Recorder).
func (s *Server) record(ctx context.Context, e *audit.Entry) error { return s.recordTraced(ctx, e) }
