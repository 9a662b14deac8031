package tpch

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// QueryRows runs query on db and returns all its rows, each value as
// database/sql scans it into an any.
func QueryRows(ctx context.Context, db *sql.DB, query string) ([][]any, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

// SameAnswer reports how got differs from want, two answers to the same
// query from different engines, or nil if it does not: the same number of
// rows and columns, in the same order, with equal values, where
//
//   - numbers compare with a relative tolerance of 1e-9, whatever their
//     Go type (int64, float64, a numeric's text, a decimal with a
//     Float64 or String method), since engines differ in the scale and
//     type of averages and quotients;
//   - a time at midnight UTC compares as its date, YYYY-MM-DD;
//   - text compares exactly, after trimming trailing blanks (CHAR
//     padding); []byte compares as text; NULL only equals NULL.
//
// The queries' ORDER BY determines every row's place in every answer at
// the scale factors tested, so rows are not reordered.
func SameAnswer(want, got [][]any) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if len(want[i]) != len(got[i]) {
			return fmt.Errorf("row %d: %d columns, want %d", i+1, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if !sameValue(want[i][j], got[i][j]) {
				return fmt.Errorf("row %d column %d: %s, want %s", i+1, j+1, showValue(got[i][j]), showValue(want[i][j]))
			}
		}
	}
	return nil
}

func sameValue(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	as, bs := canonical(a), canonical(b)
	if as == bs {
		return true
	}
	x, errx := strconv.ParseFloat(as, 64)
	y, erry := strconv.ParseFloat(bs, 64)
	if errx != nil || erry != nil {
		return false
	}
	return math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
}

// canonical returns v's text: a number in Go's shortest form, a midnight
// as its date.
func canonical(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimRight(v, " ")
	case []byte:
		return strings.TrimRight(string(v), " ")
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case time.Time:
		if v.Hour() == 0 && v.Minute() == 0 && v.Second() == 0 && v.Nanosecond() == 0 {
			return v.Format(time.DateOnly)
		}
		return v.Format(time.RFC3339Nano)
	case Decimal, Date:
		return fmt.Sprint(v)
	case interface{ Float64() float64 }:
		return strconv.FormatFloat(v.Float64(), 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

func showValue(v any) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprintf("%s (%T)", canonical(v), v)
}
