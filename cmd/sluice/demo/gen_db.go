package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// sqlType is the declared SQLite column type of a catalog type. SQLite only
// keeps an affinity, but adapters read the declared type to pick Arrow types.
func sqlType(t sluice.ColumnType) string {
	switch t {
	case sluice.TypeInteger, sluice.TypeBoolean:
		return "INTEGER"
	case sluice.TypeFloat:
		return "REAL"
	case sluice.TypeDecimal:
		return "DECIMAL(18,2)"
	case sluice.TypeDate:
		return "DATE" // 'YYYY-MM-DD' text
	case sluice.TypeTimestamp:
		return "TIMESTAMP"
	default:
		return "TEXT"
	}
}

// indexedColumns are the join and lookup keys worth an index. Identity
// numbers are unique in the registries that own them.
var indexedColumns = map[string]bool{"id_card": true, "legal_rep_id_card": true, "credit_code": true}

func uniqueIndex(ds *sluice.Dataset, col string) bool {
	switch ds.FullName() + "." + col {
	case "civil.residents.id_card", "health.insured.id_card", "police.household.id_card", "market.enterprises.credit_code":
		return true
	}
	return false
}

// writeDatabase builds the department's database under a temporary name in
// the same folder and renames it over path, so a regenerated world replaces
// the old database whole. It returns the row count per dataset.
func writeDatabase(ctx context.Context, path string, d *sluice.Department, data tables) (map[string]int, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("demo: creating database of %s: %w", d.ID, err)
	}
	tmp := f.Name()
	_ = f.Close()
	cleanup := func() {
		for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
			_ = os.Remove(tmp + suffix)
		}
	}
	counts, err := fillDatabase(ctx, tmp, d, data)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("demo: writing database of %s (%s): %w", d.ID, path, err)
	}
	if err := syncFile(tmp); err != nil {
		cleanup()
		return nil, fmt.Errorf("demo: writing database of %s (%s): %w", d.ID, path, err)
	}
	// Sidecar files of the old database would be replayed against the new
	// one; the old database is being replaced, so they are worthless.
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			cleanup()
			return nil, fmt.Errorf("demo: removing stale %s: %w", path+suffix, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		cleanup()
		return nil, fmt.Errorf("demo: replacing %s: %w", path, err)
	}
	return counts, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func fillDatabase(ctx context.Context, path string, d *sluice.Department, data tables) (counts map[string]int, err error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// One connection, so the pragmas below apply to every statement.
	db.SetMaxOpenConns(1)
	// The file is private until renamed into place: if this crashes it is
	// thrown away, so it needs no journal and no fsync per commit.
	for _, p := range []string{"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF"} {
		if _, err := db.ExecContext(ctx, p); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	counts = map[string]int{}
	for _, ds := range d.Datasets {
		rows, ok := data[ds.FullName()]
		if !ok {
			return nil, sluice.Errorf(sluice.EInternal, "demo: no data generated for %s", ds.FullName())
		}
		if err := fillTable(ctx, tx, ds, rows); err != nil {
			return nil, err
		}
		counts[ds.FullName()] = len(rows)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	// A normal rollback journal from here on: agents open the file as an
	// ordinary database.
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=DELETE"); err != nil {
		return nil, err
	}
	return counts, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func fillTable(ctx context.Context, tx *sql.Tx, ds *sluice.Dataset, rows [][]any) error {
	defs := make([]string, len(ds.Columns))
	names := make([]string, len(ds.Columns))
	marks := make([]string, len(ds.Columns))
	for i, c := range ds.Columns {
		names[i] = quoteIdent(c.Name)
		defs[i] = names[i] + " " + sqlType(c.Type) + " NOT NULL"
		marks[i] = "?"
	}
	table := quoteIdent(ds.Table)
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (\n  %s\n)", table, strings.Join(defs, ",\n  "))); err != nil {
		return fmt.Errorf("creating table %s: %w", ds.Table, err)
	}
	stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(names, ", "), strings.Join(marks, ", ")))
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", ds.Table, err)
	}
	defer stmt.Close()
	for i, row := range rows {
		if len(row) != len(ds.Columns) {
			return sluice.Errorf(sluice.EInternal, "demo: row %d of %s has %d values for %d columns", i, ds.FullName(), len(row), len(ds.Columns))
		}
		if _, err := stmt.ExecContext(ctx, row...); err != nil {
			return fmt.Errorf("inserting row %d into %s: %w", i, ds.Table, err)
		}
	}
	// Indexes after the load: building them once is faster than keeping
	// them up to date row by row.
	for _, c := range ds.Columns {
		if !indexedColumns[c.Name] {
			continue
		}
		kind := "INDEX"
		if uniqueIndex(ds, c.Name) {
			kind = "UNIQUE INDEX"
		}
		q := fmt.Sprintf("CREATE %s %s ON %s (%s)", kind, quoteIdent(ds.Table+"_"+c.Name), table, quoteIdent(c.Name))
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("indexing %s.%s: %w", ds.Table, c.Name, err)
		}
	}
	return nil
}
