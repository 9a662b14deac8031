package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Grants lists every grant, revoked or not, sorted by id.
func (s *Store) Grants(ctx context.Context) ([]sluice.Grant, error) {
	return docs[sluice.Grant](ctx, s, s.db, "grant", `SELECT doc FROM wf_grants ORDER BY id`)
}

// Grant returns one grant, or ENotFound.
func (s *Store) Grant(ctx context.Context, id string) (*sluice.Grant, error) {
	if err := checkKey("grant id", id); err != nil {
		return nil, err
	}
	g, ok, err := one[sluice.Grant](ctx, s, s.db, "grant", `SELECT doc FROM wf_grants WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, sluice.Errorf(sluice.ENotFound, "grant %s does not exist", id)
	}
	return g, nil
}

// PutGrant stores g, replacing any grant with its id (a revocation, or a
// grant reloaded from a file). It does not validate the grant's content:
// callers do, with sluice.ValidateGrant.
func (s *Store) PutGrant(ctx context.Context, g sluice.Grant) error {
	row, err := grantRow(g)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO wf_grants(id, grantee, dataset, purpose, application, doc) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET grantee = excluded.grantee, dataset = excluded.dataset,
				purpose = excluded.purpose, application = excluded.application, doc = excluded.doc`, row...)
		return err
	})
}

func grantRow(g sluice.Grant) ([]any, error) {
	if err := checkKey("grant id", g.ID); err != nil {
		return nil, err
	}
	if err := checkFields([2]string{"grantee", g.Grantee}, [2]string{"dataset", g.Dataset},
		[2]string{"purpose", g.Purpose}, [2]string{"application", g.Application}); err != nil {
		return nil, err
	}
	doc, err := encode("grant "+g.ID, g)
	if err != nil {
		return nil, err
	}
	return []any{g.ID, g.Grantee, g.Dataset, g.Purpose, g.Application, doc}, nil
}

// ApplicationFilter selects applications; empty fields match everything.
type ApplicationFilter struct {
	Applicant  string
	Department string // the applicant's
	Provider   string
	Status     []sluice.ApplicationStatus // any of these
	Limit      int                        // 0 means DefaultLimit
}

// ReportFilter selects error reports; empty fields match everything.
type ReportFilter struct {
	Reporter string
	Provider string
	Dataset  string
	Status   []sluice.ReportStatus // any of these
	Limit    int                   // 0 means DefaultLimit
}

// filter builds a WHERE clause from column = value conditions (empty values
// are left out) and an optional IN list.
type filter struct {
	conds []string
	args  []any
	err   error
}

func (w *filter) eq(column, what, v string) {
	if v == "" || w.err != nil {
		return
	}
	if w.err = checkKey(what, v); w.err == nil {
		w.conds = append(w.conds, column+" = ?")
		w.args = append(w.args, v)
	}
}

func (w *filter) in(column, what string, vs []string) {
	if len(vs) == 0 || w.err != nil {
		return
	}
	for _, v := range vs {
		if w.err = checkKey(what, v); w.err != nil {
			return
		}
		w.args = append(w.args, v)
	}
	w.conds = append(w.conds, column+" IN ("+placeholders(len(vs))+")")
}

func (w *filter) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// CreateApplication stores a new application; an id already used is
// EConflict.
func (s *Store) CreateApplication(ctx context.Context, a *sluice.Application) error {
	row, err := applicationRow(a)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `INSERT INTO wf_applications(id, applicant, department, provider, status, submitted_us, doc)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`, row...)
		if err != nil {
			return err
		}
		if n == 0 {
			return sluice.Errorf(sluice.EConflict, "application %s already exists", a.ID)
		}
		return nil
	})
}

func applicationRow(a *sluice.Application) ([]any, error) {
	if a == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "no application given")
	}
	if err := checkKey("application id", a.ID); err != nil {
		return nil, err
	}
	if err := checkFields([2]string{"applicant", a.Applicant}, [2]string{"department", a.Department},
		[2]string{"provider", a.Provider}, [2]string{"status", string(a.Status)}); err != nil {
		return nil, err
	}
	doc, err := encode("application "+a.ID, a)
	if err != nil {
		return nil, err
	}
	return []any{a.ID, a.Applicant, a.Department, a.Provider, string(a.Status), micros(a.SubmittedAt), doc}, nil
}

