package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

// storedRow is one entry as a backend holds it: the indexed columns beside
// the canonical body. The verifier is independent of the backend so the
// SQLite and PostgreSQL stores and the archive reader check chains the same
// way.
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
	// Datasets are the entry's rows in the dataset index, in
	// datasetKeys' form, when the store has the index (IndexChecked);
	// archives have none.
	Datasets     []string
	IndexChecked bool
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
	// cps are the stored checkpoints in seq order; each must name the
	// hash the chain has at its seq.
	cps []Checkpoint
	cpi int
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
	if r.IndexChecked && !slices.Equal(datasetKeys(e.Datasets), r.Datasets) {
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

// Verify walks the whole chain in sequence order and reports the first entry
// that does not verify. It reads one consistent snapshot, so it can run
// while appends continue, and streams rows so memory does not grow with the
// log. Checkpoints are checked against the chain; with WithTrustedKeys their
// signatures too; with WithArchives the chain is walked from the first
// archive through the store.
func (l *Log) Verify(ctx context.Context, opts ...VerifyOption) (*VerifyReport, error) {
	vo, err := verifyOpts(opts)
	if err != nil {
		return nil, err
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	return verifyDB(ctx, l.d, l.handle(), l.name, vo)
}

func verifyOpts(opts []VerifyOption) (verifyOptions, error) {
	var vo verifyOptions
	for _, o := range opts {
		if o != nil {
			o(&vo)
		}
	}
	if vo.err != nil {
		return vo, sluice.Errorf(sluice.EInvalid, "verify: %s", sluice.ErrorMessage(vo.err))
	}
	return vo, nil
}

// VerifyFile opens the audit store at path read-only and verifies its chain
// as Verify does; it backs `sluice audit verify --store FILE|URL` and works
// while a broker has the store open. path is a SQLite file, which must
// exist, or a postgres:// URL, whose transactions are made read-only; the
// store is never created or upgraded.
func VerifyFile(ctx context.Context, path string, opts ...VerifyOption) (*VerifyReport, error) {
	vo, err := verifyOpts(opts)
	if err != nil {
		return nil, err
	}
	d, name := sqlstore.For(path), sqlstore.Redact(path)
	if !d.IsPostgres() {
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, sluice.Errorf(sluice.EInvalid, "audit store %s does not exist", path)
		case err != nil:
			return nil, storeErr(path, "cannot be read", err)
		case fi.IsDir():
			return nil, sluice.Errorf(sluice.EInvalid, "audit store %s is a directory; give the store file", path)
		}
	}
	o := defaultOptions
	o.readOnly = true
	db, err := openDB(path, o, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, storeErr(name, "cannot be opened", err)
	}
	return verifyDB(ctx, d, db, name, vo)
}

func verifyDB(ctx context.Context, d sqlstore.Dialect, db *sql.DB, path string, vo verifyOptions) (*VerifyReport, error) {
	tx, err := db.BeginTx(ctx, d.Snapshot())
	if err != nil {
		return nil, storeErr(path, "cannot be read", err)
	}
	defer tx.Rollback()
	// The head is read first and in the same transaction as the entries, so
	// both come from one snapshot even while a broker is appending.
	h := emptyHead
	headMissing := false
	switch err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash); {
	case errors.Is(err, sql.ErrNoRows):
		headMissing = true
	case err != nil:
		if strings.Contains(err.Error(), "no such table") || sqlstore.IsUndefinedTable(err) {
			return nil, sluice.Errorf(sluice.EInvalid, "%s holds no audit log (no audit_head table)", path)
		}
		return nil, storeErr(path, "cannot be read", err)
	}
	// Stores written before checkpoints and archives existed lack those
	// tables: they simply have none.
	var cps []Checkpoint
	var recorded []archiveRecord
	if ok, err := d.TableExists(ctx, tx, "audit_checkpoints"); err != nil {
		return nil, storeErr(path, "cannot be read", err)
	} else if ok {
		if cps, err = loadCheckpoints(ctx, tx); err != nil {
			return nil, err
		}
	}
	if ok, err := d.TableExists(ctx, tx, "audit_archives"); err != nil {
		return nil, storeErr(path, "cannot be read", err)
	} else if ok {
		if recorded, err = loadArchiveRecords(ctx, tx); err != nil {
			return nil, err
		}
	}

	v := newChainVerifier()
	v.cps = cps
	var firstUnsigned time.Time // time of the first entry after the last checkpoint
	needArchives := false
	if len(vo.archives) > 0 {
		if err := verifyArchives(v, vo.archives, recorded); err != nil {
			return nil, err
		}
	} else if len(recorded) > 0 {
		// Walk the store from where the last archive ends, so the
		// entries still in the store are checked; the report still
		// fails because the archived part was not.
		last := recorded[len(recorded)-1]
		v.next, v.prevHash = last.LastSeq+1, last.LastHash
		needArchives = true
	}
	if !v.failed() {
		// Stores from before the dataset index (read here without being
		// upgraded) have nothing to check it against.
		indexed, err := d.TableExists(ctx, tx, "audit_entry_datasets")
		if err != nil {
			return nil, storeErr(path, "cannot be read", err)
		}
		q := `SELECT ` + entryColumns + ` FROM audit_entries ORDER BY seq`
		if indexed {
			q = `SELECT ` + entryColumns + `, ` + datasetsColumn(d) + ` FROM audit_entries ORDER BY seq`
		}
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return nil, storeErr(path, "cannot be read", err)
		}
		defer rows.Close()
		var signedThrough int64
		if len(cps) > 0 {
			signedThrough = cps[len(cps)-1].Seq
		}
		for rows.Next() {
			var r *storedRow
			if indexed {
				r, err = scanIndexedRow(rows)
			} else {
				r, err = scanRow(rows)
			}
			if err != nil {
				return nil, storeErr(path, "cannot be read", err)
			}
			if r.Seq == signedThrough+1 {
				firstUnsigned = time.UnixMicro(r.TimeUS)
			}
			v.add(r)
		}
		if err := rows.Err(); err != nil {
			return nil, storeErr(path, "cannot be read", err)
		}
	}
	rep := v.finish(h)
	if headMissing && !v.failed() && rep.Entries > 0 {
		rep.OK = false
		rep.FirstBad = 1
		rep.Problem = "the audit head record is missing, so removal of entries from the end cannot be ruled out"
	}
	last := v.next - 1
	if rep.OK && len(cps) > 0 && cps[len(cps)-1].Seq > last {
		c := cps[len(cps)-1]
		rep.OK = false
		rep.FirstBad = last + 1
		rep.Problem = fmt.Sprintf("a checkpoint was signed at entry %d but the log ends at entry %d: entries %d to %d were removed (the tail was truncated and the head rewritten)", c.Seq, last, last+1, c.Seq)
	}
	rep.Checkpoints = len(cps)
	if len(cps) > 0 {
		rep.SignedThrough = cps[len(cps)-1].Seq
	}
	if len(vo.trusted) > 0 {
		rep.SignaturesChecked = true
		seq, problem := checkSignatures(cps, vo.trusted)
		unsignedYoung := vo.grace > 0 && !firstUnsigned.IsZero() && time.Since(firstUnsigned) < vo.grace
		if problem == "" && len(cps) == 0 && last > 0 && !unsignedYoung {
			seq, problem = 1, "the log has no signed checkpoint: they were removed, or the broker never signed this log (trusted keys were given)"
		}
		if problem == "" && vo.grace > 0 && rep.SignedThrough < last && !unsignedYoung {
			seq, problem = rep.SignedThrough+1, fmt.Sprintf("entries after %d are not covered by a signed checkpoint although they are older than %s: checkpoints were removed or the signer stopped", rep.SignedThrough, vo.grace)
		}
		if problem != "" && (rep.OK || seq <= rep.FirstBad) {
			rep.OK, rep.FirstBad, rep.Problem = false, seq, problem
		}
	}
	if rep.OK && needArchives {
		first := recorded[0]
		lastA := recorded[len(recorded)-1]
		rep.OK = false
		rep.FirstBad = first.FirstSeq
		rep.Problem = fmt.Sprintf("entries %d to %d were moved to %d archive file(s) (%s … %s); pass the archive files, oldest first, to verify the whole chain (the %d entries in the store verify from there)",
			first.FirstSeq, lastA.LastSeq, len(recorded), first.File, lastA.File, rep.Entries)
	}
	return rep, nil
}
