package tpch

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver

	"github.com/sluice-gov/sluice/test/dbtest"
)

// TestWriteSQLite writes SF 0.01 into the three department files and
// reads every row back.
func TestWriteSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	paths, err := WriteSQLite(ctx, dir, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("paths %v", paths)
	}
	for _, dept := range DepartmentNames() {
		db, err := sql.Open("sqlite", paths[dept])
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var names []string
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var n string
			rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		want := TablesOf(dept)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s holds %v, want %v", dept, names, want)
		}
		for _, name := range TablesOf(dept) {
			tab, _ := Lookup(name)
			checkSQLiteTypes(t, db, tab)
			checkSQLiteRows(t, db, tab)
		}
	}
	// Loading again replaces the tables.
	db, err := sql.Open("sqlite", paths[Customers])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Load(ctx, db, SQLite, "", 0.01, "region"); err != nil {
		t.Fatal(err)
	}
	var n int
	var journal string
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM region`).Scan(&n); err != nil || n != 5 {
		t.Errorf("region after reloading: %d rows, %v", n, err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal); err != nil || journal != "delete" {
		t.Errorf("journal_mode after loading: %q, %v", journal, err)
	}
	if err := Load(ctx, db, SQLite, "", 0.01, "nosuch"); err == nil {
		t.Error("Load of table nosuch succeeds")
	}
}

func checkSQLiteTypes(t *testing.T, db *sql.DB, tab Table) {
	t.Helper()
	rows, err := db.Query(`SELECT name, type, pk FROM pragma_table_info('` + tab.Name + `') ORDER BY cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var key []string
	i := 0
	for ; rows.Next(); i++ {
		var name, typ string
		var pk int
		if err := rows.Scan(&name, &typ, &pk); err != nil {
			t.Fatal(err)
		}
		c := tab.Columns[i]
		want := map[Kind]string{KindInt: "INTEGER", KindDecimal: "DECIMAL(15,2)", KindDate: "DATE", KindText: fmt.Sprintf("VARCHAR(%d)", c.Len)}[c.Kind]
		if name != c.Name || typ != want {
			t.Errorf("%s column %d: %s %s, want %s %s", tab.Name, i+1, name, typ, c.Name, want)
		}
		if pk > 0 {
			key = append(key, name)
		}
	}
	if i != len(tab.Columns) || !slices.Equal(key, tab.Key) {
		t.Errorf("%s: %d columns, key %v", tab.Name, i, key)
	}
}

// checkSQLiteRows compares every row of tab in db with the generator's.
func checkSQLiteRows(t *testing.T, db *sql.DB, tab Table) {
	t.Helper()
	// How the values are stored: dates as YYYY-MM-DD text, decimals as
	// numbers.
	for _, c := range tab.Columns {
		var cond string
		switch c.Kind {
		case KindDate:
			cond = `typeof(` + c.Name + `) <> 'text' OR ` + c.Name + ` NOT GLOB '[12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'`
		case KindDecimal:
			cond = `typeof(` + c.Name + `) NOT IN ('real', 'integer')`
		default:
			continue
		}
		var bad int
		if err := db.QueryRow(`SELECT count(*) FROM ` + tab.Name + ` WHERE ` + cond).Scan(&bad); err != nil || bad > 0 {
			t.Errorf("%s.%s: %d values stored otherwise, %v", tab.Name, c.Name, bad, err)
		}
	}
	rows, err := db.Query(`SELECT * FROM ` + tab.Name + ` ORDER BY ` + strings.Join(tab.Key, ", "))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make([]any, len(tab.Columns))
	ptrs := make([]any, len(got))
	for i := range got {
		ptrs[i] = &got[i]
	}
	n := 0
	for want := range mustRows(t, 0.01, tab.Name) {
		if !rows.Next() {
			t.Fatalf("%s: %d rows, want more", tab.Name, n)
		}
		n++
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			var ok bool
			switch w := w.(type) {
			case Decimal:
				// Stored as REAL, or as INTEGER when whole.
				switch g := got[i].(type) {
				case float64:
					ok = Decimal(math.Round(g*100)) == w
				case int64:
					ok = Decimal(g*100) == w
				}
			case Date:
				// The driver reads a column declared DATE as a time.
				g, isTime := got[i].(time.Time)
				ok = isTime && g.Format(time.DateTime) == w.String()+" 00:00:00"
			default:
				ok = got[i] == w
			}
			if !ok {
				t.Fatalf("%s row %d, %s: %v (%T), want %v", tab.Name, n, tab.Columns[i].Name, got[i], got[i], w)
			}
		}
	}
	if rows.Next() {
		t.Errorf("%s: more than %d rows", tab.Name, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// fingerprint is a summary of a table: its row count and, per column, the
// sum (numbers), the least and greatest value (dates) or the total length
// (text), all as text.
func fingerprint(t testing.TB, sf float64, tab Table) []string {
	t.Helper()
	count := 0
	sums := make([]int64, len(tab.Columns))
	lo := make([]Date, len(tab.Columns))
	hi := make([]Date, len(tab.Columns))
	for i := range lo {
		lo[i], hi[i] = math.MaxInt32, math.MinInt32
	}
	for row := range mustRows(t, sf, tab.Name) {
		count++
		for i, v := range row {
			switch v := v.(type) {
			case int64:
				sums[i] += v
			case Decimal:
				sums[i] += int64(v)
			case string:
				sums[i] += int64(len(v))
			case Date:
				lo[i], hi[i] = min(lo[i], v), max(hi[i], v)
			}
		}
	}
	fp := []string{strconv.Itoa(count)}
	for i, c := range tab.Columns {
		switch c.Kind {
		case KindDecimal:
			fp = append(fp, Decimal(sums[i]).String())
		case KindDate:
			fp = append(fp, lo[i].String(), hi[i].String())
		default:
			fp = append(fp, strconv.FormatInt(sums[i], 10))
		}
	}
	return fp
}

// fingerprintSQL is the query that computes fingerprint in a database.
func fingerprintSQL(d Dialect, schema string, tab Table) string {
	text := func(e string) string {
		if d == MySQL {
			return "CAST(" + e + " AS CHAR)"
		}
		return "CAST(" + e + " AS TEXT)"
	}
	exprs := []string{text("count(*)")}
	for _, c := range tab.Columns {
		switch c.Kind {
		case KindDate:
			exprs = append(exprs, text("min("+c.Name+")"), text("max("+c.Name+")"))
		case KindText:
			exprs = append(exprs, text("sum(length("+c.Name+"))"))
		default:
			exprs = append(exprs, text("sum("+c.Name+")"))
		}
	}
	return "SELECT " + strings.Join(exprs, ", ") + " FROM " + d.name(schema, tab.Name)
}

func checkFingerprints(t *testing.T, db *sql.DB, d Dialect, schema string) {
	t.Helper()
	for _, tab := range Tables {
		want := fingerprint(t, 0.01, tab)
		got := make([]string, len(want))
		ptrs := make([]any, len(got))
		for i := range got {
			ptrs[i] = &got[i]
		}
		if err := db.QueryRow(fingerprintSQL(d, schema, tab)).Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", tab.Name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s in %s: %v, want %v", tab.Name, d, got, want)
		}
	}
}

