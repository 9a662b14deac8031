package planner

import (
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// Date constants fold as PostgreSQL computes them (checked against
// PostgreSQL 15: SELECT (DATE '2020-01-31' + INTERVAL '1 month')::date ...).
func TestFoldDates(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"DATE '1998-12-01' - INTERVAL '90' DAY", "1998-09-02"},
		{"DATE '1994-01-01' + INTERVAL '1' YEAR", "1995-01-01"},
		{"DATE '1993-10-01' + INTERVAL '3' MONTH", "1994-01-01"},
		{"DATE '2020-01-31' + INTERVAL '1 month'", "2020-02-29"},
		{"DATE '2021-03-31' - INTERVAL '1 month'", "2021-02-28"},
		{"DATE '2020-02-29' + INTERVAL '1 year'", "2021-02-28"},
		{"DATE '2020-01-31' + INTERVAL '1 month 1 day'", "2020-03-01"},
		{"DATE '2020-01-01' - INTERVAL '13 months'", "2018-12-01"},
		{"DATE '2020-01-01' + 7", "2020-01-08"},
		{"INTERVAL '2 weeks' + DATE '2020-01-01'", "2020-01-15"},
		{"DATE '2020-01-01' + INTERVAL '1' YEAR - INTERVAL '1' DAY", "2020-12-31"},
	} {
		s, err := sqlast.Parse("SELECT " + tc.expr + " FROM t.u")
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got, err := foldDate(s.Items[0].Expr)
		if err != nil || got == nil || got.Literal.Text != tc.want {
			t.Errorf("%s = %v (%v), want %s", tc.expr, got, err, tc.want)
		}
	}
	p := New(testCatalog(t))
	for _, tc := range []struct{ sql, code, want string }{
		{"SELECT count(*) FROM civil.residents WHERE birth_date < DATE '1990-02-30'", sluice.EInvalid, "is not a date"},
		{"SELECT count(*) FROM civil.residents WHERE birth_date < DATE '1990-01-01' + INTERVAL '3' HOUR", sluice.ENotSupported, "INTERVAL '3' HOUR is not supported yet"},
		{"SELECT count(*) FROM civil.residents WHERE birth_date < DATE '1990-01-01' + INTERVAL '1 fortnight'", sluice.ENotSupported, "is not supported yet"},
		{"SELECT count(*) FROM civil.residents WHERE birth_date + INTERVAL '1' YEAR < DATE '1990-01-01'", sluice.ENotSupported, "date arithmetic on columns is not supported yet (at line 1, column 66)"},
		{"SELECT count(*) FROM civil.residents WHERE birth_date < DATE '9999-12-01' + INTERVAL '1' MONTH", sluice.EInvalid, "outside the years"},
	} {
		_, err := p.Plan("q", tc.sql)
		if sluice.ErrorCode(err) != tc.code || !strings.Contains(sluice.ErrorMessage(err), tc.want) {
			t.Errorf("%s: got %s %v, want %s containing %q", tc.sql, sluice.ErrorCode(err), err, tc.code, tc.want)
		}
	}
}
