// Package guard is the differencing guard of aggregate-only releases, and
// its store.
//
// A k-anonymous release promises that every group it shows stands for at
// least k distinct persons. Two such releases can still be subtracted: if
// the persons behind a group today differ from those behind a group
// released earlier by 1 to k-1 persons, the difference of the two
// aggregates is an aggregate of those few persons. The guard remembers,
// for every group released, a sketch of the set of persons behind it
// (package sandbox/sketch, over the agents' keyed pseudonyms of package
// crypto/pseudonym; the broker never sees who the persons are), and
// refuses an answer any of whose groups differs from an earlier release in
// the same scope, or from another group of the same answer, by at least 1
// and fewer than k persons. Groups that are identical to an earlier one
// (the same persons, each with the same number of rows) are no difference:
// a rerun of a query over unchanged data passes.
//
// A scope is the grantee department and the protected dataset: releases
// are compared within a scope only, because pseudonyms are keyed per
// scope by the agents and the department is who could subtract them.
//
// # What it does not do
//
//   - It stops differencing between two releases. Three or more releases,
//     each pair of which differs by k persons or more, can still be
//     combined to isolate someone (A − B − C where B and C together cover
//     all but one person of A). Only differential privacy bounds what any
//     combination of releases reveals; the catalog or policy should
//     require a DP budget for data where that matters.
//   - It remembers releases for the retention period (365 days by default,
//     WithRetention); older releases are forgotten and can be differenced
//     against. Changing the retention applies to releases committed after
//     the change.
//   - Comparisons rely on the agents' pseudonyms: when an agent's
//     pseudonym key is rotated, the persons of later releases can no longer
//     be matched with those of earlier ones, and the guard will take the
//     two for far apart. Keep agents' keys at least as long as the
//     retention period.
//   - The index of remembered releases lives in the broker process, loaded
//     when the store is opened. Two broker processes sharing one store do
//     not see each other's releases until they reopen it, so the guard
//     assumes one broker per store.
//   - A refusal itself tells the analyst that the groups asked for are
//     close to an earlier release, though not by how many persons.
//
// # Lifecycle of an answer
//
// Once the sandbox has computed an aggregate answer and the sketches of
// its groups, and before any row leaves, the broker calls Admit. A refusal
// (EDenied) means nothing may be released. On success the scopes of the
// answer stay locked until the Ticket is committed or aborted, so that two
// concurrent answers in one scope cannot both pass against the old
// history: Commit persists the sets (one transaction) before the first row
// is released, and a Commit error (EUnavailable) means nothing may be
// released either. Abort forgets the sets when the answer is not released
// at all. Every ticket must be committed or aborted; `defer t.Abort()`
// right after Admit is safe, since Abort after Commit does nothing.
package guard

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
	"github.com/sluice-gov/sluice/sandbox/sketch"
)

// DefaultRetention is how long a release is remembered unless
// WithRetention says otherwise.
const DefaultRetention = 365 * 24 * time.Hour

// DefaultBusyTimeout is how long a write waits for another process
// holding the store's write lock (SQLite's busy timeout, PostgreSQL's
// lock_timeout).
const DefaultBusyTimeout = 5 * time.Second

// purgeEvery is how often Admit removes expired releases from the store,
// and from a scope's index.
const purgeEvery = time.Hour

// Scope is where releases are compared: the grantee department and the
// protected dataset.
type Scope struct {
	Department string // the grantee department, e.g. "civil"
	Dataset    string // the protected dataset, e.g. "health.insured"
}

func (s Scope) compare(o Scope) int {
	return cmp.Or(strings.Compare(s.Department, o.Department), strings.Compare(s.Dataset, o.Dataset))
}

// Set is the set of persons behind one released group.
type Set struct {
	Scope  Scope
	K      int    // the minimum group size in force for this release
	Sketch []byte // the serialised sketch (sandbox/sketch) of the group's units
	// Label names the group in messages, e.g. "group 2"; it must not hold
	// a data value. Empty means "group <n>", n counting the sets from 1.
	Label string
}

