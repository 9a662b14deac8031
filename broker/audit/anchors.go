package audit

import (
	"context"
	"database/sql"
	"errors"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// CheckAnchors checks what the agents hold of this log — the broker's
// anchors in their fragment entries (auditchain.AnchorsForBroker) — against
// the store: a log truncated or rolled back below what an agent saw, or cut
// back and written again, is reported (auditchain.CheckAnchors). keys are
// the broker's own public keys, to check the checkpoints the agents hold;
// without them seqs and hashes are checked alone.
func (l *Log) CheckAnchors(ctx context.Context, held []HeldAnchor, keys ...PublicKey) ([]AnchorProblem, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	v, err := l.anchorView(ctx)
	if err != nil {
		return nil, err
	}
	return auditchain.CheckAnchors(v, held, keys...)
}

// anchorView is the store as it stands now: its recorded head (which a
// rewind rewrites too), how far it was archived, and its entries' hashes.
func (l *Log) anchorView(ctx context.Context) (auditchain.LogView, error) {
	db := l.handle()
	v := auditchain.LogView{Name: "the broker's audit log (" + l.name + ")"}
	if err := db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&v.Head.Seq, &v.Head.Hash); err != nil {
		return v, readFailed("head", err)
	}
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(last_seq), 0) FROM audit_archives`).Scan(&v.ArchivedThrough)
	if err != nil {
		return v, readFailed("archives", err)
	}
	v.HashAt = func(seq int64) (string, bool, error) {
		var hash string
		switch err := db.QueryRowContext(ctx, l.d.Rebind(`SELECT hash FROM audit_entries WHERE seq = ?`), seq).Scan(&hash); {
		case errors.Is(err, sql.ErrNoRows):
			return "", false, nil
		case err != nil:
			return "", false, readFailed("entries", err)
		}
		return hash, true, nil
	}
	return v, nil
}

// AnchorsForAgent collects the anchors of department dept's agent that the
// broker's result entries hold (auditchain.AnchorsForAgent).
func AnchorsForAgent(dept string, results []Entry) []HeldAnchor {
	return auditchain.AnchorsForAgent(dept, results)
}

// AnchorsForBroker collects the broker anchors an agent's entries hold
// (auditchain.AnchorsForBroker).
func AnchorsForBroker(dept string, agentEntries []Entry) []HeldAnchor {
	return auditchain.AnchorsForBroker(dept, agentEntries)
}

// CheckAgentLog checks the anchors the broker holds of department dept's
// agent (in results) against that agent's entries as read from it: an agent
// log truncated or rolled back below what the broker saw is reported. keys
// are the agent's public keys, when known.
func CheckAgentLog(dept string, agentEntries, results []Entry, keys ...PublicKey) ([]AnchorProblem, error) {
	if dept == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "no department given")
	}
	return auditchain.CheckAnchors(auditchain.EntriesView("the log of the agent of department "+dept, agentEntries), AnchorsForAgent(dept, results), keys...)
}
