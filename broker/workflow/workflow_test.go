package workflow_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/broker/workflow"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
)

// fakeAgent stands in for a department's agent: it answers pings and
// registration, and remembers whether it was closed.
type fakeAgent struct {
	address string
	pingErr error
	closed  atomic.Bool

	mu         sync.Mutex
	registered map[string]*sluice.Dataset
}

func (a *fakeAgent) Fetch(context.Context, *planner.Fragment) (*agent.Stream, error) {
	return nil, errors.New("fetch: not in this test")
}
func (a *fakeAgent) PSIBlind(context.Context, *planner.Fragment, string, string) (*agent.PSIStream, error) {
	return nil, errors.New("psi: not in this test")
}
func (a *fakeAgent) PSIReblind(context.Context, string, [][]byte) ([][]byte, error) {
	return nil, errors.New("psi: not in this test")
}
func (a *fakeAgent) PSIClose(context.Context, string) error { return nil }
func (a *fakeAgent) Close() error                           { a.closed.Store(true); return nil }
func (a *fakeAgent) Ping(context.Context) error             { return a.pingErr }

func (a *fakeAgent) Describe(_ context.Context, source, table string) (*agent.TableDescription, error) {
	return &agent.TableDescription{Source: "main", Table: table, Columns: []agent.TableColumn{
		{Name: "id_card", Type: sluice.TypeText}, {Name: "name", Type: sluice.TypeText},
		{Name: "phone", Type: sluice.TypeText}, {Name: "district", Type: sluice.TypeText},
	}}, nil
}
func (a *fakeAgent) ListTables(context.Context, string) ([]string, error) {
	return []string{"vehicles"}, nil
}
func (a *fakeAgent) RegisterDataset(_ context.Context, ds *sluice.Dataset, _, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.registered == nil {
		a.registered = map[string]*sluice.Dataset{}
	}
	a.registered[ds.Name] = ds
	return nil
}
func (a *fakeAgent) UnregisterDataset(_ context.Context, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.registered, name)
	return nil
}

type fakeRevisions struct{ n atomic.Int32 }

func (r *fakeRevisions) RecordPolicyRevision(context.Context, string, map[string]string, []byte) error {
	r.n.Add(1)
	return nil
}

type fakeBudgets struct {
	mu     sync.Mutex
	limits map[string]float64 // grant id → epsilon
}

func (b *fakeBudgets) SetLimit(_ context.Context, _, _ string, epsilon float64, grantID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limits[grantID] = epsilon
	return nil
}

// fixture is a workflow over a fresh SQLite store with two departments
// (civil provides, health applies), a purpose and five users, on a clock
// the test moves.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	wf      *workflow.Service
	cal     *sluice.Calendar
	now     time.Time
	revs    *fakeRevisions
	budgets *fakeBudgets

	mu     sync.Mutex
	dialed []*fakeAgent
}

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

