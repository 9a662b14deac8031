//go:build duckdb_arrow

package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	sluice "github.com/sluice-gov/sluice"
)

// Causes of the cancellation of a statement's context that the engine
// itself triggers. They unwrap to context.Canceled or
// context.DeadlineExceeded so callers can test for those.
var (
	errEngineClosed  = fmt.Errorf("the sandbox engine was closed: %w", context.Canceled)
	errSessionClosed = fmt.Errorf("the sandbox session was closed: %w", context.Canceled)
	errTimeLimit     = fmt.Errorf("the sandbox time limit was reached: %w", context.DeadlineExceeded)
)

// Available reports whether this binary has the engine (built with
// -tags duckdb_arrow).
const Available = true

// Engine holds the limits and the spill directory of the sandbox; every
// Session it hands out is a separate, locked-down, in-memory DuckDB
// database. Opening one takes some tens of milliseconds, so the engine
// keeps one spare, opened in the background after each hand-out. An
// Engine is safe for concurrent use.
type Engine struct {
	lim Limits
	dir string // private spill root, 0700

	ctx    context.Context // cancelled by Close: interrupts every session
	cancel context.CancelCauseFunc
	fill   sync.WaitGroup // the goroutine opening the spare

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{} // handed out, not closed
	spare    *Session              // opened and locked down, not handed out
	filling  bool
}

// Open validates lim, creates the private spill directory and opens a
// first session, which checks that this DuckDB accepts and applies every
// lockdown setting (a broker with a DuckDB it cannot lock down fails at
// start-up, not at its first query) and becomes the spare.
func Open(ctx context.Context, lim Limits) (*Engine, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(err)
	}
	if lim.Memory < 0 || lim.Threads < 0 || lim.MaxSpill < 0 || lim.QueryTime < 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "sandbox limits must not be negative (0 means the default)")
	}
	lim = lim.withDefaults()
	parent := lim.SpillDir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "sluice-sandbox-")
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot create the spill directory under %s: %v", parent, err)
	}
	// MkdirTemp creates 0700 already; be explicit in case of an odd umask
	// or file system.
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot restrict the spill directory: %v", err)
	}
	lim.SpillDir = dir
	e := &Engine{lim: lim, dir: dir, sessions: map[*Session]struct{}{}}
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	s, err := e.open(ctx)
	if err != nil {
		_ = e.Close()
		return nil, err
	}
	e.spare = s
	return e, nil
}

// Limits returns the limits in force (defaults filled in; SpillDir is the
// engine's private directory).
func (e *Engine) Limits() Limits { return e.lim }

// Close interrupts the statements running in the engine's sessions, closes
// the sessions (releasing every reader they hold) and the spare, and
// removes the spill directory. It is idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()

	e.cancel(errEngineClosed)
	e.fill.Wait()
	e.mu.Lock()
	sessions := make([]*Session, 0, len(e.sessions)+1)
	for s := range e.sessions {
		sessions = append(sessions, s)
	}
	if e.spare != nil {
		sessions = append(sessions, e.spare)
		e.spare = nil
	}
	e.mu.Unlock()
	var errs []error
	for _, s := range sessions {
		errs = append(errs, s.Close())
	}
	if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, sluice.Errorf(sluice.EInternal, "sandbox: cannot remove the spill directory: %v", err))
	}
	return errors.Join(errs...)
}

func (e *Engine) forget(s *Session) {
	e.mu.Lock()
	delete(e.sessions, s)
	e.mu.Unlock()
}

// Session returns a new DuckDB database for one analyst query, locked down
// and under the limits: the spare if there is one (and a new spare is
// opened in the background), else one opened now, under ctx. The time
// limit (Limits.QueryTime) starts now. The caller must Close the session.
func (e *Engine) Session(ctx context.Context) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(err)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, shuttingDown()
	}
	s := e.spare
	e.spare = nil
	e.refillLocked()
	e.mu.Unlock()

	if s == nil {
		var err error
		if s, err = e.open(ctx); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithCancelCause(e.ctx)
	s.ctx, s.cancel = sctx, cancel
	if e.lim.QueryTime > 0 {
		dctx, dcancel := context.WithDeadlineCause(sctx, time.Now().Add(e.lim.QueryTime), errTimeLimit)
		s.ctx, s.cancel = dctx, func(cause error) { cancel(cause); dcancel() }
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = s.Close()
		return nil, shuttingDown()
	}
	e.sessions[s] = struct{}{}
	e.mu.Unlock()
	return s, nil
}

func shuttingDown() error {
	return &sluice.Error{Code: sluice.EUnavailable, Message: "the sandbox is shutting down", Err: errEngineClosed}
}

// refillLocked opens a new spare in the background unless there is one or
// one is being opened. e.mu must be held.
func (e *Engine) refillLocked() {
	if e.closed || e.spare != nil || e.filling {
		return
	}
	e.filling = true
	e.fill.Add(1)
	go func() {
		defer e.fill.Done()
		var s *Session
		var err error
		select {
		case <-e.ctx.Done(): // closing: open nothing
		default:
			s, err = e.open(e.ctx)
		}
		e.mu.Lock()
		e.filling = false
		keep := err == nil && s != nil && !e.closed && e.spare == nil
		if keep {
			e.spare = s
		}
		e.mu.Unlock()
		if !keep && s != nil {
			_ = s.Close()
		}
		// An error here is not lost: the next Session opens its database
		// itself and reports it.
	}()
}