// schema is the guard's table, as migrations of the store "guard" in
// schema_migrations (see package sqlstore). Before schema_migrations it
// was created with CREATE … IF NOT EXISTS on every open; migration 1 is
// still written so, and a database from then runs it once more, over the
// table already there, and records it.
//
// The table is prefixed guard_ because it shares the broker's store with
// the catalog, workflow, budget and audit tables. {int}, {blob} and {id}
// are filled in by the dialect; ids are never reused, so a row purged
// meanwhile cannot be mistaken for a new one.
var schema = sqlstore.Schema{Store: "guard", Migrations: []sqlstore.Migration{
	sqlstore.Statements( // 1
		// One row per remembered group. A rerun whose group is identical
		// to a remembered one refreshes that row (expires_us, k) instead
		// of adding another.
		`CREATE TABLE IF NOT EXISTS guard_releases (
			{id},
			department  TEXT NOT NULL,
			dataset     TEXT NOT NULL,
			query_id    TEXT NOT NULL,
			principal   TEXT NOT NULL,
			k           {int} NOT NULL CHECK (k >= 1),
			units       {int} NOT NULL CHECK (units >= 0),
			sketch      {blob} NOT NULL,
			released_us {int} NOT NULL,
			expires_us  {int} NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS guard_releases_scope ON guard_releases(department, dataset)`,
		`CREATE INDEX IF NOT EXISTS guard_releases_expiry ON guard_releases(expires_us)`,
	),
}}

// Option configures Open.
type Option func(*config)

type config struct {
	retention time.Duration
	now       func() time.Time
}

// WithRetention sets how long releases are remembered (default 365
// days). Releases older than this are purged from the store and the index
// and can no longer stop a release.
func WithRetention(d time.Duration) Option { return func(c *config) { c.retention = d } }

// WithClock sets the clock (for tests).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Store is the guard's memory of releases. It is safe for concurrent use
// by one process (see the package documentation).
type Store struct {
	db        *sql.DB
	path      string // as messages show it (a URL without its password)
	d         sqlstore.Dialect
	now       func() time.Time
	retention time.Duration
	wmu       sync.Mutex // one writer per process

	mu        sync.Mutex // guards scopes and lastPurge
	scopes    map[Scope]*scopeState
	lastPurge time.Time
}

// scopeState is one scope's index and admission lock.
type scopeState struct {
	scope Scope
	// lock is held from Admit to Commit or Abort. Whoever holds it may
	// read entries and maxK; changing them also takes mu.
	lock chan struct{}
	// mu guards entries and maxK for readers that do not hold lock
	// (Stats).
	mu      sync.Mutex
	entries []*entry // sorted by units, then id
	maxK    int      // the largest k among entries
	purged  time.Time
}

type entry struct {
	id       int64
	queryID  string
	k        int
	units    int
	sk       *sketch.Sketch
	released int64 // µs
	expires  int64 // µs
}

func cmpEntry(a, b *entry) int { return cmp.Or(cmp.Compare(a.units, b.units), cmp.Compare(a.id, b.id)) }

// Open opens the guard's table in the store at path, creating it if
// needed, purges expired releases and loads the others: a SQLite file path
// (the broker's store file is fine; the file is created if needed) or a
// postgres:// or postgresql:// URL. A stored release that cannot be read
// is an error: the store is damaged, and the guard does not start without
// its history.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	c := config{retention: DefaultRetention, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.retention <= 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "the differencing guard's retention must be positive; got %v", c.retention)
	}
	if c.now == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "the differencing guard's clock is nil")
	}
	h, err := sqlstore.Open(path, sqlstore.Options{
		What:         "guard store",
		BusyTimeout:  DefaultBusyTimeout,
		SQLitePool:   sqlstore.Pool{MaxOpen: 4, MaxIdle: 4},
		LockTimeout:  DefaultBusyTimeout,
		PostgresPool: sqlstore.Pool{MaxOpen: 4, MaxIdle: 4},
	})
	if err != nil {
		return nil, err
	}
	s := &Store{db: h.DB, path: h.Name, d: h.Dialect, now: c.now, retention: c.retention, scopes: map[Scope]*scopeState{}}
	if err := s.write(ctx, "cannot be initialised", func(tx *sql.Tx) error { return schema.Migrate(ctx, tx, s.d) }); err != nil {
		s.db.Close()
		return nil, err
	}
	now := s.now()
	if err := s.purge(ctx, now); err != nil {
		s.db.Close()
		return nil, err
	}
	s.lastPurge = now
	if err := s.load(ctx, now); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// purge deletes the releases expired at now from the store.
func (s *Store) purge(ctx context.Context, now time.Time) error {
	return s.write(ctx, "cannot be purged", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.Rebind(`DELETE FROM guard_releases WHERE expires_us <= ?`), now.UnixMicro())
		return err
	})
}

