//go:build duckdb_arrow

package sandbox

// The sandbox's limits on the engine path: memory (DuckDB spills beyond
// it; what cannot spill fails), spill space, time, cancellation.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

var genSchema = schemaOf(col{"k", arrow.PrimitiveTypes.Int64}, col{"v", arrow.PrimitiveTypes.Int64})

// genInput is n rows (k = row % mod, v = row) in batches of 65536.
func genInput(t testing.TB, n, mod int) input {
	mem := memory.NewGoAllocator()
	in := input{schema: genSchema}
	const batch = 1 << 16
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		kb := array.NewInt64Builder(mem)
		vb := array.NewInt64Builder(mem)
		kb.Reserve(hi - lo)
		vb.Reserve(hi - lo)
		for r := lo; r < hi; r++ {
			kb.UnsafeAppend(int64(r % mod))
			vb.UnsafeAppend(int64(r))
		}
		ka, va := kb.NewArray(), vb.NewArray()
		in.recs = append(in.recs, array.NewRecord(genSchema, []arrow.Array{ka, va}, int64(hi-lo)))
		ka.Release()
		va.Release()
		kb.Release()
		vb.Release()
	}
	t.Cleanup(func() { releaseRecords(in.recs) })
	return in
}

// spillRows is the size of the inputs of the memory tests: some 16 MiB of
// int64 pairs each, with hash tables and sorts several times the memory
// limit.
const spillRows = 1_000_000

// spillCases are plans whose operators must hold all their input (two
// inputs of spillRows rows with unique keys, fragment 1's in another
// order), with the one-row answer each must give.
func spillCases() map[string]struct {
	plan *planner.Node
	want []any
} {
	n := spillRows
	sumV := n * (n - 1) / 2
	return map[string]struct {
		plan *planner.Node
		want []any
	}{
		"join":      {nAgg(nJoin(planner.JoinInner, nFrag(0), nFrag(1), nil, "k", "k"), nil, "count_star", "", "n", "sum", "right_v", "s"), []any{n, sumV}},
		"aggregate": {nAgg(nAgg(nFrag(0), []string{"k"}, "sum", "v", "s"), nil, "count_star", "", "groups", "sum", "s", "s"), []any{n, sumV}},
		"sort":      {nAgg(nLimit(nSort(nFrag(1), "-k"), -1, int64(n-3)), nil, "count_star", "", "n", "sum", "k", "s"), []any{3, 0 + 1 + 2}},
		"distinct":  {nAgg(nDistinct(nProject(nFrag(1), "k", c("k"))), nil, "count_star", "", "n"), []any{n}},
	}
}

// mustSpill are the spill cases whose operators cannot finish under the
// memory limit without spilling more than 4 MiB.
var mustSpill = map[string]bool{"join": true, "aggregate": true}

// TestMemoryLimit: under a memory limit far below what the operators
// hold, DuckDB spills to the session's directory and completes; with the
// spill space capped it fails with sluice.EResource naming the spill
// limit. What cannot spill (units() of one huge group) fails naming the
// memory limit.
func TestMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("spills some hundred MB")
	}
	inputs := []input{genInput(t, spillRows, spillRows), permuted(t, spillRows)}
	e := openEngine(t, engine.Limits{Memory: 32 * engine.MiB, Threads: 2})
	capped := openEngine(t, engine.Limits{Memory: 32 * engine.MiB, Threads: 2, MaxSpill: 4 * engine.MiB})
	for name, tc := range spillCases() {
		t.Run(name+"/spills", func(t *testing.T) {
			start := time.Now()
			r, err := runPathOn(t, e, tc.plan, inputs...)
			if err != nil {
				t.Fatal(err)
			}
			sameRows(t, r.rows, [][]any{tc.want})
			t.Logf("%v", time.Since(start))
		})
		t.Run(name+"/spill_limit", func(t *testing.T) {
			r, err := runPathOn(t, capped, tc.plan, inputs...)
			if err == nil && !mustSpill[name] {
				// Read in place, DuckDB may need no spill here at all
				// (ORDER BY … LIMIT runs as a top-N; a distinct of
				// int64 fits): then the answer must be right.
				sameRows(t, r.rows, [][]any{tc.want})
				return
			}
			wantCode(t, err, sluice.EResource, "more than 4 MiB of spill space", "spill limit")
		})
	}
	t.Run("units_cannot_spill", func(t *testing.T) {
		units := newUnitsInput(t, 4*spillRows)
		_, err := runPathOn(t, e, nAgg(nFrag(0), nil, "units", "u", "u"), units)
		wantCode(t, err, sluice.EResource, "more than 32 MiB in the sandbox (memory limit)")
	})
}

