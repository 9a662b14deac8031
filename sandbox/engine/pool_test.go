//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// fullStateSQL reads everything a session could leave behind in a
// database, at a few times the cost of the check the engine runs between
// sessions (stateSQL): every catalog entry of every kind with its SQL,
// attached databases, secrets, temporary files, memory by tag (the
// allocator's, which varies by some hundred KiB also in an unused
// database, only against its bound), and every setting with its value.
var fullStateSQL = `SELECT 'table ' || database_name || '.' || schema_name || '.' || table_name || ' ' || coalesce(sql, '') FROM duckdb_tables()
UNION ALL SELECT 'view ' || database_name || '.' || schema_name || '.' || view_name || ' ' || coalesce(sql, '') FROM duckdb_views()
UNION ALL SELECT 'index ' || index_name FROM duckdb_indexes()
UNION ALL SELECT 'sequence ' || sequence_name FROM duckdb_sequences()
UNION ALL SELECT 'type ' || database_name || '.' || schema_name || '.' || type_name FROM duckdb_types()
UNION ALL SELECT 'function ' || database_name || '.' || schema_name || '.' || function_name || ' ' || function_type || ' ' || coalesce(macro_definition, '') FROM duckdb_functions()
UNION ALL SELECT 'schema ' || database_name || '.' || schema_name FROM duckdb_schemas()
UNION ALL SELECT 'database ' || database_name || ' ' || coalesce(path, '') || ' ' || type FROM duckdb_databases()
UNION ALL SELECT 'secret ' || name FROM duckdb_secrets()
UNION ALL SELECT 'temporary file ' || path FROM duckdb_temporary_files()
UNION ALL SELECT 'memory ' || tag || ' ' || memory_usage_bytes || ' ' || temporary_storage_bytes FROM duckdb_memory() WHERE tag <> 'ALLOCATOR'
UNION ALL SELECT 'memory ALLOCATOR at most ' || ` + strconv.Itoa(maxAllocatorBytes) + ` || ' ' || (memory_usage_bytes <= ` + strconv.Itoa(maxAllocatorBytes) + `) FROM duckdb_memory() WHERE tag = 'ALLOCATOR'

UNION ALL SELECT 'setting ' || name || '=' || coalesce(value, 'NULL') FROM duckdb_settings()`

// fullState reads fullStateSQL on the database's own connection and sorts
// the lines in Go: an ORDER BY would hold memory of its own, which the
// query's read of duckdb_memory() may see (it did once, under load in CI:
// "memory ORDER_BY 524288" in the state of a database as it was opened).
func fullState(t testing.TB, d *database) []string {
	t.Helper()
	rows, err := queryStrings(d.conv, fullStateSQL)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r[0]
	}
	sort.Strings(out)
	return out
}

// diff lists the lines of a and b that the other lacks.
func diff(a, b []string) []string {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	var out []string
	for l, n := range count {
		if n > 0 {
			out = append(out, "- "+l)
		} else if n < 0 {
			out = append(out, "+ "+l)
		}
	}
	return out
}

