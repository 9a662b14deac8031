//go:build duckdb_arrow

package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/mapping"

	sluice "github.com/sluice-gov/sluice"
)

// reservedPrefix starts the names the engine gives its own objects;
// inputs may not use it.
const reservedPrefix = "__sluice"

// maxNameLen bounds input names.
const maxNameLen = 128

// Session is one analyst query in the sandbox: a connection of its own to
// a locked-down in-memory DuckDB database that no other session uses while
// it is open. Its methods are serialised (DuckDB connections are not safe
// for concurrent use) and may be called from any goroutine; Close may be
// called concurrently with a running statement, which it interrupts.
type Session struct {
	e   *Engine
	d   *database
	dir string // the database's spill directory

	// ctx is done when the session is closed, its engine is closed or its
	// time limit is reached; every statement's context follows it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu      sync.Mutex // serialises everything that touches the connection
	closed  bool
	conn    mapping.Connection
	names   map[string]bool // input names in use, lower-cased
	pending []*input        // registered, not yet known to DuckDB
	inputs  []*scanInput    // known to DuckDB: views over streams, or copied
	result  *resultReader   // the result being read, if any
	budget  *replayBudget   // for the batches kept of registered inputs
	// failed is set by any statement that failed or was interrupted
	// (also a result released before its end): the database is then
	// closed with the session, never used again.
	failed bool
}

func newSession(e *Engine, d *database, conn mapping.Connection) *Session {
	return &Session{e: e, d: d, dir: d.dir, conn: conn, names: map[string]bool{},
		budget: &replayBudget{left: e.lim.Memory / replayShare}}
}

// Register makes r queryable as the table name. Register takes r over:
// the session releases it exactly once (also if Register fails).
//
// Nothing is read yet. A query that names the input reads it in place, as
// the query runs, under its context and limits: DuckDB scans the stream
// through the engine's own table function, which applies no filter and
// reads the columns the query needs (see "Inputs" in the package
// documentation). The session keeps the batches it reads, as long as those
// of all its registered inputs fit in Limits.Memory/16 (Go memory, outside
// DuckDB's limit), so that later queries read the input again from its
// start; a query that reads it more than once (a self-join, a CTE used
// twice) gets a copy, made before the query runs. An input whose batches
// do not fit serves one query: a later one that names it fails with
// sluice.EInternal (Materialize an input that several queries read). r is
// released once it has been read to its end and kept, or when the query
// that read it ends if it could not be kept, or when the session closes.
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
	s.pending = append(s.pending, newInput(name, r, s.budget))
	s.names[strings.ToLower(name)] = true
	return nil
}

// Materialize reads r to its end into the temporary table name now (CREATE
// TEMP TABLE name AS SELECT * FROM the stream), under ctx. The table lives
// in DuckDB's buffer manager: it counts against the memory limit and
// spills beyond it, and any number of queries can read it. r is released
// before Materialize returns, also on error.
func (s *Session) Materialize(ctx context.Context, name string, r array.RecordReader) error {
	if r == nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: input %q has no reader", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.checkNewName(name)
	if err == nil {
		err = s.checkIdleLocked()
	}
	if err != nil {
		r.Release()
		return err
	}
	s.names[strings.ToLower(name)] = true
	cctx, done := s.statementContext(ctx)
	defer done()
	in := newInput(name, r, nil)
	si, err := s.exposeLocked(in)
	if err != nil {
		in.close()
		s.failed = true
		return err
	}
	return s.copyLocked(cctx, si, "")
}

// Query runs one SELECT statement (args bind its $n or ? parameters) and
// returns its result as a stream of Arrow batches, which the caller must
// Release; the session releases it at Close at the latest. DuckDB streams
// the result: the query runs as the caller reads, and only a bounded
// buffer of it is held at a time (in DuckDB's memory, under its limit).
// Query returns once the first batch is ready (for a query that sorts,
// aggregates or joins, once that is done), so that most errors come from
// Query itself; later ones end the stream (Next false, Err set). While a
// result is being read, the session runs nothing else: Query and
// Materialize fail with sluice.EInternal until the result has been read
// to its end or released. Anything but a single SELECT is refused with
// sluice.EInvalid.
func (s *Session) Query(ctx context.Context, query string, args ...any) (array.RecordReader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.closedErr()
	}
	if err := s.checkIdleLocked(); err != nil {
		return nil, err
	}
	cctx, done := s.statementContext(ctx)
	rr, err := s.queryLocked(cctx, done, query, args)
	if err != nil {
		// Whatever failed (also a statement DuckDB refused), the database
		// is not used again.
		s.failed = true
		done()
		return nil, err
	}
	return rr, nil
}

