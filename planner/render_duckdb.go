package planner

import (
	"context"
	"errors"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// This file renders a sandbox plan (Node tree) as one DuckDB SELECT whose
// answer is the answer of the hand-written sandbox operators it replaced (package
// sandbox), value for value and type for type. The SQL is built only from
// the plan: every literal of the query is a bind parameter ($n), every
// identifier is quoted, and the only constants written into the text are
// the renderer's own (casts, 10000, the round() digits 0..15 that DuckDB
// requires as a constant, the one-to-one message).
//
// How the sandbox's semantics are kept (their expectations are the golden
// corpus in sandbox/testdata/engine):
//
//   - Types. The renderer type-checks every expression exactly as the
//     sandbox compiles it (integer < decimal < float widening, string
//     literals compared with dates become dates, NULL literals typeless)
//     and casts every operand to the sandbox's computation type:
//     integer BIGINT, float DOUBLE, decimal DECIMAL(38,4), text VARCHAR,
//     binary BLOB, boolean BOOLEAN, date DATE, timestamp TIMESTAMP (UTC
//     wall clock). Relation inputs are normalised to these types as they
//     are read (int32 → BIGINT, float32 → DOUBLE, any decimal → (38,4),
//     rounding half away from zero as the sandbox does, a timestamp in
//     s, ms or µs of any zone → microseconds since the epoch; DuckDB
//     rounds nanoseconds where the sandbox truncates, so
//     sandbox.DuckDBColumns refuses them).
//   - Division is always float and NULL on a zero divisor (DuckDB's
//     double division gives ±Inf): a / NULLIF(b, 0).
//   - % is on integers only and NULL on a zero divisor (DuckDB raises an
//     error), and x % -1 is 0 (DuckDB overflows on MIN % -1).
//   - A decimal becomes a float the way arrow-go does it (unscaled value
//     as a double, times 1e-4), not DuckDB's (divided by 10^4), which can
//     differ in the last bit.
//   - decimal × decimal is computed at scale 8 and rounded half away from
//     zero to scale 4; decimal × integer stays at scale 4 (exact).
//   - AVG is SUM / COUNT as a double, as the sandbox computes it (DuckDB's
//     own decimal AVG divides in long double). SUM of integers is cast to
//     BIGINT (an overflow is an error, as in the sandbox), of decimals to
//     DECIMAL(38,4).
//   - LIKE: the sandbox's pattern (backslash escapes the next character, a
//     trailing backslash is literal) is rewritten for ESCAPE '\'; DuckDB
//     LIKE is case-sensitive and matches characters, as the sandbox does.
//   - trim removes spaces only: trim(x, ' ').
//   - substr: a start below 1 shortens the length, a negative length means
//     to the end, and positions beyond DuckDB's 2^32-1 limit are clamped.
//   - round(x, d): doubles use round(x·10^d)/10^d (DuckDB's and the
//     sandbox's formula), decimals round half away from zero back to
//     DECIMAL(38,4), integers become doubles.
//   - Sort: ascending NULLS FIRST, descending NULLS LAST, written out.
//     Ordering survives projection, filtering, DISTINCT and LIMIT through
//     hidden key columns, so the final SELECT orders explicitly; a sort
//     over an ordered input keeps the old keys as tie-breakers (the sandbox
//     sort is stable).
//   - Join keys are compared at their common type; NULL keys never match
//     (plain =). The residual is part of ON (LEFT JOIN ON semantics). A
//     semi join is SEMI JOIN (left rows once, left columns only).
//   - units: the group's non-NULL 8-byte pseudonyms, concatenated, as one
//     BLOB ('' for a group without any), via hex/string_agg/unhex.
//   - Timestamps leave as TIMESTAMPTZ holding the same instant whatever
//     the session's TimeZone (Arrow timestamp[us, tz]); the zone label is
//     the session's TimeZone, so it is the sandbox's timestamp[us, UTC]
//     when the session runs with TimeZone 'UTC'. Dates leave as DATE,
//     which DuckDB emits as Arrow date32 where the sandbox emits date64
//     (equal values). DuckDB emits no field metadata. The caller converts
//     DuckDB's output to the sandbox's schema (sandbox.ConformDuckDB with
//     sandbox.DuckDBSchema of DuckDBQuery.Columns).
//
// Under DuckDBOptions.OneToOne every inner and left join checks that no
// row meets a second row (sandbox JoinOptions.OneToOne): both inputs
// become MATERIALIZED common table expressions, a third one counts the
// key values present on both sides that occur more than once on either,
// and raises error(DuckDBOneToOneMessage) when there is one; the join's
// WHERE reads it, so DuckDB materialises it before the join runs.
// IsDuckDBOneToOne tells the error apart.

// DuckDBColumn is one column of a relation given to, or produced by, the
// DuckDB renderer, with its sandbox type: one of the sluice.ColumnType
// values (binary included), or DuckDBNull for a column of Arrow type null.
type DuckDBColumn struct {
	Name string
	Type sluice.ColumnType
}

// DuckDBNull types a column whose every value is NULL (Arrow type null).
const DuckDBNull sluice.ColumnType = "null"

// DuckDBRelation is a relation already registered in DuckDB (a view or a
// temporary table) standing for a plan node: View is its name, Columns
// its columns in the node's output order. The renderer reads the columns
// by position, so their DuckDB names do not matter; Columns' names are the
// node's output names.
type DuckDBRelation struct {
	View    string
	Columns []DuckDBColumn
}

// DuckDBOptions configure RenderDuckDB.
type DuckDBOptions struct {
	// Leaf returns the relation standing for a node: every fragment node
	// must have one, and any other node for which it returns ok is read
	// from its relation instead of being rendered (a node already executed,
	// e.g. the aggregate whose output passed the release gate). A relation
	// is read as unordered. The rendered SQL reads each relation exactly
	// once.
	Leaf func(*Node) (DuckDBRelation, bool)
	// OneToOne fails the query when, in any inner or left join, a row
	// meets a second row (the sandbox's JoinOptions.OneToOne, set under a
	// differential-privacy grant). DuckDB then raises an error whose text
	// contains DuckDBOneToOneMessage; see IsDuckDBOneToOne.
	OneToOne bool
}

// DuckDBQuery is a rendered sandbox plan.
type DuckDBQuery struct {
	// SQL is one SELECT; Args are its bind parameters $1, $2, ... in order.
	SQL  string
	Args []any
	// Columns are the output columns, in order, with the names of the
	// node's output and the type the sandbox gives each: the Arrow type
	// the broker promised is adapters.ArrowType of it (see the notes on
	// dates and timestamps above).
	Columns []DuckDBColumn
}

// DuckDBOneToOneMessage is the text of the error DuckDB raises when a join
// rendered under DuckDBOptions.OneToOne meets a row twice; the same
// message as the sandbox's. It names no key.
const DuckDBOneToOneMessage = "a row met more than one row in a join the catalog declares one-to-one (its keys unique), so the result cannot be released under a differential-privacy budget; the declaration does not match the data: ask the provider's data admin to correct the catalog"

// IsDuckDBRendererError reports whether err is one the rendered SQL raises
// itself (error(...) with the renderer's own text, which quotes no value):
// the one-to-one check and the units() pseudonym check.
// DuckDBRuntimeError gives it its meaning.
func IsDuckDBRendererError(err error) bool {
	return err != nil && (IsDuckDBOneToOne(err) || strings.Contains(err.Error(), duckUnitsMessage))
}

// IsDuckDBOneToOne reports whether err is DuckDB's error for a join
// rendered under DuckDBOptions.OneToOne that met a row twice. The text is
// the renderer's own and quotes no value: an error classifier that
// withholds DuckDB's "Invalid Input Error" messages (they can quote
// values) must test for it first, or the failure loses its meaning.
func IsDuckDBOneToOne(err error) bool {
	return err != nil && strings.Contains(err.Error(), DuckDBOneToOneMessage)
}

// duckUnitsMessage is the text of the error units() raises on a
// pseudonym that is not 8 bytes (an agent's bug).
const duckUnitsMessage = "units() got a pseudonym that is not 8 bytes"

// DuckDBRuntimeError turns an error DuckDB raised while running a
// rendered plan into the error the sandbox gives in its place. DuckDB's
// own text can quote data values (an overflow names its operands), so it
// never becomes the message: it stays reachable through Unwrap for the
// operator's log. Context cancellation and deadlines pass through
// unchanged.
func DuckDBRuntimeError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := err.Error()
	wrap := func(code, text string) error { return &sluice.Error{Code: code, Message: text, Err: err} }
	switch {
	case IsDuckDBOneToOne(err):
		return &sluice.Error{Code: sluice.ENotSupported, Message: DuckDBOneToOneMessage, Err: err}
	case strings.Contains(msg, duckUnitsMessage):
		return wrap(sluice.EInternal, duckUnitsMessage)
	case strings.Contains(msg, "Out of Range Error"), strings.Contains(msg, "Conversion Error"):
		return wrap(sluice.EInvalid, "a value does not fit its type (integer or decimal overflow in arithmetic, abs() or SUM); cast to a decimal or narrow the data")
	case strings.Contains(msg, "Out of Memory Error"):
		return wrap(sluice.EResource, "the query needs more memory than the sandbox allows (memory limit); add filters or aggregate at the source")
	case strings.Contains(msg, "INTERRUPT Error"), strings.Contains(msg, "Interrupt Error"):
		return wrap(sluice.EUnavailable, "the query was interrupted")
	}
	return wrap(sluice.EInternal, "the sandbox engine failed to run the query")
}

