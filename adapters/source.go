// Package adapters holds the department-side sources: databases opened with
// sqlx (SQLite, PostgreSQL, MySQL/MariaDB) whose query results are streamed
// as typed Arrow record batches. The department agent (adapters/agent) runs
// fragments through it; nothing in the broker reads a database directly.
package adapters

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	sluice "github.com/sluice-gov/sluice"
)

const (
	// connectTimeout bounds a single connection attempt to a server so that
	// a blackholed host fails the agent start instead of hanging it.
	connectTimeout = 10 * time.Second
	// pingTimeout bounds Open's ping when the caller's context has no
	// deadline of its own.
	pingTimeout = 15 * time.Second
)

// DB is one opened department database. It is safe for concurrent use.
type DB struct {
	name   string
	driver sluice.Driver
	x      *sqlx.DB
	mem    memory.Allocator
	// secret is the DSN's password, scrubbed from any driver message we
	// repeat, since some drivers echo connection parameters.
	secret string
	// fl is the connection of a flightsql source (flightsql.go); x is nil then.
	fl *flightSource
}

// Option tunes Open.
type Option func(*options)

type options struct {
	maxOpen int
	mem     memory.Allocator
}

// WithMaxOpenConns caps the pool of connections to the database; n <= 0
// leaves it unlimited.
func WithMaxOpenConns(n int) Option { return func(o *options) { o.maxOpen = n } }

// WithAllocator sets the Arrow allocator record batches are built with
// (memory.DefaultAllocator when unset); tests pass a checked allocator to
// prove every batch is released.
func WithAllocator(mem memory.Allocator) Option { return func(o *options) { o.mem = mem } }

// Open opens src and pings it. A database that cannot be reached is an
// EUnavailable error naming the source and driver (never the DSN, which may
// hold a password); a DSN that cannot be parsed or an unknown driver is
// EInvalid.
//
// SQLite DSNs are file paths and are opened read-only (the agent only ever
// reads), unless the DSN already is a "file:" URI, which is used as given.
// MySQL DSNs get parseTime=true so DATE and DATETIME scan as time.Time;
// DATETIME values are read in the DSN's loc (UTC unless set), so a server
// that stores local time needs e.g. loc=Asia%2FShanghai in its DSN.
func Open(ctx context.Context, src sluice.Source, opts ...Option) (*DB, error) {
	o := options{mem: memory.DefaultAllocator}
	for _, opt := range opts {
		opt(&o)
	}
	if o.mem == nil {
		o.mem = memory.DefaultAllocator
	}
	db := &DB{name: src.Name, driver: src.Driver, mem: o.mem}

	var sqldb *sql.DB
	switch src.Driver {
	case sluice.DriverSQLite:
		if strings.TrimSpace(src.DSN) == "" {
			return nil, sluice.Errorf(sluice.EInvalid, "source %q (sqlite): the DSN is empty; give the database file path", src.Name)
		}
		var err error
		if sqldb, err = sql.Open("sqlite", sqliteDSN(src.DSN)); err != nil {
			return nil, &sluice.Error{Code: sluice.EInvalid, Message: "source " + quote(src.Name) + " (sqlite): the DSN is not valid: " + err.Error(), Err: err}
		}
		db.x = sqlx.NewDb(sqldb, "sqlite")
	case sluice.DriverPostgres:
		cfg, err := pgx.ParseConfig(src.DSN)
		if err != nil {
			// pgx redacts the password in its parse errors.
			return nil, &sluice.Error{Code: sluice.EInvalid, Message: "source " + quote(src.Name) + " (postgres): the DSN is not valid: " + err.Error(), Err: err}
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = connectTimeout
		}
		if _, ok := cfg.RuntimeParams["application_name"]; !ok {
			cfg.RuntimeParams["application_name"] = "sluice-agent"
		}
		db.secret = cfg.Password
		db.x = sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	case sluice.DriverMySQL:
		cfg, err := mysql.ParseDSN(src.DSN)
		if err != nil {
			return nil, &sluice.Error{Code: sluice.EInvalid, Message: "source " + quote(src.Name) + " (mysql): the DSN is not valid: " + err.Error(), Err: err}
		}
		cfg.ParseTime = true
		if cfg.Timeout == 0 {
			cfg.Timeout = connectTimeout
		}
		db.secret = cfg.Passwd
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, &sluice.Error{Code: sluice.EInvalid, Message: "source " + quote(src.Name) + " (mysql): the DSN is not valid: " + db.scrub(err.Error()), Err: err}
		}
		db.x = sqlx.NewDb(sql.OpenDB(conn), "mysql")
	case sluice.DriverFlightSQL:
		if err := openFlightSQL(ctx, src, db); err != nil {
			return nil, err
		}
		return db, nil
	default:
		return nil, sluice.Errorf(sluice.EInvalid, "source %q: unknown driver %q (want sqlite, postgres, mysql or flightsql)", src.Name, src.Driver)
	}
	if o.maxOpen > 0 {
		db.x.SetMaxOpenConns(o.maxOpen)
	}

	pctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, pingTimeout)
		defer cancel()
	}
	if err := db.x.PingContext(pctx); err != nil {
		db.x.Close()
		if ctx.Err() != nil {
			return nil, &sluice.Error{Code: sluice.EUnavailable, Message: "opening source " + quote(src.Name) + " was cancelled", Err: ctx.Err()}
		}
		return nil, &sluice.Error{
			Code:    sluice.EUnavailable,
			Message: "source " + quote(src.Name) + " (" + string(src.Driver) + ") is not reachable: " + db.scrub(err.Error()),
			Err:     err,
		}
	}
	return db, nil
}

