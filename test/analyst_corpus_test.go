//go:build duckdb_arrow

package test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The analyst-SQL corpus: queries an analyst writes over the demo world
// (testdata/analyst_corpus.yaml), each construct of docs/sql.md's "Planned
// today" alone and across departments, under every release level, each
// answer compared with ground truth computed directly on the demo's SQLite
// files, or with the refusal the release level demands.
//
// Ground truth runs on one SQLite connection with the four department
// files attached as civil, health, market and police, so `civil.residents`
// resolves as it does for the analyst. It is written in SQLite's SQL and
// applies by hand what Sluice must apply: masks (as planner/render.go's
// maskSQL renders them for SQLite), the minimum group size of an
// aggregate-only release (groups of fewer than k persons are absent),
// PostgreSQL's semantics where SQLite's differ.

// corpusEntry is one query of the corpus.
type corpusEntry struct {
	ID string `yaml:"id"`
	// Constructs and Level only classify the entry (the report counts
	// them); Level is owner, masked, aggregate, plain or refusal.
	Constructs []string `yaml:"constructs"`
	Level      string   `yaml:"level"`
	// Analyst is a demo user (alice, bob, erin), "lab:rows" (an analyst of
	// a department of its own with rows grants on civil.residents and
	// police.household: masked columns) or "lab:agg" (a fresh analyst of a
	// fresh department per entry, with aggregate-only grants, k = 10, on
	// civil.residents, health.insured and police.household, so the
	// differencing guard's memory of other releases does not decide it).
	Analyst string `yaml:"analyst"`
	Purpose string `yaml:"purpose"`
	SQL     string `yaml:"sql"`
	// Truth is the ground truth in SQLite over the attached files.
	Truth string `yaml:"truth"`
	// Unsuppressed, for aggregate-only entries, is the ground truth
	// without the minimum group size: it must have more groups than Truth,
	// so the entry shows suppression at work.
	Unsuppressed string `yaml:"unsuppressed"`
	// Ordered compares row by row (the query orders totally); otherwise
	// the answers are compared as multisets.
	Ordered bool `yaml:"ordered"`
	// Columns, when given, are the result's column names.
	Columns []string `yaml:"columns"`
	// MayBeEmpty allows an empty ground truth (otherwise an empty one
	// means the demo data changed and the entry proves nothing).
	MayBeEmpty bool `yaml:"may_be_empty"`
	// Refuse is the expected refusal: the gRPC code and fragments of the
	// message, all required.
	Refuse *struct {
		Code string   `yaml:"code"`
		Says []string `yaml:"says"`
	} `yaml:"refuse"`
	// KnownBug skips the entry with the reason: Sluice answers it wrongly.
	KnownBug string `yaml:"known_bug"`
}

func loadCorpus(t *testing.T) []corpusEntry {
	t.Helper()
	raw, err := os.ReadFile("testdata/analyst_corpus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var entries []corpusEntry
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&entries); err != nil {
		t.Fatalf("testdata/analyst_corpus.yaml: %v", err)
	}
	seen := map[string]bool{}
	levels := map[string]bool{"owner": true, "masked": true, "aggregate": true, "plain": true, "refusal": true}
	for _, e := range entries {
		switch {
		case e.ID == "" || seen[e.ID]:
			t.Fatalf("corpus entry id %q is empty or repeated", e.ID)
		case e.Analyst == "" || e.Purpose == "" || strings.TrimSpace(e.SQL) == "":
			t.Fatalf("%s: analyst, purpose and sql are required", e.ID)
		case (e.Refuse == nil) == (strings.TrimSpace(e.Truth) == ""):
			t.Fatalf("%s: give either truth or refuse", e.ID)
		case e.Refuse != nil && (e.Refuse.Code == "" || len(e.Refuse.Says) == 0):
			t.Fatalf("%s: a refusal needs its code and a fragment of its message", e.ID)
		case !levels[e.Level] || (e.Level == "refusal") != (e.Refuse != nil):
			t.Fatalf("%s: level %q does not match the entry", e.ID, e.Level)
		case len(e.Constructs) == 0:
			t.Fatalf("%s: name the constructs it covers", e.ID)
		}
		seen[e.ID] = true
	}
	if len(entries) < 60 {
		t.Fatalf("the corpus has %d entries; it must hold at least 60", len(entries))
	}
	return entries
}

