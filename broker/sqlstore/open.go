package sqlstore

import (
	"cmp"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
	sluice "github.com/sluice-gov/sluice"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DefaultConnectTimeout applies when neither the URL (connect_timeout) nor
// the store sets one, so a store that does not answer fails the request
// instead of hanging it.
const DefaultConnectTimeout = 10 * time.Second

// Pool bounds a handle's connections; zero leaves database/sql's default.
type Pool struct{ MaxOpen, MaxIdle int }

func (p Pool) apply(db *sql.DB) {
	if p.MaxOpen > 0 {
		db.SetMaxOpenConns(p.MaxOpen)
	}
	if p.MaxIdle > 0 {
		db.SetMaxIdleConns(p.MaxIdle)
	}
}

// Options are a store's settings for Open. Each store keeps its own.
type Options struct {
	// What names the store in messages: "audit store", "the broker store".
	What string

	// BusyTimeout is how long a SQLite writer waits for another process
	// that holds the write lock.
	BusyTimeout time.Duration
	// MustExist opens a SQLite file without creating it (a handle that
	// broke is reopened so: a store file that vanished must not be
	// replaced by an empty one). A PostgreSQL database is never created.
	MustExist bool
	// SQLitePool bounds the connections to a SQLite file: WAL lets
	// readers run beside the one writer, and a few are enough for that.
	SQLitePool Pool

	// LockTimeout bounds every PostgreSQL lock wait (lock_timeout), the
	// counterpart of SQLite's busy timeout; 0 leaves the server's. A
	// lock_timeout in the URL wins.
	LockTimeout time.Duration
	// ConnectTimeout applies when the URL sets no connect_timeout;
	// 0 is DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// AppName is PostgreSQL's application_name unless the URL sets one;
	// "" is "sluice".
	AppName string
	// PostgresPool bounds the connections to PostgreSQL.
	PostgresPool Pool

	// ReadOnly makes every transaction read-only: SQLite's mode=ro (with
	// none of the write settings), PostgreSQL's
	// default_transaction_read_only. For verification tools.
	ReadOnly bool
}

// Handle is an open store: the pool, its dialect and how messages name
// it. The pool connects lazily; the caller pings.
type Handle struct {
	DB      *sql.DB
	Dialect Dialect
	// Name is the store string as messages show it: the SQLite path, or
	// the PostgreSQL URL without its password (Redact).
	Name string
	// Password is the PostgreSQL password in use (from the URL or the
	// environment), for scrubbing from driver messages; "" for SQLite.
	Password string
}

// Open opens the store at target: a SQLite file path, or a postgres:// or
// postgresql:// URL. An in-memory SQLite database or a file: URI is
// refused (each pooled connection would see a different database, or the
// URI would bypass the settings), as are a directory and a URL that does
// not parse; those errors are EInvalid and name the store without its
// password.
//
// SQLite files run in WAL mode with synchronous=FULL (a commit that has
// returned survives a power cut: an approval acknowledged, an audit entry
// before its rows) and BEGIN IMMEDIATE (a read-then-write transaction
// takes the write lock when it starts, so it never fails half way with
// SQLITE_BUSY because another writer got in between; writers queue).
// PostgreSQL parameters pgx does not know (search_path, lock_timeout, …)
// are sent as run-time settings, so a URL can choose the schema.
func Open(target string, o Options) (*Handle, error) {
	if IsPostgres(target) {
		return openPostgres(target, o)
	}
	return openSQLite(target, o)
}

func openSQLite(path string, o Options) (*Handle, error) {
	if strings.TrimSpace(path) == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, sluice.Errorf(sluice.EInvalid, "%s must be a SQLite file path or a postgres:// URL; got %q", o.What, path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, sluice.Errorf(sluice.EInvalid, "%s %s is a directory; give a file path", o.What, path)
	}
	dsn, err := sqliteDSN(path, o)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "%s %s: %v", o.What, path, err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "%s %s cannot be opened: %v", o.What, path, err)
	}
	o.SQLitePool.apply(db)
	if !o.ReadOnly {
		settleWAL(db, o.BusyTimeout)
	}
	return &Handle{DB: db, Dialect: SQLite, Name: path}, nil
}

// settleWAL opens the first connection, which switches a new file to WAL
// mode. SQLite does not apply the busy timeout to that switch: a process
// opening the same new file at the same moment gets SQLITE_BUSY at once.
// So the first connection retries within the busy timeout (once a file is
// in WAL mode, later connections find nothing to switch). Any other
// error (a missing directory, a file that is not a database) surfaces at
// the store's first statement, in the store's own words.
func settleWAL(db *sql.DB, busy time.Duration) {
	deadline := time.Now().Add(max(busy, time.Second))
	wait := 5 * time.Millisecond
	for {
		err := db.Ping()
		if err == nil || !isSQLiteBusy(err) || time.Now().After(deadline) {
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// isSQLiteBusy: modernc's error carries the code in its text
// ("database is locked (5) (SQLITE_BUSY)").
func isSQLiteBusy(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked")
}

// sqliteDSN builds a file: URI so that any character in the path is
// escaped and SQLite's own parameters (mode) apply.
func sqliteDSN(path string, o Options) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	if o.ReadOnly {
		q.Set("mode", "ro")
	} else {
		if o.MustExist {
			q.Set("mode", "rw")
		}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// Read-only transactions stay deferred.
		q.Set("_txlock", "immediate")
	}
	return u.String() + "?" + q.Encode(), nil
}

func openPostgres(target string, o Options) (*Handle, error) {
	name := Redact(target)
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		// pgx redacts the password in its parse errors; scrub the URL too
		// in case a future version quotes it.
		return nil, sluice.Errorf(sluice.EInvalid, "%s URL %s is not valid: %s", o.What, name, strings.ReplaceAll(err.Error(), target, name))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = cmp.Or(o.ConnectTimeout, DefaultConnectTimeout)
	}
	rp := cfg.RuntimeParams
	if _, ok := rp["lock_timeout"]; !ok && o.LockTimeout > 0 {
		rp["lock_timeout"] = strconv.FormatInt(max(o.LockTimeout.Milliseconds(), 1), 10)
	}
	if o.ReadOnly {
		rp["default_transaction_read_only"] = "on"
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = cmp.Or(o.AppName, "sluice")
	}
	db := stdlib.OpenDB(*cfg)
	o.PostgresPool.apply(db)
	return &Handle{DB: db, Dialect: Postgres, Name: name, Password: cfg.Password}, nil
}

// userinfoPassword and paramPassword find the password of a URL that
// net/url cannot parse, so it can still be hidden.
var (
	userinfoPassword = regexp.MustCompile(`(://[^:/@]*:).*@`)
	paramPassword    = regexp.MustCompile(`(?i)([?&]password=)[^&]*`)
)

// Redact returns the store string as it may appear in messages and logs: a
// PostgreSQL URL without its password (in the user part or a password
// parameter, replaced by xxxxx); a file path as it is.
func Redact(target string) string {
	if !IsPostgres(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		s := userinfoPassword.ReplaceAllString(target, "${1}xxxxx@")
		return paramPassword.ReplaceAllString(s, "${1}xxxxx")
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
