package planner

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

func TestPlanErrors(t *testing.T) {
	p := New(testCatalog(t))
	tests := []struct {
		name, sql, code, want string
	}{
		{"empty", "   ", sluice.EInvalid, "empty"},
		{"syntax", "SELEC district FROM civil.residents", sluice.EInvalid, `syntax error at or near "SELEC"; write one SELECT over department.dataset in PostgreSQL SQL (e.g. SELECT district, count(*) FROM civil.residents GROUP BY district); quote names with double quotes ("人数") (at line 1, column 1)`},
		{"syntax position", "SELECT district\nFROM civil.residents\nWHERE district = 区县 AND AND", sluice.EInvalid, "(at line 3, column 25)"},
		{"backticks", "SELECT `区县` FROM civil.residents", sluice.EInvalid, "quote names with double quotes"},
		{"mysql limit", "SELECT district FROM civil.residents LIMIT 3, 7", sluice.EInvalid, "write LIMIT n OFFSET m"},
		{"syntax near", "SELECT district FROM civil.residents WHERE", sluice.EInvalid, "syntax error"},
		{"too big", "SELECT district FROM civil.residents WHERE district = '" + strings.Repeat("x", MaxSQLBytes) + "'", sluice.EInvalid, "limit is"},
		{"bad utf8", "SELECT district FROM civil.residents WHERE district = '\xff'", sluice.EInvalid, "UTF-8"},
		{"two statements", "SELECT district FROM civil.residents; SELECT 1 FROM civil.residents", sluice.EInvalid, "2 statements"},
		{"insert", "INSERT INTO civil.residents (district) VALUES ('x')", sluice.EInvalid, "only SELECT queries are accepted"},
		{"update", "UPDATE civil.residents SET district = 'x'", sluice.EInvalid, "only SELECT queries are accepted"},
		{"delete", "DELETE FROM civil.residents", sluice.EInvalid, "only SELECT queries are accepted"},
		{"ddl", "DROP TABLE civil.residents", sluice.EInvalid, "only SELECT queries are accepted"},
		{"set", "SET autocommit = 1", sluice.EInvalid, "only SELECT queries are accepted"},
		{"show", "SHOW TABLES", sluice.EInvalid, "only SELECT queries are accepted"},
		{"date_trunc week", "SELECT date_trunc('week', birth_date) FROM civil.residents", sluice.ENotSupported, "date_trunc('week', ...) is not supported yet; supported: 'year', 'month'"},
		{"date_trunc unit not a constant", "SELECT date_trunc(district, birth_date) FROM civil.residents", sluice.EInvalid, "the unit as a string constant"},
		{"date_trunc of text", "SELECT date_trunc('month', district) FROM civil.residents", sluice.EInvalid, "date_trunc('month', ...) works on dates, got text"},
		{"trunc_month by its IR name", "SELECT trunc_month(birth_date) FROM civil.residents", sluice.ENotSupported, "write date_trunc('month', x)"},
		{"union", "SELECT district FROM civil.residents UNION SELECT district FROM market.enterprises", "", ""},
		// Joins and IN subqueries are planned across datasets (multi_test.go);
		// these forms are not.
		{"join", "SELECT r.district FROM civil.residents r RIGHT JOIN health.insured i ON r.id_card = i.id_card", sluice.ENotSupported, "JOIN is not supported yet"},
		{"comma join", "SELECT 1 FROM civil.residents, health.insured", sluice.ENotSupported, "more than one dataset"},
		{"subquery from", "SELECT x FROM (SELECT district AS x FROM civil.residents) s", "", ""},
		{"subquery where", "SELECT district FROM civil.residents WHERE district IN (SELECT district FROM civil.residents WHERE low_income = 1)", "", ""},
		{"subquery where not in", "SELECT district FROM civil.residents WHERE id_card NOT IN (SELECT id_card FROM health.insured)", sluice.ENotSupported, "NOT IN (SELECT ...) on a private join key is not supported yet"},
		{"scalar subquery", "SELECT district FROM civil.residents WHERE low_income = (SELECT 1 FROM health.insured)", sluice.ENotSupported, "a scalar subquery must compute one aggregate over its rows"},
		{"scalar subquery with COUNT in WHERE", "SELECT district FROM civil.residents WHERE low_income = (SELECT count(*) FROM health.insured)", sluice.ENotSupported, "a scalar subquery whose value is not NULL over no rows"},
		{"exists", "SELECT district FROM civil.residents WHERE EXISTS (SELECT 1 FROM health.insured)", sluice.ENotSupported, "EXISTS (SELECT ...) needs an equality between a column of the subquery and one of the enclosing query"},
		{"window", "SELECT count(*) OVER (PARTITION BY district) FROM civil.residents", "", ""},
		{"cte over one dataset", "WITH x AS (SELECT district FROM civil.residents WHERE low_income = 1) SELECT district, count(*) FROM x GROUP BY district", "", ""},
		{"cte without from", "WITH x AS (SELECT 1) SELECT * FROM x", sluice.EInvalid, "no FROM clause"},
		{"for update", "SELECT district FROM civil.residents FOR UPDATE", sluice.ENotSupported, "not supported yet"},
		{"no from", "SELECT 1", sluice.EInvalid, "no FROM clause"},
		{"no department", "SELECT 1 FROM residents", sluice.EInvalid, "department.dataset"},
		{"unknown dataset", "SELECT 1 FROM civil.nothing", sluice.EInvalid, "unknown dataset civil.nothing; `sluice catalog list`"},
		{"unknown department", "SELECT 1 FROM tax.payers", sluice.EInvalid, "unknown dataset tax.payers"},
		{"unknown column", "SELECT salary FROM civil.residents", sluice.EInvalid, "dataset civil.residents has no column \"salary\"; `sluice catalog show civil.residents` shows its columns"},
		{"unknown column where", "SELECT district FROM civil.residents WHERE salary > 1", sluice.EInvalid, `no column "salary"`},
		{"wrong qualifier", "SELECT x.district FROM civil.residents r", sluice.EInvalid, "names no table"},
		{"original name hidden by alias", "SELECT residents.district FROM civil.residents r", sluice.EInvalid, "names no table"},
		{"wrong star qualifier", "SELECT x.* FROM civil.residents", sluice.EInvalid, "names no table"},
		{"unknown function", "SELECT sleep(1) FROM civil.residents", sluice.ENotSupported, "function sleep is not supported yet"},
		{"unlisted function", "SELECT left(name, 1) FROM civil.residents", sluice.ENotSupported, "function left is not supported yet"},
		{"group_concat", "SELECT group_concat(name) FROM civil.residents", sluice.ENotSupported, "group_concat is not supported yet"},
		{"stddev", "SELECT stddev(low_income) FROM civil.residents", sluice.ENotSupported, "aggregate stddev is not supported yet"},
		{"cast", "SELECT CAST(low_income AS CHAR) FROM civil.residents", sluice.ENotSupported, "CAST to BPCHAR is not supported yet (at line 1, column 8)"},
		{"cast rounding", "SELECT monthly_allowance::int FROM civil.residents", sluice.ENotSupported, "CAST from decimal to integer is not supported yet"},
		{"cast to text", "SELECT low_income::text FROM civil.residents", sluice.ENotSupported, "CAST from integer to text is not supported yet"},
		{"cast with scale", "SELECT low_income::numeric(10, 2) FROM civil.residents", sluice.ENotSupported, "CAST to NUMERIC(10, 2) is not supported yet"},
		{"to_float by name", "SELECT to_float(low_income) FROM civil.residents", sluice.ENotSupported, "write CAST(x AS DOUBLE PRECISION)"},
		{"regexp", "SELECT district FROM civil.residents WHERE name ~ 'x'", sluice.ENotSupported, "operator ~ is not supported yet"},
		{"bitwise", "SELECT low_income & 1 FROM civil.residents", sluice.ENotSupported, "operator & is not supported yet"},
		{"is true", "SELECT district FROM civil.residents WHERE (low_income = 1) IS TRUE", sluice.ENotSupported, "IS TRUE is not supported yet"},
		{"bind param", "SELECT district FROM civil.residents WHERE low_income = $1", sluice.EInvalid, "bind parameters"},
		{"bit string", "SELECT district FROM civil.residents WHERE low_income = X'01'", sluice.ENotSupported, "bit-string constants"},
		{"int overflow", "SELECT district FROM civil.residents WHERE low_income = 99999999999999999999", sluice.EInvalid, "64 bits"},
		{"aggregate in where", "SELECT district FROM civil.residents WHERE count(*) > 1", sluice.EInvalid, "not allowed here"},
		{"aggregate in group", "SELECT count(*) FROM civil.residents GROUP BY count(*)", sluice.EInvalid, "GROUP BY cannot use an aggregate"},
		{"group by aggregate ordinal", "SELECT district, count(*) FROM civil.residents GROUP BY 2", sluice.EInvalid, "GROUP BY cannot use an aggregate"},
		{"nested aggregate", "SELECT sum(count(*)) FROM civil.residents", sluice.EInvalid, "cannot be nested"},
		{"ungrouped column", "SELECT district, gender, count(*) FROM civil.residents GROUP BY district", sluice.EInvalid, "column gender must appear in GROUP BY"},
		{"ungrouped without group by", "SELECT district, count(*) FROM civil.residents", sluice.EInvalid, "column district must appear in GROUP BY"},
		{"ungrouped order", "SELECT district, count(*) FROM civil.residents GROUP BY district ORDER BY gender", sluice.EInvalid, "ORDER BY uses column gender"},
		{"having without group", "SELECT district FROM civil.residents HAVING district = 'x'", sluice.EInvalid, "HAVING needs GROUP BY"},
		{"ordinal out of range", "SELECT district FROM civil.residents ORDER BY 3", sluice.EInvalid, "out of range"},
		{"order by constant", "SELECT district FROM civil.residents ORDER BY 'x'", sluice.ENotSupported, "ORDER BY a constant"},
		{"group by constant", "SELECT count(*) FROM civil.residents GROUP BY 'x'", sluice.ENotSupported, "GROUP BY a constant"},
		{"duplicate alias", "SELECT district AS d, gender AS d FROM civil.residents", sluice.EInvalid, "used twice"},
		{"count distinct many", "SELECT count(DISTINCT district, gender) FROM civil.residents", sluice.ENotSupported, "several columns"},
		{"sum star", "SELECT sum(*) FROM civil.residents", sluice.EInvalid, "COUNT(*)"},
		{"sum text", "SELECT sum(district) FROM civil.residents", sluice.EInvalid, "sum() works on numbers"},
		{"arith on text", "SELECT district + 1 FROM civil.residents", sluice.EInvalid, "needs numbers"},
		{"mod on decimal", "SELECT monthly_allowance % 2 FROM civil.residents", sluice.ENotSupported, "on decimal values is not supported yet"},
		{"compare int with text", "SELECT district FROM civil.residents WHERE low_income = '1'", sluice.EInvalid, "cannot compare integer with text"},
		{"compare int with bool", "SELECT district FROM civil.residents WHERE low_income = TRUE", sluice.EInvalid, "cannot compare"},
		{"where not condition", "SELECT district FROM civil.residents WHERE low_income", sluice.EInvalid, "WHERE needs a condition"},
		{"and on ints", "SELECT district FROM civil.residents WHERE low_income AND 1", sluice.EInvalid, "AND needs conditions"},
		{"like on int", "SELECT district FROM civil.residents WHERE low_income LIKE '1%'", sluice.EInvalid, "LIKE works on text"},
		{"substr zero start", "SELECT substr(name, 0, 1) FROM civil.residents", sluice.ENotSupported, "substr() start"},
		{"substr expr start", "SELECT substr(name, low_income, 1) FROM civil.residents", sluice.ENotSupported, "substr() start"},
		{"round digits expr", "SELECT round(monthly_allowance, low_income) FROM civil.residents", sluice.ENotSupported, "round() digits"},
		{"lower int", "SELECT lower(low_income) FROM civil.residents", sluice.EInvalid, "lower() works on text"},
		{"arity", "SELECT lower(name, district) FROM civil.residents", sluice.EInvalid, "lower() takes 1 argument"},
		{"coalesce one", "SELECT coalesce(name) FROM civil.residents", sluice.EInvalid, "coalesce() takes 2"},
		{"distinct scalar", "SELECT lower(DISTINCT name) FROM civil.residents", sluice.EInvalid, "DISTINCT is only allowed inside an aggregate"},
		{"case mixed", "SELECT CASE WHEN low_income = 1 THEN 'yes' ELSE 0 END FROM civil.residents", sluice.EInvalid, "incompatible"},
		{"distinct order not selected", "SELECT DISTINCT district FROM civil.residents ORDER BY gender", sluice.EInvalid, "SELECT DISTINCT"},
		{"extract field", "SELECT EXTRACT(EPOCH FROM birth_date) FROM civil.residents", sluice.ENotSupported, "EXTRACT(EPOCH FROM ...) is not supported yet; supported: YEAR, MONTH, DAY (at line 1, column 8)"},
		{"extract text", "SELECT EXTRACT(YEAR FROM district) FROM civil.residents", sluice.EInvalid, "works on dates and timestamps, got text"},
		{"date_part no args", "SELECT date_part() FROM civil.residents", sluice.EInvalid, "write EXTRACT(YEAR FROM x)"},
		{"year function", "SELECT year(birth_date) FROM civil.residents", sluice.ENotSupported, "write EXTRACT(YEAR FROM x)"},
		{"escape", "SELECT district FROM civil.residents WHERE name LIKE 'a!%' ESCAPE '!'", sluice.ENotSupported, "ESCAPE with another character than"},
		{"star only hidden", "SELECT * FROM police.criminal_records WHERE 1 = 0 AND offense = 'x'", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := p.Plan("q", tc.sql)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Plan succeeded, want %s error containing %q; fragment:\n%s", tc.code, tc.want, pl.Fragment.Normalized())
			}
			var se *sluice.Error
			if !errorsAs(err, &se) {
				t.Fatalf("error %T %v is not a *sluice.Error", err, err)
			}
			if se.Code != tc.code || !strings.Contains(se.Message, tc.want) {
				t.Fatalf("got %s %q, want %s containing %q", se.Code, se.Message, tc.code, tc.want)
			}
		})
	}
}

