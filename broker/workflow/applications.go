package workflow

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
)

// Apply submits an access application. The datasets must exist, be
// conditional (unconditional ones need none; share class none cannot be
// applied for), and the columns must exist and be releasable.
func (w *Service) Apply(ctx context.Context, p sluice.Principal, a sluice.Application) (*sluice.Application, error) {
	if p.Role != sluice.RoleAnalyst && p.Role != sluice.RoleDeptAdmin {
		return nil, denied("role %s may not apply for data; analysts and department admins may", p.Role)
	}
	a.Applicant, a.Department = p.Name, p.Department
	if err := a.Validate(); err != nil {
		return nil, err
	}
	st := w.Current()
	if _, ok := st.Purposes[a.Purpose]; !ok {
		return nil, sluice.Errorf(sluice.EInvalid, "purpose: %q is not a registered purpose; registered: %s", a.Purpose, st.PurposeList())
	}
	if a.Provider == p.Department {
		return nil, sluice.Errorf(sluice.EInvalid, "items: %s is your own department's data; its analysts read it without an application", a.Provider)
	}
	for i, it := range a.Items {
		ds := st.Catalog.Dataset(state.SplitDataset(it.Dataset))
		if ds == nil {
			return nil, sluice.Errorf(sluice.ENotFound, "items[%d].dataset: no dataset %s in the catalog; browse it with 'sluice catalog search'", i, it.Dataset)
		}
		switch ds.ShareClass {
		case sluice.ShareUnconditional:
			return nil, sluice.Errorf(sluice.EInvalid, "items[%d]: %s is shared unconditionally (无条件共享); query it directly, no application is needed", i, it.Dataset)
		case sluice.ShareNone:
			return nil, sluice.Errorf(sluice.EInvalid, "items[%d]: %s is not shared (不予共享); legal basis: %s", i, it.Dataset, ds.LegalBasis)
		}
		for j, c := range it.Columns {
			col := ds.Column(c)
			if col == nil {
				return nil, sluice.Errorf(sluice.ENotFound, "items[%d].columns[%d]: %s has no column %q", i, j, it.Dataset, c)
			}
			if col.Release == sluice.ReleaseHidden {
				return nil, sluice.Errorf(sluice.EInvalid, "items[%d].columns[%d]: %s.%s is hidden and never leaves its department", i, j, it.Dataset, col.Name)
			}
			it.Columns[j] = col.Name
		}
		if err := sluice.CheckClamp(ds, it.Clamp, fmt.Sprintf("items[%d]", i)); err != nil {
			return nil, err
		}
		if len(it.Clamp) > 0 {
			// Under the catalog's spelling, as the columns.
			clamp := make(map[string]sluice.Bounds, len(it.Clamp))
			for c, b := range it.Clamp {
				clamp[ds.Column(c).Name] = b
			}
			a.Items[i].Clamp = clamp
		}
	}
	if err := checkRowFilter(st, a.Items, a.RowFilter); err != nil {
		return nil, err
	}
	now := w.now()
	a.ID = "app-" + now.UTC().Format("20060102") + "-" + uuid.NewString()[:8]
	a.Status = sluice.AppSubmitted
	a.SubmittedAt = now
	a.PlatformDue = w.cal.Deadline(now, sluice.PlatformReviewDays)
	a.ForwardedAt, a.ProviderDue, a.DecidedAt, a.GrantIDs = nil, nil, nil, nil
	a.RefusalBasis, a.RefusalReason = "", ""
	a.History = []sluice.ApplicationEvent{{Time: now, Actor: p.Name, Role: p.Role, Action: "submit", Status: a.Status, Note: "platform review due " + a.PlatformDue.Format(time.DateOnly)}}
	if err := w.store.CreateApplication(ctx, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// checkRowFilter requires a row filter's column to be a plain column of
// every dataset it restricts, so the filter compares real values.
func checkRowFilter(st *state.State, items []sluice.ApplicationItem, f *sluice.RowFilter) error {
	if f == nil {
		return nil
	}
	for _, it := range items {
		ds := st.Catalog.Dataset(state.SplitDataset(it.Dataset))
		col := ds.Column(f.Column)
		if col == nil {
			return sluice.Errorf(sluice.EInvalid, "row_filter.column: %s has no column %q", it.Dataset, f.Column)
		}
		if col.Release != sluice.ReleasePlain {
			return sluice.Errorf(sluice.EInvalid, "row_filter.column: %s.%s is %s; a row filter needs a plain column", it.Dataset, col.Name, col.Release)
		}
	}
	return nil
}

// canSeeApplication: the applicant and its department's admin, the
// provider's admin once forwarded, the platform admin and the auditor.
func canSeeApplication(p sluice.Principal, a *sluice.Application) bool {
	switch {
	case p.Role == sluice.RolePlatformAdmin || p.Role == sluice.RoleAuditor:
		return true
	case p.Name == a.Applicant:
		return true
	case isDeptAdmin(p, a.Department):
		return true
	case isDeptAdmin(p, a.Provider) && a.Status != sluice.AppSubmitted:
		return true
	}
	return false
}

// GetApplication returns one application the principal may see.
func (w *Service) GetApplication(ctx context.Context, p sluice.Principal, id string) (*sluice.Application, error) {
	a, err := w.store.Application(ctx, id)
	if err != nil {
		return nil, err
	}
	if !canSeeApplication(p, a) {
		// Same answer as an unknown id: others' applications are not
		// confirmed to exist.
		return nil, sluice.Errorf(sluice.ENotFound, "no application %s that you may see", id)
	}
	return a, nil
}

// ListApplications lists what the principal may see: its own, its
// department's, its provider queue, or all.
func (w *Service) ListApplications(ctx context.Context, p sluice.Principal, f store.ApplicationFilter) ([]sluice.Application, error) {
	all, err := w.store.Applications(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []sluice.Application{}
	for i := range all {
		if canSeeApplication(p, &all[i]) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// ReviewDecision is what a reviewer sends: a note; for a refusal the basis;
// for an approval optional tightening.
type ReviewDecision struct {
	Note   string `json:"note,omitempty"`
	Basis  string `json:"basis,omitempty"`  // refusal: the legal or policy basis
	Reason string `json:"reason,omitempty"` // refusal: why, for the applicant
	// Approval may tighten: aggregate-only, a larger k, an earlier end, a
	// row filter, a row cap; under a privacy budget a smaller ε (total or
	// per query) and narrower clamp bounds (dataset → column → [lo, hi],
	// within the bounds applied for).
	Mode            sluice.ReleaseMode                  `json:"mode,omitempty"`
	K               int                                 `json:"k,omitempty"`
	ValidUntil      *time.Time                          `json:"valid_until,omitempty"`
	RowFilter       *sluice.RowFilter                   `json:"row_filter,omitempty"`
	RowCap          int64                               `json:"row_cap,omitempty"`
	Epsilon         float64                             `json:"epsilon,omitempty"`
	EpsilonPerQuery float64                             `json:"epsilon_per_query,omitempty"`
	Clamp           map[string]map[string]sluice.Bounds `json:"clamp,omitempty"`
}

// tightenPrivacy applies an approval's smaller budget and narrower clamp
// bounds to a; anything that would loosen them is refused.
func tightenPrivacy(a *sluice.Application, d ReviewDecision) error {
	if d.Epsilon < 0 || d.EpsilonPerQuery < 0 {
		return sluice.Errorf(sluice.EInvalid, "epsilon, epsilon_per_query: must not be negative")
	}
	if (d.Epsilon > 0 || d.EpsilonPerQuery > 0 || len(d.Clamp) > 0) && a.Epsilon == 0 {
		return sluice.Errorf(sluice.EInvalid, "epsilon, epsilon_per_query, clamp: the application asks for no differential-privacy budget; approval cannot add one (refuse and ask for a new application)")
	}
	if d.Epsilon > 0 {
		if d.Epsilon > a.Epsilon {
			return sluice.Errorf(sluice.EInvalid, "epsilon: approval can lower the budget, not raise it above %g", a.Epsilon)
		}
		a.Epsilon = d.Epsilon
		a.EpsilonPerQuery = min(a.EpsilonPerQuery, a.Epsilon)
	}
	if d.EpsilonPerQuery > 0 {
		if d.EpsilonPerQuery > a.EpsilonPerQuery {
			return sluice.Errorf(sluice.EInvalid, "epsilon_per_query: approval can lower what each query spends, not raise it above %g", a.EpsilonPerQuery)
		}
		a.EpsilonPerQuery = d.EpsilonPerQuery
	}
	// a is the caller's copy: a refusal below leaves the stored application
	// as it was.
	for ds, cols := range d.Clamp {
		i := slices.IndexFunc(a.Items, func(it sluice.ApplicationItem) bool { return strings.EqualFold(it.Dataset, ds) })
		if i < 0 {
			return sluice.Errorf(sluice.EInvalid, "clamp.%s: the application has no such dataset", ds)
		}
		narrowed := maps.Clone(a.Items[i].Clamp)
		for col, b := range cols {
			old, ok := narrowed[col]
			if !ok {
				return sluice.Errorf(sluice.EInvalid, "clamp.%s.%s: the application states no bounds for it; approval can narrow bounds, not add them (without bounds no SUM of it is released)", ds, col)
			}
			if !(b.Lo() < b.Hi()) || b.Lo() < old.Lo() || b.Hi() > old.Hi() {
				return sluice.Errorf(sluice.EInvalid, "clamp.%s.%s: %s must be a range within the bounds applied for, %s", ds, col, b, old)
			}
			narrowed[col] = b
		}
		a.Items[i].Clamp = narrowed
	}
	return nil
}

// Forward is the platform's first review passing an application to the
// provider, whose 10 working days start now.
func (w *Service) Forward(ctx context.Context, p sluice.Principal, id string, d ReviewDecision) (*sluice.Application, error) {
	if p.Role != sluice.RolePlatformAdmin {
		return nil, denied("only the platform admin does the first review; you are %s", p.Role)
	}
	a, err := w.store.Application(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Status != sluice.AppSubmitted {
		return nil, sluice.Errorf(sluice.EConflict, "application %s is %s; only a submitted application can be forwarded", id, a.Status)
	}
	now := w.now()
	due := w.cal.Deadline(now, sluice.ProviderReviewDays)
	a.Status, a.ForwardedAt, a.ProviderDue = sluice.AppForwarded, &now, &due
	a.History = append(a.History, sluice.ApplicationEvent{Time: now, Actor: p.Name, Role: p.Role, Action: "forward", Status: a.Status,
		Note: strings.TrimSpace(d.Note + " (provider review due " + due.Format(time.DateOnly) + ")")})
	if err := w.store.UpdateApplication(ctx, a, sluice.AppSubmitted); err != nil {
		return nil, err
	}
	return a, nil
}

// Refuse ends an application: the platform at first review, or the
// provider. A refusal must cite its legal or policy basis.
func (w *Service) Refuse(ctx context.Context, p sluice.Principal, id string, d ReviewDecision) (*sluice.Application, error) {
	if strings.TrimSpace(d.Basis) == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "basis: a refusal must cite its legal or policy basis (e.g. the article of the data-sharing measures); the applicant sees it")
	}
	a, err := w.store.Application(ctx, id)
	if err != nil {
		return nil, err
	}
	from := a.Status
	switch {
	case from == sluice.AppSubmitted && p.Role == sluice.RolePlatformAdmin:
	case from == sluice.AppForwarded && isDeptAdmin(p, a.Provider):
	case from == sluice.AppSubmitted || from == sluice.AppForwarded:
		who := "the platform admin"
		if from == sluice.AppForwarded {
			who = "an admin of " + a.Provider
		}
		return nil, denied("application %s is %s: only %s may decide it now", id, from, who)
	default:
		return nil, sluice.Errorf(sluice.EConflict, "application %s is already %s", id, from)
	}
	now := w.now()
	a.Status, a.DecidedAt = sluice.AppRefused, &now
	a.RefusalBasis, a.RefusalReason = strings.TrimSpace(d.Basis), strings.TrimSpace(d.Reason)
	a.History = append(a.History, sluice.ApplicationEvent{Time: now, Actor: p.Name, Role: p.Role, Action: "refuse", Status: a.Status,
		Note: "basis: " + a.RefusalBasis + reasonSuffix(a.RefusalReason)})
	if err := w.store.UpdateApplication(ctx, a, from); err != nil {
		return nil, err
	}
	return a, nil
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return "; " + r
}

// Approve is the provider's yes: the grants are created with the
// application's status in one transaction, and the policy sees them at the
// next request.
func (w *Service) Approve(ctx context.Context, p sluice.Principal, id string, d ReviewDecision) (*sluice.Application, error) {
	a, err := w.store.Application(ctx, id)
	if err != nil {
		return nil, err
	}
	if !isDeptAdmin(p, a.Provider) {
		return nil, denied("only an admin of the provider %s may approve; you are %s of %s", a.Provider, p.Role, p.Department)
	}
	if a.Status != sluice.AppForwarded {
		return nil, sluice.Errorf(sluice.EConflict, "application %s is %s; only a forwarded application can be approved", id, a.Status)
	}
	// The provider may tighten, never widen.
	if d.Mode == sluice.ModeAggregate {
		a.Mode = sluice.ModeAggregate
	} else if d.Mode == sluice.ModeRows && a.Mode == sluice.ModeAggregate {
		return nil, sluice.Errorf(sluice.EInvalid, "mode: the application asked for aggregate-only; approval cannot widen it to rows")
	} else if d.Mode != "" && d.Mode != sluice.ModeRows {
		return nil, sluice.Errorf(sluice.EInvalid, "mode: must be rows or aggregate, got %q", d.Mode)
	}
	if d.K < 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "k: must be positive")
	}
	if d.K > a.K {
		a.K = d.K
	}
	if d.ValidUntil != nil {
		if d.ValidUntil.After(a.ValidUntil) {
			return nil, sluice.Errorf(sluice.EInvalid, "valid_until: approval can shorten the period, not extend it beyond %s", a.ValidUntil.Format(time.RFC3339))
		}
		a.ValidUntil = *d.ValidUntil
	}
	if d.RowFilter != nil {
		if a.RowFilter != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "row_filter: the application already has one (%s); refuse and ask for a new application to change it", a.RowFilter.Column)
		}
		if err := checkRowFilter(w.Current(), a.Items, d.RowFilter); err != nil {
			return nil, err
		}
		a.RowFilter = d.RowFilter
	}
	if d.RowCap > 0 && (a.RowCap == 0 || d.RowCap < a.RowCap) {
		a.RowCap = d.RowCap
	}
	if err := tightenPrivacy(a, d); err != nil {
		return nil, err
	}
	grants := a.Grants()
	for i := range grants {
		if err := sluice.ValidateGrant(&grants[i]); err != nil {
			return nil, err
		}
		a.GrantIDs = append(a.GrantIDs, grants[i].ID)
	}
	now := w.now()
	a.Status, a.DecidedAt = sluice.AppApproved, &now
	a.History = append(a.History, sluice.ApplicationEvent{Time: now, Actor: p.Name, Role: p.Role, Action: "approve", Status: a.Status,
		Note: strings.TrimSpace(d.Note + " grants: " + strings.Join(a.GrantIDs, ", "))})
	if err := w.store.UpdateApplication(ctx, a, sluice.AppForwarded, grants...); err != nil {
		return nil, err
	}
	return a, w.Reload(ctx)
}