// load reads every unexpired release into the index.
func (s *Store) load(ctx context.Context, now time.Time) error {
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(`SELECT id, department, dataset, query_id, k, units, sketch, released_us, expires_us
		FROM guard_releases WHERE expires_us > ? ORDER BY id`), now.UnixMicro())
	if err != nil {
		return storeErr(s.path, "cannot be read", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e entry
		var sc Scope
		var data sql.RawBytes
		if err := rows.Scan(&e.id, &sc.Department, &sc.Dataset, &e.queryID, &e.k, &e.units, &data, &e.released, &e.expires); err != nil {
			return storeErr(s.path, "cannot be read", err)
		}
		sk, err := sketch.Parse(data)
		switch {
		case err != nil:
			return s.damaged(e.id, e.queryID, "its unit sketch is malformed (%v)", err)
		case sk.Units() != e.units:
			return s.damaged(e.id, e.queryID, "it records %d units but its sketch holds %d", e.units, sk.Units())
		case e.k < 1:
			return s.damaged(e.id, e.queryID, "its minimum group size is %d", e.k)
		case sc.Department == "" || sc.Dataset == "":
			return s.damaged(e.id, e.queryID, "it has no department or dataset")
		}
		e.sk = sk
		st := s.scopeOf(sc)
		st.entries = append(st.entries, &e)
		st.maxK = max(st.maxK, e.k)
	}
	if err := rows.Err(); err != nil {
		return storeErr(s.path, "cannot be read", err)
	}
	for _, st := range s.scopes {
		slices.SortFunc(st.entries, cmpEntry)
		st.purged = now
	}
	return nil
}

func (s *Store) damaged(id int64, queryID, format string, args ...any) error {
	return sluice.Errorf(sluice.EUnavailable,
		"guard store %s is damaged: release %d (query %s) cannot be used: %s. The differencing guard does not start without its history: restore the store from a backup (deleting the row would forget that release)",
		s.path, id, queryID, fmt.Sprintf(format, args...))
}

// Close closes the store. Tickets not yet committed can no longer be.
func (s *Store) Close() error { return s.db.Close() }

func storeErr(path, what string, err error) error {
	return &sluice.Error{
		Code:    sluice.EUnavailable,
		Message: fmt.Sprintf("guard store %s %s: %v", path, what, err),
		Err:     err,
	}
}

// write runs f in one write transaction, serialised with the process's
// other writers (and, in SQLite, with other processes' by BEGIN
// IMMEDIATE). Any error is the store failing.
func (s *Store) write(ctx context.Context, what string, f func(*sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(s.path, what, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return storeErr(s.path, what, err)
	}
	if err := tx.Commit(); err != nil {
		return storeErr(s.path, what, err)
	}
	return nil
}

// scopeOf returns the state of a scope, creating it.
func (s *Store) scopeOf(sc Scope) *scopeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.scopes[sc]
	if st == nil {
		st = &scopeState{scope: sc, lock: make(chan struct{}, 1)}
		s.scopes[sc] = st
	}
	return st
}

// pending is one set of an answer being admitted.
type pending struct {
	pos   int // in the answer
	set   Set
	label string
	sk    *sketch.Sketch
	units int
	// dup is the remembered release this set is identical to, if any:
	// Commit refreshes it instead of adding a row.
	dup *entry
	// same marks a set identical to an earlier set of the same answer:
	// Commit stores it once.
	same bool
}

// Ticket is an admitted answer whose sets are not yet remembered. Its
// scopes stay locked until Commit or Abort.
type Ticket struct {
	s         *Store
	queryID   string
	principal string
	sets      []*pending
	locked    []*scopeState

	mu   sync.Mutex
	done bool
}

