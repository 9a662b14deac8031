package budget

import (
	"context"
	"testing"

	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// TestOpenAdoptsStoreFromBeforeSchemaMigrations: a database whose budget
// tables were created as before schema_migrations (the same idempotent
// DDL, run on every open, with no record of it) opens with its limits and
// ledger intact, is recorded at version 1, and keeps spending.
func TestOpenAdoptsStoreFromBeforeSchemaMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		target := b.target(t)
		d := sqlstore.For(target)
		db := dbtest.OpenStore(t, target)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Migrations[0](ctx, tx, d); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`INSERT INTO dp_budgets (principal, purpose, grant_id, epsilon_micro, set_us) VALUES ('alice', 'subsidy-review', 'g-1', 2000000, 1)`,
			`INSERT INTO dp_spend (query_id, principal, purpose, epsilon_micro, time_us) VALUES ('q-1', 'alice', 'subsidy-review', 500000, 2)`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}

		s, err := Open(ctx, target)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if limit, spent, err := s.Remaining(ctx, "alice", "subsidy-review"); err != nil || limit != 2 || spent != 0.5 {
			t.Fatalf("Remaining after adoption = %v, %v, %v; want 2, 0.5", limit, spent, err)
		}
		var v int64
		if err := db.QueryRow(`SELECT max(version) FROM schema_migrations WHERE store = 'budget'`).Scan(&v); err != nil || v != 1 {
			t.Fatalf("schema_migrations records budget version %d, %v; want 1", v, err)
		}
		if _, err := s.Reserve(ctx, "alice", "subsidy-review", 0.25, "q-2"); err != nil {
			t.Fatal(err)
		}
		ledger, err := s.Ledger(ctx, "alice", "subsidy-review")
		if err != nil || len(ledger) != 2 || ledger[0].QueryID != "q-1" || ledger[1].QueryID != "q-2" {
			t.Fatalf("ledger %+v, %v", ledger, err)
		}
	})
}
