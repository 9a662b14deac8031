// Package dialect is the small difference between the broker's two stores:
// a SQLite file (the default, and `sluice demo`) and a PostgreSQL database
// (chosen by a postgres:// or postgresql:// URL). The audit log and the
// budget store write their SQL once, with ? placeholders, and ask the
// dialect for the few pieces that differ: placeholders, column types,
// insert-or-ignore, row locks, snapshot transactions, the catalog lookup
// and how to open a connection. Whatever differs more than that (triggers,
// JSON functions) is written out per dialect where it is used.
package dialect

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
)

// Dialect is one store flavour. The zero value is SQLite.
type Dialect struct{ pg bool }

var (
	SQLite   = Dialect{}
	Postgres = Dialect{pg: true}
)

// IsPostgres reports whether a store string names a PostgreSQL database:
// it starts with postgres:// or postgresql:// (the scheme in any case).
// Anything else is a SQLite file path.
func IsPostgres(target string) bool {
	t := strings.ToLower(strings.TrimSpace(target))
	return strings.HasPrefix(t, "postgres://") || strings.HasPrefix(t, "postgresql://")
}

// For returns the dialect of a store string.
func For(target string) Dialect { return Dialect{pg: IsPostgres(target)} }

// IsPostgres reports whether d is PostgreSQL.
func (d Dialect) IsPostgres() bool { return d.pg }

// Name is the dialect's name for messages.
func (d Dialect) Name() string {
	if d.pg {
		return "PostgreSQL"
	}
	return "SQLite"
}

// Rebind turns the ? placeholders of q into PostgreSQL's $1, $2, …; SQLite
// queries pass through. A ? inside a single-quoted literal is left alone.
func (d Dialect) Rebind(q string) string {
	if !d.pg || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n, inStr := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inStr = !inStr // '' inside a literal toggles twice
		case c == '?' && !inStr:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// DDL fills in the column types of a CREATE statement: {int} is INTEGER in
// SQLite (so that INTEGER PRIMARY KEY stays the rowid) and BIGINT in
// PostgreSQL (sequence numbers and microsecond times exceed 32 bits);
// {blob} is BLOB or BYTEA.
func (d Dialect) DDL(stmt string) string {
	if d.pg {
		return strings.NewReplacer("{int}", "BIGINT", "{blob}", "BYTEA").Replace(stmt)
	}
	return strings.NewReplacer("{int}", "INTEGER", "{blob}", "BLOB").Replace(stmt)
}

// InsertIgnore turns "INSERT INTO …" into an insert that skips rows whose
// key already exists: INSERT OR IGNORE in SQLite, ON CONFLICT DO NOTHING in
// PostgreSQL. Only a key conflict is ignored in PostgreSQL, where SQLite's
// OR IGNORE also skips CHECK and NOT NULL failures; callers rely on the key
// case only.
func (d Dialect) InsertIgnore(insert string) string {
	if d.pg {
		return insert + " ON CONFLICT DO NOTHING"
	}
	return strings.Replace(insert, "INSERT INTO", "INSERT OR IGNORE INTO", 1)
}

// ForUpdate is appended to a SELECT that must lock the rows it reads until
// the transaction ends. SQLite needs none: its write transactions begin
// IMMEDIATE and hold the database's write lock from the start.
func (d Dialect) ForUpdate() string {
	if d.pg {
		return " FOR UPDATE"
	}
	return ""
}

// FoldEq is a case-insensitive comparison of col with one placeholder.
func (d Dialect) FoldEq(col string) string {
	if d.pg {
		return "lower(" + col + ") = lower(?)"
	}
	return col + " = ? COLLATE NOCASE"
}

// Snapshot is the options of a read-only transaction whose statements all
// see one snapshot. SQLite transactions always do; PostgreSQL's default
// READ COMMITTED takes a new snapshot per statement, so a head read before
// the entries could disagree with them while a broker appends.
func (d Dialect) Snapshot() *sql.TxOptions {
	if d.pg {
		return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	return &sql.TxOptions{ReadOnly: true}
}

// Querier is what TableExists needs: a *sql.DB, *sql.Tx or *sql.Conn.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// TableExists reports whether the store has a table of that name where
// unqualified names are created: the SQLite file, or the current schema
// (the first of search_path) in PostgreSQL.
func (d Dialect) TableExists(ctx context.Context, q Querier, name string) (bool, error) {
	var n int
	query := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if d.pg {
		query = `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1`
	}
	if err := q.QueryRowContext(ctx, query, name).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// Lock takes a transaction-scoped lock named name, released at commit or
// rollback, so that writers in other processes are serialised the way a
// SQLite file's write lock serialises them. The lock is scoped to the
// current schema, so stores in different schemas of one database do not
// wait for each other. It waits at most the connection's lock_timeout.
// SQLite needs none (BEGIN IMMEDIATE) and gets no statement.
func (d Dialect) Lock(ctx context.Context, tx *sql.Tx, name string) error {
	if !d.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.' || $1))`, name)
	return err
}

// PostgreSQL error codes the stores tell apart.
const (
	pgLockNotAvailable = "55P03" // lock_timeout expired
	pgSerialization    = "40001"
	pgDeadlock         = "40P01"
	pgUndefinedTable   = "42P01"
)

// IsBusy reports whether err is a PostgreSQL lock wait that timed out or a
// transaction that lost a race: it passes by itself and says nothing about
// the connection.
func IsBusy(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgLockNotAvailable, pgSerialization, pgDeadlock:
			return true
		}
	}
	return false
}

// IsUndefinedTable reports whether err is PostgreSQL's "relation does not
// exist".
func IsUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgUndefinedTable
}

// PGOptions configures OpenPostgres.
type PGOptions struct {
	// LockTimeout bounds every lock wait (PostgreSQL's lock_timeout), the
	// counterpart of SQLite's busy timeout; a lock_timeout in the URL wins.
	LockTimeout time.Duration
	// ReadOnly makes every transaction read-only
	// (default_transaction_read_only), for verification tools.
	ReadOnly bool
	// MaxConns bounds the pool.
	MaxConns int
}

// DefaultConnectTimeout applies when the URL sets no connect_timeout, so a
// store that does not answer fails the request instead of hanging it.
const DefaultConnectTimeout = 10 * time.Second

// OpenPostgres opens a pool on a PostgreSQL URL through pgx. Parameters pgx
// does not know (search_path, lock_timeout, …) are sent as run-time
// settings, so a URL can choose the schema. The pool connects lazily: the
// caller pings. The error, if any, is a parse error whose text has the
// password removed.
func OpenPostgres(target string, o PGOptions) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	rp := cfg.RuntimeParams
	if _, ok := rp["lock_timeout"]; !ok && o.LockTimeout > 0 {
		rp["lock_timeout"] = strconv.FormatInt(max(o.LockTimeout.Milliseconds(), 1), 10)
	}
	if o.ReadOnly {
		rp["default_transaction_read_only"] = "on"
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "sluice"
	}
	db := stdlib.OpenDB(*cfg)
	if o.MaxConns > 0 {
		db.SetMaxOpenConns(o.MaxConns)
		db.SetMaxIdleConns(o.MaxConns)
	}
	return db, nil
}

// Redact returns the store string as it may appear in messages and logs: a
// PostgreSQL URL without its password (in the user part or a password
// parameter); a file path as it is.
func Redact(target string) string {
	if !IsPostgres(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		// Unparseable: the password cannot be located, so show only the
		// scheme.
		scheme, _, _ := strings.Cut(target, "://")
		return scheme + "://(unparseable URL)"
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return target
	}
	u.RawQuery = q.Encode()
	return u.String()
}
