package adminapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/broker/workflow"
)

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

func (a *API) getCalendar(r *http.Request, _ sluice.Principal) (any, error) {
	if a.wf == nil || a.wf.Calendar() == nil {
		return nil, sluice.Errorf(sluice.ENotSupported, "this broker has no workflow calendar")
	}
	c := a.wf.Calendar()
	return map[string]any{"time_zone": c.Location().String(), "holidays": c.Holidays(), "workdays": c.Workdays(),
		"platform_review_days": sluice.PlatformReviewDays, "provider_review_days": sluice.ProviderReviewDays}, nil
}

func catalogQuery(r *http.Request) (state.CatalogQuery, error) {
	if err := queryParams(r, "q", "department", "share_class", "grade", "format"); err != nil {
		return state.CatalogQuery{}, err
	}
	q := r.URL.Query()
	return state.CatalogQuery{Keyword: q.Get("q"), Department: q.Get("department"), ShareClass: q.Get("share_class"), Grade: q.Get("grade")}, nil
}

func (a *API) getCatalog(r *http.Request, p sluice.Principal) (any, error) {
	q, err := catalogQuery(r)
	if err != nil {
		return nil, err
	}
	st := a.state.Current()
	return map[string]any{"catalog_version": st.CatalogVersion, "datasets": st.BrowseCatalog(p, q)}, nil
}

