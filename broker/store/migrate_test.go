package store

import (
	"encoding/json"
	"fmt"
	"testing"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// oldStore writes a database as the workflow store did before
// schema_migrations: its own table store_migrations (version, applied_at)
// beside migration 1 (which, having shipped, is unchanged), at version
// versions, and one purpose. It returns the purpose.
func oldStore(t *testing.T, target string, versions int) sluice.Purpose {
	t.Helper()
	db, d := dbtest.OpenStore(t, target), sqlstore.For(target)
	tx, err := db.BeginTx(ctx, nil)
	must(t, err)
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS store_migrations (
			version    BIGINT PRIMARY KEY,
			applied_at TEXT NOT NULL
		)`)
	must(t, err)
	must(t, migrations[0](ctx, tx, d))
	for v := 1; v <= versions; v++ {
		_, err = tx.ExecContext(ctx, d.Rebind(`INSERT INTO store_migrations(version, applied_at) VALUES (?, ?)`), v, fmt.Sprintf("2025-0%d-02T03:04:05.123456789Z", v))
		must(t, err)
	}
	p := sluice.Purpose{Code: "subsidy-review", Name: "低保复核", Description: "annual review", LegalDuty: "《社会救助暂行办法》"}
	doc, err := json.Marshal(p)
	must(t, err)
	_, err = tx.ExecContext(ctx, d.Rebind(`INSERT INTO wf_purposes(code, doc) VALUES (?, ?)`), p.Code, string(doc))
	must(t, err)
	must(t, tx.Commit())
	return p
}

// TestOpenAdoptsStoreMigrations: a database whose versions the store
// recorded in store_migrations opens with its rows intact; the versions
// move to schema_migrations with their times, and store_migrations goes.
func TestOpenAdoptsStoreMigrations(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		p := oldStore(t, target, 1)
		s := open(t, target)
		got, err := s.Purposes(ctx)
		must(t, err)
		wantEqual(t, "purposes", got, []sluice.Purpose{p})
		if migs := migrationsOf(t, s); len(migs) != 1 || migs[0] != "1@2025-01-02T03:04:05.123456789Z" {
			t.Fatalf("migrations after adoption %v", migs)
		}
		if ok, err := s.d.TableExists(ctx, s.db, "store_migrations"); err != nil || ok {
			t.Fatalf("store_migrations still there: %v %v", ok, err)
		}
		// The store works as a new one does, and opens again.
		must(t, s.PutGrant(ctx, grant("g-1")))
		must(t, s.Close())
		s = open(t, target)
		if gs, err := s.Grants(ctx); err != nil || len(gs) != 1 {
			t.Fatalf("grants after reopening: %v %v", gs, err)
		}
	})
}

// TestOpenRefusesNewerStoreMigrations: store_migrations at a version this
// broker does not know is refused as schema_migrations would be, and the
// database is left as it was.
func TestOpenRefusesNewerStoreMigrations(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		oldStore(t, target, 2)
		_, err := Open(ctx, target)
		wantCode(t, err, sluice.EInvalid, fmt.Sprintf("is at schema version 2, but this broker knows only up to version %d", schemaVersion()))
		db, d := dbtest.OpenStore(t, target), sqlstore.For(target)
		var n int
		must(t, db.QueryRowContext(ctx, `SELECT count(*) FROM store_migrations`).Scan(&n))
		if n != 2 {
			t.Fatalf("store_migrations has %d rows after the refusal", n)
		}
		if ok, err := d.TableExists(ctx, db, "schema_migrations"); err != nil || ok {
			t.Fatalf("schema_migrations created by a refused open: %v %v", ok, err)
		}
	})
}