// groundTruth is one connection to the demo's files, attached under their
// department names.
func groundTruth(t *testing.T) *sql.DB {
	t.Helper()
	files := world.World.DatabaseFiles
	db, err := sql.Open("sqlite", "file:"+files["civil"]+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, dept := range []string{"civil", "health", "market", "police"} {
		if _, err := db.Exec("ATTACH DATABASE ? AS "+dept, "file:"+files[dept]+"?mode=ro"); err != nil {
			t.Fatalf("attach %s: %v", dept, err)
		}
	}
	return db
}

// cell is one value, canonical across the broker's Arrow types and
// SQLite's: NULL, a number or a string (dates as yyyy-mm-dd).
type cell struct {
	null  bool
	num   bool
	f     float64
	s     string
	exact bool // f holds an integer exactly
}

func (c cell) String() string {
	switch {
	case c.null:
		return "NULL"
	case c.num && c.exact:
		return strconv.FormatFloat(c.f, 'f', -1, 64)
	case c.num:
		return strconv.FormatFloat(c.f, 'g', 17, 64)
	}
	return strconv.Quote(c.s)
}

// key is the cell for sorting a multiset: numbers rounded so that values
// within the tolerance sort together.
func (c cell) key() string {
	switch {
	case c.null:
		return "\x00"
	case c.num:
		return "\x01" + strconv.FormatFloat(c.f, 'g', 8, 64)
	}
	return "\x02" + c.s
}

func toCell(v any) cell {
	switch x := v.(type) {
	case nil:
		return cell{null: true}
	case int64:
		return cell{num: true, f: float64(x), exact: true}
	case int32:
		return cell{num: true, f: float64(x), exact: true}
	case int16:
		return cell{num: true, f: float64(x), exact: true}
	case int8:
		return cell{num: true, f: float64(x), exact: true}
	case int:
		return cell{num: true, f: float64(x), exact: true}
	case uint64:
		return cell{num: true, f: float64(x), exact: true}
	case uint32:
		return cell{num: true, f: float64(x), exact: true}
	case float64:
		return cell{num: true, f: x, exact: x == math.Trunc(x)}
	case float32:
		return cell{num: true, f: float64(x), exact: float64(x) == math.Trunc(float64(x))}
	case bool:
		if x {
			return cell{num: true, f: 1, exact: true}
		}
		return cell{num: true, f: 0, exact: true}
	case time.Time:
		return cell{s: x.UTC().Format("2006-01-02")}
	case []byte:
		return cell{s: string(x)}
	case string:
		return cell{s: x}
	}
	return cell{s: fmt.Sprint(v)}
}

// sameCell: equal strings and NULLs, numbers within a relative 1e-9.
func sameCell(a, b cell) bool {
	switch {
	case a.null || b.null:
		return a.null == b.null
	case a.num != b.num:
		return false
	case !a.num:
		return a.s == b.s
	case a.f == b.f:
		return true
	}
	return math.Abs(a.f-b.f) <= 1e-9*math.Max(math.Abs(a.f), math.Abs(b.f))
}

func sameRow(a, b []cell) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameCell(a[i], b[i]) {
			return false
		}
	}
	return true
}

func rowKey(r []cell) string {
	var b strings.Builder
	for _, c := range r {
		b.WriteString(c.key())
		b.WriteByte(0xff)
	}
	return b.String()
}

// scanCells reads every row of rows as cells.
func scanCells(rows *sql.Rows) ([]string, [][]cell, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	var out [][]cell
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		r := make([]cell, len(cols))
		for i, v := range vals {
			r[i] = toCell(v)
		}
		out = append(out, r)
	}
	return cols, out, rows.Err()
}

