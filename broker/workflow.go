package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/policy"
)

// WorkflowStore is the broker's state: catalog, purposes, users and tokens,
// applications, grants and error reports (broker/store, on SQLite or
// PostgreSQL).
type WorkflowStore interface {
	Meta(ctx context.Context, key string) (string, bool, error)
	SetMeta(ctx context.Context, key, value string) error

	Departments(ctx context.Context) ([]*sluice.Department, error)
	Department(ctx context.Context, id string) (*sluice.Department, error)
	PutDepartment(ctx context.Context, d *sluice.Department, ch sluice.CatalogChange) (sluice.CatalogChange, error)
	CatalogChanges(ctx context.Context, department string, limit int) ([]sluice.CatalogChange, error)

	Purposes(ctx context.Context) ([]sluice.Purpose, error)
	PutPurpose(ctx context.Context, p sluice.Purpose) error
	RemovePurpose(ctx context.Context, code string) error

	Users(ctx context.Context) ([]sluice.User, error)
	User(ctx context.Context, name string) (*sluice.User, error)
	PutUser(ctx context.Context, u sluice.User) error
	AddToken(ctx context.Context, t sluice.Token) error
	Tokens(ctx context.Context, user string) ([]sluice.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error

	Grants(ctx context.Context) ([]sluice.Grant, error)
	Grant(ctx context.Context, id string) (*sluice.Grant, error)
	PutGrant(ctx context.Context, g sluice.Grant) error

	CreateApplication(ctx context.Context, a *sluice.Application) error
	Application(ctx context.Context, id string) (*sluice.Application, error)
	UpdateApplication(ctx context.Context, a *sluice.Application, from sluice.ApplicationStatus, newGrants ...sluice.Grant) error
	Applications(ctx context.Context, f store.ApplicationFilter) ([]sluice.Application, error)

	CreateReport(ctx context.Context, r *sluice.ErrorReport) error
	Report(ctx context.Context, id string) (*sluice.ErrorReport, error)
	UpdateReport(ctx context.Context, r *sluice.ErrorReport, from sluice.ReportStatus) error
	Reports(ctx context.Context, f store.ReportFilter) ([]sluice.ErrorReport, error)
}

// Registrar is what registration needs from a department's agent: reading
// its source schema and handing it a classified dataset to serve.
type Registrar interface {
	Describe(ctx context.Context, source, table string) (*agent.TableDescription, error)
	ListTables(ctx context.Context, source string) ([]string, error)
	RegisterDataset(ctx context.Context, ds *sluice.Dataset, source, table string) error
	UnregisterDataset(ctx context.Context, name string) error
}

// DialFunc connects to a department's agent, pinning its certificate.
type DialFunc func(ctx context.Context, department, address, fingerprint string) (AgentClient, error)

// PolicyRecorder keeps every policy revision (the audit log does), so an
// entry's revision can be shown and diffed later.
type PolicyRecorder interface {
	RecordPolicyRevision(ctx context.Context, revision string, modules map[string]string, data []byte) error
}

// BudgetLimiter sets differential-privacy budgets from grants.
type BudgetLimiter interface {
	SetLimit(ctx context.Context, principal, purpose string, epsilon float64, grantID string) error
}

// workflow is the broker's data-sharing workflow over its store.
type workflow struct {
	store   WorkflowStore
	cal     *sluice.Calendar
	dial    DialFunc
	policy  *policy.Engine
	revs    PolicyRecorder
	budgets BudgetLimiter
	mu      sync.Mutex // serialises reloads, so states are built in order
	clients map[string]clientKey
}

type clientKey struct {
	address, fingerprint string
	client               AgentClient
}

// WithWorkflow makes the broker's state come from st, changeable through
// the admin API; changes take effect on the next request.
func WithWorkflow(st WorkflowStore, cal *sluice.Calendar, dial DialFunc, revs PolicyRecorder, budgets BudgetLimiter) Option {
	return func(s *Server) {
		s.wf = &workflow{store: st, cal: cal, dial: dial, revs: revs, budgets: budgets, clients: map[string]clientKey{}}
	}
}

// Reload rebuilds the state from the store and swaps it in: the catalog,
// the policy's data, users, grants, budgets and agent connections. Every
// workflow change calls it before answering, so the change applies to the
// very next request.
func (s *Server) Reload(ctx context.Context) error {
	wf := s.wf
	if wf == nil {
		return sluice.Errorf(sluice.ENotSupported, "this broker has no workflow store; its state comes from files")
	}
	wf.mu.Lock()
	defer wf.mu.Unlock()
	depts, err := wf.store.Departments(ctx)
	if err != nil {
		return err
	}
	cat, err := sluice.NewCatalog(depts...)
	if err != nil {
		return err
	}
	purposes, err := wf.store.Purposes(ctx)
	if err != nil {
		return err
	}
	grants, err := wf.store.Grants(ctx)
	if err != nil {
		return err
	}
	users, err := wf.store.Users(ctx)
	if err != nil {
		return err
	}
	tokens, err := wf.store.Tokens(ctx, "")
	if err != nil {
		return err
	}
	agents := map[string]AgentClient{}
	for _, d := range depts {
		if d.Agent.Address == "" || d.Agent.Fingerprint == "" {
			continue // registered, agent not yet: its datasets answer Unavailable
		}
		if c, ok := wf.clients[d.ID]; ok && c.address == d.Agent.Address && c.fingerprint == d.Agent.Fingerprint {
			agents[d.ID] = c.client
			continue
		}
		c, err := wf.dial(ctx, d.ID, d.Agent.Address, d.Agent.Fingerprint)
		if err != nil {
			return err
		}
		if old, ok := wf.clients[d.ID]; ok {
			// Requests in flight may still hold the old connection.
			// A statement planned under the old state fetches through it
			// until its handle expires.
			time.AfterFunc(s.handleTTL+time.Minute, func() { old.client.Close() })
		}
		wf.clients[d.ID] = clientKey{d.Agent.Address, d.Agent.Fingerprint, c}
		agents[d.ID] = c
	}
	if err := s.policy.Update(ctx, cat, purposes, grants); err != nil {
		return err
	}
	if wf.revs != nil {
		if err := wf.revs.RecordPolicyRevision(ctx, s.policy.Revision(), s.policy.Modules(), s.policy.Data()); err != nil {
			return err
		}
	}
	if wf.budgets != nil {
		for _, g := range grants {
			if g.Epsilon > 0 && !g.Revoked {
				if err := wf.budgets.SetLimit(ctx, g.Grantee, g.Purpose, g.Epsilon, g.ID); err != nil {
					return err
				}
			}
		}
	}
	// Update prepared the revision over exactly this catalog, these
	// purposes and grants (reloads are serialised by wf.mu): it goes into
	// the same state, so no request decides with one and plans with the
	// other.
	s.cur.Store(newState(cat, purposes, grants, usersFromStore(users, tokens, s.now), agents, s.policy.Current()))
	return nil
}

// closeClients closes the agent connections the workflow opened.
func (wf *workflow) closeClients() {
	wf.mu.Lock()
	defer wf.mu.Unlock()
	for _, c := range wf.clients {
		c.client.Close()
	}
	wf.clients = map[string]clientKey{}
}

// Seed imports what the configuration files declare into the store. Users,
// tokens, purposes and grants are imported once each (an admin's later
// revocation or removal is not undone by a restart); a department file is
// imported again whenever its content changes, as a catalog change by
// "config".
func (s *Server) Seed(ctx context.Context, depts []*sluice.Department, users []UserRecord, purposes []sluice.Purpose, grants []sluice.Grant) error {
	wf := s.wf
	if wf == nil {
		return sluice.Errorf(sluice.ENotSupported, "this broker has no workflow store")
	}
	once := func(key string, do func() error) error {
		_, done, err := wf.store.Meta(ctx, "import:"+key)
		if err != nil || done {
			return err
		}
		if err := do(); err != nil {
			return err
		}
		return wf.store.SetMeta(ctx, "import:"+key, s.now().UTC().Format(time.RFC3339))
	}
	for _, d := range depts {
		raw, err := json.Marshal(d)
		if err != nil {
			return sluice.Errorf(sluice.EInternal, "encode department %s: %v", d.ID, err)
		}
		sum := sha256.Sum256(raw)
		hash := hex.EncodeToString(sum[:])
		key := "import:department:" + d.ID
		if prev, _, err := wf.store.Meta(ctx, key); err != nil {
			return err
		} else if prev == hash {
			continue
		}
		if _, err := wf.store.PutDepartment(ctx, d, sluice.CatalogChange{
			Time: s.now(), Actor: "config", Department: d.ID, Action: "import",
			Summary: "imported from the broker's configuration", CatalogVersion: "",
		}); err != nil {
			return err
		}
		if err := wf.store.SetMeta(ctx, key, hash); err != nil {
			return err
		}
	}
	for _, p := range purposes {
		if err := once("purpose:"+p.Code, func() error { return wf.store.PutPurpose(ctx, p) }); err != nil {
			return err
		}
	}
	for _, r := range users {
		err := once("user:"+r.Name, func() error {
			return wf.store.PutUser(ctx, sluice.User{Name: r.Name, Role: r.Role, Department: r.Department, CreatedAt: s.now(), CreatedBy: "config"})
		})
		if err != nil {
			return err
		}
		err = once("token:"+r.TokenSHA256, func() error {
			return wf.store.AddToken(ctx, sluice.Token{ID: "cfg-" + r.TokenSHA256[:12], User: r.Name, SHA256: r.TokenSHA256, Label: "from the users file", CreatedAt: s.now()})
		})
		if err != nil {
			return err
		}
	}
	for _, g := range grants {
		if err := once("grant:"+g.ID, func() error { return wf.store.PutGrant(ctx, g) }); err != nil {
			return err
		}
	}
	return nil
}