func (s *Session) queryLocked(ctx context.Context, done func(), query string, args []any) (*resultReader, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.contextErr(context.Cause(ctx))
	}
	if err := s.exposePendingLocked(ctx); err != nil {
		return nil, err
	}
	stmt, err := s.prepareLocked(query)
	if err != nil {
		return nil, err
	}
	// A stream can be read once: copy the inputs this statement reads
	// more than once, then prepare it again over the copies.
	var twice []*scanInput
	for _, si := range s.inputs {
		if si.state() == inputStream && si.bindCount() > 1 && si.in.canScan() {
			twice = append(twice, si)
		}
	}
	if len(twice) > 0 {
		mapping.DestroyPrepare(&stmt)
		for _, si := range twice {
			before := ""
			if !s.d.reg.resolves(si) {
				before = "DROP VIEW " + quoteIdent(si.in.name) + ";\n"
			}
			err := s.copyLocked(ctx, si, before)
			if err != nil {
				return nil, err
			}
		}
		if stmt, err = s.prepareLocked(query); err != nil {
			return nil, err
		}
	}
	var read []*scanInput
	for _, si := range s.inputs {
		if si.state() == inputStream && si.bindCount() == 1 {
			read = append(read, si)
		}
	}
	if err := bindArgs(stmt, args); err != nil {
		mapping.DestroyPrepare(&stmt)
		return nil, err
	}
	// From here the inputs this statement reads are consumed, whatever
	// happens.
	for _, si := range read {
		si.startRead(ctx)
	}
	var pending mapping.PendingResult
	if pendingStreaming(stmt, &pending) == mapping.StateError {
		err := messageError(mapping.PendingError(pending))
		mapping.DestroyPending(&pending)
		mapping.DestroyPrepare(&stmt)
		for _, si := range read {
			si.endRead()
		}
		return nil, s.statementErr(ctx, err, read)
	}
	rr := &resultReader{s: s, ctx: ctx, done: done, stmt: stmt, inputs: read, refs: 1}
	stop := s.interruptOn(ctx)
	st := mapping.ExecutePending(pending, &rr.res)
	stop()
	mapping.DestroyPending(&pending)
	rr.open = true
	if st == mapping.StateError {
		err := s.statementErr(ctx, resultError(&rr.res), read)
		rr.closeLocked()
		return nil, err
	}
	if err := rr.initLocked(); err != nil {
		rr.closeLocked()
		return nil, err
	}
	s.result = rr
	// The first batch: the query's errors before the caller holds a
	// reader, as far as they come before any row.
	if !rr.fetchLocked() {
		if rr.err != nil {
			err := rr.err
			rr.releaseLocked()
			return nil, err
		}
	}
	rr.prefetched = true
	return rr, nil
}

// prepareLocked prepares query, which must be exactly one SELECT
// statement, counting how often it reads each input stream.
func (s *Session) prepareLocked(query string) (mapping.PreparedStatement, error) {
	var stmt mapping.PreparedStatement
	var stmts mapping.ExtractedStatements
	n := mapping.ExtractStatements(s.conn, query, &stmts)
	defer mapping.DestroyExtracted(&stmts)
	if n == 0 {
		if msg := mapping.ExtractStatementsError(stmts); msg != "" {
			return stmt, s.classify(context.Background(), messageError(msg))
		}
		return stmt, sluice.Errorf(sluice.EInvalid, "the sandbox runs exactly one SELECT statement per query")
	}
	if n != 1 {
		return stmt, sluice.Errorf(sluice.EInvalid, "the sandbox runs exactly one SELECT statement per query")
	}
	s.d.reg.resetBinds()
	if mapping.PrepareExtractedStatement(s.conn, stmts, 0, &stmt) == mapping.StateError {
		msg := mapping.PrepareError(stmt)
		mapping.DestroyPrepare(&stmt)
		for _, si := range s.inputs {
			if si.rebound() {
				return stmt, sluice.Errorf(sluice.EInternal, "sandbox: input %q was read by an earlier query of this session and is too large to keep for another (over %s of kept inputs); Materialize an input that more than one query reads", si.in.name, formatBytes(s.e.lim.Memory/replayShare))
			}
		}
		return stmt, s.classify(context.Background(), messageError(msg))
	}
	if t := mapping.PreparedStatementType(stmt); t != mapping.StatementTypeSelect {
		mapping.DestroyPrepare(&stmt)
		return stmt, sluice.Errorf(sluice.EInvalid, "the sandbox runs only SELECT statements; this is %s statement", stmtTypeName(duckdb.StmtType(t)))
	}
	return stmt, nil
}

