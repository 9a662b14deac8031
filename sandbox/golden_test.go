//go:build duckdb_arrow

package sandbox

// The golden corpus: the answers of the hand-written Arrow operators that
// the sandbox had before it ran plans in DuckDB, kept as the expectations
// of the engine path. Each file of testdata/engine holds inputs (Arrow
// schemas and rows) and cases: a plan (planner.Node as JSON), the inputs
// it reads as fragments 0, 1, ..., and what the old operators answered:
// the output columns (name, Arrow type, the sluice.type metadata they
// carried) and rows in canonical form (canonCell), or the error code
// they failed with.
//
// The files were written once, by a run of the corpus with -update while
// the old operators still existed (the sandbox package at commit 52c8d9d,
// with the differential test duckdb_equiv_test.go turned into a
// generator). The operators are gone, so the files cannot be regenerated:
// they are fixed expectations. Change one only for a deliberate change of
// behaviour, and say why in the case's note. random.json keeps the first
// 500 of the differential test's 3000 random expressions (seed 7), to
// stay small and fast; large.json's inputs are generated (bigRows), not
// stored.
//
// Where the new answer deliberately differs, the case carries a note and
// the expectation is the new one:
//
//   - an OFFSET without LIMIT lost rows in the old operators; the rows
//     are the correct answer;
//   - the old operators evaluated every branch of CASE, COALESCE, AND and
//     OR on every row, so an integer overflow in a branch not taken failed
//     the query; DuckDB evaluates lazily and answers: the rows are its
//     answer, old_answer the old failure;
//   - engine_error, where set, is the code the engine path fails with
//     where it differs from the old operators' (none at present: a join
//     declared one-to-one that meets a row twice fails with
//     sluice.ENotSupported saying so, as before).
//
// Rows compare as multisets unless the case is ordered (the plan sorts on
// keys without ties).
//
//	go test -tags duckdb_arrow ./sandbox/ -run TestGolden

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// goldenFile is one file of testdata/engine.
type goldenFile struct {
	Comment string        `json:"comment"`
	Inputs  []goldenTable `json:"inputs"`
	Cases   []goldenCase  `json:"cases"`
}

// goldenTable is an input: its columns and rows (each value a string in
// the column's text form, or null), or, for inputs too large to store,
// the name of the function that generates its rows (goldenGenerators).
type goldenTable struct {
	Name      string         `json:"name"`
	Columns   []goldenColumn `json:"columns"`
	Rows      [][]*string    `json:"rows,omitempty"`
	Generator string         `json:"generator,omitempty"`
}

// goldenColumn is a column: name, Arrow type (its String form) and the
// sluice.type metadata, if any.
type goldenColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Meta string `json:"meta,omitempty"`
}

