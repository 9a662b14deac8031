package agent

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

const benchRows = 1_000_000

// benchDB returns a 1,000,000-row SQLite table (integer, text, float, date,
// integer, text), built once and kept in the temp folder across runs:
// building it costs more than a benchmark iteration.
func benchDB(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "sluice-agent-bench-v1")
	path := filepath.Join(dir, "bench.db")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// Built under another name and renamed, so an interrupted build never
	// leaves a short table that later runs would trust.
	tmp := path + ".building"
	os.Remove(tmp)
	db, err := sql.Open("sqlite", tmp)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		`PRAGMA journal_mode = OFF`,
		`PRAGMA synchronous = OFF`,
		`CREATE TABLE t (id INTEGER, name TEXT, score REAL, day DATE, bucket INTEGER, note TEXT)`,
		`INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000)
		 SELECT x, 'name-' || x, x * 0.25, date('2020-01-01', '+' || (x % 1500) || ' days'), x % 97,
		        'a short free-text note about record ' || x FROM c`,
	} {
		if _, err := db.Exec(s); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchFragment() *planner.Fragment {
	return &planner.Fragment{
		QueryID: "bench", Dataset: "bench.t", Requester: sluice.Principal{Name: "owner", Department: "bench"},
		Select: sel("id", col("id"), "name", col("name"), "score", col("score"),
			"day", col("day"), "bucket", col("bucket"), "note", col("note")),
	}
}

func BenchmarkFlightScan1M(b *testing.B) {
	dbPath := benchDB(b)
	dir := b.TempDir()
	plain := func(name string, typ sluice.ColumnType) *sluice.Column {
		return &sluice.Column{Name: name, Type: typ, Grade: sluice.GradeL1, Release: sluice.ReleasePlain}
	}
	fx := startAgent(b, dir, func(pins []string) *sluice.Department {
		d := department(dir, dbPath, pins)
		d.ID = "bench"
		d.Datasets = []*sluice.Dataset{{
			Name: "t", Source: "main", ShareClass: sluice.ShareUnconditional,
			Columns: []*sluice.Column{
				plain("id", sluice.TypeInteger), plain("name", sluice.TypeText), plain("score", sluice.TypeFloat),
				plain("day", sluice.TypeDate), plain("bucket", sluice.TypeInteger), plain("note", sluice.TypeText),
			},
		}}
		return d
	}, nil, nil)
	c, err := Dial(context.Background(), "bench", fx.addr, fx.serverPin, fx.brokerCert)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		s, err := c.Fetch(ctx, benchFragment())
		if err != nil {
			b.Fatal(err)
		}
		var rows int64
		for s.Next() {
			rows += s.Record().NumRows()
		}
		if err := s.Err(); err != nil {
			b.Fatal(err)
		}
		s.Release()
		if rows != benchRows {
			b.Fatalf("got %d rows", rows)
		}
		total += rows
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkDirectSQLXScan1M(b *testing.B) {
	db, err := sqlx.Open("sqlite", "file:"+benchDB(b)+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		rs, err := db.QueryContext(ctx, `SELECT id, name, score, day, bucket, note FROM t`)
		if err != nil {
			b.Fatal(err)
		}
		var (
			id, bucket      int64
			name, day, note string
			score           float64
			rows            int64
		)
		for rs.Next() {
			if err := rs.Scan(&id, &name, &score, &day, &bucket, &note); err != nil {
				b.Fatal(err)
			}
			rows++
		}
		if err := rs.Err(); err != nil {
			b.Fatal(err)
		}
		rs.Close()
		if rows != benchRows {
			b.Fatalf("got %d rows", rows)
		}
		total += rows
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}
