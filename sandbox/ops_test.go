package sandbox

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

var (
	peopleSchema = schemaOf(col{"id", arrow.PrimitiveTypes.Int64}, col{"name", arrow.BinaryTypes.String}, col{"district", arrow.BinaryTypes.String})
	claimsSchema = schemaOf(col{"id", arrow.PrimitiveTypes.Int64}, col{"amount", decType}, col{"year", arrow.PrimitiveTypes.Int64})
)

func people(t *testing.T, q *Query) Operator {
	return scan(t, q, peopleSchema,
		[]any{1, "张三", "城东区"},
		[]any{2, "李四", "城西区"},
		[]any{3, "王五", "城东区"},
		[]any{nil, "无名", "城北区"},
		[]any{4, "赵六", nil},
	)
}

func claims(t *testing.T, q *Query) Operator {
	return scan(t, q, claimsSchema,
		[]any{1, "100.5000", 2020},
		[]any{3, "20.0000", 2020},
		[]any{1, "7.2500", 2021},
		[]any{nil, "1.0000", 2020},
		[]any{9, "5.0000", 2020},
	)
}

func TestHashJoin(t *testing.T) {
	cases := []struct {
		name     string
		kind     JoinKind
		residual *planner.Expr
		batch    int
		want     [][]any
	}{
		{"inner", InnerJoin, nil, 0, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{3, "王五", "城东区", 3, "20.0000", 2020},
		}},
		{"inner small batches", InnerJoin, nil, 1, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{3, "王五", "城东区", 3, "20.0000", 2020},
		}},
		{"left keeps unmatched and NULL-key rows", LeftJoin, nil, 2, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{2, "李四", "城西区", nil, nil, nil},
			{3, "王五", "城东区", 3, "20.0000", 2020},
			{nil, "无名", "城北区", nil, nil, nil},
			{4, "赵六", nil, nil, nil, nil},
		}},
		{"inner residual", InnerJoin, bin(c("year"), "=", i(2021)), 0, [][]any{
			{1, "张三", "城东区", 1, "7.2500", 2021},
		}},
		{"left residual emits failed rows once", LeftJoin, bin(c("amount"), ">", i(50)), 0, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{2, "李四", "城西区", nil, nil, nil},
			{3, "王五", "城东区", nil, nil, nil},
			{nil, "无名", "城北区", nil, nil, nil},
			{4, "赵六", nil, nil, nil, nil},
		}},
		// Unmatched left rows follow the matches of their batch.
		{"residual with NULL result does not match", LeftJoin, bin(c("district"), "=", s("城东区")), 0, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{3, "王五", "城东区", 3, "20.0000", 2020},
			{2, "李四", "城西区", nil, nil, nil},
			{nil, "无名", "城北区", nil, nil, nil},
			{4, "赵六", nil, nil, nil, nil},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQ(t, Limits{BatchSize: tc.batch})
			j, err := q.HashJoin(people(t, q), claims(t, q), []string{"id"}, []string{"id"}, tc.kind, JoinOptions{Residual: tc.residual})
			rows := mustRows(t, q, j, err)
			sameRows(t, rows, tc.want)
			if j.Schema().Field(3).Name != "right_id" {
				t.Errorf("clashing right column named %q", j.Schema().Field(3).Name)
			}
		})
	}
}

