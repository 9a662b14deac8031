package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// ArchiveInfo describes an archive file Archive wrote.
type ArchiveInfo struct {
	File     string // path of the archive file
	FirstSeq int64
	LastSeq  int64
	Entries  int
	SHA256   string // hex SHA-256 of the file as written (compressed)
}

func loadArchiveRecords(ctx context.Context, q rowsQuerier) ([]auditchain.ArchiveRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+auditchain.ArchiveColumns+` FROM audit_archives ORDER BY first_seq`)
	if err != nil {
		return nil, readFailed("archives", err)
	}
	defer rows.Close()
	out, err := auditchain.Collect(rows, auditchain.ScanArchiveRecord)
	if err != nil {
		return nil, readFailed("archives", err)
	}
	return out, nil
}

// archiveBase is where the store's chain starts when entries were
// archived: the last archive's last entry (the zero Head when none was).
func archiveBase(ctx context.Context, q sqlstore.Querier) (auditchain.Head, error) {
	var h auditchain.Head
	err := q.QueryRowContext(ctx, `SELECT last_seq, last_hash FROM audit_archives ORDER BY first_seq DESC LIMIT 1`).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return auditchain.Head{}, nil
	}
	return h, err
}

// Archive moves the oldest entries, those with a time before before (a
// prefix of the chain: it stops at the first entry that is not older), to
// dir/audit-FIRST-LAST.jsonl.gz and deletes them from the store.
//
// The file is in auditchain's archive format (auditchain.ArchiveWriter):
// gzip-compressed JSON Lines, a header linking it to the chain and to the
// previous archive, one entry per line as Export writes it, a trailer.
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
	base, prevSHA := auditchain.EmptyHead, ""
	if len(recs) > 0 {
		r := recs[len(recs)-1]
		base, prevSHA = auditchain.Head{Seq: r.LastSeq, Hash: r.LastHash}, r.SHA256
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
	aw, err := auditchain.NewArchiveWriter(tmp, first, last, base, prevSHA)
	if err != nil {
		return nil, archiveErr(final, err)
	}
	erows, err := rtx.QueryContext(ctx, l.d.Rebind(`SELECT `+auditchain.EntryColumns+` FROM audit_entries WHERE seq <= ? ORDER BY seq`), last)
	if err != nil {
		return nil, readFailed("archive", err)
	}
	for erows.Next() {
		r, err := auditchain.ScanRow(erows)
		if err != nil {
			erows.Close()
			return nil, readFailed("archive", err)
		}
		if err := aw.Add(r); err != nil {
			erows.Close()
			var se *sluice.Error
			if errors.As(err, &se) {
				return nil, err // the chain does not verify
			}
			return nil, archiveErr(final, err)
		}
	}
	if err := erows.Err(); err != nil {
		erows.Close()
		return nil, readFailed("archive", err)
	}
	erows.Close()
	lastHash, count, digest, err := aw.Close()
	if err != nil {
		var se *sluice.Error
		if errors.As(err, &se) {
			return nil, err
		}
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