// Admit checks the sets of one answer, query queryID by principal,
// against every remembered release in their scopes and against each
// other. If any two differ by at least 1 and fewer than k persons (k the
// larger of their K), or cannot be shown not to, it refuses with EDenied,
// naming the group and the earlier query and its time, or the other group
// of the answer, but never the number of persons; the error's Reasons hold
// one line starting "differencing_guard: <dataset>". A set identical to a
// remembered release passes.
//
// On success the scopes of the sets are locked until the Ticket is
// committed or aborted; Admit waits for answers holding them, as long as
// ctx allows. A set whose sketch is malformed, or smaller than its K
// needs, is an EInternal error: the broker built it wrong.
func (s *Store) Admit(ctx context.Context, queryID, principal string, sets []Set) (*Ticket, error) {
	if strings.TrimSpace(queryID) == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the differencing guard needs the query id")
	}
	if strings.TrimSpace(principal) == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the differencing guard needs the principal")
	}
	ps := make([]*pending, len(sets))
	var scopes []Scope
	for i, set := range sets {
		label := set.Label
		if label == "" {
			label = fmt.Sprintf("group %d", i+1)
		}
		if set.Scope.Department == "" || set.Scope.Dataset == "" {
			return nil, sluice.Errorf(sluice.EInvalid, "the result's %s has no department or dataset for the differencing guard", label)
		}
		if set.K < 1 {
			return nil, sluice.Errorf(sluice.EInvalid, "the result's %s on %s has minimum group size %d; it must be at least 1", label, set.Scope.Dataset, set.K)
		}
		sk, err := sketch.Parse(set.Sketch)
		if err != nil {
			return nil, &sluice.Error{Code: sluice.EInternal,
				Message: fmt.Sprintf("the result's %s on %s has a malformed unit sketch: %v", label, set.Scope.Dataset, sluice.ErrorMessage(err)), Err: err}
		}
		if sk.Cells() < sketch.CellsFor(set.K) {
			return nil, sluice.Errorf(sluice.EInternal, "the result's %s on %s has a unit sketch of %d cells per subtable; minimum group size %d needs %d",
				label, set.Scope.Dataset, sk.Cells(), set.K, sketch.CellsFor(set.K))
		}
		ps[i] = &pending{pos: i, set: set, label: label, sk: sk, units: sk.Units()}
		scopes = append(scopes, set.Scope)
	}
	slices.SortFunc(scopes, Scope.compare)
	scopes = slices.Compact(scopes)

	t := &Ticket{s: s, queryID: queryID, principal: principal, sets: ps}
	for _, sc := range scopes {
		st := s.scopeOf(sc)
		select {
		case st.lock <- struct{}{}:
			t.locked = append(t.locked, st)
		case <-ctx.Done():
			t.unlock()
			return nil, &sluice.Error{Code: sluice.EUnavailable,
				Message: fmt.Sprintf("another answer on %s is being released and this one could not wait for it: %v; try again", sc.Dataset, ctx.Err()),
				Err:     ctx.Err()}
		}
	}
	ok := false
	defer func() {
		if !ok {
			t.unlock()
		}
	}()

	now := s.now()
	s.maybePurge(ctx, now)
	nowUS := now.UnixMicro()
	byScope := map[Scope]*scopeState{}
	for _, st := range t.locked {
		byScope[st.scope] = st
		if now.Sub(st.purged) >= purgeEvery {
			st.forget(nowUS)
			st.purged = now
		}
	}
	for _, p := range ps {
		if err := byScope[p.set.Scope].check(p, nowUS); err != nil {
			return nil, err
		}
	}
	if err := checkAnswer(ps); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

// maybePurge deletes expired releases from the store at most once per
// purgeEvery. A failure does not stop the answer (expired releases are
// ignored anyway); it is retried a minute later.
func (s *Store) maybePurge(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastPurge) >= purgeEvery
	if due {
		s.lastPurge = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if err := s.purge(ctx, now); err != nil {
		s.mu.Lock()
		s.lastPurge = now.Add(time.Minute - purgeEvery)
		s.mu.Unlock()
	}
}

// forget drops the entries expired at now. The caller holds st.lock.
func (st *scopeState) forget(now int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.entries = slices.DeleteFunc(st.entries, func(e *entry) bool { return e.expires <= now })
	st.maxK = 0
	for _, e := range st.entries {
		st.maxK = max(st.maxK, e.k)
	}
}

// check compares p with the remembered releases of its scope. Only those
// whose number of units is within k-1 of p's can be near (two sets whose
// unit counts differ by d differ by at least d persons), and the entries
// are sorted by units, so the candidates are one run found by binary
// search. The caller holds st.lock.
func (st *scopeState) check(p *pending, now int64) error {
	w := max(p.set.K, st.maxK) - 1
	lo, _ := slices.BinarySearchFunc(st.entries, p.units-w, func(e *entry, u int) int { return cmp.Compare(e.units, u) })
	for _, e := range st.entries[lo:] {
		if e.units > p.units+w {
			break
		}
		if e.expires <= now {
			continue
		}
		k := max(p.set.K, e.k)
		switch v, _ := sketch.Compare(p.sk, e.sk, k); v {
		case sketch.Same:
			if p.dup == nil {
				p.dup = e
			}
		case sketch.Near, sketch.Unknown:
			return denyHistory(p, e, k, v)
		}
	}
	return nil
}

