package adapters

import (
	"context"
	"sort"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// ColumnInfo is one column of a table as its database declares it.
type ColumnInfo struct {
	// Name is the column's name exactly as the database spells it.
	Name string
	// DBType is the declared database type (e.g. "varchar(18)", "TEXT",
	// "timestamp with time zone"); empty when SQLite has none.
	DBType string
	// Type is the catalog type the column is best read as (CatalogType).
	Type sluice.ColumnType
}

// Tables lists the tables and views of the source, sorted: SQLite's
// schema (without its internal sqlite_ tables), PostgreSQL's current schema,
// MySQL's current database. Names are as the database spells them.
func (db *DB) Tables(ctx context.Context) ([]string, error) {
	if db.fl != nil {
		return db.fl.tables(ctx)
	}
	var q string
	switch db.driver {
	case sluice.DriverSQLite:
		q = `SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	case sluice.DriverPostgres:
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	case sluice.DriverMySQL:
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "source %s: cannot list the tables of driver %q", quote(db.name), db.driver)
	}
	var names []string
	if err := db.x.SelectContext(ctx, &names, q); err != nil {
		return nil, db.introspectError(ctx, err)
	}
	sort.Strings(names)
	return names, nil
}

// FindTable resolves name against the source's tables and views (see
// Tables) and returns it as the database spells it. SQLite matches without
// regard to case, as SQLite resolves names; PostgreSQL and MySQL match
// exactly, since a quoted name is case-sensitive there. An unknown table is
// ENotFound naming it and listing up to 20 tables that exist. The name is
// only ever compared with the database's own list, never put in SQL.
func (db *DB) FindTable(ctx context.Context, name string) (string, error) {
	tables, err := db.Tables(ctx)
	if err != nil {
		return "", err
	}
	var fold string
	for _, t := range tables {
		if t == name {
			return t, nil
		}
		if fold == "" && strings.EqualFold(t, name) {
			fold = t
		}
	}
	if fold != "" && db.driver == sluice.DriverSQLite {
		return fold, nil
	}
	hint := ""
	if fold != "" {
		hint = " (names are case-sensitive here; did you mean " + quote(fold) + "?)"
	}
	return "", sluice.Errorf(sluice.ENotFound, "source %s has no table or view %s%s; %s",
		quote(db.name), quote(name), hint, listSome("tables", tables, 20))
}

// listSome renders "it has tables: a, b, c (and N more)" for messages.
func listSome(what string, names []string, max int) string {
	if len(names) == 0 {
		return "it has no " + what
	}
	shown := names
	more := ""
	if len(shown) > max {
		shown = shown[:max]
		more = " (and " + strconv.Itoa(len(names)-max) + " more)"
	}
	return "it has " + what + ": " + strings.Join(shown, ", ") + more
}

// Columns returns the columns of table in declaration order. The table
// must exist as spelled (resolve it with FindTable first); it is passed to
// the database as a bind parameter, never as SQL text.
func (db *DB) Columns(ctx context.Context, table string) ([]ColumnInfo, error) {
	if db.fl != nil {
		return db.fl.columns(ctx, table)
	}
	var q string
	switch db.driver {
	case sluice.DriverSQLite:
		// The table-valued pragma takes the name as a bind parameter.
		q = `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`
	case sluice.DriverPostgres:
		q = `SELECT column_name, CASE WHEN data_type IN ('USER-DEFINED', 'ARRAY') THEN udt_name ELSE data_type END
		     FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
	case sluice.DriverMySQL:
		q = `SELECT column_name, column_type FROM information_schema.columns
		     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position`
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "source %s: cannot describe tables of driver %q", quote(db.name), db.driver)
	}
	rows, err := db.x.QueryContext(ctx, q, table)
	if err != nil {
		return nil, db.introspectError(ctx, err)
	}
	defer rows.Close()
	var out []ColumnInfo
	for rows.Next() {
		var c ColumnInfo
		var typ *string
		if err := rows.Scan(&c.Name, &typ); err != nil {
			return nil, db.introspectError(ctx, err)
		}
		if typ != nil {
			c.DBType = *typ
		}
		c.Type = CatalogType(db.driver, c.DBType)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, db.introspectError(ctx, err)
	}
	return out, nil
}

// Probe checks that the agent can read columns of table by running a query
// that returns no row: SELECT "t"."c1", "t"."c2" FROM "t" WHERE 1 = 0, with
// every identifier quoted for the dialect. Columns are qualified with the
// table because SQLite takes an unknown double-quoted name for a string
// literal. Use it after FindTable and Columns, with names those returned.
func (db *DB) Probe(ctx context.Context, table string, columns []string) error {
	if len(columns) == 0 {
		return sluice.Errorf(sluice.EInvalid, "no column to read from table %s of source %s", quote(table), quote(db.name))
	}
	qt := QuoteIdent(db.driver, table)
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, c := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(qt + "." + QuoteIdent(db.driver, c))
	}
	sb.WriteString(" FROM ")
	sb.WriteString(qt)
	sb.WriteString(" WHERE 1 = 0")
	if db.fl != nil {
		return db.fl.probe(ctx, sb.String())
	}
	rows, err := db.x.QueryContext(ctx, sb.String())
	if err != nil {
		return db.introspectError(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return db.introspectError(ctx, err)
	}
	return nil
}