// RenderDuckDB renders the sandbox plan rooted at n as one DuckDB SELECT.
// opts.Leaf names the relation standing for each fragment node (and for
// any node already executed). The output's columns are exactly the node's
// output columns, in order, under their names. Whatever the sandbox would
// reject fails here with the sandbox's error code (EInvalid,
// ENotSupported); whatever DuckDB cannot compute as the sandbox does fails
// with ENotSupported.
func RenderDuckDB(n *Node, opts DuckDBOptions) (*DuckDBQuery, error) {
	if n == nil {
		return nil, sluice.Errorf(sluice.EInternal, "the sandbox plan is empty")
	}
	if opts.Leaf == nil {
		return nil, sluice.Errorf(sluice.EInternal, "RenderDuckDB needs a Leaf function naming the fragments' relations")
	}
	r := &duckRenderer{opts: opts}
	rel, err := r.node(n, 0)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	cols := make([]DuckDBColumn, len(rel.cols))
	for i, c := range rel.cols {
		if strings.IndexByte(c.name, 0) >= 0 {
			return nil, sluice.Errorf(sluice.ENotSupported, "an output column name with a NUL character is not supported yet")
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(duckOutput("t."+duckCol(i), c.t) + " AS " + duckQuote(c.name))
		cols[i] = DuckDBColumn{Name: c.name, Type: c.t.columnType()}
	}
	b.WriteString(" FROM (" + rel.sql + ") AS t")
	b.WriteString(rel.orderBy("t."))
	sql := r.finish(b.String())
	return &DuckDBQuery{SQL: sql, Args: r.args, Columns: cols}, nil
}

// ---- types ----

// dtype mirrors the computation types of the sandbox the renderer replaced.
type dtype uint8

const (
	dNull dtype = iota
	dInt
	dFloat
	dDec
	dStr
	dBin
	dBool
	dDate
	dTS
)

func (t dtype) String() string {
	switch t {
	case dNull:
		return "NULL"
	case dInt:
		return "integer"
	case dFloat:
		return "float"
	case dDec:
		return "decimal"
	case dStr:
		return "text"
	case dBin:
		return "binary"
	case dBool:
		return "boolean"
	case dDate:
		return "date"
	case dTS:
		return "timestamp"
	}
	return "unknown"
}

func (t dtype) numeric() bool  { return t == dInt || t == dFloat || t == dDec }
func (t dtype) temporal() bool { return t == dDate || t == dTS }

// sqlType is the DuckDB type values of t are computed in.
func (t dtype) sqlType() string {
	switch t {
	case dInt:
		return "BIGINT"
	case dFloat:
		return "DOUBLE"
	case dDec:
		return "DECIMAL(38,4)"
	case dBin:
		return "BLOB"
	case dBool:
		return "BOOLEAN"
	case dDate:
		return "DATE"
	case dTS:
		return "TIMESTAMP"
	}
	return "VARCHAR"
}

// columnType is the type of an output column of type t: NULLs leave as
// text, as the sandbox emits a computed NULL column (it passes an input
// column of Arrow type null through as such).
func (t dtype) columnType() sluice.ColumnType {
	switch t {
	case dInt:
		return sluice.TypeInteger
	case dFloat:
		return sluice.TypeFloat
	case dDec:
		return sluice.TypeDecimal
	case dBin:
		return sluice.TypeBinary
	case dBool:
		return sluice.TypeBoolean
	case dDate:
		return sluice.TypeDate
	case dTS:
		return sluice.TypeTimestamp
	}
	return sluice.TypeText
}

func dtypeOf(t sluice.ColumnType) (dtype, bool) {
	switch t {
	case sluice.TypeInteger:
		return dInt, true
	case sluice.TypeFloat:
		return dFloat, true
	case sluice.TypeDecimal:
		return dDec, true
	case sluice.TypeText:
		return dStr, true
	case sluice.TypeBinary:
		return dBin, true
	case sluice.TypeBoolean:
		return dBool, true
	case sluice.TypeDate:
		return dDate, true
	case sluice.TypeTimestamp:
		return dTS, true
	case DuckDBNull:
		return dNull, true
	}
	return 0, false
}

// duckUnify is the sandbox's unifyTypes: the common type of CASE
// branches, COALESCE arguments, comparison operands and join keys.
func duckUnify(ts ...dtype) (dtype, bool) {
	out := dNull
	for _, t := range ts {
		switch {
		case t == dNull:
		case out == dNull:
			out = t
		case out == t:
		case out.numeric() && t.numeric():
			if out == dFloat || t == dFloat {
				out = dFloat
			} else {
				out = dDec
			}
		case out.temporal() && t.temporal():
			out = dTS
		case (out == dStr && t == dBin) || (out == dBin && t == dStr):
			out = dBin
		default:
			return 0, false
		}
	}
	return out, true
}

// ---- SQL text helpers ----

// duckQuote quotes an identifier for DuckDB.
func duckQuote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// duckString writes one of the renderer's own constants (never a value
// of the query) as a SQL string literal.
func duckString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// duckCol is the internal name of visible column i of a rendered node;
// duckKey of hidden order key i.
func duckCol(i int) string { return "c" + strconv.Itoa(i) }
func duckKey(i int) string { return "k" + strconv.Itoa(i) }

// duckOutput converts an internal value to the type it leaves DuckDB in:
// a timestamp as TIMESTAMPTZ (the same instant whatever the session's
// TimeZone), a typeless NULL as text.
func duckOutput(sql string, t dtype) string {
	switch t {
	case dTS:
		return "(to_timestamp(0) + to_microseconds(epoch_us(" + sql + ")))"
	case dNull:
		return "CAST(" + sql + " AS VARCHAR)"
	}
	return sql
}

// duckInput normalises a relation column of type t to its internal type.
func duckInput(sql string, t dtype) string {
	switch t {
	case dTS:
		// Seconds, milliseconds or microseconds, with or without a zone:
		// the instant, as the sandbox reads the raw value.
		return "make_timestamp(epoch_us(" + sql + "))"
	case dNull:
		return sql
	}
	return "CAST(" + sql + " AS " + t.sqlType() + ")"
}

// decToFloat converts a DECIMAL(38,4) to DOUBLE as arrow-go's
// decimal128.Num.ToFloat64 does: the unscaled integer as a double, times
// 1e-4.
func decToFloat(sql string) string {
	return "(CAST(CAST(trunc(" + sql + ") AS HUGEINT) * 10000 + CAST((" + sql + " - trunc(" + sql + ")) * 10000 AS HUGEINT) AS DOUBLE) * CAST(1e-4 AS DOUBLE))"
}

// ---- relations ----

type duckRenderer struct {
	opts DuckDBOptions
	vals []any // the values of the parameter tokens
	args []any
	ctes int
}

// param returns a placeholder for a bind parameter of value v. Until the
// statement is complete a placeholder is a token (NUL, index, NUL), as an
// expression's text may be dropped (an argument of a function whose
// result is known to be NULL); finish numbers the parameters the
// statement uses, in order.
func (r *duckRenderer) param(v any) string {
	r.vals = append(r.vals, v)
	return "\x00" + strconv.Itoa(len(r.vals)-1) + "\x00"
}

// finish replaces the parameter tokens of sql by $1, $2, ... and sets
// r.args.
func (r *duckRenderer) finish(sql string) string {
	var b strings.Builder
	num := map[int]int{}
	for {
		i := strings.IndexByte(sql, 0)
		if i < 0 {
			b.WriteString(sql)
			return b.String()
		}
		j := strings.IndexByte(sql[i+1:], 0)
		id, _ := strconv.Atoi(sql[i+1 : i+1+j])
		n, ok := num[id]
		if !ok {
			r.args = append(r.args, r.vals[id])
			n = len(r.args)
			num[id] = n
		}
		b.WriteString(sql[:i] + "$" + strconv.Itoa(n))
		sql = sql[i+1+j+1:]
	}
}

type dcol struct {
	name string
	t    dtype
}

// drel is a rendered node: a SELECT producing the visible columns c0..
// and then, when the rows are ordered, hidden key columns k0.. to order
// by (desc[i] for key i).
type drel struct {
	sql  string
	cols []dcol
	desc []bool // one per hidden order key; empty when unordered
}

func (d *drel) ordered() bool { return len(d.desc) > 0 }

// orderBy renders ORDER BY over the hidden keys, qualified by prefix.
func (d *drel) orderBy(prefix string) string {
	if !d.ordered() {
		return ""
	}
	parts := make([]string, len(d.desc))
	for i, desc := range d.desc {
		if desc {
			parts[i] = prefix + duckKey(i) + " DESC NULLS LAST"
		} else {
			parts[i] = prefix + duckKey(i) + " ASC NULLS FIRST"
		}
	}
	return " ORDER BY " + strings.Join(parts, ", ")
}

// passKeys renders ", t.k0 AS k0, ..." carrying the hidden keys.
func (d *drel) passKeys(prefix string) string {
	var b strings.Builder
	for i := range d.desc {
		b.WriteString(", " + prefix + duckKey(i) + " AS " + duckKey(i))
	}
	return b.String()
}

// visible renders "t.c0 AS c0, ..." for the visible columns.
func (d *drel) visible(prefix string) string {
	parts := make([]string, len(d.cols))
	for i := range d.cols {
		parts[i] = prefix + duckCol(i) + " AS " + duckCol(i)
	}
	return strings.Join(parts, ", ")
}

func (d *drel) names() []string {
	out := make([]string, len(d.cols))
	for i, c := range d.cols {
		out[i] = c.name
	}
	return out
}

// resolve finds a column by name as the sandbox does: exact match first,
// then a unique case-insensitive match.
func resolveDuck(cols []dcol, name string) (int, error) {
	found, n := -1, 0
	for i, c := range cols {
		if c.name == name {
			found, n = i, n+1
		}
	}
	if n == 1 {
		return found, nil
	}
	if n > 1 {
		return 0, invalid("column %q is ambiguous: the input has it %d times", clip(name), n)
	}
	found = -1
	for i, c := range cols {
		if strings.EqualFold(c.name, name) {
			if found >= 0 {
				return 0, invalid("column %q is ambiguous: it matches %q and %q", clip(name), clip(cols[found].name), clip(c.name))
			}
			found = i
		}
	}
	if found < 0 {
		return 0, invalid("the sandbox input has no column %q", clip(name))
	}
	return found, nil
}

func (r *duckRenderer) node(n *Node, depth int) (*drel, error) {
	if n == nil {
		return nil, sluice.Errorf(sluice.EInternal, "the sandbox plan has an empty node")
	}
	if depth > maxExprDepth {
		return nil, invalid("the sandbox plan is nested more than %d levels deep", maxExprDepth)
	}
	if rel, ok := r.opts.Leaf(n); ok {
		return r.leaf(n, rel)
	}
	want := 1
	switch n.Op {
	case OpFragment:
		return nil, sluice.Errorf(sluice.EInternal, "the plan refers to fragment %d, which has no DuckDB relation", n.Fragment)
	case OpJoin, OpUnion:
		want = 2
	case OpFilter, OpAggregate, OpProject, OpSort, OpLimit, OpDistinct, OpWindow:
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "sandbox operator %q is not supported yet", clip(n.Op))
	}
	if len(n.Inputs) != want {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox operator %s has %d inputs; want %d", n.Op, len(n.Inputs), want)
	}
	ins := make([]*drel, len(n.Inputs))
	for i, in := range n.Inputs {
		d, err := r.node(in, depth+1)
		if err != nil {
			return nil, err
		}
		ins[i] = d
	}
	switch n.Op {
	case OpJoin:
		return r.join(n, ins[0], ins[1])
	case OpFilter:
		return r.filter(n, ins[0])
	case OpAggregate:
		return r.aggregate(n, ins[0])
	case OpProject:
		return r.project(n, ins[0])
	case OpSort:
		return r.sort(n, ins[0])
	case OpLimit:
		return r.limit(n, ins[0])
	case OpUnion:
		return r.union(n, ins[0], ins[1])
	case OpWindow:
		return r.window(n, ins[0])
	}
	return r.distinct(ins[0])
}

