package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/crypto/digest"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
	"github.com/sluice-gov/sluice/sandbox"
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
	// The output schema: the same tree over empty inputs.
	q := sandbox.NewQuery(sandbox.Limits{}, memory.DefaultAllocator)
	inputs := make([]sandbox.Operator, len(plan.Fragments))
	for i, f := range plan.Fragments {
		schema, err := cp.fragmentSchema(i, f)
		if err != nil {
			return nil, nil, err
		}
		if inputs[i], err = q.Scan(schema); err != nil {
			return nil, nil, err
		}
	}
	root, err := cp.build(q, plan.Sandbox, inputs, nil)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	return cp, root.Schema(), nil
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

// builtGates are the gates build placed: after the outermost aggregate
// (its report says how many groups it suppressed) and last (its sets go
// to the differencing guard).
type builtGates struct {
	aggregate, final *gate.Gate
}

// build turns a plan node into sandbox operators over the fragment inputs.
func (cp *crossPlan) build(q *sandbox.Query, n *planner.Node, inputs []sandbox.Operator, gates *builtGates) (sandbox.Operator, error) {
	if gates == nil {
		gates = &builtGates{}
	}
	units := cp.plan.UnitSets
	gated := false
	var rec func(n *planner.Node) (sandbox.Operator, error)
	rec = func(n *planner.Node) (sandbox.Operator, error) {
		kids := make([]sandbox.Operator, len(n.Inputs))
		closeKids := func() {
			for _, k := range kids {
				if k != nil {
					k.Close()
				}
			}
		}
		// The outermost aggregate is the first met from the root; mark it
		// before descending so inner (derived-table) aggregates are not.
		outermost := n.Op == planner.OpAggregate && !gated
		if outermost {
			gated = true
		}
		for i, in := range n.Inputs {
			op, err := rec(in)
			if err != nil {
				closeKids()
				return nil, err
			}
			kids[i] = op
		}
		switch n.Op {
		case planner.OpFragment:
			if n.Fragment < 0 || n.Fragment >= len(inputs) {
				return nil, sluice.Errorf(sluice.EInternal, "the plan refers to fragment %d of %d", n.Fragment, len(inputs))
			}
			return inputs[n.Fragment], nil
		case planner.OpJoin:
			return cp.join(q, n, kids[0], kids[1])
		case planner.OpFilter:
			return q.Filter(kids[0], n.Predicate)
		case planner.OpProject:
			return q.Project(kids[0], n.Items)
		case planner.OpSort:
			keys := make([]sandbox.SortKey, len(n.SortKeys))
			for i, k := range n.SortKeys {
				keys[i] = sandbox.SortKey{Column: k.Column, Desc: k.Desc, NullsFirst: !k.Desc}
			}
			return q.Sort(kids[0], keys)
		case planner.OpLimit:
			lim := int64(math.MaxInt64)
			if n.Limit != nil {
				lim = *n.Limit
			}
			return q.Limit(kids[0], lim, n.Offset)
		case planner.OpDistinct:
			return q.Distinct(kids[0])
		case planner.OpAggregate:
			aggs := make([]sandbox.Agg, len(n.Aggs))
			for i, a := range n.Aggs {
				aggs[i] = sandbox.Agg{Func: sandbox.AggFunc(a.Func), Column: a.Column, Alias: a.Alias}
			}
			if !outermost || (len(units) == 0 && cp.epsilon <= 0) {
				return q.HashAggregate(kids[0], n.GroupBy, aggs)
			}
			op, err := q.HashAggregate(kids[0], n.GroupBy, aggs)
			if err != nil {
				return nil, err
			}
			ob := gate.Obligations{}
			for _, u := range units {
				// The pseudonyms of each set become its sketch, which
				// travels with its group to the last gate.
				ob.Units = append(ob.Units, gate.UnitColumn{Name: u.Column, Dataset: u.Dataset, K: u.K, Format: gate.UnitPseudonyms, Keep: true})
			}
			if cp.epsilon > 0 {
				// ClampSums prepared the plan: each SUM adds values
				// clamped in the project just below.
				noisy, err := planner.NoisyAggs(n)
				if err != nil {
					op.Close()
					return nil, err
				}
				ob.Epsilon = cp.epsilon
				ob.Noisy = noisyColumns(noisy)
			}
			g, err := gate.New(op, ob)
			if err != nil {
				op.Close()
				return nil, err
			}
			gates.aggregate = g
			return &gateOp{Gate: g, in: op}, nil
		}
		closeKids()
		return nil, sluice.Errorf(sluice.ENotSupported, "sandbox operator %q is not supported yet", n.Op)
	}
	root, err := rec(n)
	if err != nil {
		return nil, err
	}
	if (len(units) > 0 || cp.epsilon > 0) && !gated {
		root.Close()
		return nil, sluice.Errorf(sluice.EInternal, "the release is aggregate-only but the plan has no aggregate; refusing")
	}
	if cp.rowCap > 0 || len(units) > 0 {
		g, err := gate.New(root, gate.Obligations{RowCap: cp.rowCap, Units: sketchUnits(units)})
		if err != nil {
			root.Close()
			return nil, err
		}
		gates.final = g
		root = &gateOp{Gate: g, in: root}
	}
	return root, nil
}

