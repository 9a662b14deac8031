package workflow

import (
	"context"
	"strings"

	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/state"
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
func (w *Service) ReportError(ctx context.Context, p sluice.Principal, req ReportErrorRequest) (*sluice.ErrorReport, error) {
	if p.Role != sluice.RoleAnalyst && p.Role != sluice.RoleDeptAdmin {
		return nil, denied("role %s does not use data and cannot report errors in it", p.Role)
	}
	ds := w.Current().Catalog.Dataset(state.SplitDataset(req.Dataset))
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
	now := w.now()
	r := &sluice.ErrorReport{
		ID: "err-" + now.UTC().Format("20060102") + "-" + uuid.NewString()[:8], Reporter: p.Name, Department: p.Department,
		Dataset: ds.FullName(), Provider: ds.Department, Column: req.Column, Description: strings.TrimSpace(req.Description),
		RowRef: req.RowRef, Status: sluice.ReportSubmitted, CreatedAt: now, UpdatedAt: now, Seen: true,
		History: []sluice.ReportEvent{{Time: now, Actor: p.Name, Status: sluice.ReportSubmitted}},
	}
	if err := w.store.CreateReport(ctx, r); err != nil {
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
func (w *Service) GetReport(ctx context.Context, p sluice.Principal, id string) (*sluice.ErrorReport, error) {
	r, err := w.store.Report(ctx, id)
	if err != nil {
		return nil, err
	}
	if !canSeeReport(p, r) {
		return nil, sluice.Errorf(sluice.ENotFound, "no error report %s that you may see", id)
	}
	if p.Name == r.Reporter && !r.Seen {
		r.Seen = true
		if err := w.store.UpdateReport(ctx, r, r.Status); err != nil && sluice.ErrorCode(err) != sluice.EConflict {
			return nil, err
		}
	}
	return r, nil
}

// ListReports: the reporter's own, the provider's queue, or all.
func (w *Service) ListReports(ctx context.Context, p sluice.Principal, f store.ReportFilter) ([]sluice.ErrorReport, error) {
	all, err := w.store.Reports(ctx, f)
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
func (w *Service) MoveReport(ctx context.Context, p sluice.Principal, id, action, reason string) (*sluice.ErrorReport, error) {
	mv, ok := reportMoves[action]
	if !ok {
		return nil, sluice.Errorf(sluice.EInvalid, "unknown action %q: acknowledge, correct or reject", action)
	}
	r, err := w.store.Report(ctx, id)
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
	now := w.now()
	r.Status, r.UpdatedAt, r.Seen = mv.to, now, false
	if reason != "" {
		r.Reason = reason
	}
	r.History = append(r.History, sluice.ReportEvent{Time: now, Actor: p.Name, Status: mv.to, Note: reason})
	if err := w.store.UpdateReport(ctx, r, from); err != nil {
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
