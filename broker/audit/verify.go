package audit

import (
	"bytes"
	"fmt"
)

// storedRow is one entry as a backend holds it: the indexed columns beside
// the canonical body. The verifier is independent of the backend so a later
// PostgreSQL store or archive reader checks chains the same way.
type storedRow struct {
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
}

// head is the chain head a backend records beside the entries: how many
// entries there are and the hash the next entry must carry as PrevHash.
type head struct {
	Seq  int64
	Hash string
}

var emptyHead = head{Seq: 0, Hash: GenesisHash}

// chainVerifier checks rows one at a time in sequence order, so the caller
// can stream a log of any size through it.
type chainVerifier struct {
	next     int64  // the seq the next row must have
	prevHash string // the hash the next row must name as PrevHash
	rep      VerifyReport
}

func newChainVerifier() *chainVerifier {
	return &chainVerifier{next: 1, prevHash: GenesisHash}
}

func (v *chainVerifier) fail(seq int64, format string, args ...any) {
	v.rep.FirstBad = seq
	v.rep.Problem = fmt.Sprintf(format, args...)
}

func (v *chainVerifier) failed() bool { return v.rep.Problem != "" }

// add checks one row. After the first problem it only counts rows: what
// follows a break cannot be vouched for, and the first break is what an
// auditor needs to start from.
func (v *chainVerifier) add(r *storedRow) {
	v.rep.Entries++
	if v.failed() {
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
	e, err := decodeBody(r.Body)
	if err != nil {
		v.fail(r.Seq, "entry %d cannot be decoded: %v (the body was edited)", r.Seq, err)
		return
	}
	if e.Seq != r.Seq {
		v.fail(r.Seq, "entry %d holds the body of entry %d (entries were inserted, removed or reordered)", r.Seq, e.Seq)
		return
	}
	canon, err := e.canonical()
	if err != nil || !bytes.Equal(canon, r.Body) {
		v.fail(r.Seq, "entry %d body is not in canonical form (it was edited outside the broker)", r.Seq)
		return
	}
	if hashBytes(canon) != r.Hash {
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
	v.next++
	v.prevHash = r.Hash
	v.rep.Head = r.Hash
}

// columnMismatch names the first indexed column that does not match the
// hashed body: searches run on the columns, so an edit there would hide
// entries from an auditor without touching any hash.
func columnMismatch(e *Entry, r *storedRow) string {
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
func (v *chainVerifier) finish(h head) *VerifyReport {
	rep := v.rep
	if v.failed() {
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
