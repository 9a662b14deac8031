package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// The audit log's tables, as migrations of the store "audit" in
// schema_migrations (see package sqlstore). Migration i brings them to
// schema version i: version 2 added checkpoints, archives and policy
// revisions; version 3 the dataset index (audit_entry_datasets), filled
// from the entries' bodies when an older store is upgraded.
//
// Before schema_migrations the log recorded its version in audit_meta
// (schema_version), creating every table with CREATE … IF NOT EXISTS on
// each open. Such a store is adopted at the version it records (Legacy
// below); one that records none runs every migration, which are therefore
// idempotent. A sluice from before schema_migrations still reads
// schema_version and refuses a version it does not know, so migration 3
// keeps it: a later migration that such a sluice must not write through
// sets it to its own version.
//
// The tables are prefixed audit_ because the audit log shares the
// broker's store with the catalog, workflow and budget tables. {int} and
// {blob} are filled in by the dialect. The chain's own tables (entries,
// head, checkpoints) are auditchain's layout, which the agents' logs keep
// too (see crypto/auditchain/stored.go).
var migrations = []sqlstore.Migration{
	sqlstore.Statements( // 1
		`CREATE TABLE IF NOT EXISTS audit_meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		auditchain.EntriesTable,
		`CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries(time_us)`,
		`CREATE INDEX IF NOT EXISTS audit_entries_principal ON audit_entries(principal)`,
		`CREATE INDEX IF NOT EXISTS audit_entries_purpose ON audit_entries(purpose)`,
		`CREATE INDEX IF NOT EXISTS audit_entries_query_id ON audit_entries(query_id)`,
		auditchain.HeadTable,
	),
	sqlstore.Statements( // 2
		// Signed checkpoints of the head. time is the exact string that
		// was signed.
		auditchain.CheckpointsTable,
		// Archive files the entries before the store's first entry moved
		// to.
		`CREATE TABLE IF NOT EXISTS audit_archives (
			first_seq  {int} PRIMARY KEY,
			last_seq   {int} NOT NULL,
			file       TEXT NOT NULL,
			prev_hash  TEXT NOT NULL,
			last_hash  TEXT NOT NULL,
			sha256     TEXT NOT NULL,
			entries    {int} NOT NULL,
			created_us {int} NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS audit_policy_revisions (
			rev           TEXT PRIMARY KEY,
			first_seen_us {int} NOT NULL,
			modules       TEXT NOT NULL,
			data          {blob}
		)`,
	),
	// 3: the datasets each entry names (Entry.Datasets, lower-cased, each
	// once), written in the append's transaction, so usage statistics are
	// an indexed join rather than a scan of every body. It is a second
	// copy of hashed content: Verify checks it against the bodies, so
	// editing it to hide a use is detected like editing a search column.
	func(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect) error {
		if err := sqlstore.Statements(
			`CREATE TABLE IF NOT EXISTS audit_entry_datasets (
				seq     {int} NOT NULL,
				dataset TEXT NOT NULL,
				PRIMARY KEY (seq, dataset)
			)`,
			`CREATE INDEX IF NOT EXISTS audit_entry_datasets_dataset ON audit_entry_datasets(dataset, seq)`,
		)(ctx, tx, d); err != nil {
			return err
		}
		if err := backfillDatasets(ctx, tx, d); err != nil {
			return fmt.Errorf("the dataset index cannot be built: %w", err)
		}
		return setLegacyVersion(ctx, tx, d, "3")
	},
}

// schemaVersion is the version the migrations bring the log to, as
// audit_meta's schema_version records it; knownVersions are those a store
// from before schema_migrations may record. A sluice that knows an older
// version refuses a newer store: version 1 because early entries may have
// moved to archives, version 2 because its appends would not maintain the
// index, and Verify would then report the index as edited.
const schemaVersion = "3"

var knownVersions = []string{"1", "2", schemaVersion}

// setLegacyVersion records v as audit_meta's schema_version.
func setLegacyVersion(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect, v string) error {
	_, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO audit_meta(key, value) VALUES ('schema_version', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`), v)
	return err
}

// schema is the log's entry in schema_migrations. name is the store as
// messages show it.
func schema(name string) sqlstore.Schema {
	return sqlstore.Schema{
		Store:      "audit",
		Migrations: migrations,
		// A store from before schema_migrations is at the version its
		// audit_meta records; one without it is new, or older than the
		// record, and runs every migration.
		Legacy: func(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect) ([]sqlstore.Applied, error) {
			if ok, err := d.TableExists(ctx, tx, "audit_meta"); err != nil || !ok {
				return nil, err
			}
			var v string
			switch err := tx.QueryRowContext(ctx, `SELECT value FROM audit_meta WHERE key = 'schema_version'`).Scan(&v); {
			case errors.Is(err, sql.ErrNoRows):
				return nil, nil
			case err != nil:
				return nil, err
			case !slices.Contains(knownVersions, v):
				return nil, sluice.Errorf(sluice.EUnavailable, "audit store %s has schema version %s; this sluice understands version %s", name, v, schemaVersion)
			}
			n, _ := strconv.Atoi(v)
			out := make([]sqlstore.Applied, n)
			for i := range out {
				out[i].Version = int64(i + 1)
			}
			return out, nil
		},
	}
}

// The guards (triggers) make the entries and checkpoints tables
// (auditchain.Guarded) append-only for anyone using the store casually.
// They are not a security boundary (whoever can write the store can drop
// or disable them); the hash chain and signed checkpoints are what detect
// that. SQLite's are auditchain.SQLiteGuard, which the agents' logs use
// too.

