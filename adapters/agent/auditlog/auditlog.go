// Package auditlog is a department agent's own audit log: a SQLite file
// (agent.audit_log) holding the chain of every fragment the agent served,
// signed with the department's own key, so its account of what left the
// department stands as evidence independently of the broker's.
//
// The chain — entries, their encoding, sealing, checkpoints, verification
// — is crypto/auditchain, the same code the broker's log uses; this package
// is only the agent's store of it: one file, one writer at a time, the
// tables of auditchain's layout (so `sluice audit verify --store FILE`
// verifies it like a broker store, and a file written by an older agent,
// which kept its log in the broker's store format, opens and continues
// here).
package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// busyTimeout is how long a write waits for another connection's lock.
const busyTimeout = 5 * time.Second

// cadence lets tests change when checkpoints are written.
var cadence = func(*Log) {}

// Log is an agent's audit log. It is safe for concurrent use; appends are
// serialised, each durable (WAL, synchronous=FULL) before it returns.
type Log struct {
	path    string
	db      *sql.DB
	signers []auditchain.Signer
	// every and after are when checkpoints are written (auditchain's
	// defaults).
	every int
	after time.Duration
	// index and archives say whether the file has the broker store's
	// dataset index and archive record (a log written by an older agent,
	// or archived with `sluice audit archive --store`): the index is kept
	// up to date and checked, the archives are where the chain starts.
	index, archives bool
	track           *auditchain.Tracker

	// mu serialises writes (appends, checkpoints, Close) and guards what
	// follows.
	mu      sync.Mutex
	closing bool // Close was called
	closed  bool
	// maybe is the head a commit that reported failure may have written
	// (stale); the next write accepts it as well as the head it knows.
	stale bool
	maybe auditchain.Head

	stop chan struct{}
	bg   sync.WaitGroup
	now  func() time.Time
}

// Open opens (creating it when needed) the log at path, a SQLite file, and
// checks its head and last checkpoint against its entries: a log that was
// truncated or rewritten is refused rather than extended. With signers,
// the log writes a checkpoint signed by each of them every
// auditchain.DefaultCheckpointEntries entries or
// auditchain.DefaultCheckpointInterval, whichever comes first, and on
// Close.
func Open(ctx context.Context, path string, signers ...auditchain.Signer) (*Log, error) {
	if strings.TrimSpace(path) == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, sluice.Errorf(sluice.EInvalid, "audit log must be a file path; got %q", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, sluice.Errorf(sluice.EInvalid, "audit log %s is a directory; give a file path", path)
	}
	for i, s := range signers {
		if s == nil {
			return nil, sluice.Errorf(sluice.EInvalid, "audit log %s: signer %d is nil", path, i+1)
		}
		if err := (auditchain.PublicKey{Algorithm: s.Algorithm(), Key: s.PublicKey()}).Check(); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "audit log %s: signer %s: %s", path, s.KeyID(), sluice.ErrorMessage(err))
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "audit log %s: %v", path, err)
	}
	// A file: URI, so that any character in the path is escaped; WAL and
	// synchronous=FULL so that an entry is on disk when Append returns;
	// write transactions take the lock when they begin.
	q := url.Values{"_txlock": {"immediate"}, "_pragma": {
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()), "journal_mode(WAL)", "synchronous(FULL)"}}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()+"?"+q.Encode())
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "audit log %s cannot be opened: %v", path, err)
	}
	db.SetMaxOpenConns(4)
	l := &Log{path: path, db: db, signers: signers, every: auditchain.DefaultCheckpointEntries,
		after: auditchain.DefaultCheckpointInterval, now: time.Now}
	cadence(l)
	if err := l.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if len(signers) > 0 {
		l.stop = make(chan struct{})
		l.bg.Go(func() {
			l.track.Run(l.stop, l.after, func() {
				ctx, cancel := context.WithTimeout(context.Background(), l.after+busyTimeout)
				defer cancel()
				_ = l.Checkpoint(ctx) // retried on the next tick; appends report an outage
			})
		})
	}
	return l, nil
}

func (l *Log) fail(what string, err error) error {
	return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("audit log %s %s: %v", l.path, what, err), Err: err}
}

