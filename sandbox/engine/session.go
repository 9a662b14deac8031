//go:build duckdb_arrow

package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	sluice "github.com/sluice-gov/sluice"
)

// reservedPrefix starts the names the engine gives its own views and
// tables; inputs may not use it.
const reservedPrefix = "__sluice"

// maxNameLen bounds input names.
const maxNameLen = 128

// Session is one analyst query in the sandbox: a private, locked-down,
// in-memory DuckDB database with a single connection. Its methods are
// serialised (DuckDB connections are not safe for concurrent use) and may
// be called from any goroutine; Close may be called concurrently with a
// running statement, which it interrupts.
type Session struct {
	e   *Engine
	dir string // this session's spill directory

	// ctx is done when the session is closed, its engine is closed or its
	// time limit is reached; every statement's context follows it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu      sync.Mutex // serialises everything that touches the connection
	closed  bool
	conn    *duckdb.Connector
	dc      *duckdb.Conn
	arrow   *duckdb.Arrow
	names   map[string]bool // input names in use, lower-cased
	pending []*input        // registered, not read yet
	staged  []*input        // read, but their staging view could not be dropped
	readers map[*resultReader]struct{}
	seq     int
	ordered bool // preserve_insertion_order is on
}

// Register makes r queryable as the table name. Register takes r over:
// the session releases it exactly once (also if Register fails).
//
// Nothing is read yet: at the start of the next Query (or Materialize)
// DuckDB reads r through the Arrow C stream interface, once and in full,
// into the temporary table name, under that statement's context and
// limits, and r is released. A registered input can then be read any
// number of times. DuckDB cannot query the stream in place safely: see
// "Inputs" in the package documentation.
func (s *Session) Register(name string, r array.RecordReader) error {
	if r == nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: input %q has no reader", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNewName(name); err != nil {
		r.Release()
		return err
	}
	s.pending = append(s.pending, &input{name: name, r: r})
	s.names[strings.ToLower(name)] = true
	return nil
}

// Materialize reads r to its end into the temporary table name now (CREATE
// TEMP TABLE name AS SELECT * FROM the stream), under ctx. The table lives
// in DuckDB's buffer manager: it counts against the memory limit and
// spills beyond it. r is released before Materialize returns, also on
// error.
func (s *Session) Materialize(ctx context.Context, name string, r array.RecordReader) error {
	if r == nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: input %q has no reader", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNewName(name); err != nil {
		r.Release()
		return err
	}
	s.names[strings.ToLower(name)] = true
	cctx, done := s.statementContext(ctx)
	defer done()
	if err := s.copyPendingLocked(cctx); err != nil {
		r.Release()
		return err
	}
	return s.copyLocked(cctx, &input{name: name, r: r})
}

// copyPendingLocked copies the registered inputs not yet read, in the
// order they were registered. After an error every one is released.
func (s *Session) copyPendingLocked(ctx context.Context) error {
	var err error
	for len(s.pending) > 0 {
		in := s.pending[0]
		s.pending = s.pending[1:]
		if err != nil {
			in.close()
			continue
		}
		err = s.copyLocked(ctx, in)
	}
	return err
}

// copyLocked reads in's stream into the temporary table in.name through a
// staging Arrow view, then drops the view and releases the stream. The
// statement is SELECT * with no filter, the one shape of arrow_scan over
// a C stream that is correct (see "Inputs" in the package documentation).
func (s *Session) copyLocked(ctx context.Context, in *input) error {
	in.ctx = ctx
	if err := s.setOrderLocked(ctx, false); err != nil {
		in.close()
		return err
	}
	s.seq++
	view := reservedPrefix + "_in_" + strconv.Itoa(s.seq)
	release, err := s.arrow.RegisterView(in, view)
	if err != nil {
		in.close()
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot register input %q with DuckDB: %v", in.name, err)
	}
	in.release = release
	_, err = s.dc.ExecContext(ctx, "CREATE TEMP TABLE "+quoteIdent(in.name)+" AS SELECT * FROM "+quoteIdent(view), nil)
	if err != nil {
		if ierr := in.Err(); ierr != nil && ctx.Err() == nil {
			err = ierr // the reader's own error, not DuckDB's rendering of it
		} else {
			err = s.classify(ctx, err)
		}
	}
	// The stream may be released only once nothing can scan it.
	if _, derr := s.dc.ExecContext(context.Background(), "DROP VIEW "+quoteIdent(view), nil); derr != nil {
		s.staged = append(s.staged, in) // released by Close, after the database
		if err == nil {
			err = sluice.Errorf(sluice.EInternal, "sandbox: cannot drop the staging view of input %q: %v", in.name, derr)
		}
		return err
	}
	in.close()
	return err
}