// union stacks the rows of two inputs column by column (UNION ALL), or
// keeps each distinct row once (UNION); the columns take the union's names
// and the types both inputs unify to. The order of the inputs is not kept.
func (r *duckRenderer) union(n *Node, left, right *drel) (*drel, error) {
	if len(n.Outputs) != len(left.cols) || len(n.Outputs) != len(right.cols) {
		return nil, invalid("a union needs inputs of %d columns each, got %d and %d", len(n.Outputs), len(left.cols), len(right.cols))
	}
	out := &drel{}
	var ls, rs []string
	for i, name := range n.Outputs {
		t, ok := duckUnify(left.cols[i].t, right.cols[i].t)
		if !ok {
			return nil, invalid("column %d of the union is %s on one side and %s on the other", i+1, left.cols[i].t, right.cols[i].t)
		}
		if t == dNull {
			t = dStr
		}
		out.cols = append(out.cols, dcol{name: name, t: t})
		ls = append(ls, castSQL("l."+duckCol(i), left.cols[i].t, t)+" AS "+duckCol(i))
		rs = append(rs, castSQL("r."+duckCol(i), right.cols[i].t, t)+" AS "+duckCol(i))
	}
	var kw string
	switch n.SetOp {
	case "":
		kw = " UNION "
	case SetIntersect:
		kw = " INTERSECT "
	case SetExcept:
		kw = " EXCEPT "
	default:
		return nil, sluice.Errorf(sluice.EInternal, "unknown set operation %q", clip(n.SetOp))
	}
	if n.UnionAll {
		kw += "ALL "
	}
	out.sql = "SELECT " + strings.Join(ls, ", ") + " FROM (" + left.sql + ") AS l" + kw + "SELECT " + strings.Join(rs, ", ") + " FROM (" + right.sql + ") AS r"
	return out, nil
}

