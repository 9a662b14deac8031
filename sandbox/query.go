package sandbox

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// Defaults for Limits fields left zero.
const (
	DefaultBatchSize = 4096
	DefaultMemory    = 256 * MiB
	// MaxBatchSize bounds Limits.BatchSize.
	MaxBatchSize = 1 << 20
)

// checkEvery is how many rows a loop processes between deadline and
// budget checks.
const checkEvery = 4096

// Limits are the per-query limits of the sandbox.
type Limits struct {
	// Memory is the memory budget in bytes (DefaultMemory when 0; negative
	// means unlimited).
	Memory int64
	// Time is the wall-clock limit from NewQuery (none when 0; a deadline
	// on the context passed to Next applies as well).
	Time time.Duration
	// BatchSize bounds the rows of every output batch (DefaultBatchSize
	// when 0).
	BatchSize int
}

// Query carries the limits of one query: every operator built from it
// allocates through its Budget and checks its deadline.
type Query struct {
	budget    *Budget
	timeLimit time.Duration
	deadline  time.Time
	batch     int
}

// NewQuery starts the clock of a query with the given limits over mem (nil
// means memory.DefaultAllocator).
func NewQuery(lim Limits, mem memory.Allocator) *Query {
	m := lim.Memory
	if m == 0 {
		m = DefaultMemory
	}
	bs := lim.BatchSize
	if bs <= 0 {
		bs = DefaultBatchSize
	}
	if bs > MaxBatchSize {
		bs = MaxBatchSize
	}
	q := &Query{budget: NewBudget(m, mem), timeLimit: lim.Time, batch: bs}
	if lim.Time > 0 {
		q.deadline = time.Now().Add(lim.Time)
	}
	return q
}

// Budget returns the query's memory budget.
func (q *Query) Budget() *Budget { return q.budget }

// Allocator returns the allocator to build batches for this query with
// (the budget). Give it to the Flight/IPC reader of agent streams so their
// batches count against the budget.
func (q *Query) Allocator() memory.Allocator { return q.budget }

// BatchSize returns the bound on output batch rows.
func (q *Query) BatchSize() int { return q.batch }

// Check returns an error when the query has run out of time or memory or
// ctx is done; operators call it between batches and inside long loops.
func (q *Query) Check(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return q.timeErr(err)
		}
		return &sluice.Error{Code: sluice.EUnavailable, Message: "the query was cancelled", Err: err}
	}
	if !q.deadline.IsZero() && time.Now().After(q.deadline) {
		return q.timeErr(context.DeadlineExceeded)
	}
	return q.budget.Err()
}

func (q *Query) timeErr(cause error) error {
	msg := "the query ran past its deadline in the sandbox (time limit); add filters or aggregate at the source"
	if q.timeLimit > 0 {
		msg = "the query ran longer than " + q.timeLimit.String() + " in the sandbox (time limit); add filters or aggregate at the source"
	}
	return &sluice.Error{Code: sluice.EResource, Message: msg, Err: cause}
}

// Operator is a pull-based iterator of record batches. Next returns the
// next batch, owned by the caller (who must Release it), or io.EOF at the
// end. Batches have at most the query's BatchSize rows. Close releases
// everything the operator holds, closes its inputs and is idempotent; it
// must be called even after an error.
type Operator interface {
	Schema() *arrow.Schema
	Next(ctx context.Context) (arrow.Record, error)
	Close()
}

// pull takes the next batch of in, checking that it has the schema in
// declared (an operator built on a mismatched batch would fail inside
// Arrow).
func pull(ctx context.Context, in Operator) (arrow.Record, error) {
	rec, err := in.Next(ctx)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: an input returned no batch and no error")
	}
	if !rec.Schema().Equal(in.Schema()) {
		rec.Release()
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: an input returned a batch whose schema differs from the one it declared")
	}
	return rec, nil
}

func invalidf(format string, args ...any) error {
	return sluice.Errorf(sluice.EInvalid, format, args...)
}

// splitter hands out slices of at most n rows of one record.
type splitter struct {
	rec arrow.Record
	off int64
}

func (s *splitter) next(n int) arrow.Record {
	if s.rec == nil {
		return nil
	}
	rows := s.rec.NumRows()
	if s.off == 0 && rows <= int64(n) {
		r := s.rec
		s.rec = nil
		return r
	}
	end := min(s.off+int64(n), rows)
	out := s.rec.NewSlice(s.off, end)
	s.off = end
	if end >= rows {
		s.rec.Release()
		s.rec = nil
		s.off = 0
	}
	return out
}

