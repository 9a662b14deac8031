//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// openEngine opens an engine spilling under a test directory and closes
// it at the end of the test.
func openEngine(t testing.TB, lim Limits) *Engine {
	t.Helper()
	if lim.SpillDir == "" {
		lim.SpillDir = t.TempDir()
	}
	e, err := Open(context.Background(), lim)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	return e
}

func openSession(t testing.TB, e *Engine) *Session {
	t.Helper()
	s, err := e.Session(context.Background())
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Session.Close: %v", err)
		}
	})
	return s
}

// testMem is an allocator that fails the test if, at its end, a buffer
// allocated through it is still live or a reader made over it by
// makeReader was not released exactly once. Make it first in a test, so
// that its check runs after every other cleanup (sessions, engines).
type testMem struct {
	*memory.CheckedAllocator
	mu      sync.Mutex
	readers []*trackedReader
}

func checkedMem(t testing.TB) *testMem {
	mem := &testMem{CheckedAllocator: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	t.Cleanup(func() {
		mem.mu.Lock()
		defer mem.mu.Unlock()
		for _, r := range mem.readers {
			if n := r.refs.Load(); n != 0 {
				t.Errorf("an input reader was left with %d references", n)
			}
		}
		mem.AssertSize(t, 0)
	})
	return mem
}

// column describes one generated column: its field and the value of row i.
type column struct {
	name string
	typ  arrow.DataType
	val  func(i int) any // int64, string or nil (NULL)
}

func int64Col(name string, f func(i int) int64) column {
	return column{name, arrow.PrimitiveTypes.Int64, func(i int) any { return f(i) }}
}

func stringCol(name string, f func(i int) string) column {
	return column{name, arrow.BinaryTypes.String, func(i int) any { return f(i) }}
}

// makeRecords builds rows 0..n-1 of cols in batches of at most batch rows.
// The caller owns the records (release them).
func makeRecords(mem memory.Allocator, n, batch int, cols ...column) (*arrow.Schema, []arrow.RecordBatch) {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	for lo := 0; lo < n || (n == 0 && recs == nil); lo += batch {
		hi := min(lo+batch, n)
		for j, c := range cols {
			switch fb := b.Field(j).(type) {
			case *array.Int64Builder:
				fb.Reserve(hi - lo)
				for i := lo; i < hi; i++ {
					if v, ok := c.val(i).(int64); ok {
						fb.UnsafeAppend(v)
					} else {
						fb.AppendNull()
					}
				}
			case *array.StringBuilder:
				fb.Reserve(hi - lo)
				for i := lo; i < hi; i++ {
					if v, ok := c.val(i).(string); ok {
						fb.Append(v)
					} else {
						fb.AppendNull()
					}
				}
			default:
				panic(fmt.Sprintf("makeRecords: unsupported builder %T", fb))
			}
		}
		recs = append(recs, b.NewRecordBatch())
		if n == 0 {
			break
		}
	}
	return schema, recs
}

// makeReader returns a reader over generated rows; the records are owned
// by the reader only (it is the sole holder once returned). The test fails
// unless the reader is released exactly once (net of Retains) by its end.
func makeReader(t testing.TB, mem memory.Allocator, n int, cols ...column) array.RecordReader {
	t.Helper()
	schema, recs := makeRecords(mem, n, 1<<16, cols...)
	r, err := array.NewRecordReader(schema, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		rec.Release()
	}
	tm, ok := mem.(*testMem)
	if !ok {
		return r
	}
	tr := &trackedReader{RecordReader: r, t: t}
	tr.refs.Store(1)
	tm.mu.Lock()
	tm.readers = append(tm.readers, tr)
	tm.mu.Unlock()
	return tr
}

// trackedReader counts references and fails the test on a release too
// many.
type trackedReader struct {
	array.RecordReader
	t    testing.TB
	refs atomic.Int64
}

func (r *trackedReader) Retain() {
	r.refs.Add(1)
	r.RecordReader.Retain()
}

func (r *trackedReader) Release() {
	if n := r.refs.Add(-1); n < 0 {
		r.t.Errorf("an input reader was released %d times too many", -n)
		return
	}
	r.RecordReader.Release()
}

// readAll drains r into rows of Go values (int64, float64, string, bool,
// nil; decimals as strings) and releases it.
func readAll(t testing.TB, r array.RecordReader) ([]string, [][]any) {
	t.Helper()
	defer r.Release()
	var names []string
	for _, f := range r.Schema().Fields() {
		names = append(names, f.Name)
	}
	var rows [][]any
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, rec.NumCols())
			for j, col := range rec.Columns() {
				if col.IsNull(i) {
					continue
				}
				switch c := col.(type) {
				case *array.Int64:
					row[j] = c.Value(i)
				case *array.Int32:
					row[j] = int64(c.Value(i))
				case *array.Float64:
					row[j] = c.Value(i)
				case *array.String:
					row[j] = strings.Clone(c.Value(i)) // Value aliases the batch's buffer
				case *array.Boolean:
					row[j] = c.Value(i)
				default:
					row[j] = c.ValueStr(i)
				}
			}
			rows = append(rows, row)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("reading the result: %v", err)
	}
	return names, rows
}

// wantCode fails the test unless err is a *sluice.Error with code.
func wantCode(t testing.TB, err error, code string) *sluice.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var se *sluice.Error
	if !errors.As(err, &se) {
		t.Fatalf("got %T %v, want a *sluice.Error with code %s", err, err, code)
	}
	if se.Code != code {
		t.Fatalf("got code %s (%v), want %s", se.Code, err, code)
	}
	return se
}

func wantContains(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(sluice.ErrorMessage(err), p) {
			t.Errorf("error %q does not name %q", sluice.ErrorMessage(err), p)
		}
	}
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) (n int64, files int) {
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
				files++
			}
		}
		return nil
	})
	return n, files
}
