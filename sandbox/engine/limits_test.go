//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// TestLockedDown sends statements a crafted plan could smuggle into the
// sandbox through Session.Query: all are refused and write nothing. The
// statements Query refuses for not being a SELECT also go to the
// connection directly, to check that DuckDB's own lockdown refuses them
// too (defence in depth).
func TestLockedDown(t *testing.T) {
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	tmp := t.TempDir()
	files := []string{"/tmp/x.csv", "/tmp/x.db", "/tmp/x.parquet",
		filepath.Join(tmp, "x.csv"), filepath.Join(tmp, "x.db"), filepath.Join(tmp, "export"),
		filepath.Join(tmp, "prof.json"), filepath.Join(tmp, "log.txt")}
	existed := map[string]bool{}
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existed[f] = true
		}
	}
	q := func(f string) string { return strings.ReplaceAll(f, "'", "''") }

	// SELECTs that reach DuckDB and must be refused by it.
	selects := []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT * FROM read_text('/etc/passwd')",
		"SELECT * FROM read_blob('/etc/passwd')",
		"SELECT * FROM read_parquet('/tmp/x.parquet')",
		"SELECT * FROM read_json('/etc/passwd')",
		"SELECT * FROM glob('/etc/*')",
		"SELECT * FROM glob('" + q(e.dir) + "/*/*')", // other sessions' spill files
		"SELECT * FROM read_blob('" + q(e.dir) + "/*/*')",
		"SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/x.csv''')",
		"SELECT * FROM enable_logging()",
		"SELECT * FROM duckdb_extensions()",
		// DuckDB's Arrow scans take a C++ factory, which SQL cannot give;
		// the engine's takes a token of the session's own inputs.
		"SELECT * FROM arrow_scan()",
		"SELECT * FROM arrow_scan_dumb()",
		"SELECT * FROM __sluice_scan(1)",
		"SELECT * FROM __sluice_scan(-1)",
	}
	// Everything else: refused by Query as not a SELECT, and by DuckDB.
	others := []string{
		"COPY (SELECT 1) TO '/tmp/x.csv'",
		"COPY (SELECT 1) TO '" + q(filepath.Join(tmp, "x.csv")) + "'",
		"ATTACH '/tmp/x.db'",
		"ATTACH '" + q(filepath.Join(tmp, "x.db")) + "' AS x",
		"INSTALL httpfs",
		"LOAD httpfs",
		"SET memory_limit='10GB'",
		"SET GLOBAL memory_limit='10GB'",
		"RESET memory_limit",
		"SET threads=64",
		"SET max_temp_directory_size='1TB'",
		"SET temp_directory='/tmp'",
		"SET enable_external_access=true",
		"SET lock_configuration=false",
		"SET allowed_directories=['/']",
		"SET autoinstall_known_extensions=true",
		"PRAGMA memory_limit='10GB'",
		"PRAGMA threads=64",
		"PRAGMA enable_profiling='json'",
		"PRAGMA profiling_output='" + q(filepath.Join(tmp, "prof.json")) + "'",
		"SET profiling_output='" + q(filepath.Join(tmp, "prof.json")) + "'",
		"SET log_query_path='" + q(filepath.Join(tmp, "log.txt")) + "'",
		"CALL enable_logging()",
		"CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
		"CREATE PERSISTENT SECRET s2 (TYPE s3, KEY_ID 'a', SECRET 'b')",
		"EXPORT DATABASE '" + q(filepath.Join(tmp, "export")) + "'",
	}
	// Not SELECTs either; DuckDB itself would allow these harmless ones in
	// a database of its own, so only Query's refusal is checked.
	harmless := []string{
		"ATTACH ':memory:' AS m",
		"CREATE TABLE leak AS SELECT 1 AS x",
		"SET VARIABLE v = 1",
		"CHECKPOINT",
		"SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'",
		"SET preserve_insertion_order = true",
	}
	for _, stmt := range append(append(append([]string{}, selects...), others...), harmless...) {
		_, err := s.Query(context.Background(), stmt)
		if err == nil {
			t.Errorf("Query(%q) was allowed", stmt)
			continue
		}
		if code := sluice.ErrorCode(err); code != sluice.EInvalid {
			t.Errorf("Query(%q): code %s (%v), want %s", stmt, code, err, sluice.EInvalid)
		}
		t.Logf("Query(%.60q): %v", stmt, err)
	}
	for _, stmt := range others {
		err := execRaw(s.conn, stmt)
		if err == nil {
			t.Errorf("DuckDB ran %q", stmt)
			continue
		}
		t.Logf("DuckDB(%.60q): %v", stmt, firstLine(err.Error()))
	}
	for _, f := range files {
		if _, err := os.Stat(f); err == nil && !existed[f] {
			t.Errorf("%s was written", f)
		}
	}
	// The limits are still in force.
	_, rows := readAll(t, must(t)(s.Query(context.Background(),
		"SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('enable_external_access'), current_setting('lock_configuration')")))
	if fmt.Sprint(rows[0]) != "[1.0 GiB 2 false true]" {
		t.Errorf("settings after the attempts: %v", rows[0])
	}
	// What DuckDB does allow: listing this session's own spill directory
	// (it adds temp_directory to allowed_directories). That directory holds
	// only this session's data.
	_, rows = readAll(t, must(t)(s.Query(context.Background(), "SELECT count(*) FROM glob(current_setting('temp_directory') || '/*')")))
	t.Logf("files in the session's own spill directory: %v", rows[0][0])
}