func TestHashJoinBinaryAndMultiKeys(t *testing.T) {
	q, _ := newQ(t, Limits{})
	ls := schemaOf(col{"k", arrow.BinaryTypes.Binary}, col{"d", arrow.BinaryTypes.String}, col{"v", arrow.PrimitiveTypes.Int64})
	rs := schemaOf(col{"rk", arrow.BinaryTypes.Binary}, col{"rd", arrow.BinaryTypes.String}, col{"w", arrow.PrimitiveTypes.Int64})
	left := scan(t, q, ls,
		[]any{[]byte{0, 1, 2}, "a", 1},
		[]any{[]byte{0, 1, 2}, "b", 2},
		[]any{[]byte{}, "a", 3},
		[]any{nil, "a", 4},
		[]any{[]byte{0xff}, nil, 5},
	)
	right := scan(t, q, rs,
		[]any{[]byte{0, 1, 2}, "a", 10},
		[]any{[]byte{0, 1, 2}, "c", 20},
		[]any{[]byte{}, "a", 30},
		[]any{nil, "a", 40},
		[]any{[]byte{0xff}, nil, 50},
	)
	j, err := q.HashJoin(left, right, []string{"k", "d"}, []string{"rk", "rd"}, LeftJoin, JoinOptions{})
	rows := mustRows(t, q, j, err)
	sameRows(t, rows, [][]any{
		{"\x00\x01\x02", "a", 1, "\x00\x01\x02", "a", 10},
		{"", "a", 3, "", "a", 30},
		{"\x00\x01\x02", "b", 2, nil, nil, nil},
		{nil, "a", 4, nil, nil, nil},
		{"\xff", nil, 5, nil, nil, nil},
	})
}

func TestHashJoinMixedKeyTypesAndPrefix(t *testing.T) {
	q, _ := newQ(t, Limits{})
	ls := schemaOf(col{"id", arrow.PrimitiveTypes.Int64})
	rs := schemaOf(col{"id", decType}, col{"right_id", arrow.PrimitiveTypes.Int64})
	left := scan(t, q, ls, []any{1}, []any{2})
	right := scan(t, q, rs, []any{"1.0000", 7}, []any{"2.5000", 8})
	j, err := q.HashJoin(left, right, []string{"id"}, []string{"id"}, InnerJoin, JoinOptions{RightPrefix: "r."})
	rows := mustRows(t, q, j, err)
	sameRows(t, rows, [][]any{{1, "1.0000", 7}})
	if j.Schema().Field(1).Name != "r.id" {
		t.Errorf("renamed to %q", j.Schema().Field(1).Name)
	}

	q2, _ := newQ(t, Limits{})
	l2 := scan(t, q2, ls, []any{1})
	r2 := scan(t, q2, schemaOf(col{"s", arrow.BinaryTypes.String}), []any{"1"})
	_, err = q2.HashJoin(l2, r2, []string{"id"}, []string{"s"}, InnerJoin, JoinOptions{})
	wantCode(t, err, sluice.EInvalid, "cannot join")
	l2.Close()
	r2.Close()
}

