package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
	"modernc.org/sqlite"
)

// appendReq is one caller's entry waiting for a group commit.
type appendReq struct {
	ctx    context.Context
	e      *Entry
	sealed *Entry
	err    error
	done   chan struct{}
}

var errClosed = errors.New("the log is closed")

// Append seals e onto the chain and writes it durably. On success *e is the
// entry exactly as stored (Seq, Time, PrevHash and Hash set). On failure *e
// is unchanged, the head does not advance and the error is EUnavailable
// (EInvalid for a malformed entry): the caller must refuse the request.
//
// Concurrent calls are group-committed: they share one transaction and one
// fsync, each still getting its own sequence number, hash and error. A
// batch that fails fails every entry in it. A caller whose ctx ends while
// its entry is still queued gets an error and its entry is not written;
// once a batch has taken the entry, Append waits for the batch's outcome
// (bounded by the busy timeout), so the answer is never "maybe".
func (l *Log) Append(ctx context.Context, e *Entry) error {
	if err := auditchain.Validate(e); err != nil {
		return err
	}
	if l.closed.Load() {
		return unavailable(errClosed)
	}
	req := &appendReq{ctx: ctx, e: e, done: make(chan struct{})}
	l.qmu.Lock()
	l.queue = append(l.queue, req)
	l.qmu.Unlock()
	for {
		select {
		case <-req.done:
			return req.finish()
		case l.wsem <- struct{}{}:
			l.lead()
			<-l.wsem
		case <-ctx.Done():
			if l.dequeue(req) {
				return unavailable(ctx.Err())
			}
			<-req.done
			return req.finish()
		}
	}
}

func (r *appendReq) finish() error {
	if r.err != nil {
		return r.err
	}
	*r.e = *r.sealed
	return nil
}

// dequeue removes req if no batch has taken it yet.
func (l *Log) dequeue(req *appendReq) bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if i := slices.Index(l.queue, req); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
		return true
	}
	return false
}

// lead runs with the writer token: it takes up to maxBatch queued entries
// and commits them together.
func (l *Log) lead() {
	l.qmu.Lock()
	n := min(len(l.queue), maxBatch)
	batch := slices.Clone(l.queue[:n])
	l.queue = slices.Delete(l.queue, 0, n)
	l.qmu.Unlock()
	if n == 0 {
		return
	}
	if l.closed.Load() {
		for _, r := range batch {
			r.err = unavailable(errClosed)
		}
	} else {
		l.writeBatch(batch)
	}
	for _, r := range batch {
		close(r.done)
	}
}