func (cp *crossPlan) join(q *sandbox.Query, n *planner.Node, l, r sandbox.Operator) (sandbox.Operator, error) {
	lk := make([]string, len(n.Keys))
	rk := make([]string, len(n.Keys))
	for i, k := range n.Keys {
		lk[i], rk[i] = k.Left, k.Right
	}
	// Under a budget the planner allowed only joins on keys the catalog
	// declares unique (planner.checkOneToOne); the sandbox holds the data
	// to that.
	opts := sandbox.JoinOptions{Residual: n.Residual, OneToOne: cp.epsilon > 0}
	switch n.JoinKind {
	case planner.JoinInner:
		return q.HashJoin(l, r, lk, rk, sandbox.InnerJoin, opts)
	case planner.JoinLeft:
		return q.HashJoin(l, r, lk, rk, sandbox.LeftJoin, opts)
	case planner.JoinSemi:
		if n.Residual != nil {
			l.Close()
			r.Close()
			return nil, sluice.Errorf(sluice.ENotSupported, "an IN subquery with further conditions is not supported yet")
		}
		// A semi join is an inner join with the distinct right keys, keeping
		// the left columns.
		items := make([]planner.SelectItem, len(rk))
		for i, k := range rk {
			items[i] = planner.SelectItem{Expr: &planner.Expr{Kind: planner.KindColumn, Column: k}, Alias: k}
		}
		keysOnly, err := q.Project(r, items)
		if err != nil {
			l.Close()
			return nil, err
		}
		distinct, err := q.Distinct(keysOnly)
		if err != nil {
			l.Close()
			return nil, err
		}
		leftSchema := l.Schema()
		joined, err := q.HashJoin(l, distinct, lk, rk, sandbox.InnerJoin, sandbox.JoinOptions{RightPrefix: "\x00semi."})
		if err != nil {
			return nil, err
		}
		keep := make([]planner.SelectItem, leftSchema.NumFields())
		for i, f := range leftSchema.Fields() {
			keep[i] = planner.SelectItem{Expr: &planner.Expr{Kind: planner.KindColumn, Column: f.Name}, Alias: f.Name}
		}
		return q.Project(joined, keep)
	}
	l.Close()
	r.Close()
	return nil, sluice.Errorf(sluice.ENotSupported, "join kind %q is not supported yet", n.JoinKind)
}

// gateOp makes a release gate a sandbox operator.
type gateOp struct {
	*gate.Gate
	in sandbox.Operator
}

func (g *gateOp) Close() { g.in.Close() }

