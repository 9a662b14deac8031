package sandbox

import (
	"context"
	"errors"
	"fmt"
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

// newQ returns a query over a checked allocator that asserts, when the
// test ends, that every buffer was freed.
func newQ(t testing.TB, lim Limits) (*Query, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	q := NewQuery(lim, mem)
	t.Cleanup(func() {
		if q.Budget().Reserved() != 0 {
			t.Errorf("budget still has %d bytes reserved", q.Budget().Reserved())
		}
	})
	return q, mem
}

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

func dec(s string) decimal128.Num {
	n, err := decimal128.FromString(s, 38, decScale)
	if err != nil {
		panic(err)
	}
	return n
}

// mkRec builds a record from Go values (nil is NULL).
func mkRec(t testing.TB, mem memory.Allocator, sc *arrow.Schema, rows ...[]any) arrow.Record {
	t.Helper()
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for _, row := range rows {
		for i, v := range row {
			fb := b.Field(i)
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch x := fb.(type) {
			case *array.Int64Builder:
				x.Append(int64(v.(int)))
			case *array.Float64Builder:
				x.Append(v.(float64))
			case *array.StringBuilder:
				x.Append(v.(string))
			case *array.BinaryBuilder:
				x.Append(v.([]byte))
			case *array.BooleanBuilder:
				x.Append(v.(bool))
			case *array.Decimal128Builder:
				x.Append(dec(v.(string)))
			case *array.Date64Builder:
				tm, err := time.Parse("2006-01-02", v.(string))
				if err != nil {
					t.Fatal(err)
				}
				x.Append(arrow.Date64(tm.UnixMilli()))
			case *array.TimestampBuilder:
				tm, err := time.Parse(time.RFC3339, v.(string))
				if err != nil {
					t.Fatal(err)
				}
				x.Append(arrow.Timestamp(tm.UnixMicro()))
			default:
				t.Fatalf("mkRec: unsupported builder %T", fb)
			}
		}
	}
	return b.NewRecord()
}

// cell renders one value for comparison in tests.
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
		return x.Value(i)
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

// drain collects op, checks batch bounds, releases everything and returns
// the rows.
func drain(t testing.TB, q *Query, op Operator) ([][]any, error) {
	t.Helper()
	recs, err := Collect(context.Background(), op)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for _, r := range recs {
		if r.NumRows() > int64(q.BatchSize()) || r.NumRows() == 0 {
			t.Errorf("batch of %d rows (bound %d)", r.NumRows(), q.BatchSize())
		}
		if !r.Schema().Equal(op.Schema()) {
			t.Errorf("batch schema %v differs from operator schema %v", r.Schema(), op.Schema())
		}
	}
	return rowsOf(recs), nil
}

func mustRows(t testing.TB, q *Query, op Operator, err error) [][]any {
	t.Helper()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	rows, err := drain(t, q, op)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rows
}

func scan(t testing.TB, q *Query, sc *arrow.Schema, rows ...[]any) Operator {
	t.Helper()
	rec := mkRec(t, q.Allocator(), sc, rows...)
	defer rec.Release()
	op, err := q.Scan(sc, rec)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func show(rows [][]any) string {
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintln(&sb, r...)
	}
	return sb.String()
}

func sameRows(t testing.TB, got, want [][]any) {
	t.Helper()
	if show(got) != show(want) || len(got) != len(want) {
		t.Errorf("got rows:\n%swant:\n%s", show(got), show(want))
	}
}

func wantCode(t testing.TB, err error, code, contains string) {
	t.Helper()
	var se *sluice.Error
	if !errors.As(err, &se) {
		t.Fatalf("want *sluice.Error %s, got %T %v", code, err, err)
	}
	if se.Code != code || !strings.Contains(se.Message, contains) {
		t.Fatalf("want %s containing %q, got %s: %s", code, contains, se.Code, se.Message)
	}
}

// expression builders

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
