package broker

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// maxAdminBody bounds request bodies; the largest legitimate one is a
// dataset classification.
const maxAdminBody = 1 << 20

// adminKind is the audit kind of a state-changing admin call, written
// before the change; its outcome follows as a result entry.
const adminKind = audit.KindAdmin

// AdminRoute is one endpoint of the admin API.
type AdminRoute struct {
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

// AdminRoutes lists the admin API's endpoints (for the OpenAPI check).
func (s *Server) AdminRoutes() []AdminRoute { return s.adminRoutes() }

func (s *Server) adminRoutes() []AdminRoute {
	wf := func(rt AdminRoute) AdminRoute { rt.Workflow = true; return rt }
	return []AdminRoute{
		{Method: "GET", Path: "/v1/whoami", handle: func(r *http.Request, p sluice.Principal) (any, error) { return p, nil }},
		// Review (issue 5).
		{Method: "GET", Path: "/v1/alerts", Roles: reviewers, handle: s.getAlerts},
		{Method: "GET", Path: "/v1/audit/entries", Roles: reviewers, handle: s.getEntries},
		{Method: "GET", Path: "/v1/audit/entries/{seq}", Roles: reviewers, handle: s.getEntry},
		{Method: "GET", Path: "/v1/audit/verify", Roles: reviewers, handle: s.verifyAudit},
		{Method: "GET", Path: "/v1/usage", handle: s.getUsage},
		// Catalog and registration.
		{Method: "GET", Path: "/v1/calendar", handle: s.getCalendar},
		{Method: "GET", Path: "/v1/catalog/datasets", handle: s.getCatalog},
		{Method: "GET", Path: "/v1/catalog/export", handle: s.exportCatalog},
		wf(AdminRoute{Method: "GET", Path: "/v1/catalog/changes", Roles: []sluice.Role{sluice.RoleAuditor, sluice.RolePlatformAdmin, sluice.RoleDeptAdmin}, handle: s.getChanges}),
		wf(AdminRoute{Method: "PUT", Path: "/v1/departments/{dept}/agent", Roles: []sluice.Role{sluice.RoleDeptAdmin, sluice.RolePlatformAdmin}, Mutates: true, handle: s.putAgent}),
		wf(AdminRoute{Method: "GET", Path: "/v1/departments/{dept}/tables", Roles: deptAdmins, handle: s.getTables}),
		wf(AdminRoute{Method: "GET", Path: "/v1/departments/{dept}/tables/{table}/proposal", Roles: deptAdmins, handle: s.getProposal}),
		wf(AdminRoute{Method: "PUT", Path: "/v1/departments/{dept}/datasets/{name}", Roles: deptAdmins, Mutates: true, handle: s.putDataset}),
		wf(AdminRoute{Method: "DELETE", Path: "/v1/departments/{dept}/datasets/{name}", Roles: deptAdmins, Mutates: true, handle: s.deleteDataset}),
		// Purposes.
		wf(AdminRoute{Method: "GET", Path: "/v1/purposes", handle: s.getPurposes}),
		wf(AdminRoute{Method: "PUT", Path: "/v1/purposes/{code}", Roles: platform, Mutates: true, handle: s.putPurpose}),
		wf(AdminRoute{Method: "DELETE", Path: "/v1/purposes/{code}", Roles: platform, Mutates: true, handle: s.deletePurpose}),
		// Users and tokens.
		wf(AdminRoute{Method: "GET", Path: "/v1/users", Roles: reviewers, handle: s.getUsers}),
		wf(AdminRoute{Method: "PUT", Path: "/v1/users/{name}", Roles: platform, Mutates: true, handle: s.putUser}),
		wf(AdminRoute{Method: "GET", Path: "/v1/users/{name}/tokens", handle: s.getTokens}),
		wf(AdminRoute{Method: "POST", Path: "/v1/users/{name}/tokens", Mutates: true, Created: true, handle: s.postToken}),
		wf(AdminRoute{Method: "DELETE", Path: "/v1/tokens/{id}", Mutates: true, handle: s.deleteToken}),
		// Applications and grants.
		wf(AdminRoute{Method: "POST", Path: "/v1/applications", Roles: dataUsers, Mutates: true, Created: true, handle: s.postApplication}),
		wf(AdminRoute{Method: "GET", Path: "/v1/applications", handle: s.getApplications}),
		wf(AdminRoute{Method: "GET", Path: "/v1/applications/overdue", handle: s.getOverdue}),
		wf(AdminRoute{Method: "GET", Path: "/v1/applications/{id}", handle: s.getApplication}),
		wf(AdminRoute{Method: "POST", Path: "/v1/applications/{id}/forward", Roles: platform, Mutates: true, handle: s.reviewStep(s.Forward)}),
		wf(AdminRoute{Method: "POST", Path: "/v1/applications/{id}/refuse", Roles: []sluice.Role{sluice.RolePlatformAdmin, sluice.RoleDeptAdmin}, Mutates: true, handle: s.reviewStep(s.Refuse)}),
		wf(AdminRoute{Method: "POST", Path: "/v1/applications/{id}/approve", Roles: deptAdmins, Mutates: true, handle: s.reviewStep(s.Approve)}),
		wf(AdminRoute{Method: "POST", Path: "/v1/applications/{id}/withdraw", Roles: dataUsers, Mutates: true, handle: s.reviewStep(s.Withdraw)}),
		wf(AdminRoute{Method: "GET", Path: "/v1/grants", handle: func(r *http.Request, p sluice.Principal) (any, error) {
			gs, err := s.ListGrants(r.Context(), p)
			return map[string]any{"grants": gs}, err
		}}),
		wf(AdminRoute{Method: "POST", Path: "/v1/grants/{id}/revoke", Roles: []sluice.Role{sluice.RolePlatformAdmin, sluice.RoleDeptAdmin}, Mutates: true, handle: s.revokeGrant}),
		// Error reports.
		wf(AdminRoute{Method: "POST", Path: "/v1/reports", Roles: dataUsers, Mutates: true, Created: true, handle: s.postReport}),
		wf(AdminRoute{Method: "GET", Path: "/v1/reports", handle: s.getReports}),
		wf(AdminRoute{Method: "GET", Path: "/v1/reports/{id}", handle: func(r *http.Request, p sluice.Principal) (any, error) {
			return s.GetReport(r.Context(), p, r.PathValue("id"))
		}}),
		wf(AdminRoute{Method: "POST", Path: "/v1/reports/{id}/acknowledge", Roles: deptAdmins, Mutates: true, handle: s.moveReport("acknowledge")}),
		wf(AdminRoute{Method: "POST", Path: "/v1/reports/{id}/correct", Roles: deptAdmins, Mutates: true, handle: s.moveReport("correct")}),
		wf(AdminRoute{Method: "POST", Path: "/v1/reports/{id}/reject", Roles: deptAdmins, Mutates: true, handle: s.moveReport("reject")}),
	}
}

// allowedMethods lists the methods a path has, for 405 answers.
func (s *Server) allowedMethods(path string) string {
	var out []string
	for _, rt := range s.adminRoutes() {
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

// adminCall authenticates, checks the route's roles, records the call,
// runs it and writes the JSON answer or a JSON error.
func (s *Server) adminCall(rt AdminRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		p, err := s.adminPrincipal(r)
		if err != nil {
			s.auditAdmin(r, sluice.Principal{Name: "(unauthenticated)"}, audit.KindAuth, audit.DecisionDeny, "", err)
			writeError(w, err)
			return
		}
		kind := audit.KindMetadata
		if rt.Mutates {
			kind = adminKind
		}
		if len(rt.Roles) > 0 && !hasRole(rt.Roles, p.Role) {
			err := denied("role %s may not call %s %s; roles that may: %s", p.Role, rt.Method, rt.Path, roleList(rt.Roles))
			s.auditAdmin(r, p, kind, audit.DecisionDeny, "", err)
			writeError(w, err)
			return
		}
		if rt.Workflow && s.wf == nil {
			writeError(w, sluice.Errorf(sluice.ENotSupported, "this broker runs without a workflow store; its catalog, users and grants come from files"))
			return
		}
		callID := uuid.NewString()
		// Fail closed: no record of the call, no call.
		if err := s.auditAdmin(r, p, kind, audit.DecisionAllow, callID, nil); err != nil {
			writeError(w, err)
			return
		}
		out, err := rt.handle(r, p)
		if err != nil {
			out = nil // handlers return typed nil pointers with their errors
		}
		if rt.Mutates {
			s.auditOutcome(r, p, callID, out, err)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		switch v := out.(type) {
		case rawBody:
			w.Header().Set("Content-Type", v.contentType)
			w.Write(v.body)
		default:
			w.Header().Set("Content-Type", "application/json")
			if rt.Created {
				w.WriteHeader(http.StatusCreated)
			}
			json.NewEncoder(w).Encode(v)
		}
	})
}

type rawBody struct {
	contentType string
	body        []byte
}

func hasRole(roles []sluice.Role, r sluice.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

func roleList(roles []sluice.Role) string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return strings.Join(out, ", ")
}

// adminPrincipal authenticates a bearer token, or a client certificate
// pinned to a user.
func (s *Server) adminPrincipal(r *http.Request) (sluice.Principal, error) {
	users := s.snap().users
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "bearer") || token == "" {
			return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "send 'Authorization: Bearer <token>'")
		}
		p, ok := users.Authenticate(token)
		if !ok {
			return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "the token is not valid: unknown, expired or revoked; ask the platform admin for a new one")
		}
		return p, nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if p, ok := users.AuthenticateCert(tlsutil.Fingerprint(r.TLS.PeerCertificates[0].Raw)); ok {
			return p, nil
		}
		return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "the client certificate is not registered to any user; send a bearer token or ask the platform admin to register it")
	}
	return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "send 'Authorization: Bearer <token>' with a valid token")
}