func (r *duckRenderer) leaf(n *Node, rel DuckDBRelation) (*drel, error) {
	if rel.View == "" {
		return nil, sluice.Errorf(sluice.EInternal, "the DuckDB relation for a %s node has no name", clip(n.Op))
	}
	if len(rel.Columns) == 0 {
		return nil, sluice.Errorf(sluice.EInternal, "the DuckDB relation %s has no columns", clip(rel.View))
	}
	if strings.IndexByte(rel.View, 0) >= 0 {
		return nil, sluice.Errorf(sluice.ENotSupported, "a relation name with a NUL character is not supported yet")
	}
	d := &drel{}
	sel := make([]string, len(rel.Columns))
	aliases := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		t, ok := dtypeOf(c.Type)
		if !ok {
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q has type %q, which the sandbox does not support", clip(c.Name), clip(string(c.Type)))
		}
		d.cols = append(d.cols, dcol{name: c.Name, t: t})
		aliases[i] = duckQuote("v" + strconv.Itoa(i))
		sel[i] = duckInput("v."+aliases[i], t) + " AS " + duckCol(i)
	}
	// The relation's columns are renamed by position: their DuckDB names
	// play no part.
	d.sql = "SELECT " + strings.Join(sel, ", ") + " FROM " + duckQuote(rel.View) + " AS v(" + strings.Join(aliases, ", ") + ")"
	return d, nil
}

