package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// Log is the audit log in the broker's store: a SQLite file, or a
// PostgreSQL database when the store is a postgres:// URL. It is safe for
// concurrent use.
//
// Durability: SQLite runs in WAL mode with synchronous=FULL. With NORMAL, a
// commit that has returned can still be lost on power failure, and the
// broker releases rows as soon as Append returns; the audit entry must be
// on disk first. PostgreSQL commits are durable under its default
// synchronous_commit=on.
//
// Concurrency: appends are group-committed. Callers queue their entries;
// whichever caller holds the writer token (wsem) takes the whole queue and
// writes it in one transaction (one fsync), then hands every caller its own
// result. See writer.go. Across processes, SQLite's write lock (BEGIN
// IMMEDIATE) or PostgreSQL's lock on the head row (SELECT … FOR UPDATE)
// serialises the transactions, and each checks that the head is the one it
// wrote.
type Log struct {
	// dbmu guards db, which the writer replaces when the handle broke
	// underneath (recovery).
	dbmu sync.RWMutex
	db   *sql.DB
	path string           // the store string as given: a file path or a URL
	name string           // path as messages show it (a URL without its password)
	d    sqlstore.Dialect // SQLite or PostgreSQL, from path
	o    options

	// wsem is the writer token: whoever holds it may write (append
	// batches, checkpoints, archive deletes, close).
	wsem  chan struct{}
	qmu   sync.Mutex
	queue []*appendReq

	// track follows the head and the last checkpoint, which the writer
	// advances and Head and the checkpoint timer read.
	track *auditchain.Tracker

	// Writer-only state (read and written with wsem held).
	// stale is set when a write failed after its transaction began; the
	// outcome of the commit may be unknown, so the next write accepts
	// either the head it had or the head the failed batch would have made
	// (maybe), and nothing else.
	stale  bool
	maybe  auditchain.Head
	reopen bool // the handle may be broken: reopen before the next write

	archMu  sync.Mutex // one Archive at a time
	closing atomic.Bool
	// noFinalCheckpoint makes Close leave the head unsigned, as a broker
	// killed at that point leaves its store (tests of rollback detection).
	noFinalCheckpoint bool
	closed            atomic.Bool
	stop              chan struct{}
	bg                sync.WaitGroup

	now func() time.Time
	// beforeCommit lets tests fail an append at the last moment, after the
	// insert and head update, to prove that nothing advances.
	beforeCommit func() error
}

// Open opens the audit log in the broker's store and loads the chain head.
// The store is a SQLite file path (the file and its tables are created if
// needed) or a postgres:// or postgresql:// URL (the tables are created in
// the URL's schema if needed; a search_path parameter chooses it). It
// refuses a log whose recorded head does not match its last entry, or whose
// last signed checkpoint is beyond or disagrees with the chain: appending
// to it would hide the evidence of a truncation.
//
// With WithSigners the log writes signed checkpoints (see Checkpoint) and
// runs a background timer for them until Close.
func Open(ctx context.Context, path string, opts ...Option) (*Log, error) {
	o := defaultOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "audit store %s: %v", sqlstore.Redact(path), o.err)
	}
	return open(ctx, path, o)
}

func open(ctx context.Context, path string, o options) (*Log, error) {
	d := sqlstore.For(path)
	name := sqlstore.Redact(path)
	if o.busyTimeout <= 0 {
		o.busyTimeout = DefaultBusyTimeout
	}
	if len(o.signers) > 0 && o.checkpointEvery == 0 {
		o.checkpointEvery, o.checkpointAfter = DefaultCheckpointEntries, DefaultCheckpointInterval
	}
	for _, s := range o.signers {
		if err := (PublicKey{Algorithm: s.Algorithm(), Key: s.PublicKey()}).Check(); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "audit store %s: signer %s: %s", name, s.KeyID(), sluice.ErrorMessage(err))
		}
	}
	db, err := openDB(path, o, false)
	if err != nil {
		return nil, err
	}
	l := &Log{db: db, path: path, name: name, d: d, o: o, now: time.Now, wsem: make(chan struct{}, 1)}
	if err := l.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if len(o.signers) > 0 {
		l.stop = make(chan struct{})
		l.bg.Go(l.checkpointLoop)
	}
	return l, nil
}

// openDB opens a handle on the store (refusing a path that cannot be a
// store). For SQLite, mustExist refuses to create the file; a PostgreSQL
// database is never created, so it does not apply there.
func openDB(path string, o options, mustExist bool) (*sql.DB, error) {
	h, err := sqlstore.Open(path, sqlstore.Options{
		What:         "audit store",
		BusyTimeout:  o.busyTimeout,
		MustExist:    mustExist,
		SQLitePool:   sqlstore.Pool{MaxOpen: 8, MaxIdle: 4},
		LockTimeout:  o.busyTimeout,
		PostgresPool: sqlstore.Pool{MaxOpen: 8, MaxIdle: 8},
		ReadOnly:     o.readOnly,
	})
	if err != nil {
		return nil, err
	}
	return h.DB, nil
}

// handle returns the current database handle.
func (l *Log) handle() *sql.DB {
	l.dbmu.RLock()
	defer l.dbmu.RUnlock()
	return l.db
}

