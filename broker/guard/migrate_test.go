package guard

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// TestOpenAdoptsStoreFromBeforeSchemaMigrations: a database whose guard
// table was created as before schema_migrations (the same idempotent DDL,
// run on every open, with no record of it) opens with its releases
// remembered, is recorded at version 1, and keeps refusing near releases.
func TestOpenAdoptsStoreFromBeforeSchemaMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := newClock()
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
		base := units(21, 300)
		if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO guard_releases (department, dataset, query_id, principal, k, units, sketch, released_us, expires_us)
			VALUES (?, ?, 'q-1', 'alice', 10, ?, ?, ?, ?)`), insured.Department, insured.Dataset, len(base), sketchOf(10, base),
			c.now().UnixMicro(), c.now().Add(DefaultRetention).UnixMicro()); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}

		s := open(t, target, WithClock(c.now))
		if st, err := s.Stats(ctx, insured); err != nil || st.Releases != 1 {
			t.Fatalf("stats after adoption %+v, %v", st, err)
		}
		var v int64
		if err := db.QueryRow(`SELECT max(version) FROM schema_migrations WHERE store = 'guard'`).Scan(&v); err != nil || v != 1 {
			t.Fatalf("schema_migrations records guard version %d, %v; want 1", v, err)
		}
		c.advance(time.Hour)
		wantDenied(t, admitErr(s, "q-2", set(insured, 10, base[2:], "")), "q-1 at 2026-03-01T09:30:00Z")
		release(t, s, "q-3", set(insured, 10, base, ""))
	})
}