// fragmentTally is what the broker received from one department's agent.
type fragmentTally struct {
	dept, dataset string
	tally         *digest.Stream
}

func (f *fragmentTally) record() audit.FragmentRecord {
	return audit.FragmentRecord{Department: f.dept, Dataset: f.dataset, Rows: f.tally.Rows(), Bytes: f.tally.Bytes(), Digest: f.tally.Sum()}
}

// streamOp reads an agent's fragment stream into the sandbox, digesting
// every record as received.
type streamOp struct {
	s      *agent.Stream
	schema *arrow.Schema
	t      *fragmentTally
}

func (o *streamOp) Schema() *arrow.Schema { return o.schema }
func (o *streamOp) Close()                { o.s.Release() }
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

// openInputs starts every fragment: plain fragments stream from their
// agents; each private join runs its PSI exchange and becomes two
// materialised inputs whose key column holds doubly blinded values.
func (s *Server) openInputs(ctx context.Context, st *state.State, q *sandbox.Query, cp *crossPlan) ([]sandbox.Operator, []*fragmentTally, error) {
	n := len(cp.plan.Fragments)
	inputs := make([]sandbox.Operator, n)
	tallies := make([]*fragmentTally, n)
	fail := func(err error) ([]sandbox.Operator, []*fragmentTally, error) {
		for _, in := range inputs {
			if in != nil {
				in.Close()
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
			if !fs.Schema().Equal(schema) {
				fs.Release()
				return fail(sluice.Errorf(sluice.EInternal, "the agent of department %s returned a different schema than the broker planned; the catalogs disagree", ds.Department))
			}
			inputs[i] = &streamOp{s: fs, schema: schema, t: tallies[i]}
			continue
		}
		if done[i] {
			continue
		}
		side := cp.psi[i]
		j := side.partner
		a, b, ta, tb, err := s.privateJoinInputs(ctx, st, q, cp, i, j)
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
func (s *Server) privateJoinInputs(ctx context.Context, st *state.State, q *sandbox.Query, cp *crossPlan, i, j int) (sandbox.Operator, sandbox.Operator, *fragmentTally, *fragmentTally, error) {
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
	ops := [2]sandbox.Operator{}
	for h := 0; h < 2; h++ {
		if len(double[h]) != len(halves[h].keys) {
			closeAll()
			return nil, nil, tally(0), tally(1), sluice.Errorf(sluice.EInternal, "the agent of department %s returned %d blinded keys for %d", cp.datasets[idx[1-h]].Department, len(double[h]), len(halves[h].keys))
		}
		op, err := rekey(q, halves[h].recs, halves[h].present, double[h], cp, idx[h])
		if err != nil {
			closeAll()
			return nil, nil, tally(0), tally(1), err
		}
		ops[h] = op
	}
	closeAll()
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
	h := &psiHalf{client: client, session: ps.Session, tally: &fragmentTally{dept: ds.Department, dataset: ds.FullName(), tally: digest.NewStream(ps.Schema())}}
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
func rekey(q *sandbox.Query, recs []arrow.Record, present []bool, double [][]byte, cp *crossPlan, i int) (sandbox.Operator, error) {
	schema, err := cp.fragmentSchema(i, cp.plan.Fragments[i])
	if err != nil {
		return nil, err
	}
	out := make([]arrow.Record, 0, len(recs))
	row, pos := 0, 0
	for _, r := range recs {
		b := array.NewBinaryBuilder(q.Allocator(), arrow.BinaryTypes.Binary)
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
			return nil, sluice.Errorf(sluice.EInternal, "a private-join side has %d columns, the plan %d", len(cols), schema.NumFields())
		}
		out = append(out, array.NewRecord(schema, cols, r.NumRows()))
		keys.Release()
	}
	op, err := q.Scan(schema, out...)
	for _, r := range out {
		r.Release()
	}
	if err != nil {
		return nil, fmt.Errorf("rekey: %w", err)
	}
	return op, nil
}
