//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
)

// replayBudget bounds the bytes of input batches a session keeps so that
// its queries can read registered inputs more than once (see
// Session.Register): Limits.Memory/replayShare for all its inputs.
type replayBudget struct {
	mu   sync.Mutex
	left int64
}

// replayShare is the share of the memory limit a session may keep of its
// registered inputs in Go memory, to read them again.
const replayShare = 16

func (b *replayBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

func (b *replayBudget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// input is a registered or materialized reader as DuckDB's scans read it.
// A scan reads it from its start: the batches kept by earlier scans, then
// the rest of the reader. Batches are kept as long as they fit in the
// session's replay budget (never for a materialized input); an input whose
// batches did not all fit can be scanned once. It stops pulling from the
// reader once the context of the statement scanning it is done, and keeps
// the reader's error so that the statement reports it rather than
// DuckDB's rendering of it.
type input struct {
	name   string
	budget *replayBudget // nil: keep nothing

	mu        sync.Mutex
	r         array.RecordReader // nil once released
	err       error              // the reader's own error
	eof       bool               // r was read to its end
	kept      []arrow.RecordBatch
	keptBytes int64
	keeping   bool // every batch read from r is in kept
	scans     int  // scans ended
	pos       int  // the current scan's next batch in kept
	ctx       context.Context
	closed    bool
}

func newInput(name string, r array.RecordReader, budget *replayBudget) *input {
	return &input{name: name, r: r, budget: budget, keeping: budget != nil}
}

// canScan tells whether a new scan can read the input from its start.
func (in *input) canScan() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return !in.closed && in.err == nil && (in.scans == 0 || in.keeping)
}

// startScan starts a scan from the input's start, for a statement running
// under ctx.
func (in *input) startScan(ctx context.Context) {
	in.mu.Lock()
	in.pos = 0
	in.ctx = ctx
	in.mu.Unlock()
}

// next returns the current scan's next batch, valid until the next call:
// nil at the end. The error is the reader's (also for every later call)
// or the statement's context's.
func (in *input) next() (arrow.RecordBatch, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pos < len(in.kept) {
		in.pos++
		return in.kept[in.pos-1], nil
	}
	if in.err != nil {
		return nil, in.err
	}
	if in.closed || in.eof || in.r == nil {
		return nil, nil
	}
	if in.ctx != nil && in.ctx.Err() != nil {
		return nil, context.Cause(in.ctx)
	}
	if !in.r.Next() {
		if err := in.r.Err(); err != nil {
			var se *sluice.Error
			if errors.As(err, &se) {
				in.err = err
			} else {
				in.err = &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("input %q failed while the sandbox read it", in.name), Err: err}
			}
			in.dropKeptLocked()
			return nil, in.err
		}
		in.eof = true
		if in.keeping {
			in.releaseReaderLocked() // every batch is kept
		}
		return nil, nil
	}
	rec := in.r.RecordBatch()
	if in.keeping && rec != nil {
		if n := recordBytes(rec); in.budget.take(n) {
			rec.Retain()
			in.kept = append(in.kept, rec)
			in.keptBytes += n
			in.pos = len(in.kept)
		} else {
			in.dropKeptLocked()
		}
	}
	return rec, nil
}

// dropKeptLocked gives the kept batches up: the input can no longer be
// scanned again.
func (in *input) dropKeptLocked() {
	in.keeping = false
	for _, rec := range in.kept {
		rec.Release()
	}
	in.kept = nil
	if in.budget != nil {
		in.budget.give(in.keptBytes)
	}
	in.keptBytes = 0
	in.pos = 0
}

// endScan ends the current scan. An input that cannot be scanned again
// releases its reader now.
func (in *input) endScan() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.scans++
	in.ctx = nil
	if !in.keeping {
		in.releaseReaderLocked()
	}
}

func (in *input) releaseReaderLocked() {
	if in.r != nil {
		in.r.Release()
		in.r = nil
	}
}

// fail ends the input with err.
func (in *input) fail(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err == nil {
		in.err = err
		in.dropKeptLocked()
	}
}

// Err is the reader's own error.
func (in *input) Err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

// close releases the reader and the kept batches, exactly once. Nothing
// may scan the input any more: no statement of the session is running, or
// its connection is closed.
func (in *input) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	in.closed = true
	in.dropKeptLocked()
	in.releaseReaderLocked()
}

// recordBytes is the size of rec's buffers.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
			n += dataBytes(dict)
		}
	}
	return n
}