// writeBatch writes the batch in one transaction. Every request leaves with
// sealed or err set.
func (l *Log) writeBatch(batch []*appendReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = unavailable(err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	failAll := func(err error) {
		for _, r := range live {
			if r.err == nil {
				r.err = err
			}
			r.sealed = nil
		}
	}
	// The transaction does not follow any one caller's context: it is
	// shared, and its length is bounded by the busy timeout.
	ctx := context.Background()
	tx, h, err := l.beginWrite(ctx)
	if err != nil {
		failAll(err)
		return
	}
	committed, reachedCommit := false, false
	cur := h
	defer func() {
		if !committed {
			_ = tx.Rollback()
			if reachedCommit {
				l.markStale(cur)
			} else {
				l.markStale(l.track.Head())
			}
		}
	}()
	now := l.now()
	wrote := 0
	var vals []any // auditchain.EntryColumns of each entry to write, in order
	var idx []datasetRow
	for _, r := range live {
		sealed, body, err := auditchain.Seal(r.e, cur, now)
		if err == nil {
			err = l.storable(sealed)
		}
		if err != nil {
			r.err = err // this entry only; it takes no sequence number
			continue
		}
		vals = append(vals, auditchain.RowOf(sealed, body).Values()...)
		for _, ds := range auditchain.DatasetKeys(sealed.Datasets) {
			idx = append(idx, datasetRow{sealed.Seq, ds})
		}
		r.sealed = sealed // cleared by failAll if the batch fails
		cur = auditchain.Head{Seq: sealed.Seq, Hash: sealed.Hash}
		wrote++
	}
	if wrote == 0 {
		committed = true // nothing written; the rollback changes nothing
		_ = tx.Rollback()
		return
	}
	if err := insertEntries(ctx, tx, l.d, vals); err != nil {
		l.noteFailure(err)
		failAll(unavailable(err))
		return
	}
	// The dataset index is written with the entries: a committed entry is
	// always counted by Usage.
	if err := insertDatasets(ctx, tx, l.d, idx); err != nil {
		l.noteFailure(err)
		failAll(unavailable(err))
		return
	}
	res, err := tx.ExecContext(ctx, l.d.Rebind(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), cur.Seq, cur.Hash)
	if err != nil {
		l.noteFailure(err)
		failAll(unavailable(err))
		return
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		failAll(unavailable(errors.New("the audit head record could not be advanced")))
		return
	}
	var cp *Checkpoint
	if len(l.o.signers) > 0 && l.track.DueAt(cur.Seq, l.o.checkpointEvery) {
		// Written in the same transaction: the entry that reaches N
		// unsigned entries is durable only together with its signature.
		if cp, err = l.writeCheckpoint(ctx, tx, cur); err != nil {
			failAll(err)
			return
		}
	}
	if l.beforeCommit != nil {
		if err := l.beforeCommit(); err != nil {
			failAll(unavailable(err))
			return
		}
	}
	reachedCommit = true
	if err := tx.Commit(); err != nil {
		l.noteFailure(err)
		failAll(unavailable(err))
		return
	}
	committed = true
	l.track.Advance(cur, cp)
}

// beginWrite starts a write transaction and checks the store's head
// against the one this Log wrote. It is where recovery happens: a handle
// that broke is reopened, and after a failed write the head the failed
// batch might have committed is accepted too.
func (l *Log) beginWrite(ctx context.Context) (*sql.Tx, auditchain.Head, error) {
	if l.reopen {
		if err := l.reopenDB(ctx); err != nil {
			return nil, auditchain.Head{}, unavailable(err)
		}
	}
	tx, err := l.handle().BeginTx(ctx, nil)
	if err != nil {
		l.noteFailure(err)
		l.markStale(l.track.Head())
		return nil, auditchain.Head{}, unavailable(err)
	}
	h, err := consistentHead(ctx, tx, l.d, true)
	if err != nil {
		_ = tx.Rollback()
		l.noteFailure(err)
		l.markStale(l.track.Head())
		return nil, auditchain.Head{}, unavailable(err)
	}
	mine := l.track.Head()
	if h != mine && !(l.stale && h == l.maybe) {
		_ = tx.Rollback()
		return nil, auditchain.Head{}, unavailable(fmt.Errorf("the store's head (entry %d) is not the one this broker wrote (entry %d): another process changed the log; run `sluice audit verify`", h.Seq, mine.Seq))
	}
	if h != mine {
		// The failed batch did commit: adopt its head.
		l.track.Advance(h, nil)
	}
	// The store's head is known again; a failure from here on sets a new
	// uncertainty.
	l.stale = false
	return tx, h, nil
}

// markStale records that a write failed; m is the head the store may now
// have besides the one this Log knows. An earlier uncertainty that was not
// resolved yet (the store was never reached since) is kept.
func (l *Log) markStale(m auditchain.Head) {
	if l.stale && m == l.track.Head() {
		return
	}
	l.stale, l.maybe = true, m
}

// storable rejects what a backend cannot hold. PostgreSQL text cannot
// contain a NUL character, which JSON carries (\u0000) and SQLite keeps;
// a search column or dataset with one is refused as that entry's own
// error, rather than failing the whole batch as a store outage.
func (l *Log) storable(e *Entry) error {
	if !l.d.IsPostgres() {
		return nil
	}
	for _, f := range []struct{ name, v string }{
		{"kind", e.Kind}, {"query id", e.QueryID}, {"principal", e.Principal}, {"department", e.Department},
		{"purpose", e.Purpose}, {"decision", e.Decision}, {"datasets", strings.Join(e.Datasets, "")},
	} {
		if strings.ContainsRune(f.v, 0) {
			return sluice.Errorf(sluice.EInvalid, "audit entry %s contains a NUL character, which the PostgreSQL store cannot hold", f.name)
		}
	}
	return nil
}

// noteFailure decides whether the handle must be reopened: a lock held by
// another connection passes by itself; anything else may mean the handle
// or its file broke, and reopening is cheap. A PostgreSQL pool replaces
// broken connections by itself, so it is reopened only when it was closed
// underneath.
func (l *Log) noteFailure(err error) {
	if l.d.IsPostgres() {
		if !sqlstore.IsBusy(err) && (errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed")) {
			l.reopen = true
		}
		return
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return
		}
	}
	l.reopen = true
}