// Query runs one SELECT statement (args bind its $n or ? parameters) and
// returns its result as a stream of Arrow batches, which the caller must
// Release; the session releases it at Close at the latest. The statement's
// result is written to a temporary table, which DuckDB keeps under the
// memory limit and spills beyond it, and read back in pages of at most
// pageRows rows: the result is never held outside DuckDB's limits in one
// piece (see the package documentation for why). Anything but a single
// SELECT is refused with sluice.EInvalid.
func (s *Session) Query(ctx context.Context, query string, args ...any) (array.RecordReader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.closedErr()
	}
	cctx, done := s.statementContext(ctx)
	if err := s.copyPendingLocked(cctx); err != nil {
		done()
		return nil, err
	}
	names, err := s.checkSelect(query)
	if err != nil {
		done()
		return nil, err
	}
	// The result keeps the query's order (ORDER BY) only with insertion
	// order preserved, in the table and in the scans of its pages.
	if err := s.setOrderLocked(cctx, true); err != nil {
		done()
		return nil, err
	}
	s.seq++
	table := reservedPrefix + "_result_" + strconv.Itoa(s.seq)
	// The SQL goes after AS verbatim (no parentheses), so a trailing
	// comment in it cannot swallow anything; checkSelect has established
	// that it is exactly one SELECT statement.
	res, err := s.dc.ExecContext(cctx, "CREATE TEMP TABLE "+quoteIdent(table)+" AS\n"+query, namedArgs(args))
	if err != nil {
		err = s.classify(cctx, err)
		done()
		return nil, err
	}
	total, err := res.RowsAffected()
	if err != nil {
		done()
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: counting a result: %v", err)
	}
	rr := &resultReader{s: s, ctx: cctx, done: done, table: table, total: total, refs: 1}
	s.readers[rr] = struct{}{}
	// The first page gives the schema (also of an empty result) and any
	// error before the caller holds a reader.
	if err := rr.nextPageLocked(); err != nil {
		rr.releaseLocked()
		return nil, err
	}
	rr.schema = rr.page.Schema()
	// CREATE TABLE AS renames duplicate column names (a, a becomes a,
	// a_1); the caller gets the query's own names back.
	if len(names) == rr.schema.NumFields() {
		fields := rr.schema.Fields()
		renamed := false
		for i := range fields {
			if fields[i].Name != names[i] {
				fields[i].Name = names[i]
				renamed = true
			}
		}
		if renamed {
			md := rr.schema.Metadata()
			rr.schema = arrow.NewSchema(fields, &md)
			rr.renamed = true
		}
	}
	return rr, nil
}

