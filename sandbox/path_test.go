//go:build duckdb_arrow

package sandbox

// The engine path: the tests run a sandbox plan as broker/execute.go runs
// the cross-department part of a query (crossPlan.compile and run): the
// inputs' columns from their Arrow schemas (DuckDBColumns), the plan
// rendered (planner.RenderDuckDB), the inputs registered in a session of
// the sandbox engine (sandbox/engine) and the SQL run there, and every
// result batch converted to the schema the broker promises
// (ConformDuckDB to DuckDBSchema of the rendered columns).

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

// shared is one engine for the tests that need no limits of their own.
var shared struct {
	once sync.Once
	e    *engine.Engine
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.e != nil {
		if err := shared.e.Close(); err != nil && code == 0 {
			println("closing the engine:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// testEngine returns the shared engine.
func testEngine(t testing.TB) *engine.Engine {
	t.Helper()
	shared.once.Do(func() {
		shared.e, shared.err = engine.Open(context.Background(), engine.Limits{Memory: 512 * engine.MiB, SpillDir: os.TempDir()})
	})
	if shared.err != nil {
		t.Fatalf("engine.Open: %v", shared.err)
	}
	return shared.e
}

// openEngine opens an engine with limits of its own, spilling under a
// test directory, closed at the end of the test.
func openEngine(t testing.TB, lim engine.Limits) *engine.Engine {
	t.Helper()
	if lim.SpillDir == "" {
		lim.SpillDir = t.TempDir()
	}
	e, err := engine.Open(context.Background(), lim)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	return e
}

// checkedMem is an allocator that fails the test if a buffer allocated
// through it is still live at the test's end. Make it before the path, so
// that its check runs after the session is closed.
func checkedMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// input is one input of a plan, as an agent's stream delivers it: a
// schema and its batches, which the test owns.
type input struct {
	schema *arrow.Schema
	recs   []arrow.Record
}

// newInput builds an input from rows of Go values (see appendValue), in
// batches of at most batch rows (0: one batch; no rows: no batch), with
// mem (a Go allocator when nil). The records are released at the end of
// the test.
func newInput(t testing.TB, mem memory.Allocator, sc *arrow.Schema, batch int, rows ...[]any) input {
	t.Helper()
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	in := input{schema: sc}
	if batch <= 0 {
		batch = max(len(rows), 1)
	}
	for lo := 0; lo < len(rows); lo += batch {
		in.recs = append(in.recs, buildRecord(t, mem, sc, rows[lo:min(lo+batch, len(rows))]))
	}
	t.Cleanup(func() {
		for _, r := range in.recs {
			r.Release()
		}
	})
	return in
}

// enginePath is one engine session with the inputs of a plan registered
// as the broker registers fragments: input k is fragment k. Its methods
// report to t; on gives the same session reporting to another test.
type enginePath struct {
	t testing.TB
	*pathSession
}

type pathSession struct {
	mem  memory.Allocator
	sess *engine.Session
	rels []planner.DuckDBRelation
}

// on returns the path reporting to t (a subtest).
func (p *enginePath) on(t testing.TB) *enginePath {
	return &enginePath{t: t, pathSession: p.pathSession}
}

// openPath opens a session of e (the shared engine when nil) and
// registers the inputs. mem allocates the conformed results (a Go
// allocator when nil).
func openPath(t testing.TB, e *engine.Engine, mem memory.Allocator, inputs ...input) *enginePath {
	t.Helper()
	if e == nil {
		e = testEngine(t)
	}
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	sess, err := e.Session(context.Background())
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	t.Cleanup(func() {
		if err := sess.Close(); err != nil {
			t.Errorf("Session.Close: %v", err)
		}
	})
	p := &enginePath{t: t, pathSession: &pathSession{mem: mem, sess: sess}}
	for _, in := range inputs {
		p.add(in)
	}
	return p
}

// add registers one more input, the next fragment; DuckDB copies it at
// the next query.
func (p *enginePath) add(in input) planner.DuckDBRelation {
	p.t.Helper()
	cols, err := DuckDBColumns(in.schema)
	if err != nil {
		p.t.Fatalf("DuckDBColumns: %v", err)
	}
	rdr, err := array.NewRecordReader(in.schema, in.recs)
	if err != nil {
		p.t.Fatal(err)
	}
	rel := planner.DuckDBRelation{View: "fragment_" + strconv.Itoa(len(p.rels)), Columns: cols}
	if err := p.sess.Register(rel.View, rdr); err != nil {
		p.t.Fatalf("Register: %v", err)
	}
	p.rels = append(p.rels, rel)
	return rel
}

// pathOpts are the options of one run.
type pathOpts struct {
	// oneToOne: the joins must be one-to-one (a release under a
	// differential-privacy budget).
	oneToOne bool
	// leaf stands a registered relation in for a node of the plan (the
	// gated output of an aggregate).
	leaf map[*planner.Node]planner.DuckDBRelation
	// inputs maps fragment k to the registered input inputs[k] (default:
	// input k).
	inputs []int
}

// query renders n, runs it and returns the rendered query, the schema the
// broker promises and the conformed batches (the caller releases them).
func (p *enginePath) query(ctx context.Context, n *planner.Node, o pathOpts) (*planner.DuckDBQuery, *arrow.Schema, []arrow.Record, error) {
	leaf := func(n *planner.Node) (planner.DuckDBRelation, bool) {
		if r, ok := o.leaf[n]; ok {
			return r, true
		}
		if n.Op != planner.OpFragment {
			return planner.DuckDBRelation{}, false
		}
		k := n.Fragment
		if o.inputs != nil {
			if k < 0 || k >= len(o.inputs) {
				return planner.DuckDBRelation{}, false
			}
			k = o.inputs[k]
		}
		if k < 0 || k >= len(p.rels) {
			return planner.DuckDBRelation{}, false
		}
		return p.rels[k], true
	}
	q, err := planner.RenderDuckDB(n, planner.DuckDBOptions{Leaf: leaf, OneToOne: o.oneToOne})
	if err != nil {
		return nil, nil, nil, err
	}
	want, err := DuckDBSchema(q.Columns)
	if err != nil {
		return q, nil, nil, err
	}
	rd, err := p.sess.Query(ctx, q.SQL, q.Args...)
	if err != nil {
		return q, want, nil, err
	}
	defer rd.Release()
	var recs []arrow.Record
	for rd.Next() {
		rec := rd.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		c, err := ConformDuckDB(p.mem, rec, want)
		if err != nil {
			releaseRecords(recs)
			return q, want, nil, err
		}
		recs = append(recs, c)
	}
	if err := rd.Err(); err != nil {
		releaseRecords(recs)
		return q, want, nil, err
	}
	return q, want, recs, nil
}

// result is the answer of one run: the rendered query, the schema, and the
// rows as Go values (cell) and in canonical form (canon).
type result struct {
	q      *planner.DuckDBQuery
	schema *arrow.Schema
	rows   [][]any
	canon  [][]string
}

// run runs n (see query) and reads the answer.
func (p *enginePath) run(n *planner.Node, o pathOpts) (*result, error) {
	return p.runCtx(context.Background(), n, o)
}

func (p *enginePath) runCtx(ctx context.Context, n *planner.Node, o pathOpts) (*result, error) {
	q, sc, recs, err := p.query(ctx, n, o)
	if err != nil {
		return &result{q: q, schema: sc}, err
	}
	defer releaseRecords(recs)
	for _, r := range recs {
		if !r.Schema().Equal(sc) {
			p.t.Errorf("a batch's schema %v is not the promised %v", r.Schema(), sc)
		}
	}
	return &result{q: q, schema: sc, rows: rowsOf(recs), canon: canonRows(recs)}, nil
}

// mustRun runs n and fails the test on an error.
func (p *enginePath) mustRun(n *planner.Node, o pathOpts) *result {
	p.t.Helper()
	r, err := p.run(n, o)
	if err != nil {
		sql := ""
		if r.q != nil {
			sql = r.q.SQL
		}
		p.t.Fatalf("run: %v\nplan:\n%s\nSQL: %s", err, n.Normalized(), sql)
	}
	return r
}

// runPlan runs one plan over inputs in a session of its own.
func runPlan(t testing.TB, n *planner.Node, o pathOpts, inputs ...input) (*result, error) {
	t.Helper()
	return openPath(t, nil, nil, inputs...).run(n, o)
}

func releaseRecords(recs []arrow.Record) {
	for _, r := range recs {
		r.Release()
	}
}
