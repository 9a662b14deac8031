package agent

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// extraTables is how many filler tables the registration database has, so
// that the list of tables exceeds what an error message shows.
const extraTables = 24

// makeRegDB builds a department database with a table to register.
func makeRegDB(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "reg.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		`CREATE TABLE residents (id_card TEXT, name TEXT, district TEXT, allowance REAL, secret TEXT, birth_date DATE)`,
		`CREATE TABLE people (id_card TEXT, name TEXT, district TEXT, income DECIMAL(10,2), born DATE,
			active BOOLEAN, updated DATETIME, note, photo BLOB, score DOUBLE, visits BIGINT, "weird col" TEXT)`,
		`CREATE VIEW people_v AS SELECT district FROM people`,
	}
	for i := 0; i < extraTables; i++ {
		stmts = append(stmts, fmt.Sprintf(`CREATE TABLE t%02d (x INTEGER)`, i))
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for i := 0; i < 15; i++ {
		d := "A"
		if i >= 11 {
			d = "B"
		}
		_, err := db.Exec(`INSERT INTO people VALUES (?, ?, ?, ?, ?, 1, '2024-01-02 03:04:05', 'n', x'00', 1.5, ?, 'w')`,
			fmt.Sprintf("1101011990%08d", i), surnames[i%len(surnames)]+"小明", d, fmt.Sprintf("%d.25", 100+i),
			fmt.Sprintf("19%02d-05-06", 60+i), i)
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// regFixture serves the civil department (its YAML datasets as in
// department()) over dbPath, with a registry file at registry ("" for
// none).
func regFixture(t *testing.T, dbPath, registry string) *fixture {
	t.Helper()
	dir := t.TempDir()
	var opts []Option
	if registry != "" {
		opts = append(opts, WithRegistry(registry))
	}
	return startAgent(t, dir, func(pins []string) *sluice.Department { return department(dir, dbPath, pins) }, opts, nil)
}

func peopleDataset() *sluice.Dataset {
	return &sluice.Dataset{
		Name: "people", Title: "People of the city", ShareClass: sluice.ShareConditional, LegalBasis: "Personal Information Protection Law",
		Columns: []*sluice.Column{
			{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "person", Unique: true},
			{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskSurname},
			{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
			{Name: "income", Type: sluice.TypeDecimal, Grade: sluice.GradeL3, Release: sluice.ReleaseAggregate},
			{Name: "born", Type: sluice.TypeDate, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskYear},
		},
	}
}

func catalogNames(t *testing.T, c *Client) []string {
	t.Helper()
	cat, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ds := range cat {
		out = append(out, ds.FullName())
	}
	return out
}

func TestDescribeSQLite(t *testing.T) {
	fx := regFixture(t, makeRegDB(t), "")
	c := fx.broker(t)
	ctx := context.Background()

	d, err := c.Describe(ctx, "", "people")
	if err != nil {
		t.Fatal(err)
	}
	want := []TableColumn{
		{"id_card", sluice.TypeText, "TEXT"}, {"name", sluice.TypeText, "TEXT"}, {"district", sluice.TypeText, "TEXT"},
		{"income", sluice.TypeDecimal, "DECIMAL(10,2)"}, {"born", sluice.TypeDate, "DATE"}, {"active", sluice.TypeBoolean, "BOOLEAN"},
		{"updated", sluice.TypeTimestamp, "DATETIME"}, {"note", sluice.TypeText, ""}, {"photo", sluice.TypeText, "BLOB"},
		{"score", sluice.TypeFloat, "DOUBLE"}, {"visits", sluice.TypeInteger, "BIGINT"}, {"weird col", sluice.TypeText, "TEXT"},
	}
	if d.Source != "main" || d.Table != "people" || !slices.Equal(d.Columns, want) {
		t.Errorf("describe people = %+v\nwant columns %+v", d, want)
	}

	tables, err := c.ListTables(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != extraTables+3 || !slices.Contains(tables, "people") || !slices.Contains(tables, "people_v") || !slices.IsSorted(tables) {
		t.Errorf("tables = %v", tables)
	}

	tests := []struct {
		name          string
		source, table string
		code          string
		contains      []string
		wantTable     string
	}{
		{name: "view", table: "people_v", wantTable: "people_v"},
		{name: "SQLite resolves names without case", source: "main", table: "PEOPLE", wantTable: "people"},
		{name: "unknown table lists at most 20", table: "nobody", code: sluice.ENotFound,
			contains: []string{`"nobody"`, "people", "t00", fmt.Sprintf("(and %d more)", extraTables+3-maxListedTables)}},
		{name: "unknown source", source: "archive", table: "people", code: sluice.ENotFound, contains: []string{`"archive"`, "main"}},
		{name: "statement injection", table: "people; DROP TABLE people", code: sluice.EInvalid, contains: []string{"plain table name"}},
		{name: "quote injection", table: `people" --`, code: sluice.EInvalid, contains: []string{"plain table name"}},
		{name: "union injection", table: "people UNION SELECT name FROM sqlite_master", code: sluice.EInvalid},
		{name: "schema prefix", table: "main.people", code: sluice.EInvalid},
		{name: "pragma table name", table: "sqlite_master", code: sluice.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.Describe(ctx, tt.source, tt.table)
			if tt.code != "" {
				wantCode(t, err, tt.code, tt.contains...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Table != tt.wantTable || len(d.Columns) == 0 {
				t.Errorf("got %+v, want table %s", d, tt.wantTable)
			}
		})
	}

	// The table is still there after the injection attempts.
	if _, err := c.Describe(ctx, "main", "people"); err != nil {
		t.Fatal(err)
	}

	// Raw bodies: the wire format as the broker sends it.
	rawTests := []struct {
		name, body string
		code, want string
	}{
		{"listing", `{"source": "main"}`, "", `"tables":[`},
		{"empty body lists the only source", ``, "", `"source":"main","tables":[`},
		{"table", `{"source": "main", "table": "people"}`, "", `{"source":"main","table":"people","columns":[{"name":"id_card","type":"text","db_type":"TEXT"}`},
		{"malformed", `{"source": `, sluice.EInvalid, ""},
		{"unknown field", `{"source": "main", "tabel": "people"}`, sluice.EInvalid, "tabel"},
		{"trailing data", `{"source": "main"} {}`, sluice.EInvalid, ""},
	}
	for _, tt := range rawTests {
		t.Run("raw "+tt.name, func(t *testing.T) {
			res, err := c.actionResults(ctx, actionDescribe, []byte(tt.body))
			if tt.code != "" {
				wantCode(t, err, tt.code, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || !strings.Contains(string(res[0]), tt.want) {
				t.Errorf("answer %q does not contain %q", res, tt.want)
			}
		})
	}
}

func TestRegisterFetchRestart(t *testing.T) {
	dbPath := makeRegDB(t)
	registry := filepath.Join(t.TempDir(), "registry.json")
	fx := regFixture(t, dbPath, registry)
	c := fx.broker(t)
	ctx := context.Background()

	_, err := fetchAll(ctx, c, frag("people", outsider, sel("district", col("district"))))
	wantCode(t, err, sluice.ENotFound, "people")

	if err := c.RegisterDataset(ctx, peopleDataset(), "main", "people"); err != nil {
		t.Fatal(err)
	}
	if names := catalogNames(t, c); !slices.Equal(names, []string{"civil.residents", "civil.big", "civil.records", "civil.people"}) {
		t.Errorf("catalog after registration: %v", names)
	}

	checkServed := func(t *testing.T, c *Client, nameRelease sluice.Release) {
		t.Helper()
		grouped := frag("people", outsider, sel("district", col("district"), "total", agg("sum", col("income"))))
		grouped.GroupBy = []*planner.Expr{col("district")}
		grouped.OrderBy = []planner.OrderItem{{Expr: col("district")}}
		tests := []struct {
			name  string
			f     *planner.Fragment
			code  string
			check func(t *testing.T, res *table)
		}{
			{name: "outsider gets masks", f: frag("people", outsider, sel("name", col("name"), "born", col("born"), "district", col("district"))),
				check: func(t *testing.T, res *table) {
					if len(res.rows) != 15 {
						t.Fatalf("%d rows, want 15", len(res.rows))
					}
					for _, r := range res.rows {
						if n := []rune(r[0]); len(n) != 3 || string(n[1:]) != "**" || !isYearIn(r[1], 1960, 1974) {
							t.Fatalf("row %v is not masked", r)
						}
					}
				}},
			{name: "owner sees plain values", f: frag("people", owner, sel("name", col("name"), "born", col("born"))),
				check: func(t *testing.T, res *table) {
					if len(res.rows) != 15 || !strings.HasSuffix(res.rows[0][0], "小明") || len(res.rows[0][1]) != 10 {
						t.Fatalf("owner rows %v", res.rows)
					}
				}},
			{name: "aggregate column only in groups of k", f: grouped,
				check: func(t *testing.T, res *table) {
					if len(res.rows) != 1 || res.rows[0][0] != "A" {
						t.Fatalf("groups %v, want only A (11 rows; B has 4)", res.rows)
					}
				}},
			{name: "join key never leaves", f: frag("people", outsider, sel("id", col("id_card"))), code: sluice.EDenied},
			{name: "unclassified column is not exposed", f: frag("people", owner, sel("s", col("score"))), code: sluice.EInvalid},
		}
		if nameRelease == sluice.ReleaseHidden {
			tests[0].name = "reclassified hidden column is refused"
			tests[0].f = frag("people", outsider, sel("name", col("name")))
			tests[0].code = sluice.EDenied
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res, err := fetchAll(ctx, c, tt.f)
				if tt.code != "" {
					if err == nil || sluice.ErrorCode(err) != tt.code && !(tt.code == sluice.EInvalid && sluice.ErrorCode(err) == sluice.ENotFound) {
						t.Fatalf("want %s, got %v", tt.code, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, res)
			})
		}
	}
	t.Run("served", func(t *testing.T) { checkServed(t, c, sluice.ReleaseMasked) })

	// A classification update replaces the registration.
	upd := peopleDataset()
	upd.Column("name").Release, upd.Column("name").Mask = sluice.ReleaseHidden, ""
	if err := c.RegisterDataset(ctx, upd, "", "people"); err != nil {
		t.Fatal(err)
	}
	t.Run("updated", func(t *testing.T) { checkServed(t, c, sluice.ReleaseHidden) })
	if n := len(fx.srv.Registrations()); n != 1 {
		t.Errorf("%d registrations after an update, want 1", n)
	}

	// Restart: a new agent with the same registry file serves it as it was.
	fx.shutdown(t)
	fx2 := regFixture(t, dbPath, registry)
	c2 := fx2.broker(t)
	t.Run("after restart", func(t *testing.T) { checkServed(t, c2, sluice.ReleaseHidden) })
	if names := catalogNames(t, c2); !slices.Contains(names, "civil.people") {
		t.Errorf("catalog after restart: %v", names)
	}

	// Unregister: gone now and after the next restart.
	if err := c2.UnregisterDataset(ctx, "PEOPLE"); err != nil {
		t.Fatal(err)
	}
	_, err = fetchAll(ctx, c2, frag("people", owner, sel("district", col("district"))))
	wantCode(t, err, sluice.ENotFound, "people")
	wantCode(t, c2.UnregisterDataset(ctx, "people"), sluice.ENotFound, "people")
	fx2.shutdown(t)
	fx3 := regFixture(t, dbPath, registry)
	if names := catalogNames(t, fx3.broker(t)); slices.Contains(names, "civil.people") {
		t.Errorf("catalog after unregistering and restarting: %v", names)
	}
}

func isYearIn(s string, lo, hi int) bool {
	var y int
	if _, err := fmt.Sscan(s, &y); err != nil || len(s) != 4 {
		return false
	}
	return y >= lo && y <= hi
}

func TestRegistrationRefusals(t *testing.T) {
	dbPath := makeRegDB(t)
	registry := filepath.Join(t.TempDir(), "registry.json")
	fx := regFixture(t, dbPath, registry)
	c := fx.broker(t)
	ctx := context.Background()
	if err := c.RegisterDataset(ctx, peopleDataset(), "main", "people"); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(registry)
	if err != nil {
		t.Fatal(err)
	}
	catBefore := catalogNames(t, c)

	body := func(mod func(r map[string]any, ds map[string]any)) string {
		raw, _ := json.Marshal(Registration{Source: "main", Table: "people", Dataset: peopleDataset()})
		var r map[string]any
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		ds := r["dataset"].(map[string]any)
		ds["name"] = "people2"
		mod(r, ds)
		out, _ := json.Marshal(r)
		return string(out)
	}
	column := func(ds map[string]any, i int) map[string]any {
		return ds["columns"].([]any)[i].(map[string]any)
	}
	tests := []struct {
		name     string
		body     string
		code     string
		contains []string
	}{
		{"malformed JSON", `{"source": "main", "table": `, sluice.EInvalid, []string{"not valid"}},
		{"not an object", `[1, 2]`, sluice.EInvalid, nil},
		{"trailing data", body(func(r, ds map[string]any) {}) + `{}`, sluice.EInvalid, []string{"after"}},
		{"unknown top-level field", body(func(r, ds map[string]any) { r["schema"] = "public" }), sluice.EInvalid, []string{"schema"}},
		{"source inside the dataset", body(func(r, ds map[string]any) { ds["source"] = "main" }), sluice.EInvalid, []string{"source"}},
		{"unknown column field", body(func(r, ds map[string]any) { column(ds, 0)["level"] = "plain" }), sluice.EInvalid, []string{"level"}},
		{"no dataset", `{"source": "main", "table": "people"}`, sluice.EInvalid, []string{"no dataset"}},
		{"empty body", ``, sluice.EInvalid, []string{"no dataset"}},
		{"no table", body(func(r, ds map[string]any) { delete(r, "table") }), sluice.EInvalid, []string{"no table"}},
		{"statement injection in the table", body(func(r, ds map[string]any) { r["table"] = "people; DROP TABLE people" }), sluice.EInvalid, []string{"plain table name"}},
		{"quote injection in the table", body(func(r, ds map[string]any) { r["table"] = `people" WHERE 1=1 --` }), sluice.EInvalid, []string{"plain table name"}},
		{"schema-qualified table", body(func(r, ds map[string]any) { r["table"] = "main.people" }), sluice.EInvalid, []string{"plain table name"}},
		{"unknown table", body(func(r, ds map[string]any) { r["table"] = "persons" }), sluice.ENotFound, []string{`"persons"`, "people"}},
		{"unknown source", body(func(r, ds map[string]any) { r["source"] = "archive" }), sluice.ENotFound, []string{`"archive"`, "main"}},
		{"unknown column", body(func(r, ds map[string]any) { column(ds, 2)["name"] = "districts" }), sluice.ENotFound, []string{`"districts"`, "district"}},
		{"injection in a column name", body(func(r, ds map[string]any) { column(ds, 2)["name"] = `district" FROM people; --` }), sluice.EInvalid, []string{"identifier"}},
		{"column not an identifier", body(func(r, ds map[string]any) { column(ds, 2)["name"] = "weird col" }), sluice.EInvalid, []string{"identifier"}},
		{"masked without a mask", body(func(r, ds map[string]any) { delete(column(ds, 1), "mask") }), sluice.EInvalid, []string{"mask"}},
		{"year mask on text", body(func(r, ds map[string]any) { column(ds, 1)["mask"] = "year" }), sluice.EInvalid, []string{"year"}},
		{"unknown release", body(func(r, ds map[string]any) { column(ds, 2)["release"] = "public" }), sluice.EInvalid, []string{"release"}},
		{"conditional without legal basis", body(func(r, ds map[string]any) { delete(ds, "legal_basis") }), sluice.EInvalid, []string{"legal_basis"}},
		{"no columns", body(func(r, ds map[string]any) { ds["columns"] = []any{} }), sluice.EInvalid, []string{"column"}},
		{"duplicate column", body(func(r, ds map[string]any) { ds["columns"] = append(ds["columns"].([]any), column(ds, 0)) }), sluice.EInvalid, []string{"twice"}},
		{"bad dataset name", body(func(r, ds map[string]any) { ds["name"] = "people-2" }), sluice.EInvalid, []string{"identifier"}},
		{"another department", body(func(r, ds map[string]any) { ds["department"] = "health" }), sluice.EInvalid, []string{"health"}},
		{"YAML dataset", body(func(r, ds map[string]any) { ds["name"] = "residents"; r["table"] = "residents" }), sluice.EInvalid, []string{"configuration", "authoritative"}},
		{"YAML dataset in another case", body(func(r, ds map[string]any) { ds["name"] = "Residents" }), sluice.EInvalid, []string{"configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.actionResults(ctx, actionRegister, []byte(tt.body))
			wantCode(t, err, tt.code, tt.contains...)
			after, rerr := os.ReadFile(registry)
			if rerr != nil || !bytes.Equal(before, after) {
				t.Errorf("the registry file changed after a refused registration")
			}
			if got := catalogNames(t, c); !slices.Equal(got, catBefore) {
				t.Errorf("catalog changed: %v, was %v", got, catBefore)
			}
		})
	}
	wantCode(t, c.UnregisterDataset(ctx, "residents"), sluice.EInvalid, "configuration")
	wantCode(t, c.UnregisterDataset(ctx, "nobody"), sluice.ENotFound, "nobody", "people")
	_, err = c.actionResults(ctx, actionUnregister, []byte(`{"dataset": "people"}`))
	wantCode(t, err, sluice.EInvalid, "dataset")

	// YAML datasets are still served as configured, and the table is intact.
	res, err := fetchAll(ctx, c, frag("residents", owner, sel("district", col("district"))))
	if err != nil || len(res.rows) != 0 {
		t.Errorf("residents after refusals: %v rows, %v", res, err)
	}
	if d, err := c.Describe(ctx, "main", "people"); err != nil || len(d.Columns) != 12 {
		t.Errorf("people after refusals: %+v, %v", d, err)
	}
	for _, e := range mustReadDir(t, filepath.Dir(registry)) {
		if e != "registry.json" {
			t.Errorf("stray file %s beside the registry", e)
		}
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestRegistrationWithoutRegistry(t *testing.T) {
	fx := regFixture(t, makeRegDB(t), "")
	c := fx.broker(t)
	ctx := context.Background()
	wantCode(t, c.RegisterDataset(ctx, peopleDataset(), "main", "people"), sluice.ENotSupported, "registry file")
	wantCode(t, c.UnregisterDataset(ctx, "people"), sluice.ENotSupported, "registry file")
	if _, err := c.Describe(ctx, "", "people"); err != nil {
		t.Errorf("describe without a registry: %v", err)
	}
}

func TestListActionsIncludesRegistration(t *testing.T) {
	fx := newFixture(t, nil, nil)
	st, err := fx.broker(t).fc.ListActions(context.Background(), &flight.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		a, err := st.Recv()
		if err != nil {
			break
		}
		got = append(got, a.GetType())
	}
	for _, want := range []string{actionDescribe, actionRegister, actionUnregister} {
		if !slices.Contains(got, want) {
			t.Errorf("ListActions %v lacks %s", got, want)
		}
	}
}

func TestBadRegistryFileFailsNew(t *testing.T) {
	dbPath := makeRegDB(t)
	dir := t.TempDir()
	good := Registration{Source: "main", Table: "people", Dataset: peopleDataset()}
	file := func(f registryFile) string {
		raw, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	missingCol := peopleDataset()
	missingCol.Columns[2].Name = "districts"
	tests := []struct {
		name     string
		content  string // "" for no file
		path     string // overrides the file's path
		code     string
		contains []string
	}{
		{name: "not JSON", content: "datasets: [people]", code: sluice.EInvalid, contains: []string{"not a valid registry"}},
		{name: "unknown field", content: `{"version": 1, "department": "civil", "datasets": [], "owner": "x"}`, code: sluice.EInvalid, contains: []string{"owner"}},
		{name: "other department", content: file(registryFile{Version: 1, Department: "health"}), code: sluice.EInvalid, contains: []string{"health"}},
		{name: "unknown version", content: file(registryFile{Version: 7, Department: deptID}), code: sluice.EInvalid, contains: []string{"version 7"}},
		{name: "missing table", content: file(registryFile{Version: 1, Department: deptID, Datasets: []*Registration{{Source: "main", Table: "gone", Dataset: peopleDataset()}}}),
			code: sluice.ENotFound, contains: []string{`"gone"`, "people"}},
		{name: "missing column", content: file(registryFile{Version: 1, Department: deptID, Datasets: []*Registration{{Source: "main", Table: "people", Dataset: missingCol}}}),
			code: sluice.ENotFound, contains: []string{"districts"}},
		{name: "shadows YAML", content: file(registryFile{Version: 1, Department: deptID, Datasets: []*Registration{{Source: "main", Table: "residents", Dataset: &sluice.Dataset{
			Name: "residents", ShareClass: sluice.ShareUnconditional, Columns: []*sluice.Column{{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain}}}}}}),
			code: sluice.EInvalid, contains: []string{"configuration"}},
		{name: "twice", content: file(registryFile{Version: 1, Department: deptID, Datasets: []*Registration{&good, &good}}), code: sluice.EInvalid, contains: []string{"twice"}},
		{name: "folder missing", path: filepath.Join(dir, "nowhere", "registry.json"), code: sluice.EInvalid, contains: []string{"nowhere"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = filepath.Join(dir, fmt.Sprintf("registry-%d.json", i))
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			d := department(dir, dbPath, []string{"sha256:00"})
			srv, err := New(context.Background(), d, WithRegistry(path))
			if err == nil {
				srv.Close()
			}
			wantCode(t, err, tt.code, append([]string{path}, tt.contains...)...)
		})
	}

	// A missing file in an existing folder and an empty file are empty
	// registries.
	for _, content := range []*string{nil, new(string)} {
		path := filepath.Join(dir, "fresh.json")
		os.Remove(path)
		if content != nil {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		srv, err := New(context.Background(), department(dir, dbPath, []string{"sha256:00"}), WithRegistry(path))
		if err != nil {
			t.Fatalf("empty registry (file exists: %v): %v", content != nil, err)
		}
		if n := len(srv.Registrations()); n != 0 {
			t.Errorf("%d registrations from an empty registry", n)
		}
		srv.Close()
	}
}

func TestRegistrationConcurrentWithFetches(t *testing.T) {
	fx := regFixture(t, makeRegDB(t), filepath.Join(t.TempDir(), "registry.json"))
	c := fx.broker(t)
	ctx := context.Background()
	if err := c.RegisterDataset(ctx, peopleDataset(), "main", "people"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				res, err := fetchAll(ctx, c, frag("people", outsider, sel("district", col("district"), "name", col("name"))))
				if err != nil {
					errs <- err
					return
				}
				if len(res.rows) != 15 {
					errs <- fmt.Errorf("%d rows", len(res.rows))
					return
				}
				if _, err := c.Catalog(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		masks := []sluice.MaskRule{sluice.MaskSurname, sluice.MaskRedact}
		for i := 0; time.Now().Before(deadline); i++ {
			ds := peopleDataset()
			ds.Column("name").Mask = masks[i%2]
			ds.Description = fmt.Sprint("version ", i)
			if err := c.RegisterDataset(ctx, ds, "main", "people"); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Real database servers: PostgreSQL and MariaDB.

// openServerOrSkip opens a database server for setup; one that does not
// answer skips the test, or fails it under CI=true (dbtest).
func openServerOrSkip(t *testing.T, src sluice.Source) *adapters.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := adapters.Open(ctx, src)
	if err != nil {
		if sluice.ErrorCode(err) == sluice.EUnavailable {
			dbtest.NotReachable(t, string(src.Driver), src.DSN, err)
		}
		t.Fatalf("%s is not reachable at %s: %v", src.Driver, src.DSN, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDescribeAndRegisterOnServers(t *testing.T) {
	tests := []struct {
		name   string
		driver sluice.Driver
		dsn    func(testing.TB) string
		create string // %s is the table
		insert string
		want   []TableColumn // DBType is not compared
	}{
		{
			name: "PostgreSQL", driver: sluice.DriverPostgres, dsn: dbtest.PostgresURL,
			create: `CREATE TABLE %s (id bigint, name varchar(20), amount numeric(12,2), ratio double precision, r real, ok boolean,
				born date, at timestamp, atz timestamptz, tags text[], u uuid, j jsonb, small smallint, "MixedCase" text, mood_t interval)`,
			insert: `INSERT INTO %s (id, name, amount, born) VALUES (1, '张小明', 12.50, '1980-02-03'), (2, '李四', 7.25, '1990-04-05')`,
			want: []TableColumn{{Name: "id", Type: "integer"}, {Name: "name", Type: "text"}, {Name: "amount", Type: "decimal"},
				{Name: "ratio", Type: "float"}, {Name: "r", Type: "float"}, {Name: "ok", Type: "boolean"}, {Name: "born", Type: "date"},
				{Name: "at", Type: "timestamp"}, {Name: "atz", Type: "timestamp"}, {Name: "tags", Type: "text"}, {Name: "u", Type: "text"},
				{Name: "j", Type: "text"}, {Name: "small", Type: "integer"}, {Name: "MixedCase", Type: "text"}, {Name: "mood_t", Type: "text"}},
		},
		{
			name: "MariaDB", driver: sluice.DriverMySQL, dsn: func(testing.TB) string { return dbtest.MariaDB },
			create: "CREATE TABLE %s (id bigint, name varchar(20), amount decimal(12,2), ratio double, r float, ok boolean, born date, " +
				"at datetime, ts timestamp NULL, y year, e enum('a','b'), small smallint unsigned, bits bit(1), t text, n int(11) unsigned, MixedCase text)",
			insert: `INSERT INTO %s (id, name, amount, born) VALUES (1, '张小明', 12.50, '1980-02-03'), (2, '李四', 7.25, '1990-04-05')`,
			want: []TableColumn{{Name: "id", Type: "integer"}, {Name: "name", Type: "text"}, {Name: "amount", Type: "decimal"},
				{Name: "ratio", Type: "float"}, {Name: "r", Type: "float"}, {Name: "ok", Type: "boolean"}, {Name: "born", Type: "date"},
				{Name: "at", Type: "timestamp"}, {Name: "ts", Type: "timestamp"}, {Name: "y", Type: "integer"}, {Name: "e", Type: "text"},
				{Name: "small", Type: "integer"}, {Name: "bits", Type: "boolean"}, {Name: "t", Type: "text"}, {Name: "n", Type: "integer"},
				{Name: "MixedCase", Type: "text"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := sluice.Source{Name: "srv", Driver: tt.driver, DSN: tt.dsn(t)}
			setup := openServerOrSkip(t, src)
			ctx := context.Background()
			tbl := uniqueTable("sluice_reg")
			for _, q := range []string{tt.create, tt.insert} {
				if _, err := setup.SQLX().ExecContext(ctx, fmt.Sprintf(q, tbl)); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			t.Cleanup(func() {
				if _, err := setup.SQLX().ExecContext(context.Background(), "DROP TABLE IF EXISTS "+tbl); err != nil {
					t.Errorf("drop %s: %v", tbl, err)
				}
			})

			dir := t.TempDir()
			registry := filepath.Join(dir, "registry.json")
			dbPath := makeRegDB(t)
			fx := startAgent(t, dir, func(pins []string) *sluice.Department {
				d := department(dir, dbPath, pins)
				d.Sources = append(d.Sources, src)
				return d
			}, []Option{WithRegistry(registry)}, nil)
			c := fx.broker(t)

			d, err := c.Describe(ctx, "srv", tbl)
			if err != nil {
				t.Fatal(err)
			}
			var got []TableColumn
			for _, col := range d.Columns {
				if col.DBType == "" {
					t.Errorf("column %s has no database type", col.Name)
				}
				got = append(got, TableColumn{Name: col.Name, Type: col.Type})
			}
			if d.Source != "srv" || d.Table != tbl || !slices.Equal(got, tt.want) {
				t.Errorf("describe = %s %s %+v\nwant %+v", d.Source, d.Table, got, tt.want)
			}
			tables, err := c.ListTables(ctx, "srv")
			if err != nil || !slices.Contains(tables, tbl) {
				t.Errorf("ListTables = %v, %v; want it to contain %s", tables, err, tbl)
			}
			_, err = c.Describe(ctx, "", tbl)
			wantCode(t, err, sluice.EInvalid, "2 sources", "main", "srv")
			_, err = c.Describe(ctx, "srv", tbl+"_missing")
			wantCode(t, err, sluice.ENotFound, tbl+"_missing")
			_, err = c.Describe(ctx, "srv", tbl+"; DROP TABLE "+tbl)
			wantCode(t, err, sluice.EInvalid, "plain table name")
			if tt.driver == sluice.DriverPostgres {
				// PostgreSQL names are case-sensitive once quoted.
				_, err = c.Describe(ctx, "srv", strings.ToUpper(tbl))
				wantCode(t, err, sluice.ENotFound, "did you mean")
			}

			ds := &sluice.Dataset{Name: "srv_people", ShareClass: sluice.ShareConditional, LegalBasis: "PIPL",
				Columns: []*sluice.Column{
					{Name: "id", Type: sluice.TypeInteger, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
					{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskSurname},
					{Name: "amount", Type: sluice.TypeDecimal, Grade: sluice.GradeL3, Release: sluice.ReleaseAggregate},
					{Name: "born", Type: sluice.TypeDate, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskYear},
					{Name: "MixedCase", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
				}}
			if tt.driver == sluice.DriverPostgres {
				ds.Columns[4].Name = "mixedcase"
				wantCode(t, c.RegisterDataset(ctx, ds, "srv", tbl), sluice.ENotFound, "did you mean", "MixedCase")
				ds.Columns[4].Name = "MixedCase"
			}
			if err := c.RegisterDataset(ctx, ds, "srv", tbl); err != nil {
				t.Fatal(err)
			}
			f := frag("srv_people", outsider, sel("id", col("id"), "name", col("name"), "born", col("born"), "m", col("MixedCase")))
			f.OrderBy = []planner.OrderItem{{Expr: col("id")}}
			res, err := fetchAll(ctx, c, f)
			if err != nil {
				t.Fatal(err)
			}
			want := [][]string{{"1", "张**", "1980", "NULL"}, {"2", "李**", "1990", "NULL"}}
			if !slices.EqualFunc(res.rows, want, slices.Equal) {
				t.Errorf("outsider rows %v, want %v", res.rows, want)
			}
			_, err = fetchAll(ctx, c, frag("srv_people", outsider, sel("a", col("amount"))))
			wantCode(t, err, sluice.EDenied, "amount")
		})
	}
}

// uniqueTable names a table no concurrent test run can collide with.
func uniqueTable(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1_000_000_000)
}
