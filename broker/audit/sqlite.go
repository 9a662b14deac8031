package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sluice "github.com/sluice-gov/sluice"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// schemaVersion is recorded in audit_meta so a later migration (archives,
// checkpoints) can tell which layout a file has.
const schemaVersion = "1"

// The tables are prefixed audit_ because the audit log shares the broker's
// store file with the catalog and workflow tables.
//
// The triggers make the entries table append-only for anyone using the
// file through SQLite casually. They are not a security boundary (whoever
// can write the file can drop them); the hash chain is what detects that.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS audit_meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS audit_entries (
		seq        INTEGER PRIMARY KEY,
		time_us    INTEGER NOT NULL,
		kind       TEXT NOT NULL,
		query_id   TEXT NOT NULL,
		principal  TEXT NOT NULL,
		department TEXT NOT NULL,
		purpose    TEXT NOT NULL,
		decision   TEXT NOT NULL,
		prev_hash  TEXT NOT NULL,
		hash       TEXT NOT NULL,
		body       TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries(time_us)`,
	`CREATE INDEX IF NOT EXISTS audit_entries_principal ON audit_entries(principal)`,
	`CREATE INDEX IF NOT EXISTS audit_entries_purpose ON audit_entries(purpose)`,
	`CREATE INDEX IF NOT EXISTS audit_entries_query_id ON audit_entries(query_id)`,
	`CREATE TABLE IF NOT EXISTS audit_head (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		seq  INTEGER NOT NULL,
		hash TEXT NOT NULL
	)`,
	`CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
	BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END`,
	`CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
	BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END`,
}

const entryColumns = `seq, time_us, kind, query_id, principal, department, purpose, decision, prev_hash, hash, body`

// Log is the audit log in a SQLite file. It is safe for concurrent use.
//
// Durability: WAL mode with synchronous=FULL. With NORMAL, a commit that
// has returned can still be lost on power failure, and the broker releases
// rows as soon as Append returns; the audit entry must be on disk first.
type Log struct {
	db   *sql.DB
	path string

	// mu serializes appends: the head is read, the entry sealed against it
	// and the head advanced as one step.
	mu   sync.Mutex
	head head
	// stale is set when an append failed after its transaction began; the
	// outcome of the commit is then unknown, so the next append adopts the
	// store's head instead of insisting on the in-memory one.
	stale  bool
	closed atomic.Bool

	now func() time.Time
	// beforeCommit lets tests fail an append at the last moment, after the
	// insert and head update, to prove that nothing advances.
	beforeCommit func() error
}

type options struct {
	busyTimeout time.Duration
	readOnly    bool
}

var defaultOptions = options{busyTimeout: 5 * time.Second}

// dsn builds a file: URI so that any character in the path is escaped and
// SQLite's own parameters (mode=ro) apply.
func dsn(path string, o options) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	if o.readOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// BEGIN IMMEDIATE takes the write lock up front, so an append
		// never fails half-way on a lock upgrade; read-only transactions
		// stay deferred.
		q.Set("_txlock", "immediate")
	}
	return u.String() + "?" + q.Encode(), nil
}

// Open opens the audit log in the SQLite file at path, creating the file and
// its tables if needed, and loads the chain head. It refuses a log whose
// recorded head does not match its last entry: appending to it would hide
// the evidence of a truncation.
func Open(ctx context.Context, path string) (*Log, error) {
	return open(ctx, path, defaultOptions)
}

func open(ctx context.Context, path string, o options) (*Log, error) {
	if strings.TrimSpace(path) == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, sluice.Errorf(sluice.EInvalid, "audit store must be a file path; got %q", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, sluice.Errorf(sluice.EInvalid, "audit store %s is a directory; give a file path", path)
	}
	d, err := dsn(path, o)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "audit store %s: %v", path, err)
	}
	db, err := sql.Open("sqlite", d)
	if err != nil {
		return nil, storeErr(path, "cannot be opened", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	l := &Log{db: db, path: path, now: time.Now}
	if err := l.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

func storeErr(path, what string, err error) error {
	return &sluice.Error{
		Code:    sluice.EUnavailable,
		Message: fmt.Sprintf("audit store %s %s: %v", path, what, err),
		Err:     err,
	}
}

func (l *Log) init(ctx context.Context) error {
	if err := l.db.PingContext(ctx); err != nil {
		return storeErr(l.path, "cannot be opened", err)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(l.path, "cannot be opened", err)
	}
	defer tx.Rollback()
	for _, s := range schema {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return storeErr(l.path, "cannot be initialised", err)
		}
	}
	var v string
	switch err := tx.QueryRowContext(ctx, `SELECT value FROM audit_meta WHERE key = 'schema_version'`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_meta(key, value) VALUES ('schema_version', ?)`, schemaVersion); err != nil {
			return storeErr(l.path, "cannot be initialised", err)
		}
	case err != nil:
		return storeErr(l.path, "cannot be read", err)
	case v != schemaVersion:
		return sluice.Errorf(sluice.EUnavailable, "audit store %s has schema version %s; this sluice understands version %s", l.path, v, schemaVersion)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO audit_head(id, seq, hash) VALUES (1, 0, ?)`, GenesisHash); err != nil {
		return storeErr(l.path, "cannot be initialised", err)
	}
	h, err := consistentHead(ctx, tx)
	if err != nil {
		var se *sluice.Error
		if errors.As(err, &se) {
			se.Message = fmt.Sprintf("audit store %s: %s", l.path, se.Message)
			return se
		}
		return storeErr(l.path, "cannot be read", err)
	}
	if err := tx.Commit(); err != nil {
		return storeErr(l.path, "cannot be initialised", err)
	}
	l.head = h
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// consistentHead reads the recorded head and checks it against the last
// stored entry, including that entry's hash. It is the cheap check done at
// open and on every append; Verify is the full one.
func consistentHead(ctx context.Context, q querier) (head, error) {
	var rec head
	if err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&rec.Seq, &rec.Hash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return head{}, sluice.Errorf(sluice.EUnavailable, "the audit head record is missing; run `sluice audit verify` and investigate before appending")
		}
		return head{}, err
	}
	r, err := scanRow(q.QueryRowContext(ctx, `SELECT `+entryColumns+` FROM audit_entries ORDER BY seq DESC LIMIT 1`))
	last := emptyHead
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return head{}, err
	default:
		last = head{Seq: r.Seq, Hash: r.Hash}
		if e, derr := decodeBody(r.Body); derr != nil || e.ComputeHash() != r.Hash || e.Seq != r.Seq {
			return head{}, sluice.Errorf(sluice.EUnavailable, "the last audit entry %d does not verify (its hash or sequence number does not match its content); the log was edited: run `sluice audit verify` and investigate before appending", r.Seq)
		}
	}
	if last != rec {
		return head{}, sluice.Errorf(sluice.EUnavailable, "the audit head records %d entries but the last stored entry is %d; the log was truncated or edited: run `sluice audit verify` and investigate before appending", rec.Seq, last.Seq)
	}
	return rec, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRow(s scanner) (*storedRow, error) {
	var r storedRow
	var body string
	if err := s.Scan(&r.Seq, &r.TimeUS, &r.Kind, &r.QueryID, &r.Principal, &r.Department, &r.Purpose, &r.Decision, &r.PrevHash, &r.Hash, &body); err != nil {
		return nil, err
	}
	r.Body = []byte(body)
	return &r, nil
}

// Append seals e onto the chain and writes it in one transaction. On success
// *e is the entry exactly as stored (Seq, Time, PrevHash and Hash set). On
// failure *e is unchanged, the head does not advance and the error is
// EUnavailable (EInvalid for a malformed entry): the caller must refuse the
// request.
func (l *Log) Append(ctx context.Context, e *Entry) error {
	if err := validate(e); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return unavailable(errors.New("the log is closed"))
	}
	sealed, err := l.appendLocked(ctx, e)
	if err != nil {
		return err
	}
	l.head = head{Seq: sealed.Seq, Hash: sealed.Hash}
	l.stale = false
	*e = *sealed
	return nil
}

func (l *Log) appendLocked(ctx context.Context, e *Entry) (*Entry, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	// From here on a failure may leave the commit's outcome unknown.
	committed := false
	defer func() {
		if !committed {
			l.stale = true
			_ = tx.Rollback()
		}
	}()
	h, err := consistentHead(ctx, tx)
	if err != nil {
		return nil, unavailable(err)
	}
	if h != l.head && !l.stale {
		return nil, unavailable(fmt.Errorf("the store's head (entry %d) is not the one this broker wrote (entry %d): another process changed the log; run `sluice audit verify`", h.Seq, l.head.Seq))
	}
	sealed, body, err := seal(e, h.Seq+1, h.Hash, l.now())
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_entries (`+entryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sealed.Seq, sealed.Time.UnixMicro(), sealed.Kind, sealed.QueryID, sealed.Principal, sealed.Department,
		sealed.Purpose, sealed.Decision, sealed.PrevHash, sealed.Hash, string(body)); err != nil {
		return nil, unavailable(err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, sealed.Seq, sealed.Hash)
	if err != nil {
		return nil, unavailable(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, unavailable(fmt.Errorf("the audit head record could not be advanced"))
	}
	if l.beforeCommit != nil {
		if err := l.beforeCommit(); err != nil {
			return nil, unavailable(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, unavailable(err)
	}
	committed = true
	return sealed, nil
}

// Head returns the count and hash of the last entry this Log appended or
// loaded: the value a signed checkpoint will cover.
func (l *Log) Head() (seq int64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head.Seq, l.head.Hash
}

func (l *Log) readable() error {
	if l.closed.Load() {
		return sluice.Errorf(sluice.EUnavailable, "audit log is closed")
	}
	return nil
}

// Tail returns the last n entries, oldest first.
func (l *Log) Tail(ctx context.Context, n int) ([]Entry, error) {
	if n < 1 || n > MaxReadLimit {
		return nil, sluice.Errorf(sluice.EInvalid, "tail length must be between 1 and %d; got %d", MaxReadLimit, n)
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	out, err := l.query(ctx, `SELECT `+entryColumns+` FROM audit_entries ORDER BY seq DESC LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// Get returns the entry with sequence number seq.
func (l *Log) Get(ctx context.Context, seq int64) (*Entry, error) {
	if seq < 1 {
		return nil, sluice.Errorf(sluice.EInvalid, "audit sequence numbers start at 1; got %d", seq)
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	out, err := l.query(ctx, `SELECT `+entryColumns+` FROM audit_entries WHERE seq = ?`, seq)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, sluice.Errorf(sluice.ENotFound, "audit entry %d does not exist", seq)
	}
	return &out[0], nil
}

// Search returns the most recent entries matching f (at most f.Limit),
// oldest first.
func (l *Log) Search(ctx context.Context, f Filter) ([]Entry, error) {
	limit, err := f.check()
	if err != nil {
		return nil, err
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("principal", f.Principal)
	eq("purpose", f.Purpose)
	eq("decision", f.Decision)
	eq("kind", f.Kind)
	eq("query_id", f.QueryID)
	if f.Dataset != "" {
		// Datasets are read from the hashed body rather than a side table,
		// so there is no second copy that could be edited to hide an entry.
		where = append(where, `EXISTS (SELECT 1 FROM json_each(body, '$.datasets') WHERE value = ? COLLATE NOCASE)`)
		args = append(args, f.Dataset)
	}
	if !f.Since.IsZero() {
		where = append(where, "time_us >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "time_us < ?")
		args = append(args, f.Until.UnixMicro())
	}
	q := `SELECT ` + entryColumns + ` FROM audit_entries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit)
	out, err := l.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

func (l *Log) query(ctx context.Context, q string, args ...any) ([]Entry, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, readFailed("query", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, readFailed("scan", err)
		}
		e, err := decodeBody(r.Body)
		if err != nil {
			return nil, readFailed(fmt.Sprintf("entry %d", r.Seq), fmt.Errorf("body cannot be decoded: %v; run `sluice audit verify`", err))
		}
		e.Hash = r.Hash
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed("query", err)
	}
	return out, nil
}

// Verify walks the whole chain in sequence order and reports the first entry
// that does not verify. It reads one consistent snapshot, so it can run
// while appends continue, and streams rows so memory does not grow with the
// log.
func (l *Log) Verify(ctx context.Context) (*VerifyReport, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	return verifyDB(ctx, l.db, l.path)
}

func verifyDB(ctx context.Context, db *sql.DB, path string) (*VerifyReport, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, storeErr(path, "cannot be read", err)
	}
	defer tx.Rollback()
	// The head is read first and in the same transaction as the entries, so
	// both come from one snapshot even while a broker is appending.
	h := emptyHead
	headMissing := false
	switch err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash); {
	case errors.Is(err, sql.ErrNoRows):
		headMissing = true
	case err != nil:
		if strings.Contains(err.Error(), "no such table") {
			return nil, sluice.Errorf(sluice.EInvalid, "%s holds no audit log (no audit_head table)", path)
		}
		return nil, storeErr(path, "cannot be read", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+entryColumns+` FROM audit_entries ORDER BY seq`)
	if err != nil {
		return nil, storeErr(path, "cannot be read", err)
	}
	defer rows.Close()
	v := newChainVerifier()
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, storeErr(path, "cannot be read", err)
		}
		v.add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(path, "cannot be read", err)
	}
	rep := v.finish(h)
	if headMissing && !v.failed() && rep.Entries > 0 {
		rep.OK = false
		rep.FirstBad = 1
		rep.Problem = "the audit head record is missing, so removal of entries from the end cannot be ruled out"
	}
	return rep, nil
}

// VerifyFile opens the SQLite audit store at path read-only and verifies its
// chain; it backs `sluice audit verify --store FILE` and works while a
// broker has the file open.
func VerifyFile(ctx context.Context, path string) (*VerifyReport, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, sluice.Errorf(sluice.EInvalid, "audit store %s does not exist", path)
	case err != nil:
		return nil, storeErr(path, "cannot be read", err)
	case fi.IsDir():
		return nil, sluice.Errorf(sluice.EInvalid, "audit store %s is a directory; give the store file", path)
	}
	o := defaultOptions
	o.readOnly = true
	d, err := dsn(path, o)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "audit store %s: %v", path, err)
	}
	db, err := sql.Open("sqlite", d)
	if err != nil {
		return nil, storeErr(path, "cannot be opened", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, storeErr(path, "cannot be opened", err)
	}
	return verifyDB(ctx, db, path)
}

// Close closes the store. Appends after Close fail closed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	if err := l.db.Close(); err != nil {
		return storeErr(l.path, "did not close cleanly", err)
	}
	return nil
}
