// Package store keeps the broker's workflow state: the catalog of
// departments (with a versioned change log), the purposes registry, users
// and their hashed tokens, grants, access applications and error reports
// (纠错).
//
// The same code runs on SQLite (a file path, the default for `sluice demo`
// and single-broker deployments) and PostgreSQL (a postgres:// URL, for a
// broker that must survive the loss of its host). Each record is stored as
// the JSON encoding of its sluice type, beside a few key columns that are
// indexed for lookups, filters and ordering. Keeping documents rather than
// one column per field means a new field in a sluice type needs no
// migration, and the SQL stays the same on both dialects except for
// placeholders and a collation.
//
// Times inside documents round-trip exactly (RFC 3339 with nanoseconds and
// the caller's offset); the indexed time columns hold UTC Unix microseconds,
// used only for ordering.
//
// Status changes of applications and reports are compare-and-set: the
// caller names the status it saw, and the change is refused with EConflict
// if another reviewer moved the record meanwhile. Every write is one
// transaction; on SQLite writers queue on the database lock (BEGIN
// IMMEDIATE with a busy timeout) instead of failing with SQLITE_BUSY.
//
// Tables are prefixed wf_ because the database may be shared with the audit
// log (audit_*) and the privacy budgets (dp_*).
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

// Dialect names, as Dialect returns them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// BusyTimeout is how long a SQLite writer waits for another process that
// holds the write lock before giving up.
const BusyTimeout = 5 * time.Second

// connectTimeout bounds how long Open waits for PostgreSQL when the URL
// does not say (connect_timeout), so a broker pointed at a dead host fails
// at start-up with a message rather than hanging.
const connectTimeout = 5 * time.Second

// DefaultLimit is how many rows a listing returns when its limit is 0.
const DefaultLimit = 1000

// Store is the workflow store. It is safe for concurrent use, and several
// broker processes may share one database.
type Store struct {
	db *sql.DB
	d  sqlstore.Dialect
	// where names the database in messages: the SQLite path or the
	// PostgreSQL URL with its password redacted.
	where string
	// secret is the PostgreSQL password, scrubbed from every message in
	// case a driver error quotes it.
	secret string
	// wmu serialises this process's SQLite writers, so they wait on a
	// mutex instead of polling the file lock through the busy handler;
	// other processes are still serialised by SQLite itself.
	wmu sync.Mutex
	now func() time.Time
}

