package adminapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
)

// AuditReader is what the review endpoints of the admin API read.
type AuditReader interface {
	Search(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
	Get(ctx context.Context, seq int64) (*audit.Entry, error)
	Verify(ctx context.Context, opts ...audit.VerifyOption) (*audit.VerifyReport, error)
}

func (a *API) getAlerts(r *http.Request, _ sluice.Principal) (any, error) {
	f, err := filterFromQuery(r, audit.KindAlert)
	if err != nil {
		return nil, err
	}
	entries, err := a.review.Search(r.Context(), f)
	return map[string]any{"alerts": nonNil(entries)}, err
}

func (a *API) getEntries(r *http.Request, _ sluice.Principal) (any, error) {
	f, err := filterFromQuery(r, "")
	if err != nil {
		return nil, err
	}
	entries, err := a.review.Search(r.Context(), f)
	return map[string]any{"entries": nonNil(entries)}, err
}

func (a *API) getEntry(r *http.Request, _ sluice.Principal) (any, error) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return nil, sluice.Errorf(sluice.EInvalid, "entry number %q is not a positive integer", r.PathValue("seq"))
	}
	return a.review.Get(r.Context(), seq)
}

func (a *API) getUsage(r *http.Request, p sluice.Principal) (any, error) {
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
	rows, err := a.Usage(r.Context(), p, f)
	return map[string]any{"usage": rows}, err
}

func (a *API) verifyAudit(r *http.Request, _ sluice.Principal) (any, error) {
	var opts []audit.VerifyOption
	if len(a.reviewKeys) > 0 {
		opts = append(opts, audit.WithTrustedKeys(a.reviewKeys...), audit.WithUnsignedGrace(audit.DefaultCheckpointInterval+time.Minute))
	}
	return a.review.Verify(r.Context(), opts...)
}

func filterFromQuery(r *http.Request, kind string) (audit.Filter, error) {
	q := r.URL.Query()
	known := map[string]bool{"principal": true, "department": true, "dataset": true, "column": true, "purpose": true,
		"decision": true, "kind": true, "query_id": true, "since": true, "until": true, "limit": true}
	for k := range q {
		if !known[k] {
			return audit.Filter{}, sluice.Errorf(sluice.EInvalid, "unknown query parameter %q", k)
		}
	}
	f := audit.Filter{Principal: q.Get("principal"), Department: q.Get("department"), Dataset: q.Get("dataset"),
		Column: q.Get("column"), Purpose: q.Get("purpose"), Decision: q.Get("decision"), Kind: q.Get("kind"), QueryID: q.Get("query_id")}
	if kind != "" {
		f.Kind = kind
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, sluice.Errorf(sluice.EInvalid, "%s must be an RFC 3339 time such as 2026-11-22T08:00:00+08:00", name)
			}
			*dst = t
		}
	}
	f.Limit = 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxReadLimit {
			return f, sluice.Errorf(sluice.EInvalid, "limit must be between 1 and %d", audit.MaxReadLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func nonNil(es []audit.Entry) []audit.Entry {
	if es == nil {
		return []audit.Entry{}
	}
	return es
}

// UsageReader computes usage statistics from the audit log.
type UsageReader interface {
	Usage(ctx context.Context, f audit.UsageFilter) ([]audit.UsageRow, error)
}

// Usage is per dataset and requesting department, by day: the platform
// admin and auditor see all; a department admin its datasets' use and its
// department's requests; an analyst its department's requests.
func (a *API) Usage(ctx context.Context, p sluice.Principal, f audit.UsageFilter) ([]audit.UsageRow, error) {
	ur, ok := a.review.(UsageReader)
	if !ok {
		return nil, sluice.Errorf(sluice.ENotSupported, "this broker's audit log cannot compute usage statistics")
	}
	rows, err := ur.Usage(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []audit.UsageRow{}
	for _, r := range rows {
		provider, _ := state.SplitDataset(r.Dataset)
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
