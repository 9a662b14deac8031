// Package workflow is the broker's data-sharing workflow over its store:
// the data resource catalog and agent and dataset registration, the
// purposes registry, users and tokens, access applications and their
// grants (on the working-day calendar), and error reports.
//
// The Service owns the state in force (broker/state): Reload builds a new
// snapshot from the store — catalog, the policy revision prepared over it,
// users and tokens, grants, budgets and agent connections — and swaps it
// in; every change calls it before answering, so the change applies to the
// very next request. The Flight SQL service and the admin API read the
// snapshot through state.Source, which the Service implements.
//
// The operations check the finer rules (whose department, which status)
// themselves; which roles may call an endpoint at all, and the audit of
// every call, are the admin API's (broker/adminapi).
package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/policy"
)

// Store is the workflow's persistent state: catalog, purposes, users and
// tokens, applications, grants and error reports (broker/store, on SQLite
// or PostgreSQL).
type Store interface {
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
type DialFunc func(ctx context.Context, department, address, fingerprint string) (state.AgentClient, error)

// PolicyRecorder keeps every policy revision (the audit log does), so an
// entry's revision can be shown and diffed later.
type PolicyRecorder interface {
	RecordPolicyRevision(ctx context.Context, revision string, modules map[string]string, data []byte) error
}

// BudgetLimiter sets differential-privacy budgets from grants.
type BudgetLimiter interface {
	SetLimit(ctx context.Context, principal, purpose string, epsilon float64, grantID string) error
}

// DefaultClientGrace is how long an agent connection replaced by a reload
// stays open by default: a statement planned under the old state fetches
// through it until its handle expires.
const DefaultClientGrace = 6 * time.Minute

// Options are the Service's collaborators besides its store and policy
// engine.
type Options struct {
	// Dial connects to departments' agents (required).
	Dial DialFunc
	// Calendar counts review deadlines (default: Monday to Friday in
	// sluice.DefaultTimeZone, no holidays).
	Calendar *sluice.Calendar
	// Revisions keeps every policy revision a reload prepares (optional).
	Revisions PolicyRecorder
	// Budgets receives the differential-privacy budgets of the grants at
	// each reload (optional).
	Budgets BudgetLimiter
	// Now replaces time.Now (tests).
	Now func() time.Time
	// ClientGrace is how long a replaced agent connection stays open
	// (default DefaultClientGrace).
	ClientGrace time.Duration
}

// Service is the data-sharing workflow over its store. It owns the state
// in force and implements state.Source.
type Service struct {
	store   Store
	policy  *policy.Engine
	cal     *sluice.Calendar
	dial    DialFunc
	revs    PolicyRecorder
	budgets BudgetLimiter
	now     func() time.Time
	grace   time.Duration

	cur     atomic.Pointer[state.State]
	mu      sync.Mutex // serialises reloads, so states are built in order
	clients map[string]clientKey
}

type clientKey struct {
	address, fingerprint string
	client               state.AgentClient
}

// New makes the workflow over st, preparing the policy with eng on every
// change. It has no state until the first Reload.
func New(st Store, eng *policy.Engine, o Options) (*Service, error) {
	if st == nil || eng == nil || o.Dial == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "workflow: a store, a policy engine and a dialer for the agents are all required")
	}
	if o.Calendar == nil {
		cal, err := sluice.NewCalendar(sluice.CalendarConfig{})
		if err != nil {
			return nil, err
		}
		o.Calendar = cal
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ClientGrace <= 0 {
		o.ClientGrace = DefaultClientGrace
	}
	return &Service{store: st, policy: eng, cal: o.Calendar, dial: o.Dial, revs: o.Revisions, budgets: o.Budgets,
		now: o.Now, grace: o.ClientGrace, clients: map[string]clientKey{}}, nil
}

// Current is the state in force (nil before the first Reload).
func (w *Service) Current() *state.State { return w.cur.Load() }

// Calendar is the working-day calendar deadlines are counted on.
func (w *Service) Calendar() *sluice.Calendar { return w.cal }