func errorsAs(err error, target **sluice.Error) bool {
	e, ok := err.(*sluice.Error)
	if ok {
		*target = e
	}
	return ok
}

// TestErrorsDoNotEchoLiterals keeps protected values out of messages: an
// analyst may paste an identity number into a query that fails.
func TestErrorsDoNotEchoLiterals(t *testing.T) {
	p := New(testCatalog(t))
	secret := "110101199003071234"
	for _, sql := range []string{
		"SELECT district FROM civil.residents WHERE low_income = '" + secret + "'",
		"SELECT district FROM civil.residents WHERE salary = '" + secret + "'",
		"SELECT district + '" + secret + "' FROM civil.residents",
	} {
		_, err := p.Plan("q", sql)
		if err == nil {
			t.Fatalf("Plan(%q) succeeded", sql)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error for %q echoes the literal: %v", sql, err)
		}
	}
}

func TestStarExpansion(t *testing.T) {
	p := New(testCatalog(t))
	pl := mustPlan(t, p, "SELECT * FROM police.criminal_records")
	if got := len(pl.Fragment.Select); got != 1 || pl.Fragment.Select[0].Expr.Column != "id_card" {
		t.Fatalf("SELECT * over a dataset with hidden columns: got %s", pl.Fragment.Normalized())
	}
	pl = mustPlan(t, p, "SELECT r.*, 1 AS one FROM civil.residents AS r")
	var names []string
	for _, it := range pl.Fragment.Select {
		names = append(names, it.Alias)
	}
	want := "id_card,name,gender,birth_date,district,phone,low_income,monthly_allowance,one"
	if strings.Join(names, ",") != want {
		t.Fatalf("names %v, want %s", names, want)
	}
	for _, u := range pl.Usages {
		if !reflect.DeepEqual(u.Usages, []sluice.Usage{sluice.UseOutput}) || u.Transformed {
			t.Errorf("%s: usages %v transformed=%v, want plain output", u.Column, u.Usages, u.Transformed)
		}
	}
}

