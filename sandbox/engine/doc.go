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
// The package uses DuckDB through duckdb-go's mapping and arrowmapping
// packages (its bindings of the C API) and a little C of its own
// (scan.go); duckdb-go compiles its Arrow interface only with the build tag
// duckdb_arrow: build and test with -tags duckdb_arrow. Without the tag the
// package still compiles, and Open and Session fail with sluice.EInternal
// saying so.
//
// # A database per session
//
// Every Session has an in-memory DuckDB database to itself for as long as
// it is open, and a connection of its own to it; no two open sessions
// share a database. A database shared by concurrent queries would not
// isolate them from each other:
//
//   - DuckDB lets queries read its temporary directory even with external
//     access disabled (it adds temp_directory to allowed_directories), so
//     one query could read another's spilled blocks;
//   - memory_limit and max_temp_directory_size are per database: a shared
//     database would give every query the whole broker's budget instead of
//     a per-query limit, which is what the broker's configuration means.
//
// Opening and locking down a database costs some tens of milliseconds
// (most of it DuckDB building its catalog of functions; no setting makes
// that cheaper), a connection some microseconds. So the Engine keeps a
// small pool: when a session closes, its connection goes, and with it
// everything the session created (its temporary views and tables belong to
// the connection), and the database goes back to the pool for a later
// session, if
//
//   - the session ended cleanly: no statement failed or was interrupted,
//     no result was left before its end (else the database is closed, in
//     the background);
//   - a check finds it as it was opened (stateSQL): no table or view
//     beyond the system's, nothing in the buffer manager's memory but a
//     bounded amount of DuckDB's allocator, nothing in the spill directory
//     but DuckDB's empty marker of its owner, and the settings of the
//     lockdown and the limits unchanged (read through the C API);
//   - it has served fewer than maxUses (1000) sessions, and fewer than
//     maxIdle (2) databases are idle.
//
// The check costs about a millisecond, in Session.Close. When no database
// is idle, Session opens one (and one more in the background, for the next
// session). TestPoolIsolation is the evidence: after a session that read
// streams in place, copied, materialized and spilled, every catalog entry,
// setting and memory tag of the database equals its state when opened, and
// the next session finds nothing of the first.
//
// # Lockdown
//
// Before a database runs anything of a session's, it is configured and
// locked, and the result is checked (any setting missing or different
// fails the database):
//
//   - at creation: autoinstall_known_extensions, autoload_known_extensions,
//     allow_community_extensions, allow_unsigned_extensions and
//     allow_persistent_secrets false, allow_extension_repositories
//     'forbidden', memory_limit, threads, preserve_insertion_order true;
//   - then, in this order: temp_directory (the database's own directory,
//     0700, inside the engine's), max_temp_directory_size,
//     allowed_configs = ['preserve_insertion_order'],
//     enable_external_access = false, lock_configuration = true.
//
// With external access disabled DuckDB refuses every file and network
// access (read_csv, read_parquet, glob, COPY, ATTACH of a file, EXPORT,
// INSTALL, LOAD of anything not built in), except to the database's own
// spill directory; with the configuration locked, every SET, RESET and
// PRAGMA that changes a setting is refused, except
// preserve_insertion_order, which only trades speed for row order (the
// engine turns it off for a connection while it copies an input).
// Query adds its own check in front: it runs exactly one statement, and it
// must be a SELECT, so ATTACH ':memory:', CREATE, SET VARIABLE and the like
// never reach DuckDB either. The extensions built into the binary
// (parquet, json, icu, core functions, tpch, tpcds) stay loaded; they can
// reach files only through DuckDB's file system, which is closed.
//
// # Inputs
//
// Register and Materialize hand an array.RecordReader to DuckDB without a
// copy on the Go side: DuckDB reads it through __sluice_scan, a table
// function of the engine (scan.go, in C against DuckDB's C API). It pulls
// the reader's batches one at a time (Arrow C data interface), cuts them
// into slices of DuckDB's vector size, has DuckDB convert each
// (duckdb_data_chunk_from_arrow, which references the Arrow buffers) and
// hands DuckDB the columns the query reads; DuckDB's threads scan in
// parallel. It applies no filter (DuckDB applies them after the scan) and
// gets the projection right, which DuckDB's own Arrow scan over a C stream
// does not (TestUpstreamArrowScanPushdown: a WHERE clause on such a
// stream is silently dropped, a subset of its columns reads the wrong
// ones). DuckDB's arrow_scan_dumb, which would not push anything down, is
// out of reach: in this DuckDB both Arrow scans take a C++ factory as a
// bind input, which neither SQL nor the C API can give.
//
// Register reads in place: a Query that names the input reads it as it
// runs, under its context and limits, and the input is not held in DuckDB
// (only what the query keeps of it: a hash table, say, under the memory
// limit). A stream can be read once, so the session keeps the batches it
// reads (in Go memory, which DuckDB's limit does not count), as long as
// those of all its registered inputs fit in Limits.Memory/16: a later
// query reads a kept input again from its start (the kept batches, then
// the rest of the stream if the query before stopped early). An input
// that does not fit serves one query; a later one that names it fails and
// asks for Materialize. The broker's rendered SQL reads each input once
// (unless it materialises a CTE), so it needs no copy. A query that reads
// an input more than once (a self-join, a CTE DuckDB inlines twice) gets a
// copy, made first (the engine counts how often the statement binds each
// input when it prepares it); a recursive query, which would scan a
// stream again as it runs, fails (__sluice_scan refuses a second scan in
// one statement) and asks for Materialize: never a partial read.
// Materialize copies the input into a temporary table at once (CREATE
// TEMP TABLE ... AS SELECT * FROM __sluice_scan), which any number of
// queries read; the table is in DuckDB's buffer manager, under the memory
// limit, and spills beyond it. A registered input's name is resolved by a
// replacement scan of the database (no catalog entry), or, if the catalog
// has a table or view of that name or it is not a plain identifier, by a
// temporary view. The reader is released, exactly once, when it has been
// read to its end and kept, or when the query that read it ends if it
// could not be kept, or when the session closes (at once if the call
// fails). A reader's error ends the statement with that error (its
// *sluice.Error, or sluice.EUnavailable wrapping it).
//
// # Results
//
// Query executes the statement as a streaming result
// (duckdb_pending_prepared_streaming): DuckDB runs it as the caller reads,
// buffering a bounded part ahead (TestStreamingResultBounded: reading 16M
// rows grows the process by some tens of MiB), and each chunk of at most
// 2048 rows becomes an Arrow batch. Query returns once the first batch is
// ready, so that errors before the first row (most of them) come from
// Query. The reader has the query's column names and DuckDB's Arrow types;
// Release it (Session.Close releases any left). While a result is being
// read, the session runs nothing else (a DuckDB connection runs one
// statement at a time): read it to its end or release it first.
//
// # Limits and errors
//
// Limits apply to each session separately. Errors are *sluice.Error:
//
//   - DuckDB out of memory: sluice.EResource, "the query needs more than N
//     MiB in the sandbox (memory limit); add filters or aggregate at the
//     source". DuckDB spills joins, aggregates, sorts and tables to the
//     database's directory first; what cannot spill (a list aggregate, a
//     distinct aggregate without groups) hits the limit.
//   - spill beyond MaxSpill: sluice.EResource naming the spill limit.
//   - Limits.QueryTime, counted from Engine.Session over every statement
//     and result batch of the session, or a deadline of the caller's
//     context: sluice.EResource naming the time limit; the error unwraps to
//     context.DeadlineExceeded.
//   - a cancelled context, Session.Close or Engine.Close during a
//     statement: sluice.EUnavailable, unwrapping to context.Canceled. The
//     running statement is interrupted (duckdb_interrupt when the context
//     is done, again every 20ms until it stops), within milliseconds.
//   - SQL errors (parser, binder, catalog) and refused statements:
//     sluice.EInvalid with DuckDB's first line.
//   - errors about a value (conversion, overflow, division by zero,
//     invalid input, constraint): sluice.EInvalid naming the kind only;
//     DuckDB's message quotes the value, so it is neither shown nor
//     wrapped.
//   - a query that reads a registered input more than once in a way the
//     engine cannot see before it runs (a recursive query):
//     sluice.EInvalid, asking for Materialize.
//   - misuse: a second query naming a registered input that was too large
//     to keep, a statement while a result is being read, an input name in
//     use or reserved: sluice.EInternal.
//   - anything else: sluice.EInternal.
//
// A Session's methods are serialised and may be called from any
// goroutine; Close may be called at any time, also concurrently with a
// running statement, and releases everything.
package engine
