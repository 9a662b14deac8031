// Package dbtest gives tests the database servers they need: PostgreSQL
// and MariaDB on this machine, or the PostgreSQL server SLUICE_TEST_POSTGRES
// names.
//
// The local defaults are those of a developer machine or a CI service
// container, with trust authentication: PostgreSQL on 127.0.0.1:5432,
// database test (then postgres) as user postgres (then root); MariaDB on
// 127.0.0.1:3306 as root, database test.
//
// A server that does not answer skips the test, except with CI=true, where
// it fails: CI must not go green by silently testing one backend.
// Benchmarks are always skipped.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// EnvPostgres names the environment variable that points the tests at a
// PostgreSQL server (a postgres:// URL) instead of the local defaults.
const EnvPostgres = "SLUICE_TEST_POSTGRES"

// PostgresURLs are the local servers tried, in order, when EnvPostgres is
// not set.
var PostgresURLs = []string{
	"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	"postgres://root@127.0.0.1:5432/test?sslmode=disable",
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	"postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
}

// MariaDB is the local MariaDB (or MySQL) server, as a go-sql-driver/mysql
// DSN.
const MariaDB = "root@tcp(127.0.0.1:3306)/test"

// How to start the servers, for the skip message.
const (
	startPostgres = "docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres:16"
	startMariaDB  = "docker run -d -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e MARIADB_DATABASE=test mariadb:10.11"
)

// UnreachablePostgres is a URL no server answers on, for error tests; it
// carries a password (s3cr3t-pw) so tests can check that messages never
// show it.
const UnreachablePostgres = "postgres://sluice:s3cr3t-pw@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"

// Required reports whether the database servers are part of the run
// (CI=true), so that one that does not answer fails the tests that need it.
func Required() bool { return os.Getenv("CI") == "true" }

// Unavailable ends tb because a server it needs does not answer: it fails
// under CI=true (Required) and skips otherwise; a benchmark is always
// skipped. The message says what is missing and how to provide it.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if _, bench := tb.(*testing.B); !bench && Required() {
		tb.Fatalf("CI=true requires the database servers: %s", msg)
	}
	tb.Skipf("%s (run with CI=true to require it)", msg)
}

// Open opens a database/sql handle on dsn and pings it; a server that does
// not answer ends tb (Unavailable). The handle is closed when the test
// ends. The driver must be registered by the caller's imports (pgx is).
func Open(tb testing.TB, driver, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err != nil {
			db.Close()
		}
	}
	if err != nil {
		NotReachable(tb, driver, dsn, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func howToStart(what string) string {
	switch w := strings.ToLower(what); {
	case w == "pgx" || strings.Contains(w, "postgres"):
		return startPostgres
	case strings.Contains(w, "mysql") || strings.Contains(w, "mariadb"):
		return startMariaDB
	}
	return "a server on this machine"
}

// NotReachable ends tb (Unavailable) because the server at dsn did not
// answer: err says how. what names the server or its driver ("pgx",
// "PostgreSQL", "mysql", "MariaDB"), which picks the hint how to start one.
func NotReachable(tb testing.TB, what, dsn string, err error) {
	tb.Helper()
	Unavailable(tb, "%s is not reachable at %s: %v; start one with: %s", what, dsn, err, howToStart(what))
}

var postgres struct {
	once  sync.Once
	admin *sql.DB
	base  string
	err   error
}

func connectPostgres() {
	urls := PostgresURLs
	if u := os.Getenv(EnvPostgres); u != "" {
		urls = []string{u}
	}
	var errs []error
	for _, u := range urls {
		db, err := sql.Open("pgx", u)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = db.PingContext(ctx)
			cancel()
			if err == nil {
				db.SetMaxOpenConns(2)
				postgres.admin, postgres.base = db, u
				return
			}
			db.Close()
		}
		errs = append(errs, err)
	}
	postgres.err = errors.Join(errs...)
}

func postgresServer(tb testing.TB) {
	tb.Helper()
	postgres.once.Do(connectPostgres)
	if postgres.err != nil {
		Unavailable(tb, "PostgreSQL is not reachable (set %s to a postgres:// URL, or start a server on 127.0.0.1:5432 with a database \"test\": %s): %v",
			EnvPostgres, startPostgres, postgres.err)
	}
}

// PostgresURL is the URL of the PostgreSQL server the tests use: the first
// that answers, once per test binary. A test that creates tables on it
// must drop them; PostgresSchema gives one a schema of its own instead.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	postgresServer(tb)
	return postgres.base
}

// PostgresSchema creates an empty schema sluice_t_<random> on the test
// server and returns a URL whose connections use it (search_path), so the
// test sees only its own tables; the schema is dropped with everything in
// it when the test ends. Stores opened on the URL must be closed by then
// (t.Cleanup runs last-registered first, so a Cleanup registered after
// PostgresSchema does).
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	postgresServer(tb)
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		tb.Fatal(err)
	}
	schema := "sluice_t_" + hex.EncodeToString(rnd[:])
	if _, err := postgres.admin.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("creating test schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		if _, err := postgres.admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(postgres.base)
	if err != nil {
		tb.Fatalf("test server URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// SchemaOf returns the search_path of a URL made by PostgresSchema.
func SchemaOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(p.Query().Get("search_path"))
}

// OpenStore opens a broker store (a SQLite file path or a postgres:// URL)
// directly, as someone with access to the file or a login to the database
// would, to set it up or tamper with it; it is closed when the test ends.
// One connection, so that temporary tables made by one statement are
// there for the next.
func OpenStore(tb testing.TB, target string) *sql.DB {
	tb.Helper()
	driver, dsn := "sqlite", target+"?_pragma=busy_timeout(5000)"
	if strings.Contains(target, "://") {
		driver, dsn = "pgx", target
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	return db
}
