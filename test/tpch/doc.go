// Package tpch is the TPC-H yardstick for Sluice's SQL support: a
// deterministic generator of the eight TPC-H tables, writers for the
// department databases, and the 22 queries.
//
// # Data
//
// Rows and Generate produce the tables after the TPC-H specification
// (v3, clause 4.2): the cardinalities per scale factor (SF 0.01: 5
// regions, 25 nations, 100 suppliers, 1,500 customers, 2,000 parts, 8,000
// partsupps, 15,000 orders, about 60,000 lineitems), sparse order keys,
// customers a third of whom have no orders, the word lists for part
// names, types, containers, segments, priorities, ship modes and
// instructions, dates in 1992-01-01 … 1998-12-31 with the spec's
// derivations, return flags and line statuses against CURRENTDATE
// 1995-06-17, the retail-price formula, order totals from their lines,
// phone numbers whose country code is the nation key + 10, and comments
// cut from a pseudo-text of the spec's grammar (with "special …
// requests" in some order comments and "Customer … Complaints" in some
// supplier comments, for Q13 and Q16). The data is not dbgen's byte for
// byte, but it follows the same rules, so the queries' answers have the
// same shape. A fixed seed (math/rand/v2 PCG, one stream per table) makes
// the same scale factor give the same rows every time. Rows are
// generated as they are read.
//
// # Departments
//
// The tables are split into three departments (Departments), each its own
// database behind its own agent:
//
//	trade      orders, lineitem
//	customers  customer, nation, region
//	supply     part, partsupp, supplier
//
// Query(n) names every table department.table (trade.lineitem,
// customers.nation, supply.part), as an analyst writes it to the broker;
// QueryWith names them otherwise, e.g. in one PostgreSQL schema.
//
// # Databases
//
// Load writes tables into SQLite (one transaction, journal and syncs off),
// PostgreSQL (COPY) or MySQL/MariaDB (multi-row INSERTs), with primary
// keys; WriteSQLite writes one SQLite file per department. Decimals are
// DECIMAL(15,2), dates DATE (in SQLite 'YYYY-MM-DD' text in a column
// declared DATE), text VARCHAR(n) (the spec's CHAR(n) too, so that no
// database pads values).
//
// # Reference answers
//
// With the build tag duckdb_arrow, LoadDuckDB loads the tables into DuckDB
// under the department schemas and DuckDBAnswers returns DuckDB's answers
// to the 22 queries, for comparing the broker's with (SameAnswer).
package tpch