const testSchema = "tpch_test"

// serverTest skips the test unless CI=true, where the local database
// servers are part of the run.
func serverTest(t *testing.T, what string) {
	if os.Getenv("CI") != "true" {
		t.Skipf("writing to %s runs with CI=true (a server on this machine: %s)", what,
			map[string]string{"PostgreSQL": "127.0.0.1:5432, user postgres, database test", "MariaDB": "127.0.0.1:3306, root, database test"}[what])
	}
}

func TestWritePostgres(t *testing.T) {
	serverTest(t, "PostgreSQL")
	ctx := context.Background()
	db := dbtest.Open(t, "pgx", dbtest.PostgresURL(t))
	drop := func() {
		for _, s := range []string{testSchema, testSchema + "_insert"} {
			if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+s+` CASCADE`); err != nil {
				t.Error(err)
			}
		}
	}
	drop()
	t.Cleanup(drop)
	if err := Load(ctx, db, PostgreSQL, testSchema, 0.01); err != nil {
		t.Fatal(err)
	}
	checkFingerprints(t, db, PostgreSQL, testSchema)
	var typ string
	var prec, scale int
	err := db.QueryRowContext(ctx, `SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'lineitem' AND column_name = 'l_extendedprice'`, testSchema).Scan(&typ, &prec, &scale)
	if err != nil || typ != "numeric" || prec != 15 || scale != 2 {
		t.Errorf("l_extendedprice: %s(%d,%d), %v", typ, prec, scale, err)
	}

	// The 22 queries are PostgreSQL: each answers.
	for n := 1; n <= NumQueries; n++ {
		q := QueryWith(n, func(table string) string { return testSchema + "." + table })
		rows, err := QueryRows(ctx, db, q)
		if err != nil {
			t.Errorf("Q%d: %v", n, err)
			continue
		}
		if len(rows) == 0 || rows[0][0] == nil {
			t.Errorf("Q%d: no answer: %v", n, rows)
		}
	}

	// Without COPY: multi-row INSERTs with $n parameters.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	nation, _ := Lookup("nation")
	for _, stmt := range []string{`CREATE SCHEMA ` + testSchema + `_insert`, CreateTable(PostgreSQL, testSchema+"_insert", nation)} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := insertRows(ctx, tx, PostgreSQL, testSchema+"_insert", nation, mustRows(t, 0.01, "nation"), 10); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+testSchema+`_insert.nation WHERE n_regionkey = 3`).Scan(&n); err != nil || n != 5 {
		t.Errorf("European nations inserted: %d, %v", n, err)
	}
}

func TestWriteMySQL(t *testing.T) {
	serverTest(t, "MariaDB")
	ctx := context.Background()
	db := dbtest.Open(t, "mysql", dbtest.MariaDB)
	drop := func() {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+testSchema); err != nil {
			t.Error(err)
		}
	}
	drop()
	t.Cleanup(drop)
	if err := Load(ctx, db, MySQL, testSchema, 0.01); err != nil {
		t.Fatal(err)
	}
	checkFingerprints(t, db, MySQL, testSchema)
	var key string
	err := db.QueryRowContext(ctx, `SELECT group_concat(column_name ORDER BY seq_in_index) FROM information_schema.statistics
		WHERE table_schema = ? AND table_name = 'lineitem' AND index_name = 'PRIMARY'`, testSchema).Scan(&key)
	if err != nil || key != "l_orderkey,l_linenumber" {
		t.Errorf("lineitem's primary key: %q, %v", key, err)
	}
}
