package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// migrations are applied in order; migration i (from 0) brings the schema
// to version i+1. Never edit or reorder one that has shipped: add a new
// one, since deployed databases record only the version they reached.
//
// {key} is the type of indexed text columns: on PostgreSQL it uses the "C"
// collation so that "sorted by id" means byte order, as it does on SQLite,
// whatever the database's locale; that also lets ORDER BY use the index.
// Documents are TEXT rather than JSONB so that they come back byte for
// byte as written, on both dialects.
var migrations = [][]string{
	{ // 1: the initial schema.
		`CREATE TABLE wf_meta (
			name  {key} PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		`CREATE TABLE wf_departments (
			id         {key} PRIMARY KEY,
			updated_us BIGINT NOT NULL,
			doc        TEXT NOT NULL
		)`,
		// version is the catalog version a change produced: global, so
		// that one number orders every change of every department.
		`CREATE TABLE wf_catalog_changes (
			version    BIGINT PRIMARY KEY,
			department {key} NOT NULL,
			dataset    {key} NOT NULL,
			time_us    BIGINT NOT NULL,
			doc        TEXT NOT NULL
		)`,
		`CREATE INDEX wf_catalog_changes_department ON wf_catalog_changes(department, version)`,
		`CREATE TABLE wf_purposes (
			code {key} PRIMARY KEY,
			doc  TEXT NOT NULL
		)`,
		`CREATE TABLE wf_users (
			name {key} PRIMARY KEY,
			doc  TEXT NOT NULL
		)`,
		// The token's hash is a column of its own: the JSON of a Token
		// leaves it out so that it never travels with the record.
		`CREATE TABLE wf_tokens (
			id         {key} PRIMARY KEY,
			user_name  {key} NOT NULL,
			sha256     {key} NOT NULL UNIQUE,
			created_us BIGINT NOT NULL,
			revoked_us BIGINT,
			doc        TEXT NOT NULL
		)`,
		`CREATE INDEX wf_tokens_user ON wf_tokens(user_name, created_us)`,
		`CREATE TABLE wf_grants (
			id          {key} PRIMARY KEY,
			grantee     {key} NOT NULL,
			dataset     {key} NOT NULL,
			purpose     {key} NOT NULL,
			application {key} NOT NULL,
			doc         TEXT NOT NULL
		)`,
		`CREATE INDEX wf_grants_grantee ON wf_grants(grantee)`,
		`CREATE INDEX wf_grants_application ON wf_grants(application)`,
		`CREATE TABLE wf_applications (
			id           {key} PRIMARY KEY,
			applicant    {key} NOT NULL,
			department   {key} NOT NULL,
			provider     {key} NOT NULL,
			status       {key} NOT NULL,
			submitted_us BIGINT NOT NULL,
			doc          TEXT NOT NULL
		)`,
		`CREATE INDEX wf_applications_submitted ON wf_applications(submitted_us, id)`,
		`CREATE INDEX wf_applications_status ON wf_applications(status, submitted_us)`,
		`CREATE INDEX wf_applications_applicant ON wf_applications(applicant, submitted_us)`,
		`CREATE INDEX wf_applications_provider ON wf_applications(provider, status)`,
		`CREATE INDEX wf_applications_department ON wf_applications(department, submitted_us)`,
		`CREATE TABLE wf_reports (
			id         {key} PRIMARY KEY,
			reporter   {key} NOT NULL,
			department {key} NOT NULL,
			provider   {key} NOT NULL,
			dataset    {key} NOT NULL,
			status     {key} NOT NULL,
			created_us BIGINT NOT NULL,
			doc        TEXT NOT NULL
		)`,
		`CREATE INDEX wf_reports_created ON wf_reports(created_us, id)`,
		`CREATE INDEX wf_reports_reporter ON wf_reports(reporter, created_us)`,
		`CREATE INDEX wf_reports_provider ON wf_reports(provider, status)`,
		`CREATE INDEX wf_reports_dataset ON wf_reports(dataset)`,
	},
}

// schemaVersion is the schema version this code writes.
func schemaVersion() int64 { return int64(len(migrations)) }

func (s *Store) ddl(stmt string) string {
	key := "TEXT"
	if s.dialect == Postgres {
		key = `TEXT COLLATE "C"`
	}
	return strings.ReplaceAll(stmt, "{key}", key)
}

// migrate brings the schema up to schemaVersion in one transaction, so a
// failed migration leaves the database as it was. Brokers starting
// together do not race: SQLite's BEGIN IMMEDIATE and, on PostgreSQL, an
// advisory lock per schema make them take turns, and the later ones find
// nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	return s.txAt(ctx, s.where+" cannot be set up", func(tx *sql.Tx) error {
		if s.dialect == Postgres {
			// Keyed by schema: brokers (and tests) using different
			// schemas of one database need not wait for each other.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('sluice-store-migrations:' || coalesce(current_schema(), '')))`); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS store_migrations (
			version    BIGINT PRIMARY KEY,
			applied_at TEXT NOT NULL
		)`); err != nil {
			return err
		}
		var current int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM store_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > schemaVersion() {
			return sluice.Errorf(sluice.EInvalid,
				"the broker store %s is at schema version %d, but this broker knows only up to version %d; upgrade the broker (a newer broker has used this store)",
				s.where, current, schemaVersion())
		}
		for v := current + 1; v <= schemaVersion(); v++ {
			for _, stmt := range migrations[v-1] {
				if _, err := tx.ExecContext(ctx, s.ddl(stmt)); err != nil {
					return fmt.Errorf("migration %d failed: %w", v, err)
				}
			}
			if _, err := s.exec(ctx, tx, `INSERT INTO store_migrations(version, applied_at) VALUES (?, ?)`,
				v, s.now().UTC().Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
		return nil
	})
}
