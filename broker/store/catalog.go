package store

import (
	"context"
	"database/sql"

	sluice "github.com/sluice-gov/sluice"
)

// Departments lists the catalog's departments sorted by id. Only what the
// JSON of a sluice.Department carries is stored: id, name, the agent's
// address and fingerprint, and the datasets. Sources and the agent's TLS
// and key files belong to the agent's own configuration.
func (s *Store) Departments(ctx context.Context) ([]*sluice.Department, error) {
	return docs[*sluice.Department](ctx, s, s.db, "department", `SELECT doc FROM wf_departments ORDER BY id`)
}

// Department returns one department, or ENotFound.
func (s *Store) Department(ctx context.Context, id string) (*sluice.Department, error) {
	if err := checkKey("department id", id); err != nil {
		return nil, err
	}
	d, ok, err := one[sluice.Department](ctx, s, s.db, "department", `SELECT doc FROM wf_departments WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, sluice.Errorf(sluice.ENotFound, "department %s is not in the catalog", id)
	}
	return d, nil
}

// PutDepartment stores d, replacing any department with its id, and
// appends ch to the change log in the same transaction, so the catalog and
// its history never disagree. ch gets the next catalog version (the
// previous highest plus one, starting at 1, whatever ch.Version held),
// ch.Department defaults to d.ID, and a zero ch.Time becomes now. The
// change as stored is returned.
func (s *Store) PutDepartment(ctx context.Context, d *sluice.Department, ch sluice.CatalogChange) (sluice.CatalogChange, error) {
	if d == nil {
		return ch, sluice.Errorf(sluice.EInvalid, "no department given")
	}
	if err := checkKey("department id", d.ID); err != nil {
		return ch, err
	}
	switch ch.Department {
	case "":
		ch.Department = d.ID
	case d.ID:
	default:
		return ch, sluice.Errorf(sluice.EInvalid, "the change names department %s but the department stored is %s", ch.Department, d.ID)
	}
	if err := checkFields([2]string{"dataset", ch.Dataset}); err != nil {
		return ch, err
	}
	if ch.Time.IsZero() {
		ch.Time = s.now().UTC()
	}
	doc, err := encode("department "+d.ID, d)
	if err != nil {
		return ch, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.IsPostgres() {
			// Two brokers changing the catalog at once would both read
			// the same highest version; readers are not blocked.
			if _, err := tx.ExecContext(ctx, `LOCK TABLE wf_catalog_changes IN EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM wf_catalog_changes`).Scan(&last); err != nil {
			return err
		}
		ch.Version = last + 1
		chDoc, err := encode("catalog change", ch)
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO wf_catalog_changes(version, department, dataset, time_us, doc) VALUES (?, ?, ?, ?, ?)`,
			ch.Version, ch.Department, ch.Dataset, micros(ch.Time), chDoc); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `INSERT INTO wf_departments(id, updated_us, doc) VALUES (?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET updated_us = excluded.updated_us, doc = excluded.doc`,
			d.ID, micros(ch.Time), doc)
		return err
	})
	if err != nil {
		return sluice.CatalogChange{}, err
	}
	return ch, nil
}

// CatalogChanges lists catalog changes newest first, of one department or
// of all (""); limit 0 means DefaultLimit.
func (s *Store) CatalogChanges(ctx context.Context, department string, limit int) ([]sluice.CatalogChange, error) {
	n, err := limitOf(limit)
	if err != nil {
		return nil, err
	}
	if department == "" {
		return docs[sluice.CatalogChange](ctx, s, s.db, "catalog change",
			`SELECT doc FROM wf_catalog_changes ORDER BY version DESC LIMIT ?`, n)
	}
	if err := checkKey("department id", department); err != nil {
		return nil, err
	}
	return docs[sluice.CatalogChange](ctx, s, s.db, "catalog change",
		`SELECT doc FROM wf_catalog_changes WHERE department = ? ORDER BY version DESC LIMIT ?`, department, n)
}

// Purposes lists the registered purposes sorted by code.
func (s *Store) Purposes(ctx context.Context) ([]sluice.Purpose, error) {
	return docs[sluice.Purpose](ctx, s, s.db, "purpose", `SELECT doc FROM wf_purposes ORDER BY code`)
}

// PutPurpose registers p, replacing any purpose with its code.
func (s *Store) PutPurpose(ctx context.Context, p sluice.Purpose) error {
	if err := checkKey("purpose code", p.Code); err != nil {
		return err
	}
	doc, err := encode("purpose "+p.Code, p)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO wf_purposes(code, doc) VALUES (?, ?)
			ON CONFLICT(code) DO UPDATE SET doc = excluded.doc`, p.Code, doc)
		return err
	})
}

// RemovePurpose removes a purpose from the registry, or returns ENotFound.
// Grants and applications that name it are left as they are: they are
// records of what was approved.
func (s *Store) RemovePurpose(ctx context.Context, code string) error {
	if err := checkKey("purpose code", code); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM wf_purposes WHERE code = ?`, code)
		if err != nil {
			return err
		}
		if n == 0 {
			return sluice.Errorf(sluice.ENotFound, "purpose %s is not registered", code)
		}
		return nil
	})
}
