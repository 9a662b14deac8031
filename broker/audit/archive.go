package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

// ArchiveInfo describes an archive file Archive wrote.
type ArchiveInfo struct {
	File     string // path of the archive file
	FirstSeq int64
	LastSeq  int64
	Entries  int
	SHA256   string // hex SHA-256 of the file as written (compressed)
}

// archiveHeader is the first line of an archive file. Field order is the
// order written.
type archiveHeader struct {
	Type                  string `json:"type"`
	FirstSeq              int64  `json:"first_seq"`
	LastSeq               int64  `json:"last_seq"`
	PrevHash              string `json:"prev_hash"`
	PreviousArchiveSHA256 string `json:"previous_archive_sha256"`
}

type archiveTrailer struct {
	Type     string `json:"type"`
	LastHash string `json:"last_hash"`
	Count    int    `json:"count"`
}

const archiveType = "sluice-audit-archive"

// archiveRecord is a row of audit_archives.
type archiveRecord struct {
	FirstSeq, LastSeq int64
	File              string
	PrevHash          string
	LastHash          string
	SHA256            string
	Entries           int
}

func loadArchiveRecords(ctx context.Context, q rowsQuerier) ([]archiveRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT first_seq, last_seq, file, prev_hash, last_hash, sha256, entries FROM audit_archives ORDER BY first_seq`)
	if err != nil {
		return nil, readFailed("archives", err)
	}
	defer rows.Close()
	var out []archiveRecord
	for rows.Next() {
		var a archiveRecord
		if err := rows.Scan(&a.FirstSeq, &a.LastSeq, &a.File, &a.PrevHash, &a.LastHash, &a.SHA256, &a.Entries); err != nil {
			return nil, readFailed("archives", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed("archives", err)
	}
	return out, nil
}

// archiveBase is where the store's chain starts when entries were
// archived: the last archive's last entry.
func archiveBase(ctx context.Context, q sqlstore.Querier) (head, bool, error) {
	var h head
	err := q.QueryRowContext(ctx, `SELECT last_seq, last_hash FROM audit_archives ORDER BY first_seq DESC LIMIT 1`).Scan(&h.Seq, &h.Hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return head{}, false, nil
	case err != nil:
		return head{}, false, err
	}
	return h, true, nil
}

// withHash turns a canonical body (which ends in "hash":""}) into the line
// archives and exports carry: the same bytes with the hash filled in. The
// body is recovered by putting "" back, so sha256(body) can be checked
// with ordinary tools.
func withHash(body []byte, hash string) []byte {
	const tail = `"hash":""}`
	if !bytes.HasSuffix(body, []byte(tail)) {
		return nil
	}
	out := make([]byte, 0, len(body)+len(hash)+1)
	out = append(out, body[:len(body)-2]...)
	out = append(out, hash...)
	return append(out, '"', '}')
}

// Archive moves the oldest entries, those with a time before before (a
// prefix of the chain: it stops at the first entry that is not older), to
// dir/audit-FIRST-LAST.jsonl.gz and deletes them from the store.
//
// The file is gzip-compressed JSON Lines: a header
// {"type":"sluice-audit-archive","first_seq","last_seq","prev_hash","previous_archive_sha256"},
// where prev_hash is the hash the first archived entry links to and
// previous_archive_sha256 the SHA-256 of the previous archive file ("" for
// the first); then one entry per line, its canonical body with its hash
// filled in (as Export writes); then {"type":"end","last_hash","count"}.
// The file is written to a temporary name, synced and renamed; only then
// are the entries deleted, in one transaction that drops the delete guard
// trigger, deletes, recreates the trigger and records the file in
// audit_archives, so anyone else sees the guard either present or the
// entries gone and recorded. Checkpoints are kept. The archived entries are
// chain-checked first: a log that does not verify is not archived.
//
// When no entry is old enough, Archive returns an ArchiveInfo with zero
// Entries and writes nothing.
func (l *Log) Archive(ctx context.Context, before time.Time, dir string) (*ArchiveInfo, error) {
	if before.IsZero() {
		return nil, sluice.Errorf(sluice.EInvalid, "archive cutoff time is zero")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, sluice.Errorf(sluice.EInvalid, "archive directory %s does not exist or is not a directory", dir)
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	l.archMu.Lock()
	defer l.archMu.Unlock()

	db := l.handle()
	rtx, err := db.BeginTx(ctx, l.d.Snapshot())
	if err != nil {
		return nil, readFailed("archive", err)
	}
	defer rtx.Rollback()
	recs, err := loadArchiveRecords(ctx, rtx)
	if err != nil {
		return nil, err
	}
	base, prevSHA := emptyHead, ""
	if len(recs) > 0 {
		r := recs[len(recs)-1]
		base, prevSHA = head{Seq: r.LastSeq, Hash: r.LastHash}, r.SHA256
	}
	// The prefix to archive: from the first stored entry up to the last
	// one before the first entry that is not older than before.
	var first, last int64
	rows, err := rtx.QueryContext(ctx, `SELECT seq, time_us FROM audit_entries ORDER BY seq`)
	if err != nil {
		return nil, readFailed("archive", err)
	}
	cut := before.UnixMicro()
	for rows.Next() {
		var seq, us int64
		if err := rows.Scan(&seq, &us); err != nil {
			rows.Close()
			return nil, readFailed("archive", err)
		}
		if us >= cut {
			break
		}
		if first == 0 {
			first = seq
		}
		last = seq
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, readFailed("archive", err)
	}
	rows.Close()
	if first == 0 {
		return &ArchiveInfo{}, nil
	}
	if first != base.Seq+1 {
		return nil, sluice.Errorf(sluice.EUnavailable, "the store's first entry is %d but the archives end at entry %d; run `sluice audit verify`: nothing was archived", first, base.Seq)
	}

	name := fmt.Sprintf("audit-%d-%d.jsonl.gz", first, last)
	final := filepath.Join(dir, name)
	if _, err := os.Stat(final); err == nil {
		for _, r := range recs {
			if r.File == name {
				return nil, sluice.Errorf(sluice.EInvalid, "archive %s already exists and is recorded; nothing was archived", final)
			}
		}
		// Left by an earlier attempt whose store transaction failed; the
		// rename below replaces it.
	}
	tmp, err := os.CreateTemp(dir, ".audit-archive-*.tmp")
	if err != nil {
		return nil, archiveErr(final, err)
	}
	tmpName := tmp.Name()
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, sum), 1<<16)
	gz := gzip.NewWriter(bw)
	enc := json.NewEncoder(gz)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(archiveHeader{Type: archiveType, FirstSeq: first, LastSeq: last, PrevHash: base.Hash, PreviousArchiveSHA256: prevSHA}); err != nil {
		return nil, archiveErr(final, err)
	}
	erows, err := rtx.QueryContext(ctx, l.d.Rebind(`SELECT `+entryColumns+` FROM audit_entries WHERE seq <= ? ORDER BY seq`), last)
	if err != nil {
		return nil, readFailed("archive", err)
	}
	v := newChainVerifier()
	v.next, v.prevHash = base.Seq+1, base.Hash
	count := 0
	for erows.Next() {
		r, err := scanRow(erows)
		if err != nil {
			erows.Close()
			return nil, readFailed("archive", err)
		}
		v.add(r)
		if v.failed() {
			erows.Close()
			return nil, sluice.Errorf(sluice.EUnavailable, "the log does not verify at entry %d (%s); nothing was archived: run `sluice audit verify`", v.rep.FirstBad, v.rep.Problem)
		}
		line := withHash(r.Body, r.Hash)
		if _, err := gz.Write(append(line, '\n')); err != nil {
			erows.Close()
			return nil, archiveErr(final, err)
		}
		count++
	}
	if err := erows.Err(); err != nil {
		erows.Close()
		return nil, readFailed("archive", err)
	}
	erows.Close()
	lastHash := v.prevHash
	if int64(count) != last-first+1 {
		return nil, sluice.Errorf(sluice.EUnavailable, "entries %d to %d could not all be read; nothing was archived", first, last)
	}
	if err := enc.Encode(archiveTrailer{Type: "end", LastHash: lastHash, Count: count}); err != nil {
		return nil, archiveErr(final, err)
	}
	if err := gz.Close(); err != nil {
		return nil, archiveErr(final, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, archiveErr(final, err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, archiveErr(final, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, archiveErr(final, err)
	}
	if err := os.Chmod(tmpName, 0o640); err != nil {
		return nil, archiveErr(final, err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return nil, archiveErr(final, err)
	}
	keep = true
	syncDir(dir)
	_ = rtx.Rollback()
	digest := hex.EncodeToString(sum.Sum(nil))

	// Delete the archived entries under the writer token, so no append
	// batch of this Log competes for the lock.
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	tx, err := l.handle().BeginTx(ctx, nil)
	if err != nil {
		return nil, archiveStoreErr(final, err)
	}
	defer tx.Rollback()
	var firstNow int64
	var hashNow string
	if err := tx.QueryRowContext(ctx, `SELECT MIN(seq) FROM audit_entries`).Scan(&firstNow); err != nil || firstNow != first {
		return nil, archiveStoreErr(final, fmt.Errorf("the store's first entry changed while archiving (now %d, was %d)", firstNow, first))
	}
	if err := tx.QueryRowContext(ctx, l.d.Rebind(`SELECT hash FROM audit_entries WHERE seq = ?`), last).Scan(&hashNow); err != nil || hashNow != lastHash {
		return nil, archiveStoreErr(final, fmt.Errorf("entry %d changed while archiving", last))
	}
	if _, err := tx.ExecContext(ctx, dropDeleteGuard(l.d)); err != nil {
		return nil, archiveStoreErr(final, err)
	}
	res, err := tx.ExecContext(ctx, l.d.Rebind(`DELETE FROM audit_entries WHERE seq >= ? AND seq <= ?`), first, last)
	if err != nil {
		return nil, archiveStoreErr(final, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(count) {
		return nil, archiveStoreErr(final, fmt.Errorf("deleted %d entries; expected %d", n, count))
	}
	if _, err := tx.ExecContext(ctx, createDeleteGuard(l.d)); err != nil {
		return nil, archiveStoreErr(final, err)
	}
	// The index rows of archived entries go with them: usage statistics
	// cover the entries in the store.
	if _, err := tx.ExecContext(ctx, l.d.Rebind(`DELETE FROM audit_entry_datasets WHERE seq >= ? AND seq <= ?`), first, last); err != nil {
		return nil, archiveStoreErr(final, err)
	}
	if _, err := tx.ExecContext(ctx, l.d.Rebind(`INSERT INTO audit_archives (first_seq, last_seq, file, prev_hash, last_hash, sha256, entries, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		first, last, name, base.Hash, lastHash, digest, count, time.Now().UnixMicro()); err != nil {
		return nil, archiveStoreErr(final, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, archiveStoreErr(final, err)
	}
	return &ArchiveInfo{File: final, FirstSeq: first, LastSeq: last, Entries: count, SHA256: digest}, nil
}