// init creates the tables of a new log and loads the head of an existing
// one.
func (l *Log) init(ctx context.Context) error {
	if err := l.db.PingContext(ctx); err != nil {
		return l.fail("cannot be opened", err)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return l.fail("cannot be opened", err)
	}
	defer tx.Rollback()
	ddl := []string{auditchain.EntriesTable, auditchain.HeadTable, auditchain.CheckpointsTable}
	for _, table := range auditchain.Guarded {
		ddl = append(ddl, auditchain.SQLiteGuard(table, "UPDATE"), auditchain.SQLiteGuard(table, "DELETE"))
	}
	ddl = append(ddl, `INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, '`+auditchain.GenesisHash+`')`)
	for _, stmt := range ddl {
		if _, err := tx.ExecContext(ctx, strings.ReplaceAll(stmt, "{int}", "INTEGER")); err != nil {
			return l.fail("cannot be initialised", err)
		}
	}
	if l.index, err = tableExists(ctx, tx, "audit_entry_datasets"); err != nil {
		return l.fail("cannot be read", err)
	}
	if l.archives, err = tableExists(ctx, tx, "audit_archives"); err != nil {
		return l.fail("cannot be read", err)
	}
	h, err := l.head(ctx, tx)
	if err != nil {
		return err
	}
	var cp auditchain.Head
	var hashAt string
	switch err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&cp.Seq, &cp.Hash); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return l.fail("cannot be read", err)
	default:
		err := tx.QueryRowContext(ctx, `SELECT hash FROM audit_entries WHERE seq = ?`, cp.Seq).Scan(&hashAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return l.fail("cannot be read", err)
		}
		if err := auditchain.CheckLastCheckpoint(cp, h, hashAt, err == nil); err != nil {
			return l.named(err)
		}
	}
	var last *auditchain.Checkpoint
	switch c, err := auditchain.ScanCheckpoint(tx.QueryRowContext(ctx, `SELECT `+auditchain.CheckpointColumns+` FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`)); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return l.fail("cannot be read", err)
	default:
		last = &c
	}
	if err := tx.Commit(); err != nil {
		return l.fail("cannot be initialised", err)
	}
	l.track = auditchain.NewTracker(h, cp)
	l.track.Loaded(last)
	return nil
}

// named puts the log's path in front of a chain error.
func (l *Log) named(err error) error {
	var se *sluice.Error
	if errors.As(err, &se) {
		return &sluice.Error{Code: se.Code, Message: fmt.Sprintf("audit log %s: %s", l.path, se.Message), Err: err}
	}
	return l.fail("cannot be read", err)
}

func tableExists(ctx context.Context, tx *sql.Tx, name string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}

// head reads the recorded head and checks it against the last entry
// (auditchain.CheckHead).
func (l *Log) head(ctx context.Context, tx *sql.Tx) (auditchain.Head, error) {
	var h auditchain.Head
	switch err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash); {
	case errors.Is(err, sql.ErrNoRows):
		return h, l.named(sluice.Errorf(sluice.EUnavailable, "the audit head record is missing; run `sluice audit verify` and investigate before appending"))
	case err != nil:
		return h, l.fail("cannot be read", err)
	}
	last, err := auditchain.ScanRow(tx.QueryRowContext(ctx, `SELECT `+auditchain.EntryColumns+` FROM audit_entries ORDER BY seq DESC LIMIT 1`))
	var base auditchain.Head
	switch {
	case errors.Is(err, sql.ErrNoRows) && l.archives:
		last = nil
		err := tx.QueryRowContext(ctx, `SELECT last_seq, last_hash FROM audit_archives ORDER BY first_seq DESC LIMIT 1`).Scan(&base.Seq, &base.Hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return h, l.fail("cannot be read", err)
		}
	case errors.Is(err, sql.ErrNoRows):
		last = nil
	case err != nil:
		return h, l.fail("cannot be read", err)
	}
	if err := auditchain.CheckHead(h, last, base); err != nil {
		return h, l.named(err)
	}
	return h, nil
}

var errClosed = errors.New("the log is closed")

