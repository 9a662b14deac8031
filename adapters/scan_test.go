package adapters

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// typedFields are the declared output fields of every typed scan.
var typedFields = []planner.Field{
	{Name: "i", Type: sluice.TypeInteger},
	{Name: "f", Type: sluice.TypeFloat},
	{Name: "d", Type: sluice.TypeDecimal},
	{Name: "t", Type: sluice.TypeText},
	{Name: "b", Type: sluice.TypeBoolean},
	{Name: "dt", Type: sluice.TypeDate},
	{Name: "ts", Type: sluice.TypeTimestamp},
}

// typedRows is what every database must deliver, whatever Go types its
// driver returns.
var typedRows = [][]any{
	{int64(42), 3.5, "1234.5600", "张三", true, "2024-02-29", "2024-02-29T13:45:30.123456Z"},
	{int64(-7), -0.25, "-0.0100", "plain ascii", false, "1969-12-31", "1970-01-01T00:00:00Z"},
	{nil, nil, nil, nil, nil, nil, nil},
	{int64(math.MaxInt64), 0.0, "0.0000", "", true, "2000-01-01", "1999-12-31T23:59:59.999999Z"},
}

// insertValues is typedRows as SQL literals (booleans and dates in a form
// every dialect accepts); {true} and {false} are spelled per dialect.
var insertValues = []string{
	"(1, 42, 3.5, 1234.56, '张三', {true}, '2024-02-29', '2024-02-29 13:45:30.123456')",
	"(2, -7, -0.25, -0.01, 'plain ascii', {false}, '1969-12-31', '1970-01-01 00:00:00')",
	"(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
	"(4, 9223372036854775807, 0, 0, '', {true}, '2000-01-01', '1999-12-31 23:59:59.999999')",
}

type dialect struct {
	name        string
	open        func(t *testing.T) (db *DB, exec func(string) error)
	createTable string // %s is the table name
	true, false string
	placeholder string
	// extra are further queries (with %s for the table) that must produce
	// typedRows, e.g. SQLite dates read as raw TEXT.
	extra map[string]string
}

func dialects() []dialect {
	return []dialect{
		{
			name: "sqlite",
			open: func(t *testing.T) (*DB, func(string) error) {
				path := newSQLiteFile(t)
				w := openSQLiteWritable(t, path)
				return openSQLite(t, path), func(s string) error { _, err := w.SQLX().Exec(s); return err }
			},
			createTable: "CREATE TABLE %s (id INTEGER PRIMARY KEY, i INTEGER, f REAL, d DECIMAL(18,2), t TEXT, b BOOLEAN, dt DATE, ts TIMESTAMP)",
			true:        "1", false: "0",
			placeholder: "?",
			extra: map[string]string{
				// Expressions have no declared type, so the driver returns
				// dates and timestamps as the TEXT SQLite stores.
				"text dates": "SELECT i, f, d, t, b, dt || '', ts || '' FROM %s WHERE id >= 1 ORDER BY id",
			},
		},
		{
			name: "postgres",
			open: func(t *testing.T) (*DB, func(string) error) {
				db := openPostgres(t)
				return db, func(s string) error { _, err := db.SQLX().Exec(s); return err }
			},
			createTable: "CREATE TABLE %s (id BIGINT PRIMARY KEY, i BIGINT, f DOUBLE PRECISION, d NUMERIC(18,2), t TEXT, b BOOLEAN, dt DATE, ts TIMESTAMP)",
			true:        "TRUE", false: "FALSE",
			placeholder: "$1",
			extra: map[string]string{
				"timestamptz": "SELECT i, f, d, t, b, dt, ts AT TIME ZONE 'UTC' FROM %s WHERE id >= 1 ORDER BY id",
			},
		},
		{
			name: "mariadb",
			open: func(t *testing.T) (*DB, func(string) error) {
				db := openMariaDB(t)
				return db, func(s string) error { _, err := db.SQLX().Exec(s); return err }
			},
			createTable: "CREATE TABLE %s (id BIGINT PRIMARY KEY, i BIGINT, f DOUBLE, d DECIMAL(18,2), t VARCHAR(100), b BOOLEAN, dt DATE, ts DATETIME(6)) CHARACTER SET utf8mb4",
			true:        "TRUE", false: "FALSE",
			placeholder: "?",
		},
	}
}

