package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// PolicyRevision is the policy as it stood at a revision: the Rego modules
// by name and the data document the decisions were made with, so
// `sluice policy show|diff REV` can show what an audit entry's
// PolicyRevision meant.
type PolicyRevision struct {
	Revision  string
	FirstSeen time.Time
	Modules   map[string]string
	Data      []byte
}

// PolicyRevisionInfo lists a revision without its content.
type PolicyRevisionInfo struct {
	Revision  string
	FirstSeen time.Time
	Modules   []string // module names, sorted
}

// RecordPolicyRevision stores the policy of revision rev the first time it
// is seen. Recording the same revision again with the same content does
// nothing; with different content it is an EInvalid error, since a
// revision must name exactly one policy.
func (l *Log) RecordPolicyRevision(ctx context.Context, rev string, modules map[string]string, data []byte) error {
	if strings.TrimSpace(rev) == "" {
		return sluice.Errorf(sluice.EInvalid, "policy revision is empty")
	}
	if err := l.readable(); err != nil {
		return err
	}
	if modules == nil {
		modules = map[string]string{}
	}
	mj, err := json.Marshal(modules) // map keys sorted: a stable encoding
	if err != nil {
		return sluice.Errorf(sluice.EInvalid, "policy revision %s modules cannot be encoded: %v", rev, err)
	}
	if data == nil {
		data = []byte{}
	}
	tx, err := l.handle().BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	// Insert unless recorded, then compare with what is recorded: two
	// brokers recording the same revision at once both succeed, whichever
	// store (a SELECT first would let both try to insert on PostgreSQL).
	if _, err := tx.ExecContext(ctx, l.d.Rebind(l.d.InsertIgnore(`INSERT INTO audit_policy_revisions (rev, first_seen_us, modules, data) VALUES (?, ?, ?, ?)`)),
		rev, l.now().UnixMicro(), string(mj), data); err != nil {
		return unavailable(err)
	}
	var oldMods string
	var oldData []byte
	if err := tx.QueryRowContext(ctx, l.d.Rebind(`SELECT modules, data FROM audit_policy_revisions WHERE rev = ?`), rev).Scan(&oldMods, &oldData); err != nil {
		return unavailable(err)
	}
	if oldMods != string(mj) || !bytes.Equal(oldData, data) {
		return sluice.Errorf(sluice.EInvalid, "policy revision %s is already recorded with different content; a revision must identify one policy", rev)
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}

// PolicyRevision returns the policy recorded for rev; ENotFound when the
// revision was never recorded.
func (l *Log) PolicyRevision(ctx context.Context, rev string) (*PolicyRevision, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	var us int64
	var mods string
	var data []byte
	switch err := l.handle().QueryRowContext(ctx, l.d.Rebind(`SELECT first_seen_us, modules, data FROM audit_policy_revisions WHERE rev = ?`), rev).Scan(&us, &mods, &data); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, sluice.Errorf(sluice.ENotFound, "policy revision %q is not recorded in the audit store", rev)
	case err != nil:
		return nil, readFailed("policy revision", err)
	}
	p := &PolicyRevision{Revision: rev, FirstSeen: time.UnixMicro(us).UTC(), Data: data}
	if err := json.Unmarshal([]byte(mods), &p.Modules); err != nil {
		return nil, readFailed("policy revision "+rev, fmt.Errorf("modules cannot be decoded: %v", err))
	}
	return p, nil
}

// PolicyRevisions lists the recorded revisions, oldest first.
func (l *Log) PolicyRevisions(ctx context.Context) ([]PolicyRevisionInfo, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	rows, err := l.handle().QueryContext(ctx, `SELECT rev, first_seen_us, modules FROM audit_policy_revisions ORDER BY first_seen_us, rev`)
	if err != nil {
		return nil, readFailed("policy revisions", err)
	}
	defer rows.Close()
	var out []PolicyRevisionInfo
	for rows.Next() {
		var rev, mods string
		var us int64
		if err := rows.Scan(&rev, &us, &mods); err != nil {
			return nil, readFailed("policy revisions", err)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(mods), &m); err != nil {
			return nil, readFailed("policy revision "+rev, fmt.Errorf("modules cannot be decoded: %v", err))
		}
		out = append(out, PolicyRevisionInfo{Revision: rev, FirstSeen: time.UnixMicro(us).UTC(), Modules: slices.Sorted(maps.Keys(m))})
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed("policy revisions", err)
	}
	return out, nil
}