// permuted is n rows with unique keys in another order than genInput's:
// k = row*7919 mod n (a bijection for n = 10^6), v = row.
func permuted(t testing.TB, n int) input {
	in := genInput(t, n, n)
	out := input{schema: genSchema}
	mem := memory.NewGoAllocator()
	for _, r := range in.recs {
		kb := array.NewInt64Builder(mem)
		ks := r.Column(1).(*array.Int64).Int64Values()
		kb.Reserve(len(ks))
		for _, v := range ks {
			kb.UnsafeAppend(v * 7919 % int64(n))
		}
		ka := kb.NewArray()
		out.recs = append(out.recs, array.NewRecord(genSchema, []arrow.Array{ka, r.Column(1)}, r.NumRows()))
		ka.Release()
		kb.Release()
	}
	t.Cleanup(func() { releaseRecords(out.recs) })
	return out
}

// newUnitsInput is n rows of one 8-byte pseudonym each.
func newUnitsInput(t testing.TB, n int) input {
	sc := schemaOf(col{"u", arrow.BinaryTypes.Binary})
	mem := memory.NewGoAllocator()
	in := input{schema: sc}
	const batch = 1 << 16
	for lo := 0; lo < n; lo += batch {
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		for r := lo; r < min(lo+batch, n); r++ {
			b.Append(person(r))
		}
		a := b.NewArray()
		in.recs = append(in.recs, array.NewRecord(sc, []arrow.Array{a}, int64(a.Len())))
		a.Release()
		b.Release()
	}
	t.Cleanup(func() { releaseRecords(in.recs) })
	return in
}

// runPathOn runs a plan over inputs in a new session of e.
func runPathOn(t testing.TB, e *engine.Engine, n *planner.Node, inputs ...input) (*result, error) {
	return openPath(t, e, nil, inputs...).run(n, pathOpts{})
}

// slowPlan joins two inputs whose keys repeat (200,000 rows of 10 keys on
// each side: 4·10^9 pairs) and counts the pairs: far longer than the time
// limit and the cancellation let it run.
func slowPlan(t testing.TB) (*planner.Node, []input) {
	n := 200_000
	return nAgg(nJoin(planner.JoinInner, nFrag(0), nFrag(1), bin(c("v"), "<>", c("right_v")), "k", "k"), nil, "count_star", "", "n", "sum", "v", "s"),
		[]input{genInput(t, n, 10), genInput(t, n, 10)}
}

// TestTimeLimit: a query past the engine's QueryTime, or past its
// context's deadline, ends with sluice.EResource naming the time limit,
// within moments.
func TestTimeLimit(t *testing.T) {
	plan, inputs := slowPlan(t)
	e := openEngine(t, engine.Limits{QueryTime: 200 * time.Millisecond})
	start := time.Now()
	_, err := runPathOn(t, e, plan, inputs...)
	wantCode(t, err, sluice.EResource, "longer than 200ms in the sandbox (time limit)")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("time limit noticed after %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not unwrap to context.DeadlineExceeded", err)
	}

	// A context deadline is a time limit too.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = openPath(t, nil, nil, inputs...).runCtx(ctx, plan, pathOpts{})
	wantCode(t, err, sluice.EResource, "deadline", "time limit")
}

// TestCancel: cancelling the context stops the query within moments, with
// an error that unwraps to context.Canceled.
func TestCancel(t *testing.T) {
	plan, inputs := slowPlan(t)
	p := openPath(t, nil, nil, inputs...)
	ctx, cancel := context.WithCancel(context.Background())
	var cancelled time.Time
	timer := time.AfterFunc(300*time.Millisecond, func() {
		cancelled = time.Now()
		cancel()
	})
	defer timer.Stop()
	_, err := p.runCtx(ctx, plan, pathOpts{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want cancellation, got %v", err)
	}
	wantCode(t, err, sluice.EUnavailable)
	if d := time.Since(cancelled); d > 2*time.Second {
		t.Errorf("cancel noticed after %v", d)
	}
	// The session still answers.
	r := p.mustRun(nAgg(nFrag(0), nil, "count_star", "", "n"), pathOpts{})
	sameRows(t, r.rows, [][]any{{200_000}})
}
