package broker

import (
	"context"
	"errors"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/alerts"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/policy"
)

// Parts are the pieces a broker is assembled from, loaded from its
// configuration; the CLI's offline commands (policy explain) use them too.
type Parts struct {
	Config   *Config
	Catalog  *sluice.Catalog
	Users    *Users
	Purposes []sluice.Purpose
	Grants   []sluice.Grant
	Policy   *policy.Engine
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
	users, err := LoadUsers(cfg.Users)
	if err != nil {
		return nil, err
	}
	purposes, err := sluice.LoadPurposes(cfg.Purposes)
	if err != nil {
		return nil, err
	}
	var grants []sluice.Grant
	if cfg.Grants != "" {
		if grants, err = sluice.LoadGrants(cfg.Grants); err != nil {
			return nil, err
		}
	}
	var popts []policy.Option
	if cfg.PolicyDir != "" {
		popts = append(popts, policy.WithPolicyDir(cfg.PolicyDir))
	}
	if cfg.DefaultK > 0 {
		popts = append(popts, policy.WithDefaultK(cfg.DefaultK))
	}
	eng, err := policy.New(ctx, popts...)
	if err != nil {
		return nil, err
	}
	if err := eng.Update(ctx, cat, purposes, grants); err != nil {
		return nil, err
	}
	return &Parts{Config: cfg, Catalog: cat, Users: users, Purposes: purposes, Grants: grants, Policy: eng}, nil
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
	// Keep the policy as it stands, so any entry's revision can be shown
	// and diffed later.
	if err := log.RecordPolicyRevision(ctx, parts.Policy.Revision(), parts.Policy.Modules(), parts.Policy.Data()); err != nil {
		log.Close()
		return nil, nil, err
	}
	budgets, err := budget.Open(ctx, cfg.Store)
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	clients := map[string]AgentClient{}
	closeAll := func() error {
		var errs []error
		for _, c := range clients {
			errs = append(errs, c.Close())
		}
		errs = append(errs, budgets.Close(), log.Close())
		return errors.Join(errs...)
	}
	// Budgets come from the grants that carry one; reloading is idempotent.
	for _, g := range parts.Grants {
		if g.Epsilon > 0 {
			if err := budgets.SetLimit(ctx, g.Grantee, g.Purpose, g.Epsilon, g.ID); err != nil {
				closeAll()
				return nil, nil, err
			}
		}
	}
	for _, d := range parts.Catalog.Departments() {
		if d.Agent.Address == "" || d.Agent.Fingerprint == "" {
			closeAll()
			return nil, nil, sluice.Errorf(sluice.EInvalid, "department %s: agent.address and agent.fingerprint are required for the broker to reach its agent", d.ID)
		}
		c, err := agent.Dial(ctx, d.ID, d.Agent.Address, d.Agent.Fingerprint, cert)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients[d.ID] = c
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
		WithRetention(log, cfg.Retention, cfg.ArchiveDir),
		WithReview(log, pubKeys),
		WithTLS(tlsutil.ServerConfig(cert, nil)),
		WithAgents(clients),
		WithPurposes(parts.Purposes),
	}, opts...)
	srv, err := New(parts.Catalog, parts.Policy, log, parts.Users, all...)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return srv, closeAll, nil
}