// open creates a session's spill directory and database.
func (e *Engine) open(ctx context.Context) (*Session, error) {
	dir, err := os.MkdirTemp(e.dir, "s-")
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot create a session spill directory: %v", err)
	}
	s := &Session{e: e, dir: dir, names: map[string]bool{}, readers: map[*resultReader]struct{}{}}
	if err := s.open(ctx); err != nil {
		_ = s.closeDB()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// startupSettings are given to DuckDB as the configuration of the new
// database: they are in force before it exists. Every name must be known
// to this DuckDB, or opening fails (fail closed). DuckDB applies them in no
// fixed order, so only settings independent of each other are here.
func (e *Engine) startupSettings() url.Values {
	v := url.Values{}
	v.Set("memory_limit", strconv.FormatInt(e.lim.Memory, 10)+"B")
	v.Set("threads", strconv.Itoa(e.lim.Threads))
	// Inputs are copied in without keeping their order, which is faster
	// and needs less memory; Query turns it on for the result.
	v.Set("preserve_insertion_order", "false")
	v.Set("autoinstall_known_extensions", "false")
	v.Set("autoload_known_extensions", "false")
	v.Set("allow_community_extensions", "false")
	v.Set("allow_unsigned_extensions", "false")
	v.Set("allow_extension_repositories", "forbidden")
	v.Set("allow_persistent_secrets", "false")
	return v
}

// lockdown runs, in this order, on the database's only connection right
// after it is opened. The order matters: temp_directory before
// max_temp_directory_size (with both in the start-up configuration, where
// the order is random, the size limit was sometimes not enforced), both
// before enable_external_access (DuckDB refuses a new temp_directory once
// external access is off), and lock_configuration last.
// preserve_insertion_order stays changeable: it only trades speed for
// order (see Session.Query).
func (e *Engine) lockdown(dir string) string {
	return strings.Join([]string{
		"SET temp_directory = " + quoteString(dir),
		"SET max_temp_directory_size = '" + strconv.FormatInt(e.lim.MaxSpill, 10) + "B'",
		"SET allowed_configs = ['preserve_insertion_order']",
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	}, "; ")
}

// lockdownChecks are the settings verified after the lockdown, with the
// value each must have in a session spilling to dir; a mismatch fails the
// session (fail closed).
func lockdownChecks(dir string) map[string]string {
	return map[string]string{
		"enable_external_access":       "false",
		"lock_configuration":           "true",
		"autoinstall_known_extensions": "false",
		"autoload_known_extensions":    "false",
		"allow_community_extensions":   "false",
		"allow_unsigned_extensions":    "false",
		"allow_persistent_secrets":     "false",
		"allowed_paths":                "[]",
		"allowed_configs":              "[preserve_insertion_order]",
		"preserve_insertion_order":     "false",
		"temp_directory":               dir,
		// DuckDB adds the temporary directory itself, so that it can
		// spill with external access disabled. A query can therefore list
		// and read the files there: that is one reason why every session
		// has its own database and its own directory.
		"allowed_directories": "[" + dir + "/]",
	}
}

func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// open creates the session's database and its connection.
func (s *Session) open(ctx context.Context) error {
	conn, err := duckdb.NewConnector("?"+s.e.startupSettings().Encode(), nil)
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot open DuckDB with the sandbox settings: %v", err)
	}
	s.conn = conn
	dc, err := conn.Connect(ctx)
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot connect to DuckDB: %v", err)
	}
	c, ok := dc.(*duckdb.Conn)
	if !ok {
		_ = dc.Close()
		return sluice.Errorf(sluice.EInternal, "sandbox: unexpected DuckDB connection type %T", dc)
	}
	s.dc = c
	if _, err := c.ExecContext(ctx, s.e.lockdown(s.dir), nil); err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot lock DuckDB down: %v", err)
	}
	if err := s.verifyLockdown(ctx); err != nil {
		return err
	}
	a, err := duckdb.NewArrowFromConn(c)
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: DuckDB's Arrow interface: %v", err)
	}
	s.arrow = a
	return nil
}

func (s *Session) verifyLockdown(ctx context.Context) error {
	checks := lockdownChecks(s.dir)
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, quoteString(name))
	}
	sort.Strings(names)
	rows, err := s.dc.QueryContext(ctx, "SELECT name, value FROM duckdb_settings() WHERE name IN ("+strings.Join(names, ", ")+")", nil)
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot read DuckDB's settings: %v", err)
	}
	defer rows.Close()
	got := map[string]string{}
	vals := make([]driver.Value, 2)
	for rows.Next(vals) == nil {
		name, _ := vals[0].(string)
		value, _ := vals[1].(string)
		got[name] = value
	}
	for name, want := range checks {
		v, ok := got[name]
		if !ok {
			return sluice.Errorf(sluice.EInternal, "sandbox: this DuckDB has no setting %s; the lockdown cannot be verified", name)
		}
		if v != want {
			return sluice.Errorf(sluice.EInternal, "sandbox: DuckDB setting %s is %q after the lockdown, want %q", name, v, want)
		}
	}
	return nil
}
