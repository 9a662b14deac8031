package sandbox

// Helpers of the sandbox's tests: plans and expressions built in Go,
// inputs built from Go values, answers read back as Go values or in a
// canonical text form.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// ---- schemas and values ----

type col struct {
	name string
	typ  arrow.DataType
}

func schemaOf(cols ...col) *arrow.Schema {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	return arrow.NewSchema(fs, nil)
}

// buildRecord builds a record of schema sc from rows of Go values (see
// appendValue).
func buildRecord(t testing.TB, mem memory.Allocator, sc *arrow.Schema, rows [][]any) arrow.Record {
	t.Helper()
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for _, row := range rows {
		if len(row) != sc.NumFields() {
			t.Fatalf("row %v has %d values for %d columns", row, len(row), sc.NumFields())
		}
		for k, v := range row {
			if err := appendValue(b.Field(k), sc.Field(k).Type, v); err != nil {
				t.Fatalf("column %q: %v", sc.Field(k).Name, err)
			}
		}
	}
	return b.NewRecord()
}

// appendValue appends one Go value: nil is NULL; int for integers,
// float64 for floats, []byte for binary, bool; a string for text,
// decimals ("12.3400", at the column's scale), dates ("2006-01-02") and
// timestamps (RFC 3339, in the column's unit).
func appendValue(fb array.Builder, dt arrow.DataType, v any) error {
	if v == nil {
		fb.AppendNull()
		return nil
	}
	switch x := fb.(type) {
	case *array.Int64Builder:
		x.Append(int64(v.(int)))
	case *array.Int32Builder:
		x.Append(int32(v.(int)))
	case *array.Float64Builder:
		x.Append(v.(float64))
	case *array.Float32Builder:
		x.Append(float32(v.(float64)))
	case *array.StringBuilder:
		x.Append(v.(string))
	case *array.BinaryBuilder:
		x.Append(v.([]byte))
	case *array.BooleanBuilder:
		x.Append(v.(bool))
	case *array.Decimal128Builder:
		d := dt.(*arrow.Decimal128Type)
		n, err := decimal128.FromString(v.(string), d.Precision, d.Scale)
		if err != nil {
			return err
		}
		x.Append(n)
	case *array.Date32Builder:
		tm, err := time.Parse("2006-01-02", v.(string))
		if err != nil {
			return err
		}
		x.Append(arrow.Date32(tm.Unix() / 86400))
	case *array.Date64Builder:
		tm, err := time.Parse("2006-01-02", v.(string))
		if err != nil {
			return err
		}
		x.Append(arrow.Date64(tm.UnixMilli()))
	case *array.TimestampBuilder:
		tm, err := time.Parse(time.RFC3339Nano, v.(string))
		if err != nil {
			return err
		}
		switch dt.(*arrow.TimestampType).Unit {
		case arrow.Second:
			x.Append(arrow.Timestamp(tm.Unix()))
		case arrow.Millisecond:
			x.Append(arrow.Timestamp(tm.UnixMilli()))
		case arrow.Nanosecond:
			x.Append(arrow.Timestamp(tm.UnixNano()))
		default:
			x.Append(arrow.Timestamp(tm.UnixMicro()))
		}
	default:
		return fmt.Errorf("unsupported builder %T", fb)
	}
	return nil
}

// canonCell renders one value canonically, so that equal values render
// alike: floats by their bits (-0 as 0, any NaN as NaN), text quoted,
// binary in hex. A value of more than one 8-byte pseudonym (a units()
// set, whose order is not defined) renders as its pseudonyms sorted.
func canonCell(a arrow.Array, k int) string {
	if a.IsNull(k) {
		return "NULL"
	}
	switch x := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(x.Value(k), 10)
	case *array.Float64:
		v := x.Value(k)
		switch {
		case v != v:
			return "NaN"
		case v == 0:
			return "0.0"
		}
		return strconv.FormatFloat(v, 'g', -1, 64) + "f"
	case *array.Decimal128:
		return x.Value(k).ToString(x.DataType().(*arrow.Decimal128Type).Scale) + "d"
	case *array.String:
		return strconv.Quote(x.Value(k))
	case *array.Binary:
		v := x.Value(k)
		if len(v) > 8 && len(v)%8 == 0 {
			var parts []string
			for o := 0; o < len(v); o += 8 {
				parts = append(parts, hex.EncodeToString(v[o:o+8]))
			}
			sort.Strings(parts)
			return "units{" + strings.Join(parts, ",") + "}"
		}
		return "x'" + hex.EncodeToString(v) + "'"
	case *array.Boolean:
		return strconv.FormatBool(x.Value(k))
	case *array.Date64:
		ms := int64(x.Value(k))
		return "date " + time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000")
	case *array.Date32:
		return "date32 " + time.Unix(int64(x.Value(k))*86400, 0).UTC().Format("2006-01-02")
	case *array.Timestamp:
		return "ts " + time.UnixMicro(int64(x.Value(k))).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("?%T", a)
}

