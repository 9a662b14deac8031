package sqlast

import (
	"encoding/json"
	"strings"
	"testing"
)

// compact renders a tree as JSON without positions, for comparing shapes.
func compact(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	var strip func(any) any
	strip = func(v any) any {
		switch y := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, val := range y {
				if k == "Pos" || val == nil || val == false || val == "" || val == float64(0) && k != "Kind" {
					continue
				}
				if a, ok := val.([]any); ok && len(a) == 0 {
					continue
				}
				out[k] = strip(val)
			}
			return out
		case []any:
			for i := range y {
				y[i] = strip(y[i])
			}
		}
		return v
	}
	b, _ = json.Marshal(strip(x))
	return string(b)
}

func mustParse(t *testing.T, sql string) *Select {
	t.Helper()
	s, err := Parse(sql)
	if err != nil {
		t.Fatalf("Parse(%q): %v", sql, err)
	}
	return s
}

// The constructs analysts write, read as PostgreSQL reads them.
func TestParseShapes(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		// Double quotes name a column (MySQL would read a string).
		{`SELECT "district" FROM civil.residents`, `{"Expr":{"Name":"district"}}`},
		// Unquoted names fold to lower case, quoted ones keep theirs.
		{`SELECT District AS Total, "Mixed" AS "Keep" FROM civil.residents`, `{"Alias":"total","Expr":{"Name":"district"}}|{"Alias":"Keep","Expr":{"Name":"Mixed"}}`},
		{`SELECT count(*) AS 区县 FROM civil.residents`, `{"Alias":"区县","Expr":{"Name":"count","Star":true}}`},
		// || is concatenation, not OR.
		{`SELECT a || b FROM t.u`, `{"Expr":{"L":{"Name":"a"},"Op":"||","R":{"Name":"b"}}}`},
		{`SELECT DATE '2015-01-01' FROM t.u`, `{"Expr":{"Type":{"Name":"date"},"X":{"Kind":3,"Text":"2015-01-01"}}}`},
		{`SELECT INTERVAL '90' DAY FROM t.u`, `{"Expr":{"Type":{"Fields":"day","Name":"interval"},"X":{"Kind":3,"Text":"90"}}}`},
		{`SELECT x::numeric(10,2) FROM t.u`, `{"Expr":{"Type":{"Mods":[10,2],"Name":"numeric"},"X":{"Name":"x"}}}`},
		{`SELECT EXTRACT(YEAR FROM d) FROM t.u`, `{"Expr":{"Args":[{"Kind":3,"Text":"year"},{"Name":"d"}],"Name":"extract"}}`},
		{`SELECT SUBSTRING(x FROM 1 FOR 2) FROM t.u`, `{"Expr":{"Args":[{"Name":"x"},{"Kind":1,"Text":"1"},{"Kind":1,"Text":"2"}],"Name":"substring"}}`},
		{`SELECT x ILIKE 'a%' FROM t.u`, `{"Expr":{"ILike":true,"Pattern":{"Kind":3,"Text":"a%"},"X":{"Name":"x"}}}`},
		{`SELECT x IS DISTINCT FROM 1 FROM t.u`, `{"Expr":{"L":{"Name":"x"},"R":{"Kind":1,"Text":"1"}}}`},
		{`SELECT count(*) FILTER (WHERE y > 1) FROM t.u`, `{"Expr":{"Filter":{"L":{"Name":"y"},"Op":"\u003e","R":{"Kind":1,"Text":"1"}},"Name":"count","Star":true}}`},
		{`SELECT rank() OVER (PARTITION BY a ORDER BY b DESC NULLS LAST) FROM t.u`, `{"Expr":{"Name":"rank","Over":{"OrderBy":[{"Desc":true,"Expr":{"Name":"b"},"Nulls":2}],"PartitionBy":[{"Name":"a"}]}}}`},
		{`SELECT -5, 0, 99999999999, 1.5e3, NULL, TRUE FROM t.u`, `{"Expr":{"Kind":1,"Text":"-5"}}|{"Expr":{"Kind":1,"Text":"0"}}|{"Expr":{"Kind":1,"Text":"99999999999"}}|{"Expr":{"Kind":2,"Text":"1.5e3"}}|{"Expr":{"Kind":0}}|{"Expr":{"Kind":4,"Text":"true"}}`},
		{`SELECT r.* , civil.residents.district FROM civil.residents r`, `{"Star":true,"Table":{"Name":"r"}}|{"Expr":{"Name":"district","Table":{"Name":"residents","Schema":"civil"}}}`},
	} {
		s := mustParse(t, tc.sql)
		var got []string
		for _, it := range s.Items {
			got = append(got, compact(t, it))
		}
		if g := strings.Join(got, "|"); g != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.sql, g, tc.want)
		}
	}
}

