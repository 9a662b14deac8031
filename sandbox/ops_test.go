//go:build duckdb_arrow

package sandbox

// The operators as plans on the engine path: join, aggregate, sort,
// limit, distinct. A plan without a sort gives its rows in no particular
// order, so those compare as multisets.

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

var (
	peopleSchema = schemaOf(col{"id", arrow.PrimitiveTypes.Int64}, col{"name", arrow.BinaryTypes.String}, col{"district", arrow.BinaryTypes.String})
	claimsSchema = schemaOf(col{"id", arrow.PrimitiveTypes.Int64}, col{"amount", decType}, col{"year", arrow.PrimitiveTypes.Int64})
)

func people(t testing.TB, batch int) input {
	return newInput(t, nil, peopleSchema, batch,
		[]any{1, "张三", "城东区"},
		[]any{2, "李四", "城西区"},
		[]any{3, "王五", "城东区"},
		[]any{nil, "无名", "城北区"},
		[]any{4, "赵六", nil},
	)
}

func claims(t testing.TB, batch int) input {
	return newInput(t, nil, claimsSchema, batch,
		[]any{1, "100.5000", 2020},
		[]any{3, "20.0000", 2020},
		[]any{1, "7.2500", 2021},
		[]any{nil, "1.0000", 2020},
		[]any{9, "5.0000", 2020},
	)
}

// engineOneToOneCode is the code a join declared one-to-one fails with
// when a row meets a second row, with planner.DuckDBOneToOneMessage, as the
// old operators did (the engine passes the renderer's own error through).
const engineOneToOneCode = sluice.ENotSupported

func TestHashJoin(t *testing.T) {
	cases := []struct {
		name     string
		kind     string
		residual *planner.Expr
		batch    int
		want     [][]any
	}{
		{"inner", planner.JoinInner, nil, 0, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{3, "王五", "城东区", 3, "20.0000", 2020},
		}},
		{"inner small batches", planner.JoinInner, nil, 1, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{3, "王五", "城东区", 3, "20.0000", 2020},
		}},
		{"left keeps unmatched and NULL-key rows", planner.JoinLeft, nil, 2, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{1, "张三", "城东区", 1, "7.2500", 2021},
			{2, "李四", "城西区", nil, nil, nil},
			{3, "王五", "城东区", 3, "20.0000", 2020},
			{nil, "无名", "城北区", nil, nil, nil},
			{4, "赵六", nil, nil, nil, nil},
		}},
		{"inner residual", planner.JoinInner, bin(c("year"), "=", i(2021)), 0, [][]any{
			{1, "张三", "城东区", 1, "7.2500", 2021},
		}},
		{"left residual emits failed rows once", planner.JoinLeft, bin(c("amount"), ">", i(50)), 0, [][]any{
			{1, "张三", "城东区", 1, "100.5000", 2020},
			{2, "李四", "城西区", nil, nil, nil},
			{3, "王五", "城东区", nil, nil, nil},
			{nil, "无名", "城北区", nil, nil, nil},
			{4, "赵六", nil, nil, nil, nil},
		}},
		{"residual with NULL result does not match", planner.JoinLeft, bin(c("district"), "=", s("城东区")), 0, [][]any{
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
			mem := checkedMem(t)
			p := openPath(t, nil, mem, people(t, tc.batch), claims(t, tc.batch))
			r := p.mustRun(nJoin(tc.kind, nFrag(0), nFrag(1), tc.residual, "id", "id"), pathOpts{})
			sameRowSet(t, r.rows, tc.want)
			if r.schema.Field(3).Name != "right_id" {
				t.Errorf("clashing right column named %q", r.schema.Field(3).Name)
			}
		})
	}
}

