//go:build duckdb_arrow

package engine

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2/arrowmapping"
	"github.com/duckdb/duckdb-go/v2/mapping"

	sluice "github.com/sluice-gov/sluice"
)

// resultReader streams a query's result from DuckDB's streaming result,
// one chunk (at most a vector, 2048 rows) at a time, converted to Arrow.
// DuckDB runs the query as the chunks are fetched and buffers only a
// bounded part of the result ahead of the reader. All of its state is
// guarded by the session's mutex, since every step uses the connection.
type resultReader struct {
	s      *Session
	ctx    context.Context // the statement's context, also for the fetches
	done   func()          // ends ctx
	stmt   mapping.PreparedStatement
	res    mapping.Result
	open   bool // res holds a result to destroy
	opts   arrowmapping.ArrowOptions
	schema *arrow.Schema
	inputs []*scanInput // the streams the statement reads

	cur        arrow.RecordBatch
	prefetched bool // cur is the first batch, fetched by Query, not handed out yet

	refs     int64
	released bool
	eof      bool // every chunk was read
	err      error
}

var _ array.RecordReader = (*resultReader)(nil)

// resultSchema is the Arrow schema of res's columns: their names (the
// query's own, duplicates included) and DuckDB's Arrow types.
func resultSchema(res *mapping.Result, opts arrowmapping.ArrowOptions) (*arrow.Schema, error) {
	n := mapping.ColumnCount(res)
	names := make([]string, n)
	types := make([]mapping.LogicalType, n)
	for i := range n {
		names[i] = mapping.ColumnName(res, i)
		types[i] = mapping.ColumnLogicalType(res, i)
	}
	defer func() {
		for i := range types {
			mapping.DestroyLogicalType(&types[i])
		}
	}()
	schema, ed := arrowmapping.NewArrowSchema(opts, types, names)
	if msg, failed := errorData(ed); failed {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: the result's Arrow schema: %s", firstLine(msg))
	}
	return schema, nil
}

// initLocked reads the result's Arrow options and schema.
func (r *resultReader) initLocked() error {
	r.opts = arrowmapping.ResultGetArrowOptions(&r.res)
	schema, err := resultSchema(&r.res, r.opts)
	if err != nil {
		r.s.failed = true
		return err
	}
	r.schema = schema
	return nil
}

// fetchLocked fetches the next non-empty chunk into cur: false at the end
// of the result (then closed) or on an error (then err is set).
func (r *resultReader) fetchLocked() bool {
	for {
		if err := r.ctx.Err(); err != nil {
			r.err = r.s.statementErr(r.ctx, err, r.inputs)
			r.closeLocked()
			return false
		}
		stop := r.s.interruptOn(r.ctx)
		chunk := mapping.FetchChunk(r.res)
		stop()
		if chunk.Ptr == nil {
			switch {
			case mapping.ResultError(&r.res) != "":
				r.err = r.s.statementErr(r.ctx, resultError(&r.res), r.inputs)
			case r.ctx.Err() != nil:
				// Interrupted: DuckDB may end the stream without an error.
				r.err = r.s.statementErr(r.ctx, r.ctx.Err(), r.inputs)
			default:
				r.eof = true
			}
			r.closeLocked()
			return false
		}
		n := mapping.DataChunkGetSize(chunk)
		if n == 0 {
			mapping.DestroyDataChunk(&chunk)
			continue
		}
		rec, ed := arrowmapping.DataChunkToArrowArray(r.opts, r.schema, chunk)
		mapping.DestroyDataChunk(&chunk)
		if msg, failed := errorData(ed); failed {
			r.s.failed = true
			r.err = sluice.Errorf(sluice.EInternal, "sandbox: converting a result to Arrow: %s", firstLine(msg))
			r.closeLocked()
			return false
		}
		r.cur = rec
		return true
	}
}

// closeLocked ends the statement: destroys its result (which stops it if
// it is still running) and prepared statement, and ends its reading of
// the inputs. The session can run statements again.
func (r *resultReader) closeLocked() {
	if r.open && !r.eof && r.err == nil {
		// Stopped before its end: an interrupted statement, after which
		// the database is not used again.
		r.s.failed = true
	}
	if r.open {
		mapping.DestroyResult(&r.res)
		r.open = false
		mapping.DestroyPrepare(&r.stmt)
		arrowmapping.DestroyArrowOptions(&r.opts)
		for _, si := range r.inputs {
			si.endRead()
		}
		r.inputs = nil
		r.done()
	}
	if r.s.result == r {
		r.s.result = nil
	}
}

func (r *resultReader) Schema() *arrow.Schema { return r.schema }

// Next advances to the next batch. After false, Err tells an error from
// the end.
func (r *resultReader) Next() bool {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.released || r.eof || r.err != nil {
		return false
	}
	if r.prefetched {
		r.prefetched = false
		return r.cur != nil
	}
	r.releaseCur()
	if r.s.closed {
		r.err = r.s.closedErr()
		return false
	}
	if !r.open {
		return false
	}
	return r.fetchLocked()
}

func (r *resultReader) releaseCur() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

func (r *resultReader) RecordBatch() arrow.RecordBatch {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.released || r.err != nil || r.prefetched {
		return nil
	}
	return r.cur
}

// Record is the deprecated name of RecordBatch.
func (r *resultReader) Record() arrow.RecordBatch { return r.RecordBatch() }

func (r *resultReader) Err() error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.err
}

func (r *resultReader) Retain() {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if !r.released {
		r.refs++
	}
}

func (r *resultReader) Release() {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.released {
		return
	}
	r.refs--
	if r.refs <= 0 {
		r.releaseLocked()
	}
}

// releaseLocked frees everything the reader holds, once.
func (r *resultReader) releaseLocked() {
	if r.released {
		return
	}
	r.released = true
	r.prefetched = false
	r.releaseCur()
	r.closeLocked()
}
