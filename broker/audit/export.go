package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// where builds the WHERE clause of a search, with ? placeholders. Fields
// that are not search columns are read from the hashed body rather than a
// side table, so there is no second copy that could be edited to hide an
// entry. (Usage statistics do use the dataset index, which Verify checks
// against the bodies.)
func (f Filter) where(d sqlstore.Dialect) (string, []any) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("principal", f.Principal)
	eq("purpose", f.Purpose)
	eq("decision", f.Decision)
	eq("kind", f.Kind)
	eq("query_id", f.QueryID)
	if f.Department != "" {
		where = append(where, d.FoldEq("department"))
		args = append(args, f.Department)
	}
	// The body is TEXT in both stores (its exact bytes are what is hashed);
	// PostgreSQL parses it as jsonb for these two filters.
	if f.Dataset != "" {
		if d.IsPostgres() {
			where = append(where, `EXISTS (SELECT 1 FROM jsonb_array_elements_text(body::jsonb -> 'datasets') ds(v) WHERE lower(ds.v) = lower(?))`)
		} else {
			where = append(where, `EXISTS (SELECT 1 FROM json_each(body, '$.datasets') WHERE value = ? COLLATE NOCASE)`)
		}
		args = append(args, f.Dataset)
	}
	if f.Column != "" {
		if d.IsPostgres() {
			where = append(where, `EXISTS (SELECT 1 FROM jsonb_array_elements(body::jsonb -> 'columns') c(v)
			WHERE lower(c.v ->> 'column') = lower(?)
			   OR lower((c.v ->> 'dataset') || '.' || (c.v ->> 'column')) = lower(?))`)
		} else {
			where = append(where, `EXISTS (SELECT 1 FROM json_each(body, '$.columns') c
			WHERE json_extract(c.value, '$.column') = ? COLLATE NOCASE
			   OR json_extract(c.value, '$.dataset') || '.' || json_extract(c.value, '$.column') = ? COLLATE NOCASE)`)
		}
		args = append(args, f.Column, f.Column)
	}
	if !f.Since.IsZero() {
		where = append(where, "time_us >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "time_us < ?")
		args = append(args, f.Until.UnixMicro())
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// Export writes the entries matching f, oldest first, as JSON Lines: each
// line is the entry's canonical body with its hash filled in (remove the
// hash value, i.e. set "hash":"", and the SHA-256 of the line is the hash).
// It streams, so any number of entries can be exported; f.Limit > 0 keeps
// only the most recent f.Limit matches, and there is no default limit. It
// returns the number of entries written.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter) (int, error) {
	lim := f.Limit
	f.Limit = 0
	if _, err := f.check(); err != nil {
		return 0, err
	}
	if lim < 0 {
		return 0, sluice.Errorf(sluice.EInvalid, "export limit must not be negative; got %d", lim)
	}
	if err := l.readable(); err != nil {
		return 0, err
	}
	where, args := f.where(l.d)
	q := `SELECT ` + auditchain.EntryColumns + ` FROM audit_entries` + where + ` ORDER BY seq`
	if lim > 0 {
		q = `SELECT ` + auditchain.EntryColumns + ` FROM (SELECT ` + auditchain.EntryColumns + ` FROM audit_entries` + where + ` ORDER BY seq DESC LIMIT ?) AS recent ORDER BY seq`
		args = append(args, lim)
	}
	rows, err := l.handle().QueryContext(ctx, l.d.Rebind(q), args...)
	if err != nil {
		return 0, readFailed("export", err)
	}
	defer rows.Close()
	bw := bufio.NewWriterSize(w, 1<<16)
	n := 0
	for rows.Next() {
		r, err := auditchain.ScanRow(rows)
		if err != nil {
			return n, readFailed("export", err)
		}
		line := auditchain.Line(r.Body, r.Hash)
		if line == nil {
			return n, readFailed(fmt.Sprintf("entry %d", r.Seq), fmt.Errorf("body is not in canonical form; run `sluice audit verify`"))
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return n, sluice.Errorf(sluice.EUnavailable, "audit export could not be written after %d entries: %v", n, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, readFailed("export", err)
	}
	if err := bw.Flush(); err != nil {
		return n, sluice.Errorf(sluice.EUnavailable, "audit export could not be written after %d entries: %v", n, err)
	}
	return n, nil
}