func TestParseClauses(t *testing.T) {
	s := mustParse(t, `WITH a (x) AS MATERIALIZED (SELECT 1 FROM t.u) SELECT DISTINCT x FROM a JOIN t.v v ON a.x = v.x LEFT JOIN (SELECT 2 AS y FROM t.w) d ON TRUE
		WHERE x IN (1, 2) AND x NOT IN (SELECT 3 FROM t.z) AND EXISTS (SELECT 1 FROM t.z) AND x = (SELECT 4 FROM t.z)
		GROUP BY x HAVING count(*) > 1 ORDER BY 1 DESC NULLS LAST OFFSET 5 ROWS FETCH FIRST 3 ROWS ONLY`)
	if len(s.With) != 1 || s.With[0].Name != "a" || s.With[0].Materialized != "MATERIALIZED" || strings.Join(s.With[0].Columns, ",") != "x" {
		t.Errorf("WITH: %s", compact(t, s.With))
	}
	if !s.Distinct || len(s.From) != 1 {
		t.Fatalf("select: %s", compact(t, s))
	}
	j, ok := s.From[0].(*Join)
	if !ok || j.Kind != JoinLeft {
		t.Fatalf("from: %s", compact(t, s.From))
	}
	if inner, ok := j.Left.(*Join); !ok || inner.Kind != JoinInner {
		t.Errorf("inner join: %s", compact(t, j.Left))
	}
	if d, ok := j.Right.(*Derived); !ok || d.Alias != "d" {
		t.Errorf("derived: %s", compact(t, j.Right))
	}
	var kinds []string
	Walk(s.Where, func(e Expr) bool {
		switch x := e.(type) {
		case *InList:
			kinds = append(kinds, "in")
		case *InSubquery:
			if x.Not {
				kinds = append(kinds, "not in subquery")
			} else {
				kinds = append(kinds, "in subquery")
			}
		case *Exists:
			kinds = append(kinds, "exists")
		case *Subquery:
			kinds = append(kinds, "scalar")
		}
		return true
	})
	if g := strings.Join(kinds, ","); g != "in,not in subquery,exists,scalar" {
		t.Errorf("where: %s", g)
	}
	if len(s.GroupBy) != 1 || s.Having == nil || len(s.OrderBy) != 1 || !s.OrderBy[0].Desc || s.OrderBy[0].Nulls != NullsLast {
		t.Errorf("group/having/order: %s", compact(t, s))
	}
	if compact(t, s.Limit) != `{"Kind":1,"Text":"3"}` || compact(t, s.Offset) != `{"Kind":1,"Text":"5"}` {
		t.Errorf("limit %s offset %s", compact(t, s.Limit), compact(t, s.Offset))
	}

	u := mustParse(t, `SELECT a FROM t.u UNION ALL SELECT b FROM t.v ORDER BY 1 LIMIT ALL`)
	if u.Op != Union || !u.All || u.Left == nil || u.Right == nil || len(u.OrderBy) != 1 || u.Limit != nil {
		t.Errorf("union: %s", compact(t, u))
	}
}