func TestScanTypedAcrossDatabases(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			db, exec := d.open(t)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			db.mem = mem
			table := uniqueTable("sluice_typed")
			if err := exec(fmt.Sprintf(d.createTable, table)); err != nil {
				t.Fatalf("create: %v", err)
			}
			t.Cleanup(func() { exec("DROP TABLE " + table) })
			for _, v := range insertValues {
				stmt := fmt.Sprintf("INSERT INTO %s (id, i, f, d, t, b, dt, ts) VALUES ", table) + strings.NewReplacer("{true}", d.true, "{false}", d.false).Replace(v)
				if err := exec(stmt); err != nil {
					t.Fatalf("insert: %v", err)
				}
			}

			type query struct {
				sql  string
				args []any
			}
			queries := map[string]query{
				// With bind parameters MySQL uses the binary protocol, without
				// them the text protocol: the driver returns different types.
				"bind parameter": {fmt.Sprintf("SELECT i, f, d, t, b, dt, ts FROM %s WHERE id >= %s ORDER BY id", table, d.placeholder), []any{int64(1)}},
				"no parameters":  {fmt.Sprintf("SELECT i, f, d, t, b, dt, ts FROM %s ORDER BY id", table), nil},
			}
			for name, q := range d.extra {
				queries[name] = query{fmt.Sprintf(q, table), nil}
			}
			for name, q := range queries {
				t.Run(name, func(t *testing.T) {
					var got [][]any
					batches := 0
					n, err := db.Scan(context.Background(), q.sql, q.args, typedFields, 0, func(rec arrow.Record) error {
						batches++
						if !rec.Schema().Equal(Schema(typedFields)) {
							t.Errorf("schema %v, want %v", rec.Schema(), Schema(typedFields))
						}
						got = append(got, rowsOf(rec)...)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if n != int64(len(typedRows)) || batches != 1 {
						t.Errorf("rows %d in %d batches, want %d in 1", n, batches, len(typedRows))
					}
					if len(got) != len(typedRows) {
						t.Fatalf("got %d rows, want %d", len(got), len(typedRows))
					}
					for r := range typedRows {
						for c, f := range typedFields {
							if !reflect.DeepEqual(got[r][c], typedRows[r][c]) {
								t.Errorf("row %d column %s: got %#v, want %#v", r+1, f.Name, got[r][c], typedRows[r][c])
							}
						}
					}
					mem.AssertSize(t, 0)
				})
			}

			t.Run("unconvertible value", func(t *testing.T) {
				sqlText := fmt.Sprintf("SELECT t FROM %s WHERE id = 1", table)
				_, err := db.Scan(context.Background(), sqlText, nil, []planner.Field{{Name: "t", Type: sluice.TypeInteger}}, 0, func(arrow.Record) error { return nil })
				wantCode(t, err, sluice.EInternal)
				mustNotContain(t, err, "张三")
				if !strings.Contains(err.Error(), `"t"`) || !strings.Contains(err.Error(), "integer") {
					t.Errorf("error %q does not name the column and type", err)
				}
				mem.AssertSize(t, 0)
			})
			t.Run("bad SQL", func(t *testing.T) {
				_, err := db.Scan(context.Background(), "SELEC i FROM "+table, nil, typedFields[:1], 0, func(arrow.Record) error { return nil })
				wantCode(t, err, sluice.EInvalid)
			})
			t.Run("unknown table", func(t *testing.T) {
				_, err := db.Scan(context.Background(), "SELECT i FROM "+table+"_missing", nil, typedFields[:1], 0, func(arrow.Record) error { return nil })
				wantCode(t, err, sluice.EInvalid)
			})
		})
	}
}