// exposePendingLocked makes the registered inputs known to DuckDB: a name
// the query cannot mean otherwise is resolved to __sluice_scan by the
// database's replacement scan, at no cost; any other (one the catalog
// has, or not a plain identifier) is a temporary view over __sluice_scan,
// which comes first in DuckDB's search path. Either goes with the
// session's connection.
func (s *Session) exposePendingLocked(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	pending := s.pending
	s.pending = nil
	var b strings.Builder
	var views []*scanInput
	for i, in := range pending {
		si, err := s.exposeLocked(in)
		if err != nil {
			for _, rest := range pending[i:] {
				rest.close()
			}
			s.failed = true
			return err
		}
		if plainName(in.name) && !s.d.names[strings.ToLower(in.name)] {
			s.d.reg.resolve(si)
			continue
		}
		views = append(views, si)
		b.WriteString("CREATE TEMP VIEW " + quoteIdent(in.name) + " AS SELECT * FROM " + scanFunction + "(" + strconv.FormatInt(si.token, 10) + ");\n")
	}
	if len(views) == 0 {
		return nil
	}
	return s.execLocked(ctx, b.String(), views...)
}

// plainName tells whether name is an identifier DuckDB's replacement scan
// gets as it is: letters, digits and underscores, not starting with a
// digit (nothing DuckDB's own replacement scans take for a file name).
func plainName(name string) bool {
	for i, c := range name {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return name != ""
}

// copyLocked copies the stream of si into the temporary table of its name,
// after running before (SQL, or ""). Insertion order is not preserved
// while copying, which is faster and needs less memory; afterwards the
// connection preserves it again.
func (s *Session) copyLocked(ctx context.Context, si *scanInput, before string) error {
	si.startRead(ctx)
	err := s.execLocked(ctx, before+"SET SESSION preserve_insertion_order = false;\n"+
		"CREATE TEMP TABLE "+quoteIdent(si.in.name)+" AS SELECT * FROM "+scanFunction+"("+strconv.FormatInt(si.token, 10)+");\n"+
		"SET SESSION preserve_insertion_order = true", si)
	si.endRead()
	si.setState(inputCopied)
	si.in.close() // the table holds it now
	if err != nil {
		// Whatever ran, the session's later statements keep their order.
		_ = execRaw(s.conn, "SET SESSION preserve_insertion_order = true")
	}
	return err
}

// exposeLocked prepares in for __sluice_scan.
func (s *Session) exposeLocked(in *input) (*scanInput, error) {
	si, err := newScanInput(s.d.reg, s.d.conv, in, s.e.lim.Threads)
	if err != nil {
		return nil, err
	}
	s.inputs = append(s.inputs, si)
	return si, nil
}

// execLocked runs sql (statements of the engine's own) under ctx; sis are
// the inputs it reads, whose errors take precedence over DuckDB's.
func (s *Session) execLocked(ctx context.Context, sql string, sis ...*scanInput) error {
	if err := ctx.Err(); err != nil {
		s.failed = true
		return s.contextErr(context.Cause(ctx))
	}
	var res mapping.Result
	stop := s.interruptOn(ctx)
	st := mapping.Query(s.conn, sql, &res)
	stop()
	defer mapping.DestroyResult(&res)
	if st == mapping.StateError {
		return s.statementErr(ctx, resultError(&res), sis)
	}
	return nil
}

// statementErr is the error of a statement that failed with err (a
// *duckdb.Error) under ctx, reading sis: an input's own error if one
// failed, else err classified. The database is not used again.
func (s *Session) statementErr(ctx context.Context, err error, sis []*scanInput) error {
	s.failed = true
	if ctx.Err() == nil {
		for _, si := range sis {
			if ierr := si.in.Err(); ierr != nil {
				return ierr // the reader's own error, not DuckDB's rendering of it
			}
		}
		var de *duckdb.Error
		if errors.As(err, &de) && strings.Contains(de.Msg, scanTwiceMsg) {
			name := "an input"
			for _, si := range sis {
				if si.inits() > 1 {
					name = fmt.Sprintf("input %q", si.in.name)
				}
			}
			return sluice.Errorf(sluice.EInvalid, "the query reads %s more than once (a recursive query?), which a registered input cannot be; Materialize it", name)
		}
	}
	return s.classify(ctx, err)
}

// interruptOn interrupts the session's running call once ctx is done, and
// again every interruptEvery until the returned stop is called; after stop
// returns, no interrupt reaches the connection.
func (s *Session) interruptOn(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	quit := make(chan struct{})
	exited := make(chan struct{})
	conn := s.conn
	cancelAfter := context.AfterFunc(ctx, func() {
		defer close(exited)
		t := time.NewTicker(interruptEvery)
		defer t.Stop()
		for {
			mu.Lock()
			if stopped {
				mu.Unlock()
				return
			}
			mapping.Interrupt(conn)
			mu.Unlock()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	})
	return func() {
		if cancelAfter() {
			return // never started
		}
		mu.Lock()
		stopped = true
		mu.Unlock()
		close(quit)
		<-exited
	}
}

// interruptEvery is how often a statement whose context is done is
// interrupted again (DuckDB can clear an interrupt it received before the
// statement reached a point that checks it).
const interruptEvery = 20 * time.Millisecond

// checkIdleLocked fails while a result is being read: a DuckDB connection
// runs one statement at a time.
func (s *Session) checkIdleLocked() error {
	if s.result != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: a result of this session is still being read; read it to its end or release it before the next statement")
	}
	return nil
}

// Close interrupts a running statement, releases every result reader and
// input the session holds and closes its connection, which drops every
// view and table it created. Its database then goes back to the pool if
// the session ended cleanly and the database shows nothing of it (see
// "A database per session" in the package documentation), else it is
// closed. Close is idempotent and must be called also after errors.
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
	if rr := s.result; rr != nil {
		if rr.err == nil && !rr.eof {
			rr.err = s.closedErr()
		}
		rr.closeLocked()
	}
	if s.conn.Ptr != nil {
		mapping.Disconnect(&s.conn)
	}
	// Only now that the connection is gone can nothing read the streams.
	for _, si := range s.inputs {
		s.d.reg.remove(si)
		si.free()
		si.in.close()
	}
	for _, in := range s.pending {
		in.close()
	}
	s.inputs, s.pending = nil, nil
	s.e.release(s.d, !s.failed)
	s.e.forget(s)
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

// statementContext derives the context of one statement from the caller's
// and the session's: it is done when either is. done must be called when
// the statement (or the result reader) is finished.
func (s *Session) statementContext(ctx context.Context) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	if s.ctx.Err() != nil {
		// AfterFunc would cancel in a goroutine of its own, maybe after
		// the statement started.
		cancel(context.Cause(s.ctx))
	}
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

// bindArgs binds args to stmt's parameters: by position, or by name for
// a sql.NamedArg.
func bindArgs(stmt mapping.PreparedStatement, args []any) error {
	if n := int(mapping.NParams(stmt)); n != len(args) {
		return sluice.Errorf(sluice.EInvalid, "the query has %d parameters; %d values were given", n, len(args))
	}
	for i, a := range args {
		idx := mapping.IdxT(i + 1)
		if na, ok := a.(sql.NamedArg); ok {
			if mapping.BindParameterIndex(stmt, &idx, na.Name) == mapping.StateError {
				return sluice.Errorf(sluice.EInvalid, "the query has no parameter named %q", na.Name)
			}
			a = na.Value
		}
		if err := bindArg(stmt, idx, a); err != nil {
			return err
		}
	}
	return nil
}

func bindArg(stmt mapping.PreparedStatement, i mapping.IdxT, a any) error {
	var st mapping.State
	switch v := a.(type) {
	case nil:
		st = mapping.BindNull(stmt, i)
	case bool:
		st = mapping.BindBoolean(stmt, i, v)
	case int:
		st = mapping.BindInt64(stmt, i, int64(v))
	case int8:
		st = mapping.BindInt8(stmt, i, v)
	case int16:
		st = mapping.BindInt16(stmt, i, v)
	case int32:
		st = mapping.BindInt32(stmt, i, v)
	case int64:
		st = mapping.BindInt64(stmt, i, v)
	case uint:
		st = mapping.BindUInt64(stmt, i, uint64(v))
	case uint8:
		st = mapping.BindUInt8(stmt, i, v)
	case uint16:
		st = mapping.BindUInt16(stmt, i, v)
	case uint32:
		st = mapping.BindUInt32(stmt, i, v)
	case uint64:
		if v <= math.MaxInt64 {
			st = mapping.BindInt64(stmt, i, int64(v))
		} else {
			st = mapping.BindUInt64(stmt, i, v)
		}
	case float32:
		st = mapping.BindFloat(stmt, i, v)
	case float64:
		st = mapping.BindDouble(stmt, i, v)
	case string:
		st = mapping.BindVarchar(stmt, i, v)
	case []byte:
		st = mapping.BindBlob(stmt, i, v)
	case time.Time:
		st = mapping.BindTimestamp(stmt, i, mapping.NewTimestamp(v.UTC().UnixMicro()))
	default:
		return sluice.Errorf(sluice.EInternal, "sandbox: query parameter %d has the unsupported type %T", i, a)
	}
	if st == mapping.StateError {
		return sluice.Errorf(sluice.EInvalid, "the sandbox cannot bind query parameter %d", i)
	}
	return nil
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