// auditAdmin records an admin call: kind metadata for reads, admin for
// changes (before the change), auth for failed authentication.
func (s *Server) auditAdmin(r *http.Request, p sluice.Principal, kind, decision, callID string, cause error) error {
	if callID == "" {
		callID = uuid.NewString()
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	e := &audit.Entry{
		Kind: kind, QueryID: callID, Principal: p.Name, Role: string(p.Role), Department: p.Department,
		ClientAddr: host, Decision: decision, Reasons: []string{"admin " + r.Method + " " + r.URL.Path},
	}
	if r.URL.RawQuery != "" {
		e.SQL = truncate("?"+r.URL.RawQuery, 4096)
	}
	if cause != nil {
		e.Error = sluice.ErrorMessage(cause)
	}
	return s.record(context.WithoutCancel(r.Context()), e)
}

// auditOutcome records how a state change ended, with the ids it touched.
func (s *Server) auditOutcome(r *http.Request, p sluice.Principal, callID string, out any, cause error) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	e := &audit.Entry{
		Kind: audit.KindResult, QueryID: callID, Principal: p.Name, Role: string(p.Role), Department: p.Department,
		ClientAddr: host, Decision: audit.DecisionAllow, Reasons: []string{"admin " + r.Method + " " + r.URL.Path},
		Obligations: outcomeDetails(out),
	}
	if ds := outcomeDatasets(out); len(ds) > 0 {
		e.Datasets = ds
	}
	if cause != nil {
		e.Decision = audit.DecisionError
		if sluice.ErrorCode(cause) == sluice.EDenied {
			e.Decision = audit.DecisionDeny
		}
		e.Error = sluice.ErrorMessage(cause)
	}
	if err := s.record(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit append of an admin outcome failed", "call", callID, "err", err)
	}
}