func TestHashJoinBinaryAndMultiKeys(t *testing.T) {
	ls := schemaOf(col{"k", arrow.BinaryTypes.Binary}, col{"d", arrow.BinaryTypes.String}, col{"v", arrow.PrimitiveTypes.Int64})
	rs := schemaOf(col{"rk", arrow.BinaryTypes.Binary}, col{"rd", arrow.BinaryTypes.String}, col{"w", arrow.PrimitiveTypes.Int64})
	left := newInput(t, nil, ls, 0,
		[]any{[]byte{0, 1, 2}, "a", 1},
		[]any{[]byte{0, 1, 2}, "b", 2},
		[]any{[]byte{}, "a", 3},
		[]any{nil, "a", 4},
		[]any{[]byte{0xff}, nil, 5},
	)
	right := newInput(t, nil, rs, 0,
		[]any{[]byte{0, 1, 2}, "a", 10},
		[]any{[]byte{0, 1, 2}, "c", 20},
		[]any{[]byte{}, "a", 30},
		[]any{nil, "a", 40},
		[]any{[]byte{0xff}, nil, 50},
	)
	r, err := runPlan(t, nJoin(planner.JoinLeft, nFrag(0), nFrag(1), nil, "k", "rk", "d", "rd"), pathOpts{}, left, right)
	if err != nil {
		t.Fatal(err)
	}
	sameRowSet(t, r.rows, [][]any{
		{"\x00\x01\x02", "a", 1, "\x00\x01\x02", "a", 10},
		{"", "a", 3, "", "a", 30},
		{"\x00\x01\x02", "b", 2, nil, nil, nil},
		{nil, "a", 4, nil, nil, nil},
		{"\xff", nil, 5, nil, nil, nil},
	})
}

