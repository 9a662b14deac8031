package planner

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// execRows are synthetic residents: Chinese names, identity numbers,
// phones and dates, with one NULL phone and one NULL birth date.
var execRows = []struct {
	id, name, phone, birth, district string
	low                              int
	allowance                        string
}{
	{"110101199003071234", "张三", "13812345678", "1990-03-07", "城东区", 1, "500.50"},
	{"110101199105082345", "张伟", "13987654321", "1991-05-08", "城东区", 1, "620.00"},
	{"110102198807093456", "李四", "", "1988-07-09", "城东区", 0, "0"},
	{"110102199001014567", "王五", "15011112222", "1990-01-01", "城西区", 1, "480.25"},
	{"110103199212125678", "赵六", "15233334444", "", "城西区", 0, "0"},
	{"110104198001016789", "欧阳娜娜", "18655556666", "1980-01-01", "湟中区", 1, "700.00"},
}

var tableSeq atomic.Int64

// execDataset is civil.residents over a fresh table name.
func execDataset(t *testing.T) *sluice.Dataset {
	ds := *testCatalog(t).Dataset("civil", "residents")
	ds.Table = fmt.Sprintf("residents_exec_%d_%d", time.Now().UnixNano()%1_000_000_000, tableSeq.Add(1))
	return &ds
}

func createResidents(t *testing.T, db *sql.DB, d sluice.Driver, table string) {
	t.Helper()
	ctx := context.Background()
	var ddl, insert string
	switch d {
	case sluice.DriverSQLite:
		ddl = `CREATE TABLE "` + table + `" (id_card TEXT, name TEXT, gender TEXT, birth_date TEXT, district TEXT, phone TEXT, low_income INTEGER, monthly_allowance NUMERIC)`
		insert = `INSERT INTO "` + table + `" VALUES (?, ?, 'f', ?, ?, ?, ?, ?)`
	case sluice.DriverPostgres:
		ddl = `CREATE TABLE "` + table + `" (id_card TEXT, name TEXT, gender TEXT, birth_date DATE, district TEXT, phone TEXT, low_income INTEGER, monthly_allowance NUMERIC(12,2))`
		insert = `INSERT INTO "` + table + `" VALUES ($1, $2, 'f', $3, $4, $5, $6, $7)`
	default:
		ddl = "CREATE TABLE `" + table + "` (id_card VARCHAR(18), name VARCHAR(32), gender VARCHAR(4), birth_date DATE, district VARCHAR(16), phone VARCHAR(16), low_income INT, monthly_allowance DECIMAL(12,2)) CHARACTER SET utf8mb4"
		insert = "INSERT INTO `" + table + "` VALUES (?, ?, 'f', ?, ?, ?, ?, ?)"
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		q := `DROP TABLE "` + table + `"`
		if d == sluice.DriverMySQL {
			q = "DROP TABLE `" + table + "`"
		}
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Errorf("drop table: %v", err)
		}
	})
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	for _, r := range execRows {
		if _, err := db.ExecContext(ctx, insert, r.id, r.name, null(r.birth), r.district, null(r.phone), r.low, r.allowance); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
}

// cell turns any driver's value into comparable text.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', 2, 64)
	case time.Time:
		return x.Format("2006-01-02")
	}
	return fmt.Sprint(v)
}