// outcomeDetails keeps what identifies a change in its audit entry; never
// a token secret.
func outcomeDetails(out any) map[string]any {
	switch v := out.(type) {
	case *sluice.Application:
		return map[string]any{"application": v.ID, "status": string(v.Status), "grants": v.GrantIDs, "refusal_basis": v.RefusalBasis}
	case *sluice.Grant:
		return map[string]any{"grant": v.ID, "revoked": v.Revoked}
	case *sluice.CatalogChange:
		return map[string]any{"catalog_change": v.Version, "action": v.Action, "catalog_version": v.CatalogVersion, "summary": v.Summary}
	case *IssuedToken:
		return map[string]any{"token_id": v.ID, "user": v.User, "expires_at": v.ExpiresAt}
	case *sluice.User:
		return map[string]any{"user": v.Name, "role": string(v.Role), "department": v.Department, "disabled": v.Disabled}
	case *sluice.Purpose:
		return map[string]any{"purpose": v.Code}
	case *sluice.ErrorReport:
		return map[string]any{"report": v.ID, "status": string(v.Status)}
	case map[string]any:
		return v
	}
	return nil
}

func outcomeDatasets(out any) []string {
	switch v := out.(type) {
	case *sluice.Application:
		ds := make([]string, len(v.Items))
		for i, it := range v.Items {
			ds[i] = it.Dataset
		}
		return ds
	case *sluice.Grant:
		return []string{v.Dataset}
	case *sluice.CatalogChange:
		if v.Dataset != "" {
			return []string{v.Dataset}
		}
	case *sluice.ErrorReport:
		return []string{v.Dataset}
	}
	return nil
}