const (
	civilFP  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	healthFP = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var (
	hana = sluice.Principal{Name: "hana", Role: sluice.RoleAnalyst, Department: "health"}
	dave = sluice.Principal{Name: "dave", Role: sluice.RolePlatformAdmin, Department: "platform"}
	cora = sluice.Principal{Name: "cora", Role: sluice.RoleDeptAdmin, Department: "civil"}
	hank = sluice.Principal{Name: "hank", Role: sluice.RoleDeptAdmin, Department: "health"}
	tina = sluice.Principal{Name: "tina", Role: sluice.RoleDeptAdmin, Department: "transport"}
)

func departments() []*sluice.Department {
	col := func(name string, g sluice.Grade, rel sluice.Release, mask sluice.MaskRule, domain string) *sluice.Column {
		return &sluice.Column{Name: name, Type: sluice.TypeText, Grade: g, Release: rel, Mask: mask, KeyDomain: domain}
	}
	civil := &sluice.Department{ID: "civil", Name: "Civil Affairs Bureau", Agent: sluice.AgentInfo{Address: "civil:1", Fingerprint: civilFP},
		Datasets: []*sluice.Dataset{{
			Name: "residents", Table: "residents", ShareClass: sluice.ShareConditional, LegalBasis: "Regulation on Minimum Living Security, art. 12",
			Columns: []*sluice.Column{
				col("id_card", sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
				col("name", sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskSurname, ""),
				col("gender", sluice.GradeL2, sluice.ReleasePlain, "", ""),
				col("district", sluice.GradeL1, sluice.ReleasePlain, "", ""),
				col("notes", sluice.GradeL4, sluice.ReleaseHidden, "", ""),
			},
		}}}
	health := &sluice.Department{ID: "health", Name: "Healthcare Security Administration", Agent: sluice.AgentInfo{Address: "health:1", Fingerprint: healthFP},
		Datasets: []*sluice.Dataset{{
			Name: "insured", Table: "insured", ShareClass: sluice.ShareConditional, LegalBasis: "Medical Security Fund Regulation, art. 38",
			Columns: []*sluice.Column{
				col("id_card", sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
				col("insurance_type", sluice.GradeL2, sluice.ReleasePlain, "", ""),
			},
		}}}
	return []*sluice.Department{civil, health}
}

func users() []state.UserRecord {
	var out []state.UserRecord
	for _, p := range []sluice.Principal{hana, dave, cora, hank, tina} {
		out = append(out, state.UserRecord{Name: p.Name, Role: p.Role, Department: p.Department, TokenSHA256: state.HashToken("tok-" + p.Name)})
	}
	return out
}

const purpose = "public-health-planning"

func newFixture(t *testing.T, grants ...sluice.Grant) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), revs: &fakeRevisions{}, budgets: &fakeBudgets{limits: map[string]float64{}},
		// A Friday morning; the Monday after is a holiday.
		now: time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)}
	st, err := store.Open(f.ctx, filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := policy.New(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.cal, err = sluice.NewCalendar(sluice.CalendarConfig{TimeZone: "Asia/Shanghai", Holidays: []string{"2026-11-23"}}); err != nil {
		t.Fatal(err)
	}
	f.wf, err = workflow.New(st, eng, workflow.Options{Dial: f.dial, Calendar: f.cal, Revisions: f.revs, Budgets: f.budgets,
		Now: func() time.Time { return f.now }, ClientGrace: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.wf.Close)
	purposes := []sluice.Purpose{{Code: purpose, Name: "Public health planning", LegalDuty: "Basic Medical and Health Law, art. 2"}}
	if err := f.wf.Seed(f.ctx, departments(), users(), purposes, grants); err != nil {
		t.Fatal(err)
	}
	if err := f.wf.Reload(f.ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) dial(_ context.Context, dept, address, fingerprint string) (state.AgentClient, error) {
	a := &fakeAgent{address: address}
	if strings.HasPrefix(address, "unreachable") {
		a.pingErr = errors.New("connection refused")
	}
	f.mu.Lock()
	f.dialed = append(f.dialed, a)
	f.mu.Unlock()
	return a, nil
}

func (f *fixture) dials() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.dialed)
}

// decide plans and decides sql for p under the state in force, as the
// query path does.
func (f *fixture) decide(p sluice.Principal, sql string) *policy.Decision {
	f.t.Helper()
	st := f.wf.Current()
	plan, err := st.Planner.Plan("q", sql)
	if err != nil {
		f.t.Fatal(err)
	}
	dec, err := st.Policy.Decide(f.ctx, policy.Input{Principal: p, Purpose: purpose, Now: f.now,
		Datasets: plan.Datasets, Columns: plan.Usages, Aggregate: plan.Aggregate})
	if err != nil {
		f.t.Fatal(err)
	}
	return dec
}

func wantCode(t *testing.T, err error, code string, what string) {
	t.Helper()
	if sluice.ErrorCode(err) != code {
		t.Fatalf("%s: want %s, got %v", what, code, err)
	}
}

func application() sluice.Application {
	return sluice.Application{
		Items:   []sluice.ApplicationItem{{Dataset: "civil.residents", Columns: []string{"gender", "district"}}},
		Purpose: purpose, Justification: "plan clinics by district and gender",
		ValidFrom: time.Date(2026, 11, 1, 0, 0, 0, 0, shanghai), ValidUntil: time.Date(2027, 11, 1, 0, 0, 0, 0, shanghai),
		Mode: sluice.ModeRows,
	}
}

// TestSeedAndReload: the files seed the store once; the state in force has
// the catalog, purposes, users and their tokens, an agent per department
// and the policy revision prepared over them; reloading again keeps the
// agent connections.
func TestSeedAndReload(t *testing.T) {
	f := newFixture(t)
	st := f.wf.Current()
	if st == nil || st.Catalog.Dataset("civil", "residents") == nil || st.Purposes[purpose].Code != purpose {
		t.Fatalf("the state lacks the seeded catalog or purposes: %+v", st)
	}
	if st.CatalogVersion != state.CatalogVersion(st.Catalog) || st.Policy == nil {
		t.Fatalf("catalog version %q, policy %v", st.CatalogVersion, st.Policy)
	}
	if p, ok := st.Users.Authenticate("tok-hana"); !ok || p != hana {
		t.Fatalf("hana's seeded token: %+v %v", p, ok)
	}
	if len(st.Agents) != 2 || f.dials() != 2 {
		t.Fatalf("agents %v after %d dials, want civil and health", st.Agents, f.dials())
	}
	if f.revs.n.Load() != 1 {
		t.Fatalf("policy revisions recorded: %d, want 1", f.revs.n.Load())
	}
	// Seeding again changes nothing; reloading keeps the connections.
	if err := f.wf.Seed(f.ctx, departments(), users(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.wf.Reload(f.ctx); err != nil {
		t.Fatal(err)
	}
	if f.dials() != 2 {
		t.Fatalf("a reload with the same agents dialled again (%d dials)", f.dials())
	}
	changes, err := f.wf.CatalogChanges(f.ctx, "", 100)
	if err != nil || len(changes) != 2 {
		t.Fatalf("catalog changes after seeding twice: %d %v, want one import per department", len(changes), err)
	}
	if f.wf.Current() == st {
		t.Fatal("a reload must swap in a new state")
	}
}

// TestApplicationToGrant: apply, forward, approve — the very next decision
// under the state in force relies on the grant; revoke — it no longer does.
// Each step is taken only by whom the rules name.
func TestApplicationToGrant(t *testing.T) {
	f := newFixture(t)
	const sql = "SELECT gender, district FROM civil.residents"
	if dec := f.decide(hana, sql); dec.Allow {
		t.Fatal("allowed before any grant")
	}
	_, err := f.wf.Apply(f.ctx, dave, application())
	wantCode(t, err, sluice.EDenied, "a platform admin applying")
	bad := application()
	bad.Items[0].Columns = []string{"notes"}
	_, err = f.wf.Apply(f.ctx, hana, bad)
	wantCode(t, err, sluice.EInvalid, "applying for a hidden column")
	a, err := f.wf.Apply(f.ctx, hana, application())
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != sluice.AppSubmitted || a.Applicant != "hana" || a.Provider != "civil" {
		t.Fatalf("submitted application: %+v", a)
	}
	_, err = f.wf.Forward(f.ctx, hank, a.ID, workflow.ReviewDecision{})
	wantCode(t, err, sluice.EDenied, "a department admin doing the first review")
	_, err = f.wf.Approve(f.ctx, cora, a.ID, workflow.ReviewDecision{})
	wantCode(t, err, sluice.EConflict, "approving before the first review")
	if a, err = f.wf.Forward(f.ctx, dave, a.ID, workflow.ReviewDecision{Note: "complete"}); err != nil || a.Status != sluice.AppForwarded {
		t.Fatalf("forward: %+v %v", a, err)
	}
	_, err = f.wf.Approve(f.ctx, hank, a.ID, workflow.ReviewDecision{})
	wantCode(t, err, sluice.EDenied, "an admin of another department approving")
	if a, err = f.wf.Approve(f.ctx, cora, a.ID, workflow.ReviewDecision{K: 20}); err != nil {
		t.Fatal(err)
	}
	if a.Status != sluice.AppApproved || len(a.GrantIDs) != 1 {
		t.Fatalf("approved application: %+v", a)
	}
	g := f.wf.Current().GrantsByID[a.GrantIDs[0]]
	if g == nil || g.Grantee != "hana" || g.Dataset != "civil.residents" || g.K != 20 {
		t.Fatalf("the state in force lacks the approved grant: %+v", g)
	}
	if dec := f.decide(hana, sql); !dec.Allow {
		t.Fatalf("denied after approval: %s", dec.Explain())
	}
	_, err = f.wf.Approve(f.ctx, cora, a.ID, workflow.ReviewDecision{})
	wantCode(t, err, sluice.EConflict, "approving twice")
	grants, err := f.wf.ListGrants(f.ctx, hana)
	if err != nil || len(grants) != 1 {
		t.Fatalf("hana's grants: %+v %v", grants, err)
	}
	_, err = f.wf.RevokeGrant(f.ctx, hank, g.ID, "")
	wantCode(t, err, sluice.EDenied, "an admin of another department revoking")
	if _, err := f.wf.RevokeGrant(f.ctx, cora, g.ID, "clinic plan done"); err != nil {
		t.Fatal(err)
	}
	if !f.wf.Current().GrantsByID[g.ID].Revoked {
		t.Fatal("the state in force still holds the grant unrevoked")
	}
	if dec := f.decide(hana, sql); dec.Allow {
		t.Fatal("allowed after the grant was revoked")
	}
	_, err = f.wf.RevokeGrant(f.ctx, cora, g.ID, "")
	wantCode(t, err, sluice.EConflict, "revoking twice")
}

// TestRefusalNeedsBasis: a refusal must cite its basis, which the applicant
// then reads; a closed application cannot be decided again.
func TestRefusalNeedsBasis(t *testing.T) {
	f := newFixture(t)
	a, err := f.wf.Apply(f.ctx, hana, application())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.wf.Refuse(f.ctx, dave, a.ID, workflow.ReviewDecision{Reason: "not needed"})
	wantCode(t, err, sluice.EInvalid, "a refusal without a basis")
	_, err = f.wf.Refuse(f.ctx, cora, a.ID, workflow.ReviewDecision{Basis: "art. 9"})
	wantCode(t, err, sluice.EDenied, "the provider refusing before the first review")
	a, err = f.wf.Refuse(f.ctx, dave, a.ID, workflow.ReviewDecision{Basis: "Data Sharing Measures, art. 9", Reason: "aggregate statistics suffice"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.wf.GetApplication(f.ctx, hana, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != sluice.AppRefused || got.RefusalBasis != "Data Sharing Measures, art. 9" || got.RefusalReason != "aggregate statistics suffice" {
		t.Fatalf("refused application as the applicant reads it: %+v", got)
	}
	if last := got.History[len(got.History)-1]; last.Action != "refuse" || !strings.Contains(last.Note, "art. 9") {
		t.Fatalf("history: %+v", got.History)
	}
	_, err = f.wf.Withdraw(f.ctx, hana, a.ID, workflow.ReviewDecision{})
	wantCode(t, err, sluice.EConflict, "withdrawing a refused application")
	// Someone with no part in it does not learn it exists.
	_, err = f.wf.GetApplication(f.ctx, tina, a.ID)
	wantCode(t, err, sluice.ENotFound, "a stranger reading the application")
}

// TestDeadlines: the platform's 3 and the provider's 10 working days are
// counted on the calendar (a holiday does not count), and an application
// past its deadline is listed as overdue by working days.
func TestDeadlines(t *testing.T) {
	f := newFixture(t)
	a, err := f.wf.Apply(f.ctx, hana, application())
	if err != nil {
		t.Fatal(err)
	}
	// Submitted on Friday 20 November; Monday 23 is a holiday: Tuesday,
	// Wednesday, Thursday.
	if want := time.Date(2026, 11, 26, 23, 59, 59, 999999999, shanghai); !a.PlatformDue.Equal(want) {
		t.Fatalf("platform due %s, want %s", a.PlatformDue, want)
	}
	over, err := f.wf.OverdueApplications(f.ctx, dave)
	if err != nil || len(over) != 0 {
		t.Fatalf("overdue on the day of submission: %+v %v", over, err)
	}
	f.now = time.Date(2026, 12, 1, 10, 0, 0, 0, shanghai) // Tuesday: Friday, Monday, Tuesday late
	over, err = f.wf.OverdueApplications(f.ctx, dave)
	if err != nil || len(over) != 1 || over[0].WaitingOn != "platform" || over[0].WorkingDaysLate != 3 {
		t.Fatalf("overdue: %+v %v", over, err)
	}
	if over, _ := f.wf.OverdueApplications(f.ctx, tina); len(over) != 0 {
		t.Fatalf("overdue applications shown to a stranger: %+v", over)
	}
	a, err = f.wf.Forward(f.ctx, dave, a.ID, workflow.ReviewDecision{})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 12, 15, 23, 59, 59, 999999999, shanghai); a.ProviderDue == nil || !a.ProviderDue.Equal(want) {
		t.Fatalf("provider due %v, want %s", a.ProviderDue, want)
	}
}

// TestRegistration: registering an agent dials and pings it first; a
// department admin's classified dataset is handed to the agent and
// versioned in the catalog; removing it withdraws it from both.
func TestRegistration(t *testing.T) {
	f := newFixture(t)
	_, err := f.wf.RegisterAgent(f.ctx, dave, "transport", workflow.AgentRegistration{Name: "Transport Bureau", Address: "unreachable:1", Fingerprint: civilFP})
	wantCode(t, err, sluice.EUnavailable, "an agent that does not answer")
	if f.wf.Current().Catalog.Department("transport") != nil {
		t.Fatal("an unreachable agent was registered")
	}
	_, err = f.wf.RegisterAgent(f.ctx, hana, "transport", workflow.AgentRegistration{Name: "Transport Bureau", Address: "transport:1", Fingerprint: civilFP})
	wantCode(t, err, sluice.EDenied, "an analyst registering an agent")
	ch, err := f.wf.RegisterAgent(f.ctx, dave, "transport", workflow.AgentRegistration{Name: "Transport Bureau", Address: "transport:1", Fingerprint: strings.ToUpper(civilFP[:7]) + civilFP[7:]})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Action != "register-agent" || f.wf.Current().Agents["transport"] == nil {
		t.Fatalf("change %+v, agents %v", ch, f.wf.Current().Agents)
	}
	reg, err := f.wf.ProposeDataset(f.ctx, tina, "transport", "", "vehicles")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*sluice.Column{}
	for _, c := range reg.Dataset.Columns {
		byName[c.Name] = c
	}
	if byName["id_card"].Release != sluice.ReleaseJoinKey || byName["phone"].Mask != sluice.MaskPhone || byName["district"].Release != sluice.ReleasePlain {
		t.Fatalf("proposal: %+v", reg.Dataset.Columns)
	}
	_, err = f.wf.PutDataset(f.ctx, cora, "transport", *reg)
	wantCode(t, err, sluice.EDenied, "another department's admin classifying")
	_, err = f.wf.PutDataset(f.ctx, tina, "transport", *reg)
	wantCode(t, err, sluice.EInvalid, "a conditional dataset without its legal basis")
	if !strings.Contains(sluice.ErrorMessage(err), "legal_basis") {
		t.Fatalf("the refusal does not name the legal basis: %v", err)
	}
	reg.Dataset.LegalBasis = "Road Traffic Safety Law, art. 8"
	ch, err = f.wf.PutDataset(f.ctx, tina, "transport", *reg)
	if err != nil {
		t.Fatal(err)
	}
	st := f.wf.Current()
	if ch.Action != "register-dataset" || st.Catalog.Dataset("transport", "vehicles") == nil || ch.CatalogVersion != st.CatalogVersion {
		t.Fatalf("change %+v; catalog version %s", ch, st.CatalogVersion)
	}
	ag := st.Agents["transport"].(*fakeAgent)
	if ag.registered["vehicles"] == nil {
		t.Fatal("the agent was not handed the classification")
	}
	if _, err := f.wf.RemoveDataset(f.ctx, tina, "transport", "vehicles"); err != nil {
		t.Fatal(err)
	}
	if f.wf.Current().Catalog.Dataset("transport", "vehicles") != nil || ag.registered["vehicles"] != nil {
		t.Fatal("the removed dataset is still in the catalog or the agent's registry")
	}
}

// TestAgentReplaced: a new address for an agent dials it; the old
// connection is closed after the grace period, not at once.
func TestAgentReplaced(t *testing.T) {
	f := newFixture(t)
	old := f.wf.Current().Agents["civil"].(*fakeAgent)
	if _, err := f.wf.RegisterAgent(f.ctx, cora, "civil", workflow.AgentRegistration{Address: "civil:2", Fingerprint: civilFP}); err != nil {
		t.Fatal(err)
	}
	if now := f.wf.Current().Agents["civil"].(*fakeAgent); now == old || now.address != "civil:2" {
		t.Fatalf("agent of civil after re-registration: %+v", now)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !old.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the replaced connection was never closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAccounts: tokens issued and revoked through the workflow take effect
// in the state in force at once; only the platform admin manages users and
// purposes, and a purpose a grant relies on cannot be removed.
func TestAccounts(t *testing.T) {
	grant := sluice.Grant{ID: "g-dp", Grantee: "hana", Dataset: "health.insured", Columns: []string{"insurance_type"}, Purpose: purpose,
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, shanghai), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, shanghai),
		Mode: sluice.ModeAggregate, K: 10, Epsilon: 2, EpsilonPerQuery: 0.5}
	f := newFixture(t, grant)
	if f.budgets.limits["g-dp"] != 2 {
		t.Fatalf("budget limits after reload: %v", f.budgets.limits)
	}
	tok, err := f.wf.IssueToken(f.ctx, hana, "hana", "laptop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.ExpiresAt.Equal(f.now.Add(workflow.DefaultTokenTTL)) {
		t.Fatalf("token expires %s", tok.ExpiresAt)
	}
	if p, ok := f.wf.Current().Users.Authenticate(tok.Secret); !ok || p.Name != "hana" {
		t.Fatal("a new token does not authenticate at once")
	}
	_, err = f.wf.IssueToken(f.ctx, hana, "dave", "", 0)
	wantCode(t, err, sluice.EDenied, "issuing a token for another user")
	if err := f.wf.RevokeToken(f.ctx, tina, tok.ID); sluice.ErrorCode(err) != sluice.ENotFound {
		t.Fatalf("revoking someone else's token: %v", err)
	}
	if err := f.wf.RevokeToken(f.ctx, hana, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.wf.Current().Users.Authenticate(tok.Secret); ok {
		t.Fatal("a revoked token still authenticates")
	}
	_, err = f.wf.PutUser(f.ctx, cora, sluice.User{Name: "eve", Role: sluice.RolePlatformAdmin, Department: "civil"})
	wantCode(t, err, sluice.EDenied, "a department admin creating a platform admin")
	err = f.wf.RemovePurpose(f.ctx, dave, purpose)
	wantCode(t, err, sluice.EConflict, "removing a purpose a grant in force names")
}

// TestReports: an error report goes to the provider, who answers it; a
// rejection needs a reason, and the reporter sees the answer as unseen
// until it reads it.
func TestReports(t *testing.T) {
	f := newFixture(t)
	_, err := f.wf.ReportError(f.ctx, hana, workflow.ReportErrorRequest{Dataset: "civil.residents", Column: "notes", Description: "the notes look wrong"})
	wantCode(t, err, sluice.ENotFound, "reporting on a hidden column of another department")
	r, err := f.wf.ReportError(f.ctx, hana, workflow.ReportErrorRequest{Dataset: "civil.residents", Column: "DISTRICT", Description: "district 城东区 is misspelt in some rows"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Provider != "civil" || r.Column != "district" || r.Status != sluice.ReportSubmitted {
		t.Fatalf("report: %+v", r)
	}
	_, err = f.wf.MoveReport(f.ctx, hank, r.ID, "acknowledge", "")
	wantCode(t, err, sluice.EDenied, "the reporter's department admin answering")
	_, err = f.wf.MoveReport(f.ctx, cora, r.ID, "reject", "")
	wantCode(t, err, sluice.EInvalid, "a rejection without a reason")
	if r, err = f.wf.MoveReport(f.ctx, cora, r.ID, "acknowledge", ""); err != nil || r.Status != sluice.ReportAcknowledged || r.Seen {
		t.Fatalf("acknowledged: %+v %v", r, err)
	}
	if r, err = f.wf.GetReport(f.ctx, hana, r.ID); err != nil || !r.Seen {
		t.Fatalf("read by the reporter: %+v %v", r, err)
	}
}
