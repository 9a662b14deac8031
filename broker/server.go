// Package broker is the analysts' entry point: a Flight SQL service over TLS
// that authenticates bearer tokens, reads the declared purpose, plans each
// statement, asks the policy, writes the audit entry and only then streams
// the department agent's fragment to the client.
package broker

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow/flight"
	"github.com/apache/arrow/go/v15/arrow/flight/flightsql"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/alerts"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/broker/guard"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
)

// PurposeHeader is the gRPC metadata key that carries the declared purpose.
const PurposeHeader = "x-sluice-purpose"

// Version is reported through GetSqlInfo.
const Version = "0.1.0"

// AgentClient is what the broker needs from a department agent.
type AgentClient interface {
	Fetch(ctx context.Context, f *planner.Fragment) (*agent.Stream, error)
	// The private-join protocol (see adapters/agent/psi*.go).
	PSIBlind(ctx context.Context, f *planner.Fragment, keyColumn, keyDomain string) (*agent.PSIStream, error)
	PSIReblind(ctx context.Context, session string, points [][]byte) ([][]byte, error)
	PSIClose(ctx context.Context, session string) error
	Close() error
}

// AuditLog is where every request is recorded before any row is released.
type AuditLog interface {
	Append(ctx context.Context, e *audit.Entry) error
}

// Server is the broker's Flight SQL service.
type Server struct {
	flightsql.BaseServer

	policy    *policy.Engine
	audit     AuditLog
	tls       *tls.Config
	log       *slog.Logger
	now       func() time.Time
	handleTTL time.Duration
	alerts    *alerts.Engine
	// budgets keeps differential-privacy budgets; grantsByID finds the
	// grantee and purpose a budget belongs to.
	budgets *budget.Store
	// guard is the differencing guard: the sketches of every protected
	// release, by grantee department and dataset.
	guard *guard.Store
	// Sandbox limits per cross-department query.
	sandboxMemory int64
	sandboxTime   time.Duration
	// review is what the admin API reads.
	review     AuditReader
	reviewKeys []audit.PublicKey
	// Retention: entries older than retention move to archives in archiveDir.
	archiver   Archiver
	retention  time.Duration
	archiveDir string
	// cur is the state in force (state.go); boot collects the options'
	// parts until New builds the first state.
	cur  atomic.Pointer[state]
	boot bootParts
	// wf is the workflow (nil: state comes from files only).
	wf *workflow

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

// WithAgents sets the department agents' clients by department id.
func WithAgents(a map[string]AgentClient) Option { return func(s *Server) { s.boot.agents = a } }

// bootParts are what options give New for the first state.
type bootParts struct {
	agents   map[string]AgentClient
	grants   []sluice.Grant
	purposes []sluice.Purpose
}

// WithAlerts raises review alerts from every audit entry; grants are
// watched for expiry.
func WithAlerts(e *alerts.Engine, grants []sluice.Grant) Option {
	return func(s *Server) { s.alerts, s.boot.grants = e, grants }
}

// WithSandboxLimits sets the memory budget and deadline of each
// cross-department query in the sandbox.
func WithSandboxLimits(memory int64, d time.Duration) Option {
	return func(s *Server) { s.sandboxMemory, s.sandboxTime = memory, d }
}

// WithGrants tells the broker the grants in force (for budgets and alerts).
func WithGrants(grants []sluice.Grant) Option {
	return func(s *Server) { s.boot.grants = grants }
}

// Archiver moves old audit entries to archive files.
type Archiver interface {
	Archive(ctx context.Context, before time.Time, dir string) (*audit.ArchiveInfo, error)
}

// WithRetention archives audit entries older than d into dir, hourly.
func WithRetention(a Archiver, d time.Duration, dir string) Option {
	return func(s *Server) { s.archiver, s.retention, s.archiveDir = a, d, dir }
}

// WithPurposes sets the purposes registry.
func WithPurposes(ps []sluice.Purpose) Option {
	return func(s *Server) { s.boot.purposes = ps }
}

// New assembles a broker from its parts. The policy engine must already
// hold the catalog, purposes and grants (policy.Engine.Update).
func New(cat *sluice.Catalog, eng *policy.Engine, log AuditLog, users *Users, opts ...Option) (*Server, error) {
	s := &Server{
		policy:    eng,
		audit:     log,
		log:       slog.New(slog.DiscardHandler),
		now:       time.Now,
		handleTTL: 5 * time.Minute,
		pending:   map[string]*pendingQuery{},
	}
	s.Alloc = memory.DefaultAllocator
	for _, o := range opts {
		o(s)
	}
	if cat == nil || eng == nil || log == nil || users == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "broker: catalog, policy, audit log and users are all required")
	}
	if s.boot.agents == nil {
		s.boot.agents = map[string]AgentClient{}
	}
	s.cur.Store(newState(cat, s.boot.purposes, s.boot.grants, users, s.boot.agents, eng.Current()))
	info := map[flightsql.SqlInfo]any{
		flightsql.SqlInfoFlightSqlServerName:         "Sluice",
		flightsql.SqlInfoFlightSqlServerVersion:      Version,
		flightsql.SqlInfoFlightSqlServerArrowVersion: "15.0.2",
		flightsql.SqlInfoFlightSqlServerReadOnly:     true,
		flightsql.SqlInfoFlightSqlServerSql:          true,
		flightsql.SqlInfoFlightSqlServerSubstrait:    false,
		flightsql.SqlInfoFlightSqlServerTransaction:  int32(0),
		flightsql.SqlInfoFlightSqlServerCancel:       false,
	}
	for id, v := range info {
		if err := s.RegisterSqlInfo(id, v); err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "register sql info: %v", err)
		}
	}
	return s, nil
}

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
	go s.expireHandles(ctx)
	go s.watchGrants(ctx)
	go s.archiveOld(ctx)
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
			cutoff := s.now().Add(-s.handleTTL)
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

