// Package pgtest gives tests a fresh PostgreSQL schema to run a store in.
//
// The server is SLUICE_TEST_POSTGRES (a postgres:// URL) or, by default,
// 127.0.0.1:5432 database "test" as user postgres, then root (trust
// authentication, as on a developer machine or a CI service container).
// When no server answers, a test is skipped, except with CI=true, where it
// fails: CI must not go green by silently testing one backend. Benchmarks
// are always skipped.
package pgtest

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
)

// EnvURL names the environment variable that points the tests at a server.
const EnvURL = "SLUICE_TEST_POSTGRES"

var defaultURLs = []string{
	"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	"postgres://root@127.0.0.1:5432/test?sslmode=disable",
}

var server struct {
	once  sync.Once
	admin *sql.DB
	base  string
	err   error
}

func connect() {
	urls := defaultURLs
	if u := os.Getenv(EnvURL); u != "" {
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
				server.admin, server.base = db, u
				return
			}
			db.Close()
		}
		errs = append(errs, err)
	}
	server.err = errors.Join(errs...)
}

// Available reports whether a test server answers.
func Available() bool {
	server.once.Do(connect)
	return server.err == nil
}

// URL creates an empty schema sluice_t_<random> on the test server and
// returns a URL whose connections use it (search_path), so the test sees
// only its own tables; the schema is dropped with everything in it when the
// test ends. Stores opened on the URL must be closed by then (t.Cleanup
// runs last-registered first, so a Cleanup registered after URL does).
func URL(t testing.TB) string {
	t.Helper()
	server.once.Do(connect)
	if server.err != nil {
		msg := fmt.Sprintf("PostgreSQL is not reachable (set %s to a postgres:// URL, or start a server on 127.0.0.1:5432 with a database \"test\"): %v", EnvURL, server.err)
		if _, bench := t.(*testing.B); !bench && os.Getenv("CI") == "true" {
			t.Fatalf("CI=true requires the PostgreSQL tests: %s", msg)
		}
		t.Skip(msg)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "sluice_t_" + hex.EncodeToString(rnd[:])
	ctx := context.Background()
	if _, err := server.admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("creating test schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := server.admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, server.base, schema)
}

// WithSearchPath returns base with its search_path set to schema.
func WithSearchPath(t testing.TB, base, schema string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("test server URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens a plain connection pool on url, as a superuser tampering with
// the store or inspecting it would; it is closed when the test ends.
func Open(t testing.TB, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Unreachable is a URL no server answers on, for error tests; it carries a
// password so tests can check that messages never show it.
const Unreachable = "postgres://sluice:s3cr3t-pw@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"

// Schema returns the search_path of a URL made by URL.
func Schema(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(p.Query().Get("search_path"))
}
