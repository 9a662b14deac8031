package audit

import (
	"context"
	"testing"
)

// TestOpenAdoptsStoreFromBeforeSchemaMigrations: a store the log wrote
// before schema_migrations (its tables created with CREATE … IF NOT EXISTS
// on every open, its version in audit_meta) opens with its entries intact,
// is recorded at its version, gets the migrations after it, verifies, and
// takes new entries. The old layouts are made from a log with entries by
// removing what the old code did not have: schema_migrations, and for
// older versions the tables they lacked.
func TestOpenAdoptsStoreFromBeforeSchemaMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range []struct {
			name   string
			layout []string // turns a new store into the old one
		}{
			{"version 3", []string{`DROP TABLE schema_migrations`}},
			{"version 1", []string{`DROP TABLE schema_migrations`, `DROP TABLE audit_entry_datasets`, `DROP TABLE audit_checkpoints`,
				`DROP TABLE audit_archives`, `DROP TABLE audit_policy_revisions`, `UPDATE audit_meta SET value = '1' WHERE key = 'schema_version'`}},
			{"no version recorded", []string{`DROP TABLE schema_migrations`, `DELETE FROM audit_meta`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				l, path := b.newLog(t)
				written := appendN(t, l, 7)
				l.Close()
				db := rawDB(t, path)
				exec(t, db, tc.layout...)

				l2, err := Open(ctx, path)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer l2.Close()
				got, err := l2.Tail(ctx, 7)
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if got[i].Hash != written[i].Hash || got[i].QueryID != written[i].QueryID {
						t.Fatalf("entry %d after adoption: %+v; want %+v", i+1, got[i], written[i])
					}
				}
				if v := auditVersions(t, db); v != "1 2 3" {
					t.Fatalf("schema_migrations after adoption %v; want 1, 2, 3", v)
				}
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM audit_entry_datasets`).Scan(&n); err != nil || n != 6 {
					t.Fatalf("%d dataset index rows, %v; want 6", n, err)
				}
				appendN(t, l2, 3)
				mustVerify(t, l2, 10)
			})
		}
	})
}
