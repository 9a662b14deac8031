// Package sandbox is where department slices meet: Arrow-native, pull-based
// operators (hash join, hash aggregation, sort, limit, distinct, filter,
// projection) over record batches, under a per-query memory budget and
// deadline. Nothing is written to disk.
//
// # Queries and limits
//
//	q := sandbox.NewQuery(sandbox.Limits{Memory: 512 * sandbox.MiB, Time: 30 * time.Second}, nil)
//
// A Query carries the limits of one analyst query. Every operator is built
// from it and shares its Budget:
//
//   - Memory: q.Allocator() is a memory.Allocator counting the live bytes of
//     every Arrow buffer allocated through it (give it to the Flight/IPC
//     reader of agent streams, ipc.WithAllocator, so incoming batches count
//     too); materialising operators add explicit reservations for their
//     Go-side structures (hash tables, sort permutations, aggregate states,
//     distinct sets), calibrated against measured Go map sizes. A
//     reservation that would exceed the limit fails at once; an Arrow
//     allocation cannot fail, so an overrun is recorded and the query ends
//     at the next check (between batches, and every few thousand rows).
//     Budget.Peak is the high-water mark. Exceeding the limit ends the query
//     with sluice.EResource: "the query needs more than N MiB in the sandbox
//     (memory limit); add filters or aggregate at the source".
//   - Time: Limits.Time from NewQuery, and any deadline of the context given
//     to Next. Exceeding either ends the query with sluice.EResource naming
//     the time limit. A cancelled context ends it with an error that
//     unwraps to context.Canceled (code sluice.EUnavailable).
//   - Batches: every operator emits batches of at most Limits.BatchSize
//     rows (DefaultBatchSize, 4096); sources split larger batches.
//
// # Operators
//
// An Operator is Schema() / Next(ctx) (arrow.Record, error) / Close(). Next
// returns a batch the caller owns (Release it) or io.EOF at the end. Close
// releases everything the operator holds, closes its inputs, and is
// idempotent; always call it, also after an error. Operators take over
// their inputs: closing the root closes the tree.
//
//	q.Scan(schema, recs...)         // records in memory (tests, small inputs)
//	q.FromReader(rdr)               // an array.RecordReader, e.g. an agent's Flight stream
//	q.Filter(in, pred)              // rows where pred is TRUE
//	q.Project(in, items)            // []planner.SelectItem: expressions with aliases
//	q.HashJoin(left, right, lk, rk, sandbox.InnerJoin|sandbox.LeftJoin, sandbox.JoinOptions{...})
//	q.HashAggregate(in, groupBy, []sandbox.Agg{...})
//	q.Sort(in, []sandbox.SortKey{{Column: "x", Desc: true, NullsFirst: false}})
//	q.Limit(in, n, offset)          // n < 0: no limit; stops pulling once n rows are out
//	q.Distinct(in)
//	sandbox.Collect(ctx, op)        // drain into memory (tests, small results)
//
// Every constructor validates against its input's schema and fails with a
// *sluice.Error (EInvalid, ENotSupported); runtime failures are
// *sluice.Error too. Nothing panics on bad input: a batch that does not
// match its operator's declared schema is an EInternal error.
//
// # Expressions
//
// Filter, Project and the join residual evaluate planner.Expr, vectorised
// per batch. Columns are referenced by output column name of the input
// schema (exact match first, then a unique case-insensitive match).
// Supported: literals; + - * (integer overflow is EInvalid), / (always
// float, NULL on division by zero), % (integers, NULL on zero); = <> < <= >
// >= with numeric widening (integer < decimal < float), date/timestamp
// comparison, and string literals compared with dates ('2020-01-01',
// '2020-01-01 10:00:00', RFC 3339; UTC); AND/OR/NOT with SQL three-valued
// logic; IS [NOT] NULL; [NOT] IN (NULL-aware: x NOT IN (1, NULL) is NULL);
// [NOT] BETWEEN; [NOT] LIKE (% and _ over characters, backslash escapes
// the next character, case-sensitive); CASE (searched and with operand);
// lower, upper, length (characters), substr (1-based characters), trim
// (spaces), abs, round (half away from zero; integers and floats give a
// float, decimals a decimal), coalesce.
//
// Types: int64 (int32 read as int64), float64 (float32 read as float64),
// decimal128 (computed at scale 4, emitted as decimal128(38,4)), utf8,
// binary (blinded join keys: equality and IS NULL), bool, date64 (date32
// read as date64), timestamp (any unit, computed and emitted as
// timestamp[us, UTC]). A computed column carries the "sluice.type" field
// metadata; a bare column reference passes the input field through.
//
// # Hash join
//
// The right input is the build side, materialised into one array per
// column under the budget; the left input streams. Keys may be of any
// supported type, including binary; key pairs of compatible types are
// compared at their common type (integer with decimal or float, date with
// timestamp, text with binary); NULL keys never match. A single
// integer-like key uses an int64 hash map, others an encoded-bytes map.
// The output is left's columns then right's; right columns whose name
// clashes with a left column get JoinOptions.RightPrefix (default
// "right_"). JoinOptions.Residual is a condition over the joined row
// (names as in the output schema) that a pair must satisfy; for a LEFT join
// a left row none of whose pairs satisfies it is emitted once with NULL
// right columns. Unmatched left rows of a LEFT join come after the matches
// of their input batch.
//
// # Aggregation
//
// HashAggregate groups by columns (NULLs form one group; groups come out in
// order of first appearance) with Agg{Func, Column, Alias}: count,
// count_star, count_distinct, sum, avg, min, max, units. SUM of integers is
// int64 (accumulated in 128 bits; a total beyond int64 is EInvalid
// "integer overflow in SUM"), of floats float64, of decimals decimal(38,4);
// AVG is float64; MIN/MAX keep the input type; NULLs are ignored; without
// group-by an empty input gives one row (counts 0, others NULL).
//
// The minimum group size counts persons, not rows: units (AggUnits)
// collects a group's non-NULL 8-byte pseudonyms of a protected dataset's
// persons into one binary value, one such column per contributor set, and
// the release gate (sandbox/gate, format UnitPseudonyms) right after the
// aggregate suppresses every group in which one of them holds fewer than k
// distinct persons, then replaces each by its sketch. A group's number of
// rows plays no part in it.
//
// # Sort, limit, distinct
//
// Sort materialises its input under the budget and is stable; NULLs sort
// last unless SortKey.NullsFirst, in either direction. Limit skips offset
// rows, passes n and stops pulling its input as soon as it has them.
// Distinct streams the first occurrence of every distinct row (NULLs equal).
package sandbox
