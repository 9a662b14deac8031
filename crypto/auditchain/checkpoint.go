package auditchain

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// Defaults for signed checkpoints: a log with signers writes one every
// DefaultCheckpointEntries entries or DefaultCheckpointInterval after the
// first unsigned entry, whichever comes first, and on close.
const (
	DefaultCheckpointEntries  = 100
	DefaultCheckpointInterval = 10 * time.Second
)

// Checkpoint is a signed statement of the chain head: "the log held Seq
// entries and entry Seq had hash Hash at Time". Because every entry is
// chained, a checkpoint vouches for all entries up to Seq; because it is
// signed, rewriting those entries together with the unsigned head record,
// or cutting the log below Seq, is detected by verification WithTrustedKeys.
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

// SignCheckpoint signs h, as of now, with every signer. A signer's failure
// is EUnavailable: the append that needed the checkpoint must fail closed.
func SignCheckpoint(h Head, now time.Time, signers []Signer) (*Checkpoint, error) {
	t := now.UTC()
	cp := &Checkpoint{Seq: h.Seq, Hash: h.Hash, Time: t, timeText: t.Format(checkpointTimeFormat)}
	msg := cp.Message()
	for _, s := range signers {
		sig, err := s.Sign(msg)
		if err != nil {
			return nil, &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("audit checkpoint at entry %d cannot be signed with %s key %s: %v; the request was refused (fail closed)", h.Seq, s.Algorithm(), s.KeyID(), err), Err: err}
		}
		cp.Signatures = append(cp.Signatures, CheckpointSignature{Algorithm: s.Algorithm(), KeyID: s.KeyID(), Signature: sig})
	}
	return cp, nil
}

// Stored is the checkpoint's time and signatures as a store keeps them
// beside its seq and hash (CheckpointColumns): the time exactly as signed,
// and the signatures as JSON.
func (c *Checkpoint) Stored() (timeText, signatures string, err error) {
	sigs, err := json.Marshal(c.Signatures)
	if err != nil {
		return "", "", err
	}
	timeText = c.timeText
	if timeText == "" {
		timeText = c.Time.UTC().Format(checkpointTimeFormat)
	}
	return timeText, string(sigs), nil
}

// ParseCheckpoint rebuilds a stored checkpoint. A malformed time or
// signature list is kept and reported by verification as a bad checkpoint
// rather than failing the read.
func ParseCheckpoint(seq int64, hash, timeText, signatures string) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: hash, timeText: timeText}
	c.Time, _ = time.Parse(checkpointTimeFormat, timeText)
	if json.Unmarshal([]byte(signatures), &c.Signatures) != nil {
		c.Signatures = nil
	}
	return c
}

// CheckLastCheckpoint checks the last checkpoint (cp) against the chain
// whose head is h when a store opens: a log cut below its last checkpoint,
// or rewritten up to it, must not be extended. hashAt is the hash of the
// stored entry cp.Seq; found is false when that entry is not in the store
// (it was archived).
func CheckLastCheckpoint(cp, h Head, hashAt string, found bool) error {
	if cp.Seq > h.Seq {
		return sluice.Errorf(sluice.EUnavailable, "the last signed checkpoint covers entry %d but the log ends at entry %d; entries were removed and the head rewritten: run `sluice audit verify` and investigate before appending", cp.Seq, h.Seq)
	}
	if found && hashAt != cp.Hash {
		return sluice.Errorf(sluice.EUnavailable, "entry %d does not match the signed checkpoint at that entry; the log was rewritten: run `sluice audit verify` and investigate before appending", cp.Seq)
	}
	return nil
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
			if !k.Verify(msg, s.Signature) {
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

// Tracker follows a log's head and its last signed checkpoint, and says
// when the next checkpoint is due. It is safe for concurrent use: the
// writer advances it, readers and the checkpoint timer read it.
type Tracker struct {
	mu            sync.Mutex
	head          Head
	signed        Head
	last          *Checkpoint // the last checkpoint, signatures included (nil: not known)
	unsignedSince time.Time   // when the first entry after signed was appended
}

// LastCheckpoint is the log's latest signed checkpoint, signatures
// included, or nil when it has none (or signs none). It is what the log's
// side shows the other side of the trust boundary (anchor.go).
func (t *Tracker) LastCheckpoint() *Checkpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Loaded sets the last checkpoint a store read when it opened.
func (t *Tracker) Loaded(cp *Checkpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cp != nil && cp.Seq == t.signed.Seq && cp.Hash == t.signed.Hash {
		t.last = cp
	}
}

// NewTracker starts from a store's head and its last checkpoint (the zero
// Head for none), as a store finds them when it opens.
func NewTracker(head, signed Head) *Tracker {
	t := &Tracker{head: head, signed: signed}
	if head.Seq > signed.Seq {
		t.unsignedSince = time.Now()
	}
	return t
}

// Head is the head the log last appended or loaded.
func (t *Tracker) Head() Head {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.head
}

// Unsigned reports whether entries were appended since the last checkpoint.
func (t *Tracker) Unsigned() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.head.Seq > t.signed.Seq
}

// DueAt reports whether a head at seq leaves every or more entries
// unsigned: the append that reaches it writes a checkpoint in its own
// transaction, so that entry is durable only together with its signature.
func (t *Tracker) DueAt(seq int64, every int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return seq-t.signed.Seq >= int64(every)
}

// Advance records a new head and, when one was written with it, a
// checkpoint.
func (t *Tracker) Advance(h Head, cp *Checkpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.Seq > t.head.Seq && t.unsignedSince.IsZero() {
		t.unsignedSince = time.Now()
	}
	t.head = h
	if cp != nil {
		t.signed = Head{Seq: cp.Seq, Hash: cp.Hash}
		t.last = cp
		if cp.Seq >= h.Seq {
			t.unsignedSince = time.Time{}
		}
	}
}

// Run calls sign whenever entries have waited after without a checkpoint,
// until stop is closed. sign retries on the next tick by itself when it
// fails (the store was down): appends report the outage.
func (t *Tracker) Run(stop <-chan struct{}, after time.Duration, sign func()) {
	tick := time.NewTicker(max(after/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		due := !t.unsignedSince.IsZero() && time.Since(t.unsignedSince) >= after
		t.mu.Unlock()
		if due {
			sign()
		}
	}
}
