package tpch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" driver
	_ "modernc.org/sqlite"           // registers the "sqlite" driver
)

// Dialect is the database a table is written into.
type Dialect string

// The dialects Load writes (DuckDB only for CreateTable; see reference.go).
const (
	SQLite     Dialect = "sqlite"   // modernc.org/sqlite, driver "sqlite"
	PostgreSQL Dialect = "postgres" // pgx, driver "pgx"
	MySQL      Dialect = "mysql"    // MariaDB or MySQL, driver "mysql"
	DuckDB     Dialect = "duckdb"
)

func (d Dialect) quote(id string) string {
	if d == MySQL {
		return "`" + strings.ReplaceAll(id, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(id, `"`, `""`) + `"`
}

// name returns table t's name in schema ("" for none), quoted.
func (d Dialect) name(schema, t string) string {
	if schema == "" {
		return d.quote(t)
	}
	return d.quote(schema) + "." + d.quote(t)
}

func (d Dialect) sqlType(c Column) string {
	switch c.Kind {
	case KindInt:
		if d == SQLite {
			return "INTEGER"
		}
		return "BIGINT"
	case KindDecimal:
		return "DECIMAL(15,2)"
	case KindDate:
		return "DATE"
	}
	return "VARCHAR(" + strconv.Itoa(c.Len) + ")"
}

// CreateTable returns the CREATE TABLE statement of t in dialect d, in
// schema ("" for none): the spec's columns, NOT NULL, and t's primary key.
func CreateTable(d Dialect, schema string, t Table) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE " + d.name(schema, t.Name) + " (\n")
	for _, c := range t.Columns {
		b.WriteString("\t" + c.Name + " " + d.sqlType(c) + " NOT NULL,\n")
	}
	b.WriteString("\tPRIMARY KEY (" + strings.Join(t.Key, ", ") + ")\n)")
	return b.String()
}

// Load writes tables (all eight if none are named) at scale factor sf
// into db, a database of dialect d (SQLite, PostgreSQL or MySQL), in
// schema: the PostgreSQL schema or MySQL database, created if it does not
// exist; "" for the connection's own (and always for SQLite). Each table
// is dropped if it exists and created with its primary key.
//
// SQLite is loaded in one transaction with journal_mode=OFF and
// synchronous=OFF (restored afterwards), PostgreSQL with COPY when db
// uses the pgx driver, MySQL with multi-row INSERTs.
func Load(ctx context.Context, db *sql.DB, d Dialect, schema string, sf float64, tables ...string) error {
	if len(tables) == 0 {
		for _, t := range Tables {
			tables = append(tables, t.Name)
		}
	}
	var ts []Table
	for _, name := range tables {
		t, ok := Lookup(name)
		if !ok {
			return fmt.Errorf("tpch: no table %q", name)
		}
		ts = append(ts, t)
	}
	if d != SQLite && d != PostgreSQL && d != MySQL {
		return fmt.Errorf("tpch: Load does not write %s", d)
	}
	if d == SQLite {
		schema = ""
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if schema != "" {
		create := "CREATE SCHEMA IF NOT EXISTS " + d.quote(schema)
		if d == MySQL {
			create = "CREATE DATABASE IF NOT EXISTS " + d.quote(schema)
		}
		if _, err := conn.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("tpch: %s: %w", create, err)
		}
	}
	if d == SQLite {
		restore, err := sqliteFast(ctx, conn)
		if err != nil {
			return err
		}
		defer restore()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range ts {
		for _, stmt := range []string{"DROP TABLE IF EXISTS " + d.name(schema, t.Name), CreateTable(d, schema, t)} {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("tpch: %s: %w", stmt, err)
			}
		}
		rows, err := Rows(sf, t.Name)
		if err != nil {
			return err
		}
		switch d {
		case SQLite:
			err = insertRows(ctx, tx, d, schema, t, rows, 64)
		case PostgreSQL:
			err = copyPostgres(ctx, conn, schema, t, rows)
			if errors.Is(err, errNotPgx) {
				err = insertRows(ctx, tx, d, schema, t, rows, 1000)
			}
		case MySQL:
			err = insertRows(ctx, tx, d, schema, t, rows, 1000)
		}
		if err != nil {
			return fmt.Errorf("tpch: loading %s: %w", t.Name, err)
		}
	}
	return tx.Commit()
}

// sqliteFast turns SQLite's journal and syncs off on conn and returns
// what turns them back on.
func sqliteFast(ctx context.Context, conn *sql.Conn) (restore func(), err error) {
	var journal, synchronous string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		return nil, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&synchronous); err != nil {
		return nil, err
	}
	for _, p := range []string{"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF"} {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			return nil, fmt.Errorf("tpch: %s: %w", p, err)
		}
	}
	return func() {
		conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA journal_mode="+journal)
		conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous="+synchronous)
	}, nil
}

