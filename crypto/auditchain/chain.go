package auditchain

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Head is a chain's head as a store records it beside the entries: how
// many entries there are and the hash the next entry must carry as
// PrevHash. The zero Head (Seq 0, Hash "") stands for "no checkpoint".
type Head struct {
	Seq  int64
	Hash string
}

// EmptyHead is the head of a chain with no entries.
var EmptyHead = Head{Seq: 0, Hash: GenesisHash}

// StoredRow is one entry as a store holds it: the indexed columns beside
// the canonical body (EntryColumns, in that order). The verifier is
// independent of the store, so the broker's SQLite and PostgreSQL stores,
// an agent's file and the archive reader check chains the same way.
type StoredRow struct {
	Seq        int64
	TimeUS     int64
	Kind       string
	QueryID    string
	Principal  string
	Department string
	Purpose    string
	Decision   string
	PrevHash   string
	Hash       string
	Body       []byte
	// Datasets are the entry's rows in the dataset index, in
	// DatasetKeys' form, when the store has the index (IndexChecked);
	// archives have none.
	Datasets     []string
	IndexChecked bool
}

// Values are the row's EntryColumns in order, for an INSERT.
func (r *StoredRow) Values() []any {
	return []any{r.Seq, r.TimeUS, r.Kind, r.QueryID, r.Principal, r.Department, r.Purpose, r.Decision, r.PrevHash, r.Hash, string(r.Body)}
}

// RowOf is the row a store writes for a sealed entry and its body.
func RowOf(e *Entry, body []byte) *StoredRow {
	return &StoredRow{Seq: e.Seq, TimeUS: e.Time.UnixMicro(), Kind: e.Kind, QueryID: e.QueryID, Principal: e.Principal,
		Department: e.Department, Purpose: e.Purpose, Decision: e.Decision, PrevHash: e.PrevHash, Hash: e.Hash, Body: body}
}

// Entry decodes the row's body, with the row's hash filled in: the entry as
// a reader gets it. A body that does not decode is an error (verification
// reports it as edited).
func (r *StoredRow) Entry() (*Entry, error) {
	e, err := Decode(r.Body)
	if err != nil {
		return nil, fmt.Errorf("body cannot be decoded: %v; run `sluice audit verify`", err)
	}
	e.Hash = r.Hash
	return e, nil
}