// canonRows renders the rows of recs with canonCell.
func canonRows(recs []arrow.Record) [][]string {
	out := [][]string{}
	for _, r := range recs {
		for k := 0; k < int(r.NumRows()); k++ {
			row := make([]string, r.NumCols())
			for col := range row {
				row[col] = canonCell(r.Column(col), k)
			}
			out = append(out, row)
		}
	}
	return out
}

// joinCanon joins each row's cells, sorted when the order does not
// matter.
func joinCanon(rows [][]string, sorted bool) []string {
	out := make([]string, len(rows))
	for k, r := range rows {
		out[k] = strings.Join(r, " | ")
	}
	if sorted {
		sort.Strings(out)
	}
	return out
}

// cell renders one value as a Go value for comparison: int, float64,
// string (text; binary as its bytes; a decimal at its scale; a date
// "2006-01-02"; a timestamp in RFC 3339, UTC), bool; nil is NULL.
func cell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch x := a.(type) {
	case *array.Int64:
		return int(x.Value(i))
	case *array.Float64:
		return x.Value(i)
	case *array.String:
		return strings.Clone(x.Value(i)) // Value aliases the batch's buffer
	case *array.Binary:
		return string(x.Value(i))
	case *array.Boolean:
		return x.Value(i)
	case *array.Decimal128:
		return x.Value(i).ToString(x.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Date64:
		return time.UnixMilli(int64(x.Value(i))).UTC().Format("2006-01-02")
	case *array.Timestamp:
		return time.UnixMicro(int64(x.Value(i))).UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("?%T", a)
}

func rowsOf(recs []arrow.Record) [][]any {
	var out [][]any
	for _, r := range recs {
		for i := 0; i < int(r.NumRows()); i++ {
			row := make([]any, r.NumCols())
			for c := range row {
				row[c] = cell(r.Column(c), i)
			}
			out = append(out, row)
		}
	}
	return out
}

func show(rows [][]any) string {
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintln(&sb, r...)
	}
	return sb.String()
}

// sameRows compares rows in order.
func sameRows(t testing.TB, got, want [][]any) {
	t.Helper()
	if show(got) != show(want) || len(got) != len(want) {
		t.Errorf("got rows:\n%swant:\n%s", show(got), show(want))
	}
}

