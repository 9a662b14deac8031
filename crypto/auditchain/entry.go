// Package auditchain is Sluice's tamper-evident record, as both sides of
// the trust boundary keep it: the broker's log of every request
// (broker/audit) and each department agent's log of every fragment it
// served (adapters/agent/auditlog). It owns what the two must agree on —
// the entry and its canonical encoding, sealing an entry onto the hash
// chain, signed checkpoints and their keys, the archive file format,
// verification, and the reconciliation of the two sides' records — so that
// the equality reconciliation depends on is written once. It runs no
// queries: each side keeps its own store and hands the rows it read to
// this package (see stored.go for the tables both stores share).
//
// # Chain
//
// Each entry carries PrevHash, the Hash of the entry before it (GenesisHash
// for the first), and Hash, the hex SHA-256 of the entry's canonical
// encoding. Editing, removing, inserting or reordering an entry therefore
// breaks a link that [Verifier] finds. A store also keeps the head (count
// and last hash) in a separate record updated in the same transaction as
// each append, so removing entries from the end is detected too. Someone
// with write access to the store can still rewrite the chain and the head
// together; signed checkpoints (Ed25519 and optionally ML-DSA-65) close
// that gap up to the last checkpoint, verified with WithTrustedKeys; a log
// cut back to an earlier checkpoint, head and checkpoints rewound with it,
// is caught by the anchors the other side of the trust boundary holds of it
// (anchor.go, CheckAnchors). Old
// entries can move to chained, compressed archive files (archive.go) that
// verification checks with WithArchives.
//
// # Canonical encoding
//
// The canonical encoding of an entry is its encoding/json encoding with
// Hash set to "", Time in UTC (RFC 3339 with nanoseconds, trailing zeros
// dropped, as time.Time marshals), HTML escaping off and no trailing
// newline. Field order is the order of [Entry]'s fields; map keys in
// Obligations are sorted by encoding/json at every level; empty optional
// fields are omitted. Stores keep exactly these bytes as the entry's body,
// so Hash is also sha256(body) and can be checked with ordinary tools.
// The same encoding with Hash filled in ([Encode]) is the line archives and
// exports carry and what an agent sends the broker.
package auditchain

import (
	"bytes"
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

// Entry is one audit record. Seal assigns Seq, PrevHash and Hash and, when
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
	// Phase is "begin" on an agent's write-ahead entry, appended before
	// the first batch of a fragment leaves; the outcome entry that follows
	// has no phase (anchor.go).
	Phase string `json:"phase,omitempty"`
	// Peer is, in an agent's entry, what the broker showed of its own log
	// with the fragment request (anchor.go).
	Peer *Anchor `json:"peer,omitempty"`
	// TraceID is, in the broker's entries of a traced query, the
	// OpenTelemetry trace id (32 hex digits) of its spans, so the record
	// leads to the trace (docs/operations.md, "Traces"). Omitted when
	// empty: entries written without tracing, or before the field existed,
	// keep their canonical encoding and verify as before.
	TraceID  string `json:"trace_id,omitempty"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
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
	// Peer is, in the broker's result entry, what the department's agent
	// showed of its own log when it began serving (anchor.go).
	Peer *Anchor `json:"peer,omitempty"`
}

// ComputeHash returns the hex SHA-256 of the entry's canonical encoding (see
// the package comment). It returns "" when the entry cannot be encoded (a
// non-finite float, or a value in Obligations JSON cannot represent); ""
// never equals a stored hash, so such an entry never verifies.
func (e *Entry) ComputeHash() string {
	b, err := Canonical(e)
	if err != nil {
		return ""
	}
	return Sum(b)
}

// Sum is the hex SHA-256 of b: an entry's Hash when b is its canonical
// encoding.
func Sum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Encode is the one encoding of entries: encoding/json with the time in
// UTC, HTML escaping off and no trailing newline, Hash as it is in e. With
// Hash "" it is the canonical encoding (Canonical); with the entry's hash
// it is the line archives and exports carry and agents send.
func Encode(e *Entry) ([]byte, error) {
	c := *e
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

// Canonical returns the bytes the hash is computed over and stores keep as
// the entry's body: Encode with Hash "".
func Canonical(e *Entry) ([]byte, error) {
	c := *e
	c.Hash = ""
	return Encode(&c)
}

// Decode parses an encoded entry (a stored body or a line with its hash)
// strictly: a field this version does not know would be content the hash
// covers but nobody can see.
func Decode(body []byte) (*Entry, error) {
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

// Line turns a canonical body (which ends in "hash":""}) into the line
// archives and exports carry: the same bytes with the hash filled in, as
// Encode writes the sealed entry. The body is recovered by putting ""
// back, so sha256(body) can be checked with ordinary tools. It returns nil
// when body is not in canonical form.
func Line(body []byte, hash string) []byte {
	const tail = `"hash":""}`
	if !bytes.HasSuffix(body, []byte(tail)) {
		return nil
	}
	out := make([]byte, 0, len(body)+len(hash)+1)
	out = append(out, body[:len(body)-2]...)
	out = append(out, hash...)
	return append(out, '"', '}')
}

// Seal fills in the chain fields of a copy of e as the entry after prev
// and returns the entry as it will read back, with its canonical body.
// The encoding is passed through a decode so that what is stored is a
// fixed point: encoding/json rewrites invalid UTF-8 and Obligations values
// on the way in, and hashing the caller's original form would give a hash
// the stored body cannot reproduce. A zero Time becomes now; every time is
// truncated to microseconds, as the stores' search column holds it.
func Seal(e *Entry, prev Head, now time.Time) (*Entry, []byte, error) {
	c := *e
	c.Seq, c.PrevHash, c.Hash = prev.Seq+1, prev.Hash, ""
	if c.Time.IsZero() {
		c.Time = now
	}
	// Microseconds: the search column holds microseconds, and a time that
	// matches it exactly keeps range searches and the body in agreement.
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	first, err := Canonical(&c)
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "audit entry cannot be encoded: %v", err)
	}
	n, err := Decode(first)
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "audit entry does not round-trip: %v", err)
	}
	body, err := Canonical(n)
	if err != nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "audit entry cannot be encoded: %v", err)
	}
	n.Hash = Sum(body)
	return n, body, nil
}

// Validate rejects entries that would make the record misleading; the
// chain fields are assigned by Seal and not checked here.
func Validate(e *Entry) error {
	if e == nil {
		return sluice.Errorf(sluice.EInvalid, "audit entry is nil")
	}
	switch e.Kind {
	case KindQuery, KindResult, KindMetadata, KindAuth, KindFragment, KindAlert, KindAdmin:
	default:
		return sluice.Errorf(sluice.EInvalid, "audit entry kind must be query, result, metadata, auth, fragment, alert or admin; got %q", e.Kind)
	}
	if e.Phase != "" && (e.Phase != PhaseBegin || e.Kind != KindFragment) {
		return sluice.Errorf(sluice.EInvalid, "audit entry phase must be empty or %q on a fragment entry; got %q on a %s entry", PhaseBegin, e.Phase, e.Kind)
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
