package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
)

// pageSize is the number of entries on one page of the audit browser.
const pageSize = 50

type catalogView struct {
	Query          state.CatalogQuery
	Departments    []*sluice.Department
	Datasets       []state.DatasetView
	CatalogVersion string
}

// catalogPage is the data resource catalog as the principal may see it
// (the admin API's GET /v1/catalog/datasets): descriptions only.
func (c *Console) catalogPage(w http.ResponseWriter, r *http.Request, d *pageData) (int, string) {
	q := r.URL.Query()
	cq := state.CatalogQuery{Keyword: q.Get("q"), Department: q.Get("department"), ShareClass: q.Get("share_class"), Grade: q.Get("grade")}
	st := c.state.Current()
	d.Title = "Catalog"
	d.Page = &catalogView{Query: cq, Departments: st.Catalog.Departments(), Datasets: st.BrowseCatalog(*d.Principal, cq), CatalogVersion: st.CatalogVersion}
	return http.StatusOK, "catalog"
}

type auditView struct {
	Form      map[string]string
	Entries   []audit.Entry // newest first
	OlderURL  string
	NewestURL string
	Error     string
	Decisions []string
	Kinds     []string
}

var (
	decisions = []string{audit.DecisionAllow, audit.DecisionDeny, audit.DecisionError, audit.DecisionAlert}
	kinds     = []string{audit.KindQuery, audit.KindResult, audit.KindMetadata, audit.KindAuth, audit.KindAdmin, audit.KindAlert, audit.KindFragment}
)

// filterFields are the audit browser's filter parameters.
var filterFields = []string{"since", "until", "principal", "department", "dataset", "column", "purpose", "decision", "kind", "query_id"}

// auditList is the audit browser: the broker audit log's Search, newest
// first, pageSize entries a page, paged backwards with ?before=<seq>.
func (c *Console) auditList(w http.ResponseWriter, r *http.Request, d *pageData) (int, string) {
	q := r.URL.Query()
	v := &auditView{Form: map[string]string{}, Decisions: decisions, Kinds: kinds}
	d.Title, d.Page = "AuditLog", v
	for _, k := range filterFields {
		v.Form[k] = strings.TrimSpace(q.Get(k))
	}
	f := audit.Filter{Principal: v.Form["principal"], Department: v.Form["department"], Dataset: v.Form["dataset"], Column: v.Form["column"],
		Purpose: v.Form["purpose"], Decision: v.Form["decision"], Kind: v.Form["kind"], QueryID: v.Form["query_id"]}
	var err error
	if f.Since, err = parseFormTime(v.Form["since"]); err != nil {
		v.Error = d.T["Since"] + ": " + err.Error()
		return http.StatusBadRequest, "audit"
	}
	if f.Until, err = parseFormTime(v.Form["until"]); err != nil {
		v.Error = d.T["Until"] + ": " + err.Error()
		return http.StatusBadRequest, "audit"
	}
	var before int64
	if b := q.Get("before"); b != "" {
		if before, err = strconv.ParseInt(b, 10, 64); err != nil || before < 1 {
			v.Error = "before: not a positive entry number"
			return http.StatusBadRequest, "audit"
		}
	}
	entries, more, err := c.page1(r, f, before)
	if err != nil {
		v.Error = sluice.ErrorMessage(err)
		if sluice.ErrorCode(err) == sluice.EInvalid {
			return http.StatusBadRequest, "audit"
		}
		return http.StatusServiceUnavailable, "audit"
	}
	v.Entries = entries
	if more && len(entries) > 0 {
		v.OlderURL = c.listURL(v.Form, entries[len(entries)-1].Seq)
	}
	if before > 0 {
		v.NewestURL = c.listURL(v.Form, 0)
	}
	return http.StatusOK, "audit"
}

