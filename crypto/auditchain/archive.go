package auditchain

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	sluice "github.com/sluice-gov/sluice"
)

// The archive file format. An archive is gzip-compressed JSON Lines: a
// header
// {"type":"sluice-audit-archive","first_seq","last_seq","prev_hash","previous_archive_sha256"},
// where prev_hash is the hash the first archived entry links to and
// previous_archive_sha256 the SHA-256 of the previous archive file ("" for
// the first); then one entry per line, its canonical body with its hash
// filled in (Line); then {"type":"end","last_hash","count"}. A store that
// archives records each file (ArchiveRecord), so a replaced archive is
// detected even when it is consistent in itself.

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

// ArchiveRecord is a store's record of an archive file it wrote.
type ArchiveRecord struct {
	FirstSeq, LastSeq int64
	File              string // the file's base name
	PrevHash          string
	LastHash          string
	SHA256            string
	Entries           int
}

// ArchiveWriter writes one archive file of the entries first to last,
// checking their chain as it goes: a log that does not verify is not
// archived.
type ArchiveWriter struct {
	sum         hash.Hash
	bw          *bufio.Writer
	gz          *gzip.Writer
	enc         *json.Encoder
	v           *Verifier
	first, last int64
	count       int
}

// NewArchiveWriter writes the header of an archive of entries first to
// last to w. prev is the entry before first (EmptyHead for the first
// archive) and prevSHA256 the previous archive file's SHA-256 ("" for the
// first).
func NewArchiveWriter(w io.Writer, first, last int64, prev Head, prevSHA256 string) (*ArchiveWriter, error) {
	a := &ArchiveWriter{sum: sha256.New(), v: NewVerifier(prev, nil), first: first, last: last}
	a.bw = bufio.NewWriterSize(io.MultiWriter(w, a.sum), 1<<16)
	a.gz = gzip.NewWriter(a.bw)
	a.enc = json.NewEncoder(a.gz)
	a.enc.SetEscapeHTML(false)
	if err := a.enc.Encode(archiveHeader{Type: archiveType, FirstSeq: first, LastSeq: last, PrevHash: prev.Hash, PreviousArchiveSHA256: prevSHA256}); err != nil {
		return nil, err
	}
	return a, nil
}

// Add writes the next stored entry. An entry that does not verify is an
// EUnavailable *sluice.Error; any other error is the writer's.
func (a *ArchiveWriter) Add(r *StoredRow) error {
	a.v.Add(r)
	if a.v.Failed() {
		seq, problem := a.v.Problem()
		return sluice.Errorf(sluice.EUnavailable, "the log does not verify at entry %d (%s); nothing was archived: run `sluice audit verify`", seq, problem)
	}
	if _, err := a.gz.Write(append(Line(r.Body, r.Hash), '\n')); err != nil {
		return err
	}
	a.count++
	return nil
}

// Close writes the trailer and flushes (w itself is left open). It returns
// the hash of the last entry, the number of entries and the hex SHA-256 of
// everything written to w. Fewer entries than the header announced is an
// EUnavailable *sluice.Error.
func (a *ArchiveWriter) Close() (lastHash string, count int, sum string, err error) {
	if int64(a.count) != a.last-a.first+1 {
		return "", 0, "", sluice.Errorf(sluice.EUnavailable, "entries %d to %d could not all be read; nothing was archived", a.first, a.last)
	}
	lastHash = a.v.Tip().Hash
	if err := a.enc.Encode(archiveTrailer{Type: "end", LastHash: lastHash, Count: a.count}); err != nil {
		return "", 0, "", err
	}
	if err := a.gz.Close(); err != nil {
		return "", 0, "", err
	}
	if err := a.bw.Flush(); err != nil {
		return "", 0, "", err
	}
	return lastHash, a.count, hex.EncodeToString(a.sum.Sum(nil)), nil
}

// maxArchiveLine bounds one line of an archive (an entry with a very long
// SQL text still fits).
const maxArchiveLine = 64 << 20

// verifyArchives walks the archive files in the order given through v.
// Tampering is reported through v; an error is returned only when a file
// cannot be read at all.
func verifyArchives(v *Verifier, files []string, recorded []ArchiveRecord) error {
	bySeq := map[int64]ArchiveRecord{}
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
		if v.Failed() {
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

func verifyArchive(v *Verifier, file, prevSHA, prevName string) (string, error) {
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
		e, err := Decode(line)
		if err != nil {
			v.rep.Entries++
			v.fail(seq, "archived entry %d in %s cannot be decoded: %v (it was edited)", seq, file, err)
			return digest(), nil
		}
		body, err := Canonical(e)
		if err != nil || !bytes.Equal(Line(body, e.Hash), line) {
			v.rep.Entries++
			v.fail(seq, "archived entry %d in %s is not in canonical form (it was edited)", seq, file)
			return digest(), nil
		}
		v.Add(RowOf(e, body))
		if v.Failed() {
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
