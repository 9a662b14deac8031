package store

import (
	"context"
	"database/sql"
	"errors"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

// migrations are the workflow store's schema, in order (see
// sqlstore.Schema): migration i (from 0) brings it to version i+1. Never
// edit or reorder one that has shipped: add a new one, since deployed
// databases record only the versions they applied.
//
// {key} is the type of indexed text columns (sqlstore's DDL templates):
// on PostgreSQL it uses the "C" collation so that "sorted by id" means
// byte order, as it does on SQLite. Documents are TEXT rather than JSONB
// so that they come back byte for byte as written, on both dialects.
var migrations = []sqlstore.Migration{
	sqlstore.Statements( // 1: the initial schema.
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
	),
}

// schemaVersion is the schema version this code writes.
func schemaVersion() int64 { return int64(len(migrations)) }

// schema is the workflow store's entry in schema_migrations.
func schema() sqlstore.Schema {
	return sqlstore.Schema{Store: "workflow", Migrations: migrations, Legacy: adoptStoreMigrations}
}

// adoptStoreMigrations moves the record of a database from before
// schema_migrations into it: this store's versions were then kept in a
// table store_migrations of its own (version, applied_at), whose rows move
// unchanged. The table is dropped, so that a broker from before
// schema_migrations refuses the database (its first migration finds the
// tables there) rather than running on a layout it may not know.
func adoptStoreMigrations(ctx context.Context, tx *sql.Tx, d sqlstore.Dialect) ([]sqlstore.Applied, error) {
	if ok, err := d.TableExists(ctx, tx, "store_migrations"); err != nil || !ok {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT version, applied_at FROM store_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	var out []sqlstore.Applied
	for rows.Next() {
		var a sqlstore.Applied
		if err := rows.Scan(&a.Version, &a.At); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE store_migrations`)
	return out, err
}

// migrate brings the schema up to schemaVersion in one transaction, so a
// failed migration leaves the database as it was. Brokers starting
// together do not race: SQLite's BEGIN IMMEDIATE and, on PostgreSQL, the
// migrations' advisory lock per schema make them take turns, and the later
// ones find nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	return s.txAt(ctx, s.where+" cannot be set up", func(tx *sql.Tx) error {
		err := schema().Migrate(ctx, tx, s.d)
		if tooNew := (*sqlstore.TooNewError)(nil); errors.As(err, &tooNew) {
			return sluice.Errorf(sluice.EInvalid,
				"the broker store %s is at schema version %d, but this broker knows only up to version %d; upgrade the broker (a newer broker has used this store)",
				s.where, tooNew.Version, tooNew.Known)
		}
		return err
	})
}
