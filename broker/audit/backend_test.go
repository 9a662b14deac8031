package audit

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// backend is a store the suite runs against: a SQLite temp file always,
// PostgreSQL (a fresh schema per test) when a server answers; see dbtest
// for when it is skipped and when, with CI=true, it fails.
type backend struct {
	name string
	d    sqlstore.Dialect
}

var (
	sqliteBackend   = backend{name: "sqlite", d: sqlstore.SQLite}
	postgresBackend = backend{name: "postgres", d: sqlstore.Postgres}
	backends        = []backend{sqliteBackend, postgresBackend}
)

func (b backend) pg() bool { return b.d.IsPostgres() }

// eachBackend runs f as one subtest per backend.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// target returns a store nobody has used yet.
func (b backend) target(t testing.TB) string {
	t.Helper()
	if b.pg() {
		return dbtest.PostgresSchema(t)
	}
	return filepath.Join(t.TempDir(), "broker.db")
}

// newLog opens a log on a fresh store, closed when the test ends.
func (b backend) newLog(t testing.TB, opts ...Option) (*Log, string) {
	t.Helper()
	target := b.target(t)
	l, err := Open(context.Background(), target, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, target
}

// rawStore is the store opened directly, as someone with write access to
// the file or a superuser login would. Exec and QueryRow take ?
// placeholders in either dialect.
type rawStore struct {
	*sql.DB
	d sqlstore.Dialect
}

func (r *rawStore) Exec(q string, args ...any) (sql.Result, error) {
	return r.DB.Exec(r.d.Rebind(q), args...)
}

func (r *rawStore) QueryRow(q string, args ...any) *sql.Row {
	return r.DB.QueryRow(r.d.Rebind(q), args...)
}

// rawDB opens the store at target (a file path or a URL) the way an
// attacker with access to it would (dbtest.OpenStore: one connection).
func rawDB(t testing.TB, target string) *rawStore {
	t.Helper()
	return &rawStore{DB: dbtest.OpenStore(t, target), d: sqlstore.For(target)}
}

// holdWriteLock takes, on another connection, the lock an append needs
// (SQLite's database write lock, with sqliteBegin; PostgreSQL's lock on the
// head table) and returns how to release it.
func holdWriteLock(t *testing.T, target, sqliteBegin string) (release func()) {
	t.Helper()
	ctx := context.Background()
	db := rawDB(t, target)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{sqliteBegin}
	if db.d.IsPostgres() {
		stmts = []string{`BEGIN`, `LOCK TABLE audit_head IN EXCLUSIVE MODE`}
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
}