func archiveErr(file string, err error) error {
	return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("archive %s cannot be written: %v; nothing was archived", file, err), Err: err}
}

func archiveStoreErr(file string, err error) error {
	return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("archive %s was written but the entries could not be removed from the store: %v; the entries are still in the store and the file may be deleted or left to be replaced by the next archive run", file, err), Err: err}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// maxArchiveLine bounds one line of an archive (an entry with a very long
// SQL text still fits).
const maxArchiveLine = 64 << 20

// verifyArchives walks the archive files in the order given through v.
// Tampering is reported through v; an error is returned only when a file
// cannot be read at all.
func verifyArchives(v *chainVerifier, files []string, recorded []archiveRecord) error {
	bySeq := map[int64]archiveRecord{}
	for _, r := range recorded {
		bySeq[r.FirstSeq] = r
	}
	prevSHA, prevName := "", ""
	for _, file := range files {
		start := v.next
		digest, err := verifyArchive(v, file, prevSHA, prevName)
		if err != nil {
			return err
		}
		if v.failed() {
			return nil
		}
		// The store's record of what it archived: a replaced archive
		// (even a self-consistent forgery) differs from it.
		if r, ok := bySeq[start]; ok && r.SHA256 != digest {
			v.fail(start, "archive %s differs from the archive the broker wrote for entries %d to %d (sha256 %s, recorded %s): it was replaced", file, r.FirstSeq, r.LastSeq, digest, r.SHA256)
			return nil
		}
		prevSHA, prevName = digest, filepath.Base(file)
		v.rep.Archives++
	}
	return nil
}

