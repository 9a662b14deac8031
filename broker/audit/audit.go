// Package audit is the broker's tamper-evident record of every request:
// allowed, denied and failed queries, catalog browsing and failed
// authentication. Entries are appended to a hash chain before any row is
// released; when the append fails the request fails (fail closed).
//
// # Chain
//
// Each entry carries PrevHash, the Hash of the entry before it (GenesisHash
// for the first), and Hash, the hex SHA-256 of the entry's canonical
// encoding. Editing, removing, inserting or reordering an entry therefore
// breaks a link that [Log.Verify] finds. The store also keeps the head (count
// and last hash) in a separate record updated in the same transaction as each
// append, so removing entries from the end is detected too. Someone with
// write access to the store can still rewrite the chain and the head
// together; signed checkpoints (WithSigners: Ed25519 and optionally
// ML-DSA-65, every N entries or T seconds and on Close) close that gap up to
// the last checkpoint, verified with WithTrustedKeys. Old entries can move
// to chained, compressed archive files (Log.Archive) that Verify checks
// with WithArchives.
//
// # Canonical encoding
//
// The canonical encoding of an entry is its encoding/json encoding with
// Hash set to "", Time in UTC (RFC 3339 with nanoseconds, trailing zeros
// dropped, as time.Time marshals), HTML escaping off and no trailing
// newline. Field order is the order of [Entry]'s fields; map keys in
// Obligations are sorted by encoding/json at every level; empty optional
// fields are omitted. The store keeps exactly these bytes as the entry's
// body, so Hash is also sha256(body) and can be checked with ordinary tools.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// GenesisHash is the PrevHash of the first entry. A fixed-width value rather
// than "" keeps every stored prev_hash the same shape, and a later archive
// can start a segment from a non-genesis anchor without a special case.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Entry kinds.
const (
	KindQuery    = "query"    // the decision, written before any row is released
	KindResult   = "result"   // the completion: rows, duration, error
	KindMetadata = "metadata" // catalog browsing
	KindAuth     = "auth"     // a failed authentication
	KindFragment = "fragment" // an agent's record of a fragment it served
	KindAlert    = "alert"    // an alert raised by a review rule
	KindAdmin    = "admin"    // a state change through the admin API, before it runs
)

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionError = "error"
	DecisionAlert = "alert" // the decision of an alert entry
)

// Limits on reads, so a careless request cannot load the whole log into
// memory; Verify streams and has no limit.
const (
	DefaultSearchLimit = 1000
	MaxReadLimit       = 100000
)

// Entry is one audit record. Append assigns Seq, PrevHash and Hash and, when
// it is zero, Time.
type Entry struct {
	Seq            int64                `json:"seq"`
	Time           time.Time            `json:"time"`
	Kind           string               `json:"kind"`
	QueryID        string               `json:"query_id"`
	Principal      string               `json:"principal"`
	Role           string               `json:"role,omitempty"`
	Department     string               `json:"department,omitempty"`
	Purpose        string               `json:"purpose,omitempty"`
	ClientAddr     string               `json:"client_addr,omitempty"`
	SQL            string               `json:"sql,omitempty"`
	Datasets       []string             `json:"datasets,omitempty"`
	Columns        []sluice.ColumnUsage `json:"columns,omitempty"`
	Decision       string               `json:"decision"`
	Reasons        []string             `json:"reasons,omitempty"`
	Obligations    map[string]any       `json:"obligations,omitempty"`
	PolicyRevision string               `json:"policy_revision,omitempty"`
	Plan           string               `json:"plan,omitempty"`
	Rows           int64                `json:"rows"`
	DurationMS     float64              `json:"duration_ms"`
	Error          string               `json:"error,omitempty"`
	// Evidence added for review (all omitted when empty, so entries written
	// before they existed keep their canonical encoding).
	CatalogVersion string           `json:"catalog_version,omitempty"` // sha256 of the catalog the decision was made under
	PlanHash       string           `json:"plan_hash,omitempty"`       // sha256 of Plan
	Fragments      []FragmentRecord `json:"fragments,omitempty"`       // what left each department
	Bytes          int64            `json:"bytes,omitempty"`           // bytes of the result stream as sent
	ResultDigest   string           `json:"result_digest,omitempty"`   // digest of the result stream as sent
	PrevHash       string           `json:"prev_hash"`
	Hash           string           `json:"hash"`
}