// checkAnswer compares the sets of one answer with each other, within
// each scope, in the same windowed way.
func checkAnswer(ps []*pending) error {
	order := slices.Clone(ps)
	slices.SortStableFunc(order, func(a, b *pending) int {
		return cmp.Or(a.set.Scope.compare(b.set.Scope), cmp.Compare(a.units, b.units))
	})
	maxK := map[Scope]int{}
	for _, p := range ps {
		maxK[p.set.Scope] = max(maxK[p.set.Scope], p.set.K)
	}
	for i, p := range order {
		w := maxK[p.set.Scope] - 1
		for _, q := range order[i+1:] {
			if q.set.Scope != p.set.Scope || q.units > p.units+w {
				break
			}
			k := max(p.set.K, q.set.K)
			first, second := p, q
			if q.pos < p.pos {
				first, second = q, p
			}
			switch v, _ := sketch.Compare(p.sk, q.sk, k); v {
			case sketch.Same:
				// Remember the first of the two, under the larger K.
				second.same = true
				first.set.K = k
			case sketch.Near, sketch.Unknown:
				return denyAnswer(first, second, k, v)
			}
		}
	}
	return nil
}

func denyHistory(p *pending, e *entry, k int, v sketch.Verdict) error {
	ds := p.set.Scope.Dataset
	at := time.UnixMicro(e.released).UTC().Format(time.RFC3339)
	how := fmt.Sprintf("differs from a group released by query %s at %s by fewer than %d persons", e.queryID, at, k)
	why := "releasing both would reveal those persons' values"
	reason := fmt.Sprintf("differencing_guard: %s: %s differs from a group released by query %s by fewer than %d persons", ds, p.label, e.queryID, k)
	if v == sketch.Unknown {
		how = fmt.Sprintf("cannot be shown to differ from a group released by query %s at %s by at least %d persons", e.queryID, at, k)
		why = "releasing both could reveal the values of the persons who differ"
		reason = fmt.Sprintf("differencing_guard: %s: %s cannot be shown to differ from a group released by query %s by at least %d persons", ds, p.label, e.queryID, k)
	}
	return &sluice.Error{
		Code: sluice.EDenied,
		Message: fmt.Sprintf("the result's %s on %s %s; %s. "+
			"Nothing was released: ask for groups that differ from earlier results by at least %d persons, or repeat the earlier query unchanged",
			p.label, ds, how, why, k),
		Reasons: []string{reason},
	}
}

func denyAnswer(p, q *pending, k int, v sketch.Verdict) error {
	ds := p.set.Scope.Dataset
	how := fmt.Sprintf("differ by fewer than %d persons", k)
	why := "releasing both would reveal those persons' values"
	if v == sketch.Unknown {
		how = fmt.Sprintf("cannot be shown to differ by at least %d persons", k)
		why = "releasing both could reveal the values of the persons who differ"
	}
	return &sluice.Error{
		Code: sluice.EDenied,
		Message: fmt.Sprintf("the result's %s and %s on %s %s; %s. "+
			"Nothing was released: ask for groups that differ from each other by at least %d persons",
			p.label, q.label, ds, how, why, k),
		Reasons: []string{fmt.Sprintf("differencing_guard: %s: %s and %s of one result %s", ds, p.label, q.label, how)},
	}
}

func (t *Ticket) unlock() {
	for i := len(t.locked) - 1; i >= 0; i-- {
		<-t.locked[i].lock
	}
	t.locked = nil
}

