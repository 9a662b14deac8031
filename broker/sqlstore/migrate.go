package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Migration is one step of a store's schema. It runs inside the
// migrating transaction, so a migration that fails leaves no trace.
type Migration func(ctx context.Context, tx *sql.Tx, d Dialect) error

// Statements is a migration that runs stmts in order, with the DDL
// templates filled in (Dialect.DDL).
func Statements(stmts ...string) Migration {
	return func(ctx context.Context, tx *sql.Tx, d Dialect) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, d.DDL(s)); err != nil {
				return err
			}
		}
		return nil
	}
}

// Applied is a migration that a store's layout from before
// schema_migrations records having applied.
type Applied struct {
	Version int64
	// At is when, as that record says (RFC 3339); "" if it does not say,
	// and then the time of adoption is recorded.
	At string
}

// Schema is one store's tables: its name in schema_migrations and its
// migrations, in order. Migration i (from 0) brings the store to version
// i+1. Never edit or reorder one that has shipped: add a new one, since
// deployed databases record only the versions they applied.
type Schema struct {
	// Store names the store in schema_migrations: "workflow", "audit",
	// "budget", "guard".
	Store      string
	Migrations []Migration
	// Legacy, if set, is asked once, when schema_migrations has no row for
	// the store yet: which migrations a database written before
	// schema_migrations existed records in its own way (none: nil). It
	// runs in the migrating transaction and may tidy that record away. A
	// store whose old code created its tables idempotently on every open
	// needs none: its first migrations stay idempotent (CREATE … IF NOT
	// EXISTS), run once more over the tables already there, and are
	// recorded.
	Legacy func(ctx context.Context, tx *sql.Tx, d Dialect) ([]Applied, error)
}

// Version is the schema version this code writes.
func (s Schema) Version() int64 { return int64(len(s.Migrations)) }

// TooNewError is a database whose store is at a version this code does not
// know: a newer sluice has used it, and this one must not write to it.
type TooNewError struct {
	Store   string
	Version int64 // the version the database records
	Known   int64 // the last version this code knows
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("the %s tables are at schema version %d, but this sluice knows only up to version %d; upgrade sluice (a newer one has used this database)",
		e.Store, e.Version, e.Known)
}

// migrationsTable records, for every store, each migration applied and
// when. It is shared: the stores live in one database.
const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	store      {key} NOT NULL,
	version    BIGINT NOT NULL,
	applied_at TEXT NOT NULL,
	PRIMARY KEY (store, version)
)`

// migrationsLock serialises migrations across processes on PostgreSQL
// (per schema; SQLite's BEGIN IMMEDIATE does it there): brokers starting
// together take turns, and the later ones find nothing left to do.
const migrationsLock = "sluice_schema_migrations"

// Migrate brings the store's tables up to s.Version() inside tx, which the
// caller begins (a write transaction: BEGIN IMMEDIATE on SQLite) and
// commits, so that a failed migration leaves the database as it was. It
// takes the migrations lock first, creates schema_migrations if needed,
// adopts a database from before it (Legacy), refuses a database at a
// newer version (*TooNewError), and runs and records each migration not
// yet applied. A failing migration's error says "migration N failed".
func (s Schema) Migrate(ctx context.Context, tx *sql.Tx, d Dialect) error {
	if err := d.Lock(ctx, tx, migrationsLock); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.DDL(migrationsTable)); err != nil {
		return err
	}
	var current, rows int64
	if err := tx.QueryRowContext(ctx, d.Rebind(`SELECT COALESCE(MAX(version), 0), COUNT(*) FROM schema_migrations WHERE store = ?`), s.Store).
		Scan(&current, &rows); err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	record := func(v int64, at string) error {
		if at == "" {
			at = now
		}
		_, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO schema_migrations(store, version, applied_at) VALUES (?, ?, ?)`), s.Store, v, at)
		return err
	}
	if rows == 0 && s.Legacy != nil {
		applied, err := s.Legacy(ctx, tx, d)
		if err != nil {
			return err
		}
		for i, a := range applied {
			if a.Version != int64(i+1) {
				return fmt.Errorf("the %s tables record migration %d where %d was expected; the record of their versions is damaged", s.Store, a.Version, i+1)
			}
			if err := record(a.Version, a.At); err != nil {
				return err
			}
		}
		current = int64(len(applied))
	}
	if current > s.Version() {
		return &TooNewError{Store: s.Store, Version: current, Known: s.Version()}
	}
	for v := current + 1; v <= s.Version(); v++ {
		if err := s.Migrations[v-1](ctx, tx, d); err != nil {
			return fmt.Errorf("migration %d failed: %w", v, err)
		}
		if err := record(v, ""); err != nil {
			return err
		}
	}
	return nil
}

// Recorded returns the migrations schema_migrations records for store, in
// order of version; none if the table does not exist yet. q is a *sql.DB,
// *sql.Tx or *sql.Conn.
func Recorded(ctx context.Context, q interface {
	Querier
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, d Dialect, store string) ([]Applied, error) {
	if ok, err := d.TableExists(ctx, q, "schema_migrations"); err != nil || !ok {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, d.Rebind(`SELECT version, applied_at FROM schema_migrations WHERE store = ? ORDER BY version`), store)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Applied
	for rows.Next() {
		var a Applied
		if err := rows.Scan(&a.Version, &a.At); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