func (s *splitter) release() {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
}

// scanOp serves records given up front.
type scanOp struct {
	q      *Query
	schema *arrow.Schema
	recs   []arrow.Record
	cur    splitter
	closed bool
}

// Scan returns an operator serving recs (each retained; Close releases what
// was not served), split into batches of at most BatchSize rows. Every
// record must have schema exactly.
func (q *Query) Scan(schema *arrow.Schema, recs ...arrow.Record) (Operator, error) {
	if schema == nil {
		return nil, invalidf("scan needs a schema")
	}
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	for i, r := range recs {
		if r == nil || !r.Schema().Equal(schema) {
			return nil, invalidf("batch %d does not have the scan's schema", i+1)
		}
	}
	s := &scanOp{q: q, schema: schema, recs: make([]arrow.Record, len(recs))}
	for i, r := range recs {
		r.Retain()
		s.recs[i] = r
	}
	return s, nil
}

func (s *scanOp) Schema() *arrow.Schema { return s.schema }

func (s *scanOp) Next(ctx context.Context) (arrow.Record, error) {
	if err := s.q.Check(ctx); err != nil {
		return nil, err
	}
	for {
		if r := s.cur.next(s.q.batch); r != nil {
			if r.NumRows() == 0 {
				r.Release()
				continue
			}
			return r, nil
		}
		if len(s.recs) == 0 {
			return nil, io.EOF
		}
		s.cur = splitter{rec: s.recs[0]}
		s.recs[0] = nil
		s.recs = s.recs[1:]
	}
}

func (s *scanOp) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.cur.release()
	for _, r := range s.recs {
		if r != nil {
			r.Release()
		}
	}
	s.recs = nil
}

// readerOp wraps an array.RecordReader (an agent's Flight stream).
type readerOp struct {
	q      *Query
	rdr    array.RecordReader
	schema *arrow.Schema
	cur    splitter
	done   bool
	closed bool
}

// FromReader returns an operator over rdr, which it takes over (Close
// releases it). Batches are split to at most BatchSize rows. A reader
// blocked inside its own Next is not interrupted by the context; give the
// stream the same context.
func (q *Query) FromReader(rdr array.RecordReader) (Operator, error) {
	if rdr == nil {
		return nil, invalidf("no record reader")
	}
	sc := rdr.Schema()
	if sc == nil {
		rdr.Release()
		return nil, invalidf("record reader has no schema")
	}
	if err := checkSchema(sc); err != nil {
		rdr.Release()
		return nil, err
	}
	return &readerOp{q: q, rdr: rdr, schema: sc}, nil
}

func (r *readerOp) Schema() *arrow.Schema { return r.schema }

func (r *readerOp) Next(ctx context.Context) (arrow.Record, error) {
	if r.closed {
		return nil, io.EOF
	}
	for {
		if err := r.q.Check(ctx); err != nil {
			return nil, err
		}
		if rec := r.cur.next(r.q.batch); rec != nil {
			if rec.NumRows() == 0 {
				rec.Release()
				continue
			}
			return rec, nil
		}
		if r.done {
			return nil, io.EOF
		}
		if !r.rdr.Next() {
			r.done = true
			if err := r.rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
				var se *sluice.Error
				if errors.As(err, &se) {
					return nil, err
				}
				return nil, &sluice.Error{Code: sluice.EUnavailable, Message: "a source stream failed: " + err.Error(), Err: err}
			}
			return nil, io.EOF
		}
		rec := r.rdr.Record()
		if rec == nil {
			continue
		}
		if !rec.Schema().Equal(r.schema) {
			r.done = true
			return nil, invalidf("a source stream changed its schema mid-stream")
		}
		rec.Retain()
		r.cur = splitter{rec: rec}
	}
}

func (r *readerOp) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.cur.release()
	r.rdr.Release()
}

// Collect drains op into memory and closes it. The caller releases the
// records. It is meant for tests and small results.
func Collect(ctx context.Context, op Operator) ([]arrow.Record, error) {
	defer op.Close()
	var out []arrow.Record
	for {
		r, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			for _, x := range out {
				x.Release()
			}
			return nil, err
		}
		out = append(out, r)
	}
}
