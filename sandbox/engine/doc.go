// Package engine runs the sandbox's queries in embedded DuckDB: the place
// where department slices (Arrow record batches) are joined and aggregated
// at the broker. The SQL comes from the planner's renderer; this package
// sets DuckDB up, hands Arrow data in and out, and enforces the limits and
// the lockdown.
//
//	e, err := engine.Open(ctx, engine.Limits{Memory: 512 * engine.MiB, QueryTime: 30 * time.Second})
//	defer e.Close()
//
//	s, err := e.Session(ctx) // one per analyst query
//	defer s.Close()
//	err = s.Register("hr", hrReader)             // an agent's stream
//	err = s.Materialize(ctx, "pay", payReader)   // the same, copied in at once
//	r, err := s.Query(ctx, "SELECT ... FROM hr JOIN pay ON ... WHERE x > $1", 10)
//	defer r.Release()
//	for r.Next() { use(r.RecordBatch()) }
//	err = r.Err()
//
// The package needs duckdb-go's Arrow interface, which is compiled only
// with the build tag duckdb_arrow: build and test with -tags duckdb_arrow.
// Without the tag the package still compiles, and Open and Session fail
// with sluice.EInternal saying so.
//
// # A database per session
//
// Every Session is its own in-memory DuckDB database with a single
// connection, not a connection to a shared database. A shared database
// would not isolate analyst queries from each other:
//
//   - the views DuckDB's C API creates over Arrow streams (duckdb-go's
//     RegisterView) are ordinary views in the shared catalog, visible to
//     and scannable from every connection, and registering a name replaces
//     another connection's view of that name;
//   - DuckDB lets queries read its temporary directory even with external
//     access disabled (it adds temp_directory to allowed_directories), so
//     one query could read another's spilled blocks;
//   - memory_limit and max_temp_directory_size are per database: a shared
//     database would give every query the whole broker's budget instead of
//     a per-query limit, which is what the broker's configuration means.
//
// A database per session costs a few tens of milliseconds to open and lock
// down; the Engine keeps one spare, opened in the background, so that a
// session is usually ready when a query arrives. The Engine itself holds
// only the limits and the spill directory.
//
// # Lockdown
//
// Before a session's database runs anything of the caller's, it is
// configured and locked, and the result is checked (any setting missing or
// different fails the session):
//
//   - at creation: autoinstall_known_extensions, autoload_known_extensions,
//     allow_community_extensions, allow_unsigned_extensions and
//     allow_persistent_secrets false, allow_extension_repositories
//     'forbidden', memory_limit, threads, preserve_insertion_order false;
//   - then, in this order: temp_directory (the session's own directory,
//     0700, inside the engine's), max_temp_directory_size,
//     allowed_configs = ['preserve_insertion_order'],
//     enable_external_access = false, lock_configuration = true.
//
// With external access disabled DuckDB refuses every file and network
// access (read_csv, read_parquet, glob, COPY, ATTACH of a file, EXPORT,
// INSTALL, LOAD of anything not built in), except to the session's own
// spill directory; with the configuration locked, every SET, RESET and
// PRAGMA that changes a setting is refused, except
// preserve_insertion_order, which only trades speed for row order.
// Query adds its own check in front: it runs exactly one statement, and it
// must be a SELECT, so ATTACH ':memory:', CREATE, SET VARIABLE and the like
// never reach DuckDB either. The extensions built into the binary
// (parquet, json, icu, core functions, tpch, tpcds) stay loaded; they can
// reach files only through DuckDB's file system, which is closed.
//
// # Inputs
//
// Register and Materialize hand an array.RecordReader to DuckDB through
// the Arrow C stream interface (duckdb-go's RegisterView): no copy and no
// IPC on the Go side. DuckDB copies the stream once, with CREATE TEMP
// TABLE name AS SELECT * FROM the stream, into a temporary table, which is
// in its buffer manager: counted against the memory limit and spilled
// beyond it. Queries then read tables, any number of times.
//
// Querying the streams in place would avoid that copy, but DuckDB gets it
// wrong: its C API registers the stream with arrow_scan, which lets the
// optimizer push filters and column selections into the scan and expects
// the stream's producer to apply them, and the C stream's producer
// ignores them. A WHERE clause on a registered stream is silently dropped,
// and selecting a subset of its columns reads the wrong ones (SELECT y
// returns the values of the first column x; with a string column the
// process dies of a segmentation fault): see TestUpstreamArrowScanPushdown.
// And a stream can be read only once, so a self-join or a second query
// would see it exhausted. SELECT * with no filter is the one shape that is
// right, so that is the only one the engine runs over a stream.
//
// Register defers the copy to the start of the session's next statement
// (under that statement's context and limits); Materialize copies at once
// under its own context. Either way the reader is released, exactly once,
// as soon as it has been copied (or when the session closes, or at once if
// the call fails). A reader's error ends the statement with that error
// (its *sluice.Error, or sluice.EUnavailable wrapping it).
//
// # Results
//
// duckdb-go's Arrow QueryContext executes a statement to completion and
// holds the whole result in memory that DuckDB's memory limit does not
// count, before the first batch. Query therefore writes the result to a
// temporary table (CREATE TEMP TABLE ... AS the query, with
// preserve_insertion_order on, so ORDER BY is kept) and returns a reader
// that fetches it in pages of at most 65536 rows by rowid range, one page
// in memory at a time. The reader has the query's column names and
// DuckDB's Arrow types; Release it (Session.Close releases any left). The
// time to the first batch is the time of the whole query.
//
// # Limits and errors
//
// Limits apply to each session separately. Errors are *sluice.Error:
//
//   - DuckDB out of memory: sluice.EResource, "the query needs more than N
//     MiB in the sandbox (memory limit); add filters or aggregate at the
//     source". DuckDB spills joins, aggregates, sorts and tables to the
//     session's directory first; what cannot spill (a list aggregate, a
//     distinct aggregate without groups) hits the limit.
//   - spill beyond MaxSpill: sluice.EResource naming the spill limit.
//   - Limits.QueryTime, counted from Engine.Session over every statement
//     and result batch of the session, or a deadline of the caller's
//     context: sluice.EResource naming the time limit; the error unwraps to
//     context.DeadlineExceeded.
//   - a cancelled context, Session.Close or Engine.Close during a
//     statement: sluice.EUnavailable, unwrapping to context.Canceled. The
//     running statement is interrupted through duckdb-go (duckdb_interrupt
//     when the context is done), within milliseconds.
//   - SQL errors (parser, binder, catalog) and refused statements:
//     sluice.EInvalid with DuckDB's first line.
//   - errors about a value (conversion, overflow, division by zero,
//     invalid input, constraint): sluice.EInvalid naming the kind only;
//     DuckDB's message quotes the value, so it is neither shown nor
//     wrapped.
//   - anything else: sluice.EInternal.
//
// A Session's methods are serialised and may be called from any
// goroutine; Close may be called at any time, also concurrently with a
// running statement, and releases everything.
package engine
