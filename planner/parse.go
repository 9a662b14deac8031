package planner

import (
	"errors"
	"strings"
	"unicode/utf8"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// MaxSQLBytes bounds the text of one query: enough for any hand-written
// analysis, small enough that parsing cannot be used to exhaust the broker.
const MaxSQLBytes = 64 << 10

const syntaxHint = `write one SELECT over department.dataset in PostgreSQL SQL (e.g. SELECT district, count(*) FROM civil.residents GROUP BY district); quote names with double quotes ("人数")`

// parseSelect parses sql with the PostgreSQL grammar and returns its one
// SELECT, rejecting every other statement.
func parseSelect(sql string) (*sqlast.Select, error) {
	if len(sql) > MaxSQLBytes {
		return nil, invalid("the query is %d bytes; the limit is %d bytes", len(sql), MaxSQLBytes)
	}
	if !utf8.ValidString(sql) {
		return nil, invalid("the query is not valid UTF-8 text")
	}
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, invalid("the query contains a NUL character")
	}
	if strings.TrimSpace(strings.TrimRight(strings.TrimSpace(sql), ";")) == "" {
		return nil, invalid("the query is empty; %s", syntaxHint)
	}
	sel, err := sqlast.Parse(sql)
	if err != nil {
		var pe *sqlast.Error
		if !errors.As(err, &pe) {
			return nil, invalid("SQL syntax error: %s; %s", strings.ToValidUTF8(err.Error(), "?"), syntaxHint)
		}
		code, msg := sluice.EInvalid, strings.ToValidUTF8(pe.Msg, "?")
		if pe.NotSupported {
			code = sluice.ENotSupported
		} else if strings.HasPrefix(msg, "SQL syntax error") && !strings.Contains(msg, "backticks") {
			msg += "; " + syntaxHint
		}
		return nil, locate(sluice.Errorf(code, "%s", msg), sql, pe.Pos)
	}
	return sel, nil
}

func notSupported(format string, args ...any) error {
	return sluice.Errorf(sluice.ENotSupported, format, args...)
}

// hasSubquery reports whether any of the expressions holds a subquery.
func hasSubquery(es ...sqlast.Expr) bool { return len(sqlast.Subqueries(es...)) > 0 }

// singleTable is the one plain table of a FROM clause of one item, if it
// is one.
func singleTable(from []sqlast.TableExpr) (*sqlast.Table, bool) {
	if len(from) != 1 {
		return nil, false
	}
	t, ok := from[0].(*sqlast.Table)
	return t, ok
}

// checkSupported refuses, with their position, the constructs the grammar
// reads but the planner cannot plan yet, wherever they appear: subqueries
// nested too deep, set operations it does not know (WITH is inlined
// before, inline_ctes.go). Window functions and the rest are refused
// where the resolver meets them.
func checkSupported(sel *sqlast.Select, sql string) error {
	var err error
	sqlast.WalkSelects(sel, func(s *sqlast.Select, depth int) bool {
		switch {
		case depth > maxSubqueryDepth*4:
			err = notSupported("subqueries nested more than %d deep are not supported yet", maxSubqueryDepth)
		case s.Op != "" && s.Op != sqlast.Union && s.Op != sqlast.Intersect && s.Op != sqlast.Except:
			err = locate(notSupported("%s is not supported yet; UNION, INTERSECT and EXCEPT are", clip(string(s.Op))), sql, s.Pos)
		}
		return err == nil
	})
	return err
}