// begin starts a write transaction at the store's head, which must be the
// one this Log wrote (or, after a commit that reported failure, the one it
// may have written). Called with mu held.
func (l *Log) begin(ctx context.Context) (*sql.Tx, auditchain.Head, error) {
	if l.closed {
		return nil, auditchain.Head{}, l.fail("is unavailable", errClosed)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, auditchain.Head{}, l.fail("is unavailable", err)
	}
	h, err := l.head(ctx, tx)
	if err != nil {
		tx.Rollback()
		return nil, auditchain.Head{}, err
	}
	if mine := l.track.Head(); h != mine {
		if !l.stale || h != l.maybe {
			tx.Rollback()
			return nil, auditchain.Head{}, l.fail("is unavailable", fmt.Errorf("its head (entry %d) is not the one this agent wrote (entry %d): another process changed the log; run `sluice audit verify`", h.Seq, mine.Seq))
		}
		l.track.Advance(h, nil) // the commit that reported failure happened
	}
	l.stale = false
	return tx, h, nil
}

// write runs one write transaction at the store's head h: add (nil for
// none) appends to it and returns the new head, and a checkpoint of the
// new head is written in the same transaction when every or more entries
// are unsigned, so the entry that reaches them is durable only together
// with its signature. A commit that reports failure may still have
// happened: the next write accepts either head. Called with mu held.
func (l *Log) write(ctx context.Context, every int, add func(tx *sql.Tx, h auditchain.Head) (auditchain.Head, error)) error {
	tx, h, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	next := h
	if add != nil {
		if next, err = add(tx, h); err != nil {
			return err
		}
	}
	var cp *auditchain.Checkpoint
	switch {
	case len(l.signers) > 0 && l.track.DueAt(next.Seq, every):
		if cp, err = auditchain.SignCheckpoint(next, l.now(), l.signers); err != nil {
			return err
		}
		timeText, sigs, err := cp.Stored()
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO audit_checkpoints (`+auditchain.CheckpointColumns+`) VALUES (?, ?, ?, ?)`, cp.Seq, cp.Hash, timeText, sigs)
		}
		if err != nil {
			return l.fail("is unavailable", err)
		}
	case add == nil:
		return nil // nothing to write
	}
	if err := tx.Commit(); err != nil {
		l.stale, l.maybe = true, next
		return l.fail("is unavailable", err)
	}
	l.track.Advance(next, cp)
	return nil
}

// Append seals e onto the chain and writes it durably. On success *e is the
// entry exactly as stored (Seq, Time, PrevHash and Hash set). On failure *e
// is unchanged and the error is EUnavailable (EInvalid for a malformed
// entry): the caller must not release what the entry records.
func (l *Log) Append(ctx context.Context, e *auditchain.Entry) error {
	if err := auditchain.Validate(e); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var sealed *auditchain.Entry
	err := l.write(ctx, l.every, func(tx *sql.Tx, h auditchain.Head) (auditchain.Head, error) {
		var body []byte
		var err error
		if sealed, body, err = auditchain.Seal(e, h, l.now()); err != nil {
			return h, err
		}
		exec := func(q string, args ...any) error {
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return l.fail("is unavailable", err)
			}
			return nil
		}
		if err := exec(`INSERT INTO audit_entries (`+auditchain.EntryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, auditchain.RowOf(sealed, body).Values()...); err != nil {
			return h, err
		}
		for _, ds := range auditchain.DatasetKeys(sealed.Datasets) {
			if !l.index {
				break // a file the broker's store format never touched has no index
			}
			if err := exec(`INSERT OR IGNORE INTO audit_entry_datasets (seq, dataset) VALUES (?, ?)`, sealed.Seq, ds); err != nil {
				return h, err
			}
		}
		if err := exec(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, sealed.Seq, sealed.Hash); err != nil {
			return h, err
		}
		return auditchain.Head{Seq: sealed.Seq, Hash: sealed.Hash}, nil
	})
	if err != nil {
		return err
	}
	*e = *sealed
	return nil
}

// Checkpoint signs the head now, if entries were appended since the last
// checkpoint. It needs signers.
func (l *Log) Checkpoint(ctx context.Context) error {
	if len(l.signers) == 0 {
		return sluice.Errorf(sluice.EInvalid, "audit log %s has no checkpoint signers", l.path)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.write(ctx, 1, nil)
}

// Head is the head this Log last appended or loaded.
func (l *Log) Head() auditchain.Head { return l.track.Head() }

// LastCheckpoint is the log's latest signed checkpoint, signatures included,
// or nil when it has none: what the agent shows the broker when it begins
// serving a fragment (auditchain.Anchor).
func (l *Log) LastCheckpoint() *auditchain.Checkpoint { return l.track.LastCheckpoint() }

// Entries returns up to limit entries with a sequence number above since,
// in sequence order, each with its hash.
func (l *Log) Entries(ctx context.Context, since int64, limit int) ([]auditchain.Entry, error) {
	if l.isClosed() {
		return nil, l.fail("is unavailable", errClosed)
	}
	rows, err := l.db.QueryContext(ctx, `SELECT `+auditchain.EntryColumns+` FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?`, since, limit)
	if err != nil {
		return nil, l.fail("cannot be read", err)
	}
	defer rows.Close()
	stored, err := auditchain.Collect(rows, auditchain.ScanRow)
	if err != nil {
		return nil, l.fail("cannot be read", err)
	}
	out := make([]auditchain.Entry, 0, len(stored))
	for _, r := range stored {
		e, err := r.Entry()
		if err != nil {
			return nil, l.fail(fmt.Sprintf("entry %d cannot be read", r.Seq), err)
		}
		out = append(out, *e)
	}
	return out, nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Verify walks the whole chain from one snapshot of the file and reports
// the first entry that does not verify (auditchain.Verify), as
// `sluice audit verify --store` does.
func (l *Log) Verify(ctx context.Context, opts ...auditchain.VerifyOption) (*auditchain.VerifyReport, error) {
	if err := auditchain.CheckVerifyOptions(opts...); err != nil {
		return nil, err
	}
	if l.isClosed() {
		return nil, l.fail("is unavailable", errClosed)
	}
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, l.fail("cannot be read", err)
	}
	defer tx.Rollback()
	var s auditchain.Snapshot
	heads, err := collect(ctx, tx, `SELECT seq, hash FROM audit_head WHERE id = 1`, func(r auditchain.Scanner) (h auditchain.Head, err error) {
		return h, r.Scan(&h.Seq, &h.Hash)
	})
	if err != nil {
		return nil, l.fail("cannot be read", err)
	}
	s.Head, s.HeadMissing = auditchain.EmptyHead, len(heads) == 0
	if len(heads) > 0 {
		s.Head = heads[0]
	}
	if s.Checkpoints, err = collect(ctx, tx, `SELECT `+auditchain.CheckpointColumns+` FROM audit_checkpoints ORDER BY seq`, auditchain.ScanCheckpoint); err != nil {
		return nil, l.fail("cannot be read", err)
	}
	if l.archives {
		if s.Archives, err = collect(ctx, tx, `SELECT `+auditchain.ArchiveColumns+` FROM audit_archives ORDER BY first_seq`, auditchain.ScanArchiveRecord); err != nil {
			return nil, l.fail("cannot be read", err)
		}
	}
	s.Rows = func(add func(*auditchain.StoredRow)) error {
		q, scan := `SELECT `+auditchain.EntryColumns+` FROM audit_entries ORDER BY seq`, auditchain.ScanRow
		if l.index {
			q, scan = `SELECT `+auditchain.EntryColumns+`, `+auditchain.SQLiteDatasetsColumn+` FROM audit_entries ORDER BY seq`, auditchain.ScanIndexedRow
		}
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return l.fail("cannot be read", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return l.fail("cannot be read", err)
			}
			add(r)
		}
		if err := rows.Err(); err != nil {
			return l.fail("cannot be read", err)
		}
		return nil
	}
	return auditchain.Verify(s, opts...)
}

func collect[T any](ctx context.Context, tx *sql.Tx, q string, scan func(auditchain.Scanner) (T, error)) ([]T, error) {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return auditchain.Collect(rows, scan)
}

// Close writes a final checkpoint when signers are configured and entries
// are unsigned, then closes the file. Appends after Close fail closed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	l.mu.Unlock()
	if l.stop != nil {
		close(l.stop)
		l.bg.Wait()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var cpErr error
	if len(l.signers) > 0 && l.track.Unsigned() {
		ctx, cancel := context.WithTimeout(context.Background(), busyTimeout+5*time.Second)
		cpErr = l.write(ctx, 1, nil)
		cancel()
	}
	l.closed = true
	if err := l.db.Close(); err != nil {
		return l.fail("did not close cleanly", err)
	}
	if cpErr != nil {
		return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("audit log %s closed without its final checkpoint: %s", l.path, sluice.ErrorMessage(cpErr)), Err: cpErr}
	}
	return nil
}
