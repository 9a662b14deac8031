package adminapi

import (
	"net/http"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// Ops are the operational endpoints served on the admin listener beside
// the API's routes (docs/admin-api.md, docs/operations.md). They are not
// API routes: they answer plain text or fixed JSON, and are not in
// docs/openapi.yaml.
type Ops struct {
	// Healthz and Readyz answer without authentication: a load balancer or
	// orchestrator probes them with no token, and they reveal only which
	// component is not ready, never an error text.
	Healthz, Readyz http.Handler
	// Metrics is the Prometheus scrape endpoint. It needs the API's
	// authentication (a bearer token or a pinned client certificate) of a
	// platform admin or an auditor: the counts by department are usage
	// statistics, which only they review. A successful scrape is not
	// written to the audit log (it would add an entry every scrape
	// interval and carries no protected value); a refused one is, like
	// any refused call.
	Metrics http.Handler
}

// metricsRoles may scrape /metrics.
var metricsRoles = []sluice.Role{sluice.RolePlatformAdmin, sluice.RoleAuditor}

// opsHandler is the operational endpoint r asks for, or nil.
func (a *API) opsHandler(r *http.Request) http.Handler {
	if a.ops == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return nil
	}
	switch r.URL.Path {
	case "/healthz":
		return a.ops.Healthz
	case "/readyz":
		return a.ops.Readyz
	case "/metrics":
		if a.ops.Metrics == nil {
			return nil
		}
		return http.HandlerFunc(a.serveMetrics)
	}
	return nil
}

func (a *API) serveMetrics(w http.ResponseWriter, r *http.Request) {
	p, err := a.authenticate(r)
	if err != nil {
		a.auditCall(r, sluice.Principal{Name: "(unauthenticated)"}, audit.KindAuth, audit.DecisionDeny, "", err)
		writeError(w, err)
		return
	}
	if !hasRole(metricsRoles, p.Role) {
		err := denied("role %s may not read /metrics; roles that may: %s", p.Role, roleList(metricsRoles))
		a.auditCall(r, p, audit.KindMetadata, audit.DecisionDeny, "", err)
		writeError(w, err)
		return
	}
	a.ops.Metrics.ServeHTTP(w, r)
}