// page1 is one page of entries matching f with seq below before (0: the
// newest), newest first, and whether older ones exist. The log's Search
// returns the most recent matches before a time, so the page starts just
// after the time of entry before and drops the entries at that same
// microsecond from before on.
func (c *Console) page1(r *http.Request, f audit.Filter, before int64) ([]audit.Entry, bool, error) {
	extra := 0
	if before > 0 {
		e, err := c.review.Get(r.Context(), before)
		if err != nil {
			return nil, false, err
		}
		until := e.Time.Truncate(time.Microsecond).Add(time.Microsecond)
		if f.Until.IsZero() || until.Before(f.Until) {
			f.Until = until
		}
		extra = 16
	}
	for {
		f.Limit = min(pageSize+1+extra, audit.MaxReadLimit)
		got, err := c.review.Search(r.Context(), f)
		if err != nil {
			return nil, false, err
		}
		var out []audit.Entry
		for i := len(got) - 1; i >= 0; i-- {
			if before == 0 || got[i].Seq < before {
				out = append(out, got[i])
			}
		}
		if len(out) > pageSize || len(got) < f.Limit || f.Limit == audit.MaxReadLimit {
			if len(out) > pageSize {
				return out[:pageSize], true, nil
			}
			return out, false, nil
		}
		extra *= 8 // many entries at the same microsecond: look further
	}
}

func (c *Console) listURL(form map[string]string, before int64) string {
	q := url.Values{}
	for _, k := range filterFields {
		if form[k] != "" {
			q.Set(k, form[k])
		}
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if len(q) == 0 {
		return Prefix + "audit"
	}
	return Prefix + "audit?" + q.Encode()
}

// parseFormTime reads a datetime-local field (UTC) or an RFC 3339 time.
func parseFormTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, sluice.Errorf(sluice.EInvalid, "not a time: use 2026-11-22T08:00 (UTC) or RFC 3339")
}

type entryView struct {
	Entry      *audit.Entry
	RelatedURL string
}

// auditEntry is one entry with everything it records.
func (c *Console) auditEntry(w http.ResponseWriter, r *http.Request, d *pageData) (int, string) {
	d.Title = "Entry"
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		d.Title, d.Message = "BadRequest", "entry number "+strconv.Quote(r.PathValue("seq"))+" is not a positive integer"
		return http.StatusBadRequest, "error"
	}
	e, err := c.review.Get(r.Context(), seq)
	if err != nil {
		d.Title, d.Message = "NotFound", sluice.ErrorMessage(err)
		if sluice.ErrorCode(err) != sluice.ENotFound {
			d.Title = "Unavailable"
			return http.StatusServiceUnavailable, "error"
		}
		return http.StatusNotFound, "error"
	}
	v := &entryView{Entry: e}
	if e.QueryID != "" {
		v.RelatedURL = c.listURL(map[string]string{"query_id": e.QueryID}, 0)
	}
	d.Page = v
	return http.StatusOK, "entry"
}

type chainView struct {
	Report          *audit.VerifyReport
	VerifiedThrough int64
	Last            *audit.Checkpoint
	Error           string
}

// chainPage verifies the log as 'sluice audit verify' and the admin API's
// GET /v1/audit/verify do, with the broker's checkpoint keys.
func (c *Console) chainPage(w http.ResponseWriter, r *http.Request, d *pageData) (int, string) {
	d.Title = "ChainStatus"
	v := &chainView{}
	d.Page = v
	// The newest entry before verifying: the walk covers at least it.
	newest, err := c.review.Search(r.Context(), audit.Filter{Limit: 1})
	if err != nil {
		v.Error = sluice.ErrorMessage(err)
		return http.StatusServiceUnavailable, "chain"
	}
	var opts []audit.VerifyOption
	if len(c.keys) > 0 {
		opts = append(opts, audit.WithTrustedKeys(c.keys...), audit.WithUnsignedGrace(audit.DefaultCheckpointInterval+time.Minute))
	}
	rep, err := c.review.Verify(r.Context(), opts...)
	if err != nil {
		v.Error = sluice.ErrorMessage(err)
		return http.StatusServiceUnavailable, "chain"
	}
	v.Report = rep
	switch {
	case !rep.OK && rep.FirstBad > 0:
		v.VerifiedThrough = rep.FirstBad - 1
	case rep.OK && len(newest) > 0:
		v.VerifiedThrough = newest[0].Seq
	}
	if cp, ok := c.review.(checkpointer); ok {
		if cps, err := cp.Checkpoints(r.Context()); err == nil && len(cps) > 0 {
			v.Last = &cps[len(cps)-1]
		}
	}
	return http.StatusOK, "chain"
}
