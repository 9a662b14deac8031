package audit

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// Verify walks the whole chain in sequence order and reports the first entry
// that does not verify (auditchain.Verify). It reads one consistent
// snapshot, so it can run while appends continue, and streams rows so
// memory does not grow with the log. Checkpoints are checked against the
// chain; with WithTrustedKeys their signatures too; with WithArchives the
// chain is walked from the first archive through the store.
func (l *Log) Verify(ctx context.Context, opts ...VerifyOption) (*VerifyReport, error) {
	if err := auditchain.CheckVerifyOptions(opts...); err != nil {
		return nil, err
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	return verifyDB(ctx, l.d, l.handle(), l.name, opts)
}

// VerifyFile opens the audit store at path read-only and verifies its chain
// as Verify does; it backs `sluice audit verify --store FILE|URL` and works
// while a broker has the store open. path is a SQLite file, which must
// exist, or a postgres:// URL, whose transactions are made read-only; the
// store is never created or upgraded. A department agent's own log file
// (adapters/agent/auditlog) keeps its chain in the same tables and
// verifies the same way.
func VerifyFile(ctx context.Context, path string, opts ...VerifyOption) (*VerifyReport, error) {
	if err := auditchain.CheckVerifyOptions(opts...); err != nil {
		return nil, err
	}
	d, name := sqlstore.For(path), sqlstore.Redact(path)
	if !d.IsPostgres() {
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, sluice.Errorf(sluice.EInvalid, "audit store %s does not exist", path)
		case err != nil:
			return nil, storeErr(path, "cannot be read", err)
		case fi.IsDir():
			return nil, sluice.Errorf(sluice.EInvalid, "audit store %s is a directory; give the store file", path)
		}
	}
	o := defaultOptions
	o.readOnly = true
	db, err := openDB(path, o, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, storeErr(name, "cannot be opened", err)
	}
	return verifyDB(ctx, d, db, name, opts)
}

func verifyDB(ctx context.Context, d sqlstore.Dialect, db *sql.DB, path string, opts []VerifyOption) (*VerifyReport, error) {
	tx, err := db.BeginTx(ctx, d.Snapshot())
	if err != nil {
		return nil, storeErr(path, "cannot be read", err)
	}
	defer tx.Rollback()
	// The head is read first and in the same transaction as the entries, so
	// both come from one snapshot even while a broker is appending.
	s := auditchain.Snapshot{Head: auditchain.EmptyHead}
	switch err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&s.Head.Seq, &s.Head.Hash); {
	case errors.Is(err, sql.ErrNoRows):
		s.HeadMissing = true
	case err != nil:
		if strings.Contains(err.Error(), "no such table") || sqlstore.IsUndefinedTable(err) {
			return nil, sluice.Errorf(sluice.EInvalid, "%s holds no audit log (no audit_head table)", path)
		}
		return nil, storeErr(path, "cannot be read", err)
	}
	// Stores written before checkpoints and archives existed lack those
	// tables: they simply have none.
	if ok, err := d.TableExists(ctx, tx, "audit_checkpoints"); err != nil {
		return nil, storeErr(path, "cannot be read", err)
	} else if ok {
		if s.Checkpoints, err = loadCheckpoints(ctx, tx); err != nil {
			return nil, err
		}
	}
	if ok, err := d.TableExists(ctx, tx, "audit_archives"); err != nil {
		return nil, storeErr(path, "cannot be read", err)
	} else if ok {
		if s.Archives, err = loadArchiveRecords(ctx, tx); err != nil {
			return nil, err
		}
	}
	s.Rows = func(add func(*auditchain.StoredRow)) error {
		// Stores from before the dataset index (read here without being
		// upgraded) have nothing to check it against.
		indexed, err := d.TableExists(ctx, tx, "audit_entry_datasets")
		if err != nil {
			return storeErr(path, "cannot be read", err)
		}
		q := `SELECT ` + auditchain.EntryColumns + ` FROM audit_entries ORDER BY seq`
		scan := auditchain.ScanRow
		if indexed {
			q = `SELECT ` + auditchain.EntryColumns + `, ` + datasetsColumn(d) + ` FROM audit_entries ORDER BY seq`
			scan = auditchain.ScanIndexedRow
		}
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return storeErr(path, "cannot be read", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return storeErr(path, "cannot be read", err)
			}
			add(r)
		}
		if err := rows.Err(); err != nil {
			return storeErr(path, "cannot be read", err)
		}
		return nil
	}
	return auditchain.Verify(s, opts...)
}