// reopenDB replaces a handle that broke underneath (closed, or its file
// replaced). It never creates the file or the tables: the chain is checked
// against what is there by the write that follows.
func (l *Log) reopenDB(ctx context.Context) error {
	db, err := openDB(l.path, l.o, true)
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("reopening %s: %w", l.name, err)
	}
	l.dbmu.Lock()
	old := l.db
	l.db = db
	l.dbmu.Unlock()
	old.Close()
	l.reopen = false
	return nil
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
		return storeErr(l.name, "cannot be opened", err)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(l.name, "cannot be opened", err)
	}
	defer tx.Rollback()
	// The migrations take a lock (PostgreSQL; SQLite's BEGIN IMMEDIATE
	// serialises anyway) that the rest of the transaction keeps: brokers
	// starting together take turns at the guards' DDL too.
	if err := schema(l.name).Migrate(ctx, tx, l.d); err != nil {
		var se *sluice.Error
		var tooNew *sqlstore.TooNewError
		switch {
		case errors.As(err, &se):
			return err
		case errors.As(err, &tooNew):
			return sluice.Errorf(sluice.EUnavailable, "audit store %s has schema version %d; this sluice understands version %s", l.name, tooNew.Version, schemaVersion)
		}
		return storeErr(l.name, "cannot be initialised", err)
	}
	// The migrations create each table once: one missing now was dropped,
	// and without its entries the chain cannot continue where the head
	// says it ends.
	switch ok, err := l.d.TableExists(ctx, tx, "audit_entries"); {
	case err != nil:
		return storeErr(l.name, "cannot be read", err)
	case !ok:
		return sluice.Errorf(sluice.EUnavailable, "audit store %s has lost its entries table; the log was truncated or edited: run `sluice audit verify` and investigate before appending", l.name)
	}
	for _, s := range guards(l.d) {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return storeErr(l.name, "cannot be initialised", err)
		}
	}
	if _, err := tx.ExecContext(ctx, l.d.Rebind(l.d.InsertIgnore(`INSERT INTO audit_head(id, seq, hash) VALUES (1, 0, ?)`)), GenesisHash); err != nil {
		return storeErr(l.name, "cannot be initialised", err)
	}
	wrap := func(err error) error {
		var se *sluice.Error
		if errors.As(err, &se) {
			se.Message = fmt.Sprintf("audit store %s: %s", l.name, se.Message)
			return se
		}
		return storeErr(l.name, "cannot be read", err)
	}
	h, err := consistentHead(ctx, tx, l.d, true)
	if err != nil {
		return wrap(err)
	}
	cp, err := checkpointConsistent(ctx, tx, l.d, h)
	if err != nil {
		return wrap(err)
	}
	last, err := lastCheckpoint(ctx, tx)
	if err != nil {
		return storeErr(l.name, "cannot be read", err)
	}
	if err := tx.Commit(); err != nil {
		return storeErr(l.name, "cannot be initialised", err)
	}
	l.track = auditchain.NewTracker(h, cp)
	l.track.Loaded(last)
	return nil
}

// consistentHead reads the recorded head and checks it against the last
// stored entry, including that entry's hash. It is the cheap check done at
// open and on every append; Verify is the full one. With lock, the head row
// stays locked until the transaction ends (PostgreSQL; SQLite's write
// transaction holds the whole file), so concurrent writers take turns and
// each one's check sees the entries of the one before.
func consistentHead(ctx context.Context, q sqlstore.Querier, d sqlstore.Dialect, lock bool) (auditchain.Head, error) {
	var rec auditchain.Head
	headQuery := `SELECT seq, hash FROM audit_head WHERE id = 1`
	if lock {
		headQuery += d.ForUpdate()
	}
	if err := q.QueryRowContext(ctx, headQuery).Scan(&rec.Seq, &rec.Hash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return auditchain.Head{}, sluice.Errorf(sluice.EUnavailable, "the audit head record is missing; run `sluice audit verify` and investigate before appending")
		}
		return auditchain.Head{}, err
	}
	r, err := auditchain.ScanRow(q.QueryRowContext(ctx, `SELECT `+auditchain.EntryColumns+` FROM audit_entries ORDER BY seq DESC LIMIT 1`))
	var base auditchain.Head
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Every entry may have moved to archives: the chain then ends at
		// the last archive's last entry.
		r = nil
		if base, err = archiveBase(ctx, q); err != nil {
			return auditchain.Head{}, err
		}
	case err != nil:
		return auditchain.Head{}, err
	}
	if err := auditchain.CheckHead(rec, r, base); err != nil {
		return auditchain.Head{}, err
	}
	return rec, nil
}

// decodeRow is the entry of a stored row, as readers get it.
func decodeRow(r *auditchain.StoredRow) (*Entry, error) {
	e, err := r.Entry()
	if err != nil {
		return nil, readFailed(fmt.Sprintf("entry %d", r.Seq), err)
	}
	return e, nil
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
	out, err := l.query(ctx, l.d.Rebind(`SELECT `+auditchain.EntryColumns+` FROM audit_entries ORDER BY seq DESC LIMIT ?`), n)
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
	out, err := l.query(ctx, l.d.Rebind(`SELECT `+auditchain.EntryColumns+` FROM audit_entries WHERE seq = ?`), seq)
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
	where, args := f.where(l.d)
	q := `SELECT ` + auditchain.EntryColumns + ` FROM audit_entries` + where + " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit)
	out, err := l.query(ctx, l.d.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

func (l *Log) query(ctx context.Context, q string, args ...any) ([]Entry, error) {
	rows, err := l.handle().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, readFailed("query", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		r, err := auditchain.ScanRow(rows)
		if err != nil {
			return nil, readFailed("scan", err)
		}
		e, err := decodeRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed("query", err)
	}
	return out, nil
}