// TestHashJoinMixedKeyTypes: keys of compatible types meet at their
// common type (integer with decimal); incompatible ones are refused.
func TestHashJoinMixedKeyTypes(t *testing.T) {
	ls := schemaOf(col{"id", arrow.PrimitiveTypes.Int64})
	rs := schemaOf(col{"id", decType}, col{"w", arrow.PrimitiveTypes.Int64})
	left := newInput(t, nil, ls, 0, []any{1}, []any{2})
	right := newInput(t, nil, rs, 0, []any{"1.0000", 7}, []any{"2.5000", 8})
	p := openPath(t, nil, nil, left, right, newInput(t, nil, schemaOf(col{"s", arrow.BinaryTypes.String}), 0, []any{"1"}))
	r := p.mustRun(nJoin(planner.JoinInner, nFrag(0), nFrag(1), nil, "id", "id"), pathOpts{})
	sameRows(t, r.rows, [][]any{{1, "1.0000", 7}})
	if r.schema.Field(1).Name != "right_id" {
		t.Errorf("renamed to %q", r.schema.Field(1).Name)
	}
	_, err := p.run(nJoin(planner.JoinInner, nFrag(0), nFrag(1), nil, "id", "s"), pathOpts{inputs: []int{0, 2}})
	wantCode(t, err, sluice.EInvalid, "cannot join")
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
	all := []string{
		"count_star", "", "n",
		"count", "x", "nx",
		"count_distinct", "x", "dx",
		"sum", "x", "sx",
		"avg", "x", "ax",
		"sum", "y", "sy",
		"sum", "d", "sd",
		"avg", "d", "ad",
		"min", "dt", "mindt",
		"max", "g", "maxg",
	}
	cases := []struct {
		name  string
		group []string
		aggs  []string
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
		{"int key with NULL group and row count", []string{"x"}, []string{"sum", "y", "s", "count_star", "", "rows"}, rows, [][]any{
			{1, 1.5, 2}, {5, nil, 1}, {nil, 2.5, 2}, {7, 1.0, 1},
		}},
		{"multi-column key", []string{"g", "x"}, []string{"count_star", "", ""}, rows, [][]any{
			{"a", 1, 2}, {"b", 5, 1}, {"a", nil, 1}, {nil, 7, 1}, {nil, nil, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			in := newInput(t, mem, sc, 2, tc.input...)
			r, err := runPlan(t, nAgg(nFrag(0), tc.group, tc.aggs...), pathOpts{}, in)
			if err != nil {
				t.Fatal(err)
			}
			sameRowSet(t, r.rows, tc.want)
		})
	}
}

func TestHashAggregateTypesAndErrors(t *testing.T) {
	sc := schemaOf(col{"x", arrow.PrimitiveTypes.Int64}, col{"s", arrow.BinaryTypes.String})
	p := openPath(t, nil, nil,
		newInput(t, nil, sc, 0, []any{1 << 62, "a"}, []any{1 << 62, "b"}),
		newInput(t, nil, sc, 0, []any{1, "a"}))
	plan := nAgg(nFrag(0), nil, "sum", "x", "", "avg", "x", "", "min", "s", "")
	r, err := p.run(plan, pathOpts{inputs: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sum_x", "avg_x", "min_s"}
	if r.schema.NumFields() != len(want) {
		t.Errorf("schema %v: want only %v", r.schema, want)
	}
	for k, w := range want {
		if r.schema.Field(k).Name != w {
			t.Errorf("field %d = %q, want %q", k, r.schema.Field(k).Name, w)
		}
	}
	if !arrow.TypeEqual(r.schema.Field(0).Type, arrow.PrimitiveTypes.Int64) || !arrow.TypeEqual(r.schema.Field(1).Type, arrow.PrimitiveTypes.Float64) {
		t.Errorf("schema %v", r.schema)
	}
	sameRows(t, r.rows, [][]any{{1, 1.0, "a"}})
	// A total beyond int64. The old operators said "integer overflow in
	// SUM"; the engine withholds DuckDB's message, which quotes the value.
	_, err = p.run(plan, pathOpts{})
	wantCode(t, err, sluice.EInvalid, "withheld")

	_, err = p.run(nAgg(nFrag(0), nil, "sum", "s", ""), pathOpts{})
	wantCode(t, err, sluice.EInvalid, "numbers")
	_, err = p.run(nAgg(nFrag(0), nil, "median", "x", ""), pathOpts{})
	wantCode(t, err, sluice.ENotSupported, "median")
	_, err = p.run(nAgg(nFrag(0), []string{"x"}, "count_star", "", "X"), pathOpts{})
	wantCode(t, err, sluice.EInvalid, "twice")
}

// TestSort: ascending puts NULLs first and descending last (the plan's
// only choice); a sort over a sorted input keeps its order among ties
// (stable). Other NULL placements sort on a computed key first.
func TestSort(t *testing.T) {
	sc := schemaOf(col{"k", arrow.PrimitiveTypes.Int64}, col{"s", arrow.BinaryTypes.String}, col{"seq", arrow.PrimitiveTypes.Int64})
	rows := [][]any{{2, "b", 1}, {nil, "a", 2}, {1, "c", 3}, {2, "a", 4}, {1, nil, 5}, {2, "b", 6}}
	// bySeq is the input in its order, with keys putting NULLs last
	// ascending (k_null) or first descending (k_set: false first).
	bySeq := func() *planner.Node {
		return nSort(nProject(nFrag(0), "k", c("k"), "s", c("s"), "seq", c("seq"),
			"k_null", isNull(c("k"), false), "k_set", isNull(c("k"), true),
			"s_null", isNull(c("s"), false), "s_set", isNull(c("s"), true)), "seq")
	}
	cases := []struct {
		name string
		plan *planner.Node
		want []any // seq
	}{
		{"asc nulls last, stable", nSort(bySeq(), "k_null", "k"), []any{3, 5, 1, 4, 6, 2}},
		{"desc nulls last", nSort(bySeq(), "-k"), []any{1, 4, 6, 3, 5, 2}},
		{"asc nulls first", nSort(bySeq(), "k"), []any{2, 3, 5, 1, 4, 6}},
		{"two keys", nSort(bySeq(), "k_set", "-k", "s_null", "s"), []any{2, 4, 1, 6, 3, 5}},
		{"text desc nulls first", nSort(bySeq(), "s_set", "-s"), []any{5, 3, 1, 6, 2, 4}},
	}
	p := openPath(t, nil, nil, newInput(t, nil, sc, 4, rows...))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := p.on(t).mustRun(tc.plan, pathOpts{})
			var got []any
			for _, row := range r.rows {
				got = append(got, row[2])
			}
			sameRows(t, [][]any{got}, [][]any{tc.want})
		})
	}
}

