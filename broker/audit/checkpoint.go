package audit

import (
	"context"
	"database/sql"
	"errors"

	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

type (
	// Checkpoint is a signed statement of the chain head
	// (auditchain.Checkpoint).
	Checkpoint = auditchain.Checkpoint
	// CheckpointSignature is one signature of a checkpoint's Message.
	CheckpointSignature = auditchain.CheckpointSignature
)

// writeCheckpoint signs h with every signer and stores it in tx.
func (l *Log) writeCheckpoint(ctx context.Context, tx *sql.Tx, h auditchain.Head) (*Checkpoint, error) {
	cp, err := auditchain.SignCheckpoint(h, l.now(), l.o.signers)
	if err != nil {
		return nil, err
	}
	timeText, sigs, err := cp.Stored()
	if err != nil {
		return nil, unavailable(err)
	}
	// Ignore a conflict: a checkpoint at this seq may exist when an earlier
	// commit reported failure but happened.
	if _, err := tx.ExecContext(ctx, l.d.Rebind(l.d.InsertIgnore(`INSERT INTO audit_checkpoints (`+auditchain.CheckpointColumns+`) VALUES (?, ?, ?, ?)`)),
		cp.Seq, cp.Hash, timeText, sigs); err != nil {
		l.noteFailure(err)
		return nil, unavailable(err)
	}
	return cp, nil
}

// Checkpoints returns every stored checkpoint, oldest first.
func (l *Log) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	return loadCheckpoints(ctx, l.handle())
}

type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func loadCheckpoints(ctx context.Context, q rowsQuerier) ([]Checkpoint, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+auditchain.CheckpointColumns+` FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, readFailed("checkpoints", err)
	}
	defer rows.Close()
	out, err := auditchain.Collect(rows, auditchain.ScanCheckpoint)
	if err != nil {
		return nil, readFailed("checkpoints", err)
	}
	return out, nil
}

// checkpointConsistent checks the last checkpoint against the chain at
// open (auditchain.CheckLastCheckpoint). It returns the last checkpoint's
// seq and hash.
func checkpointConsistent(ctx context.Context, q sqlstore.Querier, d sqlstore.Dialect, h auditchain.Head) (auditchain.Head, error) {
	var cp auditchain.Head
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&cp.Seq, &cp.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return auditchain.Head{}, nil
	}
	if err != nil {
		return auditchain.Head{}, err
	}
	var hash string
	found := true
	switch err := q.QueryRowContext(ctx, d.Rebind(`SELECT hash FROM audit_entries WHERE seq = ?`), cp.Seq).Scan(&hash); {
	case errors.Is(err, sql.ErrNoRows): // archived
		found = false
	case err != nil:
		return auditchain.Head{}, err
	}
	if err := auditchain.CheckLastCheckpoint(cp, h, hash, found); err != nil {
		return auditchain.Head{}, err
	}
	return cp, nil
}

// lastCheckpoint reads the newest checkpoint with its signatures (nil for
// none).
func lastCheckpoint(ctx context.Context, q sqlstore.Querier) (*Checkpoint, error) {
	cp, err := auditchain.ScanCheckpoint(q.QueryRowContext(ctx, `SELECT `+auditchain.CheckpointColumns+` FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &cp, nil
}

// LastCheckpoint is the log's latest signed checkpoint, signatures included,
// or nil when it has none: what the broker shows each agent with a fragment
// request (auditchain.Anchor).
func (l *Log) LastCheckpoint() *Checkpoint { return l.track.LastCheckpoint() }

type (
	// Anchor is what one side of the trust boundary showed of its own log
	// for one request (auditchain.Anchor).
	Anchor = auditchain.Anchor
	// HeldAnchor is an anchor as the other side holds it.
	HeldAnchor = auditchain.HeldAnchor
	// AnchorProblem is an anchor a log does not honour.
	AnchorProblem = auditchain.AnchorProblem
)

// EncodeAnchor is the header form of an anchor (auditchain.EncodeAnchor).
func EncodeAnchor(a *Anchor) (string, error) { return auditchain.EncodeAnchor(a) }