// brokerCells runs stmt through the broker as user under purpose.
func brokerCells(t *testing.T, user, purpose, stmt string) ([]string, [][]cell, error) {
	t.Helper()
	db, err := sql.Open("flightsql", dsn(t, user, purpose))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout+30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	return scanCells(rows)
}

func truthCells(t *testing.T, db *sql.DB, stmt string) [][]cell {
	t.Helper()
	rows, err := db.Query(stmt)
	if err != nil {
		t.Fatalf("ground truth: %v\n%s", err, stmt)
	}
	defer rows.Close()
	_, out, err := scanCells(rows)
	if err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	return out
}

// compareCells reports the first difference between got and want, or "".
func compareCells(got, want [][]cell, ordered bool) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d\n got %s\nwant %s", len(got), len(want), showRows(got, 8), showRows(want, 8))
	}
	if !ordered {
		got, want = sortedCells(got), sortedCells(want)
	}
	mismatch := -1
	for i := range got {
		if !sameRow(got[i], want[i]) {
			mismatch = i
			break
		}
	}
	if mismatch < 0 {
		return ""
	}
	if !ordered && matchAll(got, want) {
		// Rows within the tolerance sorted apart; matched one by one.
		return ""
	}
	return fmt.Sprintf("row %d: got %v, want %v\n got %s\nwant %s", mismatch, got[mismatch], want[mismatch], showRows(got, 8), showRows(want, 8))
}

func sortedCells(rows [][]cell) [][]cell {
	out := append([][]cell(nil), rows...)
	sort.SliceStable(out, func(i, j int) bool { return rowKey(out[i]) < rowKey(out[j]) })
	return out
}

// matchAll pairs every row of got with a distinct row of want.
func matchAll(got, want [][]cell) bool {
	used := make([]bool, len(want))
next:
	for _, g := range got {
		for j, w := range want {
			if !used[j] && sameRow(g, w) {
				used[j] = true
				continue next
			}
		}
		return false
	}
	return true
}

func showRows(rows [][]cell, n int) string {
	var b strings.Builder
	for i, r := range rows {
		if i == n {
			fmt.Fprintf(&b, " … (%d rows)", len(rows))
			break
		}
		fmt.Fprint(&b, r)
	}
	return b.String()
}

// corpusLabs creates the corpus's own analysts through the admin API, as
// the workflow would: applications forwarded by the platform and approved
// by the providing departments' data admins.
type corpusLabs struct {
	mu   sync.Mutex
	seq  int
	rows string
}

var corpusProviders = map[string]string{"civil.residents": "cheng", "health.insured": "hana", "police.household": "paul"}