func TestOutputNames(t *testing.T) {
	p := New(testCatalog(t))
	tests := []struct{ sql, want string }{
		{"SELECT count(*), avg(annual_claims), sum(hospital_visits) AS visits FROM health.insured", "count,avg_annual_claims,visits"},
		{"SELECT district, DISTRICT, lower(district), count(district) FROM civil.residents GROUP BY district", "district,district_2,lower_district,count_district"},
		{"SELECT low_income + 1, low_income * 2 FROM civil.residents", "expr,expr_2"},
		{"SELECT count(*), count(*) AS count FROM civil.residents", "count_2,count"},
		{`SELECT "人数" FROM civil.residents`, ""},
		{`SELECT count(*) AS "人数" FROM civil.residents`, "人数"},
		{"SELECT count(*) AS 人数 FROM civil.residents", "人数"},
		{`SELECT count(*) AS "Total" FROM civil.residents`, "Total"},
		{"SELECT count(*) AS Total FROM civil.residents", "total"},
	}
	for _, tc := range tests {
		pl, err := p.Plan("q", tc.sql)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: want error", tc.sql)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		var names []string
		for _, it := range pl.Fragment.Select {
			names = append(names, it.Alias)
		}
		if got := strings.Join(names, ","); got != tc.want {
			t.Errorf("%s: names %s, want %s", tc.sql, got, tc.want)
		}
	}
}

