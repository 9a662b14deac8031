// Package sandbox is where department slices meet: the part of a
// cross-department query that no single department can run (joins across
// datasets, the aggregates and everything above them) runs at the broker,
// over the fragments' Arrow streams, in embedded DuckDB. The package holds
// the hand-off between the two worlds (this file's siblings); its
// subpackages hold the engine (sandbox/engine), the release gate
// (sandbox/gate) and the person sketches the gate keeps (sandbox/sketch).
//
// # How a cross-department plan runs
//
// The planner splits an analyst's query into fragments, one per dataset,
// which the departments' agents run, and a sandbox plan (planner.Node)
// over the fragments' outputs. broker/execute.go runs the plan:
//
//  1. Compile (crossPlan.compile). Each fragment's Arrow schema becomes a
//     relation whose columns have the types the sandbox reads them as
//     (DuckDBColumns). planner.RenderDuckDB (planner/render_duckdb.go)
//     renders the plan as one DuckDB SELECT from the plan alone: every
//     literal a bind parameter, every identifier quoted, every operand
//     cast to the sandbox's computation type, so that the answer does not
//     depend on DuckDB's own typing rules (the renderer's documentation
//     lists each rule). Whatever cannot be computed so is refused there,
//     before any data moves. DuckDBSchema of the rendered columns is the
//     schema promised to the client. When the release is aggregate-only
//     (a minimum group size in persons, or a differential-privacy
//     budget), the plan is rendered in two queries: up to and including
//     the outermost aggregate, and the rest over the aggregate's gated
//     output.
//  2. Run (crossPlan.run) in a session of the engine (sandbox/engine): a
//     private, locked-down, in-memory DuckDB database for this query
//     alone. Each fragment's stream is registered as a table (copied in
//     once, through the Arrow C stream interface), the query runs, and its
//     result comes back as Arrow batches, each converted to the promised
//     schema (ConformDuckDB: DuckDB's date32 becomes date64, the
//     promised names, metadata and timestamp zone).
//  3. Gate (sandbox/gate). Right after the outermost aggregate, the gate
//     suppresses every group in which a contributor set holds fewer than
//     k distinct persons (the units() aggregate collects each group's
//     8-byte pseudonyms of a protected dataset's persons), adds Laplace
//     noise under a budget, and replaces the pseudonyms by sketches; the
//     groups that pass are registered in the session and the rest of the
//     plan runs over them. The last gate checks the row cap, strips the
//     sketches and keeps them for the differencing guard.
//
// # What the sandbox guarantees
//
// Every session runs under the broker's limits (engine.Limits, from the
// configuration's sandbox_* settings), each query separately:
//
//   - Memory: DuckDB's memory limit. Inputs, joins, aggregates and sorts
//     beyond it spill to the session's own directory (0700, removed when
//     the session closes) instead of failing; what cannot spill (a list
//     aggregate such as units() over one huge group) fails with
//     sluice.EResource naming the memory limit.
//   - Spill: the space a query may spill; beyond it sluice.EResource naming
//     the spill limit.
//   - Time: the wall-clock limit from the session's start, or the
//     caller's deadline: sluice.EResource naming the time limit. A
//     cancelled context interrupts DuckDB within milliseconds with an
//     error that unwraps to context.Canceled.
//   - Lockdown: no file or network access (but to the spill directory),
//     no extension installed or loaded beyond those built in, the
//     configuration locked, and only single SELECT statements; the
//     settings are verified when the session opens and a mismatch fails
//     it.
//   - Errors are *sluice.Error. DuckDB's messages about values (an
//     overflow quotes its operands) are withheld, never shown nor
//     wrapped.
//
// The semantics are those of the hand-written Arrow operators the sandbox
// had before: NULL handling, types, integer overflow as an error, LIKE
// with backslash escapes, division and modulo by zero as NULL, NULLs first
// ascending and last descending. The package's tests hold the engine path
// to those operators' recorded answers (testdata/engine, see
// golden_test.go), run as the broker runs a plan (path_test.go); the
// sandbox tests need DuckDB's Arrow interface: go test -tags duckdb_arrow.
package sandbox
