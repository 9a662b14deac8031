//go:build duckdb_arrow

package engine

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// mixedRows is the content of mixedReader: row i of each column, nil for
// NULL.
func mixedValue(col string, i int) any {
	switch col {
	case "i32":
		if i%7 == 0 {
			return nil
		}
		return int32(i%1000 - 300)
	case "f":
		if i%11 == 0 {
			return nil
		}
		return float64(i) / 4
	case "b":
		if i%5 == 0 {
			return nil
		}
		return i%3 == 0
	case "s":
		if i%3 == 0 {
			return nil
		}
		// Short strings are inlined in DuckDB's vectors, long ones point
		// into the Arrow buffer.
		return strings.Repeat("v", i%20) + strconv.Itoa(i)
	case "d":
		return []string{"red", "green", "blue"}[i%3]
	case "l":
		if i%13 == 0 {
			return nil
		}
		out := make([]int64, i%4)
		for j := range out {
			out[j] = int64(i + j)
		}
		return out
	}
	panic(col)
}

// mixedReader returns n rows of many types, with NULLs, in batches of
// batch rows (not a multiple of DuckDB's vector size, so that the scan's
// slices cross batch boundaries at odd offsets).
func mixedReader(t testing.TB, mem memory.Allocator, n, batch int) array.RecordReader {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
		{Name: "st", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int64}, arrow.Field{Name: "y", Type: arrow.BinaryTypes.String}), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	for lo := 0; lo < n; lo += batch {
		for i := lo; i < min(lo+batch, n); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			for j, col := range []string{"i32", "f", "b", "s"} {
				v := mixedValue(col, i)
				fb := b.Field(j + 1)
				if v == nil {
					fb.AppendNull()
					continue
				}
				switch fb := fb.(type) {
				case *array.Int32Builder:
					fb.Append(v.(int32))
				case *array.Float64Builder:
					fb.Append(v.(float64))
				case *array.BooleanBuilder:
					fb.Append(v.(bool))
				case *array.StringBuilder:
					fb.Append(v.(string))
				}
			}
			if err := b.Field(5).(*array.BinaryDictionaryBuilder).AppendString(mixedValue("d", i).(string)); err != nil {
				t.Fatal(err)
			}
			lb := b.Field(6).(*array.ListBuilder)
			if v := mixedValue("l", i); v == nil {
				lb.AppendNull()
			} else {
				lb.Append(true)
				for _, x := range v.([]int64) {
					lb.ValueBuilder().(*array.Int64Builder).Append(x)
				}
			}
			sb := b.Field(7).(*array.StructBuilder)
			if i%17 == 0 {
				sb.AppendNull()
			} else {
				sb.Append(true)
				sb.FieldBuilder(0).(*array.Int64Builder).Append(int64(2 * i))
				sb.FieldBuilder(1).(*array.StringBuilder).Append("y" + strconv.Itoa(i%50))
			}
		}
		recs = append(recs, b.NewRecordBatch())
	}
	r, err := array.NewRecordReader(schema, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		rec.Release()
	}
	return r
}

// TestScanInPlace reads inputs in place through __sluice_scan and checks
// every value: the cases DuckDB's arrow_scan over a C stream gets wrong
// (filters, a subset of the columns, a single string column: see
// TestUpstreamArrowScanPushdown), NULLs, many types, batches that do not
// align with DuckDB's vectors, and DuckDB's threads scanning in parallel.
func TestScanInPlace(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{Threads: 2})
	const n = 15_000
	// What the queries must find, computed in Go.
	var (
		cnt                          = map[string]int{}
		sumI32, sumLen, sumL, nL     int64
		sumF                         float64
		trues, filtered, sumSX, nInt int64
		maxS, maxSY                  string
		strs                         []string
	)
	for i := range n {
		for _, col := range []string{"i32", "f", "b", "s", "l"} {
			if mixedValue(col, i) != nil {
				cnt[col]++
			}
		}
		if v := mixedValue("i32", i); v != nil {
			sumI32 += int64(v.(int32))
		}
		if v := mixedValue("f", i); v != nil {
			sumF += v.(float64)
		}
		if v := mixedValue("b", i); v != nil && v.(bool) {
			trues++
		}
		if v := mixedValue("s", i); v != nil {
			s := v.(string)
			sumLen += int64(len(s))
			strs = append(strs, s)
			maxS = max(maxS, s)
			if iv := mixedValue("i32", i); strings.HasPrefix(s, "vv1") && iv != nil && iv.(int32) > 100 {
				filtered++
			}
		}
		if v := mixedValue("l", i); v != nil {
			for _, x := range v.([]int64) {
				sumL += x
				nL++
			}
		}
		if i%17 != 0 {
			sumSX += int64(2 * i)
			maxSY = max(maxSY, "y"+strconv.Itoa(i%50))
		}
		if mixedValue("i32", i) != nil && mixedValue("s", i) != nil {
			nInt++
		}
	}
	digest := md5.Sum([]byte(strings.Join(strs, ",")))
	for _, tc := range []struct {
		q    string
		want string
	}{
		{"SELECT count(*), count(i32), sum(i32), count(f), sum(f), count(b), sum(b::INT), count(s), sum(length(s)), md5(string_agg(s, ',' ORDER BY id)) FROM p",
			fmt.Sprint([]any{n, cnt["i32"], sumI32, cnt["f"], sumF, cnt["b"], trues, cnt["s"], sumLen, hex.EncodeToString(digest[:])})},
		// Filters on columns the query does not return.
		{"SELECT count(*) FROM p WHERE s LIKE 'vv1%' AND i32 > 100", fmt.Sprint([]any{filtered})},
		{"SELECT count(*) FROM p WHERE i32 IS NOT NULL AND s IS NOT NULL", fmt.Sprint([]any{nInt})},
		{"SELECT count(*) FROM p WHERE id < 3", "[3]"},
		// One string column alone; columns out of their order.
		{"SELECT max(s) FROM p", fmt.Sprint([]any{maxS})},
		{"SELECT max(s), count(f), min(id) FROM p", fmt.Sprint([]any{maxS, cnt["f"], 0})},
		{"SELECT count(DISTINCT d), max(d), min(d) FROM p", "[3 red blue]"},
		{"SELECT count(l), sum(len(l)), sum(list_sum(l)) FROM p", fmt.Sprint([]any{cnt["l"], nL, sumL})},
		{"SELECT sum(st.x), max(st.y), count(st) FROM p", fmt.Sprint([]any{sumSX, maxSY, n - (n+16)/17})},
		// Every row back, in order.
		{"SELECT count(*), bool_and(id = rn - 1) FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM p)", fmt.Sprint([]any{n, true})},
	} {
		s := openSession(t, e)
		if err := s.Register("p", mixedReader(t, mem, n, 1500)); err != nil {
			t.Fatal(err)
		}
		_, rows := readAll(t, must(t)(s.Query(context.Background(), tc.q)))
		if len(rows) != 1 || fmt.Sprint(rows[0]) != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.q, rows, tc.want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mem.AssertSize(t, 0)
}