// Commit remembers the ticket's sets, in one transaction, and adds them to
// the index; then it unlocks the scopes. A set identical to a remembered
// release refreshes that release's expiry instead of adding a row. A store
// failure is EUnavailable, remembers nothing, and means the answer must
// not be released. A ticket commits once.
func (t *Ticket) Commit(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return sluice.Errorf(sluice.EInternal, "the differencing guard's ticket for query %s was already committed or aborted", t.queryID)
	}
	t.done = true
	defer t.unlock()
	s := t.s
	now := s.now()
	released, expires := now.UnixMicro(), now.Add(s.retention).UnixMicro()
	type change struct {
		p       *pending
		id      int64 // a new row
		refresh bool  // p.dup refreshed
	}
	var changes []change
	err := s.write(ctx, "cannot be written", func(tx *sql.Tx) error {
		changes = changes[:0]
		for _, p := range t.sets {
			if p.same {
				continue
			}
			if e := p.dup; e != nil {
				res, err := tx.ExecContext(ctx, s.d.Rebind(`UPDATE guard_releases SET expires_us = ?, k = ?
					WHERE id = ? AND department = ? AND dataset = ? AND query_id = ?`),
					max(e.expires, expires), max(e.k, p.set.K), e.id, p.set.Scope.Department, p.set.Scope.Dataset, e.queryID)
				if err != nil {
					return err
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				if n == 1 {
					changes = append(changes, change{p: p, refresh: true})
					continue
				}
				// Purged meanwhile: remember it anew.
			}
			var id int64
			if err := tx.QueryRowContext(ctx, s.d.Rebind(`INSERT INTO guard_releases
				(department, dataset, query_id, principal, k, units, sketch, released_us, expires_us)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
				p.set.Scope.Department, p.set.Scope.Dataset, t.queryID, t.principal, p.set.K, p.units, p.sk.Bytes(), released, expires).Scan(&id); err != nil {
				return err
			}
			changes = append(changes, change{p: p, id: id})
		}
		return nil
	})
	if err != nil {
		return err
	}
	byScope := map[Scope]*scopeState{}
	for _, st := range t.locked {
		byScope[st.scope] = st
	}
	for _, c := range changes {
		st := byScope[c.p.set.Scope]
		st.mu.Lock()
		if c.refresh {
			e := c.p.dup
			e.expires, e.k = max(e.expires, expires), max(e.k, c.p.set.K)
		} else {
			e := &entry{id: c.id, queryID: t.queryID, k: c.p.set.K, units: c.p.units, sk: c.p.sk, released: released, expires: expires}
			i, _ := slices.BinarySearchFunc(st.entries, e, cmpEntry)
			st.entries = slices.Insert(st.entries, i, e)
		}
		st.maxK = max(st.maxK, c.p.set.K)
		st.mu.Unlock()
	}
	return nil
}

// Abort forgets the ticket's sets and unlocks its scopes. It does nothing
// after Commit or a first Abort.
func (t *Ticket) Abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	t.unlock()
}

// Digest returns "sha256:<hex>" over a canonical encoding of the sets, in
// order: for each its department, dataset, K and sketch, each string or
// byte field prefixed by its length (labels are not included). The audit
// entry of the answer records it, so an auditor can tie the guard's rows
// to the answer.
func Digest(sets []Set) string {
	h := sha256.New()
	var buf []byte
	buf = append(buf, "sluice-guard-sets-v1\x00"...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(sets)))
	field := func(b []byte) {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	for _, s := range sets {
		field([]byte(s.Scope.Department))
		field([]byte(s.Scope.Dataset))
		buf = binary.BigEndian.AppendUint64(buf, uint64(int64(s.K)))
		field(s.Sketch)
		h.Write(buf)
		buf = buf[:0]
	}
	h.Write(buf)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Stats describes what the guard remembers in one scope.
type Stats struct {
	Releases int       `json:"releases"`         // remembered groups, not expired
	Oldest   time.Time `json:"oldest,omitzero"`  // when the oldest was released
	Newest   time.Time `json:"newest,omitzero"`  // when the newest was released
	Expires  time.Time `json:"expires,omitzero"` // when the first of them will be forgotten
}

// Stats returns what the guard remembers in scope (from the index, so it
// does not wait for answers being admitted).
func (s *Store) Stats(ctx context.Context, scope Scope) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	s.mu.Lock()
	st := s.scopes[scope]
	s.mu.Unlock()
	var out Stats
	if st == nil {
		return out, nil
	}
	now := s.now().UnixMicro()
	st.mu.Lock()
	defer st.mu.Unlock()
	var oldest, newest, expires int64
	for _, e := range st.entries {
		if e.expires <= now {
			continue
		}
		if out.Releases == 0 || e.released < oldest {
			oldest = e.released
		}
		if out.Releases == 0 || e.released > newest {
			newest = e.released
		}
		if out.Releases == 0 || e.expires < expires {
			expires = e.expires
		}
		out.Releases++
	}
	if out.Releases > 0 {
		out.Oldest, out.Newest, out.Expires = time.UnixMicro(oldest).UTC(), time.UnixMicro(newest).UTC(), time.UnixMicro(expires).UTC()
	}
	return out, nil
}
