package sandbox

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// JoinKind is the kind of a hash join.
type JoinKind int

const (
	// InnerJoin emits matching pairs only.
	InnerJoin JoinKind = iota
	// LeftJoin also emits every left row without a match, once, with
	// NULL right columns.
	LeftJoin
)

// DefaultRightPrefix is prepended to right column names that clash with a
// left column name when JoinOptions.RightPrefix is empty.
const DefaultRightPrefix = "right_"

// JoinOptions tune HashJoin.
type JoinOptions struct {
	// RightPrefix renames right columns whose names clash with a left
	// column (case-insensitively); DefaultRightPrefix when empty.
	RightPrefix string
	// Residual, when set, is a condition over the joined row (column names
	// of the output schema) that a pair must satisfy to match. For a LEFT
	// join, a left row whose every pair fails it is emitted once with NULL
	// right columns.
	Residual *planner.Expr
	// OneToOne fails the join (ENotSupported) as soon as a row meets a
	// second row: a build row matched twice, or a probe row whose key has
	// several build rows. A differential-privacy release relies on it:
	// its noise covers one row's contribution, and the catalog's
	// declaration that the keys are unique is checked here on the data.
	OneToOne bool
}

// per-row bytes reserved for the build side's hash table: the chain link
// plus a generous share of the Go map (entry, control byte, growth slack).
const (
	joinIntEntryBytes = 4 + 48
	joinStrEntryBytes = 4 + 64
)

type joinOp struct {
	q           *Query
	left, right Operator
	kind        JoinKind
	schema      *arrow.Schema
	lkeys       []int
	rkeys       []int
	ktypes      []vtype
	intKey      bool
	residual    *node
	res         reservation
	oneToOne    bool
	used        []bool // OneToOne: build rows already matched

	built  bool
	rcols  []arrow.Array // the build side, one array per column
	headI  map[int64]int32
	headS  map[string]int32
	next   []int32 // chain: next build row with the same key, -1 at the end
	closed bool
	done   bool

	// probe state
	cur     arrow.Record
	curHead []int32 // first build row per left row, -1 for none
	row     int     // current left row
	pos     int32   // next build row in row's chain (-1 when row is finished)
	matched []bool
	unmatch []int32 // LEFT: unmatched rows still to emit
	phase   int     // 0 pairs, 1 unmatched, 2 need next batch
	lidx    []int32
	ridx    []int32
}

// HashJoin joins left and right on leftKeys[i] = rightKeys[i]. The right
// input is the build side, materialised under the budget; left streams.
// NULL keys never match. Keys of different but compatible types are
// compared at their common type (integer with decimal, date with
// timestamp, text with binary). The output has left's columns then
// right's.
func (q *Query) HashJoin(left, right Operator, leftKeys, rightKeys []string, kind JoinKind, opts JoinOptions) (Operator, error) {
	if left == nil || right == nil {
		return nil, invalidf("a join needs two inputs")
	}
	if len(leftKeys) == 0 || len(leftKeys) != len(rightKeys) {
		return nil, invalidf("a join needs the same number (at least one) of left and right keys")
	}
	if kind != InnerJoin && kind != LeftJoin {
		return nil, sluice.Errorf(sluice.ENotSupported, "join kind %d is not supported; use inner or left", int(kind))
	}
	ls, rs := left.Schema(), right.Schema()
	j := &joinOp{q: q, left: left, right: right, kind: kind, res: reservation{b: q.budget}, oneToOne: opts.OneToOne}
	for i := range leftKeys {
		li, err := resolveColumn(ls, leftKeys[i])
		if err != nil {
			return nil, err
		}
		ri, err := resolveColumn(rs, rightKeys[i])
		if err != nil {
			return nil, err
		}
		lt, _ := typeOfArrow(ls.Field(li).Type)
		rt, _ := typeOfArrow(rs.Field(ri).Type)
		kt, ok := unifyTypes(lt, rt)
		if !ok || kt == tNull {
			return nil, invalidf("cannot join %s (%s) with %s (%s); join keys must be of the same kind", leftKeys[i], lt, rightKeys[i], rt)
		}
		j.lkeys = append(j.lkeys, li)
		j.rkeys = append(j.rkeys, ri)
		j.ktypes = append(j.ktypes, kt)
	}
	j.intKey = len(j.ktypes) == 1 && j.ktypes[0].intLike()
	prefix := opts.RightPrefix
	if prefix == "" {
		prefix = DefaultRightPrefix
	}
	fields := append([]arrow.Field{}, ls.Fields()...)
	taken := map[string]bool{}
	for _, f := range ls.Fields() {
		taken[strings.ToLower(f.Name)] = true
	}
	for _, f := range rs.Fields() {
		if taken[strings.ToLower(f.Name)] {
			f.Name = prefix + f.Name
			if taken[strings.ToLower(f.Name)] {
				return nil, invalidf("column %q appears on both sides of the join even after renaming; choose another prefix", f.Name)
			}
		}
		taken[strings.ToLower(f.Name)] = true
		f.Nullable = f.Nullable || kind == LeftJoin
		fields = append(fields, f)
	}
	j.schema = arrow.NewSchema(fields, nil)
	if opts.Residual != nil {
		n, err := compileExpr(j.schema, opts.Residual)
		if err != nil {
			return nil, err
		}
		if n.t != tBool && n.t != tNull {
			return nil, invalidf("a join condition must be a condition, got %s", n.t)
		}
		j.residual = n
	}
	return j, nil
}

