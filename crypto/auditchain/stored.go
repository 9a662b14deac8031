package auditchain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// How a chain is kept in SQL tables. The broker's store (broker/audit, in
// SQLite or PostgreSQL, beside its other tables) and every agent's own
// SQLite file (adapters/agent/auditlog) keep a chain in the same tables,
// so `sluice audit verify --store` reads either and an agent's file
// written by an older sluice, which used the broker's store, still opens.
// This file is that layout, written once: table definitions, column lists
// and reading a row. It runs nothing; each store executes it through its
// own database layer, where {int} is the store's 64-bit integer type
// (INTEGER in SQLite, BIGINT in PostgreSQL).
//
//   - audit_entries: one row per entry, the search columns beside the
//     canonical body (EntryColumns).
//   - audit_head: one row (id 1), the head as of the last append.
//   - audit_checkpoints: the signed checkpoints (CheckpointColumns), time as
//     the exact text that was signed.
//   - audit_archives (broker): the archive files the oldest entries moved
//     to (ArchiveColumns).
//   - audit_entry_datasets (broker): the datasets each entry names, in
//     DatasetKeys' form; verification checks it against the bodies.
const (
	EntriesTable = `CREATE TABLE IF NOT EXISTS audit_entries (
			seq        {int} PRIMARY KEY,
			time_us    {int} NOT NULL,
			kind       TEXT NOT NULL,
			query_id   TEXT NOT NULL,
			principal  TEXT NOT NULL,
			department TEXT NOT NULL,
			purpose    TEXT NOT NULL,
			decision   TEXT NOT NULL,
			prev_hash  TEXT NOT NULL,
			hash       TEXT NOT NULL,
			body       TEXT NOT NULL
		)`
	HeadTable = `CREATE TABLE IF NOT EXISTS audit_head (
			id   {int} PRIMARY KEY CHECK (id = 1),
			seq  {int} NOT NULL,
			hash TEXT NOT NULL
		)`
	CheckpointsTable = `CREATE TABLE IF NOT EXISTS audit_checkpoints (
			seq        {int} PRIMARY KEY,
			hash       TEXT NOT NULL,
			time       TEXT NOT NULL,
			signatures TEXT NOT NULL
		)`

	EntryColumns      = `seq, time_us, kind, query_id, principal, department, purpose, decision, prev_hash, hash, body`
	CheckpointColumns = `seq, hash, time, signatures`
	ArchiveColumns    = `first_seq, last_seq, file, prev_hash, last_hash, sha256, entries`

	// SQLiteDatasetsColumn is the select expression verification reads
	// beside each entry in SQLite when the store has the dataset index:
	// the JSON array of the entry's index rows (in no particular order).
	SQLiteDatasetsColumn = `COALESCE((SELECT json_group_array(x.dataset) FROM audit_entry_datasets x WHERE x.seq = audit_entries.seq), '[]')`
)

// Guarded are the append-only tables: a store puts triggers on them that
// refuse UPDATE and DELETE (SQLiteGuard in SQLite). The guards are not a
// security boundary (whoever can write the store can drop them); the hash
// chain and signed checkpoints are what detect that.
var Guarded = []string{"audit_entries", "audit_checkpoints"}

// SQLiteGuard is the SQLite trigger refusing op (UPDATE or DELETE) on table.
func SQLiteGuard(table, op string) string {
	return fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS %s_no_%s BEFORE %s ON %s
	BEGIN SELECT RAISE(ABORT, '%s is append-only'); END`, table, strings.ToLower(op), op, table, table)
}

// Scanner is a row being read (*sql.Row, *sql.Rows).
type Scanner interface{ Scan(dest ...any) error }

// ScanRow reads EntryColumns.
func ScanRow(s Scanner) (*StoredRow, error) {
	var r StoredRow
	var body string
	if err := s.Scan(&r.Seq, &r.TimeUS, &r.Kind, &r.QueryID, &r.Principal, &r.Department, &r.Purpose, &r.Decision, &r.PrevHash, &r.Hash, &body); err != nil {
		return nil, err
	}
	r.Body = []byte(body)
	return &r, nil
}

// ScanIndexedRow reads EntryColumns followed by a datasets column
// (SQLiteDatasetsColumn or the store's equivalent).
func ScanIndexedRow(s Scanner) (*StoredRow, error) {
	var r StoredRow
	var body, ds string
	if err := s.Scan(&r.Seq, &r.TimeUS, &r.Kind, &r.QueryID, &r.Principal, &r.Department, &r.Purpose, &r.Decision, &r.PrevHash, &r.Hash, &body, &ds); err != nil {
		return nil, err
	}
	r.Body = []byte(body)
	var out []string
	if err := json.Unmarshal([]byte(ds), &out); err != nil {
		return nil, fmt.Errorf("entry %d dataset index: %w", r.Seq, err)
	}
	slices.Sort(out)
	if len(out) > 0 {
		r.Datasets = out
	}
	r.IndexChecked = true
	return &r, nil
}

// ScanCheckpoint reads CheckpointColumns.
func ScanCheckpoint(s Scanner) (Checkpoint, error) {
	var seq int64
	var hash, timeText, sigs string
	if err := s.Scan(&seq, &hash, &timeText, &sigs); err != nil {
		return Checkpoint{}, err
	}
	return ParseCheckpoint(seq, hash, timeText, sigs), nil
}

// ScanArchiveRecord reads ArchiveColumns.
func ScanArchiveRecord(s Scanner) (ArchiveRecord, error) {
	var a ArchiveRecord
	err := s.Scan(&a.FirstSeq, &a.LastSeq, &a.File, &a.PrevHash, &a.LastHash, &a.SHA256, &a.Entries)
	return a, err
}

// Rows is a result being read (*sql.Rows).
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect reads every row of rows with scan (ScanRow, ScanCheckpoint,
// ScanArchiveRecord). The caller closes rows.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}
