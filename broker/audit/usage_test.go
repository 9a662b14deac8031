package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

var (
	usageDay1 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	usageDay2 = usageDay1.AddDate(0, 0, 1)
	cst       = time.FixedZone("CST", 8*3600)
)

// usageFixture appends, in time order, queries of two departments on two
// UTC days with their results, plus entries Usage must not count.
func usageFixture(t *testing.T, l *Log) {
	t.Helper()
	at := func(day time.Time, h, m int) time.Time {
		return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	query := func(id string, tm time.Time, dept, purpose, decision string, ds ...string) *Entry {
		return &Entry{Time: tm, Kind: KindQuery, QueryID: id, Principal: "p-" + dept, Department: dept, Purpose: purpose, Datasets: ds, Decision: decision}
	}
	result := func(id string, tm time.Time, rows int64) *Entry {
		return &Entry{Time: tm, Kind: KindResult, QueryID: id, Principal: "p", Decision: DecisionAllow, Rows: rows}
	}
	for _, e := range []*Entry{
		{Time: at(usageDay1, 9, 0), Kind: KindMetadata, Principal: "p-civil", Department: "civil", Datasets: []string{"health.insured"}, Decision: DecisionAllow},
		query("q1", at(usageDay1, 10, 0), "civil", "subsidy-review", DecisionAllow, "health.insured"),
		result("q1", at(usageDay1, 10, 1), 25),
		query("q2", at(usageDay1, 11, 0), "civil", "subsidy-review", DecisionAllow, "health.insured", "civil.residents"),
		result("q2", at(usageDay1, 11, 1), 7),
		// An agent's fragment record of q2: not a release to the analyst.
		{Time: at(usageDay1, 11, 2), Kind: KindFragment, QueryID: "q2", Principal: "p", Datasets: []string{"health.insured"}, Decision: DecisionAllow, Rows: 99},
		// 23:30 UTC is 07:30 the next day in CST: it counts on day 1.
		query("q3", at(usageDay1, 23, 30).In(cst), "civil", "public-health-planning", DecisionDeny, "Health.Insured"),
		// A second result of q1, after midnight: it counts with q1.
		result("q1", at(usageDay2, 0, 10), 15),
		query("q4", at(usageDay2, 9, 0), "market", "enterprise-credit", DecisionAllow, "police.household"),
		result("q4", at(usageDay2, 9, 1), 12),
		query("q5", at(usageDay2, 9, 30), "market", "enterprise-credit", DecisionDeny, "police.household"),
		query("q6", at(usageDay2, 10, 0), "civil", "", DecisionAllow, "health.insured", "HEALTH.INSURED"),
		result("q6", at(usageDay2, 10, 1), 3),
		result("q-unknown", at(usageDay2, 11, 0), 1000),
	} {
		if err := l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	usageD1Residents = UsageRow{Day: "2025-03-01", Dataset: "civil.residents", Department: "civil", Calls: 1, Rows: 7, Purposes: []string{"subsidy-review"}}
	usageD1Health    = UsageRow{Day: "2025-03-01", Dataset: "health.insured", Department: "civil", Calls: 3, Denied: 1, Rows: 47, Purposes: []string{"public-health-planning", "subsidy-review"}}
	usageD2Health    = UsageRow{Day: "2025-03-02", Dataset: "health.insured", Department: "civil", Calls: 1, Rows: 3, Purposes: []string{}}
	usageD2Police    = UsageRow{Day: "2025-03-02", Dataset: "police.household", Department: "market", Calls: 2, Denied: 1, Rows: 12, Purposes: []string{"enterprise-credit"}}
	usageAll         = []UsageRow{usageD1Residents, usageD1Health, usageD2Health, usageD2Police}
)

func TestUsage(t *testing.T) { eachBackend(t, testUsage) }

func testUsage(t *testing.T, b backend) {
	ctx := context.Background()
	l, _ := b.newLog(t)
	usageFixture(t, l)
	tests := []struct {
		name string
		f    UsageFilter
		want []UsageRow
	}{
		{"everything", UsageFilter{}, usageAll},
		{"dataset, case-insensitive", UsageFilter{Dataset: "HEALTH.insured"}, []UsageRow{usageD1Health, usageD2Health}},
		{"department, case-insensitive", UsageFilter{Department: "MARKET"}, []UsageRow{usageD2Police}},
		{"purpose", UsageFilter{Purpose: "subsidy-review"}, []UsageRow{usageD1Residents,
			{Day: "2025-03-01", Dataset: "health.insured", Department: "civil", Calls: 2, Rows: 47, Purposes: []string{"subsidy-review"}}}},
		{"since, inclusive", UsageFilter{Since: usageDay2.Add(9 * time.Hour)}, []UsageRow{usageD2Health, usageD2Police}},
		{"until, exclusive", UsageFilter{Until: usageDay1.Add(23*time.Hour + 30*time.Minute)}, []UsageRow{usageD1Residents,
			{Day: "2025-03-01", Dataset: "health.insured", Department: "civil", Calls: 2, Rows: 47, Purposes: []string{"subsidy-review"}}}},
		{"window in another zone", UsageFilter{Since: usageDay1.Add(23 * time.Hour).In(cst), Until: usageDay2.Add(9*time.Hour + 30*time.Minute)}, []UsageRow{
			{Day: "2025-03-01", Dataset: "health.insured", Department: "civil", Calls: 1, Denied: 1, Purposes: []string{"public-health-planning"}},
			{Day: "2025-03-02", Dataset: "police.household", Department: "market", Calls: 1, Rows: 12, Purposes: []string{"enterprise-credit"}}}},
		{"all filters", UsageFilter{Dataset: "police.household", Department: "market", Purpose: "enterprise-credit", Since: usageDay2, Until: usageDay2.AddDate(0, 0, 1)}, []UsageRow{usageD2Police}},
		{"no match", UsageFilter{Dataset: "nope.nothing"}, []UsageRow{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Usage(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Usage:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	t.Run("JSON", func(t *testing.T) {
		got, err := l.Usage(ctx, UsageFilter{Dataset: "health.insured", Since: usageDay2})
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(got)
		const want = `[{"day":"2025-03-02","dataset":"health.insured","department":"civil","calls":1,"denied":0,"rows":3,"purposes":[]}]`
		if string(j) != want {
			t.Fatalf("JSON %s; want %s", j, want)
		}
		j, _ = json.Marshal(must(l.Usage(ctx, UsageFilter{Dataset: "nope.nothing"})))
		if string(j) != "[]" {
			t.Fatalf("no rows as JSON: %s; want []", j)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := l.Usage(ctx, UsageFilter{Since: usageDay2, Until: usageDay1})
		wantCode(t, err, sluice.EInvalid)
		l2, _ := b.newLog(t)
		l2.Close()
		_, err = l2.Usage(ctx, UsageFilter{})
		wantCode(t, err, sluice.EUnavailable)
	})

	// Archived entries are no longer in the store, nor counted.
	t.Run("after archiving day 1", func(t *testing.T) {
		dir := t.TempDir()
		info, err := l.Archive(ctx, usageDay2, dir)
		if err != nil || info.LastSeq != 7 {
			t.Fatalf("Archive = %+v, %v; want entries 1 to 7", info, err)
		}
		got, err := l.Usage(ctx, UsageFilter{})
		if err != nil {
			t.Fatal(err)
		}
		// q1's second result stays in the store, but q1 does not.
		if want := []UsageRow{usageD2Health, usageD2Police}; !reflect.DeepEqual(got, want) {
			t.Fatalf("Usage after archiving:\n got %+v\nwant %+v", got, want)
		}
		if rep, err := l.Verify(ctx, WithArchives(info.File)); err != nil || !rep.OK {
			t.Fatalf("Verify after archiving = %+v, %v", rep, err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestUpgradeBuildsDatasetIndex: a store written before the dataset index
// (schema version 2, recorded in audit_meta as before schema_migrations)
// gets it, filled from the bodies, when opened; it verifies before and
// after, and Usage sees the old entries.
func TestUpgradeBuildsDatasetIndex(t *testing.T) { eachBackend(t, testUpgradeBuildsDatasetIndex) }

func testUpgradeBuildsDatasetIndex(t *testing.T, b backend) {
	ctx := context.Background()
	l, path := b.newLog(t)
	usageFixture(t, l)
	appendN(t, l, 1200) // more than one backfill page
	l.Close()
	db := rawDB(t, path)
	exec(t, db, `DROP TABLE audit_entry_datasets`, `UPDATE audit_meta SET value = '2' WHERE key = 'schema_version'`, `DROP TABLE schema_migrations`)
	// An old store verifies without the index (read-only, not upgraded).
	if rep, err := VerifyFile(ctx, path); err != nil || !rep.OK {
		t.Fatalf("VerifyFile of a version 2 store = %+v, %v", rep, err)
	}
	if ok, err := b.d.TableExists(ctx, db, "audit_entry_datasets"); err != nil || ok {
		t.Fatalf("VerifyFile created the index: %v %v", ok, err)
	}

	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	var v string
	if err := db.QueryRow(`SELECT value FROM audit_meta WHERE key = 'schema_version'`).Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("schema version after upgrade %q, %v; want %s", v, err, schemaVersion)
	}
	if got := auditVersions(t, db); got != "1 2 3" {
		t.Fatalf("schema_migrations after upgrade %v; want 1, 2, 3", got)
	}
	got, err := l2.Usage(ctx, UsageFilter{Until: usageDay2.AddDate(0, 0, 1)})
	if err != nil || !reflect.DeepEqual(got, usageAll) {
		t.Fatalf("Usage after upgrade:\n got %+v, %v\nwant %+v", got, err, usageAll)
	}
	var n int
	// The fixture's entries name 9 datasets (q2 two, q6 one twice); of
	// the samples, 3 in 4 name one.
	if err := db.QueryRow(`SELECT count(*) FROM audit_entry_datasets`).Scan(&n); err != nil || n != 9+900 {
		t.Fatalf("%d index rows, %v; want %d", n, err, 9+900)
	}
	mustVerify(t, l2, 14+1200)
}

// TestNewerSchemaRefused: a store written by a newer sluice is not
// touched.
func TestNewerSchemaRefused(t *testing.T) { eachBackend(t, testNewerSchemaRefused) }

func testNewerSchemaRefused(t *testing.T, b backend) {
	for name, newer := range map[string][]string{
		"schema_migrations": {`INSERT INTO schema_migrations (store, version, applied_at) VALUES ('audit', 4, '2030-01-01T00:00:00Z')`},
		// A store from before schema_migrations, at a version this sluice
		// does not know.
		"audit_meta": {`DROP TABLE schema_migrations`, `UPDATE audit_meta SET value = '9' WHERE key = 'schema_version'`},
	} {
		t.Run(name, func(t *testing.T) {
			l, path := b.newLog(t)
			l.Close()
			db := rawDB(t, path)
			exec(t, db, newer...)
			_, err := Open(context.Background(), path)
			wantCode(t, err, sluice.EUnavailable)
			if !strings.Contains(err.Error(), "this sluice understands version 3") {
				t.Fatalf("Open: %v", err)
			}
			// Not touched: no version recorded, no index rows written.
			if ok, err := b.d.TableExists(context.Background(), db, "schema_migrations"); err != nil || ok != (name == "schema_migrations") {
				t.Fatalf("schema_migrations exists: %v %v", ok, err)
			}
		})
	}
}

// auditVersions are the audit log's versions in schema_migrations, as
// "1 2 3".
func auditVersions(t *testing.T, db *rawStore) string {
	t.Helper()
	rec, err := sqlstore.Recorded(context.Background(), db, db.d, "audit")
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, a := range rec {
		vs = append(vs, fmt.Sprint(a.Version))
	}
	return strings.Join(vs, " ")
}