func (j *joinOp) Schema() *arrow.Schema { return j.schema }

// errNotOneToOne names no key: the keys are protected values.
var errNotOneToOne = sluice.Errorf(sluice.ENotSupported,
	"a row met more than one row in a join the catalog declares one-to-one (its keys unique), so the result cannot be released under a differential-privacy budget; the declaration does not match the data: ask the provider's data admin to correct the catalog")

// loadKeys loads the key columns of cols cast to the key types.
func loadKeys(cols []arrow.Array, idx []int, types []vtype) ([]*vec, error) {
	out := make([]*vec, len(idx))
	for i, c := range idx {
		v, err := loadVec(cols[c])
		if err != nil {
			return nil, err
		}
		if v, err = castVec(v, types[i]); err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (j *joinOp) build(ctx context.Context) error {
	cols, rows, err := materializeAll(ctx, j.q, j.right)
	if err != nil {
		return err
	}
	j.rcols = cols
	n := int(rows)
	per := int64(joinIntEntryBytes)
	if !j.intKey {
		per = joinStrEntryBytes
	}
	if j.oneToOne {
		per++ // the used flag
	}
	if err := j.res.grow(int64(n) * per); err != nil {
		return err
	}
	if j.oneToOne {
		j.used = make([]bool, n)
	}
	keys, err := loadKeys(j.rcols, j.rkeys, j.ktypes)
	if err != nil {
		return err
	}
	j.next = make([]int32, n)
	if j.intKey {
		j.headI = make(map[int64]int32, n)
	} else {
		j.headS = make(map[string]int32, n)
	}
	var buf []byte
	// Insert in reverse so each chain lists build rows in input order.
	for r := n - 1; r >= 0; r-- {
		if r%checkEvery == 0 {
			if err := j.q.Check(ctx); err != nil {
				return err
			}
		}
		j.next[r] = -1
		if anyNull(keys, r) {
			continue
		}
		if j.intKey {
			k := keys[0].i[r]
			if h, ok := j.headI[k]; ok {
				j.next[r] = h
			}
			j.headI[k] = int32(r)
			continue
		}
		buf = buf[:0]
		for _, v := range keys {
			buf = appendKey(buf, v, r)
		}
		if h, ok := j.headS[string(buf)]; ok {
			j.next[r] = h
		} else if err := j.res.grow(int64(len(buf))); err != nil {
			return err
		}
		j.headS[string(buf)] = int32(r)
	}
	return nil
}

// startBatch computes the first build match of every row of rec.
func (j *joinOp) startBatch(rec arrow.Record) error {
	n := int(rec.NumRows())
	keys, err := loadKeys(rec.Columns(), j.lkeys, j.ktypes)
	if err != nil {
		return err
	}
	if cap(j.curHead) < n {
		j.curHead = make([]int32, n)
		j.matched = make([]bool, n)
	}
	j.curHead, j.matched = j.curHead[:n], j.matched[:n]
	var buf []byte
	for r := 0; r < n; r++ {
		j.matched[r] = false
		j.curHead[r] = -1
		if anyNull(keys, r) {
			continue
		}
		if j.intKey {
			if h, ok := j.headI[keys[0].i[r]]; ok {
				j.curHead[r] = h
			}
		} else {
			buf = buf[:0]
			for _, v := range keys {
				buf = appendKey(buf, v, r)
			}
			if h, ok := j.headS[string(buf)]; ok {
				j.curHead[r] = h
			}
		}
		if h := j.curHead[r]; j.oneToOne && h >= 0 {
			if j.next[h] >= 0 || j.used[h] {
				return errNotOneToOne
			}
			j.used[h] = true
		}
	}
	j.cur = rec
	j.row = 0
	j.pos = -2 // not started
	j.phase = 0
	j.unmatch = j.unmatch[:0]
	return nil
}

// fillPairs collects up to BatchSize (left, right) pairs of the current
// batch.
func (j *joinOp) fillPairs() {
	j.lidx, j.ridx = j.lidx[:0], j.ridx[:0]
	limit := j.q.batch
	n := len(j.curHead)
	for j.row < n && len(j.lidx) < limit {
		if j.pos == -2 {
			j.pos = j.curHead[j.row]
		}
		for j.pos >= 0 && len(j.lidx) < limit {
			j.lidx = append(j.lidx, int32(j.row))
			j.ridx = append(j.ridx, j.pos)
			j.pos = j.next[j.pos]
		}
		if j.pos < 0 {
			j.row++
			j.pos = -2
		}
	}
}

func (j *joinOp) emit(lidx, ridx []int32) (arrow.Record, error) {
	mem := j.q.budget
	cols := make([]arrow.Array, 0, j.schema.NumFields())
	defer func() { releaseAll(cols) }()
	for _, c := range j.cur.Columns() {
		a, err := takeArray(mem, c, lidx)
		if err != nil {
			return nil, err
		}
		cols = append(cols, a)
	}
	for _, c := range j.rcols {
		var a arrow.Array
		var err error
		if ridx == nil {
			a = nullArray(mem, c.DataType(), len(lidx))
		} else if a, err = takeArray(mem, c, ridx); err != nil {
			return nil, err
		}
		cols = append(cols, a)
	}
	return array.NewRecord(j.schema, cols, int64(len(lidx))), nil
}

func (j *joinOp) Next(ctx context.Context) (arrow.Record, error) {
	if j.closed || j.done {
		return nil, io.EOF
	}
	if !j.built {
		if err := j.build(ctx); err != nil {
			return nil, err
		}
		j.built = true
		j.right.Close()
	}
	for {
		if err := j.q.Check(ctx); err != nil {
			return nil, err
		}
		if j.cur == nil {
			rec, err := pull(ctx, j.left)
			if errors.Is(err, io.EOF) {
				j.done = true
				return nil, io.EOF
			}
			if err != nil {
				return nil, err
			}
			if err := j.startBatch(rec); err != nil {
				rec.Release()
				return nil, err
			}
		}
		switch j.phase {
		case 0:
			j.fillPairs()
			if len(j.lidx) == 0 {
				j.phase = 1
				if j.kind == LeftJoin {
					for r, m := range j.matched {
						if !m {
							j.unmatch = append(j.unmatch, int32(r))
						}
					}
				}
				continue
			}
			out, err := j.emit(j.lidx, j.ridx)
			if err != nil {
				return nil, err
			}
			if j.residual != nil {
				idx, all, err := selection(j.residual, out)
				if err != nil {
					out.Release()
					return nil, err
				}
				for _, k := range idx {
					j.matched[j.lidx[k]] = true
				}
				if !all {
					if len(idx) == 0 {
						out.Release()
						continue
					}
					filtered, err := takeRecord(j.q.budget, j.schema, out, idx)
					out.Release()
					if err != nil {
						return nil, err
					}
					out = filtered
				}
			} else {
				for _, l := range j.lidx {
					j.matched[l] = true
				}
			}
			if err := j.q.budget.Err(); err != nil {
				out.Release()
				return nil, err
			}
			return out, nil
		case 1:
			if len(j.unmatch) == 0 {
				j.cur.Release()
				j.cur = nil
				continue
			}
			k := min(len(j.unmatch), j.q.batch)
			out, err := j.emit(j.unmatch[:k], nil)
			j.unmatch = j.unmatch[k:]
			if err != nil {
				return nil, err
			}
			return out, nil
		}
	}
}

func (j *joinOp) Close() {
	if j.closed {
		return
	}
	j.closed = true
	if j.cur != nil {
		j.cur.Release()
		j.cur = nil
	}
	releaseAll(j.rcols)
	j.rcols = nil
	j.headI, j.headS, j.next = nil, nil, nil
	j.res.releaseAll()
	j.left.Close()
	j.right.Close()
}