// decodeBody reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are errors that name the problem.
func decodeBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return sluice.Errorf(sluice.EInvalid, "the request body is larger than %d bytes", maxAdminBody)
		}
		return sluice.Errorf(sluice.EInvalid, "cannot read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return sluice.Errorf(sluice.EInvalid, "the request needs a JSON body; see docs/openapi.yaml")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return sluice.Errorf(sluice.EInvalid, "the body is not valid JSON for this endpoint: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return sluice.Errorf(sluice.EInvalid, "the body has data after its JSON value; send one JSON object")
	}
	return nil
}

// optionalBody decodes a body when one was sent.
func optionalBody(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decodeBody(r, v)
}

// queryParams rejects unknown query parameters, so a typo is not silently
// ignored.
func queryParams(r *http.Request, known ...string) error {
	for k := range r.URL.Query() {
		ok := false
		for _, x := range known {
			ok = ok || x == k
		}
		if !ok {
			return sluice.Errorf(sluice.EInvalid, "unknown query parameter %q; this endpoint takes: %s", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// --- handlers ---

func (s *Server) getAlerts(r *http.Request, _ sluice.Principal) (any, error) {
	f, err := filterFromQuery(r, audit.KindAlert)
	if err != nil {
		return nil, err
	}
	entries, err := s.review.Search(r.Context(), f)
	return map[string]any{"alerts": nonNil(entries)}, err
}

func (s *Server) getEntries(r *http.Request, _ sluice.Principal) (any, error) {
	f, err := filterFromQuery(r, "")
	if err != nil {
		return nil, err
	}
	entries, err := s.review.Search(r.Context(), f)
	return map[string]any{"entries": nonNil(entries)}, err
}

func (s *Server) getEntry(r *http.Request, _ sluice.Principal) (any, error) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return nil, sluice.Errorf(sluice.EInvalid, "entry number %q is not a positive integer", r.PathValue("seq"))
	}
	return s.review.Get(r.Context(), seq)
}

func (s *Server) getUsage(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "dataset", "department", "purpose", "since", "until"); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := audit.UsageFilter{Dataset: q.Get("dataset"), Department: q.Get("department"), Purpose: q.Get("purpose")}
	var err error
	if f.Since, err = parseBound("since", q.Get("since")); err != nil {
		return nil, err
	}
	if f.Until, err = parseBound("until", q.Get("until")); err != nil {
		return nil, err
	}
	rows, err := s.Usage(r.Context(), p, f)
	return map[string]any{"usage": rows}, err
}

func (s *Server) getCalendar(r *http.Request, _ sluice.Principal) (any, error) {
	if s.wf == nil || s.wf.cal == nil {
		return nil, sluice.Errorf(sluice.ENotSupported, "this broker has no workflow calendar")
	}
	c := s.wf.cal
	return map[string]any{"time_zone": c.Location().String(), "holidays": c.Holidays(), "workdays": c.Workdays(),
		"platform_review_days": sluice.PlatformReviewDays, "provider_review_days": sluice.ProviderReviewDays}, nil
}

func catalogQuery(r *http.Request) (CatalogQuery, error) {
	if err := queryParams(r, "q", "department", "share_class", "grade", "format"); err != nil {
		return CatalogQuery{}, err
	}
	q := r.URL.Query()
	return CatalogQuery{Keyword: q.Get("q"), Department: q.Get("department"), ShareClass: q.Get("share_class"), Grade: q.Get("grade")}, nil
}

func (s *Server) getCatalog(r *http.Request, p sluice.Principal) (any, error) {
	q, err := catalogQuery(r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"catalog_version": s.snap().catalogVersion, "datasets": s.BrowseCatalog(p, q)}, nil
}

// exportCatalog exports the catalog as JSON or as CSV, one row per column
// (the layout of a data resource catalog register).
func (s *Server) exportCatalog(r *http.Request, p sluice.Principal) (any, error) {
	q, err := catalogQuery(r)
	if err != nil {
		return nil, err
	}
	views := s.BrowseCatalog(p, q)
	switch format := r.URL.Query().Get("format"); format {
	case "", "json":
		return map[string]any{"catalog_version": s.snap().catalogVersion, "exported_at": s.now().UTC(), "datasets": views}, nil
	case "csv":
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		cw.Write([]string{"department", "department_name", "dataset", "title", "share_class", "legal_basis", "share_conditions", "update_frequency", "format", "column", "type", "grade", "release", "mask", "key_domain", "column_description"})
		for _, v := range views {
			for _, c := range v.Columns {
				cw.Write([]string{v.Dataset.Department, v.DepartmentName, v.FullName(), v.Title, string(v.ShareClass), v.LegalBasis, v.ShareConditions, v.UpdateFrequency, v.Format,
					c.Name, string(c.Type), string(c.Grade), string(c.Release), string(c.Mask), c.KeyDomain, c.Description})
			}
		}
		cw.Flush()
		return rawBody{"text/csv; charset=utf-8", buf.Bytes()}, nil
	default:
		return nil, sluice.Errorf(sluice.EInvalid, "format must be json or csv, got %q", format)
	}
}

func (s *Server) getChanges(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "department", "limit"); err != nil {
		return nil, err
	}
	dept := r.URL.Query().Get("department")
	if p.Role == sluice.RoleDeptAdmin {
		if dept == "" {
			dept = p.Department
		}
		if dept != p.Department {
			return nil, denied("a department admin reads its own department's catalog changes")
		}
	}
	limit, err := limitParam(r, 100)
	if err != nil {
		return nil, err
	}
	chs, err := s.wf.store.CatalogChanges(r.Context(), dept, limit)
	if chs == nil {
		chs = []sluice.CatalogChange{}
	}
	return map[string]any{"changes": chs}, err
}

func limitParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10000 {
		return 0, sluice.Errorf(sluice.EInvalid, "limit must be between 1 and 10000")
	}
	return n, nil
}

func (s *Server) putAgent(r *http.Request, p sluice.Principal) (any, error) {
	var req AgentRegistration
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.RegisterAgent(r.Context(), p, r.PathValue("dept"), req)
}

func (s *Server) getTables(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "source"); err != nil {
		return nil, err
	}
	ts, err := s.ListSourceTables(r.Context(), p, r.PathValue("dept"), r.URL.Query().Get("source"))
	return map[string]any{"tables": ts}, err
}

func (s *Server) getProposal(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "source"); err != nil {
		return nil, err
	}
	return s.ProposeDataset(r.Context(), p, r.PathValue("dept"), r.URL.Query().Get("source"), r.PathValue("table"))
}

func (s *Server) putDataset(r *http.Request, p sluice.Principal) (any, error) {
	var req DatasetRegistration
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if req.Dataset.Name == "" {
		req.Dataset.Name = name
	}
	if req.Dataset.Name != name {
		return nil, sluice.Errorf(sluice.EInvalid, "dataset.name %q differs from the name in the path %q", req.Dataset.Name, name)
	}
	if req.Dataset.Department != "" && req.Dataset.Department != r.PathValue("dept") {
		return nil, sluice.Errorf(sluice.EInvalid, "dataset.department %q differs from the department in the path %q", req.Dataset.Department, r.PathValue("dept"))
	}
	return s.PutDataset(r.Context(), p, r.PathValue("dept"), req)
}