// FragmentRecord is what one department's agent served for a query, as the
// broker received it (in the broker's log) or as the agent sent it (in the
// agent's log); reconciliation compares the two.
type FragmentRecord struct {
	Department string `json:"department"`
	Dataset    string `json:"dataset"`
	SQLHash    string `json:"sql_hash,omitempty"` // sha256 of the fragment as rendered (agent) or normalised (broker)
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`
	Digest     string `json:"digest"` // digest.Stream of the record batches
}

// ComputeHash returns the hex SHA-256 of the entry's canonical encoding (see
// the package comment). It returns "" when the entry cannot be encoded (a
// non-finite float, or a value in Obligations JSON cannot represent); ""
// never equals a stored hash, so such an entry never verifies.
func (e *Entry) ComputeHash() string {
	b, err := e.canonical()
	if err != nil {
		return ""
	}
	return hashBytes(b)
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// canonical returns the bytes the hash is computed over.
func (e *Entry) canonical() ([]byte, error) {
	c := *e
	c.Hash = ""
	c.Time = c.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// SQL text is full of < > &; escaping them would make the stored body
	// harder for an auditor to read and buys nothing outside HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeBody parses a stored body strictly: a field this version does not
// know would be content the hash covers but nobody can see.
func decodeBody(body []byte) (*Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	// Numbers in Obligations stay json.Number so they re-encode to exactly
	// the bytes that were hashed (a float64 would lose large integers).
	dec.UseNumber()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the entry")
	}
	return &e, nil
}

// seal fills in the chain fields of a copy of e and returns the entry as it
// will read back, with its canonical body. The encoding is passed through a
// decode so that what is stored is a fixed point: encoding/json rewrites
// invalid UTF-8 and Obligations values on the way in, and hashing the
// caller's original form would give a hash the stored body cannot reproduce.
func seal(e *Entry, seq int64, prev string, now time.Time) (*Entry, []byte, error) {
	c := *e
	c.Seq, c.PrevHash, c.Hash = seq, prev, ""
	if c.Time.IsZero() {
		c.Time = now
	}
	// Microseconds: the search column holds microseconds, and a time that
	// matches it exactly keeps range searches and the body in agreement.
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	first, err := c.canonical()
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "audit entry cannot be encoded: %v", err)
	}
	n, err := decodeBody(first)
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "audit entry does not round-trip: %v", err)
	}
	body, err := n.canonical()
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "audit entry cannot be encoded: %v", err)
	}
	n.Hash = hashBytes(body)
	return n, body, nil
}

// validate rejects entries that would make the record misleading; the
// chain fields are assigned by Append and not checked here.
func validate(e *Entry) error {
	if e == nil {
		return sluice.Errorf(sluice.EInvalid, "audit entry is nil")
	}
	switch e.Kind {
	case KindQuery, KindResult, KindMetadata, KindAuth, KindFragment, KindAlert, KindAdmin:
	default:
		return sluice.Errorf(sluice.EInvalid, "audit entry kind must be query, result, metadata, auth, fragment, alert or admin; got %q", e.Kind)
	}
	switch e.Decision {
	case DecisionAllow, DecisionDeny, DecisionError:
	case DecisionAlert:
		if e.Kind != KindAlert {
			return sluice.Errorf(sluice.EInvalid, "only alert entries have decision alert; got kind %q", e.Kind)
		}
	default:
		return sluice.Errorf(sluice.EInvalid, "audit entry decision must be allow, deny or error; got %q", e.Decision)
	}
	if (e.Kind == KindQuery || e.Kind == KindResult) && strings.TrimSpace(e.QueryID) == "" {
		return sluice.Errorf(sluice.EInvalid, "audit %s entry has no query id; a result must be traceable to its decision", e.Kind)
	}
	if e.Rows < 0 {
		return sluice.Errorf(sluice.EInvalid, "audit entry rows must not be negative; got %d", e.Rows)
	}
	if math.IsNaN(e.DurationMS) || math.IsInf(e.DurationMS, 0) || e.DurationMS < 0 {
		return sluice.Errorf(sluice.EInvalid, "audit entry duration must be a non-negative number of milliseconds; got %v", e.DurationMS)
	}
	return nil
}

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

// VerifyReport is the outcome of walking the chain.
type VerifyReport struct {
	// Entries is the number of stored entries walked.
	Entries int64 `json:"entries"`
	OK      bool  `json:"ok"`
	// FirstBad is the first sequence number that does not verify (for a
	// removed entry, the missing number); 0 when OK.
	FirstBad int64  `json:"first_bad,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// Head is the hash of the last entry that verified: on success, the
	// value an auditor records out of band to detect a later rewrite.
	Head string `json:"head"`
	// Checkpoints is the number of stored checkpoints; each was checked
	// against the chain. SignaturesChecked says whether their signatures
	// were verified (only with WithTrustedKeys); SignedThrough is the seq
	// of the last checkpoint, so entries after it are covered by the
	// chain alone.
	Checkpoints       int   `json:"checkpoints"`
	SignaturesChecked bool  `json:"signatures_checked"`
	SignedThrough     int64 `json:"signed_through,omitempty"`
	// Archives is the number of archive files verified before the store.
	Archives int `json:"archives,omitempty"`
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
