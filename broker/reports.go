package broker

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/store"
)

// ReportErrorRequest is an analyst's report of a suspected data error.
type ReportErrorRequest struct {
	Dataset     string `json:"dataset"`
	Column      string `json:"column,omitempty"`
	Description string `json:"description"`
	RowRef      string `json:"row_ref,omitempty"`
}

// ReportError files a data error report (纠错) with the provider.
func (s *Server) ReportError(ctx context.Context, p sluice.Principal, req ReportErrorRequest) (*sluice.ErrorReport, error) {
	if p.Role != sluice.RoleAnalyst && p.Role != sluice.RoleDeptAdmin {
		return nil, denied("role %s does not use data and cannot report errors in it", p.Role)
	}
	ds := s.snap().catalog.Dataset(splitDataset(req.Dataset))
	if ds == nil {
		return nil, sluice.Errorf(sluice.ENotFound, "dataset: no dataset %q in the catalog", req.Dataset)
	}
	if req.Column != "" {
		c := ds.Column(req.Column)
		if c == nil || (c.Release == sluice.ReleaseHidden && p.Department != ds.Department) {
			return nil, sluice.Errorf(sluice.ENotFound, "column: %s has no column %q", ds.FullName(), req.Column)
		}
		req.Column = c.Name
	}
	if n := len(strings.TrimSpace(req.Description)); n < 10 || n > 4000 {
		return nil, sluice.Errorf(sluice.EInvalid, "description: describe the suspected error in 10 to 4000 characters")
	}
	if len(req.RowRef) > 200 {
		return nil, sluice.Errorf(sluice.EInvalid, "row_ref: at most 200 characters (a masked key or pseudonym you saw)")
	}
	now := s.now()
	r := &sluice.ErrorReport{
		ID: "err-" + now.UTC().Format("20060102") + "-" + uuid.NewString()[:8], Reporter: p.Name, Department: p.Department,
		Dataset: ds.FullName(), Provider: ds.Department, Column: req.Column, Description: strings.TrimSpace(req.Description),
		RowRef: req.RowRef, Status: sluice.ReportSubmitted, CreatedAt: now, UpdatedAt: now, Seen: true,
		History: []sluice.ReportEvent{{Time: now, Actor: p.Name, Status: sluice.ReportSubmitted}},
	}
	if err := s.wf.store.CreateReport(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

func canSeeReport(p sluice.Principal, r *sluice.ErrorReport) bool {
	return p.Role == sluice.RolePlatformAdmin || p.Role == sluice.RoleAuditor || p.Name == r.Reporter ||
		isDeptAdmin(p, r.Provider) || isDeptAdmin(p, r.Department)
}

// GetReport returns a report; the reporter reading it marks the latest
// status change as seen.
func (s *Server) GetReport(ctx context.Context, p sluice.Principal, id string) (*sluice.ErrorReport, error) {
	r, err := s.wf.store.Report(ctx, id)
	if err != nil {
		return nil, err
	}
	if !canSeeReport(p, r) {
		return nil, sluice.Errorf(sluice.ENotFound, "no error report %s that you may see", id)
	}
	if p.Name == r.Reporter && !r.Seen {
		r.Seen = true
		if err := s.wf.store.UpdateReport(ctx, r, r.Status); err != nil && sluice.ErrorCode(err) != sluice.EConflict {
			return nil, err
		}
	}
	return r, nil
}

// ListReports: the reporter's own, the provider's queue, or all.
func (s *Server) ListReports(ctx context.Context, p sluice.Principal, f store.ReportFilter) ([]sluice.ErrorReport, error) {
	all, err := s.wf.store.Reports(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []sluice.ErrorReport{}
	for i := range all {
		if canSeeReport(p, &all[i]) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// reportMoves are the steps a provider may take on a report.
var reportMoves = map[string]struct {
	from []sluice.ReportStatus
	to   sluice.ReportStatus
}{
	"acknowledge": {[]sluice.ReportStatus{sluice.ReportSubmitted}, sluice.ReportAcknowledged},
	"correct":     {[]sluice.ReportStatus{sluice.ReportSubmitted, sluice.ReportAcknowledged}, sluice.ReportCorrected},
	"reject":      {[]sluice.ReportStatus{sluice.ReportSubmitted, sluice.ReportAcknowledged}, sluice.ReportRejected},
}

// MoveReport is the provider acknowledging, correcting or rejecting a
// report; a rejection needs a reason. The reporter sees it as unseen.
func (s *Server) MoveReport(ctx context.Context, p sluice.Principal, id, action, reason string) (*sluice.ErrorReport, error) {
	mv, ok := reportMoves[action]
	if !ok {
		return nil, sluice.Errorf(sluice.EInvalid, "unknown action %q: acknowledge, correct or reject", action)
	}
	r, err := s.wf.store.Report(ctx, id)
	if err != nil {
		return nil, err
	}
	if !isDeptAdmin(p, r.Provider) {
		if canSeeReport(p, r) {
			return nil, denied("only an admin of the provider %s answers error reports on its data", r.Provider)
		}
		return nil, sluice.Errorf(sluice.ENotFound, "no error report %s that you may see", id)
	}
	reason = strings.TrimSpace(reason)
	if action == "reject" && reason == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "reason: a rejection must say why the data is right as it is; the reporter sees it")
	}
	from := r.Status
	if !containsStatus(mv.from, from) {
		return nil, sluice.Errorf(sluice.EConflict, "error report %s is %s; it cannot be moved to %s", id, from, mv.to)
	}
	now := s.now()
	r.Status, r.UpdatedAt, r.Seen = mv.to, now, false
	if reason != "" {
		r.Reason = reason
	}
	r.History = append(r.History, sluice.ReportEvent{Time: now, Actor: p.Name, Status: mv.to, Note: reason})
	if err := s.wf.store.UpdateReport(ctx, r, from); err != nil {
		return nil, err
	}
	return r, nil
}

func containsStatus(list []sluice.ReportStatus, st sluice.ReportStatus) bool {
	for _, x := range list {
		if x == st {
			return true
		}
	}
	return false
}

// UsageReader computes usage statistics from the audit log.
type UsageReader interface {
	Usage(ctx context.Context, f audit.UsageFilter) ([]audit.UsageRow, error)
}

// Usage is per dataset and requesting department, by day: the platform
// admin and auditor see all; a department admin its datasets' use and its
// department's requests; an analyst its department's requests.
func (s *Server) Usage(ctx context.Context, p sluice.Principal, f audit.UsageFilter) ([]audit.UsageRow, error) {
	ur, ok := s.review.(UsageReader)
	if !ok {
		return nil, sluice.Errorf(sluice.ENotSupported, "this broker's audit log cannot compute usage statistics")
	}
	rows, err := ur.Usage(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []audit.UsageRow{}
	for _, r := range rows {
		provider, _ := splitDataset(r.Dataset)
		switch {
		case p.Role == sluice.RolePlatformAdmin || p.Role == sluice.RoleAuditor:
		case p.Role == sluice.RoleDeptAdmin && (provider == p.Department || r.Department == p.Department):
		case r.Department == p.Department:
		default:
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// parseBound parses a YYYY-MM-DD or RFC 3339 bound of a usage query.
func parseBound(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, sluice.Errorf(sluice.EInvalid, "%s must be a date (YYYY-MM-DD) or an RFC 3339 time", name)
}