func (s *Server) deleteDataset(r *http.Request, p sluice.Principal) (any, error) {
	return s.RemoveDataset(r.Context(), p, r.PathValue("dept"), r.PathValue("name"))
}

func (s *Server) getPurposes(r *http.Request, _ sluice.Principal) (any, error) {
	ps, err := s.wf.store.Purposes(r.Context())
	if ps == nil {
		ps = []sluice.Purpose{}
	}
	return map[string]any{"purposes": ps}, err
}

func (s *Server) putPurpose(r *http.Request, p sluice.Principal) (any, error) {
	var pur sluice.Purpose
	if err := decodeBody(r, &pur); err != nil {
		return nil, err
	}
	code := r.PathValue("code")
	if pur.Code == "" {
		pur.Code = code
	}
	if pur.Code != code {
		return nil, sluice.Errorf(sluice.EInvalid, "code %q differs from the code in the path %q", pur.Code, code)
	}
	return s.PutPurpose(r.Context(), p, pur)
}

func (s *Server) deletePurpose(r *http.Request, p sluice.Principal) (any, error) {
	code := r.PathValue("code")
	return map[string]any{"purpose": code, "removed": true}, s.RemovePurpose(r.Context(), p, code)
}

func (s *Server) getUsers(r *http.Request, _ sluice.Principal) (any, error) {
	us, err := s.wf.store.Users(r.Context())
	if us == nil {
		us = []sluice.User{}
	}
	return map[string]any{"users": us}, err
}

// userRequest is the body of PUT /v1/users/{name}.
type userRequest struct {
	Role            sluice.Role `json:"role"`
	Department      string      `json:"department"`
	Disabled        bool        `json:"disabled,omitempty"`
	CertFingerprint string      `json:"cert_fingerprint,omitempty"`
}

func (s *Server) putUser(r *http.Request, p sluice.Principal) (any, error) {
	var req userRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.PutUser(r.Context(), p, sluice.User{Name: r.PathValue("name"), Role: req.Role, Department: req.Department, Disabled: req.Disabled, CertFingerprint: req.CertFingerprint})
}

func (s *Server) getTokens(r *http.Request, p sluice.Principal) (any, error) {
	ts, err := s.ListTokens(r.Context(), p, r.PathValue("name"))
	return map[string]any{"tokens": ts}, err
}

// tokenRequest is the body of POST /v1/users/{name}/tokens.
type tokenRequest struct {
	Label string `json:"label,omitempty"`
	TTL   string `json:"ttl,omitempty"` // Go duration, e.g. 720h
}

func (s *Server) postToken(r *http.Request, p sluice.Principal) (any, error) {
	var req tokenRequest
	if err := optionalBody(r, &req); err != nil {
		return nil, err
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "ttl: %q is not a duration; write e.g. 720h", req.TTL)
		}
	}
	return s.IssueToken(r.Context(), p, r.PathValue("name"), req.Label, ttl)
}

func (s *Server) deleteToken(r *http.Request, p sluice.Principal) (any, error) {
	id := r.PathValue("id")
	return map[string]any{"token_id": id, "revoked": true}, s.RevokeToken(r.Context(), p, id)
}

func (s *Server) postApplication(r *http.Request, p sluice.Principal) (any, error) {
	var a sluice.Application
	if err := decodeBody(r, &a); err != nil {
		return nil, err
	}
	// Only the applicant's request fields count; the workflow sets the rest.
	req := sluice.Application{Items: a.Items, ForDepartment: a.ForDepartment, Purpose: a.Purpose, Justification: a.Justification,
		ValidFrom: a.ValidFrom, ValidUntil: a.ValidUntil, Mode: a.Mode, K: a.K, Epsilon: a.Epsilon, EpsilonPerQuery: a.EpsilonPerQuery,
		RowCap: a.RowCap, RowFilter: a.RowFilter}
	if a.ID != "" || a.Status != "" || a.Applicant != "" || len(a.GrantIDs) > 0 || len(a.History) > 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "id, status, applicant, grant_ids and history are set by the platform; send only what you apply for")
	}
	return s.Apply(r.Context(), p, req)
}

