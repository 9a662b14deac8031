//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

func people(t testing.TB, mem memory.Allocator, n int) array.RecordReader {
	return makeReader(t, mem, n,
		int64Col("id", func(i int) int64 { return int64(i) }),
		stringCol("region", func(i int) string { return []string{"north", "south", "east"}[i%3] }),
	)
}

func TestRegisterQuery(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)

	if err := s.Register("people", people(t, mem, 1000)); err != nil {
		t.Fatal(err)
	}
	visits := makeReader(t, mem, 3000,
		int64Col("person", func(i int) int64 { return int64(i % 1000) }),
		int64Col("amount", func(i int) int64 { return int64(i) }),
	)
	if err := s.Register("Visits", visits); err != nil {
		t.Fatal(err)
	}
	r, err := s.Query(context.Background(), `
		SELECT p.region, count(*) AS n, sum(v.amount) AS total
		FROM people p JOIN visits v ON v.person = p.id
		WHERE v.amount >= $1
		GROUP BY p.region ORDER BY p.region`, int64(1000))
	if err != nil {
		t.Fatal(err)
	}
	names, rows := readAll(t, r)
	if want := []string{"region", "n", "total"}; !reflect.DeepEqual(names, want) {
		t.Errorf("columns %v, want %v", names, want)
	}
	// Amounts 1000..2999: person = amount % 1000, region = person % 3.
	want := map[string][2]int64{}
	for a := 1000; a < 3000; a++ {
		reg := []string{"north", "south", "east"}[(a%1000)%3]
		w := want[reg]
		w[0]++
		w[1] += int64(a)
		want[reg] = w
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3: %v", len(rows), rows)
	}
	for i, reg := range []string{"east", "north", "south"} {
		row := rows[i]
		if row[0] != reg || row[1] != want[reg][0] || fmt.Sprint(row[2]) != fmt.Sprint(want[reg][1]) {
			t.Errorf("row %d = %v, want [%s %d %d]", i, row, reg, want[reg][0], want[reg][1])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
}

func TestQueryStreamsInOrder(t *testing.T) {
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	const n = 3*65536 + 123
	r, err := s.Query(context.Background(), fmt.Sprintf("SELECT range AS i, 'v' || range AS s FROM range(%d) ORDER BY i DESC", n))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Schema().NumFields(); got != 2 {
		t.Fatalf("schema has %d fields", got)
	}
	want := int64(n - 1)
	batches := 0
	for r.Next() {
		batches++
		rec := r.RecordBatch()
		ids := rec.Column(0).(*array.Int64)
		ss := rec.Column(1).(*array.String)
		for i := 0; i < ids.Len(); i++ {
			if ids.Value(i) != want || ss.Value(i) != fmt.Sprint("v", want) {
				t.Fatalf("row %d: got %d %q, want %d", n-1-want, ids.Value(i), ss.Value(i), want)
			}
			want--
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.Next() || r.Err() != nil { // after the end, Next stays false
		t.Fatalf("Next after the end: %v", r.Err())
	}
	r.Release()
	r.Release() // a second release is a no-op
	if want != -1 {
		t.Fatalf("read %d rows, want %d", n-1-want, n)
	}
	if batches < 4 {
		t.Errorf("got %d batches; a streamed result should give more", batches)
	}
}

func TestEmptyResultHasSchema(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	if err := s.Register("p", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Query(context.Background(), "SELECT id, region FROM p WHERE id < 0")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Schema().String(); !strings.Contains(got, "id: type=int64") || !strings.Contains(got, "region: type=utf8") {
		t.Errorf("schema %s", got)
	}
	names, rows := readAll(t, r)
	if len(rows) != 0 || len(names) != 2 {
		t.Errorf("got %v %v", names, rows)
	}
}

// A registered input is read in place by the query that names it, through
// the engine's scan, which gets filters, column subsets and the column
// order right (DuckDB's arrow_scan over a C stream gets them wrong; see
// TestUpstreamArrowScanPushdown); a query that reads an input twice gets a
// copy; later queries read it again from the batches the session kept,
// unless they were too many to keep.
func TestRegisteredInputs(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	for _, tc := range []struct {
		q    string
		want []any
	}{
		// Filters, on a column the query does or does not return.
		{"SELECT count(*) FROM p WHERE id < 3", []any{int64(3)}},
		{"SELECT region FROM p WHERE id = 4", []any{"south"}},
		{"SELECT min(region), max(id) FROM p WHERE region <> 'north'", []any{"east", int64(4999)}},
		// A single string column; the second column alone; the columns
		// out of order.
		{"SELECT max(region) FROM p", []any{"south"}},
		{"SELECT max(region), count(*) FROM p", []any{"south", int64(5000)}},
		{"SELECT max(region), max(id) FROM (SELECT region, id FROM p)", []any{"south", int64(4999)}},
		{"SELECT sum(id) FROM p WHERE region = 'east' AND id > 2500", []any{"3122917"}},
		{"SELECT count(*) FROM p", []any{int64(5000)}},
		{"SELECT count(*) FROM p LIMIT 1", []any{int64(5000)}},
		// Read twice: copied first.
		{"SELECT count(*) FROM p a JOIN p b USING (id)", []any{int64(5000)}},
		{"WITH x AS (SELECT * FROM p WHERE id % 2 = 0) SELECT count(*) FROM x a JOIN x b USING (id)", []any{int64(2500)}},
		{"SELECT count(*) FROM p WHERE id IN (SELECT id FROM p WHERE region = 'north')", []any{int64(1667)}},
	} {
		sess := openSession(t, e)
		if err := sess.Register("p", people(t, mem, 5000)); err != nil {
			t.Fatal(err)
		}
		_, rows := readAll(t, must(t)(sess.Query(context.Background(), tc.q)))
		if len(rows) != 1 || fmt.Sprint(rows[0]) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want [%v]", tc.q, rows, tc.want)
		}
		if err := sess.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// Later queries read a registered input again (the session keeps its
	// batches), also twice in one query, and with a materialized one.
	if err := s.Register("p", people(t, mem, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Materialize(context.Background(), "m", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		want string
	}{
		{"SELECT count(*) FROM p JOIN m USING (id)", "[[10]]"},
		{"SELECT count(*) FROM p WHERE id < 3", "[[3]]"},
		{"SELECT count(*) FROM p", "[[5000]]"},
		{"SELECT count(*) FROM m", "[[10]]"},
		{"SELECT count(*) FROM p a JOIN p b USING (id)", "[[5000]]"},
		{"SELECT count(*) FROM p WHERE region = 'north'", "[[1667]]"},
	} {
		_, rows := readAll(t, must(t)(s.Query(context.Background(), tc.q)))
		if fmt.Sprint(rows) != tc.want {
			t.Errorf("%s: got %v, want %s", tc.q, rows, tc.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0) // released when the session closed

	// An input too large to keep (over Memory/16) serves one query; a
	// query that stops early does not leave it readable either.
	small := openEngine(t, Limits{Memory: 16 * MiB})
	for _, first := range []string{"SELECT count(*) FROM big", "SELECT id FROM big LIMIT 1"} {
		s := openSession(t, small)
		if err := s.Register("big", people(t, mem, 200_000)); err != nil {
			t.Fatal(err)
		}
		readAll(t, must(t)(s.Query(context.Background(), first)))
		_, err := s.Query(context.Background(), "SELECT count(*) FROM big")
		wantCode(t, err, sluice.EInternal)
		wantContains(t, err, `input "big" was read by an earlier query`, "1 MiB", "Materialize")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A query that stops early leaves a small input readable: the next
	// one reads the rest.
	s2 := openSession(t, e)
	if err := s2.Register("p", people(t, mem, 200_000)); err != nil {
		t.Fatal(err)
	}
	r := must(t)(s2.Query(context.Background(), "SELECT id FROM p"))
	if !r.Next() {
		t.Fatal(r.Err())
	}
	r.Release()
	_, rows := readAll(t, must(t)(s2.Query(context.Background(), "SELECT count(*), count(DISTINCT id) FROM p")))
	if fmt.Sprint(rows) != "[[200000 200000]]" {
		t.Errorf("after a query that stopped early: %v", rows)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
}

// must fails the test on a query's error: must(t)(s.Query(...)).
func must(t testing.TB) func(array.RecordReader, error) array.RecordReader {
	return func(r array.RecordReader, err error) array.RecordReader {
		t.Helper()
		if err != nil {
			var se *sluice.Error
			if errors.As(err, &se) && se.Err != nil {
				t.Fatalf("%v (%v)", err, se.Err)
			}
			t.Fatal(err)
		}
		return r
	}
}

func TestNamesAndStatements(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	if err := s.Register("p", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p", "P", "", "__sluice_result_1", "a\nb", strings.Repeat("x", 200)} {
		err := s.Register(name, people(t, mem, 1))
		wantCode(t, err, sluice.EInternal)
	}
	if err := s.Materialize(context.Background(), "p", people(t, mem, 1)); err == nil {
		t.Fatal("materialized over a registered name")
	}
	// A name needing quotes works.
	if err := s.Materialize(context.Background(), `odd "name"`, people(t, mem, 4)); err != nil {
		t.Fatal(err)
	}
	_, rows := readAll(t, must(t)(s.Query(context.Background(), `SELECT count(*) FROM "odd ""name"""`)))
	if rows[0][0] != int64(4) {
		t.Errorf("count %v", rows[0][0])
	}
	for _, q := range []string{"", "SELECT 1; SELECT 2", "SELECT 1; DROP TABLE \"odd \"\"name\"\"\"", "SELEC 1", "SELECT nope FROM p"} {
		_, err := s.Query(context.Background(), q)
		wantCode(t, err, sluice.EInvalid)
	}
	// The multi-statement attempt ran nothing.
	_, rows = readAll(t, must(t)(s.Query(context.Background(), `SELECT count(*) FROM "odd ""name""" -- trailing comment`)))
	if rows[0][0] != int64(4) {
		t.Errorf("count %v", rows[0][0])
	}
}

func TestValueErrorsAreWithheld(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	secrets := makeReader(t, mem, 3, stringCol("ssn", func(i int) string { return fmt.Sprintf("123-45-678%d", i) }))
	if err := s.Materialize(context.Background(), "t", secrets); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT CAST(ssn AS INTEGER) FROM t",
		"SELECT 9223372036854775807 + length(ssn) FROM t",
		"SELECT error('leak ' || ssn) FROM t",
	} {
		_, err := s.Query(context.Background(), q)
		se := wantCode(t, err, sluice.EInvalid)
		if strings.Contains(err.Error(), "123-45") || (se.Err != nil && strings.Contains(se.Err.Error(), "123-45")) {
			t.Errorf("%s: the error quotes a value: %v", q, err)
		}
		t.Logf("%s: %v", q, err)
	}
}

// An input whose reader fails ends the query with the reader's error.
func TestInputReaderError(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	for _, tc := range []struct {
		err  error
		code string
	}{
		{sluice.Errorf(sluice.EUnavailable, "agent hr went away"), sluice.EUnavailable},
		{errors.New("stream reset"), sluice.EUnavailable},
	} {
		s := openSession(t, e)
		r := &failingReader{RecordReader: people(t, mem, 200000), after: 2, err: tc.err}
		if err := s.Register("p", r); err != nil {
			t.Fatal(err)
		}
		_, err := s.Query(context.Background(), "SELECT count(*) FROM p")
		wantCode(t, err, tc.code)
		if !errors.Is(err, tc.err) {
			t.Errorf("%v does not wrap %v", err, tc.err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

type failingReader struct {
	array.RecordReader
	after int
	n     int
	err   error
}

func (f *failingReader) Next() bool {
	if f.n >= f.after {
		return false
	}
	f.n++
	return f.RecordReader.Next()
}

func (f *failingReader) Err() error {
	if f.n >= f.after {
		return f.err
	}
	return nil
}

// Close releases inputs and results, also unread ones and after errors.
func TestCloseReleasesEverything(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s, err := e.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register("a", people(t, mem, 100000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Register("b", people(t, mem, 10)); err != nil { // never read
		t.Fatal(err)
	}
	if err := s.Materialize(context.Background(), "c", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Query(context.Background(), "SELECT * FROM a JOIN c USING (id)")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	// While a result is open, the session runs nothing else.
	_, err = s.Query(context.Background(), "SELECT 1")
	wantCode(t, err, sluice.EInternal)
	err = s.Materialize(context.Background(), "x", people(t, mem, 10))
	wantCode(t, err, sluice.EInternal)
	// A failing input, and one registered but never read.
	if err := s.Register("d", &failingReader{RecordReader: people(t, mem, 200000), after: 1, err: errors.New("boom")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Register("e", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Next() {
		t.Fatal("a result reader outlived its session")
	}
	wantCode(t, r.Err(), sluice.EUnavailable)
	r.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The spill directory is empty (but for DuckDB's empty marker of its
	// owner), or gone: the database was closed.
	if n, files := dirBytes(dir); n != 0 {
		t.Errorf("the session's spill directory holds %d files, %d bytes", files, n)
	}
	mem.AssertSize(t, 0)
	_, err = s.Query(context.Background(), "SELECT 1")
	wantCode(t, err, sluice.EUnavailable)
	err = s.Register("f", people(t, mem, 1))
	wantCode(t, err, sluice.EUnavailable)
}

// Sessions are separate databases: the same input name in two concurrent
// sessions is two inputs, and neither sees the other's.
func TestSessionsAreIsolated(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for k := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := e.Session(context.Background())
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			n := 1000 * (k + 1)
			if err := s.Register("p", people(t, mem, n)); err != nil {
				errs <- err
				return
			}
			r, err := s.Query(context.Background(), "SELECT count(*) FROM p")
			if err != nil {
				errs <- err
				return
			}
			defer r.Release()
			if !r.Next() || r.RecordBatch().Column(0).(*array.Int64).Value(0) != int64(n) {
				errs <- fmt.Errorf("session %d: wrong count (%v)", k, r.Err())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	a, b := openSession(t, e), openSession(t, e)
	if err := a.Register("mine", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	_, err := b.Query(context.Background(), "SELECT * FROM mine")
	wantCode(t, err, sluice.EInvalid)
	_, rows := readAll(t, must(t)(b.Query(context.Background(), "SELECT count(*) FROM duckdb_views() WHERE NOT internal")))
	if rows[0][0] != int64(0) {
		t.Errorf("session b sees %v views", rows[0][0])
	}
}

func TestEngineClose(t *testing.T) {
	mem := checkedMem(t)
	e, err := Open(context.Background(), Limits{SpillDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register("p", people(t, mem, 10)); err != nil {
		t.Fatal(err)
	}
	// A long statement is interrupted by Engine.Close.
	errc := make(chan error, 1)
	go func() {
		_, err := s.Query(context.Background(), "SELECT count(*) FROM range(100000000000) WHERE range % 7 = 3")
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		wantCode(t, err, sluice.EUnavailable)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v does not unwrap to context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Engine.Close did not interrupt the query")
	}
	if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
		t.Errorf("spill directory left: %v", err)
	}
	mem.AssertSize(t, 0)
	_, err = e.Session(context.Background())
	wantCode(t, err, sluice.EUnavailable)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenValidates(t *testing.T) {
	_, err := Open(context.Background(), Limits{Memory: -1})
	wantCode(t, err, sluice.EInvalid)
	_, err = Open(context.Background(), Limits{SpillDir: "/nonexistent/dir"})
	wantCode(t, err, sluice.EInternal)
	e := openEngine(t, Limits{})
	got := e.Limits()
	if got.Memory != DefaultMemory || got.Threads != DefaultThreads || got.MaxSpill != DefaultMaxSpill {
		t.Errorf("defaults %+v", got)
	}
	fi, err := os.Stat(got.SpillDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spill directory %s: %v %v", got.SpillDir, fi.Mode(), err)
	}
	s := openSession(t, e)
	_, rows := readAll(t, must(t)(s.Query(context.Background(),
		"SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('max_temp_directory_size'), current_setting('temp_directory')")))
	t.Logf("settings: %v", rows[0])
	if rows[0][0] != "1.0 GiB" || rows[0][1] != int64(2) || rows[0][2] != "10.0 GiB" || !strings.HasPrefix(rows[0][3].(string), got.SpillDir+"/s-") {
		t.Errorf("settings %v", rows[0])
	}
}

// The result has the query's column names and DuckDB's Arrow types, also
// where CREATE TABLE AS would rename (duplicate names).
func TestResultNamesAndTypes(t *testing.T) {
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	r, err := s.Query(context.Background(), `SELECT 1 AS a, 2 AS a, 3 AS "A", $1::VARCHAR AS p, 1.5::DECIMAL(10,2) AS d,
		DATE '2020-01-02' AS dt, TIMESTAMP '2020-01-01 10:00:00' AS ts, [1, 2] AS l, NULL AS n, 'x'::BLOB AS b
		FROM range(3) ORDER BY range DESC`, "hello")
	if err != nil {
		t.Fatal(err)
	}
	want := "a: int32, a: int32, A: int32, p: utf8, d: decimal(10, 2), dt: date32, ts: timestamp[us], l: list<l: int32, nullable>, n: null, b: binary"
	var got []string
	for _, f := range r.Schema().Fields() {
		got = append(got, f.Name+": "+f.Type.String())
	}
	if strings.Join(got, ", ") != want {
		t.Errorf("schema\n%s\nwant\n%s", strings.Join(got, ", "), want)
	}
	rows := 0
	for r.Next() {
		rec := r.RecordBatch()
		if !rec.Schema().Equal(r.Schema()) {
			t.Errorf("a batch has schema %s", rec.Schema())
		}
		if p := rec.Column(3).(*array.String).Value(0); p != "hello" {
			t.Errorf("parameter %q", p)
		}
		rows += int(rec.NumRows())
	}
	if err := r.Err(); err != nil || rows != 3 {
		t.Errorf("%d rows, %v", rows, err)
	}
	r.Release()
}

// waitIdle waits until e has n idle databases, and returns them.
func waitIdle(t testing.TB, e *Engine, n int) []*database {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		idle := append([]*database(nil), e.idle...)
		e.mu.Unlock()
		if len(idle) >= n {
			return idle
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d idle databases after 10s", n)
	return nil
}
