package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/adminapi"
	"github.com/sluice-gov/sluice/broker/alerts"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/broker/console"
	"github.com/sluice-gov/sluice/broker/guard"
	"github.com/sluice-gov/sluice/broker/metrics"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/broker/workflow"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/policy"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

// Parts are the pieces a broker is assembled from, loaded from its
// configuration; the CLI's offline commands (policy explain) use them too.
type Parts struct {
	Config  *Config
	Catalog *sluice.Catalog
	Users   *state.Users
	// UserRecords and Departments are the files' contents, imported into
	// the store.
	UserRecords []state.UserRecord
	Departments []*sluice.Department
	Purposes    []sluice.Purpose
	Grants      []sluice.Grant
	Policy      *policy.Engine
}

// LoadParts reads the catalog, users, purposes and grants a configuration
// names and prepares the policy over them. Any invalid file fails here,
// naming the file and field.
func LoadParts(ctx context.Context, cfg *Config) (*Parts, error) {
	depts := make([]*sluice.Department, 0, len(cfg.Departments))
	for _, f := range cfg.Departments {
		d, err := sluice.LoadDepartment(f)
		if err != nil {
			return nil, err
		}
		depts = append(depts, d)
	}
	cat, err := sluice.NewCatalog(depts...)
	if err != nil {
		return nil, err
	}
	users, _ := state.NewUsers(nil)
	var records []state.UserRecord
	if cfg.Users != "" {
		if records, err = state.LoadUserRecords(cfg.Users); err != nil {
			return nil, err
		}
		if users, err = state.NewUsers(records); err != nil {
			return nil, err
		}
	}
	var purposes []sluice.Purpose
	if cfg.Purposes != "" {
		if purposes, err = sluice.LoadPurposes(cfg.Purposes); err != nil {
			return nil, err
		}
	}
	var grants []sluice.Grant
	if cfg.Grants != "" {
		if grants, err = sluice.LoadGrants(cfg.Grants); err != nil {
			return nil, err
		}
		// Clamp bounds need the catalog to be checked: a numeric column
		// of the grant's dataset.
		for i, g := range grants {
			if ds := cat.Dataset(state.SplitDataset(g.Dataset)); ds != nil && len(g.Clamp) > 0 {
				if err := sluice.CheckClamp(ds, g.Clamp, fmt.Sprintf("grants[%d] (%s)", i, g.ID)); err != nil {
					return nil, sluice.Errorf(sluice.EInvalid, "%s: %s", cfg.Grants, sluice.ErrorMessage(err))
				}
			}
		}
	}
	var popts []policy.Option
	if cfg.PolicyDir != "" {
		popts = append(popts, policy.WithPolicyDir(cfg.PolicyDir))
	}
	if cfg.DefaultK > 0 {
		popts = append(popts, policy.WithDefaultK(cfg.DefaultK))
	}
	if len(cfg.DPGrades) > 0 {
		popts = append(popts, policy.WithDPGrades(cfg.DPGrades...))
	}
	eng, err := policy.New(ctx, popts...)
	if err != nil {
		return nil, err
	}
	if err := eng.Update(ctx, cat, purposes, grants); err != nil {
		return nil, err
	}
	return &Parts{Config: cfg, Catalog: cat, Users: users, UserRecords: records, Departments: depts, Purposes: purposes, Grants: grants, Policy: eng}, nil
}

// Broker is a broker assembled from its configuration: the Flight SQL
// service reading the state the workflow keeps, and the admin API over
// both.
type Broker struct {
	// Flight is the Flight SQL service and query path.
	Flight *Server
	// Workflow keeps the state in force (it is the Flight service's
	// state.Source) and serves the workflow endpoints of the admin API.
	Workflow *workflow.Service
	// Admin is the HTTPS admin API.
	Admin *adminapi.API
	// Metrics are the broker's metrics and Health its readiness checks,
	// served on the admin listener (/metrics, /healthz, /readyz).
	Metrics *metrics.Broker
	Health  *metrics.Health

	// Retention: entries older than retention move to archives in
	// archiveDir, hourly.
	archiver   Archiver
	retention  time.Duration
	archiveDir string
}

// Archiver moves old audit entries to archive files.
type Archiver interface {
	Archive(ctx context.Context, before time.Time, dir string) (*audit.ArchiveInfo, error)
}

// Serve runs the Flight SQL service on lis until ctx ends, and meanwhile
// applies the audit log's retention period.
func (b *Broker) Serve(ctx context.Context, lis net.Listener) error {
	go b.archiveOld(ctx)
	return b.Flight.Serve(ctx, lis)
}

// ServeAdmin serves the admin API over TLS on lis until ctx ends.
func (b *Broker) ServeAdmin(ctx context.Context, lis net.Listener) error {
	return b.Admin.Serve(ctx, lis)
}