// A statement that would scan a stream a second time (a recursive CTE runs
// its recursive part again) fails; it never reads part of the stream.
func TestScanTwiceFails(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	if err := s.Register("p", people(t, mem, 100)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Query(context.Background(), `WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT r.n + 1 FROM r JOIN p ON p.id = r.n WHERE r.n < 5)
		SELECT count(*) FROM r`)
	se := wantCode(t, err, sluice.EInvalid)
	wantContains(t, err, `input "p"`, "more than once", "Materialize")
	t.Log(se)
	// Materialized, it works.
	if err := s.Materialize(context.Background(), "q", people(t, mem, 100)); err != nil {
		t.Fatal(err)
	}
	_, rows := readAll(t, must(t)(s.Query(context.Background(), `WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT r.n + 1 FROM r JOIN q ON q.id = r.n WHERE r.n < 5)
		SELECT count(*) FROM r`)))
	if rows[0][0] != int64(6) {
		t.Errorf("got %v", rows)
	}
}

// Inputs named like catalog entries or not plain identifiers are views,
// which come first in DuckDB's search path; the others are resolved by the
// replacement scan, after the catalog.
func TestScanNames(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	names := []string{"duckdb_settings", "tables", "x.csv", "data.parquet", "Select", "fragment_0", "Gated_Groups", `odd "name"`}
	for i, name := range names {
		if err := s.Register(name, people(t, mem, 10+i)); err != nil {
			t.Fatal(err)
		}
	}
	var parts []string
	for _, name := range names {
		parts = append(parts, "(SELECT count(*) FROM "+quoteIdent(name)+")")
	}
	_, rows := readAll(t, must(t)(s.Query(context.Background(), "SELECT "+strings.Join(parts, ", "))))
	if got := fmt.Sprint(rows); got != "[[10 11 12 13 14 15 16 17]]" {
		t.Errorf("got %s", got)
	}
	views := map[string]bool{"tables": true, "x.csv": true, "data.parquet": true, `odd "name"`: true}
	for _, si := range s.inputs {
		if s.d.reg.resolves(si) == views[si.in.name] {
			t.Errorf("%s: resolved by the replacement scan %v", si.in.name, s.d.reg.resolves(si))
		}
	}
}

// vmRSS is the resident set size of this process.
func vmRSS(t testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// A streamed result is held in DuckDB a bounded part at a time: reading
// 16M rows (some 400 MiB materialized) grows the process by far less.
// (DuckDB's buffer manager does not count the buffer of a streamed
// result: it reads 0 here; the test logs it.)
func TestStreamingResultBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 16M rows")
	}
	e := openEngine(t, Limits{Memory: 64 * MiB})
	s := openSession(t, e)
	const n = 16_000_000
	runtime.GC()
	before := vmRSS(t)
	r, err := s.Query(context.Background(), fmt.Sprintf("SELECT range AS i, 'row-' || range AS s FROM range(%d)", n))
	if err != nil {
		t.Fatal(err)
	}
	var rows, peak, duckPeak int64
	next := time.Now()
	for r.Next() {
		rows += r.RecordBatch().NumRows()
		if time.Now().After(next) {
			peak = max(peak, vmRSS(t)-before)
			// DuckDB's buffer manager, read on the database's own
			// connection while the session's streams.
			m, err := queryStrings(s.d.conv, "SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
			if err == nil {
				v, _ := strconv.ParseInt(m[0][0], 10, 64)
				duckPeak = max(duckPeak, v)
			}
			next = time.Now().Add(20 * time.Millisecond)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	r.Release()
	t.Logf("%d rows; peak growth of the process %d MiB; DuckDB's memory at most %d MiB", rows, peak>>20, duckPeak>>20)
	if rows != n {
		t.Errorf("%d rows", rows)
	}
	if peak > 150*MiB {
		t.Errorf("the process grew by %d MiB while streaming", peak>>20)
	}
}