func (s *Server) getApplications(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "status", "provider", "applicant", "department", "limit"); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := store.ApplicationFilter{Provider: q.Get("provider"), Applicant: q.Get("applicant"), Department: q.Get("department")}
	for _, st := range q["status"] {
		for _, x := range strings.Split(st, ",") {
			switch sluice.ApplicationStatus(x) {
			case sluice.AppSubmitted, sluice.AppForwarded, sluice.AppApproved, sluice.AppRefused, sluice.AppWithdrawn:
				f.Status = append(f.Status, sluice.ApplicationStatus(x))
			default:
				return nil, sluice.Errorf(sluice.EInvalid, "status must be submitted, forwarded, approved, refused or withdrawn; got %q", x)
			}
		}
	}
	var err error
	if f.Limit, err = limitParam(r, 1000); err != nil {
		return nil, err
	}
	as, err := s.ListApplications(r.Context(), p, f)
	return map[string]any{"applications": as}, err
}

func (s *Server) getOverdue(r *http.Request, p sluice.Principal) (any, error) {
	os, err := s.OverdueApplications(r.Context(), p)
	return map[string]any{"now": s.now().UTC(), "overdue": os}, err
}

func (s *Server) getApplication(r *http.Request, p sluice.Principal) (any, error) {
	return s.GetApplication(r.Context(), p, r.PathValue("id"))
}

func (s *Server) reviewStep(step func(context.Context, sluice.Principal, string, ReviewDecision) (*sluice.Application, error)) func(*http.Request, sluice.Principal) (any, error) {
	return func(r *http.Request, p sluice.Principal) (any, error) {
		var d ReviewDecision
		if err := optionalBody(r, &d); err != nil {
			return nil, err
		}
		a, err := step(r.Context(), p, r.PathValue("id"), d)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
}

// reasonRequest is the body of revoke and report moves.
type reasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) revokeGrant(r *http.Request, p sluice.Principal) (any, error) {
	var req reasonRequest
	if err := optionalBody(r, &req); err != nil {
		return nil, err
	}
	g, err := s.RevokeGrant(r.Context(), p, r.PathValue("id"), req.Reason)
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (s *Server) postReport(r *http.Request, p sluice.Principal) (any, error) {
	var req ReportErrorRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.ReportError(r.Context(), p, req)
}

func (s *Server) getReports(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "status", "dataset", "provider", "limit"); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := store.ReportFilter{Dataset: q.Get("dataset"), Provider: q.Get("provider")}
	if st := q.Get("status"); st != "" {
		for _, x := range strings.Split(st, ",") {
			switch sluice.ReportStatus(x) {
			case sluice.ReportSubmitted, sluice.ReportAcknowledged, sluice.ReportCorrected, sluice.ReportRejected:
				f.Status = append(f.Status, sluice.ReportStatus(x))
			default:
				return nil, sluice.Errorf(sluice.EInvalid, "status must be submitted, acknowledged, corrected or rejected; got %q", x)
			}
		}
	}
	var err error
	if f.Limit, err = limitParam(r, 1000); err != nil {
		return nil, err
	}
	rs, err := s.ListReports(r.Context(), p, f)
	return map[string]any{"reports": rs}, err
}

func (s *Server) moveReport(action string) func(*http.Request, sluice.Principal) (any, error) {
	return func(r *http.Request, p sluice.Principal) (any, error) {
		var req reasonRequest
		if err := optionalBody(r, &req); err != nil {
			return nil, err
		}
		rep, err := s.MoveReport(r.Context(), p, r.PathValue("id"), action, req.Reason)
		if err != nil {
			return nil, err
		}
		return rep, nil
	}
}
