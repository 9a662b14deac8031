package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

// Checkpoint is a signed statement of the chain head: "the log held Seq
// entries and entry Seq had hash Hash at Time". Because every entry is
// chained, a checkpoint vouches for all entries up to Seq; because it is
// signed, rewriting those entries together with the unsigned head record,
// or cutting the log below Seq, is detected by Verify WithTrustedKeys.
// Entries after the last checkpoint are covered only by the chain.
type Checkpoint struct {
	Seq        int64                 `json:"seq"`
	Hash       string                `json:"hash"`
	Time       time.Time             `json:"time"`
	Signatures []CheckpointSignature `json:"signatures"`

	// timeText is the time exactly as signed.
	timeText string
}

// CheckpointSignature is one signature of a checkpoint's Message.
type CheckpointSignature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Signature []byte `json:"signature"` // base64 in JSON
}

const checkpointTimeFormat = time.RFC3339Nano

// CheckpointMessage is the canonical message a checkpoint's signatures are
// over: "sluice-audit-checkpoint\nseq=%d\nhash=%s\ntime=%s", time in UTC RFC
// 3339 with nanoseconds (trailing zeros dropped).
func CheckpointMessage(seq int64, hash string, t time.Time) []byte {
	return checkpointMessage(seq, hash, t.UTC().Format(checkpointTimeFormat))
}

func checkpointMessage(seq int64, hash, t string) []byte {
	return fmt.Appendf(nil, "sluice-audit-checkpoint\nseq=%d\nhash=%s\ntime=%s", seq, hash, t)
}

// Message returns the bytes the checkpoint's signatures are over.
func (c *Checkpoint) Message() []byte {
	if c.timeText != "" {
		return checkpointMessage(c.Seq, c.Hash, c.timeText)
	}
	return CheckpointMessage(c.Seq, c.Hash, c.Time)
}

// writeCheckpoint signs h with every signer and stores it in tx.
func (l *Log) writeCheckpoint(ctx context.Context, tx *sql.Tx, h head) (*Checkpoint, error) {
	t := l.now().UTC()
	cp := &Checkpoint{Seq: h.Seq, Hash: h.Hash, Time: t, timeText: t.Format(checkpointTimeFormat)}
	msg := cp.Message()
	for _, s := range l.o.signers {
		sig, err := s.Sign(msg)
		if err != nil {
			return nil, &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("audit checkpoint at entry %d cannot be signed with %s key %s: %v; the request was refused (fail closed)", h.Seq, s.Algorithm(), s.KeyID(), err), Err: err}
		}
		cp.Signatures = append(cp.Signatures, CheckpointSignature{Algorithm: s.Algorithm(), KeyID: s.KeyID(), Signature: sig})
	}
	sigs, err := json.Marshal(cp.Signatures)
	if err != nil {
		return nil, unavailable(err)
	}
	// Ignore a conflict: a checkpoint at this seq may exist when an earlier
	// commit reported failure but happened.
	if _, err := tx.ExecContext(ctx, l.d.Rebind(l.d.InsertIgnore(`INSERT INTO audit_checkpoints (seq, hash, time, signatures) VALUES (?, ?, ?, ?)`)),
		cp.Seq, cp.Hash, cp.timeText, string(sigs)); err != nil {
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
	rows, err := q.QueryContext(ctx, `SELECT seq, hash, time, signatures FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, readFailed("checkpoints", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		var sigs string
		if err := rows.Scan(&c.Seq, &c.Hash, &c.timeText, &sigs); err != nil {
			return nil, readFailed("checkpoints", err)
		}
		// A malformed time or signature list is kept and reported by
		// Verify as a bad checkpoint rather than failing the read.
		c.Time, _ = time.Parse(checkpointTimeFormat, c.timeText)
		if json.Unmarshal([]byte(sigs), &c.Signatures) != nil {
			c.Signatures = nil
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed("checkpoints", err)
	}
	return out, nil
}

// checkpointConsistent checks the last checkpoint against the chain at
// open: a log cut below its last checkpoint, or rewritten up to it, must
// not be extended. It returns the last checkpoint's seq and hash.
func checkpointConsistent(ctx context.Context, q sqlstore.Querier, d sqlstore.Dialect, h head) (head, error) {
	var cp head
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&cp.Seq, &cp.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return head{}, nil
	}
	if err != nil {
		return head{}, err
	}
	if cp.Seq > h.Seq {
		return head{}, sluice.Errorf(sluice.EUnavailable, "the last signed checkpoint covers entry %d but the log ends at entry %d; entries were removed and the head rewritten: run `sluice audit verify` and investigate before appending", cp.Seq, h.Seq)
	}
	var hash string
	switch err := q.QueryRowContext(ctx, d.Rebind(`SELECT hash FROM audit_entries WHERE seq = ?`), cp.Seq).Scan(&hash); {
	case errors.Is(err, sql.ErrNoRows): // archived
	case err != nil:
		return head{}, err
	case hash != cp.Hash:
		return head{}, sluice.Errorf(sluice.EUnavailable, "entry %d does not match the signed checkpoint at that entry; the log was rewritten: run `sluice audit verify` and investigate before appending", cp.Seq)
	}
	return cp, nil
}

// checkSignatures verifies every checkpoint's signatures against the
// trusted keys and returns the first problem (by seq).
func checkSignatures(cps []Checkpoint, trusted []PublicKey) (int64, string) {
	byID := map[string]PublicKey{}
	for _, k := range trusted {
		byID[k.Algorithm+" "+k.KeyID()] = k
	}
	for i := range cps {
		c := &cps[i]
		if _, err := time.Parse(checkpointTimeFormat, c.timeText); err != nil && c.timeText != "" {
			return c.Seq, fmt.Sprintf("checkpoint at entry %d has a malformed time %q (it was edited)", c.Seq, c.timeText)
		}
		msg := c.Message()
		good := 0
		for _, s := range c.Signatures {
			k, ok := byID[s.Algorithm+" "+s.KeyID]
			if !ok {
				continue // not a key the auditor trusts; it cannot vouch
			}
			if !k.verify(msg, s.Signature) {
				return c.Seq, fmt.Sprintf("checkpoint at entry %d: the %s signature by trusted key %s does not verify (the checkpoint or its signature was altered)", c.Seq, s.Algorithm, s.KeyID)
			}
			good++
		}
		if good == 0 {
			return c.Seq, fmt.Sprintf("checkpoint at entry %d has no signature by a trusted key (%d signature(s) by other keys); it may be forged, or pass the broker's public key", c.Seq, len(c.Signatures))
		}
	}
	return 0, ""
}