func (l *corpusLabs) analyst(t *testing.T, kind string) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if kind == "rows" && l.rows != "" {
		return l.rows
	}
	l.seq++
	name := fmt.Sprintf("corpus%s%02d", kind, l.seq)
	dept := fmt.Sprintf("corpus%s%02d_%d", kind, l.seq, time.Now().UnixNano()%1_000_000)
	mustAPI(t, 200, "PUT", "/v1/users/"+name, "dave", `{"role":"analyst","department":"`+dept+`"}`)
	var tok struct {
		Secret string `json:"token"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/users/"+name+"/tokens", "dave", `{"ttl":"2h","label":"analyst corpus"}`), &tok)
	issuedTokens.Store(name, tok.Secret)
	type grant struct{ dataset, columns string }
	var grants []grant
	mode := `"mode":"rows"`
	switch kind {
	case "rows":
		grants = []grant{
			{"civil.residents", `"id_card","name","gender","birth_date","district","phone","low_income"`},
			{"police.household", `"id_card","name","household_district","migrant"`},
		}
	case "agg":
		mode = `"mode":"aggregate","k":10`
		grants = []grant{
			{"civil.residents", `"id_card","gender","birth_date","district","low_income","monthly_allowance"`},
			{"health.insured", `"id_card","insurance_type","chronic_disease","annual_claims","hospital_visits"`},
			{"police.household", `"id_card","household_district","migrant"`},
		}
	default:
		t.Fatalf("unknown lab analyst kind %q", kind)
	}
	from, until := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339)
	for _, g := range grants {
		var a struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		decodeJSON(t, mustAPI(t, 201, "POST", "/v1/applications", name, fmt.Sprintf(`{"items":[{"dataset":%q,"columns":[%s]}],
			"purpose":"subsidy-review","justification":"the analyst-SQL corpus","valid_from":%q,"valid_until":%q,%s}`,
			g.dataset, g.columns, from, until, mode)), &a)
		mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/forward", "dave", `{"note":"ok"}`)
		decodeJSON(t, mustAPI(t, 200, "POST", "/v1/applications/"+a.ID+"/approve", corpusProviders[g.dataset], `{"note":"corpus"}`), &a)
		if a.Status != "approved" {
			t.Fatalf("approval: %+v", a)
		}
	}
	if kind == "rows" {
		l.rows = name
	}
	return name
}

// TestAnalystCorpus runs the corpus. An entry marked known_bug is run too
// and skipped with its reason (or, once it passes, with a note to unmark
// it).
func TestAnalystCorpus(t *testing.T) {
	entries := loadCorpus(t)
	truth := groundTruth(t)
	labs := &corpusLabs{}
	levels := map[string]int{}
	for _, e := range entries {
		levels[e.Level]++
		t.Run(e.ID, func(t *testing.T) {
			user := e.Analyst
			if kind, ok := strings.CutPrefix(user, "lab:"); ok {
				user = labs.analyst(t, kind)
			}
			failure := runCorpusEntry(t, truth, user, e)
			switch {
			case e.KnownBug != "" && failure == "":
				t.Skip("marked known_bug but answers correctly now; remove the mark: " + e.KnownBug)
			case e.KnownBug != "":
				t.Skip("known bug: " + e.KnownBug)
			case failure != "":
				t.Fatal(failure)
			}
		})
	}
	t.Logf("%d entries by release level: %v", len(entries), levels)
}

// runCorpusEntry runs e as user and returns how its answer is wrong, or
// "". A ground truth that cannot run fails the test at once: that is the
// corpus's error, not the broker's.
func runCorpusEntry(t *testing.T, truth *sql.DB, user string, e corpusEntry) string {
	t.Helper()
	var want [][]cell
	if e.Refuse == nil {
		want = truthCells(t, truth, e.Truth)
		if len(want) == 0 && !e.MayBeEmpty {
			t.Fatal("the ground truth is empty: the demo data changed or the entry proves nothing")
		}
		if e.Unsuppressed != "" {
			if all := truthCells(t, truth, e.Unsuppressed); len(all) <= len(want) {
				t.Fatalf("no group is suppressed (%d groups, %d kept): the entry does not show the minimum group size", len(all), len(want))
			}
		}
	}
	cols, got, err := brokerCells(t, user, e.Purpose, e.SQL)
	if e.Refuse != nil {
		if err == nil {
			return fmt.Sprintf("want %s, got %d rows: %s", e.Refuse.Code, len(got), showRows(got, 5))
		}
		for _, w := range append([]string{e.Refuse.Code}, e.Refuse.Says...) {
			if !strings.Contains(err.Error(), w) {
				return fmt.Sprintf("the refusal does not say %q: %v", w, err)
			}
		}
		return ""
	}
	if err != nil {
		return fmt.Sprintf("%s as %s: %v", e.SQL, user, err)
	}
	if e.Columns != nil && fmt.Sprint(cols) != fmt.Sprint(e.Columns) {
		return fmt.Sprintf("columns %q, want %q", cols, e.Columns)
	}
	if d := compareCells(got, want, e.Ordered); d != "" {
		return "broker and ground truth differ: " + d
	}
	return ""
}