// Positions are byte offsets of what the analyst wrote.
func TestParsePositions(t *testing.T) {
	sql := "SELECT 区县,\n  amount FROM civil.residents WHERE x = 1"
	s := mustParse(t, sql)
	if got := sql[s.Items[1].Expr.Position():]; !strings.HasPrefix(got, "amount") {
		t.Errorf("position of amount: %q", got)
	}
	if got := sql[s.From[0].Position():]; !strings.HasPrefix(got, "civil.residents") {
		t.Errorf("position of the table: %q", got)
	}
	w := s.Where.(*Binary)
	if got := sql[w.L.Position():]; !strings.HasPrefix(got, "x = 1") {
		t.Errorf("position of x: %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		sql, want    string
		pos          int // -2: any
		notSupported bool
	}{
		{"SELEC 1", `syntax error at or near "SELEC"`, 0, false},
		{"SELECT 区县 FROM t.u WHERE AND", `syntax error at or near "AND"`, len("SELECT 区县 FROM t.u WHERE "), false},
		{"SELECT `a` FROM t.u", "not backticks", -2, false},
		{"SELECT a FROM t.u LIMIT 1, 2", "write LIMIT n OFFSET m", -2, false},
		{"SELECT 1 FROM t.u; SELECT 2 FROM t.u", "2 statements", -2, false},
		{"INSERT INTO t.u VALUES (1)", "this is an INSERT", -2, false},
		{"DELETE FROM t.u", "this is a DELETE", -2, false},
		{"SELECT a INTO b FROM t.u", "INTO is not accepted", -2, false},
		{"SELECT a FROM t.u FOR UPDATE", "locking clauses", -2, true},
		{"VALUES (1)", "VALUES lists", -2, true},
		{"SELECT a FROM t.u WHERE a = $1", "bind parameters", len("SELECT a FROM t.u WHERE a = "), false},
		{"SELECT a FROM t.u WHERE a SIMILAR TO 'x'", "SIMILAR TO", -2, true},
		{"SELECT a FROM t.u WHERE a = ANY (ARRAY[1])", "ANY/ALL", -2, true},
		{"SELECT ROW(1, 2) FROM t.u", "row values", -2, true},
		{"SELECT a COLLATE \"C\" FROM t.u", "COLLATE", -2, true},
		{"SELECT string_agg(a, ',' ORDER BY a) FROM t.u", "ordered aggregates", -2, true},
		{"SELECT a FROM t.u GROUP BY ROLLUP (a)", "GROUPING SETS", -2, true},
		{"SELECT DISTINCT ON (a) a FROM t.u", "DISTINCT ON", -2, true},
		{"SELECT a FROM t.u TABLESAMPLE SYSTEM (1)", "TABLESAMPLE", -2, true},
		{"SELECT a FROM generate_series(1, 3) a", "table functions", -2, true},
		{"SELECT a FROM db.t.u", "names a database", -2, false},
		{"SELECT sum(a) OVER (ROWS 2 PRECEDING) FROM t.u", "offset", -2, true},
		{"SELECT a FROM t.u ORDER BY a FETCH FIRST 3 ROWS WITH TIES", "WITH TIES", -2, true},
		{"SELECT a FROM t.u WINDOW w AS (PARTITION BY a)", "named windows", -2, true},
		{"WITH x AS (DELETE FROM t.u RETURNING *) SELECT * FROM x", "only SELECT", -2, false},
		{"SELECT a FROM ONLY t.u", "FROM ONLY", -2, true},
	} {
		_, err := Parse(tc.sql)
		pe, ok := err.(*Error)
		if !ok {
			t.Errorf("%s: got %v, want an *Error", tc.sql, err)
			continue
		}
		if !strings.Contains(pe.Msg, tc.want) || pe.NotSupported != tc.notSupported || (tc.pos != -2 && pe.Pos != tc.pos) {
			t.Errorf("%s: got %q (not supported %v, at %d), want %q (not supported %v, at %d)", tc.sql, pe.Msg, pe.NotSupported, pe.Pos, tc.want, tc.notSupported, tc.pos)
		}
	}
}

// Deep nesting is refused, not a stack overflow.
func TestParseDepth(t *testing.T) {
	deep := "SELECT " + strings.Repeat("abs(", 900) + "1" + strings.Repeat(")", 900) + " FROM t.u"
	if _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("900 nested calls: %v", err)
	}
	long := "SELECT a FROM t.u WHERE " + strings.Repeat("a = 1 AND ", 5000) + "TRUE"
	s, err := Parse(long)
	if err != nil {
		t.Fatalf("5000 conjuncts: %v", err)
	}
	n := 0
	Walk(s.Where, func(Expr) bool { n++; return true })
	if n < 5000 {
		t.Errorf("walked %d nodes", n)
	}
}

// WalkSelects reaches every query: CTEs, set-operation operands, derived
// tables, and subqueries in WHERE, select items and join conditions.
func TestWalkSelects(t *testing.T) {
	s := mustParse(t, `WITH c AS (SELECT 1 FROM t.a) SELECT (SELECT 2 FROM t.b) FROM c JOIN (SELECT 3 FROM t.d UNION SELECT 4 FROM t.e) x ON EXISTS (SELECT 5 FROM t.f) WHERE y IN (SELECT 6 FROM t.g)`)
	var seen []string
	maxDepth := 0
	WalkSelects(s, func(q *Select, depth int) bool {
		maxDepth = max(maxDepth, depth)
		for _, f := range q.From {
			if tb, ok := f.(*Table); ok {
				seen = append(seen, tb.Name.Name)
			}
		}
		return true
	})
	if got := strings.Join(seen, ","); got != "a,d,e,f,b,g" {
		t.Errorf("visited %s", got)
	}
	if maxDepth != 2 {
		t.Errorf("deepest query at depth %d, want 2 (the UNION's operands)", maxDepth)
	}
	n := 0
	WalkSelects(s, func(*Select, int) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("stopping after 3 visited %d", n)
	}
}
