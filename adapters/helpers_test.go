package adapters

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/jmoiron/sqlx"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/test/dbtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

// openServer opens a database server the tests need. A server that does
// not answer skips the test, or fails it under CI=true (dbtest).
func openServer(t testing.TB, what string, driver sluice.Driver, dsn string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := Open(ctx, sluice.Source{Name: what, Driver: driver, DSN: dsn})
	if err != nil {
		if sluice.ErrorCode(err) == sluice.EUnavailable {
			dbtest.NotReachable(t, what, dsn, err)
		}
		t.Fatalf("open %s: %v", what, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t testing.TB) *DB {
	return openServer(t, "PostgreSQL", sluice.DriverPostgres, dbtest.PostgresURL(t))
}

func openMariaDB(t testing.TB) *DB {
	return openServer(t, "MariaDB", sluice.DriverMySQL, dbtest.MariaDB)
}

// newSQLiteFile creates an SQLite database in a temp dir with the given
// statements run through a writable connection, and returns its path; the
// adapter then opens it read-only, as an agent does.
func newSQLiteFile(t testing.TB, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dept.db")
	w, err := sqlx.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, s := range stmts {
		if _, err := w.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return path
}

func openSQLite(t testing.TB, path string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(context.Background(), sluice.Source{Name: "sqlite-test", Driver: sluice.DriverSQLite, DSN: path}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// uniqueTable names a table no concurrent test run can collide with.
func uniqueTable(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}

// cell renders one Arrow value as a comparable Go value: nil for null,
// decimals as fixed-point text, dates as YYYY-MM-DD, timestamps as RFC 3339
// in UTC.
func cell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Decimal128:
		return decString(a.Value(i), DecimalScale)
	case *array.String:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Date64:
		return a.Value(i).ToTime().UTC().Format(time.DateOnly)
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano)
	}
	return "unsupported " + a.DataType().String()
}

func decString(n decimal128.Num, scale int) string {
	b := n.BigInt()
	neg := b.Sign() < 0
	s := new(big.Int).Abs(b).String()
	for len(s) <= scale {
		s = "0" + s
	}
	s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	if neg {
		s = "-" + s
	}
	return s
}

func rowsOf(rec arrow.Record) [][]any {
	out := make([][]any, rec.NumRows())
	for r := range out {
		row := make([]any, rec.NumCols())
		for c := range row {
			row[c] = cell(rec.Column(c), r)
		}
		out[r] = row
	}
	return out
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var se *sluice.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *sluice.Error", err, err)
	}
	if se.Code != code {
		t.Fatalf("error code %s (%v), want %s", se.Code, err, code)
	}
}

func mustNotContain(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q contains %q", err.Error(), s)
		}
	}
}
