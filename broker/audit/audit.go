// Package audit is the broker's tamper-evident record of every request:
// allowed, denied and failed queries, catalog browsing and failed
// authentication. Entries are appended to a hash chain before any row is
// released; when the append fails the request fails (fail closed).
//
// The chain itself — the entry, its canonical encoding, sealing, signed
// checkpoints and their keys, verification, the archive format and
// reconciliation with the agents' logs — is package crypto/auditchain,
// which the department agents' logs use too; the names below re-export
// it. This package is the broker's store of a chain: SQLite or
// PostgreSQL through broker/sqlstore, group commit, checkpoints written in
// the append's transaction and by a timer, search, export, usage
// statistics, policy revisions and archiving (Log.Archive). The store
// keeps the head (count and last hash) in a separate record updated in the
// same transaction as each append, so removing entries from the end is
// detected too; signed checkpoints (WithSigners) and archives are verified
// with WithTrustedKeys and WithArchives.
package audit

import (
	"context"
	"fmt"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// GenesisHash is the PrevHash of the first entry (auditchain.GenesisHash).
const GenesisHash = auditchain.GenesisHash

// Entry kinds (auditchain).
const (
	KindQuery    = auditchain.KindQuery
	KindResult   = auditchain.KindResult
	KindMetadata = auditchain.KindMetadata
	KindAuth     = auditchain.KindAuth
	KindFragment = auditchain.KindFragment
	KindAlert    = auditchain.KindAlert
	KindAdmin    = auditchain.KindAdmin
)

// Decisions (auditchain).
const (
	DecisionAllow = auditchain.DecisionAllow
	DecisionDeny  = auditchain.DecisionDeny
	DecisionError = auditchain.DecisionError
	DecisionAlert = auditchain.DecisionAlert
)

type (
	// Entry is one audit record (auditchain.Entry). Append assigns Seq,
	// PrevHash and Hash and, when it is zero, Time.
	Entry = auditchain.Entry
	// FragmentRecord is what one department's agent served for a query
	// (auditchain.FragmentRecord).
	FragmentRecord = auditchain.FragmentRecord
	// VerifyReport is the outcome of walking the chain.
	VerifyReport = auditchain.VerifyReport
)

// Limits on reads, so a careless request cannot load the whole log into
// memory; Verify streams and has no limit.
const (
	DefaultSearchLimit = 1000
	MaxReadLimit       = 100000
)

// Filter selects entries for Search. Empty fields match everything. Since is
// inclusive and Until exclusive. Limit 0 means DefaultSearchLimit.
type Filter struct {
	Principal string
	Purpose   string
	Dataset   string // department.dataset, matched case-insensitively
	Decision  string
	Kind      string
	QueryID   string
	// Department is the requesting principal's department.
	Department string
	// Column matches entries that used a column of that name, or
	// "department.dataset.column" for one dataset's column; both
	// case-insensitive, read from the hashed body.
	Column string
	Since  time.Time
	Until  time.Time
	Limit  int
}

func (f Filter) check() (int, error) {
	if f.Limit < 0 || f.Limit > MaxReadLimit {
		return 0, sluice.Errorf(sluice.EInvalid, "search limit must be between 1 and %d (0 for the default %d); got %d", MaxReadLimit, DefaultSearchLimit, f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return 0, sluice.Errorf(sluice.EInvalid, "search window is empty: until (%s) must be after since (%s)", f.Until.UTC().Format(time.RFC3339), f.Since.UTC().Format(time.RFC3339))
	}
	switch f.Decision {
	case "", DecisionAllow, DecisionDeny, DecisionError, DecisionAlert:
	default:
		return 0, sluice.Errorf(sluice.EInvalid, "search decision must be allow, deny or error; got %q", f.Decision)
	}
	switch f.Kind {
	case "", KindQuery, KindResult, KindMetadata, KindAuth, KindFragment, KindAlert, KindAdmin:
	default:
		return 0, sluice.Errorf(sluice.EInvalid, "search kind must be query, result, metadata, auth, fragment or alert; got %q", f.Kind)
	}
	if f.Limit == 0 {
		return DefaultSearchLimit, nil
	}
	return f.Limit, nil
}

// Store is what the broker needs from an audit log. *Log keeps it in
// SQLite or PostgreSQL; other backends implement the same interface so the
// broker does not change.
type Store interface {
	Append(ctx context.Context, e *Entry) error
	Tail(ctx context.Context, n int) ([]Entry, error)
	Get(ctx context.Context, seq int64) (*Entry, error)
	Search(ctx context.Context, f Filter) ([]Entry, error)
	Verify(ctx context.Context, opts ...VerifyOption) (*VerifyReport, error)
	Close() error
}

var _ Store = (*Log)(nil)

func unavailable(cause error) error {
	return &sluice.Error{
		Code:    sluice.EUnavailable,
		Message: fmt.Sprintf("audit log unavailable: %v; the request was refused (fail closed)", cause),
		Err:     cause,
	}
}

func readFailed(what string, cause error) error {
	return &sluice.Error{
		Code:    sluice.EUnavailable,
		Message: fmt.Sprintf("audit log cannot be read (%s): %v", what, cause),
		Err:     cause,
	}
}
