package planner

import (
	"cmp"
	"math"
	"sort"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Render renders the fragment to SQL for the dialect with every literal of
// the query as a bind parameter. It validates the fragment first: an agent
// renders what it received over the network, never trusting the broker.
//
// Masks are applied in a derived table that projects only the columns the
// fragment uses, each masked column replaced by its mask under the same
// name, so that output, WHERE, GROUP BY and ORDER BY all see only masked
// values. A fragment with a minimum group size renders with RenderUnits,
// which counts persons: Render refuses it.
func Render(f *Fragment, ds *sluice.Dataset, dialect sluice.Driver) (string, []any, error) {
	switch dialect {
	case sluice.DriverSQLite, sluice.DriverPostgres, sluice.DriverMySQL:
	case sluice.DriverFlightSQL:
		return "", nil, flightSQLUnsupported()
	default:
		return "", nil, invalid("cannot render SQL for driver %q; use sqlite, postgres or mysql", clip(string(dialect)))
	}
	if err := f.Validate(ds); err != nil {
		return "", nil, err
	}
	if f.MinGroupSize > 0 {
		return "", nil, invalid("a fragment with a minimum group size is rendered by RenderUnits, which counts its persons")
	}
	r := &renderer{d: dialect, ds: ds, f: f, masks: map[string]sluice.MaskRule{}, c: &checker{ds: ds, masks: f.Masks}}
	for k, m := range f.Masks {
		r.masks[ds.Column(k).Name] = m
	}
	r.fragment()
	return r.sb.String(), r.args, nil
}

// RenderUnits renders a protected fragment (MinGroupSize k > 0) for an
// agent that enforces k itself, counting persons rather than rows: for
// each of the fragment's contributor sets (Fragment.UnitSets) it adds two
// last output columns, the list of the set's unit values per group (the
// dataset's privacy unit, comma-separated: UnitSetPrefix+i, text) and
// their number (UnitCountPrefix+i, integer), which the agent checks the
// parsed list against. A set after the first that holds every row of its
// group (its count equals the group's) is sent as NULL: it is the first
// set again. Nothing about k is rendered: the agent drops the
// groups under k. LIMIT and OFFSET are left out too, because the database
// would apply them before the agent drops groups: the agent applies them
// to the groups it keeps. The caller must drop the unit columns (turning
// them into sketches) and every group under k before any row leaves.
//
// A DISTINCT fragment is refused: the unit columns would change which
// rows are distinct, and GROUP BY says the same.
func RenderUnits(f *Fragment, ds *sluice.Dataset, dialect sluice.Driver) (string, []any, error) {
	if err := f.Validate(ds); err != nil {
		return "", nil, err
	}
	if f.MinGroupSize <= 0 {
		return "", nil, invalid("RenderUnits needs a fragment with a minimum group size; use Render")
	}
	if f.Distinct {
		return "", nil, sluice.Errorf(sluice.ENotSupported, "SELECT DISTINCT is not supported yet in an aggregate-only release; use GROUP BY")
	}
	unit := ds.PrivacyUnit()
	if unit == nil {
		return "", nil, sluice.Errorf(sluice.ENotSupported, "%s declares no unique person key, so an aggregate-only release cannot count its persons; its data admin must mark the column that identifies each row's person as join_key with unique: true", ds.FullName())
	}
	sets, err := f.UnitSets()
	if err != nil {
		return "", nil, err
	}
	fc := *f
	fc.MinGroupSize, fc.Limit, fc.Offset = 0, nil, 0
	switch dialect {
	case sluice.DriverSQLite, sluice.DriverPostgres, sluice.DriverMySQL:
	case sluice.DriverFlightSQL:
		return "", nil, flightSQLUnsupported()
	default:
		return "", nil, invalid("cannot render SQL for driver %q; use sqlite, postgres or mysql", clip(string(dialect)))
	}
	r := &renderer{d: dialect, ds: ds, f: &fc, masks: map[string]sluice.MaskRule{}, c: &checker{ds: ds, masks: fc.Masks}, units: sets, unit: unit.Name}
	for k, m := range fc.Masks {
		r.masks[ds.Column(k).Name] = m
	}
	r.fragment()
	return r.sb.String(), r.args, nil
}

// flightSQLUnsupported refuses a fragment for a Flight SQL source whose
// server declares no dialect the renderer writes (masks included).
func flightSQLUnsupported() error {
	return sluice.Errorf(sluice.ENotSupported, "this Flight SQL source's server declares no SQL dialect Sluice can render (SQLite- or PostgreSQL-like), so its fragments, masks included, are not supported yet; if it accepts one of them, set the source's flightsql.dialect")
}

// UnitScanFields are the columns the SQL of RenderUnits returns: the
// fragment's output fields, then a list and a count per contributor set.
func UnitScanFields(f *Fragment, ds *sluice.Dataset) ([]Field, error) {
	fields, err := OutputFields(f, ds)
	if err != nil {
		return nil, err
	}
	sets, err := f.UnitSets()
	if err != nil {
		return nil, err
	}
	for i := range sets {
		n := strconv.Itoa(i)
		fields = append(fields, Field{Name: UnitSetPrefix + n, Type: sluice.TypeText}, Field{Name: UnitCountPrefix + n, Type: sluice.TypeInteger})
	}
	return fields, nil
}

type renderer struct {
	// units adds, after the select list, each contributor set's list of
	// unit values and their count (RenderUnits); unit is the dataset's
	// privacy unit column.
	units   []UnitSet
	unit    string
	unitRef string // the unit column's name in the FROM item, when not unit
	d       sluice.Driver
	ds      *sluice.Dataset
	f       *Fragment
	masks   map[string]sluice.MaskRule // by catalog column name
	c       *checker
	sb      strings.Builder
	args    []any
}

func (r *renderer) w(s ...string) {
	for _, x := range s {
		r.sb.WriteString(x)
	}
}

func (r *renderer) ident(name string) string {
	if r.d == sluice.DriverMySQL {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func (r *renderer) table() string {
	parts := strings.Split(r.ds.Table, ".")
	for i, p := range parts {
		parts[i] = r.ident(p)
	}
	return strings.Join(parts, ".")
}

func (r *renderer) fragment() {
	f := r.f
	from := r.source()
	r.w("SELECT ")
	if f.Distinct {
		r.w("DISTINCT ")
	}
	for i, it := range f.Select {
		if i > 0 {
			r.w(", ")
		}
		r.expr(it.Expr, "")
		r.w(" AS ", r.ident(it.Alias))
	}
	unit := r.ident(cmp.Or(r.unitRef, r.unit))
	for i, u := range r.units {
		n := strconv.Itoa(i)
		v := unit
		if u.Of != "" {
			v = "CASE WHEN " + r.ident(r.ds.Column(u.Of).Name) + " IS NOT NULL THEN " + unit + " END"
		}
		var list string
		switch r.d {
		case sluice.DriverSQLite:
			list = "group_concat(" + v + ", ',')"
		case sluice.DriverPostgres:
			list = "string_agg(CAST(" + v + " AS TEXT), ',')"
		default:
			list = "GROUP_CONCAT(" + v + " SEPARATOR ',')"
		}
		if i > 0 {
			// Usually every row of the group reaches the aggregate too:
			// then the set is the group's, and is not listed twice.
			list = "CASE WHEN COUNT(" + v + ") = COUNT(" + unit + ") THEN NULL ELSE " + list + " END"
		}
		r.w(", ", list, " AS ", r.ident(UnitSetPrefix+n), ", COUNT(", v, ") AS ", r.ident(UnitCountPrefix+n))
	}
	r.w(" FROM ", from)
	if f.Where != nil {
		r.w(" WHERE ")
		r.expr(f.Where, "")
	}
	if len(f.GroupBy) > 0 {
		r.w(" GROUP BY ")
		for i, g := range f.GroupBy {
			if i > 0 {
				r.w(", ")
			}
			r.key(g)
		}
	}
	if f.Having != nil {
		r.w(" HAVING ")
		r.expr(f.Having, "")
	}
	if len(f.OrderBy) > 0 {
		r.w(" ORDER BY ")
		for i, o := range f.OrderBy {
			if i > 0 {
				r.w(", ")
			}
			r.key(o.Expr)
			if o.Desc {
				r.w(" DESC")
			}
			// PostgreSQL sorts NULLs last ascending; SQLite and MySQL
			// first. Every dialect gets the SQLite and MySQL order.
			if r.d == sluice.DriverPostgres {
				if o.Desc {
					r.w(" NULLS LAST")
				} else {
					r.w(" NULLS FIRST")
				}
			}
		}
	}
	r.limit()
}

// key renders a GROUP BY or ORDER BY key. A key equal to a select item is
// rendered as its position, so the database matches it to the output
// column exactly even when both contain bind parameters.
func (r *renderer) key(e *Expr) {
	if i := selectIndex(r.f, e); i >= 0 {
		r.w(strconv.Itoa(i + 1))
		return
	}
	r.expr(e, "")
}

func (r *renderer) limit() {
	f := r.f
	if f.Limit == nil && f.Offset == 0 {
		return
	}
	if f.Limit != nil {
		r.w(" LIMIT ")
		r.param(&Literal{Type: LitInt, Text: strconv.FormatInt(*f.Limit, 10)}, sluice.TypeInteger)
	} else {
		switch r.d {
		case sluice.DriverSQLite:
			r.w(" LIMIT -1")
		case sluice.DriverMySQL:
			r.w(" LIMIT 18446744073709551615")
		}
	}
	if f.Offset > 0 {
		r.w(" OFFSET ")
		r.param(&Literal{Type: LitInt, Text: strconv.FormatInt(f.Offset, 10)}, sluice.TypeInteger)
	}
}

// source is the FROM item: the table itself, or a derived table applying
// the masks when any used column is masked.
func (r *renderer) source() string {
	used := map[string]bool{}
	var collect func(e *Expr)
	collect = func(e *Expr) {
		if e == nil {
			return
		}
		if e.Kind == KindColumn {
			used[strings.ToLower(e.Column)] = true
		}
		for _, a := range e.Args {
			collect(a)
		}
	}
	for _, it := range r.f.Select {
		collect(it.Expr)
	}
	collect(r.f.Where)
	for _, g := range r.f.GroupBy {
		collect(g)
	}
	collect(r.f.Having)
	for _, o := range r.f.OrderBy {
		collect(o.Expr)
	}
	var cols []string
	masked := false
	for _, c := range r.ds.Columns {
		if !used[strings.ToLower(c.Name)] {
			continue
		}
		if m, ok := r.masks[c.Name]; ok {
			masked = true
			cols = append(cols, r.maskSQL(c.Name, m)+" AS "+r.ident(c.Name))
		} else {
			cols = append(cols, r.ident(c.Name))
		}
	}
	if !masked {
		return r.table()
	}
	if r.unit != "" {
		// Persons are counted by their raw key, whatever mask the query
		// sees: it stays in the department's database and the agent.
		r.unitRef = reservedPrefix + "unit"
		cols = append(cols, r.ident(r.unit)+" AS "+r.ident(r.unitRef))
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM " + r.table() + ") AS " + r.ident("t")
}

// maskSQL is the desensitisation expression of one column. Every mask
// keeps NULL as NULL, and values too short to keep their ends are masked
// whole, so a mask never reveals a whole value.
func (r *renderer) maskSQL(col string, m sluice.MaskRule) string {
	c := r.ident(col)
	keepEnds := func(head, tail int, stars string) string {
		min := strconv.Itoa(head + tail)
		h, t := strconv.Itoa(head), strconv.Itoa(tail)
		whole := "'" + strings.Repeat("*", head+tail) + "'"
		switch r.d {
		case sluice.DriverSQLite:
			return "CASE WHEN " + c + " IS NULL THEN NULL WHEN length(" + c + ") <= " + min + " THEN " + whole +
				" ELSE substr(" + c + ", 1, " + h + ") || '" + stars + "' || substr(" + c + ", -" + t + ") END"
		case sluice.DriverPostgres:
			return "CASE WHEN " + c + " IS NULL THEN NULL WHEN char_length(" + c + ") <= " + min + " THEN " + whole +
				" ELSE left(" + c + ", " + h + ") || '" + stars + "' || right(" + c + ", " + t + ") END"
		default:
			return "CASE WHEN " + c + " IS NULL THEN NULL WHEN CHAR_LENGTH(" + c + ") <= " + min + " THEN " + whole +
				" ELSE CONCAT(LEFT(" + c + ", " + h + "), '" + stars + "', RIGHT(" + c + ", " + t + ")) END"
		}
	}
	switch m {
	case sluice.MaskIDCard:
		return keepEnds(6, 4, "********")
	case sluice.MaskPhone:
		return keepEnds(3, 4, "****")
	case sluice.MaskSurname:
		// Character-based in every dialect, so a Chinese surname stays
		// one whole character.
		switch r.d {
		case sluice.DriverSQLite:
			return "(substr(" + c + ", 1, 1) || '**')"
		case sluice.DriverPostgres:
			return "(left(" + c + ", 1) || '**')"
		default:
			return "CONCAT(LEFT(" + c + ", 1), '**')"
		}
	case sluice.MaskYear:
		switch r.d {
		case sluice.DriverSQLite:
			return "CAST(strftime('%Y', " + c + ") AS INTEGER)"
		case sluice.DriverPostgres:
			return "CAST(EXTRACT(YEAR FROM " + c + ") AS INTEGER)"
		default:
			return "YEAR(" + c + ")"
		}
	}
	// redact, and any rule Validate let through by mistake: reveal nothing.
	return "CASE WHEN " + c + " IS NULL THEN NULL ELSE '***' END"
}

// typeOf infers the type of e for parameter typing; e was validated.
func (r *renderer) typeOf(e *Expr) sluice.ColumnType {
	t, err := r.c.check(e, true, false, 0)
	if err != nil {
		return ""
	}
	return t.t
}

// param appends a bind parameter. PostgreSQL needs a type for parameters
// it cannot infer (as in $1 + $2); a string stays untyped where it meets a
// non-text value, so '2020-01-01' still compares with a date column.
func (r *renderer) param(l *Literal, hint sluice.ColumnType) {
	var v any
	switch l.Type {
	case LitNull:
		r.w("NULL")
		return
	case LitInt:
		n, _ := strconv.ParseInt(l.Text, 10, 64)
		v = n
	case LitFloat:
		x, _ := strconv.ParseFloat(l.Text, 64)
		v = x
	case LitBool:
		v = l.Text == "true"
	default:
		v = l.Text
	}
	r.args = append(r.args, v)
	if r.d != sluice.DriverPostgres {
		r.w("?")
		return
	}
	ph := "$" + strconv.Itoa(len(r.args))
	switch l.Type {
	case LitInt:
		if n := v.(int64); n >= math.MinInt32 && n <= math.MaxInt32 {
			r.w("CAST(", ph, " AS INTEGER)")
		} else {
			r.w("CAST(", ph, " AS BIGINT)")
		}
	case LitFloat:
		r.w("CAST(", ph, " AS DOUBLE PRECISION)")
	case LitBool:
		r.w("CAST(", ph, " AS BOOLEAN)")
	default:
		if hint == "" || hint == sluice.TypeText {
			r.w("CAST(", ph, " AS TEXT)")
		} else {
			r.w(ph)
		}
	}
}

func (r *renderer) floatCast(e *Expr) {
	r.w("CAST(")
	r.expr(e, "")
	switch r.d {
	case sluice.DriverSQLite:
		r.w(" AS REAL)")
	case sluice.DriverPostgres:
		r.w(" AS DOUBLE PRECISION)")
	default:
		r.w(" AS DOUBLE)")
	}
}

func (r *renderer) list(es []*Expr, hint sluice.ColumnType) {
	for i, a := range es {
		if i > 0 {
			r.w(", ")
		}
		r.expr(a, hint)
	}
}

// expr renders e fully parenthesised, so precedence never depends on the
// dialect. hint is the type of the value e meets, for parameter typing.
func (r *renderer) expr(e *Expr, hint sluice.ColumnType) {
	switch e.Kind {
	case KindColumn:
		r.w(r.ident(r.ds.Column(e.Column).Name))
	case KindLiteral:
		r.param(e.Literal, hint)
	case KindStar:
		r.w("*")
	case KindUnary:
		if e.Op == "NOT" {
			r.w("(NOT ")
		} else {
			r.w("(-")
		}
		r.expr(e.Args[0], hint)
		r.w(")")
	case KindBinary:
		l, rt := e.Args[0], e.Args[1]
		switch {
		case e.Op == "/":
			r.w("(")
			r.floatCast(l)
			r.w(" / NULLIF(")
			r.expr(rt, "")
			r.w(", 0))")
		case e.Op == "%":
			r.w("(")
			r.expr(l, "")
			r.w(" % NULLIF(")
			r.expr(rt, "")
			r.w(", 0))")
		case e.Op == "div":
			// Integer division truncating toward zero (SQLite's and
			// PostgreSQL's / on integers, MySQL's DIV); NULL on zero.
			op := " / "
			if r.d == sluice.DriverMySQL {
				op = " DIV "
			}
			r.w("(")
			r.expr(l, sluice.TypeInteger)
			r.w(op, "NULLIF(")
			r.expr(rt, sluice.TypeInteger)
			r.w(", 0))")
		case e.Op == "||" && r.d == sluice.DriverMySQL:
			// MySQL's || is OR; CONCAT is NULL when an argument is, as ||
			// is elsewhere.
			r.w("CONCAT(")
			r.expr(l, sluice.TypeText)
			r.w(", ")
			r.expr(rt, sluice.TypeText)
			r.w(")")
		case e.Op == "||":
			r.w("(")
			r.expr(l, sluice.TypeText)
			r.w(" || ")
			r.expr(rt, sluice.TypeText)
			r.w(")")
		default:
			r.w("(")
			r.expr(l, r.typeOf(rt))
			r.w(" ", e.Op, " ")
			r.expr(rt, r.typeOf(l))
			r.w(")")
		}
	case KindFunc:
		r.function(e, hint)
	case KindAggregate:
		r.aggregate(e)
	case KindIsNull:
		r.w("(")
		r.expr(e.Args[0], "")
		if e.Negate {
			r.w(" IS NOT NULL)")
		} else {
			r.w(" IS NULL)")
		}
	case KindIn:
		r.w("(")
		r.expr(e.Args[0], r.typeOf(e.Args[1]))
		if e.Negate {
			r.w(" NOT")
		}
		r.w(" IN (")
		r.list(e.Args[1:], r.typeOf(e.Args[0]))
		r.w("))")
	case KindBetween:
		h := r.typeOf(e.Args[0])
		r.w("(")
		r.expr(e.Args[0], r.typeOf(e.Args[1]))
		if e.Negate {
			r.w(" NOT")
		}
		r.w(" BETWEEN ")
		r.expr(e.Args[1], h)
		r.w(" AND ")
		r.expr(e.Args[2], h)
		r.w(")")
	case KindLike:
		// LIKE tells upper from lower case, as in PostgreSQL. SQLite's
		// LIKE does not (for ASCII letters), so a constant pattern is
		// rendered as the GLOB that matches the same strings; MySQL's
		// follows the column's collation, so it compares in binary
		// collation (characters, not bytes).
		r.w("(")
		r.expr(e.Args[0], sluice.TypeText)
		if e.Negate {
			r.w(" NOT")
		}
		pat := e.Args[1]
		switch {
		case r.d == sluice.DriverSQLite && pat.Kind == KindLiteral && pat.Literal.Type == LitString:
			r.w(" GLOB ")
			r.param(&Literal{Type: LitString, Text: likeToGlob(pat.Literal.Text)}, sluice.TypeText)
		case r.d == sluice.DriverSQLite:
			// A pattern computed in the query: LIKE, with the case
			// sensitivity the agent's connections switch on
			// (adapters: PRAGMA case_sensitive_like).
			r.w(" LIKE ")
			r.expr(pat, sluice.TypeText)
			r.w(` ESCAPE '\'`)
		case r.d == sluice.DriverMySQL:
			r.w(" LIKE ")
			r.expr(pat, sluice.TypeText)
			r.w(" COLLATE utf8mb4_bin")
		default:
			r.w(" LIKE ")
			r.expr(pat, sluice.TypeText)
		}
		r.w(")")
	case KindCase:
		r.caseExpr(e)
	}
}

func (r *renderer) caseExpr(e *Expr) {
	n := len(e.Args)
	start, end := 0, n
	var opType sluice.ColumnType
	r.w("(CASE")
	if e.HasOperand {
		start = 1
		opType = r.typeOf(e.Args[0])
		r.w(" ")
		r.expr(e.Args[0], "")
	}
	if e.HasElse {
		end = n - 1
	}
	res := r.typeOf(e)
	for i := start; i+1 < end; i += 2 {
		r.w(" WHEN ")
		r.expr(e.Args[i], opType)
		r.w(" THEN ")
		r.expr(e.Args[i+1], res)
	}
	if e.HasElse {
		r.w(" ELSE ")
		r.expr(e.Args[n-1], res)
	}
	r.w(" END)")
}

func (r *renderer) function(e *Expr, hint sluice.ColumnType) {
	switch e.Func {
	case "lower", "upper", "trim":
		r.w(strings.ToUpper(e.Func), "(")
		r.expr(e.Args[0], sluice.TypeText)
		r.w(")")
	case "abs":
		r.w("ABS(")
		r.expr(e.Args[0], "")
		r.w(")")
	case "length":
		switch r.d {
		case sluice.DriverSQLite:
			r.w("length(")
		case sluice.DriverPostgres:
			r.w("char_length(")
		default:
			r.w("CHAR_LENGTH(")
		}
		r.expr(e.Args[0], sluice.TypeText)
		r.w(")")
	case "substr":
		// Positions are validated integer constants: they are part of the
		// query's shape, and inlining them keeps a substr in GROUP BY
		// identical to the same substr in the select list.
		if r.d == sluice.DriverMySQL {
			r.w("SUBSTRING(")
		} else {
			r.w("substr(")
		}
		r.expr(e.Args[0], sluice.TypeText)
		for _, a := range e.Args[1:] {
			v, _ := intLiteral(a)
			r.w(", ", strconv.FormatInt(v, 10))
		}
		r.w(")")
	case "round":
		digits := "0"
		if len(e.Args) == 2 {
			v, _ := intLiteral(e.Args[1])
			digits = strconv.FormatInt(v, 10)
		}
		if r.d == sluice.DriverPostgres && r.typeOf(e.Args[0]) != sluice.TypeDecimal {
			// PostgreSQL rounds doubles half to even and has no
			// round(double, int); numeric rounds half away from zero
			// like SQLite and MySQL.
			r.w("CAST(round(CAST(")
			r.expr(e.Args[0], "")
			r.w(" AS NUMERIC), ", digits, ") AS DOUBLE PRECISION)")
			return
		}
		r.w("ROUND(")
		r.expr(e.Args[0], "")
		r.w(", ", digits, ")")
	case "to_float":
		r.floatCast(e.Args[0])
	case "year", "month", "day":
		// The date part as an integer; SQLite keeps dates as
		// 'yyyy-mm-dd[ hh:mm:ss]' text. A date masked to its year is
		// the year already (the checker allows only YEAR of it).
		if r.c.maskedToYear(e.Args[0]) {
			r.expr(e.Args[0], "")
			return
		}
		switch r.d {
		case sluice.DriverSQLite:
			r.w("CAST(strftime('", map[string]string{"year": "%Y", "month": "%m", "day": "%d"}[e.Func], "', ")
			r.expr(e.Args[0], sluice.TypeDate)
			r.w(") AS INTEGER)")
		case sluice.DriverPostgres:
			r.w("CAST(EXTRACT(", strings.ToUpper(e.Func), " FROM ")
			r.expr(e.Args[0], sluice.TypeDate)
			r.w(") AS INTEGER)")
		default:
			r.w("EXTRACT(", strings.ToUpper(e.Func), " FROM ")
			r.expr(e.Args[0], sluice.TypeDate)
			r.w(")")
		}
	case "trunc_year", "trunc_month":
		// The first day of the year or month, a date in every dialect
		// (SQLite's dates are 'yyyy-mm-dd' text).
		month := e.Func == "trunc_month"
		switch r.d {
		case sluice.DriverSQLite:
			r.w(map[bool]string{true: "strftime('%Y-%m-01', ", false: "strftime('%Y-01-01', "}[month])
			r.expr(e.Args[0], sluice.TypeDate)
			r.w(")")
		case sluice.DriverPostgres:
			r.w(map[bool]string{true: "CAST(date_trunc('month', ", false: "CAST(date_trunc('year', "}[month])
			r.expr(e.Args[0], sluice.TypeDate)
			r.w(") AS DATE)")
		default:
			r.w("CAST(DATE_FORMAT(")
			r.expr(e.Args[0], sluice.TypeDate)
			r.w(map[bool]string{true: ", '%Y-%m-01') AS DATE)", false: ", '%Y-01-01') AS DATE)"}[month])
		}
	case "coalesce":
		r.w("COALESCE(")
		h := r.typeOf(e)
		if h == "" {
			h = hint
		}
		r.list(e.Args, h)
		r.w(")")
	}
}

func (r *renderer) aggregate(e *Expr) {
	r.w(strings.ToUpper(e.Func), "(")
	if e.Distinct {
		r.w("DISTINCT ")
	}
	if e.Func == "avg" && r.d != sluice.DriverSQLite {
		// PostgreSQL and MySQL average integers as decimals (MySQL to
		// four places); averaging doubles gives SQLite's answer.
		r.floatCast(e.Args[0])
	} else {
		r.expr(e.Args[0], "")
	}
	r.w(")")
}

// Normalized renders the fragment in a canonical, dialect-neutral text form
// for audit records and golden files. It includes the obligations (masks,
// minimum group size) because they change what the fragment releases.
func (f *Fragment) Normalized() string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("FROM " + f.Dataset + "\nSELECT ")
	if f.Distinct {
		b.WriteString("DISTINCT ")
	}
	for i, it := range f.Select {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(normExpr(it.Expr, 0) + " AS " + quoteNorm(it.Alias))
	}
	if f.Where != nil {
		b.WriteString("\nWHERE " + normExpr(f.Where, 0))
	}
	if len(f.GroupBy) > 0 {
		b.WriteString("\nGROUP BY ")
		for i, g := range f.GroupBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(normExpr(g, 0))
		}
	}
	if f.Having != nil {
		b.WriteString("\nHAVING " + normExpr(f.Having, 0))
	}
	if len(f.OrderBy) > 0 {
		b.WriteString("\nORDER BY ")
		for i, o := range f.OrderBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(normExpr(o.Expr, 0))
			if o.Desc {
				b.WriteString(" DESC")
			}
		}
	}
	if f.Limit != nil {
		b.WriteString("\nLIMIT " + strconv.FormatInt(*f.Limit, 10))
	}
	if f.Offset != 0 {
		b.WriteString("\nOFFSET " + strconv.FormatInt(f.Offset, 10))
	}
	if len(f.Masks) > 0 {
		keys := make([]string, 0, len(f.Masks))
		for k := range f.Masks {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("\nMASK ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=" + string(f.Masks[k]))
		}
	}
	if f.MinGroupSize != 0 {
		b.WriteString("\nMIN GROUP SIZE " + strconv.Itoa(f.MinGroupSize) + " PERSONS")
	}
	if f.SandboxK != 0 {
		b.WriteString("\nSANDBOX K " + strconv.Itoa(f.SandboxK))
	}
	if f.UnitAlias != "" {
		b.WriteString("\nUNITS AS " + quoteNorm(f.UnitAlias))
	}
	return b.String()
}