// TestLimit: LIMIT and OFFSET over sorted rows. An OFFSET without LIMIT
// gives every row past the offset (the old operators lost rows there in
// some batch layouts).
func TestLimit(t *testing.T) {
	sc := schemaOf(col{"n", arrow.PrimitiveTypes.Int64})
	var rows [][]any
	for k := 0; k < 10; k++ {
		rows = append(rows, []any{k})
	}
	cases := []struct {
		n, off int64
		want   []any
	}{
		{3, 0, []any{0, 1, 2}},
		{3, 2, []any{2, 3, 4}},
		{0, 0, nil},
		{-1, 8, []any{8, 9}},
		{-1, 1, []any{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{100, 9, []any{9}},
		{2, 20, nil},
	}
	p := openPath(t, nil, nil, newInput(t, nil, sc, 3, rows...))
	for _, tc := range cases {
		r := p.mustRun(nLimit(nSort(nFrag(0), "n"), tc.n, tc.off), pathOpts{})
		var got []any
		for _, row := range r.rows {
			got = append(got, row[0])
		}
		sameRows(t, [][]any{got}, [][]any{tc.want})
	}
}

func TestDistinct(t *testing.T) {
	sc := schemaOf(col{"a", arrow.PrimitiveTypes.Int64}, col{"b", arrow.BinaryTypes.String})
	in := newInput(t, nil, sc, 2, []any{1, "x"}, []any{1, "x"}, []any{nil, "x"}, []any{1, nil}, []any{nil, "x"}, []any{1, nil}, []any{2, "x"})
	r, err := runPlan(t, nDistinct(nFrag(0)), pathOpts{}, in)
	if err != nil {
		t.Fatal(err)
	}
	sameRowSet(t, r.rows, [][]any{{1, "x"}, {nil, "x"}, {1, nil}, {2, "x"}})
}

// TestReaderInput: an input arrives as a stream of batches of any size.
func TestReaderInput(t *testing.T) {
	mem := checkedMem(t)
	in := newInput(t, mem, peopleSchema, 3, []any{1, "a", "x"}, []any{2, "b", "y"}, []any{3, "c", "z"}, []any{4, "d", "w"})
	if len(in.recs) != 2 {
		t.Fatalf("%d batches", len(in.recs))
	}
	r, err := runPlan(t, nLimit(nSort(nFrag(0), "id"), 3, 1), pathOpts{}, in)
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, r.rows, [][]any{{2, "b", "y"}, {3, "c", "z"}, {4, "d", "w"}})
}

// TestHashJoinOneToOne: under OneToOne a join that pairs a row with a
// second row fails, whichever side repeats the key and in whichever batch
// the repeat arrives; a one-to-one join (NULL and unmatched keys aside)
// runs as usual.
func TestHashJoinOneToOne(t *testing.T) {
	uniquePeople := func(t testing.TB, batch int) input {
		return newInput(t, nil, claimsSchema, batch,
			[]any{1, "1.0000", 2020},
			[]any{3, "2.0000", 2020},
			[]any{nil, "3.0000", 2020},
			[]any{9, "4.0000", 2020},
		)
	}
	cases := []struct {
		name        string
		left, right func(testing.TB, int) input
		kind        string
		wantErr     bool
	}{
		{"one to one, inner", people, uniquePeople, planner.JoinInner, false},
		{"one to one, left", people, uniquePeople, planner.JoinLeft, false},
		{"build side repeats a key", people, claims, planner.JoinInner, true},
		{"build side repeats a key, left", people, claims, planner.JoinLeft, true},
		{"probe side repeats a key", claims, uniquePeople, planner.JoinInner, true},
	}
	for _, tc := range cases {
		for _, batch := range []int{0, 1} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := runPlan(t, nJoin(tc.kind, nFrag(0), nFrag(1), nil, "id", "id"), pathOpts{oneToOne: true}, tc.left(t, batch), tc.right(t, batch))
				if !tc.wantErr {
					if err != nil {
						t.Fatalf("a one-to-one join failed: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("a join meeting a row twice answered %v", r.rows)
				}
				wantCode(t, err, engineOneToOneCode)
			})
		}
	}
}