// DatasetKeys is how an entry's datasets are kept in a store's dataset
// index: lower-cased (dataset names are matched case-insensitively
// everywhere), each once, sorted, empty names dropped. Writing and
// verifying the index both go through it.
func DatasetKeys(ds []string) []string {
	if len(ds) == 0 {
		return nil
	}
	out := make([]string, 0, len(ds))
	for _, s := range ds {
		if s = strings.ToLower(s); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckHead checks a store's recorded head against its last stored entry
// (nil when the store holds none; the chain then ends at base, the last
// archived entry, or is empty). It is the cheap check a store does when it
// opens and on every append; verification is the full one.
func CheckHead(recorded Head, last *StoredRow, base Head) error {
	end := EmptyHead
	switch {
	case last != nil:
		end = Head{Seq: last.Seq, Hash: last.Hash}
		if e, err := Decode(last.Body); err != nil || e.ComputeHash() != last.Hash || e.Seq != last.Seq {
			return sluice.Errorf(sluice.EUnavailable, "the last audit entry %d does not verify (its hash or sequence number does not match its content); the log was edited: run `sluice audit verify` and investigate before appending", last.Seq)
		}
	case base != Head{}:
		end = base
	}
	if end != recorded {
		return sluice.Errorf(sluice.EUnavailable, "the audit head records %d entries but the last stored entry is %d; the log was truncated or edited: run `sluice audit verify` and investigate before appending", recorded.Seq, end.Seq)
	}
	return nil
}

// Verifier checks rows one at a time in sequence order, so a caller can
// stream a log of any size through it.
type Verifier struct {
	next     int64  // the seq the next row must have
	prevHash string // the hash the next row must name as PrevHash
	rep      VerifyReport
	// cps are the stored checkpoints in seq order; each must name the
	// hash the chain has at its seq.
	cps []Checkpoint
	cpi int
}

// NewVerifier starts a chain after from (EmptyHead for the whole chain;
// the last archived entry for a store's remaining entries), checking the
// rows against the checkpoints cps (in seq order).
func NewVerifier(from Head, cps []Checkpoint) *Verifier {
	return &Verifier{next: from.Seq + 1, prevHash: from.Hash, cps: cps}
}

func (v *Verifier) fail(seq int64, format string, args ...any) {
	v.rep.FirstBad = seq
	v.rep.Problem = fmt.Sprintf(format, args...)
}

// Failed reports whether a row did not verify.
func (v *Verifier) Failed() bool { return v.rep.Problem != "" }

// Problem is the first problem found and the seq it is at ("" when none).
func (v *Verifier) Problem() (int64, string) { return v.rep.FirstBad, v.rep.Problem }

// Tip is the last entry that verified (where the walk started before any).
func (v *Verifier) Tip() Head { return Head{Seq: v.next - 1, Hash: v.prevHash} }

// Add checks one row. After the first problem it only counts rows: what
// follows a break cannot be vouched for, and the first break is what an
// auditor needs to start from.
func (v *Verifier) Add(r *StoredRow) {
	v.rep.Entries++
	if v.Failed() {
		return
	}
	if r.Seq != v.next {
		if r.Seq > v.next {
			v.fail(v.next, "entry %d is missing: the stored chain jumps from entry %d to entry %d (an entry was removed)", v.next, v.next-1, r.Seq)
		} else {
			v.fail(r.Seq, "entry %d is out of sequence: expected entry %d", r.Seq, v.next)
		}
		return
	}
	e, err := Decode(r.Body)
	if err != nil {
		v.fail(r.Seq, "entry %d cannot be decoded: %v (the body was edited)", r.Seq, err)
		return
	}
	if e.Seq != r.Seq {
		v.fail(r.Seq, "entry %d holds the body of entry %d (entries were inserted, removed or reordered)", r.Seq, e.Seq)
		return
	}
	canon, err := Canonical(e)
	if err != nil || !bytes.Equal(canon, r.Body) {
		v.fail(r.Seq, "entry %d body is not in canonical form (it was edited outside the broker)", r.Seq)
		return
	}
	if Sum(canon) != r.Hash {
		v.fail(r.Seq, "entry %d was modified: its hash does not match its content", r.Seq)
		return
	}
	if e.PrevHash != r.PrevHash {
		v.fail(r.Seq, "entry %d prev_hash column disagrees with its body (the row was edited)", r.Seq)
		return
	}
	if e.PrevHash != v.prevHash {
		if r.Seq == 1 {
			v.fail(r.Seq, "entry 1 does not start the chain: its prev_hash is not the genesis hash (entries before it were removed or it was forged)")
		} else {
			v.fail(r.Seq, "entry %d does not follow entry %d: its prev_hash does not match that entry's hash (one of them was changed, or an entry was inserted or removed between them)", r.Seq, r.Seq-1)
		}
		return
	}
	if col := columnMismatch(e, r); col != "" {
		v.fail(r.Seq, "entry %d search column %s disagrees with its body (the row was edited to mislead searches)", r.Seq, col)
		return
	}
	for v.cpi < len(v.cps) && v.cps[v.cpi].Seq < r.Seq {
		v.cpi++
	}
	if v.cpi < len(v.cps) && v.cps[v.cpi].Seq == r.Seq {
		cp := v.cps[v.cpi]
		v.cpi++
		if cp.Hash != r.Hash {
			v.fail(r.Seq, "entry %d does not match the checkpoint signed at entry %d: the chain up to it was rewritten (check the entries since the previous checkpoint)", r.Seq, cp.Seq)
			return
		}
	}
	// Last: the index is derived from the body, so a broken chain or
	// checkpoint at this entry is the finding to report.
	if r.IndexChecked && !slices.Equal(DatasetKeys(e.Datasets), r.Datasets) {
		v.fail(r.Seq, "entry %d dataset index disagrees with its body (audit_entry_datasets was edited to mislead usage statistics)", r.Seq)
		return
	}
	v.next++
	v.prevHash = r.Hash
	v.rep.Head = r.Hash
}

// columnMismatch names the first indexed column that does not match the
// hashed body: searches run on the columns, so an edit there would hide
// entries from an auditor without touching any hash.
func columnMismatch(e *Entry, r *StoredRow) string {
	switch {
	case e.Time.UnixMicro() != r.TimeUS:
		return "time"
	case e.Kind != r.Kind:
		return "kind"
	case e.QueryID != r.QueryID:
		return "query_id"
	case e.Principal != r.Principal:
		return "principal"
	case e.Department != r.Department:
		return "department"
	case e.Purpose != r.Purpose:
		return "purpose"
	case e.Decision != r.Decision:
		return "decision"
	}
	return ""
}

// finish compares the walked chain with the recorded head, which is what
// reveals entries removed from the end (the chain itself stays intact).
func (v *Verifier) finish(h Head) *VerifyReport {
	rep := v.rep
	if v.Failed() {
		return &rep
	}
	last := v.next - 1
	switch {
	case h.Seq > last:
		rep.FirstBad = last + 1
		rep.Problem = fmt.Sprintf("the log ends at entry %d but its head records %d entries: entries %d to %d were removed (the tail was truncated)", last, h.Seq, last+1, h.Seq)
	case h.Seq < last:
		rep.FirstBad = h.Seq + 1
		rep.Problem = fmt.Sprintf("the log holds %d entries but its head records %d: entries from %d on were not appended by the broker", last, h.Seq, h.Seq+1)
	case h.Hash != v.prevHash:
		rep.FirstBad = max(last, 1)
		rep.Problem = fmt.Sprintf("the head record does not match the last entry %d (the head or the entry was changed)", last)
	default:
		rep.OK = true
	}
	return &rep
}
