//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

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

// The pool of databases (see "A database per session" in the package
// documentation).
const (
	// maxIdle bounds the databases kept open between sessions.
	maxIdle = 2
	// maxUses is the number of sessions after which a database is closed
	// rather than used again.
	maxUses = 1000
)

// Engine holds the limits, the spill directory and a small pool of
// locked-down in-memory DuckDB databases; every Session uses one database
// of its own, through a connection of its own, for as long as it is open.
// An Engine is safe for concurrent use.
type Engine struct {
	lim Limits
	dir string // private spill root, 0700

	ctx    context.Context // cancelled by Close: interrupts every session
	cancel context.CancelCauseFunc
	bg     sync.WaitGroup // background opening and closing of databases

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{} // handed out, not closed
	idle     []*database           // checked, waiting for a session
	filling  bool                  // a database is being opened in the background
	stats    poolStats
}

// poolStats counts what the pool did, for tests and benchmarks.
type poolStats struct {
	opened    int // databases opened
	reused    int // sessions given a database another session used
	discarded int // databases closed after a session, not used again
}

// Open validates lim, creates the private spill directory and opens a
// first database, which checks that this DuckDB accepts and applies every
// lockdown setting (a broker with a DuckDB it cannot lock down fails at
// start-up, not at its first query); it waits in the pool for the first
// session.
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
	d, err := e.openDB(ctx)
	if err != nil {
		_ = e.Close()
		return nil, err
	}
	e.mu.Lock()
	e.stats.opened++
	e.idle = append(e.idle, d)
	e.mu.Unlock()
	return e, nil
}

// Limits returns the limits in force (defaults filled in; SpillDir is the
// engine's private directory).
func (e *Engine) Limits() Limits { return e.lim }

// Close interrupts the statements running in the engine's sessions, closes
// the sessions (releasing every reader they hold) and the databases, and
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
	e.mu.Lock()
	sessions := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		sessions = append(sessions, s)
	}
	e.mu.Unlock()
	var errs []error
	for _, s := range sessions {
		errs = append(errs, s.Close())
	}
	// No database is opened or closed in the background once closed is
	// set and the sessions are closed.
	e.bg.Wait()
	e.mu.Lock()
	idle := e.idle
	e.idle = nil
	e.mu.Unlock()
	for _, d := range idle {
		d.close()
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

// Session returns a session for one analyst query: a database of the pool
// that no other session uses (one opened now, under ctx, if none is
// idle), locked down and under the limits, and a new connection to it.
// The time limit (Limits.QueryTime) starts now. The caller must Close the
// session.
func (e *Engine) Session(ctx context.Context) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(err)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, shuttingDown()
	}
	var d *database
	if n := len(e.idle); n > 0 {
		d = e.idle[n-1]
		e.idle = e.idle[:n-1]
		if d.uses > 0 {
			e.stats.reused++
		}
	}
	e.refillLocked()
	e.mu.Unlock()
	var err error
	if d == nil {
		if d, err = e.openDB(ctx); err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.stats.opened++
		e.mu.Unlock()
	}
	conn, err := d.connect()
	if err != nil {
		e.discard(d)
		return nil, err
	}
	d.uses++
	s := newSession(e, d, conn)
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

// refillLocked opens a database in the background when none is idle, so
// that a concurrent session does not wait for one. e.mu must be held.
func (e *Engine) refillLocked() {
	if e.closed || len(e.idle) > 0 || e.filling {
		return
	}
	e.filling = true
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		d, err := e.openDB(e.ctx)
		e.mu.Lock()
		e.filling = false
		keep := err == nil && !e.closed && len(e.idle) < maxIdle
		if keep {
			e.stats.opened++
			e.idle = append(e.idle, d)
		}
		e.mu.Unlock()
		if !keep && d != nil {
			d.close()
		}
		// An error here is not lost: the next Session opens its database
		// itself and reports it.
	}()
}

// release takes back d from a session that has closed its connection. A
// database is used again only if its session ended cleanly (no error, no
// interruption), it has served fewer than maxUses sessions, fewer than
// maxIdle databases are idle, and check finds it as it was opened;
// otherwise it is closed.
func (e *Engine) release(d *database, clean bool) {
	e.mu.Lock()
	reuse := clean && d.uses < maxUses && !e.closed && len(e.idle) < maxIdle
	e.mu.Unlock()
	if reuse {
		d.checked = d.check()
	}
	if reuse && d.checked == nil {
		e.mu.Lock()
		if !e.closed && len(e.idle) < maxIdle {
			e.idle = append(e.idle, d)
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
	}
	e.discard(d)
}

// discard closes d, in the background unless the engine is closing.
func (e *Engine) discard(d *database) {
	e.mu.Lock()
	e.stats.discarded++
	if e.closed {
		e.mu.Unlock()
		d.close()
		return
	}
	e.bg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.bg.Done()
		d.close()
	}()
}