type goldenCase struct {
	Name string `json:"name"`
	// SQL is the analyst's query the planner made the plan from, if any.
	SQL    string        `json:"sql,omitempty"`
	Inputs []string      `json:"inputs"`
	Plan   *planner.Node `json:"plan"`
	// OneToOne: the joins must be one-to-one (a release under a
	// differential-privacy budget).
	OneToOne bool `json:"one_to_one,omitempty"`
	// Ordered: the plan sorts on keys without ties; the order counts.
	Ordered bool `json:"ordered,omitempty"`
	// Split: run as the broker runs a plan behind a release gate: the
	// outermost aggregate first, then the rest of the plan over its
	// output, registered as a relation of its own.
	Split   bool           `json:"split,omitempty"`
	Columns []goldenColumn `json:"columns,omitempty"`
	Rows    [][]string     `json:"rows,omitempty"`
	// Error is the code the old operators failed with; ErrorMessage their
	// message (for information).
	Error        string `json:"error,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	// EngineError is the code the engine path fails with where it differs
	// from Error (see Note).
	EngineError string `json:"engine_error,omitempty"`
	// OldAnswer is what the old operators answered where the expectation is the
	// new answer (see Note).
	OldAnswer string `json:"old_answer,omitempty"`
	Note      string `json:"note,omitempty"`
}

// goldenGenerators make the rows of generated inputs.
var goldenGenerators = map[string]func() [][]any{
	"big_people_30000": func() [][]any { return big30000()[0] },
	"big_claims_30000": func() [][]any { return big30000()[1] },
}

var big30000 = sync.OnceValue(func() [2][][]any { return bigRows(30000) })

// bigRows are larger inputs, so that DuckDB runs its operators in
// parallel: people (unique id, unique key), claims (about two per person,
// some for nobody, NULL keys), with the columns of the hand corpus's
// people and claims.
func bigRows(n int) [2][][]any {
	r := rand.New(rand.NewSource(42))
	pk := func(b ...byte) []byte {
		out := make([]byte, 8)
		copy(out, b)
		return out
	}
	var people, claims [][]any
	districts := []any{"north", "south", "east", "west", "東区", nil}
	for k := 0; k < n; k++ {
		var age any = r.Intn(90)
		if r.Intn(20) == 0 {
			age = nil
		}
		people = append(people, []any{k, fmt.Sprintf("n%d", r.Intn(n/3)), districts[r.Intn(len(districts))], age,
			fmt.Sprintf("%d.%04d", r.Intn(20000)-5000, r.Intn(10000)), float64(r.Intn(1000)) / 8,
			time.Date(1940+r.Intn(80), 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.Intn(365)).Format("2006-01-02"),
			time.Unix(1577836800+int64(r.Intn(1e8)), 0).UTC().Format(time.RFC3339), r.Intn(3) != 0,
			pk(byte(k), byte(k>>8), byte(k>>16), 1)})
	}
	for k := 0; k < 2*n; k++ {
		var pid any = r.Intn(n + n/10)
		if r.Intn(30) == 0 {
			pid = nil
		}
		u := r.Intn(n)
		claims = append(claims, []any{pid, districts[r.Intn(len(districts))], fmt.Sprintf("%d.%02d", r.Intn(1000), r.Intn(100)),
			float64(r.Intn(64)) / 16, "2020-01-01", pk(byte(u), byte(u>>8), byte(u>>16), 1), pk(byte(u), byte(u>>8), byte(u>>16), 2), "n%", nil})
	}
	return [2][][]any{people, claims}
}

func goldenDir() string { return filepath.Join("testdata", "engine") }

func readGolden(t testing.TB, name string) *goldenFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &g
}

// parseArrowType reads the String form of the Arrow types the corpus
// uses.
func parseArrowType(s string) (arrow.DataType, error) {
	switch s {
	case "int64":
		return arrow.PrimitiveTypes.Int64, nil
	case "int32":
		return arrow.PrimitiveTypes.Int32, nil
	case "float64":
		return arrow.PrimitiveTypes.Float64, nil
	case "float32":
		return arrow.PrimitiveTypes.Float32, nil
	case "utf8":
		return arrow.BinaryTypes.String, nil
	case "binary":
		return arrow.BinaryTypes.Binary, nil
	case "bool":
		return arrow.FixedWidthTypes.Boolean, nil
	case "date64":
		return arrow.FixedWidthTypes.Date64, nil
	case "date32":
		return arrow.FixedWidthTypes.Date32, nil
	case "null":
		return arrow.Null, nil
	}
	var p, sc int32
	if _, err := fmt.Sscanf(s, "decimal(%d, %d)", &p, &sc); err == nil {
		return &arrow.Decimal128Type{Precision: p, Scale: sc}, nil
	}
	if rest, ok := strings.CutPrefix(s, "timestamp["); ok {
		rest = strings.TrimSuffix(rest, "]")
		unit, tz, _ := strings.Cut(rest, ", tz=")
		for _, u := range []arrow.TimeUnit{arrow.Second, arrow.Millisecond, arrow.Microsecond, arrow.Nanosecond} {
			if u.String() == unit {
				return &arrow.TimestampType{Unit: u, TimeZone: tz}, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown Arrow type %q", s)
}

// schema is the table's Arrow schema.
func (g goldenTable) schema() (*arrow.Schema, error) {
	fs := make([]arrow.Field, len(g.Columns))
	for k, c := range g.Columns {
		dt, err := parseArrowType(c.Type)
		if err != nil {
			return nil, err
		}
		fs[k] = arrow.Field{Name: c.Name, Type: dt, Nullable: true}
		if c.Meta != "" {
			fs[k].Metadata = arrow.NewMetadata([]string{sluice.MetaType}, []string{c.Meta})
		}
	}
	return arrow.NewSchema(fs, nil), nil
}

// goValue turns a stored value into appendValue's Go value.
func goValue(dt arrow.DataType, v *string) (any, error) {
	if v == nil {
		return nil, nil
	}
	s := *v
	switch dt.ID() {
	case arrow.INT64, arrow.INT32:
		n, err := strconv.Atoi(s)
		return n, err
	case arrow.FLOAT64, arrow.FLOAT32:
		return strconv.ParseFloat(s, 64)
	case arrow.BINARY:
		return hex.DecodeString(s)
	case arrow.BOOL:
		return strconv.ParseBool(s)
	}
	return s, nil
}

// input builds the table's input.
func (g goldenTable) input(t testing.TB, mem memory.Allocator) input {
	t.Helper()
	sc, err := g.schema()
	if err != nil {
		t.Fatalf("input %s: %v", g.Name, err)
	}
	var rows [][]any
	if g.Generator != "" {
		gen, ok := goldenGenerators[g.Generator]
		if !ok {
			t.Fatalf("input %s: no generator %q", g.Name, g.Generator)
		}
		rows = gen()
	}
	for _, r := range g.Rows {
		row := make([]any, len(r))
		for k, v := range r {
			if row[k], err = goValue(sc.Field(k).Type, v); err != nil {
				t.Fatalf("input %s: %v", g.Name, err)
			}
		}
		rows = append(rows, row)
	}
	return newInput(t, mem, sc, 4096, rows...)
}

// runGolden runs every case of a file through the engine path, in one
// session holding all the file's inputs.
func runGolden(t *testing.T, file string) {
	g := readGolden(t, file)
	mem := memory.NewGoAllocator()
	p := openPath(t, nil, mem)
	index := map[string]int{}
	for k, in := range g.Inputs {
		p.add(in.input(t, mem))
		index[in.Name] = k
	}
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			o := pathOpts{oneToOne: tc.OneToOne}
			for _, name := range tc.Inputs {
				k, ok := index[name]
				if !ok {
					t.Fatalf("no input %q", name)
				}
				o.inputs = append(o.inputs, k)
			}
			r, err := runGoldenCase(p.on(t), tc, o)
			if msg := checkGolden(tc, r, err); msg != "" {
				sql := ""
				if r != nil && r.q != nil {
					sql = r.q.SQL
				}
				t.Fatalf("%s\nplan:\n%s\nSQL: %s", msg, tc.Plan.Normalized(), sql)
			}
		})
	}
}

// runGoldenCase runs one case; a split case runs as the broker runs a
// plan whose outermost aggregate feeds a release gate (here a gate with
// nothing to do): the aggregate, then the rest over its output.
func runGoldenCase(p *enginePath, tc goldenCase, o pathOpts) (*result, error) {
	if !tc.Split {
		return p.run(tc.Plan, o)
	}
	agg := tc.Plan.OutermostAggregate()
	if agg == nil || agg == tc.Plan {
		p.t.Fatal("a split case needs an aggregate below the root")
	}
	_, sc, recs, err := p.query(p.t.Context(), agg, o)
	if err != nil {
		return nil, err
	}
	gated := input{schema: sc, recs: recs}
	p.t.Cleanup(func() { releaseRecords(recs) })
	rel := p.add(gated)
	o.leaf = map[*planner.Node]planner.DuckDBRelation{agg: rel}
	return p.run(tc.Plan, o)
}

// checkGolden returns how the engine path's answer differs from the
// case's expectation, or "".
func checkGolden(tc goldenCase, r *result, err error) string {
	if tc.Error != "" {
		want := tc.Error
		if tc.EngineError != "" {
			want = tc.EngineError
		}
		if err == nil {
			return fmt.Sprintf("want a %s error (old: %s), got rows %v", want, tc.ErrorMessage, r.canon)
		}
		if got := sluice.ErrorCode(err); got != want {
			return fmt.Sprintf("want a %s error (old: %s), got %s: %v", want, tc.ErrorMessage, got, err)
		}
		return ""
	}
	if err != nil {
		return fmt.Sprintf("want rows, got %v", err)
	}
	if len(r.schema.Fields()) != len(tc.Columns) {
		return fmt.Sprintf("%d columns, want %d (%v)", r.schema.NumFields(), len(tc.Columns), tc.Columns)
	}
	var diffs []string
	for k, want := range tc.Columns {
		f := r.schema.Field(k)
		if f.Name != want.Name {
			diffs = append(diffs, fmt.Sprintf("column %d is named %q, want %q", k, f.Name, want.Name))
		}
		if f.Type.String() != want.Type {
			diffs = append(diffs, fmt.Sprintf("column %q has type %s, want %s", want.Name, f.Type, want.Type))
		}
		// A column the old operators passed through kept its input's
		// metadata (a binary column's too); a computed one carried its
		// type. Either way it is the type the renderer gives it.
		if want.Meta != "" && string(r.q.Columns[k].Type) != want.Meta {
			diffs = append(diffs, fmt.Sprintf("column %q is rendered as %s, want %s", want.Name, r.q.Columns[k].Type, want.Meta))
		}
	}
	got, want := joinCanon(r.canon, !tc.Ordered), joinCanon(tc.Rows, !tc.Ordered)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		diffs = append(diffs, fmt.Sprintf("rows differ\nwant:\n  %s\ngot:\n  %s", strings.Join(want, "\n  "), strings.Join(got, "\n  ")))
	}
	return strings.Join(diffs, "\n")
}

func TestGoldenExpressions(t *testing.T) { runGolden(t, "expressions.json") }
func TestGoldenOperators(t *testing.T)   { runGolden(t, "operators.json") }
func TestGoldenRandom(t *testing.T)      { runGolden(t, "random.json") }
func TestGoldenPlannerSQL(t *testing.T)  { runGolden(t, "planner_sql.json") }
func TestGoldenTypes(t *testing.T)       { runGolden(t, "types.json") }

func TestGoldenLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large inputs")
	}
	runGolden(t, "large.json")
}