// exportCatalog exports the catalog as JSON or as CSV, one row per column
// (the layout of a data resource catalog register).
func (a *API) exportCatalog(r *http.Request, p sluice.Principal) (any, error) {
	q, err := catalogQuery(r)
	if err != nil {
		return nil, err
	}
	st := a.state.Current()
	views := st.BrowseCatalog(p, q)
	switch format := r.URL.Query().Get("format"); format {
	case "", "json":
		return map[string]any{"catalog_version": st.CatalogVersion, "exported_at": a.now().UTC(), "datasets": views}, nil
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

func (a *API) getChanges(r *http.Request, p sluice.Principal) (any, error) {
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
	chs, err := a.wf.CatalogChanges(r.Context(), dept, limit)
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

func (a *API) putAgent(r *http.Request, p sluice.Principal) (any, error) {
	var req workflow.AgentRegistration
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return a.wf.RegisterAgent(r.Context(), p, r.PathValue("dept"), req)
}

func (a *API) getTables(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "source"); err != nil {
		return nil, err
	}
	ts, err := a.wf.ListSourceTables(r.Context(), p, r.PathValue("dept"), r.URL.Query().Get("source"))
	return map[string]any{"tables": ts}, err
}

func (a *API) getProposal(r *http.Request, p sluice.Principal) (any, error) {
	if err := queryParams(r, "source"); err != nil {
		return nil, err
	}
	return a.wf.ProposeDataset(r.Context(), p, r.PathValue("dept"), r.URL.Query().Get("source"), r.PathValue("table"))
}

func (a *API) putDataset(r *http.Request, p sluice.Principal) (any, error) {
	var req workflow.DatasetRegistration
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
	return a.wf.PutDataset(r.Context(), p, r.PathValue("dept"), req)
}

func (a *API) deleteDataset(r *http.Request, p sluice.Principal) (any, error) {
	return a.wf.RemoveDataset(r.Context(), p, r.PathValue("dept"), r.PathValue("name"))
}

func (a *API) getPurposes(r *http.Request, _ sluice.Principal) (any, error) {
	ps, err := a.wf.Purposes(r.Context())
	if ps == nil {
		ps = []sluice.Purpose{}
	}
	return map[string]any{"purposes": ps}, err
}

func (a *API) putPurpose(r *http.Request, p sluice.Principal) (any, error) {
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
	return a.wf.PutPurpose(r.Context(), p, pur)
}

func (a *API) deletePurpose(r *http.Request, p sluice.Principal) (any, error) {
	code := r.PathValue("code")
	return map[string]any{"purpose": code, "removed": true}, a.wf.RemovePurpose(r.Context(), p, code)
}

func (a *API) getUsers(r *http.Request, _ sluice.Principal) (any, error) {
	us, err := a.wf.Users(r.Context())
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

func (a *API) putUser(r *http.Request, p sluice.Principal) (any, error) {
	var req userRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return a.wf.PutUser(r.Context(), p, sluice.User{Name: r.PathValue("name"), Role: req.Role, Department: req.Department, Disabled: req.Disabled, CertFingerprint: req.CertFingerprint})
}

func (a *API) getTokens(r *http.Request, p sluice.Principal) (any, error) {
	ts, err := a.wf.ListTokens(r.Context(), p, r.PathValue("name"))
	return map[string]any{"tokens": ts}, err
}

// tokenRequest is the body of POST /v1/users/{name}/tokens.
type tokenRequest struct {
	Label string `json:"label,omitempty"`
	TTL   string `json:"ttl,omitempty"` // Go duration, e.g. 720h
}

func (a *API) postToken(r *http.Request, p sluice.Principal) (any, error) {
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
	return a.wf.IssueToken(r.Context(), p, r.PathValue("name"), req.Label, ttl)
}

func (a *API) deleteToken(r *http.Request, p sluice.Principal) (any, error) {
	id := r.PathValue("id")
	return map[string]any{"token_id": id, "revoked": true}, a.wf.RevokeToken(r.Context(), p, id)
}

func (a *API) postApplication(r *http.Request, p sluice.Principal) (any, error) {
	var app sluice.Application
	if err := decodeBody(r, &app); err != nil {
		return nil, err
	}
	// Only the applicant's request fields count; the workflow sets the rest.
	req := sluice.Application{Items: app.Items, ForDepartment: app.ForDepartment, Purpose: app.Purpose, Justification: app.Justification,
		ValidFrom: app.ValidFrom, ValidUntil: app.ValidUntil, Mode: app.Mode, K: app.K, Epsilon: app.Epsilon, EpsilonPerQuery: app.EpsilonPerQuery,
		RowCap: app.RowCap, RowFilter: app.RowFilter}
	if app.ID != "" || app.Status != "" || app.Applicant != "" || len(app.GrantIDs) > 0 || len(app.History) > 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "id, status, applicant, grant_ids and history are set by the platform; send only what you apply for")
	}
	return a.wf.Apply(r.Context(), p, req)
}

func (a *API) getApplications(r *http.Request, p sluice.Principal) (any, error) {
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
	as, err := a.wf.ListApplications(r.Context(), p, f)
	return map[string]any{"applications": as}, err
}

func (a *API) getOverdue(r *http.Request, p sluice.Principal) (any, error) {
	os, err := a.wf.OverdueApplications(r.Context(), p)
	return map[string]any{"now": a.now().UTC(), "overdue": os}, err
}

func (a *API) getApplication(r *http.Request, p sluice.Principal) (any, error) {
	return a.wf.GetApplication(r.Context(), p, r.PathValue("id"))
}

// reviewStep is a step of an application's review (forward, refuse,
// approve, withdraw): a method of the workflow service.
func (a *API) reviewStep(step func(*workflow.Service, context.Context, sluice.Principal, string, workflow.ReviewDecision) (*sluice.Application, error)) func(*http.Request, sluice.Principal) (any, error) {
	return func(r *http.Request, p sluice.Principal) (any, error) {
		var d workflow.ReviewDecision
		if err := optionalBody(r, &d); err != nil {
			return nil, err
		}
		app, err := step(a.wf, r.Context(), p, r.PathValue("id"), d)
		if err != nil {
			return nil, err
		}
		return app, nil
	}
}

// reasonRequest is the body of revoke and report moves.
type reasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (a *API) revokeGrant(r *http.Request, p sluice.Principal) (any, error) {
	var req reasonRequest
	if err := optionalBody(r, &req); err != nil {
		return nil, err
	}
	g, err := a.wf.RevokeGrant(r.Context(), p, r.PathValue("id"), req.Reason)
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (a *API) postReport(r *http.Request, p sluice.Principal) (any, error) {
	var req workflow.ReportErrorRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return a.wf.ReportError(r.Context(), p, req)
}

func (a *API) getReports(r *http.Request, p sluice.Principal) (any, error) {
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
	rs, err := a.wf.ListReports(r.Context(), p, f)
	return map[string]any{"reports": rs}, err
}

func (a *API) moveReport(action string) func(*http.Request, sluice.Principal) (any, error) {
	return func(r *http.Request, p sluice.Principal) (any, error) {
		var req reasonRequest
		if err := optionalBody(r, &req); err != nil {
			return nil, err
		}
		rep, err := a.wf.MoveReport(r.Context(), p, r.PathValue("id"), action, req.Reason)
		if err != nil {
			return nil, err
		}
		return rep, nil
	}
}
