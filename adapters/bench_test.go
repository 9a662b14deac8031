package adapters

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jmoiron/sqlx"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

const benchRows = 1_000_000

// The benchmark table is built once per test binary and shared by both
// benchmarks and every b.N, so they read the very same file.
var bench struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func benchTable(b *testing.B) string {
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "sluice-adapters-bench-")
		if bench.err != nil {
			return
		}
		bench.path = filepath.Join(bench.dir, "bench.db")
		var w *sqlx.DB
		if w, bench.err = sqlx.Open("sqlite", bench.path); bench.err != nil {
			return
		}
		defer w.Close()
		for _, s := range []string{
			"CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, district TEXT, allowance DECIMAL(18,2), score REAL, low_income BOOLEAN, birth_date DATE)",
			`WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 1000000)
			 INSERT INTO people SELECT x,
				'张' || x,
				CASE x % 5 WHEN 0 THEN '城东区' WHEN 1 THEN '城中区' WHEN 2 THEN '城西区' WHEN 3 THEN '城北区' ELSE '湟中区' END,
				(x % 100000) / 100.0,
				x * 0.5,
				x % 2,
				date('1950-01-01', '+' || (x % 25000) || ' days')
			 FROM s`,
		} {
			if _, bench.err = w.Exec(s); bench.err != nil {
				return
			}
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.path
}

func cleanupBench() {
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

const benchSQL = "SELECT id, name, district, allowance, score, low_income, birth_date FROM people"

var benchFields = []planner.Field{
	{Name: "id", Type: sluice.TypeInteger},
	{Name: "name", Type: sluice.TypeText},
	{Name: "district", Type: sluice.TypeText},
	{Name: "allowance", Type: sluice.TypeDecimal},
	{Name: "score", Type: sluice.TypeFloat},
	{Name: "low_income", Type: sluice.TypeBoolean},
	{Name: "birth_date", Type: sluice.TypeDate},
}

func BenchmarkScanSQLite1M(b *testing.B) {
	path := benchTable(b)
	db, err := Open(context.Background(), sluice.Source{Name: "bench", Driver: sluice.DriverSQLite, DSN: path})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		n, err := db.Scan(context.Background(), benchSQL, nil, benchFields, 0, func(arrow.Record) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		if n != benchRows {
			b.Fatalf("scanned %d rows, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
}

func BenchmarkDirectSQLXScan1M(b *testing.B) {
	path := benchTable(b)
	db, err := sqlx.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rows, err := db.QueryxContext(context.Background(), benchSQL)
		if err != nil {
			b.Fatal(err)
		}
		var (
			n              int64
			id             int64
			name, district string
			allowance      float64
			score          float64
			lowIncome      bool
			birth          time.Time
		)
		for rows.Next() {
			if err := rows.Scan(&id, &name, &district, &allowance, &score, &lowIncome, &birth); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
		if n != benchRows {
			b.Fatalf("scanned %d rows, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
}
