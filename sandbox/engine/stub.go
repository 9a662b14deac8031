//go:build !duckdb_arrow

package engine

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
)

// This file stands in for the engine in binaries built without the
// duckdb_arrow tag: duckdb-go compiles its Arrow interface only with it.
// Every entry point fails with errNoArrow.

// Available reports whether this binary has the engine (built with
// -tags duckdb_arrow).
const Available = false

func errNoArrow() error {
	return sluice.Errorf(sluice.EInternal, "this binary was built without DuckDB's Arrow interface; build it with -tags duckdb_arrow")
}

// Engine is unavailable in this build; see errNoArrow.
type Engine struct{}

// Session is unavailable in this build; see errNoArrow.
type Session struct{}

// Open fails: this binary was built without -tags duckdb_arrow.
func Open(ctx context.Context, lim Limits) (*Engine, error) { return nil, errNoArrow() }

// Limits returns the zero Limits.
func (e *Engine) Limits() Limits { return Limits{} }

// Close does nothing.
func (e *Engine) Close() error { return nil }

// Session fails: this binary was built without -tags duckdb_arrow.
func (e *Engine) Session(ctx context.Context) (*Session, error) { return nil, errNoArrow() }

// Register releases r and fails.
func (s *Session) Register(name string, r array.RecordReader) error {
	if r != nil {
		r.Release()
	}
	return errNoArrow()
}

// Materialize releases r and fails.
func (s *Session) Materialize(ctx context.Context, name string, r array.RecordReader) error {
	if r != nil {
		r.Release()
	}
	return errNoArrow()
}

// Query fails: this binary was built without -tags duckdb_arrow.
func (s *Session) Query(ctx context.Context, query string, args ...any) (array.RecordReader, error) {
	return nil, errNoArrow()
}

// Close does nothing.
func (s *Session) Close() error { return nil }
