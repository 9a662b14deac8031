// Package budget keeps differential-privacy budgets per (principal,
// purpose) in the broker's store: a SQLite file, or a PostgreSQL database
// when the store is a postgres:// URL.
//
// A grant that carries a DP budget contributes its epsilon to the limit of
// its (principal, purpose): the limit is the sum over such grants, so a new
// grant adds allowance while everything already spent stays on the books
// (the privacy loss of released answers does not go away). SetLimit is
// idempotent per grant, so loading the grants again at start-up changes
// nothing.
//
// The principal is the grantee the budget belongs to, as the grant names
// it: a user name, or "dept:<id>" for a department grant. The broker
// should reserve against the grantee of the grant that authorises the
// query, so that a department's analysts share the department's budget
// rather than each getting a fresh one.
//
// Epsilon is kept in micro-units (int64 millionths) so that sums never
// drift; every epsilon given is rounded to the nearest millionth and must
// be at least one millionth.
//
// The lifecycle of a query under a DP grant:
//
//  1. Reserve before the query runs: the epsilon is spent atomically, or
//     the query is refused with EDenied and never runs.
//  2. If the query fails before any row has been released to the client
//     (planning, an agent failure before the first batch, a sandbox limit,
//     the gate refusing its first batch), the broker may Refund it.
//  3. Once any row has been released the epsilon stays spent, even if the
//     stream fails later: the noisy values already out consumed it.
package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

// Micro is the number of stored units per unit of epsilon.
const Micro = 1_000_000

// MaxEpsilon bounds any single epsilon (a limit or a reservation), far
// above any meaningful privacy budget and far below int64 overflow.
const MaxEpsilon = 1_000_000

// DefaultBusyTimeout is how long a write waits for another process
// holding the store's write lock (SQLite's busy timeout, PostgreSQL's
// lock_timeout).
const DefaultBusyTimeout = 5 * time.Second

// schema is the budget store's tables, as migrations of the store
// "budget" in schema_migrations (see package sqlstore). Before
// schema_migrations they were created with CREATE … IF NOT EXISTS on every
// open; migration 1 is still written so, and a database from then runs it
// once more, over the tables already there, and records it.
//
// The tables are prefixed dp_ because they share the broker's store with
// the catalog, workflow and audit tables. {int} and {rowid} are filled in
// by the dialect: SQLite orders the ledger by its implicit rowid;
// PostgreSQL has none, so its ledger gets an identity column.
var schema = sqlstore.Schema{Store: "budget", Migrations: []sqlstore.Migration{
	sqlstore.Statements( // 1
		// One row per grant that carries a budget; the limit of a
		// (principal, purpose) is the sum of its rows.
		`CREATE TABLE IF NOT EXISTS dp_budgets (
			principal     TEXT NOT NULL,
			purpose       TEXT NOT NULL,
			grant_id      TEXT NOT NULL,
			epsilon_micro {int} NOT NULL CHECK (epsilon_micro >= 0),
			set_us        {int} NOT NULL,
			PRIMARY KEY (principal, purpose, grant_id)
		)`,
		// The spend ledger: one row per reservation. A refund marks the
		// row; nothing is ever deleted. {rowid} keeps the insertion order
		// for reservations made in the same microsecond.
		`CREATE TABLE IF NOT EXISTS dp_spend (
			{rowid}
			query_id      TEXT PRIMARY KEY,
			principal     TEXT NOT NULL,
			purpose       TEXT NOT NULL,
			epsilon_micro {int} NOT NULL CHECK (epsilon_micro > 0),
			time_us       {int} NOT NULL,
			refunded_us   {int}
		)`,
		`CREATE INDEX IF NOT EXISTS dp_spend_budget ON dp_spend(principal, purpose)`,
	),
}}

// Budget is one (principal, purpose) budget, for `sluice budget`.
type Budget struct {
	Principal string   `json:"principal"`
	Purpose   string   `json:"purpose"`
	Limit     float64  `json:"limit"`
	Spent     float64  `json:"spent"`
	Remaining float64  `json:"remaining"` // max(Limit-Spent, 0)
	Grants    []string `json:"grants"`    // the grants that make up the limit
	Queries   int64    `json:"queries"`   // reservations not refunded
	// LastSpend is the time of the latest reservation not refunded; zero
	// if none.
	LastSpend time.Time `json:"last_spend,omitzero"`
}

// Spend is one ledger row.
type Spend struct {
	QueryID   string    `json:"query_id"`
	Principal string    `json:"principal"`
	Purpose   string    `json:"purpose"`
	Epsilon   float64   `json:"epsilon"`
	Time      time.Time `json:"time"`
	Refunded  time.Time `json:"refunded,omitzero"` // zero unless refunded
}