func TestCancel(t *testing.T) {
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	var cancelled time.Time
	timer := time.AfterFunc(300*time.Millisecond, func() {
		cancelled = time.Now()
		cancel()
	})
	defer timer.Stop()
	_, err := s.Query(ctx, "SELECT count(*) FROM range(100000000000) WHERE range % 7 = 3")
	stopped := time.Since(cancelled)
	wantCode(t, err, sluice.EUnavailable)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not unwrap to context.Canceled", err)
	}
	t.Logf("stopped %v after the cancel: %v", stopped, err)
	if stopped > 100*time.Millisecond {
		t.Errorf("the query stopped %v after the cancel, want within 100ms", stopped)
	}

	// A cancel while reading the result ends the stream with the same error.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r, err := s.Query(ctx, fmt.Sprintf("SELECT range FROM range(%d)", 4*65536))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	cancel()
	for r.Next() {
	}
	wantCode(t, r.Err(), sluice.EUnavailable)
	if !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("%v does not unwrap to context.Canceled", r.Err())
	}
	// The session is still usable.
	_, rows := readAll(t, must(t)(s.Query(context.Background(), "SELECT 42")))
	if rows[0][0] != int64(42) && rows[0][0] != "42" {
		t.Errorf("after a cancel: %v", rows)
	}
}

func TestTimeLimit(t *testing.T) {
	e := openEngine(t, Limits{QueryTime: 500 * time.Millisecond})
	s := openSession(t, e)
	start := time.Now()
	_, err := s.Query(context.Background(), "SELECT count(*) FROM range(100000000000) WHERE range % 7 = 3")
	took := time.Since(start)
	wantCode(t, err, sluice.EResource)
	wantContains(t, err, "500ms", "time limit")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not unwrap to context.DeadlineExceeded", err)
	}
	if took > 700*time.Millisecond {
		t.Errorf("the query ran %v with a 500ms limit", took)
	}
	// The limit is the session's: later statements fail at once.
	_, err = s.Query(context.Background(), "SELECT 1")
	wantCode(t, err, sluice.EResource)

	// A deadline of the caller's context counts as a time limit too.
	s2 := openSession(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = s2.Query(ctx, "SELECT count(*) FROM range(100000000000) WHERE range % 7 = 3")
	wantCode(t, err, sluice.EResource)
	wantContains(t, err, "deadline", "time limit")
}

func TestMemoryLimit(t *testing.T) {
	e := openEngine(t, Limits{Memory: 64 * MiB})
	s := openSession(t, e)
	// A list aggregate cannot spill.
	_, err := s.Query(context.Background(), "SELECT list(range) FROM range(30000000)")
	wantCode(t, err, sluice.EResource)
	wantContains(t, err, "needs more than 64 MiB", "memory limit", "add filters or aggregate at the source")
	t.Log(err)
}

// joinInputs returns two readers of n rows (k, a, s) and (k, b, t): the
// keys of the right one are a permutation of the left's.
func joinInputs(t testing.TB, mem memory.Allocator, n int) (array.RecordReader, array.RecordReader) {
	left := makeReader(t, mem, n,
		int64Col("k", func(i int) int64 { return int64(i) }),
		int64Col("a", func(i int) int64 { return int64(i) * 3 }),
		stringCol("s", func(i int) string { return fmt.Sprintf("left-%09d", i) }),
	)
	right := makeReader(t, mem, n,
		int64Col("k", func(i int) int64 { return int64(i*7919) % int64(n) }),
		int64Col("b", func(i int) int64 { return int64(i) }),
		stringCol("t", func(i int) string { return fmt.Sprintf("right-%09d", i) }),
	)
	return left, right
}

// TestLargerThanMemory joins two inputs of 2M rows each (about 4 times
// the memory limit together) by spilling, and fails with the spill limit
// when spilling is capped.
func TestLargerThanMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("spills some hundred MB")
	}
	const n = 2_000_000
	const query = `SELECT count(*), sum(l.a + r.b), sum(length(l.s) + length(r.t))
		FROM l JOIN r ON l.k = r.k`
	t.Run("spills", func(t *testing.T) {
		mem := checkedMem(t)
		e := openEngine(t, Limits{Memory: 64 * MiB})
		s := openSession(t, e)
		l, r := joinInputs(t, mem, n)
		if err := s.Materialize(context.Background(), "l", l); err != nil {
			t.Fatal(err)
		}
		if err := s.Register("r", r); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, rows := readAll(t, must(t)(s.Query(context.Background(), query)))
		spilled, files := dirBytes(s.dir)
		t.Logf("joined in %v; spill directory: %d files, %d MiB", time.Since(start), files, spilled/MiB)
		sumAB := int64(0)
		for i := range int64(n) {
			sumAB += 3*i + i
		}
		want := []any{int64(n), fmt.Sprint(sumAB), fmt.Sprint(n * (14 + 15))}
		if fmt.Sprint(rows[0]) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", rows[0], want)
		}
		if files == 0 || spilled == 0 {
			t.Errorf("nothing was spilled to %s", s.dir)
		}
		mem.AssertSize(t, 0)
	})
	t.Run("spill limit", func(t *testing.T) {
		mem := checkedMem(t)
		e := openEngine(t, Limits{Memory: 64 * MiB, MaxSpill: 4 * MiB})
		s := openSession(t, e)
		l, r := joinInputs(t, mem, n)
		err := s.Materialize(context.Background(), "l", l)
		if err == nil {
			if err = s.Register("r", r); err != nil {
				t.Fatal(err)
			}
			_, err = s.Query(context.Background(), query)
		} else {
			r.Release()
		}
		wantCode(t, err, sluice.EResource)
		t.Logf("%v (%v)", err, errors.Unwrap(err))
		wantContains(t, err, "more than 4 MiB of spill space", "spill limit")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		mem.AssertSize(t, 0)
	})
}
