package auditchain

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// # Anchors: each side's log held by the other
//
// A hash chain and its own signed checkpoints show that a log was not
// edited, but not that it was not cut back: someone who can write the store
// can remove the newest entries (or restore an older copy) together with the
// head record and the checkpoints after the cut, and what is left verifies.
// So each side of the trust boundary keeps, in its own chain, what the other
// side showed of its log:
//
//   - the broker sends, with each fragment request, the seq and hash of the
//     query's decision entry (on its log before the ticket existed) and its
//     latest signed checkpoint; the agent writes them into its entries for
//     that fragment (Entry.Peer);
//   - the agent answers, before its first batch leaves, with the seq and
//     hash of its write-ahead entry for the fragment (Phase "begin") and its
//     own latest signed checkpoint; the broker writes them into the
//     fragment's record in its result entry (FragmentRecord.Peer).
//
// CheckAnchors then finds a log that was truncated or rolled back below what
// the other side saw: an anchored entry that is gone (the log ends before
// it) or different (the log was cut and written again). A checkpoint signed
// with the log's own key that the log no longer holds is the same evidence,
// and cannot have been made up by the other side.

// PhaseBegin marks an agent's write-ahead entry: the fragment was accepted
// and rendered and is about to send its first batch.
const PhaseBegin = "begin"

// MaxAnchorBytes bounds an encoded anchor carried in a request header.
const MaxAnchorBytes = 8 << 10

// Anchor is what one side showed of its own log for one request: the seq
// and hash of its entry for it, and its latest signed checkpoint (nil when
// it signs none yet).
type Anchor struct {
	Seq        int64       `json:"seq"`
	Hash       string      `json:"hash"`
	Checkpoint *SignedHead `json:"checkpoint,omitempty"`
}

// SignedHead is a checkpoint as it travels and is held by the other side:
// the time exactly as signed, so the signature can be checked again.
type SignedHead struct {
	Seq        int64                 `json:"seq"`
	Hash       string                `json:"hash"`
	Time       string                `json:"time"`
	Signatures []CheckpointSignature `json:"signatures"`
}

// Signed returns the checkpoint in the form the other side holds.
func (c *Checkpoint) Signed() *SignedHead {
	if c == nil {
		return nil
	}
	t := c.timeText
	if t == "" {
		t = c.Time.UTC().Format(checkpointTimeFormat)
	}
	return &SignedHead{Seq: c.Seq, Hash: c.Hash, Time: t, Signatures: slices.Clone(c.Signatures)}
}

// Checkpoint rebuilds the checkpoint, for signature verification.
func (s *SignedHead) Checkpoint() Checkpoint {
	c := Checkpoint{Seq: s.Seq, Hash: s.Hash, timeText: s.Time, Signatures: s.Signatures}
	c.Time, _ = time.Parse(checkpointTimeFormat, s.Time)
	return c
}

// EncodeAnchor is the header form of an anchor (compact JSON).
func EncodeAnchor(a *Anchor) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// DecodeAnchor parses a header value strictly; "" is no anchor.
func DecodeAnchor(v string) (*Anchor, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > MaxAnchorBytes {
		return nil, sluice.Errorf(sluice.EInvalid, "the audit anchor is %d bytes; the limit is %d", len(v), MaxAnchorBytes)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(v)))
	dec.DisallowUnknownFields()
	var a Anchor
	if err := dec.Decode(&a); err != nil || dec.More() {
		return nil, sluice.Errorf(sluice.EInvalid, "the audit anchor is not valid JSON of the form {\"seq\":N,\"hash\":\"…\",\"checkpoint\":{…}}")
	}
	if a.Seq < 0 || (a.Checkpoint != nil && a.Checkpoint.Seq < 0) {
		return nil, sluice.Errorf(sluice.EInvalid, "the audit anchor has a negative sequence number")
	}
	return &a, nil
}

// HeldAnchor is an anchor as the other side holds it: which of its
// entries holds it.
type HeldAnchor struct {
	Anchor
	// Holder names the log that holds it ("broker", "agent of department
	// police") and HolderSeq the entry there.
	Holder    string
	HolderSeq int64
	QueryID   string
}

// AnchorsForBroker collects the broker anchors an agent's log holds, once
// per fragment request (a write-ahead entry and its outcome hold the same
// one).
func AnchorsForBroker(agentDept string, agentEntries []Entry) []HeldAnchor {
	var out []HeldAnchor
	seen := map[string]bool{}
	for _, e := range agentEntries {
		if e.Peer != nil {
			k := fmt.Sprintf("%s\x00%d\x00%s", e.QueryID, e.Peer.Seq, e.Peer.Hash)
			if cp := e.Peer.Checkpoint; cp != nil {
				k += fmt.Sprintf("\x00%d\x00%s", cp.Seq, cp.Hash)
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, HeldAnchor{Anchor: *e.Peer, Holder: "the agent of department " + agentDept, HolderSeq: e.Seq, QueryID: e.QueryID})
		}
	}
	return out
}