// Store is the budget store. It is safe for concurrent use, and several
// processes may use the same store: every check-and-spend is one write
// transaction, serialised with other processes' by SQLite's write lock or,
// on PostgreSQL, a transaction-scoped advisory lock.
type Store struct {
	db   *sql.DB
	path string // as messages show it (a URL without its password)
	d    sqlstore.Dialect
	wmu  sync.Mutex // one writer per process; the store serialises processes
	now  func() time.Time
}

// Open opens the budget tables in the store at path, creating them if
// needed: a SQLite file path (the broker's store file is fine; the file is
// created if needed) or a postgres:// or postgresql:// URL (the tables go
// in the URL's schema; the audit log's tables may share it).
func Open(ctx context.Context, path string) (*Store, error) {
	h, err := sqlstore.Open(path, sqlstore.Options{
		What:         "budget store",
		BusyTimeout:  DefaultBusyTimeout,
		SQLitePool:   sqlstore.Pool{MaxOpen: 4, MaxIdle: 4},
		LockTimeout:  DefaultBusyTimeout,
		PostgresPool: sqlstore.Pool{MaxOpen: 4, MaxIdle: 4},
	})
	if err != nil {
		return nil, err
	}
	s := &Store{db: h.DB, path: h.Name, d: h.Dialect, now: time.Now}
	if err := s.init(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// writeLock names the advisory lock that serialises budget writers on
// PostgreSQL.
const writeLock = "sluice_dp_budgets"

func (s *Store) init(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(s.path, "cannot be opened", err)
	}
	defer tx.Rollback()
	if err := schema.Migrate(ctx, tx, s.d); err != nil {
		return storeErr(s.path, "cannot be initialised", err)
	}
	if err := tx.Commit(); err != nil {
		return storeErr(s.path, "cannot be initialised", err)
	}
	return nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func storeErr(path, what string, err error) error {
	return &sluice.Error{
		Code:    sluice.EUnavailable,
		Message: fmt.Sprintf("budget store %s %s: %v", path, what, err),
		Err:     err,
	}
}

// toMicro converts a caller's epsilon to micro-units. zeroOK allows 0
// (a limit); a reservation must be at least one micro-unit.
func toMicro(what string, eps float64, zeroOK bool) (int64, error) {
	if math.IsNaN(eps) || math.IsInf(eps, 0) || eps < 0 {
		return 0, sluice.Errorf(sluice.EInvalid, "%s must be a finite number >= 0; got %v", what, eps)
	}
	if eps > MaxEpsilon {
		return 0, sluice.Errorf(sluice.EInvalid, "%s %v is beyond the maximum %d", what, eps, MaxEpsilon)
	}
	m := int64(math.Round(eps * Micro))
	if m == 0 && !zeroOK {
		return 0, sluice.Errorf(sluice.EInvalid, "%s must be at least 0.000001; got %v", what, eps)
	}
	return m, nil
}

func fromMicro(m int64) float64 { return float64(m) / Micro }

// fmtMicro prints micro-units exactly, without trailing zeros.
func fmtMicro(m int64) string {
	return strconv.FormatFloat(fromMicro(m), 'f', -1, 64)
}

func nonEmpty(what, v string) error {
	if strings.TrimSpace(v) == "" {
		return sluice.Errorf(sluice.EInvalid, "the %s must not be empty", what)
	}
	return nil
}

// SetLimit records that grantID gives principal an epsilon budget for
// purpose. Calling it again for the same grant replaces that grant's
// contribution (so reloading grants is idempotent); 0 withdraws it. The
// limit of (principal, purpose) is the sum over its grants.
func (s *Store) SetLimit(ctx context.Context, principal, purpose string, epsilon float64, grantID string) error {
	for _, c := range [][2]string{{"principal", principal}, {"purpose", purpose}, {"grant id", grantID}} {
		if err := nonEmpty(c[0], c[1]); err != nil {
			return err
		}
	}
	m, err := toMicro("the budget epsilon", epsilon, true)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var owner, ownerPurpose string
		switch err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT principal, purpose FROM dp_budgets WHERE grant_id = ? AND (principal <> ? OR purpose <> ?) LIMIT 1`),
			grantID, principal, purpose).Scan(&owner, &ownerPurpose); {
		case err == nil:
			return sluice.Errorf(sluice.EInvalid, "grant %s already gives a budget to %s for purpose %s; a grant budgets one principal and purpose", grantID, owner, ownerPurpose)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO dp_budgets(principal, purpose, grant_id, epsilon_micro, set_us) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(principal, purpose, grant_id) DO UPDATE SET epsilon_micro = excluded.epsilon_micro, set_us = excluded.set_us`),
			principal, purpose, grantID, m, s.now().UnixMicro())
		return err
	})
}