func quoteNorm(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func normExpr(e *Expr, depth int) string {
	if e == nil {
		return "<nil>"
	}
	if depth > maxExprDepth {
		return "<too deep>"
	}
	args := make([]string, len(e.Args))
	for i, a := range e.Args {
		args[i] = normExpr(a, depth+1)
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return "<missing>"
	}
	not := func() string {
		if e.Negate {
			return "NOT "
		}
		return ""
	}
	switch e.Kind {
	case KindColumn:
		return e.Column
	case KindLiteral:
		if e.Literal == nil {
			return "<nil>"
		}
		switch e.Literal.Type {
		case LitString:
			return "'" + strings.ReplaceAll(e.Literal.Text, "'", "''") + "'"
		case LitNull:
			return "NULL"
		case LitBool:
			return strings.ToUpper(e.Literal.Text)
		}
		return e.Literal.Text
	case KindStar:
		return "*"
	case KindUnary:
		if e.Op == "NOT" {
			return "(NOT " + arg(0) + ")"
		}
		return "(" + e.Op + arg(0) + ")"
	case KindBinary:
		return "(" + arg(0) + " " + e.Op + " " + arg(1) + ")"
	case KindFunc, KindAggregate:
		d := ""
		if e.Distinct {
			d = "DISTINCT "
		}
		return e.Func + "(" + d + strings.Join(args, ", ") + ")"
	case KindIsNull:
		return "(" + arg(0) + " IS " + not() + "NULL)"
	case KindIn:
		if len(args) == 0 {
			return "(<missing> IN ())"
		}
		return "(" + args[0] + " " + not() + "IN (" + strings.Join(args[1:], ", ") + "))"
	case KindBetween:
		return "(" + arg(0) + " " + not() + "BETWEEN " + arg(1) + " AND " + arg(2) + ")"
	case KindLike:
		return "(" + arg(0) + " " + not() + "LIKE " + arg(1) + ")"
	case KindCase:
		var b strings.Builder
		b.WriteString("(CASE")
		i, end := 0, len(args)
		if e.HasOperand && len(args) > 0 {
			b.WriteString(" " + args[0])
			i = 1
		}
		if e.HasElse {
			end--
		}
		for ; i+1 < end; i += 2 {
			b.WriteString(" WHEN " + args[i] + " THEN " + args[i+1])
		}
		if e.HasElse && len(args) > 0 {
			b.WriteString(" ELSE " + args[len(args)-1])
		}
		b.WriteString(" END)")
		return b.String()
	}
	return "<" + kindName(e.Kind) + ">"
}

// likeToGlob rewrites a LIKE pattern (backslash escapes the next
// character; a trailing backslash is literal) as the SQLite GLOB pattern
// that matches the same strings, case-sensitively: % is *, _ is ?, and
// GLOB's own special characters stand in brackets.
func likeToGlob(p string) string {
	var b strings.Builder
	lit := func(c rune) {
		switch c {
		case '*', '?', '[':
			b.WriteString("[" + string(c) + "]")
		default:
			b.WriteRune(c)
		}
	}
	esc := false
	for _, c := range p {
		switch {
		case esc:
			lit(c)
			esc = false
		case c == '\\':
			esc = true
		case c == '%':
			b.WriteByte('*')
		case c == '_':
			b.WriteByte('?')
		default:
			lit(c)
		}
	}
	if esc {
		lit('\\')
	}
	return b.String()
}