// AnchorsForAgent collects the anchors of department dept's agent that the
// broker's result entries hold.
func AnchorsForAgent(dept string, brokerEntries []Entry) []HeldAnchor {
	var out []HeldAnchor
	for _, e := range brokerEntries {
		for _, fr := range e.Fragments {
			if fr.Peer != nil && fr.Department == dept {
				out = append(out, HeldAnchor{Anchor: *fr.Peer, Holder: "the broker", HolderSeq: e.Seq, QueryID: e.QueryID})
			}
		}
	}
	return out
}

// AnchorProblem is one anchor the log does not honour.
type AnchorProblem struct {
	Seq    int64  `json:"seq"`    // the entry of the checked log that is missing or different
	Detail string `json:"detail"` // counts, seqs and hashes only
}

// LogView is what CheckAnchors needs of the checked log: its head and the
// hash of an entry (ok false when the entry is not in the store: removed,
// or moved to an archive when seq <= ArchivedThrough).
type LogView struct {
	Name            string // "the broker's log", "the log of the agent of department police"
	Head            Head
	ArchivedThrough int64
	HashAt          func(seq int64) (hash string, ok bool, err error)
}

// CheckAnchors checks every anchor held by the other side against the log:
// the anchored entry and the anchored checkpoint's entry must be there with
// the same hash. With trusted keys (the checked log's own public keys), a
// checkpoint's signatures are verified first, and a checkpoint no trusted
// key signed is reported (it cannot vouch); without keys the seqs and
// hashes are checked alone. Problems come in seq order, at most one per
// seq; an empty result means the log reaches everything the other side
// saw of it.
func CheckAnchors(v LogView, held []HeldAnchor, trusted ...PublicKey) ([]AnchorProblem, error) {
	type claim struct {
		seq     int64
		hash    string
		what    string
		holder  string
		queryID string
	}
	var claims []claim
	var sigProblems []AnchorProblem
	for _, h := range held {
		if h.Seq > 0 {
			claims = append(claims, claim{h.Seq, h.Hash, "its entry for query " + h.QueryID, h.Holder + " (its entry " + fmt.Sprint(h.HolderSeq) + ")", h.QueryID})
		}
		if cp := h.Checkpoint; cp != nil && cp.Seq > 0 {
			if len(trusted) > 0 {
				c := cp.Checkpoint()
				if _, problem := checkSignatures([]Checkpoint{c}, trusted); problem != "" {
					sigProblems = append(sigProblems, AnchorProblem{Seq: cp.Seq, Detail: fmt.Sprintf("%s holds a checkpoint of %s that does not verify: %s", h.Holder, v.Name, problem)})
					continue
				}
			}
			claims = append(claims, claim{cp.Seq, cp.Hash, "its signed checkpoint of " + cp.Time, h.Holder + " (its entry " + fmt.Sprint(h.HolderSeq) + ")", h.QueryID})
		}
	}
	// The highest claims first: one missing entry explains every claim above
	// the log's end, and is reported once.
	slices.SortFunc(claims, func(a, b claim) int { return cmp.Compare(b.seq, a.seq) })
	seen := map[int64]bool{}
	var out []AnchorProblem
	truncated := false
	for _, c := range claims {
		if seen[c.seq] {
			continue
		}
		seen[c.seq] = true
		if c.seq > v.Head.Seq {
			if !truncated {
				truncated = true
				out = append(out, AnchorProblem{Seq: c.seq, Detail: fmt.Sprintf(
					"%s ends at entry %d, but %s holds %s at entry %d (hash %s): the log was truncated or rolled back to an earlier point",
					v.Name, v.Head.Seq, c.holder, c.what, c.seq, short(c.hash))})
			}
			continue
		}
		hash, ok, err := v.HashAt(c.seq)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok && c.seq <= v.ArchivedThrough:
			// In an archive; verification with the archives checks it.
		case !ok:
			out = append(out, AnchorProblem{Seq: c.seq, Detail: fmt.Sprintf(
				"%s has no entry %d, but %s holds %s there (hash %s): entries were removed", v.Name, c.seq, c.holder, c.what, short(c.hash))})
		case hash != c.hash:
			out = append(out, AnchorProblem{Seq: c.seq, Detail: fmt.Sprintf(
				"%s has a different entry %d (hash %s) than %s holds as %s (hash %s): the log was cut back and written again, or rewritten",
				v.Name, c.seq, short(hash), c.holder, c.what, short(c.hash))})
		}
	}
	out = append(out, sigProblems...)
	slices.SortStableFunc(out, func(a, b AnchorProblem) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// EntriesView is a LogView over entries already read (an agent's log as its
// audit action returns it).
func EntriesView(name string, entries []Entry) LogView {
	byseq := make(map[int64]string, len(entries))
	var h Head
	first := int64(0)
	for _, e := range entries {
		byseq[e.Seq] = e.Hash
		if e.Seq > h.Seq {
			h = Head{Seq: e.Seq, Hash: e.Hash}
		}
		if first == 0 || e.Seq < first {
			first = e.Seq
		}
	}
	// Entries below the first one read were archived (an agent's log can
	// be archived like the broker's); the archives are verified apart.
	return LogView{Name: name, Head: h, ArchivedThrough: max(first-1, 0), HashAt: func(seq int64) (string, bool, error) {
		hash, ok := byseq[seq]
		return hash, ok, nil
	}}
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