func openSQLiteWritable(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), sluice.Source{Name: "writer", Driver: sluice.DriverSQLite, DSN: "file:" + path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// counterDB is an SQLite database with a table of n sequential ids.
func counterDB(t *testing.T, n int, opts ...Option) *DB {
	path := newSQLiteFile(t,
		"CREATE TABLE c (id INTEGER PRIMARY KEY, v TEXT)",
		fmt.Sprintf("WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < %d) INSERT INTO c SELECT x, 'row ' || x FROM s", n),
	)
	return openSQLite(t, path, opts...)
}

func TestScanBatching(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	db := counterDB(t, 10000, WithAllocator(mem), WithMaxOpenConns(2))
	fields := []planner.Field{{Name: "id", Type: sluice.TypeInteger}, {Name: "v", Type: sluice.TypeText}}
	tests := []struct {
		name      string
		batchRows int
		want      []int64
	}{
		{"1000 rows per batch", 1000, []int64{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}},
		{"default batch size", 0, []int64{4096, 4096, 1808}},
		{"batch larger than result", 50000, []int64{10000}},
		{"uneven", 3000, []int64{3000, 3000, 3000, 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sizes []int64
			next := int64(1)
			n, err := db.Scan(context.Background(), "SELECT id, v FROM c ORDER BY id", nil, fields, tc.batchRows, func(rec arrow.Record) error {
				sizes = append(sizes, rec.NumRows())
				for _, row := range rowsOf(rec) {
					if row[0] != next || row[1] != fmt.Sprintf("row %d", next) {
						return fmt.Errorf("row %v, want id %d", row, next)
					}
					next++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != 10000 || !reflect.DeepEqual(sizes, tc.want) {
				t.Errorf("rows %d in batches %v, want 10000 in %v", n, sizes, tc.want)
			}
			mem.AssertSize(t, 0)
		})
	}
	t.Run("emit retains", func(t *testing.T) {
		var kept []arrow.Record
		_, err := db.Scan(context.Background(), "SELECT id, v FROM c ORDER BY id", nil, fields, 2500, func(rec arrow.Record) error {
			rec.Retain()
			kept = append(kept, rec)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Each kept batch must still hold its own rows after later batches
		// were built.
		for i, rec := range kept {
			if got := rec.Column(0).(interface{ Value(int) int64 }).Value(0); got != int64(i*2500+1) {
				t.Errorf("batch %d starts at id %d, want %d", i, got, i*2500+1)
			}
			rec.Release()
		}
		mem.AssertSize(t, 0)
	})
	t.Run("emit error ends the scan", func(t *testing.T) {
		stop := errors.New("consumer went away")
		calls := 0
		n, err := db.Scan(context.Background(), "SELECT id, v FROM c", nil, fields, 1000, func(arrow.Record) error {
			calls++
			if calls == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 3 || n != 2000 {
			t.Errorf("err %v after %d calls, %d rows; want the emit error after 3 calls, 2000 rows", err, calls, n)
		}
		mem.AssertSize(t, 0)
	})
}

func TestScanCancellation(t *testing.T) {
	const endless = "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 1000000000) SELECT x FROM s"
	fields := []planner.Field{{Name: "x", Type: sluice.TypeInteger}}
	sqlite := func(t testing.TB) *DB { return openSQLite(t, newSQLiteFile(t, "CREATE TABLE unused (x INTEGER)")) }
	tests := []struct {
		name      string
		open      func(t testing.TB) *DB
		sql       string
		batchRows int
		// cancelAfter cancels from a timer instead of from emit, to stop a
		// query that has not produced a batch yet.
		cancelAfter time.Duration
	}{
		{"sqlite: cancel from emit", sqlite, endless, 100, 0},
		{"sqlite: cancel during a long aggregate", sqlite, "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 1000000000) SELECT count(*) FROM s", 100, 100 * time.Millisecond},
		{"sqlite: cancel within a large batch", sqlite, endless, 1 << 30, 100 * time.Millisecond},
		{"postgres: cancel from emit", openPostgres, endless, 100, 0},
		{"postgres: cancel during a long query", openPostgres, "SELECT 1::bigint FROM pg_sleep(30)", 100, 100 * time.Millisecond},
		{"mariadb: cancel during a long query", openMariaDB, "SELECT SLEEP(30)", 100, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			db.mem = mem
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelAfter > 0 {
				time.AfterFunc(tc.cancelAfter, cancel)
			}
			calls := 0
			var cancelled time.Time
			start := time.Now()
			_, err := db.Scan(ctx, tc.sql, nil, fields, tc.batchRows, func(rec arrow.Record) error {
				calls++
				if tc.cancelAfter == 0 {
					cancelled = time.Now()
					cancel()
				}
				return nil
			})
			if tc.cancelAfter > 0 {
				cancelled = start.Add(tc.cancelAfter)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want a context.Canceled", err)
			}
			wantCode(t, err, sluice.EUnavailable)
			if d := time.Since(cancelled); d > 2*time.Second {
				t.Errorf("scan returned %v after the cancel", d)
			}
			if tc.cancelAfter == 0 && calls != 1 {
				t.Errorf("emit called %d times, want 1 (no batch after the cancel)", calls)
			}
			mem.AssertSize(t, 0)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		src     sluice.Source
		code    string
		secrets []string
	}{
		{"unknown driver", sluice.Source{Name: "x", Driver: "oracle", DSN: "whatever"}, sluice.EInvalid, nil},
		{"unreachable postgres", sluice.Source{Name: "pg", Driver: sluice.DriverPostgres, DSN: "postgres://postgres:s3cretPW@127.0.0.1:1/test?sslmode=disable"}, sluice.EUnavailable, []string{"s3cretPW"}},
		{"unreachable mysql", sluice.Source{Name: "my", Driver: sluice.DriverMySQL, DSN: "root:s3cretPW@tcp(127.0.0.1:1)/test"}, sluice.EUnavailable, []string{"s3cretPW"}},
		{"bad postgres DSN", sluice.Source{Name: "pg", Driver: sluice.DriverPostgres, DSN: "postgres://postgres:s3cretPW@127.0.0.1:notaport/test"}, sluice.EInvalid, []string{"s3cretPW"}},
		{"bad mysql DSN", sluice.Source{Name: "my", Driver: sluice.DriverMySQL, DSN: "root:s3cretPW@tcp(127.0.0.1:3306)test"}, sluice.EInvalid, []string{"s3cretPW"}},
		{"missing sqlite file", sluice.Source{Name: "lite", Driver: sluice.DriverSQLite, DSN: "/nonexistent/dir/dept.db"}, sluice.EUnavailable, nil},
		{"empty sqlite DSN", sluice.Source{Name: "lite", Driver: sluice.DriverSQLite, DSN: ""}, sluice.EInvalid, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			db, err := Open(ctx, tc.src)
			if err == nil {
				db.Close()
			}
			wantCode(t, err, tc.code)
			mustNotContain(t, err, tc.secrets...)
			if tc.src.Name != "" && !strings.Contains(err.Error(), tc.src.Name) {
				t.Errorf("error %q does not name the source", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Open took %v", d)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	db := openSQLite(t, newSQLiteFile(t,
		"CREATE TABLE p (id INTEGER, name TEXT, born TEXT, amount TEXT)",
		"INSERT INTO p VALUES (1, 'abc', 'abc', 'abc')",
	))
	noop := func(arrow.Record) error { return nil }
	tests := []struct {
		name   string
		sql    string
		fields []planner.Field
		code   string
	}{
		{"bad SQL", "SELEC id FROM p", []planner.Field{{Name: "id", Type: sluice.TypeInteger}}, sluice.EInvalid},
		{"unknown table", "SELECT id FROM nope", []planner.Field{{Name: "id", Type: sluice.TypeInteger}}, sluice.EInvalid},
		{"unknown column", "SELECT nope FROM p", []planner.Field{{Name: "id", Type: sluice.TypeInteger}}, sluice.EInvalid},
		{"more columns than fields", "SELECT id, name FROM p", []planner.Field{{Name: "id", Type: sluice.TypeInteger}}, sluice.EInternal},
		{"fewer columns than fields", "SELECT id FROM p", []planner.Field{{Name: "id", Type: sluice.TypeInteger}, {Name: "name", Type: sluice.TypeText}}, sluice.EInternal},
		{"text declared integer", "SELECT name FROM p", []planner.Field{{Name: "name", Type: sluice.TypeInteger}}, sluice.EInternal},
		{"text declared float", "SELECT name FROM p", []planner.Field{{Name: "name", Type: sluice.TypeFloat}}, sluice.EInternal},
		{"text declared decimal", "SELECT amount FROM p", []planner.Field{{Name: "amount", Type: sluice.TypeDecimal}}, sluice.EInternal},
		{"text declared boolean", "SELECT name FROM p", []planner.Field{{Name: "name", Type: sluice.TypeBoolean}}, sluice.EInternal},
		{"text declared date", "SELECT born FROM p", []planner.Field{{Name: "born", Type: sluice.TypeDate}}, sluice.EInternal},
		{"text declared timestamp", "SELECT born FROM p", []planner.Field{{Name: "born", Type: sluice.TypeTimestamp}}, sluice.EInternal},
		{"unknown declared type", "SELECT id FROM p", []planner.Field{{Name: "id", Type: "money"}}, sluice.EInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Scan(context.Background(), tc.sql, nil, tc.fields, 0, noop)
			wantCode(t, err, tc.code)
			mustNotContain(t, err, "abc")
			if tc.code == sluice.EInternal && strings.HasPrefix(tc.name, "text declared") {
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.fields[0].Name)) || !strings.Contains(err.Error(), string(tc.fields[0].Type)) {
					t.Errorf("error %q does not name the column and the type", err)
				}
			}
		})
	}
	t.Run("cancelled before the query", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := db.Scan(ctx, "SELECT id FROM p", nil, []planner.Field{{Name: "id", Type: sluice.TypeInteger}}, 0, noop)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})
}

func TestSQLiteIsReadOnly(t *testing.T) {
	db := openSQLite(t, newSQLiteFile(t, "CREATE TABLE p (id INTEGER)"))
	if _, err := db.SQLX().Exec("INSERT INTO p VALUES (1)"); err == nil {
		t.Fatal("insert through the adapter succeeded; the source must be opened read-only")
	}
}

func TestSchema(t *testing.T) {
	s := Schema(typedFields)
	want := []string{"int64", "float64", "decimal(38, 4)", "utf8", "bool", "date64", "timestamp[us, tz=UTC]"}
	for i, f := range s.Fields() {
		if f.Type.String() != want[i] || !f.Nullable {
			t.Errorf("field %s: %s nullable=%v, want %s nullable", f.Name, f.Type, f.Nullable, want[i])
		}
		if v, _ := f.Metadata.GetValue(MetaType); v != string(typedFields[i].Type) {
			t.Errorf("field %s metadata %q, want %q", f.Name, v, typedFields[i].Type)
		}
	}
}
