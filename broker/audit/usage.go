package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// UsageFilter selects the query entries Usage counts. Empty fields match
// everything. Since is inclusive and Until exclusive.
type UsageFilter struct {
	Dataset    string // department.dataset, matched case-insensitively
	Department string // the requesting principal's department, matched case-insensitively
	Purpose    string
	Since      time.Time
	Until      time.Time
}

// UsageRow is the use of one dataset by one requesting department on one
// day: the usage statistics by call count, frequency and scenario (purpose)
// the data-sharing rules ask the platform to keep.
type UsageRow struct {
	Day        string   `json:"day"`        // YYYY-MM-DD in UTC
	Dataset    string   `json:"dataset"`    // department.dataset, lower-cased
	Department string   `json:"department"` // the requesting principal's department
	Calls      int64    `json:"calls"`      // query entries (allowed and denied) naming the dataset
	Denied     int64    `json:"denied"`     // of which denied
	Rows       int64    `json:"rows"`       // rows released, from the result entries of those queries
	Purposes   []string `json:"purposes"`   // distinct purposes, sorted
}

// Usage counts, per UTC day, dataset and requesting department, the query
// entries naming the dataset, how many of them were denied, the rows their
// results released and the purposes they declared. It is computed by the
// store from the dataset index and the search columns, so memory does not
// grow with the log. A query naming several datasets counts once for each,
// with all of its rows. It covers the entries in the store: entries moved
// to archives are no longer counted. Rows are sorted by day, dataset and
// department.
func (l *Log) Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error) {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, sluice.Errorf(sluice.EInvalid, "usage window is empty: until (%s) must be after since (%s)", f.Until.UTC().Format(time.RFC3339), f.Since.UTC().Format(time.RFC3339))
	}
	if err := l.readable(); err != nil {
		return nil, err
	}
	// The pieces that differ: the UTC day of a microsecond time, a result
	// body's rows, and a JSON array of the distinct purposes (a JSON array
	// because a purpose may contain any separator).
	day := `strftime('%Y-%m-%d', e.time_us / 1000000, 'unixepoch')`
	rows := `CAST(json_extract(body, '$.rows') AS INTEGER)`
	purposes := `json_group_array(DISTINCT q.purpose)`
	if l.d.IsPostgres() {
		day = `to_char(to_timestamp(e.time_us / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
		rows = `(body::jsonb ->> 'rows')::bigint`
		purposes = `json_agg(DISTINCT q.purpose)::text`
	}
	var where []string
	var args []any
	if f.Dataset != "" {
		where = append(where, "d.dataset = ?") // the index is lower-cased
		args = append(args, strings.ToLower(f.Dataset))
	}
	if f.Department != "" {
		where = append(where, l.d.FoldEq("e.department"))
		args = append(args, f.Department)
	}
	if f.Purpose != "" {
		where = append(where, "e.purpose = ?")
		args = append(args, f.Purpose)
	}
	if !f.Since.IsZero() {
		where = append(where, "e.time_us >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "e.time_us < ?")
		args = append(args, f.Until.UnixMicro())
	}
	cond := ""
	if len(where) > 0 {
		cond = " AND " + strings.Join(where, " AND ")
	}
	q := `WITH q AS (
		SELECT ` + day + ` AS day, d.dataset AS dataset, e.department AS department,
			e.purpose AS purpose, e.decision AS decision, e.query_id AS query_id
		FROM audit_entry_datasets d JOIN audit_entries e ON e.seq = d.seq
		WHERE e.kind = 'query'` + cond + `
	), r AS (
		SELECT query_id, SUM(` + rows + `) AS rows
		FROM audit_entries
		WHERE kind = 'result' AND query_id IN (SELECT query_id FROM q)
		GROUP BY query_id
	)
	SELECT q.day, q.dataset, q.department, COUNT(*),
		CAST(SUM(CASE WHEN q.decision = 'deny' THEN 1 ELSE 0 END) AS BIGINT),
		CAST(COALESCE(SUM(r.rows), 0) AS BIGINT),
		` + purposes + `
	FROM q LEFT JOIN r ON r.query_id = q.query_id
	GROUP BY q.day, q.dataset, q.department`
	res, err := l.handle().QueryContext(ctx, l.d.Rebind(q), args...)
	if err != nil {
		return nil, readFailed("usage", err)
	}
	defer res.Close()
	out := []UsageRow{}
	for res.Next() {
		var u UsageRow
		var ps string
		if err := res.Scan(&u.Day, &u.Dataset, &u.Department, &u.Calls, &u.Denied, &u.Rows, &ps); err != nil {
			return nil, readFailed("usage", err)
		}
		var all []string
		if err := json.Unmarshal([]byte(ps), &all); err != nil {
			return nil, readFailed("usage", fmt.Errorf("purposes: %v", err))
		}
		u.Purposes = []string{}
		for _, p := range all {
			if p != "" { // a query without a declared purpose
				u.Purposes = append(u.Purposes, p)
			}
		}
		slices.Sort(u.Purposes)
		out = append(out, u)
	}
	if err := res.Err(); err != nil {
		return nil, readFailed("usage", err)
	}
	// Sorted here rather than by ORDER BY: PostgreSQL orders text by the
	// database's collation, SQLite by bytes; both stores must agree.
	slices.SortFunc(out, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Dataset, b.Dataset), cmp.Compare(a.Department, b.Department))
	})
	return out, nil
}