func (r *duckRenderer) filter(n *Node, in *drel) (*drel, error) {
	sc := &duckScope{cols: in.cols, ref: func(i int) string { return "t." + duckCol(i) }}
	x, err := r.compile(sc, n.Predicate, 0)
	if err != nil {
		return nil, err
	}
	if x.t != dBool && x.t != dNull {
		return nil, invalid("a filter needs a condition, got %s", x.t)
	}
	return &drel{
		sql:  "SELECT * FROM (" + in.sql + ") AS t WHERE " + r.cast(x, dBool),
		cols: in.cols,
		desc: in.desc,
	}, nil
}

func (r *duckRenderer) project(n *Node, in *drel) (*drel, error) {
	if len(n.Items) == 0 {
		return nil, invalid("projection needs at least one column")
	}
	sc := &duckScope{cols: in.cols, ref: func(i int) string { return "t." + duckCol(i) }}
	out := &drel{desc: in.desc}
	seen := map[string]bool{}
	sel := make([]string, len(n.Items))
	for i, it := range n.Items {
		x, err := r.compile(sc, it.Expr, 0)
		if err != nil {
			return nil, err
		}
		name := it.Alias
		if name == "" {
			if x.kind != KindColumn {
				return nil, invalid("projected column %d has no name", i+1)
			}
			name = in.cols[x.col].name
		}
		key := strings.ToLower(name)
		if seen[key] {
			return nil, invalid("the projection names column %q twice; give each column its own alias", clip(name))
		}
		seen[key] = true
		t := x.t
		if x.kind != KindColumn && t == dNull {
			// A computed NULL column is emitted as text.
			t = dStr
		}
		sql := r.sql(x)
		if x.kind != KindColumn && x.t == dNull {
			sql = "CAST(" + sql + " AS VARCHAR)"
		}
		sel[i] = sql + " AS " + duckCol(i)
		out.cols = append(out.cols, dcol{name: name, t: t})
	}
	out.sql = "SELECT " + strings.Join(sel, ", ") + in.passKeys("t.") + " FROM (" + in.sql + ") AS t"
	return out, nil
}