// Reserve spends epsilon from the budget of (principal, purpose) for
// queryID, before the query runs, and returns what remains. The check and
// the spend are one transaction: concurrent reservations, from this
// process or another, can never together exceed the limit. A reservation
// that would exceed it is refused with EDenied and spends nothing; a
// (principal, purpose) without a budget is refused the same way. The
// ledger records the query id, the time and the epsilon; a query id can
// be reserved once.
func (s *Store) Reserve(ctx context.Context, principal, purpose string, epsilon float64, queryID string) (remaining float64, err error) {
	for _, c := range [][2]string{{"principal", principal}, {"purpose", purpose}, {"query id", queryID}} {
		if err := nonEmpty(c[0], c[1]); err != nil {
			return 0, err
		}
	}
	m, err := toMicro("the query's epsilon", epsilon, false)
	if err != nil {
		return 0, err
	}
	var left int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		var exists int
		switch err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT 1 FROM dp_spend WHERE query_id = ?`), queryID).Scan(&exists); {
		case err == nil:
			return sluice.Errorf(sluice.EInvalid, "query %s already has a budget reservation; each query reserves once", queryID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		limit, spent, grants, err := totals(ctx, tx, s.d, principal, purpose)
		if err != nil {
			return err
		}
		if grants == 0 {
			return sluice.Errorf(sluice.EDenied,
				"%s has no differential-privacy budget for purpose %s; ask the provider for a grant that carries one", principal, purpose)
		}
		left = max(limit-spent, 0)
		if m > left {
			return sluice.Errorf(sluice.EDenied,
				"this query would spend ε=%s but only %s of the %s budget for purpose %s remains; ask the provider for a new grant",
				fmtMicro(m), fmtMicro(left), fmtMicro(limit), purpose)
		}
		if _, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO dp_spend(query_id, principal, purpose, epsilon_micro, time_us) VALUES (?, ?, ?, ?, ?)`),
			queryID, principal, purpose, m, s.now().UnixMicro()); err != nil {
			return err
		}
		left -= m
		return nil
	})
	if err != nil {
		return 0, err
	}
	return fromMicro(left), nil
}

