package planner

import (
	"strings"
	"unicode/utf8"

	"github.com/xwb1989/sqlparser"

	sluice "github.com/sluice-gov/sluice"
)

// MaxSQLBytes bounds the text of one query: enough for any hand-written
// analysis, small enough that parsing cannot be used to exhaust the broker.
const MaxSQLBytes = 64 << 10

const syntaxHint = "write one SELECT over department.dataset (e.g. SELECT district, count(*) FROM civil.residents GROUP BY district); quote names that are not plain ASCII with backticks"

// parseSelect parses sql and returns its one SELECT, rejecting every other
// statement and every query shape the planner cannot push down faithfully.
func parseSelect(sql string) (*sqlparser.Select, error) {
	if len(sql) > MaxSQLBytes {
		return nil, invalid("the query is %d bytes; the limit is %d bytes", len(sql), MaxSQLBytes)
	}
	if !utf8.ValidString(sql) {
		return nil, invalid("the query is not valid UTF-8 text")
	}
	if strings.TrimSpace(strings.TrimRight(strings.TrimSpace(sql), ";")) == "" {
		return nil, invalid("the query is empty; %s", syntaxHint)
	}
	if pieces, err := sqlparser.SplitStatementToPieces(sql); err == nil {
		n := 0
		for _, p := range pieces {
			if strings.TrimSpace(p) != "" {
				n++
			}
		}
		if n > 1 {
			return nil, invalid("the query has %d statements; send exactly one SELECT", n)
		}
	}
	stmt, err := sqlparser.Parse(sql)
	if err != nil {
		return nil, invalid("SQL syntax error: %s; %s", strings.ToValidUTF8(err.Error(), "?"), syntaxHint)
	}
	for {
		p, ok := stmt.(*sqlparser.ParenSelect)
		if !ok {
			break
		}
		stmt = p.Select
	}
	var sel *sqlparser.Select
	switch s := stmt.(type) {
	case *sqlparser.Select:
		sel = s
	case *sqlparser.Union:
		return nil, notSupported("UNION is not supported yet; run each SELECT on its own")
	default:
		return nil, invalid("only SELECT queries are accepted; Sluice never changes department data")
	}
	if sel.Lock != "" {
		return nil, notSupported("SELECT ... FOR UPDATE / LOCK IN SHARE MODE is not supported yet; remove the locking clause")
	}
	if sel.Hints != "" {
		return nil, notSupported("optimizer hints (%s) are not supported yet; remove them", strings.TrimSpace(sel.Hints))
	}
	return sel, nil
}

func notSupported(format string, args ...any) error {
	return sluice.Errorf(sluice.ENotSupported, format, args...)
}

// checkNoSubquery rejects subqueries anywhere in the statement before name
// resolution, so the analyst gets the real reason rather than a confusing
// name error from inside the subquery.
func checkNoSubquery(sel *sqlparser.Select) error {
	var found bool
	_ = sqlparser.Walk(func(node sqlparser.SQLNode) (bool, error) {
		switch node.(type) {
		case *sqlparser.Subquery, *sqlparser.ExistsExpr:
			found = true
			return false, nil
		}
		return true, nil
	}, sel.SelectExprs, sel.From, sel.Where, sel.GroupBy, sel.Having, sel.OrderBy)
	if found {
		return notSupported("subqueries are not supported yet; query one dataset with WHERE, GROUP BY and HAVING")
	}
	return nil
}

// sourceTable returns the one table of the FROM clause and its alias.
func sourceTable(sel *sqlparser.Select) (sqlparser.TableName, string, error) {
	if len(sel.From) != 1 {
		return sqlparser.TableName{}, "", notSupported("a query over more than one dataset is not supported yet; query one dataset at a time")
	}
	te := sel.From[0]
	for {
		p, ok := te.(*sqlparser.ParenTableExpr)
		if !ok {
			break
		}
		if len(p.Exprs) != 1 {
			return sqlparser.TableName{}, "", notSupported("a query over more than one dataset is not supported yet; query one dataset at a time")
		}
		te = p.Exprs[0]
	}
	switch t := te.(type) {
	case *sqlparser.JoinTableExpr:
		return sqlparser.TableName{}, "", notSupported("JOIN is not supported yet; query one dataset at a time")
	case *sqlparser.AliasedTableExpr:
		if t.Hints != nil {
			return sqlparser.TableName{}, "", notSupported("index hints are not supported yet; remove them")
		}
		if len(t.Partitions) > 0 {
			return sqlparser.TableName{}, "", notSupported("PARTITION selection is not supported yet; remove it")
		}
		name, ok := t.Expr.(sqlparser.TableName)
		if !ok {
			return sqlparser.TableName{}, "", notSupported("subqueries are not supported yet; query one dataset with WHERE, GROUP BY and HAVING")
		}
		return name, t.As.String(), nil
	}
	return sqlparser.TableName{}, "", notSupported("this FROM clause is not supported yet; write FROM department.dataset")
}