// value converts a generated value to what database/sql sends to d.
func value(d Dialect, v any) any {
	switch v := v.(type) {
	case Decimal:
		if d == SQLite {
			// NUMERIC affinity stores a number, REAL or INTEGER, either way.
			return v.Float64()
		}
		return v.String()
	case Date:
		return v.String()
	}
	return v
}

// insertRows inserts rows into t with prepared INSERTs of batch rows
// each (and one for the rest).
func insertRows(ctx context.Context, tx *sql.Tx, d Dialect, schema string, t Table, rows iter.Seq[Row], batch int) error {
	ncol := len(t.Columns)
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, s := range stmts {
			s.Close()
		}
	}()
	args := make([]any, 0, batch*ncol)
	flush := func() error {
		n := len(args) / ncol
		if n == 0 {
			return nil
		}
		s, ok := stmts[n]
		if !ok {
			var err error
			if s, err = tx.PrepareContext(ctx, insertSQL(d, schema, t, n)); err != nil {
				return err
			}
			stmts[n] = s
		}
		_, err := s.ExecContext(ctx, args...)
		args = args[:0]
		return err
	}
	for row := range rows {
		for _, v := range row {
			args = append(args, value(d, v))
		}
		if len(args) == cap(args) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// insertSQL is an INSERT of n rows into t.
func insertSQL(d Dialect, schema string, t Table, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + d.name(schema, t.Name) + " (" + strings.Join(t.ColumnNames(), ", ") + ") VALUES ")
	p := 0
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range t.Columns {
			if j > 0 {
				b.WriteByte(',')
			}
			p++
			if d == PostgreSQL {
				b.WriteString("$" + strconv.Itoa(p))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

var errNotPgx = errors.New("not a pgx connection")

// copyPostgres copies rows into t with COPY, on conn's pgx connection.
// (The COPY runs on the same connection as the open transaction, so it is
// part of it.)
func copyPostgres(ctx context.Context, conn *sql.Conn, schema string, t Table, rows iter.Seq[Row]) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNotPgx
		}
		next, stop := iter.Pull(rows)
		defer stop()
		src := &copySource{next: next, vals: make([]any, len(t.Columns))}
		name := pgx.Identifier{t.Name}
		if schema != "" {
			name = pgx.Identifier{schema, t.Name}
		}
		_, err := c.Conn().CopyFrom(ctx, name, t.ColumnNames(), src)
		return err
	})
}

type copySource struct {
	next func() (Row, bool)
	row  Row
	vals []any
}

func (s *copySource) Next() bool {
	var ok bool
	s.row, ok = s.next()
	return ok
}

func (s *copySource) Values() ([]any, error) {
	for i, v := range s.row {
		switch v := v.(type) {
		case Decimal:
			s.vals[i] = pgtype.Numeric{Int: big.NewInt(int64(v)), Exp: -2, Valid: true}
		case Date:
			s.vals[i] = pgtype.Date{Time: v.Time(), Valid: true}
		default:
			s.vals[i] = v
		}
	}
	return s.vals, nil
}

func (s *copySource) Err() error { return nil }

// WriteSQLite writes the eight tables at scale factor sf into one SQLite
// file per department in dir, <department>.db (replacing any), and
// returns each department's path.
func WriteSQLite(ctx context.Context, dir string, sf float64) (map[string]string, error) {
	paths := map[string]string{}
	for _, dept := range DepartmentNames() {
		path := filepath.Join(dir, dept+".db")
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		db, err := sql.Open("sqlite", path)
		if err != nil {
			return nil, err
		}
		err = Load(ctx, db, SQLite, "", sf, TablesOf(dept)...)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("tpch: %s: %w", path, err)
		}
		paths[dept] = path
	}
	return paths, nil
}