func (r *duckRenderer) sort(n *Node, in *drel) (*drel, error) {
	if len(n.SortKeys) == 0 {
		return nil, invalid("sort needs at least one key")
	}
	out := &drel{cols: in.cols}
	var keys []string
	for _, k := range n.SortKeys {
		i, err := resolveDuck(in.cols, k.Column)
		if err != nil {
			return nil, err
		}
		keys = append(keys, "t."+duckCol(i))
		out.desc = append(out.desc, k.Desc)
	}
	// The sandbox's sort is stable: rows the new keys tie keep the order
	// they had.
	for i, d := range in.desc {
		keys = append(keys, "t."+duckKey(i))
		out.desc = append(out.desc, d)
	}
	var b strings.Builder
	b.WriteString("SELECT " + in.visible("t."))
	for i, k := range keys {
		b.WriteString(", " + k + " AS " + duckKey(i))
	}
	b.WriteString(" FROM (" + in.sql + ") AS t")
	out.sql = b.String()
	return out, nil
}

func (r *duckRenderer) limit(n *Node, in *drel) (*drel, error) {
	if n.Offset < 0 {
		return nil, invalid("OFFSET must not be negative")
	}
	sql := "SELECT * FROM (" + in.sql + ") AS t" + in.orderBy("t.")
	if n.Limit != nil && *n.Limit >= 0 {
		sql += " LIMIT " + r.param(*n.Limit)
	}
	if n.Offset > 0 {
		sql += " OFFSET " + r.param(n.Offset)
	}
	return &drel{sql: sql, cols: in.cols, desc: in.desc}, nil
}

func (r *duckRenderer) distinct(in *drel) (*drel, error) {
	if !in.ordered() {
		return &drel{sql: "SELECT DISTINCT * FROM (" + in.sql + ") AS t", cols: in.cols}, nil
	}
	// The sandbox streams the first occurrence of every distinct row, in
	// order: keep, per distinct row, the first by the order keys.
	var on []string
	for i := range in.cols {
		on = append(on, "t."+duckCol(i))
	}
	order := strings.Join(on, ", ") + ", " + strings.TrimPrefix(in.orderBy("t."), " ORDER BY ")
	return &drel{
		sql:  "SELECT DISTINCT ON (" + strings.Join(on, ", ") + ") * FROM (" + in.sql + ") AS t ORDER BY " + order,
		cols: in.cols,
		desc: in.desc,
	}, nil
}

// joinRightPrefix is the sandbox's DefaultRightPrefix for clashing right columns.
const joinRightPrefix = "right_"