// Application returns one application, or ENotFound.
func (s *Store) Application(ctx context.Context, id string) (*sluice.Application, error) {
	if err := checkKey("application id", id); err != nil {
		return nil, err
	}
	a, ok, err := one[sluice.Application](ctx, s, s.db, "application", `SELECT doc FROM wf_applications WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, sluice.Errorf(sluice.ENotFound, "application %s does not exist", id)
	}
	return a, nil
}

// UpdateApplication replaces the stored application with a, provided its
// stored status is still from: two reviewers acting on the same
// application cannot both succeed, and the loser gets EConflict and
// changes nothing. newGrants are created in the same transaction, so an
// approval and its grants are stored together or not at all; a grant id
// that already exists is EConflict and nothing changes.
func (s *Store) UpdateApplication(ctx context.Context, a *sluice.Application, from sluice.ApplicationStatus, newGrants ...sluice.Grant) error {
	row, err := applicationRow(a)
	if err != nil {
		return err
	}
	grants := make([][]any, len(newGrants))
	for i, g := range newGrants {
		if grants[i], err = grantRow(g); err != nil {
			return err
		}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		// A conditional UPDATE is the compare-and-set: on PostgreSQL a
		// concurrent updater waits for the row lock and then re-checks
		// the status against the committed row, so only one matches; on
		// SQLite the transaction holds the write lock throughout.
		n, err := s.exec(ctx, tx, `UPDATE wf_applications SET applicant = ?, department = ?, provider = ?, status = ?, submitted_us = ?, doc = ?
			WHERE id = ? AND status = ?`, append(row[1:], a.ID, string(from))...)
		if err != nil {
			return err
		}
		if n == 0 {
			return s.casFailed(ctx, tx, "application", "wf_applications", a.ID)
		}
		for i, g := range grants {
			n, err := s.exec(ctx, tx, `INSERT INTO wf_grants(id, grantee, dataset, purpose, application, doc) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT(id) DO NOTHING`, g...)
			if err != nil {
				return err
			}
			if n == 0 {
				return sluice.Errorf(sluice.EConflict, "grant %s already exists; application %s was not changed", newGrants[i].ID, a.ID)
			}
		}
		return nil
	})
}

// casFailed explains why a conditional update matched no row: the record
// is missing, or another caller changed its status first.
func (s *Store) casFailed(ctx context.Context, tx *sql.Tx, what, table, id string) error {
	var status string
	switch err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT status FROM `+table+` WHERE id = ?`), id).Scan(&status); {
	case errors.Is(err, sql.ErrNoRows):
		return sluice.Errorf(sluice.ENotFound, "%s %s does not exist", what, id)
	case err != nil:
		return err
	}
	return sluice.Errorf(sluice.EConflict, "%s %s is now %s; reload it", what, id, status)
}

// Applications lists applications matching f, oldest first (by submission
// time, then id).
func (s *Store) Applications(ctx context.Context, f ApplicationFilter) ([]sluice.Application, error) {
	n, err := limitOf(f.Limit)
	if err != nil {
		return nil, err
	}
	var w filter
	w.eq("applicant", "applicant", f.Applicant)
	w.eq("department", "department", f.Department)
	w.eq("provider", "provider", f.Provider)
	w.in("status", "status", strs(f.Status))
	if w.err != nil {
		return nil, w.err
	}
	return docs[sluice.Application](ctx, s, s.db, "application",
		`SELECT doc FROM wf_applications`+w.String()+` ORDER BY submitted_us, id LIMIT ?`, append(w.args, n)...)
}

// CreateReport stores a new error report; an id already used is
// EConflict.
func (s *Store) CreateReport(ctx context.Context, r *sluice.ErrorReport) error {
	row, err := reportRow(r)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `INSERT INTO wf_reports(id, reporter, department, provider, dataset, status, created_us, doc)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`, row...)
		if err != nil {
			return err
		}
		if n == 0 {
			return sluice.Errorf(sluice.EConflict, "error report %s already exists", r.ID)
		}
		return nil
	})
}

func reportRow(r *sluice.ErrorReport) ([]any, error) {
	if r == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "no error report given")
	}
	if err := checkKey("error report id", r.ID); err != nil {
		return nil, err
	}
	if err := checkFields([2]string{"reporter", r.Reporter}, [2]string{"department", r.Department},
		[2]string{"provider", r.Provider}, [2]string{"dataset", r.Dataset}, [2]string{"status", string(r.Status)}); err != nil {
		return nil, err
	}
	doc, err := encode("error report "+r.ID, r)
	if err != nil {
		return nil, err
	}
	return []any{r.ID, r.Reporter, r.Department, r.Provider, r.Dataset, string(r.Status), micros(r.CreatedAt), doc}, nil
}

// Report returns one error report, or ENotFound.
func (s *Store) Report(ctx context.Context, id string) (*sluice.ErrorReport, error) {
	if err := checkKey("error report id", id); err != nil {
		return nil, err
	}
	r, ok, err := one[sluice.ErrorReport](ctx, s, s.db, "error report", `SELECT doc FROM wf_reports WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, sluice.Errorf(sluice.ENotFound, "error report %s does not exist", id)
	}
	return r, nil
}

// UpdateReport replaces the stored report with r, provided its stored
// status is still from (EConflict otherwise, changing nothing), as
// UpdateApplication does. Marking a report seen passes its current status
// as from.
func (s *Store) UpdateReport(ctx context.Context, r *sluice.ErrorReport, from sluice.ReportStatus) error {
	row, err := reportRow(r)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `UPDATE wf_reports SET reporter = ?, department = ?, provider = ?, dataset = ?, status = ?, created_us = ?, doc = ?
			WHERE id = ? AND status = ?`, append(row[1:], r.ID, string(from))...)
		if err != nil {
			return err
		}
		if n == 0 {
			return s.casFailed(ctx, tx, "error report", "wf_reports", r.ID)
		}
		return nil
	})
}

// Reports lists error reports matching f, oldest first (by creation time,
// then id).
func (s *Store) Reports(ctx context.Context, f ReportFilter) ([]sluice.ErrorReport, error) {
	n, err := limitOf(f.Limit)
	if err != nil {
		return nil, err
	}
	var w filter
	w.eq("reporter", "reporter", f.Reporter)
	w.eq("provider", "provider", f.Provider)
	w.eq("dataset", "dataset", f.Dataset)
	w.in("status", "status", strs(f.Status))
	if w.err != nil {
		return nil, w.err
	}
	return docs[sluice.ErrorReport](ctx, s, s.db, "error report",
		`SELECT doc FROM wf_reports`+w.String()+` ORDER BY created_us, id LIMIT ?`, append(w.args, n)...)
}