// TestPoolIsolation is the evidence for using a database again: after a
// session that registered, materialized, streamed, copied and spilled
// inputs, the next session gets the same database (through a connection of
// its own) and it shows nothing of the first: the full state (every
// catalog entry, setting, temporary file, memory tag) equals the state of
// the database when it was opened, the spill directory is empty, and the
// names, tokens and files of the first session reach nothing.
func TestPoolIsolation(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{Memory: 64 * MiB})
	d0 := waitIdle(t, e, 1)[0]
	opened := fullState(t, d0)
	if len(opened) < 100 {
		t.Fatalf("the full state has %d lines", len(opened))
	}
	t.Logf("the full state of a database has %d lines", len(opened))

	a := openSession(t, e)
	if a.d != d0 {
		t.Fatal("the first session did not get the database Open made")
	}
	// An input read in place, one copied (read twice), one materialized
	// large enough to spill, a result left half read.
	if err := a.Register("streamed", people(t, mem, 10000)); err != nil {
		t.Fatal(err)
	}
	if err := a.Register("twice", people(t, mem, 1000)); err != nil {
		t.Fatal(err)
	}
	// A name the replacement scan does not take: a temporary view.
	if err := a.Register("viewed.csv", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	l, unused := joinInputs(t, mem, 2_000_000)
	unused.Release()
	if err := a.Materialize(context.Background(), "big", l); err != nil {
		t.Fatal(err)
	}
	_, rows := readAll(t, must(t)(a.Query(context.Background(),
		"SELECT count(*) FROM streamed s JOIN twice t1 USING (id) JOIN twice t2 USING (id) WHERE id NOT IN (SELECT id + 1000 FROM \"viewed.csv\")")))
	if rows[0][0] != int64(1000) {
		t.Fatalf("count %v", rows[0][0])
	}
	var tokens []int64
	for _, si := range a.inputs {
		tokens = append(tokens, si.token)
	}
	r := must(t)(a.Query(context.Background(), "SELECT * FROM big ORDER BY s DESC"))
	if !r.Next() {
		t.Fatal(r.Err())
	}
	spilled, files := dirBytes(a.dir)
	t.Logf("session a, reading a sorted result: spill directory %d files, %d MiB", files, spilled>>20)
	if spilled == 0 {
		t.Error("session a spilled nothing")
	}
	for r.Next() {
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r.Release()

	idle := waitIdle(t, e, 1)
	found := false
	for _, d := range idle {
		found = found || d == d0
	}
	if !found {
		t.Fatalf("the database of a clean session was not kept (stats %+v): %v", e.stats, d0.checked)
	}
	if d := diff(opened, fullState(t, d0)); len(d) > 0 {
		t.Errorf("the database differs from when it was opened:\n%s", strings.Join(d, "\n"))
	}
	entries, err := os.ReadDir(d0.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if !ownerMarker(en) {
			t.Errorf("the spill directory holds %s", en.Name())
		}
		t.Logf("in the spill directory: %s (empty)", en.Name())
	}

	// The next session gets it, and finds nothing of a.
	b := openSession(t, e)
	if b.d != d0 {
		t.Fatal("the next session did not get the database back")
	}
	for q, want := range map[string]string{
		"SELECT count(*) FROM duckdb_tables()":                   "[[0]]",
		"SELECT count(*) FROM duckdb_views() WHERE NOT internal": "[[0]]",
		"SELECT count(*) FROM duckdb_temporary_files()":          "[[0]]",
		// At most DuckDB's empty marker of the directory's owner.
		"SELECT count(*) <= 1, coalesce(sum(octet_length(content)), 0) FROM read_blob(current_setting('temp_directory') || '/*')":  "[[true 0]]",
		"SELECT sum(memory_usage_bytes + temporary_storage_bytes) FROM duckdb_memory()":                                            "",
		"SELECT current_setting('lock_configuration'), current_setting('enable_external_access'), current_setting('memory_limit')": "[[true false 64.0 MiB]]",
	} {
		_, rows := readAll(t, must(t)(b.Query(context.Background(), q)))
		if want != "" && fmt.Sprint(rows) != want {
			t.Errorf("%s: %v, want %s", q, rows, want)
		}
		t.Logf("%s: %v", q, rows)
	}
	for _, name := range []string{"streamed", "twice", "big", `"viewed.csv"`} {
		_, err := b.Query(context.Background(), "SELECT * FROM "+name)
		wantCode(t, err, sluice.EInvalid)
	}
	for _, tok := range tokens {
		_, err := b.Query(context.Background(), "SELECT * FROM "+scanFunction+"("+strconv.FormatInt(tok, 10)+")")
		wantCode(t, err, sluice.EInvalid)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
}

// A session with an error, or one interrupted (also a result left before
// its end), gives its database up.
func TestPoolDiscards(t *testing.T) {
	e := openEngine(t, Limits{})
	for name, run := range map[string]func(s *Session) error{
		"error": func(s *Session) error {
			_, err := s.Query(context.Background(), "SELECT 1 // 0")
			return err
		},
		"cancel": func(s *Session) error {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := s.Query(ctx, "SELECT count(*) FROM range(100000000000) WHERE range % 7 = 3")
			return err
		},
		"result left unread": func(s *Session) error {
			r, err := s.Query(context.Background(), "SELECT range FROM range(1000000)")
			if err != nil {
				return err
			}
			r.Next()
			r.Release()
			return errors.New("released early")
		},
		"close while running": func(s *Session) error {
			time.AfterFunc(50*time.Millisecond, func() { _ = s.Close() })
			_, err := s.Query(context.Background(), "SELECT count(*) FROM range(100000000000) WHERE range % 7 = 3")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			waitIdle(t, e, 1)
			s := openSession(t, e)
			d := s.d
			if err := run(s); err == nil {
				t.Fatal("no error")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			for _, i := range e.idle {
				if i == d {
					t.Error("the database went back to the pool")
				}
			}
			e.mu.Unlock()
			s2 := openSession(t, e)
			if s2.d == d {
				t.Error("the next session got the database")
			}
		})
	}
}

// Concurrent sessions never share a database, and the pool keeps at most
// maxIdle databases between sessions.
func TestPoolConcurrent(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	const n = 5
	var mu sync.Mutex
	seen := map[*database]bool{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	sessions := make(chan *Session, n)
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, err := e.Session(context.Background())
			if err != nil {
				errs <- err
				return
			}
			sessions <- s
			mu.Lock()
			if seen[s.d] {
				errs <- errors.New("two open sessions share a database")
			}
			seen[s.d] = true
			mu.Unlock()
			if err := s.Register("p", people(t, mem, 1000*(k+1))); err != nil {
				errs <- err
				return
			}
			r, err := s.Query(context.Background(), "SELECT count(*) FROM p")
			if err != nil {
				errs <- err
				return
			}
			r.Release()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	close(sessions)
	for err := range errs {
		t.Error(err)
	}
	for s := range sessions {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
	e.mu.Lock()
	idle := len(e.idle)
	e.mu.Unlock()
	if idle > maxIdle {
		t.Errorf("%d idle databases, at most %d allowed", idle, maxIdle)
	}
	t.Logf("%d sessions, %d databases; %d idle after; %+v", n, len(seen), idle, e.stats)
}

// A database the engine uses again has served fewer than maxUses sessions;
// the sessions one after the other use the same database.
func TestPoolReuse(t *testing.T) {
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The session started opening a database in the background; once it
	// is in the pool, the sessions take the database last put back.
	idle := waitIdle(t, e, 2)
	d := idle[len(idle)-1]
	uses := d.uses
	for range 20 {
		s := openSession(t, e)
		if s.d != d {
			t.Fatalf("a session got another database (stats %+v)", e.stats)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if d.uses != uses+20 {
		t.Errorf("uses %d, want %d", d.uses, uses+20)
	}
	d.uses = maxUses - 1
	s = openSession(t, e)
	if s.d != d {
		t.Fatal("not the same database")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSession(t, e)
	if s.d == d {
		t.Error("a database served more than maxUses sessions")
	}
	if _, err := os.Stat(d.dir); err == nil {
		// closed in the background
		time.Sleep(100 * time.Millisecond)
	}
}