// pgGuardFunction raises for any row or statement it is called for; the
// guards below call it BEFORE UPDATE and DELETE of each row and BEFORE
// TRUNCATE (which skips row triggers). The DO blocks make the DDL
// idempotent on every PostgreSQL version that has EXECUTE FUNCTION (11+).
const pgGuardFunction = `DO $do$
BEGIN
	IF to_regprocedure('audit_append_only()') IS NULL THEN
		CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
		BEGIN
			RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
		END
		$f$;
	END IF;
END
$do$`

func pgGuard(table, op string) string {
	name := table + "_no_" + strings.ToLower(op)
	level := "ROW"
	if op == "TRUNCATE" {
		level = "STATEMENT"
	}
	return fmt.Sprintf(`DO $do$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname = '%s') THEN
		CREATE TRIGGER %s BEFORE %s ON %s FOR EACH %s EXECUTE FUNCTION audit_append_only();
	END IF;
END
$do$`, table, name, name, op, table, level)
}

// guards is the DDL of the append-only guards, which Open runs every time
// (each statement is idempotent), so a guard dropped meanwhile is back
// once a broker has opened the store again.
func guards(d sqlstore.Dialect) []string {
	var out []string
	if d.IsPostgres() {
		out = append(out, pgGuardFunction)
	}
	for _, table := range auditchain.Guarded {
		ops := []string{"UPDATE", "DELETE"}
		if d.IsPostgres() {
			ops = append(ops, "TRUNCATE")
		}
		for _, op := range ops {
			if d.IsPostgres() {
				out = append(out, pgGuard(table, op))
			} else {
				out = append(out, auditchain.SQLiteGuard(table, op))
			}
		}
	}
	return out
}

// dropDeleteGuard and createDeleteGuard are run by Archive inside the
// transaction that moves entries out, so the guard is never absent for
// anyone else (PostgreSQL DDL is transactional too).
func dropDeleteGuard(d sqlstore.Dialect) string {
	if d.IsPostgres() {
		return `DROP TRIGGER IF EXISTS audit_entries_no_delete ON audit_entries`
	}
	return `DROP TRIGGER IF EXISTS audit_entries_no_delete`
}

func createDeleteGuard(d sqlstore.Dialect) string {
	if d.IsPostgres() {
		return pgGuard("audit_entries", "DELETE")
	}
	return auditchain.SQLiteGuard("audit_entries", "DELETE")
}

// insertEntriesChunk bounds the entries of one multi-row insert (11 bind
// parameters each).
const insertEntriesChunk = 128

// insertEntries writes a batch's entries (vals holds EntryColumns of each
// in turn) in as few statements as the chunk size allows: on PostgreSQL
// every statement is a round trip inside the append's transaction, which
// other appends wait for.
func insertEntries(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect, vals []any) error {
	const cols = 11
	for len(vals) > 0 {
		n := min(len(vals)/cols, insertEntriesChunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_entries (` + auditchain.EntryColumns + `) VALUES `)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		}
		if _, err := tx.ExecContext(ctx, d.Rebind(b.String()), vals[:n*cols]...); err != nil {
			return err
		}
		vals = vals[n*cols:]
	}
	return nil
}

type datasetRow struct {
	seq     int64
	dataset string
}

// insertDatasetsChunk bounds the rows of one multi-row insert, well under
// SQLite's and PostgreSQL's limits on bind parameters.
const insertDatasetsChunk = 256

// insertDatasets writes index rows in as few statements as the chunk size
// allows: on PostgreSQL every statement is a round trip inside the
// append's transaction.
func insertDatasets(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect, rows []datasetRow) error {
	for len(rows) > 0 {
		n := min(len(rows), insertDatasetsChunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_entry_datasets (seq, dataset) VALUES `)
		args := make([]any, 0, 2*n)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?)")
			args = append(args, r.seq, r.dataset)
		}
		if _, err := tx.ExecContext(ctx, d.Rebind(d.InsertIgnore(b.String())), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// backfillDatasets fills the dataset index from the bodies of the entries
// in the store, when a store from before the index is opened. It reads in
// pages (a PostgreSQL connection cannot write while a result is open) so
// memory stays bounded whatever the size of the log. A body that does not
// decode is skipped: Verify reports that entry anyway.
func backfillDatasets(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect) error {
	const page = 1000
	after := int64(0)
	for {
		rows, err := tx.QueryContext(ctx, d.Rebind(`SELECT seq, body FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?`), after, page)
		if err != nil {
			return err
		}
		var batch []datasetRow
		n := 0
		for rows.Next() {
			var seq int64
			var body string
			if err := rows.Scan(&seq, &body); err != nil {
				rows.Close()
				return err
			}
			n++
			after = seq
			e, err := auditchain.Decode([]byte(body))
			if err != nil {
				continue
			}
			for _, ds := range auditchain.DatasetKeys(e.Datasets) {
				batch = append(batch, datasetRow{seq, ds})
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		if err := insertDatasets(ctx, tx, d, batch); err != nil {
			return err
		}
		if n < page {
			return nil
		}
	}
}

// datasetsColumn is the select expression Verify reads beside each entry:
// the JSON array of its index rows (in no particular order), which
// auditchain.ScanIndexedRow reads.
func datasetsColumn(d sqlstore.Dialect) string {
	if d.IsPostgres() {
		return `COALESCE((SELECT json_agg(x.dataset)::text FROM audit_entry_datasets x WHERE x.seq = audit_entries.seq), '[]')`
	}
	return auditchain.SQLiteDatasetsColumn
}