// Withdraw is the applicant taking back an open application.
func (w *Service) Withdraw(ctx context.Context, p sluice.Principal, id string, d ReviewDecision) (*sluice.Application, error) {
	a, err := w.GetApplication(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if a.Applicant != p.Name {
		return nil, denied("only the applicant %s may withdraw application %s", a.Applicant, id)
	}
	if !a.Open() {
		return nil, sluice.Errorf(sluice.EConflict, "application %s is already %s", id, a.Status)
	}
	from := a.Status
	now := w.now()
	a.Status, a.DecidedAt = sluice.AppWithdrawn, &now
	a.History = append(a.History, sluice.ApplicationEvent{Time: now, Actor: p.Name, Role: p.Role, Action: "withdraw", Status: a.Status, Note: d.Note})
	if err := w.store.UpdateApplication(ctx, a, from); err != nil {
		return nil, err
	}
	return a, nil
}

// Overdue is an open application past its deadline.
type Overdue struct {
	Application     sluice.Application `json:"application"`
	WaitingOn       string             `json:"waiting_on"`
	Due             time.Time          `json:"due"`
	WorkingDaysLate int                `json:"working_days_late"`
}

// OverdueApplications lists open applications past their deadline that the
// principal may see, most overdue first.
func (w *Service) OverdueApplications(ctx context.Context, p sluice.Principal) ([]Overdue, error) {
	open, err := w.ListApplications(ctx, p, store.ApplicationFilter{Status: []sluice.ApplicationStatus{sluice.AppSubmitted, sluice.AppForwarded}})
	if err != nil {
		return nil, err
	}
	now := w.now()
	out := []Overdue{}
	for _, a := range open {
		who, due := a.WaitingOn()
		if due.IsZero() || !now.After(due) {
			continue
		}
		out = append(out, Overdue{Application: a, WaitingOn: who, Due: due, WorkingDaysLate: w.cal.WorkingDaysLate(due, now)})
	}
	slices.SortStableFunc(out, func(x, y Overdue) int { return x.Due.Compare(y.Due) })
	return out, nil
}

// RevokeGrant ends a grant at once: the provider's admin or the platform
// admin. The policy sees it at the next request.
func (w *Service) RevokeGrant(ctx context.Context, p sluice.Principal, id, reason string) (*sluice.Grant, error) {
	g, err := w.store.Grant(ctx, id)
	if err != nil {
		return nil, err
	}
	provider, _ := state.SplitDataset(g.Dataset)
	if p.Role != sluice.RolePlatformAdmin && !isDeptAdmin(p, provider) {
		return nil, denied("only an admin of the provider %s or the platform admin may revoke grant %s", provider, id)
	}
	if g.Revoked {
		return nil, sluice.Errorf(sluice.EConflict, "grant %s is already revoked (by %s)", id, g.RevokedBy)
	}
	now := w.now()
	g.Revoked, g.RevokedAt, g.RevokedBy = true, &now, p.Name+reasonSuffix(strings.TrimSpace(reason))
	if err := w.store.PutGrant(ctx, *g); err != nil {
		return nil, err
	}
	return g, w.Reload(ctx)
}

// ListGrants: the platform admin and auditor see all; a department admin
// the grants on its datasets and to its department; an analyst its own.
func (w *Service) ListGrants(ctx context.Context, p sluice.Principal) ([]sluice.Grant, error) {
	all, err := w.store.Grants(ctx)
	if err != nil {
		return nil, err
	}
	out := []sluice.Grant{}
	for _, g := range all {
		provider, _ := state.SplitDataset(g.Dataset)
		switch {
		case p.Role == sluice.RolePlatformAdmin || p.Role == sluice.RoleAuditor:
		case p.Role == sluice.RoleDeptAdmin && (provider == p.Department || g.Grantee == "dept:"+p.Department):
		case g.Names(p):
		default:
			continue
		}
		out = append(out, g)
	}
	return out, nil
}