// Reload rebuilds the state from the store and swaps it in: the catalog,
// the policy's data, users, grants, budgets and agent connections. Every
// workflow change calls it before answering, so the change applies to the
// very next request.
func (w *Service) Reload(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	depts, err := w.store.Departments(ctx)
	if err != nil {
		return err
	}
	cat, err := sluice.NewCatalog(depts...)
	if err != nil {
		return err
	}
	purposes, err := w.store.Purposes(ctx)
	if err != nil {
		return err
	}
	grants, err := w.store.Grants(ctx)
	if err != nil {
		return err
	}
	users, err := w.store.Users(ctx)
	if err != nil {
		return err
	}
	tokens, err := w.store.Tokens(ctx, "")
	if err != nil {
		return err
	}
	agents := map[string]state.AgentClient{}
	for _, d := range depts {
		if d.Agent.Address == "" || d.Agent.Fingerprint == "" {
			continue // registered, agent not yet: its datasets answer Unavailable
		}
		if c, ok := w.clients[d.ID]; ok && c.address == d.Agent.Address && c.fingerprint == d.Agent.Fingerprint {
			agents[d.ID] = c.client
			continue
		}
		c, err := w.dial(ctx, d.ID, d.Agent.Address, d.Agent.Fingerprint)
		if err != nil {
			return err
		}
		if old, ok := w.clients[d.ID]; ok {
			// Requests in flight may still hold the old connection.
			// A statement planned under the old state fetches through it
			// until its handle expires.
			time.AfterFunc(w.grace, func() { old.client.Close() })
		}
		w.clients[d.ID] = clientKey{d.Agent.Address, d.Agent.Fingerprint, c}
		agents[d.ID] = c
	}
	if err := w.policy.Update(ctx, cat, purposes, grants); err != nil {
		return err
	}
	if w.revs != nil {
		if err := w.revs.RecordPolicyRevision(ctx, w.policy.Revision(), w.policy.Modules(), w.policy.Data()); err != nil {
			return err
		}
	}
	if w.budgets != nil {
		for _, g := range grants {
			if g.Epsilon > 0 && !g.Revoked {
				if err := w.budgets.SetLimit(ctx, g.Grantee, g.Purpose, g.Epsilon, g.ID); err != nil {
					return err
				}
			}
		}
	}
	// Update prepared the revision over exactly this catalog, these
	// purposes and grants (reloads are serialised by w.mu): it goes into
	// the same state, so no request decides with one and plans with the
	// other.
	w.cur.Store(state.New(cat, purposes, grants, state.UsersFromStore(users, tokens, w.now), agents, w.policy.Current()))
	return nil
}

// Close closes the agent connections the workflow opened.
func (w *Service) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.clients {
		c.client.Close()
	}
	w.clients = map[string]clientKey{}
}

// Seed imports what the configuration files declare into the store. Users,
// tokens, purposes and grants are imported once each (an admin's later
// revocation or removal is not undone by a restart); a department file is
// imported again whenever its content changes, as a catalog change by
// "config".
func (w *Service) Seed(ctx context.Context, depts []*sluice.Department, users []state.UserRecord, purposes []sluice.Purpose, grants []sluice.Grant) error {
	once := func(key string, do func() error) error {
		_, done, err := w.store.Meta(ctx, "import:"+key)
		if err != nil || done {
			return err
		}
		if err := do(); err != nil {
			return err
		}
		return w.store.SetMeta(ctx, "import:"+key, w.now().UTC().Format(time.RFC3339))
	}
	for _, d := range depts {
		raw, err := json.Marshal(d)
		if err != nil {
			return sluice.Errorf(sluice.EInternal, "encode department %s: %v", d.ID, err)
		}
		sum := sha256.Sum256(raw)
		hash := hex.EncodeToString(sum[:])
		key := "import:department:" + d.ID
		if prev, _, err := w.store.Meta(ctx, key); err != nil {
			return err
		} else if prev == hash {
			continue
		}
		if _, err := w.store.PutDepartment(ctx, d, sluice.CatalogChange{
			Time: w.now(), Actor: "config", Department: d.ID, Action: "import",
			Summary: "imported from the broker's configuration", CatalogVersion: "",
		}); err != nil {
			return err
		}
		if err := w.store.SetMeta(ctx, key, hash); err != nil {
			return err
		}
	}
	for _, p := range purposes {
		if err := once("purpose:"+p.Code, func() error { return w.store.PutPurpose(ctx, p) }); err != nil {
			return err
		}
	}
	for _, r := range users {
		err := once("user:"+r.Name, func() error {
			return w.store.PutUser(ctx, sluice.User{Name: r.Name, Role: r.Role, Department: r.Department, CreatedAt: w.now(), CreatedBy: "config"})
		})
		if err != nil {
			return err
		}
		err = once("token:"+r.TokenSHA256, func() error {
			return w.store.AddToken(ctx, sluice.Token{ID: "cfg-" + r.TokenSHA256[:12], User: r.Name, SHA256: r.TokenSHA256, Label: "from the users file", CreatedAt: w.now()})
		})
		if err != nil {
			return err
		}
	}
	for _, g := range grants {
		if err := once("grant:"+g.ID, func() error { return w.store.PutGrant(ctx, g) }); err != nil {
			return err
		}
	}
	return nil
}

// Purposes is the purposes registry as stored.
func (w *Service) Purposes(ctx context.Context) ([]sluice.Purpose, error) {
	return w.store.Purposes(ctx)
}

// Users lists the stored users.
func (w *Service) Users(ctx context.Context) ([]sluice.User, error) {
	return w.store.Users(ctx)
}

// CatalogChanges lists the catalog's versioned changes, newest first, of
// one department ("" for all).
func (w *Service) CatalogChanges(ctx context.Context, department string, limit int) ([]sluice.CatalogChange, error) {
	return w.store.CatalogChanges(ctx, department, limit)
}

// isDeptAdmin reports whether p administers department dept.
func isDeptAdmin(p sluice.Principal, dept string) bool {
	return p.Role == sluice.RoleDeptAdmin && p.Department == dept
}

func denied(format string, args ...any) error {
	return sluice.Errorf(sluice.EDenied, format, args...)
}