func TestNameResolution(t *testing.T) {
	p := New(testCatalog(t))
	tests := []struct{ sql, want string }{
		{"select DISTRICT from CIVIL.RESIDENTS", "FROM civil.residents\nSELECT district AS \"district\""},
		{"SELECT r.district, civil.residents.gender FROM civil.residents r", "FROM civil.residents\nSELECT district AS \"district\", gender AS \"gender\""},
		{"SELECT residents.district FROM civil.residents", "FROM civil.residents\nSELECT district AS \"district\""},
		// ORDER BY prefers the output name, GROUP BY the source column.
		{"SELECT lower(district) AS district FROM civil.residents ORDER BY district", "FROM civil.residents\nSELECT lower(district) AS \"district\"\nORDER BY lower(district)"},
		{"SELECT upper(district) AS district, count(*) FROM civil.residents GROUP BY district", "FROM civil.residents\nSELECT upper(district) AS \"district\", count(*) AS \"count\"\nGROUP BY district"},
		{"SELECT district AS d, count(*) AS n FROM civil.residents GROUP BY d HAVING n > 2 ORDER BY n DESC, 1 LIMIT 5 OFFSET 10",
			"FROM civil.residents\nSELECT district AS \"d\", count(*) AS \"n\"\nGROUP BY district\nHAVING (count(*) > 2)\nORDER BY count(*) DESC, district\nLIMIT 5\nOFFSET 10"},
		{"SELECT district FROM civil.residents LIMIT 7 OFFSET 3", "FROM civil.residents\nSELECT district AS \"district\"\nLIMIT 7\nOFFSET 3"},
		{"SELECT -1.5, - -2, -low_income, NULL, TRUE, 'it''s' FROM civil.residents", "FROM civil.residents\nSELECT -1.5 AS \"expr\", 2 AS \"expr_2\", (-low_income) AS \"expr_3\", NULL AS \"expr_4\", TRUE AS \"expr_5\", 'it''s' AS \"expr_6\""},
		{"SELECT district FROM civil.residents WHERE NOT (low_income = 1 OR gender <> 'f') AND birth_date BETWEEN '1990-01-01' AND '1999-12-31' AND phone IS NOT NULL AND district NOT IN ('a', 'b') AND name NOT LIKE '张%'",
			"FROM civil.residents\nSELECT district AS \"district\"\nWHERE (((((NOT ((low_income = 1) OR (gender <> 'f'))) AND (birth_date BETWEEN '1990-01-01' AND '1999-12-31')) AND (phone IS NOT NULL)) AND (district NOT IN ('a', 'b'))) AND (name NOT LIKE '张%'))"},
		{"SELECT CASE low_income WHEN 1 THEN 'low' ELSE 'other' END AS band, substring(name, 1, 1) AS s FROM civil.residents",
			"FROM civil.residents\nSELECT (CASE low_income WHEN 1 THEN 'low' ELSE 'other' END) AS \"band\", substr(name, 1, 1) AS \"s\""},
	}
	for _, tc := range tests {
		pl := mustPlan(t, p, tc.sql)
		if got := pl.Fragment.Normalized(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.sql, got, tc.want)
		}
		if pl.Fragment.QueryID != "q-test" || !reflect.DeepEqual(pl.Datasets, []string{"civil.residents"}) || pl.SQL != tc.sql {
			t.Errorf("%s: plan metadata %q %v", tc.sql, pl.Fragment.QueryID, pl.Datasets)
		}
	}
}