func (r *duckRenderer) join(n *Node, left, right *drel) (*drel, error) {
	scalar := len(n.Keys) == 0 && n.JoinKind == JoinInner && len(n.Inputs) == 2 && n.Inputs[1].oneRow(0)
	if len(n.Keys) == 0 && !scalar {
		return nil, invalid("a join needs the same number (at least one) of left and right keys (only an inner join with a one-row input, a scalar subquery, needs none)")
	}
	var on []string
	var lk, rk []string // the keys at their common type, over l. and r.
	for _, k := range n.Keys {
		li, err := resolveDuck(left.cols, k.Left)
		if err != nil {
			return nil, err
		}
		ri, err := resolveDuck(right.cols, k.Right)
		if err != nil {
			return nil, err
		}
		lt, rt := left.cols[li].t, right.cols[ri].t
		kt, ok := duckUnify(lt, rt)
		if !ok || kt == dNull {
			return nil, invalid("cannot join %s (%s) with %s (%s); join keys must be of the same kind", clip(k.Left), lt, clip(k.Right), rt)
		}
		l := castSQL("l."+duckCol(li), lt, kt)
		rr := castSQL("r."+duckCol(ri), rt, kt)
		lk, rk = append(lk, l), append(rk, rr)
		on = append(on, l+" = "+rr)
	}
	switch n.JoinKind {
	case JoinSemi, JoinAnti:
		if n.NullAware {
			// NOT IN (SELECT ...), with SQL's own NULL rules.
			if n.JoinKind != JoinAnti || len(n.Keys) != 1 || n.Residual != nil {
				return nil, invalid("a null-aware join is an anti join on one key without further conditions")
			}
			return &drel{
				sql:  "SELECT " + left.visible("l.") + left.passKeys("l.") + " FROM (" + left.sql + ") AS l WHERE " + lk[0] + " NOT IN (SELECT " + rk[0] + " FROM (" + right.sql + ") AS r)",
				cols: left.cols,
				desc: left.desc,
			}, nil
		}
		// The sandbox streams the left rows in order (an inner join with
		// the distinct right keys): an order of the left input stays.
		cond := strings.Join(on, " AND ")
		if n.Residual != nil {
			nl := len(left.cols)
			sc := &duckScope{cols: append(append([]dcol(nil), left.cols...), right.cols...), ref: func(i int) string {
				if i < nl {
					return "l." + duckCol(i)
				}
				return "r." + duckCol(i-nl)
			}}
			x, err := r.compile(sc, n.Residual, 0)
			if err != nil {
				return nil, err
			}
			if x.t != dBool && x.t != dNull {
				return nil, invalid("a join condition must be a condition, got %s", x.t)
			}
			cond += " AND (" + r.cast(x, dBool) + ")"
		}
		kind := " SEMI JOIN "
		if n.JoinKind == JoinAnti {
			kind = " ANTI JOIN "
		}
		return &drel{
			sql:  "SELECT " + left.visible("l.") + left.passKeys("l.") + " FROM (" + left.sql + ") AS l" + kind + "(" + right.sql + ") AS r ON " + cond,
			cols: left.cols,
			desc: left.desc,
		}, nil
	case JoinInner, JoinLeft:
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "join kind %q is not supported yet", clip(n.JoinKind))
	}
	// The output: left's columns, then right's, a right name clashing
	// with a left one (case-insensitively) prefixed.
	out := &drel{}
	taken := map[string]bool{}
	var sel []string
	for i, c := range left.cols {
		taken[strings.ToLower(c.name)] = true
		out.cols = append(out.cols, c)
		sel = append(sel, "l."+duckCol(i)+" AS "+duckCol(i))
	}
	for i, c := range right.cols {
		if taken[strings.ToLower(c.name)] {
			c.name = joinRightPrefix + c.name
			if taken[strings.ToLower(c.name)] {
				return nil, invalid("column %q appears on both sides of the join even after renaming; choose another prefix", clip(c.name))
			}
		}
		taken[strings.ToLower(c.name)] = true
		sel = append(sel, "r."+duckCol(i)+" AS "+duckCol(len(out.cols)))
		out.cols = append(out.cols, c)
	}
	if n.JoinKind == JoinInner {
		// The sandbox streams the left input and emits each row's matches
		// in turn: an order of the left input stays (a LEFT join emits
		// the unmatched rows of each batch after its matches).
		for i := range left.desc {
			sel = append(sel, "l."+duckKey(i)+" AS "+duckKey(i))
		}
		out.desc = left.desc
	}
	nl := len(left.cols)
	cond := strings.Join(on, " AND ")
	if scalar {
		cond = "TRUE"
	}
	if n.Residual != nil {
		sc := &duckScope{cols: out.cols, ref: func(i int) string {
			if i < nl {
				return "l." + duckCol(i)
			}
			return "r." + duckCol(i-nl)
		}}
		x, err := r.compile(sc, n.Residual, 0)
		if err != nil {
			return nil, err
		}
		if x.t != dBool && x.t != dNull {
			return nil, invalid("a join condition must be a condition, got %s", x.t)
		}
		cond += " AND (" + r.cast(x, dBool) + ")"
	}
	kind := " JOIN "
	if n.JoinKind == JoinLeft {
		kind = " LEFT JOIN "
	}
	if !r.opts.OneToOne || scalar {
		// A one-row input meets each row once: one to one as it stands.
		out.sql = "SELECT " + strings.Join(sel, ", ") + " FROM (" + left.sql + ") AS l" + kind + "(" + right.sql + ") AS r ON " + cond
		return out, nil
	}
	// One-to-one: the inputs are materialised once; the check counts,
	// among the key values present on both sides (NULL keys never
	// match), those held by more than one row of either side. Its CTE is
	// materialised before the join runs (the join's WHERE reads it),
	// whatever the join then keeps.
	r.ctes++
	id := strconv.Itoa(r.ctes)
	lc, rc, gc := "oto_l"+id, "oto_r"+id, "oto_g"+id
	group := func(keys []string, from string) string {
		parts := make([]string, len(keys))
		conds := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " AS q" + strconv.Itoa(i)
			conds[i] = k + " IS NOT NULL"
		}
		return "SELECT " + strings.Join(parts, ", ") + ", count(*) AS n FROM " + from + " WHERE " + strings.Join(conds, " AND ") + " GROUP BY ALL"
	}
	var match []string
	for i := range lk {
		q := "q" + strconv.Itoa(i)
		match = append(match, "a."+q+" = b."+q)
	}
	var b strings.Builder
	b.WriteString("WITH " + lc + " AS MATERIALIZED (" + left.sql + "), " + rc + " AS MATERIALIZED (" + right.sql + "), ")
	b.WriteString(gc + " AS MATERIALIZED (SELECT CASE WHEN EXISTS (SELECT 1 FROM (" + group(lk, lc+" AS l") + ") AS a JOIN (" + group(rk, rc+" AS r") + ") AS b ON " +
		strings.Join(match, " AND ") + " WHERE a.n > 1 OR b.n > 1) THEN error(" + duckString(DuckDBOneToOneMessage) + ") ELSE TRUE END AS ok) ")
	b.WriteString("SELECT " + strings.Join(sel, ", ") + " FROM " + lc + " AS l" + kind + rc + " AS r ON " + cond + " WHERE (SELECT ok FROM " + gc + ")")
	out.sql = b.String()
	return out, nil
}

