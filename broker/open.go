package broker

import (
	"context"
	"errors"
	"fmt"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/alerts"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/broker/guard"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/policy"
)

// Parts are the pieces a broker is assembled from, loaded from its
// configuration; the CLI's offline commands (policy explain) use them too.
type Parts struct {
	Config  *Config
	Catalog *sluice.Catalog
	Users   *Users
	// UserRecords and Departments are the files' contents, imported into
	// the store.
	UserRecords []UserRecord
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
	users, _ := NewUsers(nil)
	var records []UserRecord
	if cfg.Users != "" {
		if records, err = LoadUserRecords(cfg.Users); err != nil {
			return nil, err
		}
		if users, err = NewUsers(records); err != nil {
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
			if ds := cat.Dataset(splitDataset(g.Dataset)); ds != nil && len(g.Clamp) > 0 {
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

// Open assembles a broker from its configuration: loads every part, opens
// the audit store and prepares a client for each department's agent. The
// returned close function releases them.
func Open(ctx context.Context, cfg *Config, opts ...Option) (*Server, func() error, error) {
	parts, err := LoadParts(ctx, cfg)
	if err != nil {
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
	var srv *Server
	closeAll := func() error {
		var errs []error
		if srv != nil && srv.wf != nil {
			srv.wf.closeClients()
		}
		errs = append(errs, wfStore.Close(), guards.Close(), budgets.Close(), log.Close())
		return errors.Join(errs...)
	}
	dial := func(ctx context.Context, dept, addr, fp string) (AgentClient, error) {
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
	all := append([]Option{
		WithAlerts(alertEngine, parts.Grants),
		WithGrants(parts.Grants),
		WithSandboxLimits(cfg.SandboxMemoryMiB<<20, cfg.SandboxTimeout),
		WithBudgets(budgets),
		WithGuard(guards),
		WithRetention(log, cfg.Retention, cfg.ArchiveDir),
		WithReview(log, pubKeys),
		WithTLS(tlsutil.ServerConfig(cert, nil)),
		WithPurposes(parts.Purposes),
	}, opts...)
	all = append(all, WithWorkflow(wfStore, cal, dial, log, budgets))
	srv, err = New(parts.Catalog, parts.Policy, log, parts.Users, all...)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	// The files seed the store; from then on the store is the state.
	if err := srv.Seed(ctx, parts.Departments, parts.UserRecords, parts.Purposes, parts.Grants); err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := srv.Reload(ctx); err != nil {
		closeAll()
		return nil, nil, err
	}
	return srv, closeAll, nil
}