// Head returns the count and hash of the last entry this Log appended or
// loaded: the value a signed checkpoint covers.
func (l *Log) Head() (seq int64, hash string) {
	h := l.track.Head()
	return h.Seq, h.Hash
}

// acquire takes the writer token.
func (l *Log) acquire(ctx context.Context) error {
	select {
	case l.wsem <- struct{}{}:
		if l.closed.Load() {
			<-l.wsem
			return unavailable(errClosed)
		}
		return nil
	case <-ctx.Done():
		return unavailable(ctx.Err())
	}
}

func (l *Log) release() { <-l.wsem }

// Checkpoint signs the current head now (if entries were appended since
// the last checkpoint). It needs WithSigners.
func (l *Log) Checkpoint(ctx context.Context) error {
	if len(l.o.signers) == 0 {
		return sluice.Errorf(sluice.EInvalid, "audit log %s has no checkpoint signers; open it with WithSigners", l.name)
	}
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.checkpointLocked(ctx)
}

func (l *Log) checkpointLocked(ctx context.Context) error {
	tx, h, err := l.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if !l.track.DueAt(h.Seq, 1) {
		return nil // nothing appended since the last checkpoint
	}
	cp, err := l.writeCheckpoint(ctx, tx, h)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		l.noteFailure(err)
		return unavailable(err)
	}
	l.track.Advance(h, cp)
	return nil
}

// checkpointLoop signs the head once entries have waited checkpointAfter
// without a signature.
func (l *Log) checkpointLoop() {
	l.track.Run(l.stop, l.o.checkpointAfter, func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.o.checkpointAfter+l.o.busyTimeout)
		// A failure here (store down) is retried on the next tick; appends
		// report the outage themselves.
		_ = l.Checkpoint(ctx)
		cancel()
	})
}

// Close writes a final checkpoint when signers are configured and entries
// are unsigned, then closes the store. Appends after Close fail closed.
func (l *Log) Close() error {
	if l.closing.Swap(true) {
		return nil
	}
	if l.stop != nil {
		close(l.stop)
		l.bg.Wait()
	}
	l.wsem <- struct{}{}
	defer l.release()
	var cpErr error
	if len(l.o.signers) > 0 && !l.noFinalCheckpoint {
		if l.track.Unsigned() {
			ctx, cancel := context.WithTimeout(context.Background(), l.o.busyTimeout+5*time.Second)
			cpErr = l.checkpointLocked(ctx)
			cancel()
		}
	}
	l.closed.Store(true)
	if err := l.handle().Close(); err != nil {
		return storeErr(l.name, "did not close cleanly", err)
	}
	if cpErr != nil {
		return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("audit store %s closed without its final checkpoint: %s", l.name, sluice.ErrorMessage(cpErr)), Err: cpErr}
	}
	return nil
}