// window adds one column per window function to its input's columns.
// Keys sort as in a sort node: NULLs first ascending, last descending.
func (r *duckRenderer) window(n *Node, in *drel) (*drel, error) {
	if len(n.Windows) == 0 {
		return nil, invalid("a window node needs at least one window function")
	}
	out := &drel{cols: append([]dcol(nil), in.cols...), desc: in.desc}
	sel := []string{in.visible("t.")}
	col := func(name string) (string, dtype, error) {
		i, err := resolveDuck(in.cols, name)
		if err != nil {
			return "", 0, err
		}
		return "t." + duckCol(i), in.cols[i].t, nil
	}
	for _, w := range n.Windows {
		var spec []string
		if len(w.PartitionBy) > 0 {
			var ps []string
			for _, p := range w.PartitionBy {
				c, _, err := col(p)
				if err != nil {
					return nil, err
				}
				ps = append(ps, c)
			}
			spec = append(spec, "PARTITION BY "+strings.Join(ps, ", "))
		}
		if len(w.OrderBy) > 0 {
			var os []string
			for _, k := range w.OrderBy {
				c, _, err := col(k.Column)
				if err != nil {
					return nil, err
				}
				if k.Desc {
					os = append(os, c+" DESC NULLS LAST")
				} else {
					os = append(os, c+" ASC NULLS FIRST")
				}
			}
			spec = append(spec, "ORDER BY "+strings.Join(os, ", "))
		}
		over := " OVER (" + strings.Join(spec, " ") + ")"
		var arg string
		var at dtype
		if w.Column != "" {
			c, t, err := col(w.Column)
			if err != nil {
				return nil, err
			}
			arg, at = c, t
		}
		var t dtype
		var sql string
		switch w.Func {
		case "row_number", "rank", "dense_rank":
			if w.Column != "" {
				return nil, invalid("%s() takes no argument", w.Func)
			}
			t, sql = dInt, "CAST("+w.Func+"()"+over+" AS BIGINT)"
		case "count":
			if w.Column == "" {
				t, sql = dInt, "CAST(count(*)"+over+" AS BIGINT)"
			} else {
				t, sql = dInt, "CAST(count("+arg+")"+over+" AS BIGINT)"
			}
		case "sum", "avg", "min", "max":
			if w.Column == "" {
				return nil, invalid("%s() needs a column", w.Func)
			}
			switch {
			case w.Func == "avg":
				if at != dNull && !at.numeric() {
					return nil, invalid("avg() works on numbers, got %s", at)
				}
				t, sql = dFloat, "avg(CAST("+arg+" AS DOUBLE))"+over
			case w.Func == "sum":
				if at != dNull && !at.numeric() {
					return nil, invalid("sum() works on numbers, got %s", at)
				}
				t = at
				if t == dNull {
					t = dInt
				}
				sql = "CAST(sum(" + arg + ")" + over + " AS " + t.sqlType() + ")"
			default:
				t, sql = at, w.Func+"("+arg+")"+over
				if t == dNull {
					t, sql = dStr, "CAST("+sql+" AS VARCHAR)"
				}
			}
		default:
			return nil, sluice.Errorf(sluice.ENotSupported, "window function %q is not supported yet", clip(w.Func))
		}
		sel = append(sel, sql+" AS "+duckCol(len(out.cols)))
		out.cols = append(out.cols, dcol{name: w.Alias, t: t})
	}
	out.sql = "SELECT " + strings.Join(sel, ", ") + in.passKeys("t.") + " FROM (" + in.sql + ") AS t"
	return out, nil
}