// Open opens the store at target, a SQLite file path or a postgres:// or
// postgresql:// URL, and brings its schema up to date. A database written
// by a newer broker is refused with EInvalid.
func Open(ctx context.Context, target string) (*Store, error) {
	if strings.TrimSpace(target) == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the broker store is not set; give a SQLite file path or a postgres:// URL")
	}
	h, err := sqlstore.Open(target, sqlstore.Options{
		What:           "the broker store",
		BusyTimeout:    BusyTimeout,
		SQLitePool:     sqlstore.Pool{MaxOpen: 4, MaxIdle: 4},
		ConnectTimeout: connectTimeout,
		AppName:        "sluice-broker",
		PostgresPool:   sqlstore.Pool{MaxOpen: 10, MaxIdle: 4},
	})
	if err != nil {
		return nil, err
	}
	s := &Store{db: h.DB, d: h.Dialect, where: h.Name, secret: h.Password, now: time.Now}
	if s.d.IsPostgres() {
		if err := s.db.PingContext(ctx); err != nil {
			s.db.Close()
			return nil, s.unavailable(fmt.Errorf("cannot connect to %s: %w", s.where, err))
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string {
	if s.d.IsPostgres() {
		return Postgres
	}
	return SQLite
}

// scrub removes the password from a message. Very short passwords are
// left alone: replacing every "a" in a message would garble it and hide
// nothing a guesser would not try first.
func (s *Store) scrub(msg string) string {
	if len(s.secret) >= 3 {
		msg = strings.ReplaceAll(msg, s.secret, "xxxxx")
	}
	return msg
}

// unavailable wraps a database error: the caller can retry later, and the
// message says which store failed without leaking its credentials.
func (s *Store) unavailable(err error) error {
	return &sluice.Error{
		Code:    sluice.EUnavailable,
		Message: fmt.Sprintf("the broker store (%s) is unavailable: %s", s.Dialect(), s.scrub(err.Error())),
		Err:     err,
	}
}

// tx runs f in one write transaction. Errors f returns as *sluice.Error
// pass through (a conflict, a missing record); anything else came from the
// database and is reported as the store being unavailable.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	return s.txAt(ctx, "", f)
}

// txAt is tx whose database errors say where they happened (the store's
// location while opening it, when a bad path or schema is the likely
// cause).
func (s *Store) txAt(ctx context.Context, at string, f func(*sql.Tx) error) error {
	unavailable := func(err error) error {
		if at != "" {
			err = fmt.Errorf("%s: %w", at, err)
		}
		return s.unavailable(err)
	}
	if !s.d.IsPostgres() {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		var se *sluice.Error
		if errors.As(err, &se) {
			return err
		}
		return unavailable(err)
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}

// execer is what both *sql.DB and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) exec(ctx context.Context, q execer, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, s.d.Rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// docs runs a query whose only column is a JSON document and decodes each
// row as a T.
func docs[T any](ctx context.Context, s *Store, q execer, what, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, s.d.Rebind(query), args...)
	if err != nil {
		return nil, s.unavailable(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, s.unavailable(err)
		}
		var v T
		if err := decode(what, doc, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.unavailable(err)
	}
	return out, nil
}

// one reads a single document; found is false when no row matched.
func one[T any](ctx context.Context, s *Store, q execer, what, query string, args ...any) (v *T, found bool, err error) {
	var doc string
	switch err := q.QueryRowContext(ctx, s.d.Rebind(query), args...).Scan(&doc); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, s.unavailable(err)
	}
	v = new(T)
	if err := decode(what, doc, v); err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func encode(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only values JSON cannot represent (NaN, ±Inf) get here.
		return "", sluice.Errorf(sluice.EInvalid, "%s cannot be stored: %v", what, err)
	}
	return string(b), nil
}

func decode(what, doc string, v any) error {
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("the stored %s is corrupt: %v", what, err), Err: err}
	}
	return nil
}

// checkKey rejects a key the database could not index faithfully:
// PostgreSQL refuses NUL and invalid UTF-8 in text, which would otherwise
// surface as the store being "unavailable".
func checkKey(what, v string) error {
	if v == "" {
		return sluice.Errorf(sluice.EInvalid, "the %s is required", what)
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return sluice.Errorf(sluice.EInvalid, "the %s %q is not valid text", what, v)
	}
	return nil
}

// checkFields is checkKey for indexed columns that may be empty.
func checkFields(fields ...[2]string) error {
	for _, f := range fields {
		if !utf8.ValidString(f[1]) || strings.ContainsRune(f[1], 0) {
			return sluice.Errorf(sluice.EInvalid, "the %s %q is not valid text", f[0], f[1])
		}
	}
	return nil
}

// limitOf turns a caller's limit into a LIMIT value.
func limitOf(n int) (int, error) {
	switch {
	case n < 0:
		return 0, sluice.Errorf(sluice.EInvalid, "the limit must be 0 (the default, %d) or more; got %d", DefaultLimit, n)
	case n == 0:
		return DefaultLimit, nil
	}
	return n, nil
}

// micros is the indexed form of a time: UTC Unix microseconds, which sort
// the same on both dialects.
func micros(t time.Time) int64 { return t.UnixMicro() }

// placeholders is "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Meta returns a value recorded with SetMeta; ok is false if none was.
func (s *Store) Meta(ctx context.Context, key string) (value string, ok bool, err error) {
	if err := checkKey("meta key", key); err != nil {
		return "", false, err
	}
	switch err := s.db.QueryRowContext(ctx, s.d.Rebind(`SELECT value FROM wf_meta WHERE name = ?`), key).Scan(&value); {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, s.unavailable(err)
	}
	return value, true, nil
}

// SetMeta records value under key, replacing any earlier value.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	if err := checkKey("meta key", key); err != nil {
		return err
	}
	if err := checkFields([2]string{"meta value", value}); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO wf_meta(name, value) VALUES (?, ?)
			ON CONFLICT(name) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}
