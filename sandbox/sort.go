package sandbox

import (
	"context"
	"io"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
)

// SortKey is one ORDER BY key. NULLs sort last unless NullsFirst, in either
// direction.
type SortKey struct {
	Column     string
	Desc       bool
	NullsFirst bool
}

type sortOp struct {
	q      *Query
	in     Operator
	keys   []SortKey
	kcols  []int
	res    reservation
	cols   []arrow.Array
	perm   []int32
	off    int
	done   bool
	closed bool
}

// Sort materialises in under the budget and emits it ordered by keys. The
// sort is stable: rows with equal keys keep their input order.
func (q *Query) Sort(in Operator, keys []SortKey) (Operator, error) {
	if in == nil {
		return nil, invalidf("sort needs an input")
	}
	if len(keys) == 0 {
		return nil, invalidf("sort needs at least one key")
	}
	s := &sortOp{q: q, in: in, keys: keys, res: reservation{b: q.budget}}
	for _, k := range keys {
		i, err := resolveColumn(in.Schema(), k.Column)
		if err != nil {
			return nil, err
		}
		s.kcols = append(s.kcols, i)
	}
	return s, nil
}

func (s *sortOp) Schema() *arrow.Schema { return s.in.Schema() }

func (s *sortOp) run(ctx context.Context) error {
	cols, rows, err := materializeAll(ctx, s.q, s.in)
	if err != nil {
		return err
	}
	s.cols = cols
	n := int(rows)
	// The permutation plus the key vectors (at most a string header each).
	if err := s.res.grow(int64(n) * int64(4+16*len(s.kcols))); err != nil {
		return err
	}
	vs := make([]*vec, len(s.kcols))
	for i, c := range s.kcols {
		v, err := loadVec(s.cols[c])
		if err != nil {
			return err
		}
		vs[i] = v
	}
	s.perm = make([]int32, n)
	for i := range s.perm {
		s.perm[i] = int32(i)
	}
	var calls int
	var stop error
	sort.SliceStable(s.perm, func(x, y int) bool {
		if stop != nil {
			return false
		}
		calls++
		if calls%(checkEvery*8) == 0 {
			if err := s.q.Check(ctx); err != nil {
				stop = err
				return false
			}
		}
		a, b := int(s.perm[x]), int(s.perm[y])
		for i, v := range vs {
			an, bn := v.isNull(a), v.isNull(b)
			if an || bn {
				if an && bn {
					continue
				}
				// a NULL comes first exactly when NullsFirst.
				return an == s.keys[i].NullsFirst
			}
			c := cmpAt(v, a, v, b)
			if c == 0 {
				continue
			}
			if s.keys[i].Desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
	return stop
}

func (s *sortOp) Next(ctx context.Context) (arrow.Record, error) {
	if s.closed {
		return nil, io.EOF
	}
	if err := s.q.Check(ctx); err != nil {
		return nil, err
	}
	if !s.done {
		s.done = true
		err := s.run(ctx)
		s.in.Close()
		if err != nil {
			return nil, err
		}
	}
	if s.off >= len(s.perm) {
		return nil, io.EOF
	}
	end := min(s.off+s.q.batch, len(s.perm))
	idx := s.perm[s.off:end]
	s.off = end
	cols := make([]arrow.Array, len(s.cols))
	defer releaseAll(cols)
	for i, c := range s.cols {
		a, err := takeArray(s.q.budget, c, idx)
		if err != nil {
			return nil, err
		}
		cols[i] = a
	}
	return array.NewRecord(s.Schema(), cols, int64(len(idx))), nil
}

func (s *sortOp) Close() {
	if s.closed {
		return
	}
	s.closed = true
	releaseAll(s.cols)
	s.cols, s.perm = nil, nil
	s.res.releaseAll()
	s.in.Close()
}

type limitOp struct {
	q      *Query
	in     Operator
	limit  int64 // < 0: none
	skip   int64
	served int64
	closed bool
}

// Limit skips offset rows of in, then passes at most n rows (n < 0: no
// limit). It stops pulling from in as soon as n rows have been served.
func (q *Query) Limit(in Operator, n, offset int64) (Operator, error) {
	if in == nil {
		return nil, invalidf("limit needs an input")
	}
	if offset < 0 {
		return nil, invalidf("OFFSET must not be negative")
	}
	return &limitOp{q: q, in: in, limit: n, skip: offset}, nil
}

func (l *limitOp) Schema() *arrow.Schema { return l.in.Schema() }

func (l *limitOp) Next(ctx context.Context) (arrow.Record, error) {
	for {
		if l.closed || (l.limit >= 0 && l.served >= l.limit) {
			return nil, io.EOF
		}
		if err := l.q.Check(ctx); err != nil {
			return nil, err
		}
		rec, err := pull(ctx, l.in)
		if err != nil {
			return nil, err
		}
		rows := rec.NumRows()
		start := int64(0)
		if l.skip > 0 {
			start = min(l.skip, rows)
			l.skip -= start
		}
		end := rows
		if l.limit >= 0 {
			end = min(rows, start+l.limit-l.served)
		}
		if start >= end {
			rec.Release()
			continue
		}
		l.served += end - start
		if l.limit >= 0 && l.served >= l.limit {
			// Satisfied: let the input (an agent stream, a join's build
			// side) go now rather than when the whole plan closes.
			l.in.Close()
		}
		if start == 0 && end == rows {
			return rec, nil
		}
		out := rec.NewSlice(start, end)
		rec.Release()
		return out, nil
	}
}

func (l *limitOp) Close() {
	if !l.closed {
		l.closed = true
		l.in.Close()
	}
}

type distinctOp struct {
	q      *Query
	in     Operator
	types  []vtype
	cols   []int
	seen   map[string]struct{}
	res    reservation
	closed bool
}

// Distinct passes the first occurrence of every distinct row of in (NULLs
// equal to each other), streaming.
func (q *Query) Distinct(in Operator) (Operator, error) {
	if in == nil {
		return nil, invalidf("distinct needs an input")
	}
	d := &distinctOp{q: q, in: in, seen: map[string]struct{}{}, res: reservation{b: q.budget}}
	for i, f := range in.Schema().Fields() {
		t, ok := typeOfArrow(f.Type)
		if !ok {
			return nil, sluice.Errorf(sluice.ENotSupported, "column %q has an unsupported type", f.Name)
		}
		d.types = append(d.types, t)
		d.cols = append(d.cols, i)
	}
	return d, nil
}

func (d *distinctOp) Schema() *arrow.Schema { return d.in.Schema() }

func (d *distinctOp) Next(ctx context.Context) (arrow.Record, error) {
	for {
		if d.closed {
			return nil, io.EOF
		}
		if err := d.q.Check(ctx); err != nil {
			return nil, err
		}
		rec, err := pull(ctx, d.in)
		if err != nil {
			return nil, err
		}
		keys, err := loadKeys(rec.Columns(), d.cols, d.types)
		if err != nil {
			rec.Release()
			return nil, err
		}
		n := int(rec.NumRows())
		idx := make([]int32, 0, n)
		var buf []byte
		for r := 0; r < n; r++ {
			buf = buf[:0]
			for _, v := range keys {
				buf = appendKey(buf, v, r)
			}
			if _, ok := d.seen[string(buf)]; ok {
				continue
			}
			if err := d.res.grow(int64(distinctEntry + len(buf))); err != nil {
				rec.Release()
				return nil, err
			}
			d.seen[string(buf)] = struct{}{}
			idx = append(idx, int32(r))
		}
		if len(idx) == 0 {
			rec.Release()
			continue
		}
		if len(idx) == n {
			return rec, nil
		}
		out, err := takeRecord(d.q.budget, rec.Schema(), rec, idx)
		rec.Release()
		return out, err
	}
}

func (d *distinctOp) Close() {
	if !d.closed {
		d.closed = true
		d.seen = nil
		d.res.releaseAll()
		d.in.Close()
	}
}

var _ = strings.ToLower