// Close interrupts a running statement, releases every result reader and
// input the session holds, closes its database (dropping every view and
// table) and removes its spill directory. It is idempotent and must be
// called also after errors.
func (s *Session) Close() error {
	if s.cancel != nil {
		s.cancel(errSessionClosed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for rr := range s.readers {
		if rr.err == nil {
			rr.err = s.closedErr()
		}
		rr.releaseLocked()
	}
	err := s.closeDB()
	// Only now that the database is gone can nothing read the streams.
	for _, in := range s.pending {
		in.close()
	}
	for _, in := range s.staged {
		in.close()
	}
	s.pending, s.staged = nil, nil
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = sluice.Errorf(sluice.EInternal, "sandbox: cannot remove a session spill directory: %v", rerr)
	}
	s.e.forget(s)
	return err
}

// closeDB closes the connection and the database.
func (s *Session) closeDB() error {
	var errs []error
	if s.dc != nil {
		if err := s.dc.Close(); err != nil {
			errs = append(errs, err)
		}
		s.dc = nil
	}
	if s.conn != nil {
		if err := s.conn.Close(); err != nil {
			errs = append(errs, err)
		}
		s.conn = nil
	}
	if len(errs) > 0 {
		return sluice.Errorf(sluice.EInternal, "sandbox: closing DuckDB: %v", errors.Join(errs...))
	}
	return nil
}

func (s *Session) closedErr() error {
	var cause error
	if s.ctx != nil {
		cause = context.Cause(s.ctx)
	}
	if cause == nil {
		cause = errSessionClosed
	}
	return s.contextErr(cause)
}

// setOrderLocked turns preserve_insertion_order on or off (the one setting
// the lockdown leaves changeable).
func (s *Session) setOrderLocked(ctx context.Context, on bool) error {
	if s.ordered == on {
		return nil
	}
	if _, err := s.dc.ExecContext(ctx, "SET preserve_insertion_order = "+strconv.FormatBool(on), nil); err != nil {
		return s.classify(ctx, err)
	}
	s.ordered = on
	return nil
}

// statementContext derives the context of one statement from the caller's
// and the session's: it is done when either is. done must be called when
// the statement (or the result reader) is finished.
func (s *Session) statementContext(ctx context.Context) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.ctx, func() { cancel(context.Cause(s.ctx)) })
	return cctx, func() {
		stop()
		cancel(nil)
	}
}

// checkNewName validates the name of a new input.
func (s *Session) checkNewName(name string) error {
	if s.closed {
		return s.closedErr()
	}
	if name == "" || len(name) > maxNameLen {
		return sluice.Errorf(sluice.EInternal, "sandbox: an input name must have 1 to %d bytes", maxNameLen)
	}
	for _, c := range name {
		if unicode.IsControl(c) || c == unicode.ReplacementChar {
			return sluice.Errorf(sluice.EInternal, "sandbox: input name %q has a control or invalid character", name)
		}
	}
	if strings.HasPrefix(strings.ToLower(name), reservedPrefix) {
		return sluice.Errorf(sluice.EInternal, "sandbox: input name %q uses the reserved prefix %s", name, reservedPrefix)
	}
	if s.names[strings.ToLower(name)] { // DuckDB's identifiers are case-insensitive
		return sluice.Errorf(sluice.EInternal, "sandbox: input %q is already registered in this session", name)
	}
	return nil
}

// checkSelect refuses anything but exactly one SELECT statement, before
// running anything, and returns the statement's column names.
// duckdb.Conn.Prepare (unlike PrepareContext and QueryContext, which
// execute all statements but the last) only prepares, and fails on more
// than one statement.
func (s *Session) checkSelect(query string) ([]string, error) {
	st, err := s.dc.Prepare(query)
	if err != nil {
		var de *duckdb.Error
		if errors.As(err, &de) {
			return nil, s.classify(context.Background(), err)
		}
		return nil, sluice.Errorf(sluice.EInvalid, "the sandbox runs exactly one SELECT statement per query")
	}
	defer st.Close()
	ds, ok := st.(*duckdb.Stmt)
	if !ok {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: unexpected DuckDB statement type %T", st)
	}
	t, err := ds.StatementType()
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot read the statement type: %v", err)
	}
	if t != duckdb.STATEMENT_TYPE_SELECT {
		return nil, sluice.Errorf(sluice.EInvalid, "the sandbox runs only SELECT statements; this is %s statement", stmtTypeName(t))
	}
	n, err := ds.ColumnCount()
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot read the statement's columns: %v", err)
	}
	names := make([]string, n)
	for i := range names {
		if names[i], err = ds.ColumnName(i); err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot read the statement's columns: %v", err)
		}
	}
	return names, nil
}

func namedArgs(args []any) []driver.NamedValue {
	if len(args) == 0 {
		return nil
	}
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		out[i].Ordinal = i + 1
		if na, ok := a.(sql.NamedArg); ok {
			out[i].Name = na.Name
			a = na.Value
		}
		out[i].Value = a
	}
	return out
}