// sameRowSet compares rows as multisets: a plan without ORDER BY gives
// its rows in no particular order.
func sameRowSet(t testing.TB, got, want [][]any) {
	t.Helper()
	sorted := func(rows [][]any) string {
		lines := strings.Split(strings.TrimSuffix(show(rows), "\n"), "\n")
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	if sorted(got) != sorted(want) || len(got) != len(want) {
		t.Errorf("got rows (in any order):\n%s\nwant:\n%s", sorted(got), sorted(want))
	}
}

// wantCode fails the test unless err is a *sluice.Error with code whose
// message contains every part.
func wantCode(t testing.TB, err error, code string, parts ...string) {
	t.Helper()
	var se *sluice.Error
	if !errors.As(err, &se) {
		t.Fatalf("want *sluice.Error %s, got %T %v", code, err, err)
	}
	if se.Code != code {
		t.Fatalf("want %s, got %s: %s", code, se.Code, se.Message)
	}
	for _, p := range parts {
		if !strings.Contains(se.Message, p) {
			t.Fatalf("want %s containing %q, got %s: %s", code, p, se.Code, se.Message)
		}
	}
}

// ---- expressions ----

func c(name string) *planner.Expr { return &planner.Expr{Kind: planner.KindColumn, Column: name} }
func i(v int64) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitInt, Text: fmt.Sprint(v)}}
}
func f(v string) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitFloat, Text: v}}
}
func s(v string) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitString, Text: v}}
}
func bl(v bool) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitBool, Text: fmt.Sprint(v)}}
}
func null() *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitNull}}
}
func bin(l *planner.Expr, op string, r *planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindBinary, Op: op, Args: []*planner.Expr{l, r}}
}
func un(op string, a *planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindUnary, Op: op, Args: []*planner.Expr{a}}
}
func fn(name string, args ...*planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindFunc, Func: name, Args: args}
}
func isNull(a *planner.Expr, neg bool) *planner.Expr {
	return &planner.Expr{Kind: planner.KindIsNull, Negate: neg, Args: []*planner.Expr{a}}
}
func in(neg bool, args ...*planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindIn, Negate: neg, Args: args}
}
func between(neg bool, x, lo, hi *planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindBetween, Negate: neg, Args: []*planner.Expr{x, lo, hi}}
}
func like(neg bool, x, p *planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLike, Negate: neg, Args: []*planner.Expr{x, p}}
}
func caseE(operand, hasElse bool, args ...*planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindCase, HasOperand: operand, HasElse: hasElse, Args: args}
}

// ---- plans ----

func nFrag(k int) *planner.Node { return &planner.Node{Op: planner.OpFragment, Fragment: k} }

// nJoin takes left, right key pairs.
func nJoin(kind string, l, r *planner.Node, residual *planner.Expr, keys ...string) *planner.Node {
	n := &planner.Node{Op: planner.OpJoin, JoinKind: kind, Inputs: []*planner.Node{l, r}, Residual: residual}
	for k := 0; k+1 < len(keys); k += 2 {
		n.Keys = append(n.Keys, planner.JoinKey{Left: keys[k], Right: keys[k+1]})
	}
	return n
}

func nFilter(in *planner.Node, p *planner.Expr) *planner.Node {
	return &planner.Node{Op: planner.OpFilter, Predicate: p, Inputs: []*planner.Node{in}}
}

// nProject takes alias, expression pairs.
func nProject(in *planner.Node, items ...any) *planner.Node {
	n := &planner.Node{Op: planner.OpProject, Inputs: []*planner.Node{in}}
	for k := 0; k+1 < len(items); k += 2 {
		n.Items = append(n.Items, planner.SelectItem{Alias: items[k].(string), Expr: items[k+1].(*planner.Expr)})
	}
	return n
}

// nAgg takes the group columns and then func, column, alias triples.
func nAgg(in *planner.Node, group []string, aggs ...string) *planner.Node {
	n := &planner.Node{Op: planner.OpAggregate, GroupBy: group, Inputs: []*planner.Node{in}}
	for k := 0; k+2 < len(aggs); k += 3 {
		n.Aggs = append(n.Aggs, planner.Agg{Func: aggs[k], Column: aggs[k+1], Alias: aggs[k+2]})
	}
	return n
}

// nSort takes columns, "-col" for descending (ascending puts NULLs
// first, descending last).
func nSort(in *planner.Node, keys ...string) *planner.Node {
	n := &planner.Node{Op: planner.OpSort, Inputs: []*planner.Node{in}}
	for _, k := range keys {
		n.SortKeys = append(n.SortKeys, planner.SortKey{Column: strings.TrimPrefix(k, "-"), Desc: strings.HasPrefix(k, "-")})
	}
	return n
}

// nLimit: limit < 0 is no limit.
func nLimit(in *planner.Node, limit, offset int64) *planner.Node {
	n := &planner.Node{Op: planner.OpLimit, Offset: offset, Inputs: []*planner.Node{in}}
	if limit >= 0 {
		n.Limit = &limit
	}
	return n
}

func nDistinct(in *planner.Node) *planner.Node {
	return &planner.Node{Op: planner.OpDistinct, Inputs: []*planner.Node{in}}
}