func (db *DB) introspectError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return db.ctxError(cerr)
	}
	return db.queryError(err)
}

// QuoteIdent quotes one identifier for driver's dialect: backticks for
// MySQL, double quotes otherwise, with the quote character doubled inside.
func QuoteIdent(driver sluice.Driver, name string) string {
	if driver == sluice.DriverMySQL {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// CatalogType maps a declared database type to the catalog type a column
// is best read as. Types with no closer match (character types, JSON, UUID,
// binary, times of day, intervals, enums, arrays, money, an SQLite column
// without a declared type) map to text, which every value converts to.
//
//   - SQLite follows its type-affinity rules on the declared type, refined
//     for the names applications use: BOOL… → boolean, DATETIME and
//     TIMESTAMP… → timestamp, DATE → date, …INT… → integer,
//     CHAR/CLOB/TEXT/BLOB → text, REAL/FLOA/DOUB → float, DEC…/NUMERIC →
//     decimal.
//   - PostgreSQL takes information_schema data_type names: smallint,
//     integer, bigint → integer; real, double precision → float; numeric →
//     decimal; boolean; date; timestamp with or without time zone →
//     timestamp.
//   - MySQL and MariaDB take information_schema column_type: tinyint(1)
//     and bit(1) → boolean (MySQL's BOOLEAN); other integer types and year →
//     integer; float, double → float; decimal → decimal; date; datetime and
//     timestamp → timestamp.
func CatalogType(driver sluice.Driver, dbType string) sluice.ColumnType {
	t := strings.ToLower(strings.TrimSpace(dbType))
	switch driver {
	case sluice.DriverSQLite:
		return sqliteType(t)
	case sluice.DriverPostgres:
		return postgresType(t)
	case sluice.DriverMySQL:
		return mysqlType(t)
	}
	return sluice.TypeText
}

func sqliteType(t string) sluice.ColumnType {
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(t, s) {
				return true
			}
		}
		return false
	}
	switch {
	case t == "":
		return sluice.TypeText
	case has("bool"):
		return sluice.TypeBoolean
	case has("datetime", "timestamp"):
		return sluice.TypeTimestamp
	case has("date"):
		return sluice.TypeDate
	case has("int"):
		return sluice.TypeInteger
	case has("char", "clob", "text", "blob"):
		return sluice.TypeText
	case has("real", "floa", "doub"):
		return sluice.TypeFloat
	case has("dec", "numeric"):
		return sluice.TypeDecimal
	}
	return sluice.TypeText
}

func postgresType(t string) sluice.ColumnType {
	// Strip a modifier such as numeric(12,2) or timestamp(3) with time zone.
	base := t
	if i := strings.IndexByte(base, '('); i >= 0 {
		if j := strings.IndexByte(base[i:], ')'); j >= 0 {
			base = strings.TrimSpace(base[:i]) + base[i+j+1:]
		}
	}
	switch base {
	case "smallint", "integer", "bigint", "int2", "int4", "int8", "smallserial", "serial", "bigserial":
		return sluice.TypeInteger
	case "real", "double precision", "float4", "float8":
		return sluice.TypeFloat
	case "numeric", "decimal":
		return sluice.TypeDecimal
	case "boolean", "bool":
		return sluice.TypeBoolean
	case "date":
		return sluice.TypeDate
	}
	if strings.HasPrefix(base, "timestamp") {
		return sluice.TypeTimestamp
	}
	return sluice.TypeText
}

func mysqlType(t string) sluice.ColumnType {
	base, mod := t, ""
	if i := strings.IndexByte(t, '('); i >= 0 {
		base = t[:i]
		if j := strings.IndexByte(t[i:], ')'); j >= 0 {
			mod = t[i+1 : i+j]
		}
	} else if i := strings.IndexByte(t, ' '); i >= 0 {
		base = t[:i] // "int unsigned"
	}
	switch base {
	case "bool", "boolean":
		return sluice.TypeBoolean
	case "tinyint", "bit":
		if mod == "1" {
			return sluice.TypeBoolean
		}
		if base == "bit" {
			return sluice.TypeText
		}
		return sluice.TypeInteger
	case "smallint", "mediumint", "int", "integer", "bigint", "year":
		return sluice.TypeInteger
	case "float", "double", "real", "double precision":
		return sluice.TypeFloat
	case "decimal", "numeric", "dec", "fixed":
		return sluice.TypeDecimal
	case "date":
		return sluice.TypeDate
	case "datetime", "timestamp":
		return sluice.TypeTimestamp
	}
	return sluice.TypeText
}
