package planner

import (
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gov/sluice/planner/sqlast"
)

// Date constants folded at planning time: DATE 'yyyy-mm-dd', and a date
// constant plus or minus an interval constant (INTERVAL '90' DAY,
// INTERVAL '1 year 2 months') or a number of days, as decision-support
// queries write their periods. The result is the date as text, the form in
// which Sluice compares dates in every dialect, so no dialect has to agree
// with another on interval arithmetic. Arithmetic on columns is not folded
// (and not supported yet).

// interval is a constant interval in PostgreSQL's parts: months first,
// then days.
type interval struct{ months, days int }

// constDate reads e as a date constant, folding arithmetic; ok is false
// when e is not one. An error is a constant that is not a valid date or
// interval.
func constDate(e sqlast.Expr) (d time.Time, ok bool, err error) {
	switch n := e.(type) {
	case *sqlast.Cast:
		lit, isLit := n.X.(*sqlast.Literal)
		if !isLit || lit.Kind != sqlast.LitString || n.Type.Name != "date" || len(n.Type.Mods) > 0 || n.Type.IsArray {
			return time.Time{}, false, nil
		}
		d, err := time.Parse("2006-01-02", lit.Text)
		if err != nil {
			return time.Time{}, true, invalid("DATE '%s' is not a date; write DATE 'yyyy-mm-dd'", clip(lit.Text))
		}
		return d, true, nil
	case *sqlast.Binary:
		if n.Op != "+" && n.Op != "-" {
			return time.Time{}, false, nil
		}
		base, ok, err := constDate(n.L)
		if !ok || err != nil {
			// interval + date is a date too.
			if n.Op == "+" {
				if base, ok2, err2 := constDate(n.R); ok2 {
					if err2 != nil {
						return time.Time{}, true, err2
					}
					iv, ok3, err3 := constInterval(n.L)
					if !ok3 || err3 != nil {
						return time.Time{}, ok3, err3
					}
					return iv.add(base, 1), true, nil
				}
			}
			return time.Time{}, ok, err
		}
		iv, ok, err := constInterval(n.R)
		if !ok || err != nil {
			return time.Time{}, ok, err
		}
		sign := 1
		if n.Op == "-" {
			sign = -1
		}
		return iv.add(base, sign), true, nil
	}
	return time.Time{}, false, nil
}

// add applies sign·iv to d as PostgreSQL does for a date: months first,
// the day clamped to the end of a shorter month (2020-01-31 + 1 month is
// 2020-02-29), then days.
func (iv interval) add(d time.Time, sign int) time.Time {
	y, m, day := d.Date()
	total := y*12 + int(m) - 1 + sign*iv.months
	y = total / 12
	if total%12 < 0 {
		y-- // floor division: month 0 of year y is total = 12y
	}
	m = time.Month(total - y*12 + 1)
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
	day = min(day, last)
	return time.Date(y, m, day, 0, 0, 0, 0, time.UTC).AddDate(0, 0, sign*iv.days)
}

// intervalUnits are the units an interval constant may use; anything
// finer than a day is not supported yet.
var intervalUnits = map[string]interval{
	"year": {months: 12}, "years": {months: 12}, "y": {months: 12},
	"month": {months: 1}, "months": {months: 1}, "mon": {months: 1}, "mons": {months: 1},
	"week": {days: 7}, "weeks": {days: 7},
	"day": {days: 1}, "days": {days: 1}, "d": {days: 1},
}

// constInterval reads e as an interval constant (or a whole number of
// days, as date + 7 means in PostgreSQL).
func constInterval(e sqlast.Expr) (interval, bool, error) {
	switch n := e.(type) {
	case *sqlast.Literal:
		if n.Kind != sqlast.LitInt {
			return interval{}, false, nil
		}
		v, err := strconv.Atoi(n.Text)
		if err != nil || v > 1_000_000 || v < -1_000_000 {
			return interval{}, true, invalid("%s days is out of range", clip(n.Text))
		}
		return interval{days: v}, true, nil
	case *sqlast.Cast:
		lit, ok := n.X.(*sqlast.Literal)
		if !ok || lit.Kind != sqlast.LitString || n.Type.Name != "interval" || len(n.Type.Mods) > 0 {
			return interval{}, false, nil
		}
		return parseInterval(lit.Text, n.Type.Fields)
	}
	return interval{}, false, nil
}

// parseInterval reads '90' with fields "day", or '1 year 2 months'.
func parseInterval(text, fields string) (interval, bool, error) {
	bad := func() (interval, bool, error) {
		return interval{}, true, notSupported("INTERVAL '%s'%s is not supported yet; write whole years, months, weeks or days, e.g. INTERVAL '3' MONTH or INTERVAL '1 year 2 months'", clip(text), upperFields(fields))
	}
	words := strings.Fields(strings.ToLower(text))
	if fields != "" {
		unit, ok := intervalUnits[fields]
		if !ok || len(words) != 1 {
			return bad()
		}
		v, err := strconv.Atoi(words[0])
		if err != nil || v > 1_000_000 || v < -1_000_000 {
			return bad()
		}
		return interval{months: v * unit.months, days: v * unit.days}, true, nil
	}
	if len(words) == 0 || len(words)%2 != 0 {
		return bad()
	}
	var out interval
	for i := 0; i < len(words); i += 2 {
		v, err := strconv.Atoi(words[i])
		unit, ok := intervalUnits[words[i+1]]
		if err != nil || !ok || v > 1_000_000 || v < -1_000_000 {
			return bad()
		}
		out.months += v * unit.months
		out.days += v * unit.days
	}
	return out, true, nil
}

func upperFields(f string) string {
	if f == "" {
		return ""
	}
	return " " + strings.ToUpper(f)
}

// foldDate returns the date constant e folds to as a text literal, or nil
// when e is not a date constant.
func foldDate(e sqlast.Expr) (*Expr, error) {
	d, ok, err := constDate(e)
	if !ok {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Year() < 1 || d.Year() > 9999 {
		return nil, invalid("the date constant falls outside the years 1 to 9999")
	}
	return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitString, Text: d.Format("2006-01-02")}}, nil
}
