//go:build duckdb_arrow

package tpch

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/sluice-gov/sluice/test/dbtest"
)

var duckAnswers = sync.OnceValues(func() (map[int][][]any, error) {
	return DuckDBAnswers(context.Background(), 0.01)
})

func answers(t *testing.T) map[int][][]any {
	t.Helper()
	a, err := duckAnswers()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func float(t *testing.T, v any) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(canonical(v), 64)
	if err != nil {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	return f
}

// TestDuckDBReference runs the 22 queries on SF 0.01 in DuckDB: each has
// an answer, and the answers look like TPC-H's.
func TestDuckDBReference(t *testing.T) {
	a := answers(t)
	maxRows := map[int]int{2: 100, 3: 10, 10: 20, 18: 100, 21: 100}
	for n := 1; n <= NumQueries; n++ {
		rows := a[n]
		if len(rows) == 0 {
			t.Errorf("Q%d: no rows", n)
			continue
		}
		for j, v := range rows[0] {
			if v == nil {
				t.Errorf("Q%d: column %d of the first row is NULL", n, j+1)
			}
		}
		if m, ok := maxRows[n]; ok && len(rows) > m {
			t.Errorf("Q%d: %d rows, limit %d", n, len(rows), m)
		}
		t.Logf("Q%d: %d rows, first %v", n, len(rows), rows[0])
	}
	if len(a) != NumQueries {
		t.Fatalf("%d answers", len(a))
	}

	// Q1: the four (returnflag, linestatus) groups, in order; a quarter of
	// the lines each at most… and all lines but the last 90 days' together.
	var groups []string
	var lines float64
	for _, r := range a[1] {
		groups = append(groups, canonical(r[0])+canonical(r[1]))
		lines += float(t, r[9])
		if d := float(t, r[8]); d < 0.04 || d > 0.06 {
			t.Errorf("Q1 %v: avg_disc %v", r[:2], d)
		}
		if q := float(t, r[6]); q < 24 || q > 27 {
			t.Errorf("Q1 %v: avg_qty %v", r[:2], q)
		}
	}
	if !slices.Equal(groups, []string{"AF", "NF", "NO", "RF"}) {
		t.Errorf("Q1 groups %v", groups)
	}
	if lines < 55000 || lines > 60000 {
		t.Errorf("Q1 counts %v lines", lines)
	}
	// Q4 and Q5: one row per priority, per Asian nation.
	if len(a[4]) != 5 || len(a[5]) != 5 {
		t.Errorf("Q4 %d rows, Q5 %d rows; want 5 and 5", len(a[4]), len(a[5]))
	}
	// Q6 against the generator's own lines.
	var want Decimal
	for l := range mustRows(t, 0.01, "lineitem") {
		ship, disc, qty := l[10].(Date), l[6].(Decimal), l[4].(Decimal)
		if ship >= MakeDate(1994, 1, 1) && ship < MakeDate(1995, 1, 1) && disc >= 5 && disc <= 7 && qty < 2400 {
			want += l[5].(Decimal) * disc
		}
	}
	if got := canonical(a[6][0][0]); got != strconv.FormatFloat(float64(want)/10000, 'g', -1, 64) {
		t.Errorf("Q6 revenue %s, want %v", got, float64(want)/10000)
	}
	// Q7: France and Germany both ways, 1995 and 1996.
	if len(a[7]) != 4 {
		t.Errorf("Q7: %d rows, want 4", len(a[7]))
	}
	// Q8: market shares are fractions.
	for _, r := range a[8] {
		if s := float(t, r[1]); s < 0 || s > 1 {
			t.Errorf("Q8 %v", r)
		}
	}
	// Q12: MAIL and SHIP.
	if len(a[12]) != 2 || canonical(a[12][0][0]) != "MAIL" || canonical(a[12][1][0]) != "SHIP" {
		t.Errorf("Q12 %v", a[12])
	}
	// Q13: a third of the customers have no orders; the most common count
	// comes first.
	if r := a[13][0]; canonical(r[0]) != "0" || canonical(r[1]) != "500" {
		t.Errorf("Q13 first row %v, want [0 500]", r)
	}
	// Q14: a percentage near 1/6 (PROMO is one of six type syllables).
	if p := float(t, a[14][0][0]); p < 10 || p > 25 {
		t.Errorf("Q14 promo_revenue %v", p)
	}
	// Q18: every order's quantity is over 300.
	for _, r := range a[18] {
		if float(t, r[5]) <= 300 {
			t.Errorf("Q18 %v", r)
		}
	}
	// Q22: country codes among the seven asked for, in order.
	var codes []string
	for _, r := range a[22] {
		codes = append(codes, canonical(r[0]))
	}
	if !slices.IsSorted(codes) || len(codes) > 7 {
		t.Errorf("Q22 codes %v", codes)
	}
}

// TestDuckDBLoad compares the tables in DuckDB with the generator's.
func TestDuckDBLoad(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := LoadDuckDB(context.Background(), db, 0.01); err != nil {
		t.Fatal(err)
	}
	for _, tab := range Tables {
		want := fingerprint(t, 0.01, tab)
		got := make([]string, len(want))
		ptrs := make([]any, len(got))
		for i := range got {
			ptrs[i] = &got[i]
		}
		if err := db.QueryRow(fingerprintSQL(DuckDB, tab.Department, tab)).Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", tab.Name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", tab.Name, got, want)
		}
	}
}

// TestPostgresMatchesDuckDB loads SF 0.01 into PostgreSQL and checks that
// its answers to the 22 queries are DuckDB's (CI=true only).
func TestPostgresMatchesDuckDB(t *testing.T) {
	serverTest(t, "PostgreSQL")
	ctx := context.Background()
	db := dbtest.Open(t, "pgx", dbtest.PostgresURL(t))
	const schema = testSchema + "_ref"
	drop := func() {
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Error(err)
		}
	}
	drop()
	t.Cleanup(drop)
	if err := Load(ctx, db, PostgreSQL, schema, 0.01); err != nil {
		t.Fatal(err)
	}
	a := answers(t)
	for n := 1; n <= NumQueries; n++ {
		got, err := QueryRows(ctx, db, QueryWith(n, func(table string) string { return schema + "." + table }))
		if err != nil {
			t.Errorf("Q%d: %v", n, err)
			continue
		}
		if err := SameAnswer(a[n], got); err != nil {
			t.Errorf("Q%d: PostgreSQL differs from DuckDB: %v", n, err)
		}
	}
}

func BenchmarkLoadDuckDB(b *testing.B) {
	for b.Loop() {
		db, err := sql.Open("duckdb", "")
		if err != nil {
			b.Fatal(err)
		}
		if err := LoadDuckDB(context.Background(), db, 0.01); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}