func verifyArchive(v *chainVerifier, file, prevSHA, prevName string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		code := sluice.EUnavailable
		if errors.Is(err, os.ErrNotExist) {
			code = sluice.EInvalid
		}
		return "", &sluice.Error{Code: code, Message: fmt.Sprintf("archive %s cannot be read: %v", file, err), Err: err}
	}
	defer f.Close()
	sum := sha256.New()
	tee := io.TeeReader(bufio.NewReaderSize(f, 1<<16), sum)
	digest := func() string {
		_, _ = io.Copy(io.Discard, tee)
		return hex.EncodeToString(sum.Sum(nil))
	}
	gz, err := gzip.NewReader(tee)
	if err != nil {
		v.fail(v.next, "archive %s is not a gzip file (it was replaced or damaged): %v", file, err)
		return digest(), nil
	}
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 0, 1<<16), maxArchiveLine)
	if !sc.Scan() {
		v.fail(v.next, "archive %s is empty or unreadable (%v)", file, sc.Err())
		return digest(), nil
	}
	var hd archiveHeader
	if err := strictJSON(sc.Bytes(), &hd); err != nil || hd.Type != archiveType {
		v.fail(v.next, "archive %s has no valid header (it was damaged or is not a sluice audit archive)", file)
		return digest(), nil
	}
	switch {
	case hd.FirstSeq > v.next:
		if prevName == "" {
			v.fail(v.next, "archive %s starts at entry %d, but the chain starts at entry %d: an earlier archive is missing; pass the archives oldest first", file, hd.FirstSeq, v.next)
		} else {
			v.fail(v.next, "archive %s starts at entry %d, but %s ended at entry %d: entries %d to %d are missing (an archive file is missing, or the archives are out of order)", file, hd.FirstSeq, prevName, v.next-1, v.next, hd.FirstSeq-1)
		}
		return digest(), nil
	case hd.FirstSeq < v.next:
		v.fail(v.next, "archive %s starts at entry %d, but entry %d was expected: the archives are out of order or one was passed twice", file, hd.FirstSeq, v.next)
		return digest(), nil
	case hd.PreviousArchiveSHA256 != prevSHA:
		if prevSHA == "" {
			v.fail(v.next, "archive %s names a previous archive (sha256 %s) but is the first given: an earlier archive is missing; pass the archives oldest first", file, hd.PreviousArchiveSHA256)
		} else {
			v.fail(v.next, "archive %s does not follow %s: its header names a previous archive with sha256 %s, but %s has sha256 %s (an archive was replaced or the order is wrong)", file, prevName, hd.PreviousArchiveSHA256, prevName, prevSHA)
		}
		return digest(), nil
	case hd.PrevHash != v.prevHash:
		v.fail(v.next, "archive %s does not link to the chain before it: its prev_hash is not the hash of entry %d", file, v.next-1)
		return digest(), nil
	}
	count := 0
	var tr *archiveTrailer
	for sc.Scan() {
		line := sc.Bytes()
		if tr != nil {
			v.fail(v.next, "archive %s has data after its trailer (it was edited)", file)
			return digest(), nil
		}
		if bytes.HasPrefix(line, []byte(`{"type":`)) {
			tr = &archiveTrailer{}
			if err := strictJSON(line, tr); err != nil || tr.Type != "end" {
				v.fail(v.next, "archive %s has a malformed trailer (it was edited)", file)
				return digest(), nil
			}
			continue
		}
		count++
		seq := v.next
		e, err := decodeBody(line)
		if err != nil {
			v.rep.Entries++
			v.fail(seq, "archived entry %d in %s cannot be decoded: %v (it was edited)", seq, file, err)
			return digest(), nil
		}
		hash := e.Hash
		body, err := e.canonical()
		if err != nil || !bytes.Equal(withHash(body, hash), line) {
			v.rep.Entries++
			v.fail(seq, "archived entry %d in %s is not in canonical form (it was edited)", seq, file)
			return digest(), nil
		}
		v.add(&storedRow{Seq: e.Seq, TimeUS: e.Time.UnixMicro(), Kind: e.Kind, QueryID: e.QueryID, Principal: e.Principal,
			Department: e.Department, Purpose: e.Purpose, Decision: e.Decision, PrevHash: e.PrevHash, Hash: hash, Body: body})
		if v.failed() {
			v.rep.Problem = fmt.Sprintf("%s (in archive %s)", v.rep.Problem, filepath.Base(file))
			return digest(), nil
		}
	}
	if err := sc.Err(); err != nil {
		v.fail(v.next, "archive %s cannot be read to the end: %v (it was truncated or damaged)", file, err)
		return digest(), nil
	}
	switch {
	case tr == nil:
		v.fail(v.next, "archive %s ends without its trailer: it was truncated after entry %d", file, v.next-1)
	case tr.Count != count || hd.LastSeq != v.next-1:
		v.fail(v.next, "archive %s holds %d entries ending at %d, but its header and trailer say %d ending at %d (entries were removed from the end)", file, count, v.next-1, tr.Count, hd.LastSeq)
	case tr.LastHash != v.prevHash:
		v.fail(max(v.next-1, 1), "archive %s trailer's last hash does not match its last entry %d (the entry or the trailer was changed)", file, v.next-1)
	}
	return digest(), nil
}

func strictJSON(b []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