// lin renders usages compactly: "col:usage+usage[*]" where * marks
// Transformed.
func lin(us []sluice.ColumnUsage) string {
	var parts []string
	for _, u := range us {
		var s []string
		for _, x := range u.Usages {
			s = append(s, string(x))
		}
		p := u.Column + ":" + strings.Join(s, "+")
		if u.Transformed {
			p += "*"
		}
		if u.Dataset == "" {
			p = "?" + p
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func TestLineage(t *testing.T) {
	p := New(testCatalog(t))
	tests := []struct{ sql, want string }{
		{"SELECT district FROM civil.residents", "district:output"},
		{"SELECT lower(district) FROM civil.residents", "district:output*"},
		{"SELECT district, lower(district) FROM civil.residents", "district:output*"},
		{"SELECT count(*) FROM civil.residents", ""},
		{"SELECT count(id_card) FROM civil.residents", "id_card:aggregate"},
		{"SELECT count(DISTINCT id_card) FROM civil.residents WHERE low_income = 1", "id_card:distinct_aggregate low_income:predicate"},
		{"SELECT max(monthly_allowance), min(birth_date) FROM civil.residents", "birth_date:order_statistic monthly_allowance:order_statistic"},
		{"SELECT sum(monthly_allowance * 12) FROM civil.residents", "monthly_allowance:aggregate_expression"},
		{"SELECT district, avg(monthly_allowance) FROM civil.residents GROUP BY district", "district:group+output monthly_allowance:aggregate"},
		{"SELECT district, count(*) FROM civil.residents GROUP BY district HAVING avg(monthly_allowance) > 100 AND district <> 'x'",
			"district:group+output+predicate monthly_allowance:aggregate"},
		{"SELECT district FROM civil.residents ORDER BY gender, birth_date DESC", "birth_date:order district:output gender:order"},
		{"SELECT district AS d FROM civil.residents ORDER BY d", "district:order+output"},
		{"SELECT lower(district) AS d FROM civil.residents ORDER BY 1", "district:order+output*"},
		{"SELECT district, count(monthly_allowance) AS n FROM civil.residents GROUP BY district ORDER BY n", "district:group+output monthly_allowance:aggregate"},
		{"SELECT district FROM civil.residents GROUP BY district ORDER BY count(monthly_allowance)", "district:group+output monthly_allowance:aggregate"},
		{"SELECT district, sum(monthly_allowance) AS s FROM civil.residents GROUP BY district HAVING s > 10", "district:group+output monthly_allowance:aggregate"},
		{"SELECT CASE WHEN monthly_allowance > 500 THEN 'high' ELSE 'low' END AS band FROM civil.residents",
			"monthly_allowance:output+predicate*"},
		{"SELECT sum(CASE WHEN chronic_disease = 1 THEN annual_claims ELSE 0 END) FROM health.insured",
			"annual_claims:aggregate_expression chronic_disease:aggregate_expression+predicate"},
		{"SELECT CASE insurance_type WHEN 'employee' THEN hospital_visits END FROM health.insured",
			"hospital_visits:output* insurance_type:output+predicate*"},
		{"SELECT DISTINCT district FROM civil.residents", "district:output"},
		{"SELECT substr(name, 1, 1) AS s, count(*) FROM civil.residents GROUP BY 1", "name:group+output*"},
		{"SELECT * FROM health.insured WHERE chronic_disease = 1",
			"annual_claims:output chronic_disease:output+predicate hospital_visits:output id_card:output insurance_type:output"},
		{"SELECT 1 FROM civil.residents WHERE birth_date > '1990-01-01' AND phone LIKE '138%'", "birth_date:predicate phone:predicate"},
		{"SELECT legal_rep_name FROM market.enterprises e WHERE e.registered_capital / 10000 > 5 ORDER BY e.established",
			"established:order legal_rep_name:output registered_capital:predicate"},
	}
	for _, tc := range tests {
		pl := mustPlan(t, p, tc.sql)
		if got := lin(pl.Usages); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.sql, got, tc.want)
		}
		for _, u := range pl.Usages {
			if u.Dataset != pl.Datasets[0] {
				t.Errorf("%s: usage dataset %q", tc.sql, u.Dataset)
			}
		}
	}
}

func TestAggregateFlag(t *testing.T) {
	p := New(testCatalog(t))
	tests := []struct {
		sql  string
		want bool
	}{
		{"SELECT district FROM civil.residents", false},
		{"SELECT DISTINCT district FROM civil.residents", false},
		{"SELECT count(*) FROM civil.residents", true},
		{"SELECT district, count(*) FROM civil.residents GROUP BY district", true},
		{"SELECT district FROM civil.residents GROUP BY district", true},
		{"SELECT lower(district), 1, count(*) + 1 FROM civil.residents GROUP BY district", true},
		{"SELECT district, sum(monthly_allowance) / count(*) FROM civil.residents GROUP BY district HAVING count(*) > 10", true},
		{"SELECT lower(district) FROM civil.residents", false},
		{"SELECT 1 FROM civil.residents", false},
	}
	for _, tc := range tests {
		if got := mustPlan(t, p, tc.sql).Aggregate; got != tc.want {
			t.Errorf("%s: Aggregate = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func TestOutputFields(t *testing.T) {
	p := New(testCatalog(t))
	cat := testCatalog(t)
	tests := []struct {
		sql   string
		masks map[string]sluice.MaskRule
		want  string
	}{
		{"SELECT count(*), count(name), sum(low_income), sum(monthly_allowance), avg(low_income), min(birth_date), max(name) FROM civil.residents", nil,
			"count:integer count_name:integer sum_low_income:integer sum_monthly_allowance:decimal avg_low_income:float min_birth_date:date max_name:text"},
		{"SELECT name, birth_date, phone, id_card FROM civil.residents", map[string]sluice.MaskRule{"name": "surname", "birth_date": "year", "phone": "phone", "id_card": "id_card"},
			"name:text birth_date:integer phone:text id_card:text"},
		{"SELECT birth_date, min(birth_date) AS m FROM civil.residents GROUP BY birth_date", map[string]sluice.MaskRule{"BIRTH_DATE": "year"}, "birth_date:integer m:integer"},
		{"SELECT low_income + 1 AS a, low_income / 2 AS b, low_income * 1.5 AS c, monthly_allowance - 1 AS d, low_income % 2 AS e FROM civil.residents", nil,
			"a:integer b:integer c:float d:decimal e:integer"},
		{"SELECT low_income > 1 AS a, name LIKE 'x' AS b, district IN ('a') AS c, phone IS NULL AS d, NOT (low_income = 1) AS e, (low_income = 1 AND gender = 'f') AS f FROM civil.residents", nil,
			"a:boolean b:boolean c:boolean d:boolean e:boolean f:boolean"},
		{"SELECT lower(name), upper(name), substr(name, 2), trim(name), length(name), abs(low_income), round(monthly_allowance, 2), round(low_income), coalesce(district, 'n/a'), coalesce(low_income, 1.5) FROM civil.residents", nil,
			"lower_name:text upper_name:text substr_name:text trim_name:text length_name:integer abs_low_income:integer round_monthly_allowance:decimal round_low_income:float coalesce_district:text coalesce_low_income:float"},
		{"SELECT CASE WHEN low_income = 1 THEN 1 ELSE 2.5 END AS a, CASE WHEN low_income = 1 THEN 'x' END AS b, NULL AS c, TRUE AS d FROM civil.residents", nil,
			"a:float b:text c:text d:boolean"},
	}
	for _, tc := range tests {
		pl := mustPlan(t, p, tc.sql)
		pl.Fragment.Masks = tc.masks
		ds := cat.Dataset("civil", "residents")
		fields, err := OutputFields(pl.Fragment, ds)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		var parts []string
		for _, f := range fields {
			parts = append(parts, fmt.Sprintf("%s:%s", f.Name, f.Type))
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.sql, got, tc.want)
		}
	}
	if _, err := OutputFields(nil, nil); err == nil {
		t.Error("OutputFields(nil, nil) succeeded")
	}
}

func TestPlanConcurrent(t *testing.T) {
	p := New(testCatalog(t))
	var wg sync.WaitGroup
	want := mustPlan(t, p, "SELECT district, count(*) FROM civil.residents GROUP BY district").Fragment.Normalized()
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				pl, err := p.Plan("q", "SELECT district, count(*) FROM civil.residents GROUP BY district")
				if err != nil || pl.Fragment.Normalized() != want {
					t.Errorf("concurrent plan differs: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// date_trunc of a date released masked to its year is refused when the
// mask is known (the agent checks the same): the column is the year.
func TestDateTruncOfYearMaskedDate(t *testing.T) {
	cat := testCatalog(t)
	pl, err := New(cat).Plan("q", "SELECT date_trunc('year', birth_date) AS y FROM civil.residents")
	if err != nil {
		t.Fatal(err)
	}
	pl.Fragment.Masks = map[string]sluice.MaskRule{"birth_date": sluice.MaskYear}
	err = pl.Fragment.Validate(cat.Dataset("civil", "residents"))
	if err == nil || !strings.Contains(err.Error(), "released masked to its year") {
		t.Fatalf("want the year-masked refusal, got %v", err)
	}
}
