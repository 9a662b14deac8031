//go:build duckdb_arrow

package engine

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
)

// pageRows bounds the rows of one page of a result: what duckdb-go
// materialises outside DuckDB's memory limit at a time.
const pageRows = 1 << 16

// resultReader streams a query's result table page by page. Every page is
// a small query over a rowid range of the table (rowids of a table created
// by CREATE TABLE AS are 0..n-1 in insertion order, and the scan filters
// on them without reading the rest of the table). All of its state is
// guarded by the session's mutex, since every step uses the connection.
type resultReader struct {
	s       *Session
	ctx     context.Context // the statement's context, also for the pages
	done    func()          // ends ctx
	table   string
	schema  *arrow.Schema
	renamed bool              // schema has other names than the pages
	cur     arrow.RecordBatch // the current batch under schema, if renamed

	refs     int64
	released bool
	eof      bool // every page was read
	err      error

	total int64 // rows in the table
	read  int64 // rows handed out so far
	next  int64 // first rowid of the next page
	page  array.RecordReader
}

var _ array.RecordReader = (*resultReader)(nil)

// nextPageLocked starts the next page.
func (r *resultReader) nextPageLocked() error {
	if r.page != nil {
		r.page.Release()
		r.page = nil
	}
	if err := r.s.setOrderLocked(r.ctx, true); err != nil {
		return err
	}
	lo, hi := r.next, r.next+pageRows
	page, err := r.s.arrow.QueryContext(r.ctx, "SELECT * FROM "+quoteIdent(r.table)+" WHERE rowid >= $1 AND rowid < $2", lo, hi)
	if err != nil {
		return r.s.classify(r.ctx, err)
	}
	r.page, r.next = page, hi
	return nil
}

func (r *resultReader) Schema() *arrow.Schema { return r.schema }

// Next advances to the next batch, fetching the next page when the current
// one is exhausted. After false, Err tells an error from the end.
func (r *resultReader) Next() bool {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.released || r.eof || r.err != nil {
		return false
	}
	r.releaseCur()
	for {
		if r.s.closed {
			r.err = r.s.closedErr()
			return false
		}
		if r.page != nil {
			if r.page.Next() {
				rec := r.page.RecordBatch()
				r.read += rec.NumRows()
				if r.renamed {
					r.releaseCur()
					r.cur = array.NewRecordBatch(r.schema, rec.Columns(), rec.NumRows())
				}
				return true
			}
			if err := r.page.Err(); err != nil {
				r.err = r.s.classify(r.ctx, err)
				return false
			}
			if r.next >= r.total {
				r.finishLocked()
				return false
			}
		}
		if err := r.nextPageLocked(); err != nil {
			r.err = err
			return false
		}
	}
}

// finishLocked checks that every row was read and drops the table early.
func (r *resultReader) finishLocked() {
	r.eof = true
	if r.read != r.total {
		r.err = sluice.Errorf(sluice.EInternal, "sandbox: read %d of the %d rows of a result", r.read, r.total)
	}
	r.page.Release()
	r.page = nil
	r.dropLocked()
}

func (r *resultReader) dropLocked() {
	if r.table == "" || r.s.closed {
		return
	}
	// Frees the result's memory (or spill) before the session closes;
	// failure only delays that to Close.
	_, _ = r.s.dc.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+quoteIdent(r.table), nil)
	r.table = ""
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
	if r.released || r.err != nil || r.page == nil {
		return nil
	}
	if r.renamed {
		return r.cur
	}
	return r.page.RecordBatch()
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
	r.releaseCur()
	if r.page != nil {
		r.page.Release()
		r.page = nil
	}
	r.dropLocked()
	r.done()
	delete(r.s.readers, r)
}