func query(t *testing.T, db *sql.DB, q string, args []any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = cell(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var allMasks = map[string]sluice.MaskRule{
	"name": sluice.MaskSurname, "id_card": sluice.MaskIDCard, "phone": sluice.MaskPhone, "birth_date": sluice.MaskYear,
}

// execCases run on every reachable database and must give the same rows.
var execCases = []struct {
	name  string
	sql   string
	masks map[string]sluice.MaskRule
	k     int
	want  []string
}{
	{"masks", "SELECT name, id_card, phone, birth_date FROM civil.residents ORDER BY id_card", allMasks, 0, []string{
		"张**|110101********1234|138****5678|1990",
		"张**|110101********2345|139****4321|1991",
		"李**|110102********3456|NULL|1988",
		"王**|110102********4567|150****2222|1990",
		"赵**|110103********5678|152****4444|NULL",
		"欧**|110104********6789|186****6666|1980",
	}},
	{"predicate on masked values", "SELECT count(*) FROM civil.residents WHERE birth_date = 1990 AND name LIKE '张%'", allMasks, 0, []string{"1"}},
	{"group on masked surname", "SELECT name, count(*) AS n FROM civil.residents GROUP BY name ORDER BY n DESC, name", allMasks, 2, []string{"张**|2"}},
	{"min group size drops small groups", "SELECT district, count(*) AS n, sum(low_income) AS low FROM civil.residents GROUP BY district ORDER BY district", nil, 2, []string{
		"城东区|3|2", "城西区|2|1",
	}},
	{"min group size with having", "SELECT district, avg(monthly_allowance) AS a FROM civil.residents GROUP BY district HAVING sum(low_income) >= 1 ORDER BY 2 DESC", nil, 3, []string{"城东区|373.50"}},
	{"whole table under k", "SELECT count(*) FROM civil.residents", nil, 7, nil},
	{"whole table at k", "SELECT count(*), max(birth_date) FROM civil.residents", allMasks, 5, []string{"6|1991"}},
	// Persons are counted per aggregate: one birth date is NULL, so only
	// five persons reach MAX(birth_date), fewer than k = 6.
	{"an aggregate's own persons under k", "SELECT count(*), max(birth_date) FROM civil.residents", allMasks, 6, nil},
	{"expressions", "SELECT substr(district, 1, 2) AS d, length(name) AS len, low_income / 2 AS half, round(monthly_allowance / 3, 1) AS third, coalesce(phone, 'none') AS p FROM civil.residents WHERE district IN ('湟中区', '城西区') AND NOT (low_income = 0) ORDER BY len DESC, 3", nil, 0, []string{
		"湟中|4|0|233.30|18655556666", "城西|2|0|160.10|15011112222",
	}},
	{"case and offset", "SELECT CASE WHEN birth_date < 1990 THEN 'before' ELSE 'after' END AS era, count(*) AS n FROM civil.residents WHERE birth_date IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 1 OFFSET 1", allMasks, 0, []string{"before|2"}},
	{"division by zero is null", "SELECT low_income / 0 AS x, low_income % 0 AS y FROM civil.residents WHERE name = '张三'", nil, 0, []string{"NULL|NULL"}},
	{"distinct masked", "SELECT DISTINCT birth_date FROM civil.residents WHERE birth_date IS NOT NULL ORDER BY 1 DESC", allMasks, 0, []string{"1991", "1990", "1988", "1980"}},
	// The PostgreSQL grammar's forms, read as PostgreSQL reads them and
	// answered alike by every dialect.
	{"double quotes name columns", `SELECT "district", count(*) AS "人数" FROM civil.residents AS 居民 WHERE 居民."low_income" = 1 GROUP BY "district" ORDER BY 1`, nil, 0, []string{"城东区|2", "城西区|1", "湟中区|1"}},
	{"ilike", "SELECT count(*) FROM civil.residents WHERE gender ILIKE 'F' AND name NOT ILIKE '张%'", nil, 0, []string{"4"}},
	{"filter", "SELECT district, count(*) FILTER (WHERE low_income = 1) AS low, sum(monthly_allowance) FILTER (WHERE phone IS NOT NULL) AS s, count(DISTINCT gender) FILTER (WHERE low_income = 0) AS g FROM civil.residents WHERE district <> '湟中区' GROUP BY district ORDER BY district", nil, 0, []string{
		"城东区|2|1120.50|1", "城西区|1|480.25|1",
	}},
	{"is distinct from", "SELECT count(*) FILTER (WHERE phone IS DISTINCT FROM '13812345678') AS a, count(*) FILTER (WHERE phone IS NOT DISTINCT FROM NULL) AS b, count(*) FILTER (WHERE birth_date IS NOT DISTINCT FROM birth_date) AS c FROM civil.residents", nil, 0, []string{"5|1|6"}},
	{"date literal", "SELECT count(*) FROM civil.residents WHERE birth_date >= DATE '1990-01-01' AND birth_date < DATE '1991-05-08'", nil, 0, []string{"2"}},
	{"extract", "SELECT EXTRACT(YEAR FROM birth_date) AS y, EXTRACT(MONTH FROM birth_date) AS m, EXTRACT(DAY FROM birth_date) AS d, count(*) AS n FROM civil.residents WHERE EXTRACT(YEAR FROM birth_date) >= 1990 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", nil, 0, []string{
		"1990|1|1|1", "1990|3|7|1", "1991|5|8|1",
	}},
	{"extract the year of a masked date", "SELECT EXTRACT(YEAR FROM birth_date) AS y, count(*) AS n FROM civil.residents WHERE EXTRACT(YEAR FROM birth_date) < 1990 GROUP BY 1 ORDER BY 1", allMasks, 0, []string{"1980|1", "1988|1"}},
	// Constant arithmetic is exact (binary floating point makes 0.06 + 0.01
	// 0.06999999999999999, TPC-H Q6's trap).
	{"exact constant arithmetic", "SELECT count(*) AS n FROM civil.residents WHERE 0.06 + 0.01 >= 0.07 AND 0.3 - 0.1 <= 0.2 AND 1.1 * 1.1 = 1.21 AND 2 * 3 - 1 = 5", nil, 0, []string{"6"}},
	{"concatenation", "SELECT district || '/' || SUBSTRING(name FROM 1 FOR 1) AS k, count(*) AS n FROM civil.residents WHERE name || phone IS NULL OR district || '' = '湟中区' GROUP BY 1 ORDER BY 1", nil, 0, []string{"城东区/李|1", "湟中区/欧|1"}},
	{"casts that mean the same everywhere", "SELECT low_income::bigint AS l, CAST(low_income AS DOUBLE PRECISION) / 4 AS q, count(*)::numeric AS n, sum(monthly_allowance)::float8 AS s FROM civil.residents WHERE district <> '湟中区' GROUP BY low_income ORDER BY 1", nil, 0, []string{"0|0.00|2|0.00", "1|0.25|3|1600.75"}},
	// LIKE tells upper from lower case in every dialect, as in PostgreSQL.
	{"like is case-sensitive", "SELECT count(*) FILTER (WHERE gender LIKE 'F') AS upper_f, count(*) FILTER (WHERE gender LIKE 'f') AS lower_f, count(*) FILTER (WHERE gender NOT LIKE 'F%') AS not_upper, count(*) FILTER (WHERE gender ILIKE 'F') AS any_f FROM civil.residents", nil, 0, []string{"0|6|6|6"}},
	{"integer division truncates toward zero", "SELECT low_income, (low_income - 4) / 2 AS q, 7 / 2 AS c, low_income / 0 AS z, count(*) AS n FROM civil.residents GROUP BY low_income ORDER BY 1", nil, 0, []string{"0|-2|3|NULL|2", "1|-1|3|NULL|4"}},
	{"nulls last ascending", "SELECT name, phone FROM civil.residents WHERE district = '城东区' ORDER BY phone NULLS LAST", nil, 0, []string{"张三|13812345678", "张伟|13987654321", "李四|NULL"}},
	{"nulls first descending, then a name", "SELECT name FROM civil.residents ORDER BY birth_date DESC NULLS FIRST, name", nil, 0, []string{"赵六", "张伟", "张三", "王五", "李四", "欧阳娜娜"}},
	{"nulls first descending on an output name", "SELECT name, phone AS p FROM civil.residents WHERE district = '城东区' ORDER BY p DESC NULLS FIRST", nil, 0, []string{"李四|NULL", "张伟|13987654321", "张三|13812345678"}},
	{"date_trunc month and year", "SELECT date_trunc('month', birth_date) AS m, date_trunc('year', birth_date) AS y, count(*) AS n FROM civil.residents WHERE birth_date IS NOT NULL AND date_trunc('year', birth_date) >= DATE '1988-01-01' GROUP BY 1, 2 ORDER BY 1", nil, 0, []string{"1988-07-01|1988-01-01|1", "1990-01-01|1990-01-01|1", "1990-03-01|1990-01-01|1", "1991-05-01|1991-01-01|1"}},
	{"date_trunc of a NULL date", "SELECT name, date_trunc('month', birth_date) AS m FROM civil.residents WHERE birth_date IS NULL", nil, 0, []string{"赵六|NULL"}},
	{"substring from for, fetch first", "SELECT SUBSTRING(district FROM 1 FOR 2) AS d, id_card FROM civil.residents ORDER BY id_card DESC NULLS LAST FETCH FIRST 2 ROWS ONLY", nil, 0, []string{"湟中|110104198001016789", "城西|110103199212125678"}},
}

func runExecCases(t *testing.T, db *sql.DB, d sluice.Driver) {
	ds := execDataset(t)
	createResidents(t, db, d, ds.Table)
	p := New(testCatalog(t))
	for _, c := range execCases {
		t.Run(c.name, func(t *testing.T) {
			f := withObligations(mustPlan(t, p, c.sql).Fragment, c.masks, c.k)
			render := Render
			if c.k > 0 {
				render = RenderUnits
			}
			q, args, err := render(f, ds, d)
			if err != nil {
				t.Fatal(err)
			}
			got := query(t, db, q, args)
			if c.k > 0 {
				got = keepK(t, f, got, c.k)
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("%s\n got %q\nwant %q", q, got, c.want)
			}
		})
	}
}

// keepK does what the agent's gate does to the rows of RenderUnits: keep
// the groups whose every contributor set lists at least k distinct persons
// (checking each list against its count), drop the unit columns, then
// apply LIMIT and OFFSET.
func keepK(t *testing.T, f *Fragment, rows []string, k int) []string {
	t.Helper()
	sets, err := f.UnitSets()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		parts := strings.Split(r, "|")
		base := len(parts) - 2*len(sets)
		ok := true
		for i := range sets {
			list, n := parts[base+2*i], parts[base+2*i+1]
			if i > 0 && list == "NULL" && n == parts[base+1] {
				list = parts[base] // every row of the group: the first set again
			}
			distinct := map[string]bool{}
			listed := 0
			if list != "NULL" && list != "" {
				for _, v := range strings.Split(list, ",") {
					distinct[v] = true
					listed++
				}
			}
			if strconv.Itoa(listed) != n {
				t.Fatalf("set %d lists %d persons, the database counted %s: %q", i, listed, n, r)
			}
			ok = ok && len(distinct) >= k
		}
		if ok {
			out = append(out, strings.Join(parts[:base], "|"))
		}
	}
	if f.Offset > 0 {
		out = out[min(int(f.Offset), len(out)):]
	}
	if f.Limit != nil && int(*f.Limit) < len(out) {
		out = out[:*f.Limit]
	}
	return out
}

func TestExecSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// One connection: every connection of :memory: is its own database.
	db.SetMaxOpenConns(1)
	runExecCases(t, db, sluice.DriverSQLite)
}

// openOrSkip opens a database server the test needs; one that does not
// answer skips the test, or fails it under CI=true (dbtest).
func openOrSkip(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	return dbtest.Open(t, driver, dsn)
}

func TestExecPostgres(t *testing.T) {
	db := openOrSkip(t, "pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	runExecCases(t, db, sluice.DriverPostgres)
}

func TestExecMySQL(t *testing.T) {
	db := openOrSkip(t, "mysql", "root@tcp(127.0.0.1:3306)/test?charset=utf8mb4")
	runExecCases(t, db, sluice.DriverMySQL)
}