// sqliteDSN turns a file path into a read-only SQLite URI. Read-only also
// means a mistyped path fails at Open instead of creating an empty database.
func sqliteDSN(dsn string) string {
	if strings.HasPrefix(dsn, "file:") || dsn == ":memory:" {
		return dsn
	}
	path, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		// Let the driver report the malformed query string.
		return dsn
	}
	if q.Get("mode") == "" {
		q.Set("mode", "ro")
	}
	if len(q["_pragma"]) == 0 {
		// A department application may be writing while we read.
		q.Add("_pragma", "busy_timeout(5000)")
	}
	// LIKE tells upper from lower case, as in PostgreSQL (the planner
	// renders constant patterns as GLOB; this covers computed ones).
	q.Add("_pragma", "case_sensitive_like(1)")
	return "file:" + escapeSQLitePath(path) + "?" + q.Encode()
}

// escapeSQLitePath escapes the characters that end or corrupt the path part
// of an SQLite URI.
func escapeSQLitePath(p string) string {
	if !strings.ContainsAny(p, "%?#") {
		return p
	}
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}

// Name is the source's name from the department configuration.
func (db *DB) Name() string { return db.name }

// Driver is the source's driver, the dialect fragments are rendered in;
// for a flightsql source, the dialect its server declares (sqlite or
// postgres) or DriverFlightSQL when it declares none Sluice renders yet.
func (db *DB) Driver() sluice.Driver { return db.driver }

// SQLX exposes the connection pool for tests and tools; fragments go
// through Scan.
func (db *DB) SQLX() *sqlx.DB { return db.x }

// Close closes the connection pool.
func (db *DB) Close() error {
	if db.fl != nil {
		return db.fl.close()
	}
	if err := db.x.Close(); err != nil {
		return &sluice.Error{Code: sluice.EInternal, Message: "closing source " + quote(db.name) + ": " + db.scrub(err.Error()), Err: err}
	}
	return nil
}

// scrub removes the DSN password from a driver message.
func (db *DB) scrub(msg string) string {
	if len(db.secret) < 3 {
		return msg
	}
	return strings.ReplaceAll(msg, db.secret, "********")
}
