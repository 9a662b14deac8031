package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/crypto/digest"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
	"github.com/sluice-gov/sluice/sandbox"
	"github.com/sluice-gov/sluice/sandbox/engine"
	"github.com/sluice-gov/sluice/sandbox/gate"
)

// crossPlan is an allowed cross-department plan: its fragments with their
// datasets, which fragments are private-join sides, and what the release
// gate must do.
type crossPlan struct {
	plan     *planner.Plan
	datasets []*sluice.Dataset
	psi      map[int]psiSide // fragment index → its PSI role
	// Right after the outermost aggregate the gate suppresses the groups
	// of fewer than k persons in any contributor set (plan.UnitSets) and
	// adds Laplace noise under a budget (epsilon); the last gate checks
	// the row cap and strips the sets.
	epsilon float64
	rowCap  int64
}

// psiSide says which PSI join a fragment is a side of.
type psiSide struct {
	keyColumn string // the fragment's output name of its key (first select item)
	domain    string
	partner   int // the other side's fragment index
}

// admitCross admits an allowed cross-department plan: checks it, computes
// its output schema, reserves any privacy budget, and issues the ticket.
func (s *Server) admitCross(ctx context.Context, st *state.State, p sluice.Principal, plan *planner.Plan, dec *policy.Decision, entry *audit.Entry, desc *flight.FlightDescriptor, start time.Time, fail func(string, error) (*flight.FlightInfo, error)) (*flight.FlightInfo, error) {
	cp, schema, err := prepareCross(st, plan, dec)
	if err != nil {
		return fail("error", err)
	}
	if err := s.checkGuard(plan.UnitSets, dec); err != nil {
		return fail("error", err)
	}
	rel, err := s.reserve(ctx, st, entry.QueryID, dec)
	if err != nil {
		if sluice.ErrorCode(err) == sluice.EDenied {
			return fail("deny", err)
		}
		return fail("error", err)
	}
	rel.obligations.Epsilon = cp.epsilon
	return s.admit(ctx, &pendingQuery{principal: p, queryID: entry.QueryID, cross: cp, schema: schema, entry: *entry, release: rel,
		units: plan.UnitSets, guarded: len(plan.UnitSets) > 0 && len(dec.DP) == 0, st: st}, dec, desc, start)
}

