package sandbox

import (
	"context"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

type filterOp struct {
	q      *Query
	in     Operator
	pred   *node
	closed bool
}

// Filter keeps the rows of in for which pred is TRUE (not FALSE, not
// NULL). Columns in pred name columns of in's schema.
func (q *Query) Filter(in Operator, pred *planner.Expr) (Operator, error) {
	if in == nil {
		return nil, invalidf("filter needs an input")
	}
	n, err := compileExpr(in.Schema(), pred)
	if err != nil {
		return nil, err
	}
	if n.t != tBool && n.t != tNull {
		return nil, invalidf("a filter needs a condition, got %s", n.t)
	}
	return &filterOp{q: q, in: in, pred: n}, nil
}

func (f *filterOp) Schema() *arrow.Schema { return f.in.Schema() }

// selection evaluates pred over rec and returns the indexes of TRUE rows
// (all is true when every row passed).
func selection(pred *node, rec arrow.Record) (idx []int32, all bool, err error) {
	v, err := newEvalCtx(rec).eval(pred)
	if err != nil {
		return nil, false, err
	}
	n := int(rec.NumRows())
	if v.t != tBool {
		return nil, false, nil
	}
	idx = make([]int32, 0, n)
	for k := 0; k < n; k++ {
		if !v.isNull(k) && v.b[k] {
			idx = append(idx, int32(k))
		}
	}
	return idx, len(idx) == n, nil
}

func (f *filterOp) Next(ctx context.Context) (arrow.Record, error) {
	for {
		if err := f.q.Check(ctx); err != nil {
			return nil, err
		}
		rec, err := pull(ctx, f.in)
		if err != nil {
			return nil, err
		}
		idx, all, err := selection(f.pred, rec)
		if err != nil || all || len(idx) == 0 {
			if all && err == nil {
				return rec, nil
			}
			rec.Release()
			if err != nil {
				return nil, err
			}
			continue
		}
		out, err := takeRecord(f.q.budget, rec.Schema(), rec, idx)
		rec.Release()
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

func (f *filterOp) Close() {
	if !f.closed {
		f.closed = true
		f.in.Close()
	}
}

type projectOp struct {
	q      *Query
	in     Operator
	items  []*node
	schema *arrow.Schema
	closed bool
}

// Project computes items over each batch of in. A bare column reference
// passes the input column through unchanged (with its field metadata);
// computed columns get the Arrow type of their result and "sluice.type"
// metadata. Aliases must be unique.
func (q *Query) Project(in Operator, items []planner.SelectItem) (Operator, error) {
	if in == nil {
		return nil, invalidf("projection needs an input")
	}
	if len(items) == 0 {
		return nil, invalidf("projection needs at least one column")
	}
	sc := in.Schema()
	p := &projectOp{q: q, in: in}
	fields := make([]arrow.Field, len(items))
	seen := map[string]bool{}
	for i, it := range items {
		n, err := compileExpr(sc, it.Expr)
		if err != nil {
			return nil, err
		}
		name := it.Alias
		if name == "" {
			if n.kind == planner.KindColumn {
				name = sc.Field(n.col).Name
			} else {
				return nil, invalidf("projected column %d has no name", i+1)
			}
		}
		key := strings.ToLower(name)
		if seen[key] {
			return nil, invalidf("the projection names column %q twice; give each column its own alias", name)
		}
		seen[key] = true
		if n.kind == planner.KindColumn {
			f := sc.Field(n.col)
			f.Name = name
			fields[i] = f
		} else {
			fields[i] = fieldFor(name, n.t)
		}
		p.items = append(p.items, n)
	}
	p.schema = arrow.NewSchema(fields, nil)
	return p, nil
}

func (p *projectOp) Schema() *arrow.Schema { return p.schema }

func (p *projectOp) Next(ctx context.Context) (arrow.Record, error) {
	if err := p.q.Check(ctx); err != nil {
		return nil, err
	}
	rec, err := pull(ctx, p.in)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	ec := newEvalCtx(rec)
	cols := make([]arrow.Array, len(p.items))
	defer releaseAll(cols)
	for i, n := range p.items {
		if n.kind == planner.KindColumn {
			c := rec.Column(n.col)
			c.Retain()
			cols[i] = c
			continue
		}
		v, err := ec.eval(n)
		if err != nil {
			return nil, err
		}
		a, err := toArrow(p.q.budget, v)
		if err != nil {
			return nil, err
		}
		cols[i] = a
	}
	if err := p.q.budget.Err(); err != nil {
		return nil, err
	}
	return array.NewRecord(p.schema, cols, rec.NumRows()), nil
}

func (p *projectOp) Close() {
	if !p.closed {
		p.closed = true
		p.in.Close()
	}
}

var _ = sluice.EInvalid