func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func stmtTypeName(t duckdb.StmtType) string {
	switch t {
	case duckdb.STATEMENT_TYPE_INSERT:
		return "an INSERT"
	case duckdb.STATEMENT_TYPE_UPDATE:
		return "an UPDATE"
	case duckdb.STATEMENT_TYPE_EXPLAIN:
		return "an EXPLAIN"
	case duckdb.STATEMENT_TYPE_DELETE:
		return "a DELETE"
	case duckdb.STATEMENT_TYPE_PREPARE:
		return "a PREPARE"
	case duckdb.STATEMENT_TYPE_CREATE:
		return "a CREATE"
	case duckdb.STATEMENT_TYPE_EXECUTE:
		return "an EXECUTE"
	case duckdb.STATEMENT_TYPE_ALTER:
		return "an ALTER"
	case duckdb.STATEMENT_TYPE_TRANSACTION:
		return "a transaction"
	case duckdb.STATEMENT_TYPE_COPY:
		return "a COPY"
	case duckdb.STATEMENT_TYPE_ANALYZE:
		return "an ANALYZE"
	case duckdb.STATEMENT_TYPE_VARIABLE_SET:
		return "a SET VARIABLE"
	case duckdb.STATEMENT_TYPE_CREATE_FUNC:
		return "a CREATE FUNCTION"
	case duckdb.STATEMENT_TYPE_DROP:
		return "a DROP"
	case duckdb.STATEMENT_TYPE_EXPORT:
		return "an EXPORT"
	case duckdb.STATEMENT_TYPE_PRAGMA:
		return "a PRAGMA"
	case duckdb.STATEMENT_TYPE_VACUUM:
		return "a VACUUM"
	case duckdb.STATEMENT_TYPE_CALL:
		return "a CALL"
	case duckdb.STATEMENT_TYPE_SET:
		return "a SET"
	case duckdb.STATEMENT_TYPE_LOAD:
		return "a LOAD or INSTALL"
	case duckdb.STATEMENT_TYPE_ATTACH:
		return "an ATTACH"
	case duckdb.STATEMENT_TYPE_DETACH:
		return "a DETACH"
	case duckdb.STATEMENT_TYPE_EXTENSION:
		return "an extension's"
	}
	return "a non-SELECT"
}

// input is a registered reader on its way into a table. It stops pulling
// from the reader once the statement's context is done, and keeps the
// reader's error so that the statement reports it rather than DuckDB's
// rendering of it.
type input struct {
	name    string
	r       array.RecordReader
	ctx     context.Context
	release func() // releases the C stream (DuckDB's reference)

	mu     sync.Mutex
	err    error
	closed bool
}

var _ array.RecordReader = (*input)(nil)

func (in *input) Schema() *arrow.Schema { return in.r.Schema() }

func (in *input) Next() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil || in.closed {
		return false
	}
	if in.ctx.Err() != nil {
		in.err = context.Cause(in.ctx) // the statement reports it
		return false
	}
	if in.r.Next() {
		return true
	}
	if err := in.r.Err(); err != nil {
		var se *sluice.Error
		if errors.As(err, &se) {
			in.err = err
		} else {
			in.err = &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("input %q failed while the sandbox read it", in.name), Err: err}
		}
	}
	return false
}

func (in *input) RecordBatch() arrow.RecordBatch {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil || in.closed {
		return nil
	}
	return in.r.RecordBatch()
}

// Record is the deprecated name of RecordBatch.
func (in *input) Record() arrow.RecordBatch { return in.RecordBatch() }

func (in *input) Err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

// Retain and Release are DuckDB's (through the C stream); the session's
// own reference is dropped by close.
func (in *input) Retain()  { in.r.Retain() }
func (in *input) Release() { in.r.Release() }

// close releases DuckDB's reference (the C stream, if it was exported) and
// the session's, exactly once. The staging view must be gone or the
// database closed.
func (in *input) close() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	in.mu.Unlock()
	if in.release != nil {
		in.release()
	}
	in.r.Release()
}