// prepareCross checks an allowed cross-department plan and computes its
// output schema by building the sandbox tree over empty inputs.
func prepareCross(st *state.State, plan *planner.Plan, dec *policy.Decision) (*crossPlan, *arrow.Schema, error) {
	if dec.MinGroupSize > 0 && len(plan.UnitSets) == 0 {
		return nil, nil, sluice.Errorf(sluice.EInternal, "the release is aggregate-only but the plan counts no persons; refusing")
	}
	cp := &crossPlan{plan: plan, psi: map[int]psiSide{}, rowCap: dec.RowCap}
	if len(dec.DP) > 0 {
		cp.epsilon = dec.DP[0].EpsilonPerQuery
		for _, d := range dec.DP[1:] {
			cp.epsilon = min(cp.epsilon, d.EpsilonPerQuery)
		}
	}
	for _, f := range plan.Fragments {
		ds := st.Catalog.Dataset(state.SplitDataset(f.Dataset))
		if ds == nil {
			return nil, nil, sluice.Errorf(sluice.EInternal, "the plan names dataset %s that the catalog does not hold", f.Dataset)
		}
		if _, ok := st.Agents[ds.Department]; !ok {
			return nil, nil, sluice.Errorf(sluice.EUnavailable, "no agent is configured for department %s; ask the platform admin to register it", ds.Department)
		}
		if err := f.Validate(ds); err != nil {
			return nil, nil, err
		}
		cp.datasets = append(cp.datasets, ds)
	}
	var walk func(n *planner.Node) error
	walk = func(n *planner.Node) error {
		if n.Op == planner.OpJoin && n.PSI {
			if len(n.Inputs) != 2 || n.Inputs[0].Op != planner.OpFragment || n.Inputs[1].Op != planner.OpFragment || len(n.Keys) != 1 {
				return sluice.Errorf(sluice.ENotSupported, "a private join must be between two datasets directly; this plan shape is not supported yet")
			}
			l, r := n.Inputs[0].Fragment, n.Inputs[1].Fragment
			cp.psi[l] = psiSide{keyColumn: n.Keys[0].Left, domain: n.KeyDomain, partner: r}
			cp.psi[r] = psiSide{keyColumn: n.Keys[0].Right, domain: n.KeyDomain, partner: l}
		}
		for _, in := range n.Inputs {
			if err := walk(in); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(plan.Sandbox); err != nil {
		return nil, nil, err
	}
	// The output schema: the plan compiled for the engine over the
	// fragments' schemas, through the gates' schemas.
	c, err := cp.compile()
	if err != nil {
		return nil, nil, err
	}
	return cp, c.schema, nil
}

// fragmentSchema is what the sandbox receives from fragment i: the agent's
// output, with a PSI side's key replaced by its doubly blinded value.
func (cp *crossPlan) fragmentSchema(i int, f *planner.Fragment) (*arrow.Schema, error) {
	fields, err := planner.StreamFields(f, cp.datasets[i])
	if err != nil {
		return nil, err
	}
	schema := adapters.Schema(fields)
	if _, ok := cp.psi[i]; !ok {
		return schema, nil
	}
	fs := append([]arrow.Field(nil), schema.Fields()...)
	fs[0] = arrow.Field{Name: fs[0].Name, Type: arrow.BinaryTypes.Binary}
	return arrow.NewSchema(fs, nil), nil
}

// builtGates are the gates a run placed: after the outermost aggregate
// (its report says how many groups it suppressed) and last (its sets go
// to the differencing guard).
type builtGates struct {
	aggregate, final *gate.Gate
}

// compiled is a cross-department plan rendered for the sandbox engine
// (planner.RenderDuckDB): the fragments' tables; when a release gate must
// see the groups of the outermost aggregate, the query up to and
// including that aggregate (first) and the gate's obligations; the query
// of the rest of the plan (rest: over the gated groups, or the whole plan
// when no gate sits in the middle); the last gate's obligations; and the
// schema of every stage, so the schema the client is promised is computed
// without running anything.
type compiled struct {
	frags []planner.DuckDBRelation // fragment i is the table fragmentTable(i)

	agg         *planner.Node // the outermost aggregate, when gated
	first       *planner.DuckDBQuery
	firstSchema *arrow.Schema
	aggOb       gate.Obligations
	gated       planner.DuckDBRelation // the aggregate gate's output, as rest reads it
	gatedSchema *arrow.Schema

	rest       *planner.DuckDBQuery // nil when the gated aggregate is the plan's root
	restSchema *arrow.Schema

	finalOb *gate.Obligations // the last gate (row cap, sketches for the guard); nil: none
	schema  *arrow.Schema     // what the client receives
}

func fragmentTable(i int) string { return "fragment_" + strconv.Itoa(i) }

// gatedTable holds the groups that passed the aggregate's release gate.
const gatedTable = "gated_groups"

// maxGatedRows bounds the groups held between the aggregate's gate and the
// rest of the plan (an aggregate-only release: each group has at least k
// persons).
const maxGatedRows = 1_000_000

// compile renders the plan for the engine and computes its schemas.
func (cp *crossPlan) compile() (*compiled, error) {
	c := &compiled{}
	for i, f := range cp.plan.Fragments {
		sc, err := cp.fragmentSchema(i, f)
		if err != nil {
			return nil, err
		}
		cols, err := sandbox.DuckDBColumns(sc)
		if err != nil {
			return nil, err
		}
		c.frags = append(c.frags, planner.DuckDBRelation{View: fragmentTable(i), Columns: cols})
	}
	fragment := func(n *planner.Node) (planner.DuckDBRelation, bool) {
		if n.Op == planner.OpFragment && n.Fragment >= 0 && n.Fragment < len(c.frags) {
			return c.frags[n.Fragment], true
		}
		return planner.DuckDBRelation{}, false
	}
	// Under a budget the planner allowed only joins on keys the catalog
	// declares unique (planner.checkOneToOne); the engine holds the data
	// to that.
	opts := planner.DuckDBOptions{Leaf: fragment, OneToOne: cp.epsilon > 0}
	units := cp.plan.UnitSets
	root := cp.plan.Sandbox
	out := (*arrow.Schema)(nil)
	if len(units) > 0 || cp.epsilon > 0 {
		c.agg = root.OutermostAggregate()
		if c.agg == nil {
			return nil, sluice.Errorf(sluice.EInternal, "the release is aggregate-only but the plan has no aggregate; refusing")
		}
		q, err := planner.RenderDuckDB(c.agg, opts)
		if err != nil {
			return nil, err
		}
		c.first = q
		if c.firstSchema, err = sandbox.DuckDBSchema(q.Columns); err != nil {
			return nil, err
		}
		for _, u := range units {
			// The pseudonyms of each set become its sketch, which
			// travels with its group to the last gate.
			c.aggOb.Units = append(c.aggOb.Units, gate.UnitColumn{Name: u.Column, Dataset: u.Dataset, K: u.K, Format: gate.UnitPseudonyms, Keep: true})
		}
		if cp.epsilon > 0 {
			// ClampSums prepared the plan: each SUM adds values clamped
			// in the project just below.
			noisy, err := planner.NoisyAggs(c.agg)
			if err != nil {
				return nil, err
			}
			c.aggOb.Epsilon = cp.epsilon
			c.aggOb.Noisy = noisyColumns(noisy)
		}
		g, err := gate.NewFilter(c.firstSchema, c.aggOb)
		if err != nil {
			return nil, err
		}
		c.gatedSchema = g.Schema()
		cols, err := sandbox.DuckDBColumns(c.gatedSchema)
		if err != nil {
			return nil, err
		}
		c.gated = planner.DuckDBRelation{View: gatedTable, Columns: cols}
		out = c.gatedSchema
		if c.agg != root {
			opts.Leaf = func(n *planner.Node) (planner.DuckDBRelation, bool) {
				if n == c.agg {
					return c.gated, true
				}
				return fragment(n)
			}
		}
	}
	if c.agg != root {
		q, err := planner.RenderDuckDB(root, opts)
		if err != nil {
			return nil, err
		}
		c.rest = q
		if c.restSchema, err = sandbox.DuckDBSchema(q.Columns); err != nil {
			return nil, err
		}
		out = c.restSchema
	}
	if cp.rowCap > 0 || len(units) > 0 {
		ob := gate.Obligations{RowCap: cp.rowCap, Units: sketchUnits(units)}
		g, err := gate.NewFilter(out, ob)
		if err != nil {
			return nil, err
		}
		c.finalOb = &ob
		out = g.Schema()
	}
	c.schema = out
	return c, nil
}

// run executes the compiled plan in sess over the fragments' inputs (one
// reader per fragment, which run takes over) and returns what the client
// receives. sess holds every intermediate result; closing it ends them.
func (cp *crossPlan) run(ctx context.Context, sess *engine.Session, c *compiled, inputs []array.RecordReader, gates *builtGates) (recordSource, error) {
	for i, r := range inputs {
		inputs[i] = nil
		if err := sess.Register(fragmentTable(i), r); err != nil {
			for _, rest := range inputs[i+1:] {
				if rest != nil {
					rest.Release()
				}
			}
			return nil, err
		}
	}
	var src recordSource
	if c.first != nil {
		rd, err := sess.Query(ctx, c.first.SQL, c.first.Args...)
		if err != nil {
			return nil, err
		}
		g, err := gate.New(&engineStream{rd: rd, want: c.firstSchema}, c.aggOb)
		if err != nil {
			rd.Release()
			return nil, err
		}
		gates.aggregate = g
		// The groups that pass are few (each has at least k persons);
		// the rest of the plan reads them from the session.
		recs, err := collectGated(ctx, g)
		rd.Release()
		if err != nil {
			return nil, err
		}
		if c.rest == nil {
			src = &heldStream{schema: c.gatedSchema, recs: recs}
		} else {
			held, err := array.NewRecordReader(c.gatedSchema, recs)
			releaseRecords(recs) // the reader holds its own references
			if err != nil {
				return nil, err
			}
			if err := sess.Register(gatedTable, held); err != nil {
				return nil, err
			}
		}
	}
	if c.rest != nil {
		rd, err := sess.Query(ctx, c.rest.SQL, c.rest.Args...)
		if err != nil {
			return nil, err
		}
		src = &engineStream{rd: rd, want: c.restSchema}
	}
	if c.finalOb != nil {
		g, err := gate.New(src, *c.finalOb)
		if err != nil {
			return nil, err
		}
		gates.final = g
		src = g
	}
	return src, nil
}

// collectGated reads the aggregate gate's output to its end.
func collectGated(ctx context.Context, g *gate.Gate) ([]arrow.Record, error) {
	var recs []arrow.Record
	var rows int64
	for {
		rec, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			releaseRecords(recs)
			return nil, err
		}
		rows += rec.NumRows()
		recs = append(recs, rec)
		if rows > maxGatedRows {
			releaseRecords(recs)
			return nil, sluice.Errorf(sluice.EResource, "the query releases more than %d groups; aggregate more coarsely", maxGatedRows)
		}
	}
}

func releaseRecords(recs []arrow.Record) {
	for _, r := range recs {
		r.Release()
	}
}

// engineStream reads a result of the engine as the sandbox's schema want
// (sandbox.ConformDuckDB).
type engineStream struct {
	rd   array.RecordReader
	want *arrow.Schema
}

func (e *engineStream) Schema() *arrow.Schema { return e.want }
func (e *engineStream) Next(ctx context.Context) (arrow.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for e.rd.Next() {
		rec := e.rd.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		return sandbox.ConformDuckDB(memory.DefaultAllocator, rec, e.want)
	}
	if err := e.rd.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// heldStream replays records it holds (and owns).
type heldStream struct {
	schema *arrow.Schema
	recs   []arrow.Record
}

func (h *heldStream) Schema() *arrow.Schema { return h.schema }
func (h *heldStream) Next(ctx context.Context) (arrow.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(h.recs) == 0 {
		return nil, io.EOF
	}
	r := h.recs[0]
	h.recs = h.recs[1:]
	return r, nil
}

func (h *heldStream) release() {
	releaseRecords(h.recs)
	h.recs = nil
}

// fragmentTally is what the broker received from one department's agent.
type fragmentTally struct {
	dept, dataset string
	tally         *digest.Stream
	// peer is what the agent showed of its own log when it began serving
	// (its write-ahead entry and latest checkpoint), kept in the result
	// entry so the agent's log cannot later be cut back below it.
	peer *audit.Anchor
}

func (f *fragmentTally) record() audit.FragmentRecord {
	return audit.FragmentRecord{Department: f.dept, Dataset: f.dataset, Rows: f.tally.Rows(), Bytes: f.tally.Bytes(), Digest: f.tally.Sum(), Peer: f.peer}
}

// streamOp reads an agent's fragment stream for the relay, digesting
// every record as received (the single-dataset path).
type streamOp struct {
	s      *agent.Stream
	schema *arrow.Schema
	t      *fragmentTally
}

func (o *streamOp) Schema() *arrow.Schema { return o.schema }
func (o *streamOp) Next(ctx context.Context) (arrow.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.s.Next() {
		rec := o.s.Record()
		rec.Retain()
		o.t.tally.Add(rec)
		return rec, nil
	}
	if err := o.s.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// streamReader hands an agent's fragment stream to the engine as an Arrow
// record reader, digesting every record as the engine pulls it. Its error
// is the agent's (EUnavailable naming the department when the stream was
// cut), which the engine only sees as a failed read.
type streamReader struct {
	refs   atomic.Int64
	s      *agent.Stream
	schema *arrow.Schema
	t      *fragmentTally
	cur    arrow.Record
	mu     sync.Mutex
	err    error
}

func newStreamReader(s *agent.Stream, schema *arrow.Schema, t *fragmentTally) *streamReader {
	r := &streamReader{s: s, schema: schema, t: t}
	r.refs.Store(1)
	return r
}

func (r *streamReader) Retain() { r.refs.Add(1) }
func (r *streamReader) Release() {
	if r.refs.Add(-1) == 0 {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		r.s.Release()
	}
}
func (r *streamReader) Schema() *arrow.Schema { return r.schema }
func (r *streamReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if !r.s.Next() {
		if err := r.s.Err(); err != nil {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
		}
		return false
	}
	rec := r.s.Record()
	rec.Retain()
	r.t.tally.Add(rec)
	r.cur = rec
	return true
}
func (r *streamReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *streamReader) Record() arrow.RecordBatch      { return r.cur }
func (r *streamReader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// openInputs starts every fragment: plain fragments stream from their
// agents; each private join runs its PSI exchange and becomes two
// materialised inputs whose key column holds doubly blinded values.
func (s *Server) openInputs(ctx context.Context, st *state.State, cp *crossPlan) ([]array.RecordReader, []*fragmentTally, error) {
	n := len(cp.plan.Fragments)
	inputs := make([]array.RecordReader, n)
	tallies := make([]*fragmentTally, n)
	fail := func(err error) ([]array.RecordReader, []*fragmentTally, error) {
		for _, in := range inputs {
			if in != nil {
				in.Release()
			}
		}
		return nil, tallies, err
	}
	done := map[int]bool{}
	for i, f := range cp.plan.Fragments {
		ds := cp.datasets[i]
		schema, err := cp.fragmentSchema(i, f)
		if err != nil {
			return fail(err)
		}
		if _, isPSI := cp.psi[i]; !isPSI {
			tallies[i] = &fragmentTally{dept: ds.Department, dataset: ds.FullName(), tally: digest.NewStream(schema)}
			fs, err := st.Agents[ds.Department].Fetch(ctx, f)
			if err != nil {
				return fail(err)
			}
			tallies[i].peer = fs.AgentAnchor()
			if !fs.Schema().Equal(schema) {
				fs.Release()
				return fail(sluice.Errorf(sluice.EInternal, "the agent of department %s returned a different schema than the broker planned; the catalogs disagree", ds.Department))
			}
			inputs[i] = newStreamReader(fs, schema, tallies[i])
			continue
		}
		if done[i] {
			continue
		}
		side := cp.psi[i]
		j := side.partner
		pctx, pspan := tracing.Start(ctx, "sluice.psi", tracing.AttrDataset.StringSlice([]string{cp.datasets[i].FullName(), cp.datasets[j].FullName()}))
		a, b, ta, tb, err := s.privateJoinInputs(pctx, st, cp, i, j)
		tracing.End(pspan, err)
		tallies[i], tallies[j] = ta, tb
		if err != nil {
			return fail(err)
		}
		inputs[i], inputs[j] = a, b
		done[i], done[j] = true, true
	}
	return inputs, tallies, nil
}

// psiHalf is one side of a private join as the broker holds it: the
// agent's records (blinded key first) and the singly blinded keys.
type psiHalf struct {
	client  state.AgentClient
	session string
	recs    []arrow.Record
	keys    [][]byte // the non-null blinded keys, in row order
	present []bool   // per row: whether it has a key (a NULL key never joins)
	tally   *fragmentTally
}

func (h *psiHalf) release() {
	for _, r := range h.recs {
		r.Release()
	}
	h.recs = nil
}

// privateJoinInputs runs the PSI exchange between fragments i and j:
// each agent blinds its keys with a fresh secret, the broker hands each
// side's blinded keys to the other agent to blind again, and both sides'
// rows come back keyed by the doubly blinded value. The broker never holds
// a raw key, nor a singly blinded key it could match.
func (s *Server) privateJoinInputs(ctx context.Context, st *state.State, cp *crossPlan, i, j int) (array.RecordReader, array.RecordReader, *fragmentTally, *fragmentTally, error) {
	psiStart := time.Now()
	halves := [2]*psiHalf{}
	idx := [2]int{i, j}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for h := 0; h < 2; h++ {
		wg.Add(1)
		go func(h int) {
			defer wg.Done()
			halves[h], errs[h] = blindSide(ctx, st, cp, idx[h])
		}(h)
	}
	wg.Wait()
	closeAll := func() {
		for _, h := range halves {
			if h != nil {
				h.release()
				if h.session != "" {
					h.client.PSIClose(context.WithoutCancel(ctx), h.session)
				}
			}
		}
	}
	tally := func(h int) *fragmentTally {
		if halves[h] == nil {
			ds := cp.datasets[idx[h]]
			return &fragmentTally{dept: ds.Department, dataset: ds.FullName(), tally: digest.NewStream(arrow.NewSchema(nil, nil))}
		}
		return halves[h].tally
	}
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return nil, nil, tally(0), tally(1), err
	}
	// Each side's keys are blinded again by the other side's agent.
	double := [2][][]byte{}
	for h := 0; h < 2; h++ {
		wg.Add(1)
		go func(h int) {
			defer wg.Done()
			other := halves[1-h]
			double[h], errs[h] = other.client.PSIReblind(ctx, other.session, halves[h].keys)
		}(h)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return nil, nil, tally(0), tally(1), err
	}
	ops := [2]array.RecordReader{}
	for h := 0; h < 2; h++ {
		if len(double[h]) != len(halves[h].keys) {
			closeAll()
			return nil, nil, tally(0), tally(1), sluice.Errorf(sluice.EInternal, "the agent of department %s returned %d blinded keys for %d", cp.datasets[idx[1-h]].Department, len(double[h]), len(halves[h].keys))
		}
		op, err := rekey(halves[h].recs, halves[h].present, double[h], cp, idx[h])
		if err != nil {
			if ops[0] != nil {
				ops[0].Release()
			}
			closeAll()
			return nil, nil, tally(0), tally(1), err
		}
		ops[h] = op
	}
	closeAll()
	s.metrics.PSI(time.Since(psiStart), cp.datasets[i].Department, len(halves[0].keys), cp.datasets[j].Department, len(halves[1].keys))
	return ops[0], ops[1], tally(0), tally(1), nil
}

// blindSide asks fragment i's agent to run it with its key blinded and
// collects the result.
func blindSide(ctx context.Context, st *state.State, cp *crossPlan, i int) (*psiHalf, error) {
	f := cp.plan.Fragments[i]
	ds := cp.datasets[i]
	side := cp.psi[i]
	keyCol := f.Select[0].Expr.Column
	client := st.Agents[ds.Department]
	ps, err := client.PSIBlind(ctx, f, keyCol, side.domain)
	if err != nil {
		return nil, err
	}
	defer ps.Release()
	h := &psiHalf{client: client, session: ps.Session, tally: &fragmentTally{dept: ds.Department, dataset: ds.FullName(), tally: digest.NewStream(ps.Schema()), peer: ps.AgentAnchor()}}
	for ps.Next() {
		rec := ps.Record()
		rec.Retain()
		h.tally.tally.Add(rec)
		h.recs = append(h.recs, rec)
		keys, ok := rec.Column(0).(*array.Binary)
		if !ok {
			h.release()
			return h, sluice.Errorf(sluice.EInternal, "the agent of department %s sent blinded keys as %s, not binary", ds.Department, rec.Column(0).DataType())
		}
		for r := 0; r < keys.Len(); r++ {
			if keys.IsNull(r) {
				h.present = append(h.present, false)
				continue
			}
			h.present = append(h.present, true)
			h.keys = append(h.keys, append([]byte(nil), keys.Value(r)...))
		}
	}
	if err := ps.Err(); err != nil {
		h.release()
		return h, err
	}
	return h, nil
}

// rekey rebuilds a side's records with the doubly blinded key in place of
// the singly blinded one, as the sandbox input of the join.
func rekey(recs []arrow.Record, present []bool, double [][]byte, cp *crossPlan, i int) (array.RecordReader, error) {
	schema, err := cp.fragmentSchema(i, cp.plan.Fragments[i])
	if err != nil {
		return nil, err
	}
	out := make([]arrow.Record, 0, len(recs))
	row, pos := 0, 0
	for _, r := range recs {
		b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
		for k := 0; k < int(r.NumRows()); k++ {
			if !present[row] {
				b.AppendNull()
			} else {
				b.Append(double[pos])
				pos++
			}
			row++
		}
		keys := b.NewArray()
		b.Release()
		cols := make([]arrow.Array, r.NumCols())
		cols[0] = keys
		for c := 1; c < int(r.NumCols()); c++ {
			cols[c] = r.Column(c)
		}
		if len(cols) != schema.NumFields() {
			keys.Release()
			releaseRecords(out)
			return nil, sluice.Errorf(sluice.EInternal, "a private-join side has %d columns, the plan %d", len(cols), schema.NumFields())
		}
		out = append(out, array.NewRecord(schema, cols, r.NumRows()))
		keys.Release()
	}
	rd, err := array.NewRecordReader(schema, out)
	releaseRecords(out) // the reader holds its own references
	if err != nil {
		return nil, fmt.Errorf("rekey: %w", err)
	}
	return rd, nil
}