// CatalogVersion is the SHA-256 of the catalog's canonical JSON: every
// audit entry records the version it was decided under.
func CatalogVersion(cat *sluice.Catalog) string {
	raw, err := json.Marshal(cat.Datasets())
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// record appends an entry to the audit log — the one way the broker writes
// it — and then lets the alert rules look at it. An alert is itself an
// entry; failing to write it does not undo the request it is about.
func (s *Server) record(ctx context.Context, e *audit.Entry) error {
	if err := s.audit.Append(ctx, e); err != nil {
		return err
	}
	if s.alerts != nil {
		for _, a := range s.alerts.Observe(*e) {
			s.raise(ctx, a)
		}
	}
	return nil
}

func (s *Server) raise(ctx context.Context, a alerts.Alert) {
	if err := s.audit.Append(context.WithoutCancel(ctx), a.Entry()); err != nil {
		s.log.Error("audit append of an alert failed", "rule", a.Rule, "err", err)
		return
	}
	s.log.Warn("alert", "rule", a.Rule, "principal", a.Principal, "message", a.Message)
}

// watchGrants raises an alert for each grant about to expire, at start and
// then hourly.
func (s *Server) watchGrants(ctx context.Context) {
	if s.alerts == nil {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		for _, a := range s.alerts.ExpiringGrants(s.now(), s.snap().grants) {
			s.raise(ctx, a)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// archiveOld applies the retention period: hourly, entries older than it
// move to a compressed archive that the chain verifies across.
func (s *Server) archiveOld(ctx context.Context) {
	if s.archiver == nil || s.retention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		info, err := s.archiver.Archive(ctx, s.now().Add(-s.retention), s.archiveDir)
		switch {
		case err != nil:
			s.log.Error("audit archive failed", "err", err)
		case info != nil && info.Entries > 0:
			s.log.Info("audit entries archived", "file", info.File, "entries", info.Entries)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