// Refund returns the epsilon reserved for queryID to its budget. The
// broker may call it only when the query failed before any row was
// released to the client; once a row is out the epsilon stays spent.
// (A refusal that depends on the data, such as the row cap, is itself an
// unnoised answer; refunding it costs nothing extra the budget could have
// protected.) The ledger row stays, marked refunded. Refunding twice is a
// no-op; an unknown query id is ENotFound.
func (s *Store) Refund(ctx context.Context, queryID string) error {
	if err := nonEmpty("query id", queryID); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.Rebind(`UPDATE dp_spend SET refunded_us = ? WHERE query_id = ? AND refunded_us IS NULL`), s.now().UnixMicro(), queryID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		var exists int
		switch err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT 1 FROM dp_spend WHERE query_id = ?`), queryID).Scan(&exists); {
		case err == nil:
			return nil // already refunded
		case errors.Is(err, sql.ErrNoRows):
			return sluice.Errorf(sluice.ENotFound, "query %s has no budget reservation to refund", queryID)
		default:
			return err
		}
	})
}

// Remaining returns the limit and the epsilon spent (reservations not
// refunded) of (principal, purpose). A pair without a budget is
// ENotFound. Spent may exceed limit if a grant's budget was withdrawn
// after being used.
func (s *Store) Remaining(ctx context.Context, principal, purpose string) (limit, spent float64, err error) {
	if err := nonEmpty("principal", principal); err != nil {
		return 0, 0, err
	}
	if err := nonEmpty("purpose", purpose); err != nil {
		return 0, 0, err
	}
	l, sp, grants, err := totals(ctx, s.db, s.d, principal, purpose)
	if err != nil {
		return 0, 0, storeErr(s.path, "cannot be read", err)
	}
	if grants == 0 {
		return 0, 0, sluice.Errorf(sluice.ENotFound, "%s has no differential-privacy budget for purpose %s", principal, purpose)
	}
	return fromMicro(l), fromMicro(sp), nil
}

// List returns principal's budgets, by purpose.
func (s *Store) List(ctx context.Context, principal string) ([]Budget, error) {
	if err := nonEmpty("principal", principal); err != nil {
		return nil, err
	}
	// The grants of a budget, newline-separated (grant ids are single
	// tokens).
	grants := `group_concat(grant_id, char(10))`
	if s.d.IsPostgres() {
		grants = `string_agg(grant_id, E'\n')`
	}
	// Sums are cast back to integers: PostgreSQL sums BIGINT as NUMERIC.
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(`
		SELECT b.purpose, b.lim, b.grants,
			CAST(COALESCE((SELECT SUM(epsilon_micro) FROM dp_spend d WHERE d.principal = b.principal AND d.purpose = b.purpose AND d.refunded_us IS NULL), 0) AS BIGINT),
			(SELECT COUNT(*) FROM dp_spend d WHERE d.principal = b.principal AND d.purpose = b.purpose AND d.refunded_us IS NULL),
			COALESCE((SELECT MAX(time_us) FROM dp_spend d WHERE d.principal = b.principal AND d.purpose = b.purpose AND d.refunded_us IS NULL), 0)
		FROM (SELECT principal, purpose, CAST(SUM(epsilon_micro) AS BIGINT) AS lim, `+grants+` AS grants
			FROM dp_budgets WHERE principal = ? GROUP BY principal, purpose) b
		ORDER BY b.purpose`), principal)
	if err != nil {
		return nil, storeErr(s.path, "cannot be read", err)
	}
	defer rows.Close()
	var out []Budget
	for rows.Next() {
		var b Budget
		var lim, spent, last int64
		var grants string
		if err := rows.Scan(&b.Purpose, &lim, &grants, &spent, &b.Queries, &last); err != nil {
			return nil, storeErr(s.path, "cannot be read", err)
		}
		b.Principal = principal
		b.Limit, b.Spent, b.Remaining = fromMicro(lim), fromMicro(spent), fromMicro(max(lim-spent, 0))
		b.Grants = strings.Split(grants, "\n")
		slices.Sort(b.Grants)
		if last != 0 {
			b.LastSpend = time.UnixMicro(last).UTC()
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(s.path, "cannot be read", err)
	}
	return out, nil
}

// Ledger returns the spend ledger of (principal, purpose), oldest first,
// refunded reservations included.
func (s *Store) Ledger(ctx context.Context, principal, purpose string) ([]Spend, error) {
	if err := nonEmpty("principal", principal); err != nil {
		return nil, err
	}
	if err := nonEmpty("purpose", purpose); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(`SELECT query_id, epsilon_micro, time_us, COALESCE(refunded_us, 0) FROM dp_spend
		WHERE principal = ? AND purpose = ? ORDER BY time_us, `+s.d.RowOrder()), principal, purpose)
	if err != nil {
		return nil, storeErr(s.path, "cannot be read", err)
	}
	defer rows.Close()
	var out []Spend
	for rows.Next() {
		sp := Spend{Principal: principal, Purpose: purpose}
		var m, t, r int64
		if err := rows.Scan(&sp.QueryID, &m, &t, &r); err != nil {
			return nil, storeErr(s.path, "cannot be read", err)
		}
		sp.Epsilon, sp.Time = fromMicro(m), time.UnixMicro(t).UTC()
		if r != 0 {
			sp.Refunded = time.UnixMicro(r).UTC()
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(s.path, "cannot be read", err)
	}
	return out, nil
}

// totals returns the limit, the unrefunded spend and the number of grants
// of (principal, purpose), in micro-units.
func totals(ctx context.Context, q sqlstore.Querier, d sqlstore.Dialect, principal, purpose string) (limit, spent, grants int64, err error) {
	err = q.QueryRowContext(ctx, d.Rebind(`SELECT
			CAST(COALESCE((SELECT SUM(epsilon_micro) FROM dp_budgets WHERE principal = ? AND purpose = ?), 0) AS BIGINT),
			CAST(COALESCE((SELECT SUM(epsilon_micro) FROM dp_spend WHERE principal = ? AND purpose = ? AND refunded_us IS NULL), 0) AS BIGINT),
			(SELECT COUNT(*) FROM dp_budgets WHERE principal = ? AND purpose = ?)`),
		principal, purpose, principal, purpose, principal, purpose).Scan(&limit, &spent, &grants)
	return limit, spent, grants, err
}

// write runs f in one write transaction, serialised with the process's
// other writers and, through the store's lock (BEGIN IMMEDIATE in SQLite,
// an advisory lock in PostgreSQL), with other processes'. One lock for all
// budgets mirrors SQLite's single writer: reservations are short, and the
// grant check of SetLimit spans principals. *sluice.Error results pass
// through; anything else is the store failing.
func (s *Store) write(ctx context.Context, f func(*sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(s.path, "cannot be written", err)
	}
	defer tx.Rollback()
	if err := s.d.Lock(ctx, tx, writeLock); err != nil {
		return storeErr(s.path, "cannot be written", err)
	}
	if err := f(tx); err != nil {
		var se *sluice.Error
		if errors.As(err, &se) {
			return err
		}
		return storeErr(s.path, "cannot be written", err)
	}
	if err := tx.Commit(); err != nil {
		return storeErr(s.path, "cannot be written", err)
	}
	return nil
}
