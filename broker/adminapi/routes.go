package adminapi

import (
	"net/http"
	"slices"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/workflow"
)

// Route is one endpoint of the admin API.
type Route struct {
	Method, Path string
	// Roles that may call it at all (nil: every authenticated user); the
	// workflow checks the finer rules (whose department, whose application).
	Roles []sluice.Role
	// Mutates: audited before it runs, outcome after.
	Mutates bool
	// Workflow: needs the workflow store.
	Workflow bool
	// Created: answers 201 (the call creates a resource).
	Created bool
	handle  func(r *http.Request, p sluice.Principal) (any, error)
}

var (
	reviewers  = []sluice.Role{sluice.RoleAuditor, sluice.RolePlatformAdmin}
	dataUsers  = []sluice.Role{sluice.RoleAnalyst, sluice.RoleDeptAdmin}
	platform   = []sluice.Role{sluice.RolePlatformAdmin}
	deptAdmins = []sluice.Role{sluice.RoleDeptAdmin}
)

// Routes lists the admin API's endpoints: method, path, the roles that may
// call it, and whether it changes state or needs the workflow. The
// handlers are the API's methods in handlers.go and review.go.
func (a *API) Routes() []Route {
	wf := func(rt Route) Route { rt.Workflow = true; return rt }
	return []Route{
		{Method: "GET", Path: "/v1/whoami", handle: func(r *http.Request, p sluice.Principal) (any, error) { return p, nil }},
		// Review (issue 5).
		{Method: "GET", Path: "/v1/alerts", Roles: reviewers, handle: a.getAlerts},
		{Method: "GET", Path: "/v1/audit/entries", Roles: reviewers, handle: a.getEntries},
		{Method: "GET", Path: "/v1/audit/entries/{seq}", Roles: reviewers, handle: a.getEntry},
		{Method: "GET", Path: "/v1/audit/verify", Roles: reviewers, handle: a.verifyAudit},
		{Method: "GET", Path: "/v1/usage", handle: a.getUsage},
		// Catalog and registration.
		{Method: "GET", Path: "/v1/calendar", handle: a.getCalendar},
		{Method: "GET", Path: "/v1/catalog/datasets", handle: a.getCatalog},
		{Method: "GET", Path: "/v1/catalog/export", handle: a.exportCatalog},
		wf(Route{Method: "GET", Path: "/v1/catalog/changes", Roles: []sluice.Role{sluice.RoleAuditor, sluice.RolePlatformAdmin, sluice.RoleDeptAdmin}, handle: a.getChanges}),
		wf(Route{Method: "PUT", Path: "/v1/departments/{dept}/agent", Roles: []sluice.Role{sluice.RoleDeptAdmin, sluice.RolePlatformAdmin}, Mutates: true, handle: a.putAgent}),
		wf(Route{Method: "GET", Path: "/v1/departments/{dept}/tables", Roles: deptAdmins, handle: a.getTables}),
		wf(Route{Method: "GET", Path: "/v1/departments/{dept}/tables/{table}/proposal", Roles: deptAdmins, handle: a.getProposal}),
		wf(Route{Method: "PUT", Path: "/v1/departments/{dept}/datasets/{name}", Roles: deptAdmins, Mutates: true, handle: a.putDataset}),
		wf(Route{Method: "DELETE", Path: "/v1/departments/{dept}/datasets/{name}", Roles: deptAdmins, Mutates: true, handle: a.deleteDataset}),
		// Purposes.
		wf(Route{Method: "GET", Path: "/v1/purposes", handle: a.getPurposes}),
		wf(Route{Method: "PUT", Path: "/v1/purposes/{code}", Roles: platform, Mutates: true, handle: a.putPurpose}),
		wf(Route{Method: "DELETE", Path: "/v1/purposes/{code}", Roles: platform, Mutates: true, handle: a.deletePurpose}),
		// Users and tokens.
		wf(Route{Method: "GET", Path: "/v1/users", Roles: reviewers, handle: a.getUsers}),
		wf(Route{Method: "PUT", Path: "/v1/users/{name}", Roles: platform, Mutates: true, handle: a.putUser}),
		wf(Route{Method: "GET", Path: "/v1/users/{name}/tokens", handle: a.getTokens}),
		wf(Route{Method: "POST", Path: "/v1/users/{name}/tokens", Mutates: true, Created: true, handle: a.postToken}),
		wf(Route{Method: "DELETE", Path: "/v1/tokens/{id}", Mutates: true, handle: a.deleteToken}),
		// Applications and grants.
		wf(Route{Method: "POST", Path: "/v1/applications", Roles: dataUsers, Mutates: true, Created: true, handle: a.postApplication}),
		wf(Route{Method: "GET", Path: "/v1/applications", handle: a.getApplications}),
		wf(Route{Method: "GET", Path: "/v1/applications/overdue", handle: a.getOverdue}),
		wf(Route{Method: "GET", Path: "/v1/applications/{id}", handle: a.getApplication}),
		wf(Route{Method: "POST", Path: "/v1/applications/{id}/forward", Roles: platform, Mutates: true, handle: a.reviewStep((*workflow.Service).Forward)}),
		wf(Route{Method: "POST", Path: "/v1/applications/{id}/refuse", Roles: []sluice.Role{sluice.RolePlatformAdmin, sluice.RoleDeptAdmin}, Mutates: true, handle: a.reviewStep((*workflow.Service).Refuse)}),
		wf(Route{Method: "POST", Path: "/v1/applications/{id}/approve", Roles: deptAdmins, Mutates: true, handle: a.reviewStep((*workflow.Service).Approve)}),
		wf(Route{Method: "POST", Path: "/v1/applications/{id}/withdraw", Roles: dataUsers, Mutates: true, handle: a.reviewStep((*workflow.Service).Withdraw)}),
		wf(Route{Method: "GET", Path: "/v1/grants", handle: func(r *http.Request, p sluice.Principal) (any, error) {
			gs, err := a.wf.ListGrants(r.Context(), p)
			return map[string]any{"grants": gs}, err
		}}),
		wf(Route{Method: "POST", Path: "/v1/grants/{id}/revoke", Roles: []sluice.Role{sluice.RolePlatformAdmin, sluice.RoleDeptAdmin}, Mutates: true, handle: a.revokeGrant}),
		// Error reports.
		wf(Route{Method: "POST", Path: "/v1/reports", Roles: dataUsers, Mutates: true, Created: true, handle: a.postReport}),
		wf(Route{Method: "GET", Path: "/v1/reports", handle: a.getReports}),
		wf(Route{Method: "GET", Path: "/v1/reports/{id}", handle: func(r *http.Request, p sluice.Principal) (any, error) {
			return a.wf.GetReport(r.Context(), p, r.PathValue("id"))
		}}),
		wf(Route{Method: "POST", Path: "/v1/reports/{id}/acknowledge", Roles: deptAdmins, Mutates: true, handle: a.moveReport("acknowledge")}),
		wf(Route{Method: "POST", Path: "/v1/reports/{id}/correct", Roles: deptAdmins, Mutates: true, handle: a.moveReport("correct")}),
		wf(Route{Method: "POST", Path: "/v1/reports/{id}/reject", Roles: deptAdmins, Mutates: true, handle: a.moveReport("reject")}),
	}
}

// allowedMethods lists the methods a path has, for 405 answers.
func (a *API) allowedMethods(path string) string {
	var out []string
	for _, rt := range a.Routes() {
		if pathMatches(rt.Path, path) && !slices.Contains(out, rt.Method) {
			out = append(out, rt.Method)
		}
	}
	return strings.Join(out, ", ")
}

func pathMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}
