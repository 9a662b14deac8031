//go:build duckdb_arrow

package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/sandbox"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

// TestCraftedPlansCannotEscapeTheEngine: a sandbox plan is rendered to
// DuckDB SQL from the plan alone, so what an attacker controls in it —
// output names, string literals, function names — must never become SQL
// of its own. Names are quoted, literals bound, functions come from a
// fixed list; and whatever SQL did reach the engine could still read or
// write no file (sandbox/engine's TestLockedDown covers that side).
func TestCraftedPlansCannotEscapeTheEngine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	victim := filepath.Join(dir, "x.csv")
	db := filepath.Join(dir, "x.db")
	eng, err := engine.Open(ctx, engine.Limits{SpillDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	schema := arrow.NewSchema([]arrow.Field{{Name: "f.a", Type: arrow.PrimitiveTypes.Int64}, {Name: "f.b", Type: arrow.BinaryTypes.String}}, nil)
	input := func() array.RecordReader {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
		b.Field(1).(*array.StringBuilder).AppendValues([]string{"x", "y"}, nil)
		rec := b.NewRecord()
		defer rec.Release()
		rd, err := array.NewRecordReader(schema, []arrow.Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		return rd
	}
	cols, err := sandbox.DuckDBColumns(schema)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(n *planner.Node) (planner.DuckDBRelation, bool) {
		if n.Op == planner.OpFragment {
			return planner.DuckDBRelation{View: "fragment_0", Columns: cols}, true
		}
		return planner.DuckDBRelation{}, false
	}
	col := func(name string) *planner.Expr { return &planner.Expr{Kind: planner.KindColumn, Column: name} }
	str := func(s string) *planner.Expr {
		return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitString, Text: s}}
	}
	project := func(items ...planner.SelectItem) *planner.Node {
		return &planner.Node{Op: planner.OpProject, Inputs: []*planner.Node{{Op: planner.OpFragment}}, Items: items}
	}
	run := func(n *planner.Node) ([]string, [][]any, error) {
		q, err := planner.RenderDuckDB(n, planner.DuckDBOptions{Leaf: leaf})
		if err != nil {
			return nil, nil, err
		}
		sess, err := eng.Session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		if err := sess.Register("fragment_0", input()); err != nil {
			t.Fatal(err)
		}
		rd, err := sess.Query(ctx, q.SQL, q.Args...)
		if err != nil {
			return nil, nil, err
		}
		defer rd.Release()
		var names []string
		for _, f := range rd.Schema().Fields() {
			names = append(names, f.Name)
		}
		var rows [][]any
		for rd.Next() {
			rec := rd.RecordBatch()
			for r := 0; r < int(rec.NumRows()); r++ {
				var row []any
				for c := 0; c < int(rec.NumCols()); c++ {
					v := rec.Column(c).GetOneForMarshal(r)
					if s, ok := v.(string); ok {
						v = strings.Clone(s) // Arrow's strings alias its buffers
					}
					row = append(row, v)
				}
				rows = append(rows, row)
			}
		}
		return names, rows, rd.Err()
	}

	// An output name that closes the identifier and adds statements.
	evil := `a"; COPY (SELECT 1) TO '` + victim + `'; ATTACH '` + db + `' AS x; --`
	names, rows, err := run(project(planner.SelectItem{Expr: col("f.a"), Alias: evil}))
	if err != nil {
		t.Fatalf("a strange output name must be quoted, not refused: %v", err)
	}
	if len(names) != 1 || names[0] != evil || len(rows) != 2 {
		t.Fatalf("columns %q, rows %v", names, rows)
	}

	// A string literal that would close the quote and read a file.
	lit := `x'); SELECT * FROM read_csv('/etc/passwd'); --`
	_, rows, err = run(project(planner.SelectItem{Expr: str(lit), Alias: "v"}))
	if err != nil || len(rows) != 2 || rows[0][0] != lit {
		t.Fatalf("a literal must be bound as a value: %v %v", rows, err)
	}

	// Functions outside the renderer's list are refused before any SQL.
	for _, fn := range []string{"read_csv", "read_text", "read_blob", "glob", "getenv", "current_setting", "duckdb_settings"} {
		n := project(planner.SelectItem{Expr: &planner.Expr{Kind: planner.KindFunc, Func: fn, Args: []*planner.Expr{str("/etc/passwd")}}, Alias: "v"})
		if _, _, err := run(n); err == nil {
			t.Fatalf("function %s reached the engine", fn)
		} else if c := sluice.ErrorCode(err); c != sluice.EInvalid && c != sluice.ENotSupported {
			t.Fatalf("function %s: %v (code %s)", fn, err, c)
		}
	}

	// A column name the fragment does not have, shaped as SQL.
	if _, _, err := run(project(planner.SelectItem{Expr: col(`f.a" FROM read_csv('/etc/passwd') --`), Alias: "v"})); err == nil {
		t.Fatal("an unknown column reached the engine")
	}

	for _, p := range []string{victim, db} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s was written (%v)", p, err)
		}
	}
}
