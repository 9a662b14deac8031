package adapters

import (
	"context"
	"slices"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

func TestCatalogType(t *testing.T) {
	tests := []struct {
		driver sluice.Driver
		dbType string
		want   sluice.ColumnType
	}{
		{sluice.DriverSQLite, "", sluice.TypeText},
		{sluice.DriverSQLite, "INTEGER", sluice.TypeInteger},
		{sluice.DriverSQLite, "unsigned big int", sluice.TypeInteger},
		{sluice.DriverSQLite, "VARCHAR(18)", sluice.TypeText},
		{sluice.DriverSQLite, "BLOB", sluice.TypeText},
		{sluice.DriverSQLite, "REAL", sluice.TypeFloat},
		{sluice.DriverSQLite, "DOUBLE PRECISION", sluice.TypeFloat},
		{sluice.DriverSQLite, "DECIMAL(10,2)", sluice.TypeDecimal},
		{sluice.DriverSQLite, "NUMERIC", sluice.TypeDecimal},
		{sluice.DriverSQLite, "BOOLEAN", sluice.TypeBoolean},
		{sluice.DriverSQLite, "DATE", sluice.TypeDate},
		{sluice.DriverSQLite, "DATETIME", sluice.TypeTimestamp},
		{sluice.DriverSQLite, "TIMESTAMP", sluice.TypeTimestamp},
		{sluice.DriverSQLite, "GEOMETRY", sluice.TypeText},
		{sluice.DriverPostgres, "bigint", sluice.TypeInteger},
		{sluice.DriverPostgres, "smallint", sluice.TypeInteger},
		{sluice.DriverPostgres, "double precision", sluice.TypeFloat},
		{sluice.DriverPostgres, "real", sluice.TypeFloat},
		{sluice.DriverPostgres, "numeric", sluice.TypeDecimal},
		{sluice.DriverPostgres, "numeric(12,2)", sluice.TypeDecimal},
		{sluice.DriverPostgres, "boolean", sluice.TypeBoolean},
		{sluice.DriverPostgres, "date", sluice.TypeDate},
		{sluice.DriverPostgres, "timestamp without time zone", sluice.TypeTimestamp},
		{sluice.DriverPostgres, "timestamp(3) with time zone", sluice.TypeTimestamp},
		{sluice.DriverPostgres, "character varying", sluice.TypeText},
		{sluice.DriverPostgres, "money", sluice.TypeText},
		{sluice.DriverPostgres, "uuid", sluice.TypeText},
		{sluice.DriverPostgres, "interval", sluice.TypeText},
		{sluice.DriverMySQL, "tinyint(1)", sluice.TypeBoolean},
		{sluice.DriverMySQL, "tinyint(4)", sluice.TypeInteger},
		{sluice.DriverMySQL, "tinyint", sluice.TypeInteger},
		{sluice.DriverMySQL, "bit(1)", sluice.TypeBoolean},
		{sluice.DriverMySQL, "bit(8)", sluice.TypeText},
		{sluice.DriverMySQL, "int(11) unsigned", sluice.TypeInteger},
		{sluice.DriverMySQL, "bigint unsigned", sluice.TypeInteger},
		{sluice.DriverMySQL, "year(4)", sluice.TypeInteger},
		{sluice.DriverMySQL, "double", sluice.TypeFloat},
		{sluice.DriverMySQL, "float", sluice.TypeFloat},
		{sluice.DriverMySQL, "decimal(12,2)", sluice.TypeDecimal},
		{sluice.DriverMySQL, "date", sluice.TypeDate},
		{sluice.DriverMySQL, "datetime(6)", sluice.TypeTimestamp},
		{sluice.DriverMySQL, "timestamp", sluice.TypeTimestamp},
		{sluice.DriverMySQL, "varchar(18)", sluice.TypeText},
		{sluice.DriverMySQL, "enum('a','b')", sluice.TypeText},
		{sluice.DriverMySQL, "longtext", sluice.TypeText},
		{"oracle", "NUMBER", sluice.TypeText},
	}
	for _, tt := range tests {
		if got := CatalogType(tt.driver, tt.dbType); got != tt.want {
			t.Errorf("CatalogType(%s, %q) = %s, want %s", tt.driver, tt.dbType, got, tt.want)
		}
	}
}

func TestTablesColumnsProbeSQLite(t *testing.T) {
	path := newSQLiteFile(t,
		`CREATE TABLE b (x INTEGER, "y z" TEXT)`,
		`CREATE TABLE a (n NUMERIC)`,
		`CREATE VIEW v AS SELECT x FROM b`,
	)
	db := openSQLite(t, path)
	ctx := context.Background()
	tables, err := db.Tables(ctx)
	if err != nil || !slices.Equal(tables, []string{"a", "b", "v"}) {
		t.Fatalf("Tables = %v, %v", tables, err)
	}
	name, err := db.FindTable(ctx, "B")
	if err != nil || name != "b" {
		t.Fatalf("FindTable(B) = %q, %v", name, err)
	}
	if _, err := db.FindTable(ctx, "b; DROP TABLE b"); sluice.ErrorCode(err) != sluice.ENotFound {
		t.Fatalf("FindTable with injection: %v, want not found", err)
	}
	cols, err := db.Columns(ctx, "b")
	want := []ColumnInfo{{"x", "INTEGER", sluice.TypeInteger}, {"y z", "TEXT", sluice.TypeText}}
	if err != nil || !slices.Equal(cols, want) {
		t.Fatalf("Columns = %+v, %v", cols, err)
	}
	if err := db.Probe(ctx, "b", []string{"x", "y z"}); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if err := db.Probe(ctx, "b", []string{"nope"}); sluice.ErrorCode(err) != sluice.EInvalid {
		t.Fatalf("Probe of a missing column: %v, want invalid", err)
	}
}
