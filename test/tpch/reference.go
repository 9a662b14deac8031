//go:build duckdb_arrow

package tpch

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"iter"

	"github.com/duckdb/duckdb-go/v2"
)

// LoadDuckDB writes the eight tables at scale factor sf into db, a DuckDB
// database (driver "duckdb"), as department.table: schemas trade,
// customers and supply, so that Query's text runs on it as it is.
func LoadDuckDB(ctx context.Context, db *sql.DB, sf float64) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, dept := range DepartmentNames() {
		if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+DuckDB.quote(dept)); err != nil {
			return err
		}
	}
	return Generate(sf, func(t Table, rows iter.Seq[Row]) error {
		if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+DuckDB.name(t.Department, t.Name)); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, CreateTable(DuckDB, t.Department, t)); err != nil {
			return err
		}
		return conn.Raw(func(dc any) error {
			a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), t.Department, t.Name)
			if err != nil {
				return err
			}
			vals := make([]driver.Value, len(t.Columns))
			for row := range rows {
				for i, v := range row {
					switch v := v.(type) {
					case Decimal:
						// The appender takes a DECIMAL's unscaled value.
						vals[i] = int64(v)
					case Date:
						vals[i] = v.Time()
					default:
						vals[i] = v
					}
				}
				if err := a.AppendRow(vals...); err != nil {
					a.Close()
					return err
				}
			}
			return a.Close()
		})
	})
}

// DuckDBAnswers loads scale factor sf into an in-memory DuckDB
// (LoadDuckDB) and returns the answer of each of the 22 queries (Query),
// by query number: the rows in order, each value as database/sql scans it
// into an any from DuckDB (int64, float64, string, time.Time,
// duckdb.Decimal, …).
func DuckDBAnswers(ctx context.Context, sf float64) (map[int][][]any, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := LoadDuckDB(ctx, db, sf); err != nil {
		return nil, err
	}
	answers := make(map[int][][]any, NumQueries)
	for n := 1; n <= NumQueries; n++ {
		rows, err := QueryRows(ctx, db, Query(n))
		if err != nil {
			return nil, fmt.Errorf("tpch: Q%d: %w", n, err)
		}
		answers[n] = rows
	}
	return answers, nil
}