// archiveOld applies the retention period: hourly, entries older than it
// move to a compressed archive that the chain verifies across.
func (b *Broker) archiveOld(ctx context.Context) {
	if b.archiver == nil || b.retention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		info, err := b.archiver.Archive(ctx, b.Flight.now().Add(-b.retention), b.archiveDir)
		switch {
		case err != nil:
			b.Flight.log.Error("audit archive failed", "err", err)
		case info != nil && info.Entries > 0:
			b.Flight.log.Info("audit entries archived", "file", info.File, "entries", info.Entries)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Open assembles a broker from its configuration: loads every part, opens
// the stores (audit log, budgets, differencing guard, workflow), seeds the
// workflow store from the files and loads the first state from it, and
// prepares a client for each department's agent. The returned close
// function releases them. The options configure the Flight SQL service;
// its logger and clock serve the workflow and the admin API too.
func Open(ctx context.Context, cfg *Config, opts ...Option) (*Broker, func() error, error) {
	opts, flushTraces, err := tracerFromConfig(ctx, cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	parts, err := LoadParts(ctx, cfg)
	if err != nil {
		flushTraces()
		return nil, nil, err
	}
	cert, err := tlsutil.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, nil, err
	}
	cal, err := sluice.NewCalendar(cfg.Calendar)
	if err != nil {
		return nil, nil, err
	}
	signers, err := cfg.AuditSigners()
	if err != nil {
		return nil, nil, err
	}
	aopts := []audit.Option{}
	if len(signers) > 0 {
		aopts = append(aopts, audit.WithSigners(signers...))
		if cfg.CheckpointEntries > 0 || cfg.CheckpointInterval > 0 {
			n, d := cfg.CheckpointEntries, cfg.CheckpointInterval
			if n == 0 {
				n = audit.DefaultCheckpointEntries
			}
			if d == 0 {
				d = audit.DefaultCheckpointInterval
			}
			aopts = append(aopts, audit.WithCheckpointEvery(n, d))
		}
	}
	log, err := audit.Open(ctx, cfg.Store, aopts...)
	if err != nil {
		return nil, nil, err
	}
	budgets, err := budget.Open(ctx, cfg.Store)
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	var gopts []guard.Option
	if cfg.GuardRetention > 0 {
		gopts = append(gopts, guard.WithRetention(cfg.GuardRetention))
	}
	guards, err := guard.Open(ctx, cfg.Store, gopts...)
	if err != nil {
		budgets.Close()
		log.Close()
		return nil, nil, err
	}
	wfStore, err := store.Open(ctx, cfg.Store)
	if err != nil {
		guards.Close()
		budgets.Close()
		log.Close()
		return nil, nil, err
	}
	var wf *workflow.Service
	closeAll := func() error {
		var errs []error
		if wf != nil {
			wf.Close()
		}
		errs = append(errs, wfStore.Close(), guards.Close(), budgets.Close(), log.Close(), flushTraces())
		return errors.Join(errs...)
	}
	dial := func(ctx context.Context, dept, addr, fp string) (state.AgentClient, error) {
		return agent.Dial(ctx, dept, addr, fp, cert)
	}
	pubKeys, err := cfg.AuditPublicKeys()
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rules := alerts.DefaultRules()
	if cfg.Alerts != "" {
		if rules, err = alerts.LoadRules(cfg.Alerts); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	alertEngine, err := alerts.New(rules)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	tlsConfig := tlsutil.ServerConfig(cert, nil)
	// The state comes from the workflow (WithState below), not from the
	// files' parts.
	all := append([]Option{
		WithAlerts(alertEngine, nil),
		WithSandboxLimits(engine.Limits{Memory: cfg.SandboxMemoryMiB << 20, Threads: cfg.SandboxThreads,
			SpillDir: cfg.SandboxSpillDir, MaxSpill: cfg.SandboxMaxSpillMiB << 20, QueryTime: cfg.SandboxTimeout}),
		WithBudgets(budgets),
		WithGuard(guards),
		WithAdmission(cfg.Admission),
		WithTLS(tlsConfig),
	}, opts...)
	// The workflow shares the Flight service's clock and logger.
	conf := configured(all)
	wf, err = workflow.New(wfStore, parts.Policy, workflow.Options{
		Dial: dial, Calendar: cal, Revisions: log, Budgets: budgets, Now: conf.now,
		// A statement planned under an old state fetches through its
		// agent connection until its handle expires.
		ClientGrace: handleTTL + time.Minute,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	// The files seed the store; from then on the store is the state.
	if err := wf.Seed(ctx, parts.Departments, parts.UserRecords, parts.Purposes, parts.Grants); err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := wf.Reload(ctx); err != nil {
		closeAll()
		return nil, nil, err
	}
	srv, err := New(parts.Catalog, parts.Policy, log, parts.Users, append(all, WithState(wf))...)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rd := &readiness{store: wfStore, audit: log, cert: &cert, cfg: cfg, src: wf, now: srv.now}
	health := &metrics.Health{Checks: rd.checks, Log: srv.log, Metrics: srv.Metrics()}
	healthz, readyz, metricsH := opsHandlers(srv.Metrics(), health)
	con, err := console.New(console.Config{State: wf, Review: log, Keys: pubKeys, Recorder: srv.Recorder(), Log: srv.log, Now: srv.now})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	admin := adminapi.New(adminapi.Config{
		State: wf, Workflow: wf, Review: log, Keys: pubKeys, Recorder: srv.Recorder(),
		TLS: tlsConfig, Log: srv.log, Now: srv.now,
		Ops:     &adminapi.Ops{Healthz: healthz, Readyz: readyz, Metrics: metricsH},
		Console: con.Handler(),
	})
	b := &Broker{Flight: srv, Workflow: wf, Admin: admin, Metrics: srv.Metrics(), Health: health, archiver: log, retention: cfg.Retention, archiveDir: cfg.ArchiveDir}
	return b, closeAll, nil
}

// configured applies options to a bare Server, to read what they set.
func configured(opts []Option) *Server {
	s := &Server{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}