func TestHashAggregate(t *testing.T) {
	sc := schemaOf(col{"g", arrow.BinaryTypes.String}, col{"x", arrow.PrimitiveTypes.Int64}, col{"y", arrow.PrimitiveTypes.Float64}, col{"d", decType}, col{"dt", arrow.FixedWidthTypes.Date64})
	rows := [][]any{
		{"a", 1, 1.5, "1.0000", "2020-01-01"},
		{"b", 5, nil, "2.5000", nil},
		{"a", nil, 2.5, nil, "2019-05-05"},
		{nil, 7, 1.0, "3.0000", "2021-01-01"},
		{"a", 1, nil, "0.5000", "2022-02-02"},
		{nil, nil, nil, nil, nil},
	}
	all := []Agg{
		{Func: AggCountStar, Alias: "n"},
		{Func: AggCount, Column: "x", Alias: "nx"},
		{Func: AggCountDistinct, Column: "x", Alias: "dx"},
		{Func: AggSum, Column: "x", Alias: "sx"},
		{Func: AggAvg, Column: "x", Alias: "ax"},
		{Func: AggSum, Column: "y", Alias: "sy"},
		{Func: AggSum, Column: "d", Alias: "sd"},
		{Func: AggAvg, Column: "d", Alias: "ad"},
		{Func: AggMin, Column: "dt", Alias: "mindt"},
		{Func: AggMax, Column: "g", Alias: "maxg"},
	}
	cases := []struct {
		name  string
		group []string
		aggs  []Agg
		input [][]any
		want  [][]any
	}{
		{"group by text with NULL group", []string{"g"}, all, rows, [][]any{
			{"a", 3, 2, 1, 2, 1.0, 4.0, "1.5000", 0.75, "2019-05-05", "a"},
			{"b", 1, 1, 1, 5, 5.0, nil, "2.5000", 2.5, nil, "b"},
			{nil, 2, 1, 1, 7, 7.0, 1.0, "3.0000", 3.0, "2021-01-01", nil},
		}},
		{"no group by", nil, all, rows, [][]any{
			{6, 4, 3, 14, 3.5, 5.0, "7.0000", 1.75, "2019-05-05", "b"},
		}},
		{"empty input without group by gives one row", nil, all, nil, [][]any{
			{0, 0, 0, nil, nil, nil, nil, nil, nil, nil},
		}},
		{"empty input with group by gives no rows", []string{"g"}, all, nil, nil},
		{"int key with NULL group and row count", []string{"x"}, []Agg{{Func: AggSum, Column: "y", Alias: "s"}, {Func: AggCountStar, Alias: "rows"}}, rows, [][]any{
			{1, 1.5, 2}, {5, nil, 1}, {nil, 2.5, 2}, {7, 1.0, 1},
		}},
		{"multi-column key", []string{"g", "x"}, []Agg{{Func: AggCountStar}}, rows, [][]any{
			{"a", 1, 2}, {"b", 5, 1}, {"a", nil, 1}, {nil, 7, 1}, {nil, nil, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQ(t, Limits{BatchSize: 2})
			var src Operator
			if tc.input == nil {
				var err error
				if src, err = q.Scan(sc); err != nil {
					t.Fatal(err)
				}
			} else {
				src = scan(t, q, sc, tc.input...)
			}
			op, err := q.HashAggregate(src, tc.group, tc.aggs)
			got := mustRows(t, q, op, err)
			sameRows(t, got, tc.want)
		})
	}
}

func TestHashAggregateTypesAndErrors(t *testing.T) {
	sc := schemaOf(col{"x", arrow.PrimitiveTypes.Int64}, col{"s", arrow.BinaryTypes.String})
	q, _ := newQ(t, Limits{})
	src := scan(t, q, sc, []any{1 << 62, "a"}, []any{1 << 62, "b"})
	op, err := q.HashAggregate(src, nil, []Agg{{Func: AggSum, Column: "x"}, {Func: AggAvg, Column: "x"}, {Func: AggMin, Column: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sum_x", "avg_x", "min_s"}
	if op.Schema().NumFields() != len(want) {
		t.Errorf("schema %v: want only %v", op.Schema(), want)
	}
	for k, w := range want {
		if op.Schema().Field(k).Name != w {
			t.Errorf("field %d = %q, want %q", k, op.Schema().Field(k).Name, w)
		}
	}
	if !arrow.TypeEqual(op.Schema().Field(0).Type, arrow.PrimitiveTypes.Int64) || !arrow.TypeEqual(op.Schema().Field(1).Type, arrow.PrimitiveTypes.Float64) {
		t.Errorf("schema %v", op.Schema())
	}
	_, err = drain(t, q, op)
	wantCode(t, err, sluice.EInvalid, "integer overflow in SUM")

	q2, _ := newQ(t, Limits{})
	src2 := scan(t, q2, sc, []any{1, "a"})
	defer src2.Close()
	_, err = q2.HashAggregate(src2, nil, []Agg{{Func: AggSum, Column: "s"}})
	wantCode(t, err, sluice.EInvalid, "numbers")
	_, err = q2.HashAggregate(src2, nil, []Agg{{Func: "median", Column: "x"}})
	wantCode(t, err, sluice.ENotSupported, "median")
	_, err = q2.HashAggregate(src2, []string{"x"}, []Agg{{Func: AggCountStar, Alias: "X"}})
	wantCode(t, err, sluice.EInvalid, "twice")
}

func TestSort(t *testing.T) {
	sc := schemaOf(col{"k", arrow.PrimitiveTypes.Int64}, col{"s", arrow.BinaryTypes.String}, col{"seq", arrow.PrimitiveTypes.Int64})
	input := [][]any{{2, "b", 1}, {nil, "a", 2}, {1, "c", 3}, {2, "a", 4}, {1, nil, 5}, {2, "b", 6}}
	cases := []struct {
		name string
		keys []SortKey
		want []any // seq
	}{
		{"asc nulls last, stable", []SortKey{{Column: "k"}}, []any{3, 5, 1, 4, 6, 2}},
		{"desc nulls last", []SortKey{{Column: "k", Desc: true}}, []any{1, 4, 6, 3, 5, 2}},
		{"asc nulls first", []SortKey{{Column: "k", NullsFirst: true}}, []any{2, 3, 5, 1, 4, 6}},
		{"two keys", []SortKey{{Column: "k", Desc: true, NullsFirst: true}, {Column: "s"}}, []any{2, 4, 1, 6, 3, 5}},
		{"text desc nulls first", []SortKey{{Column: "s", Desc: true, NullsFirst: true}}, []any{5, 3, 1, 6, 2, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQ(t, Limits{BatchSize: 4})
			op, err := q.Sort(scan(t, q, sc, input...), tc.keys)
			rows := mustRows(t, q, op, err)
			var got []any
			for _, r := range rows {
				got = append(got, r[2])
			}
			sameRows(t, [][]any{got}, [][]any{tc.want})
		})
	}
}

// countingOp counts how many batches were pulled from it.
type countingOp struct {
	Operator
	pulls int
}

func (c *countingOp) Next(ctx context.Context) (arrow.Record, error) {
	c.pulls++
	return c.Operator.Next(ctx)
}

func TestLimit(t *testing.T) {
	sc := schemaOf(col{"n", arrow.PrimitiveTypes.Int64})
	var input [][]any
	for k := 0; k < 10; k++ {
		input = append(input, []any{k})
	}
	cases := []struct {
		n, off int64
		want   []any
		pulls  int
	}{
		{3, 0, []any{0, 1, 2}, 1},
		{3, 2, []any{2, 3, 4}, 2},
		{0, 0, nil, 0},
		{-1, 8, []any{8, 9}, 5},
		{100, 9, []any{9}, 5},
		{2, 20, nil, 5},
	}
	for _, tc := range cases {
		q, _ := newQ(t, Limits{BatchSize: 3})
		src := &countingOp{Operator: scan(t, q, sc, input...)}
		op, err := q.Limit(src, tc.n, tc.off)
		rows := mustRows(t, q, op, err)
		var got []any
		for _, r := range rows {
			got = append(got, r[0])
		}
		sameRows(t, [][]any{got}, [][]any{tc.want})
		if src.pulls != tc.pulls {
			t.Errorf("limit %d offset %d pulled %d batches, want %d", tc.n, tc.off, src.pulls, tc.pulls)
		}
	}
}

func TestDistinct(t *testing.T) {
	sc := schemaOf(col{"a", arrow.PrimitiveTypes.Int64}, col{"b", arrow.BinaryTypes.String})
	q, _ := newQ(t, Limits{BatchSize: 2})
	op, err := q.Distinct(scan(t, q, sc, []any{1, "x"}, []any{1, "x"}, []any{nil, "x"}, []any{1, nil}, []any{nil, "x"}, []any{1, nil}, []any{2, "x"}))
	rows := mustRows(t, q, op, err)
	sameRows(t, rows, [][]any{{1, "x"}, {nil, "x"}, {1, nil}, {2, "x"}})
}

// genOp generates rows n of (k = row % mod, v = row) with q's allocator.
type genOp struct {
	q       *Query
	n, mod  int
	next    int
	started chan struct{}
}

var genSchema = schemaOf(col{"k", arrow.PrimitiveTypes.Int64}, col{"v", arrow.PrimitiveTypes.Int64})

func (g *genOp) Schema() *arrow.Schema { return genSchema }
func (g *genOp) Close()                {}
func (g *genOp) Next(ctx context.Context) (arrow.Record, error) {
	if err := g.q.Check(ctx); err != nil {
		return nil, err
	}
	if g.next >= g.n {
		return nil, io.EOF
	}
	k := min(g.q.BatchSize(), g.n-g.next)
	b := newInt64Batch(g.q, k, func(r int) (int64, int64) {
		x := g.next + r
		return int64(x % g.mod), int64(x)
	})
	g.next += k
	return b, nil
}

func TestMemoryLimit(t *testing.T) {
	build := map[string]func(q *Query) (Operator, error){
		"join": func(q *Query) (Operator, error) {
			return q.HashJoin(&genOp{q: q, n: 1000, mod: 1000}, &genOp{q: q, n: 200000, mod: 200000}, []string{"k"}, []string{"k"}, InnerJoin, JoinOptions{})
		},
		"aggregate": func(q *Query) (Operator, error) {
			return q.HashAggregate(&genOp{q: q, n: 200000, mod: 200000}, []string{"k"}, []Agg{{Func: AggSum, Column: "v"}})
		},
		"sort": func(q *Query) (Operator, error) {
			return q.Sort(&genOp{q: q, n: 200000, mod: 7}, []SortKey{{Column: "k"}})
		},
		"distinct": func(q *Query) (Operator, error) {
			return q.Distinct(&genOp{q: q, n: 200000, mod: 7})
		},
	}
	for name, mk := range build {
		t.Run(name, func(t *testing.T) {
			q, _ := newQ(t, Limits{Memory: 1 * MiB})
			op, err := mk(q)
			if err != nil {
				t.Fatal(err)
			}
			_, err = drain(t, q, op)
			wantCode(t, err, sluice.EResource, "more than 1 MiB in the sandbox (memory limit)")
			if q.Budget().Peak() > 3*MiB {
				t.Errorf("peak %d bytes overran a 1 MiB budget by too much", q.Budget().Peak())
			}
		})
	}
}

func TestTimeLimit(t *testing.T) {
	q, _ := newQ(t, Limits{Time: time.Millisecond})
	op, err := q.HashAggregate(&genOp{q: q, n: 1 << 40, mod: 10}, []string{"k"}, []Agg{{Func: AggSum, Column: "v"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = drain(t, q, op)
	wantCode(t, err, sluice.EResource, "longer than 1ms in the sandbox (time limit)")
	if time.Since(start) > 5*time.Second {
		t.Errorf("time limit noticed after %v", time.Since(start))
	}

	// A context deadline is a time limit too.
	q2, _ := newQ(t, Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	op2, err := q2.Sort(&genOp{q: q2, n: 1 << 40, mod: 10}, []SortKey{{Column: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	defer op2.Close()
	_, err = op2.Next(ctx)
	wantCode(t, err, sluice.EResource, "time limit")
}

func TestCancel(t *testing.T) {
	q, _ := newQ(t, Limits{})
	ctx, cancel := context.WithCancel(context.Background())
	op, err := q.HashJoin(&genOp{q: q, n: 1 << 40, mod: 10}, &genOp{q: q, n: 1000, mod: 10}, []string{"k"}, []string{"k"}, InnerJoin, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	r, err := op.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	start := time.Now()
	for {
		r, err := op.Next(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("want cancellation, got %v", err)
			}
			break
		}
		r.Release()
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel noticed after %v", d)
	}
}

func TestScanValidates(t *testing.T) {
	q, _ := newQ(t, Limits{})
	rec := mkRec(t, q.Allocator(), peopleSchema, []any{1, "a", "b"})
	defer rec.Release()
	_, err := q.Scan(claimsSchema, rec)
	wantCode(t, err, sluice.EInvalid, "schema")
	_, err = q.Scan(schemaOf(col{"x", arrow.ListOf(arrow.PrimitiveTypes.Int64)}))
	wantCode(t, err, sluice.ENotSupported, "does not support")
}

func TestFromReader(t *testing.T) {
	q, _ := newQ(t, Limits{BatchSize: 2})
	r1 := mkRec(t, q.Allocator(), peopleSchema, []any{1, "a", "x"}, []any{2, "b", "y"}, []any{3, "c", "z"})
	r2 := mkRec(t, q.Allocator(), peopleSchema, []any{4, "d", "w"})
	rdr, err := array.NewRecordReader(peopleSchema, []arrow.Record{r1, r2})
	r1.Release()
	r2.Release()
	if err != nil {
		t.Fatal(err)
	}
	src, err := q.FromReader(rdr)
	if err != nil {
		t.Fatal(err)
	}
	op, err := q.Limit(src, 3, 1)
	rows := mustRows(t, q, op, err)
	sameRows(t, rows, [][]any{{2, "b", "y"}, {3, "c", "z"}, {4, "d", "w"}})
}

// lyingOp declares one schema and returns batches of another.
type lyingOp struct{ Operator }

func (l lyingOp) Schema() *arrow.Schema { return claimsSchema }

func TestMismatchedInputIsAnErrorNotAPanic(t *testing.T) {
	q, _ := newQ(t, Limits{})
	op, err := q.HashJoin(people(t, q), lyingOp{people(t, q)}, []string{"id"}, []string{"id"}, InnerJoin, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = drain(t, q, op)
	wantCode(t, err, sluice.EInternal, "schema differs")
}

// TestHashJoinOneToOne: under OneToOne a join that pairs a row with a
// second row fails, whichever side repeats the key and in whichever batch
// the repeat arrives; a one-to-one join (NULL and unmatched keys aside)
// runs as usual.
func TestHashJoinOneToOne(t *testing.T) {
	uniquePeople := func(t *testing.T, q *Query) Operator {
		return scan(t, q, claimsSchema,
			[]any{1, "1.0000", 2020},
			[]any{3, "2.0000", 2020},
			[]any{nil, "3.0000", 2020},
			[]any{9, "4.0000", 2020},
		)
	}
	cases := []struct {
		name        string
		left, right func(*testing.T, *Query) Operator
		kind        JoinKind
		wantErr     bool
	}{
		{"one to one, inner", people, uniquePeople, InnerJoin, false},
		{"one to one, left", people, uniquePeople, LeftJoin, false},
		{"build side repeats a key", people, claims, InnerJoin, true},
		{"build side repeats a key, left", people, claims, LeftJoin, true},
		{"probe side repeats a key", claims, uniquePeople, InnerJoin, true},
	}
	for _, tc := range cases {
		for _, batch := range []int{0, 1} {
			t.Run(tc.name, func(t *testing.T) {
				q, _ := newQ(t, Limits{BatchSize: batch})
				j, err := q.HashJoin(tc.left(t, q), tc.right(t, q), []string{"id"}, []string{"id"}, tc.kind, JoinOptions{OneToOne: true})
				if err != nil {
					t.Fatal(err)
				}
				defer j.Close()
				var got error
				for {
					rec, err := j.Next(context.Background())
					if err != nil {
						if !errors.Is(err, io.EOF) {
							got = err
						}
						break
					}
					rec.Release()
				}
				if !tc.wantErr {
					if got != nil {
						t.Fatalf("a one-to-one join failed: %v", got)
					}
					return
				}
				if sluice.ErrorCode(got) != sluice.ENotSupported || !strings.Contains(sluice.ErrorMessage(got), "more than one row") {
					t.Fatalf("want ENotSupported about a row meeting more than one row, got %v", got)
				}
			})
		}
	}
}
