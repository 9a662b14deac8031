package demo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

var testNow = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

var (
	sharedOnce  sync.Once
	sharedWorld *World
	sharedErr   error
	sharedDir   string
)

// scale1 generates the scale-1 world once per test binary: several tests
// only read it.
func scale1(t *testing.T) *World {
	t.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "sluice-demo-test-")
		if sharedErr != nil {
			return
		}
		start := time.Now()
		sharedWorld, sharedErr = Generate(context.Background(), Options{Dir: sharedDir, Scale: 1, Now: testNow})
		fmt.Printf("generated the scale-1 demo world in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if sharedErr != nil {
		t.Fatalf("Generate: %v", sharedErr)
	}
	return sharedWorld
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		_ = os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checksum hashes the schema and every row of every table, with SQLite's
// storage class of each value, in rowid order.
func checksum(t *testing.T, path string) string {
	t.Helper()
	db := openDB(t, path)
	h := sha256.New()
	rows, err := db.Query(`SELECT name, sql FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		var ddl sql.NullString
		if err := rows.Scan(&name, &ddl); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%s\x00", name, ddl.String)
		if strings.HasPrefix(ddl.String, "CREATE TABLE") {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, tbl := range tables {
		rows, err := db.Query(fmt.Sprintf(`SELECT * FROM %q ORDER BY rowid`, tbl))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(h, "%T:%v\x1f", v, v)
			}
			h.Write([]byte{'\n'})
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

func worldChecksums(t *testing.T, w *World) map[string]string {
	out := map[string]string{}
	for _, d := range deptIDs {
		out[d] = checksum(t, w.DatabaseFiles[d])
	}
	return out
}

func TestGenerateDeterministic(t *testing.T) {
	a := scale1(t)
	b, err := Generate(context.Background(), Options{Dir: t.TempDir(), Now: testNow.Add(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := worldChecksums(t, a), worldChecksums(t, b)
	for _, d := range deptIDs {
		if sa[d] != sb[d] {
			t.Errorf("%s: same seed gave different databases (%s vs %s)", d, sa[d], sb[d])
		}
	}
	if !reflect.DeepEqual(a.Rows, b.Rows) {
		t.Errorf("row counts differ: %v vs %v", a.Rows, b.Rows)
	}

	other, err := Generate(context.Background(), Options{Dir: t.TempDir(), Seed: 7, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	so := worldChecksums(t, other)
	for _, d := range deptIDs {
		if so[d] == sa[d] {
			t.Errorf("%s: seed 7 gave the same database as the default seed", d)
		}
	}
}

func TestRegenerateReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	w1, err := Generate(context.Background(), Options{Dir: dir, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	before := worldChecksums(t, w1)
	// Damage a database and leave a stale journal: regenerating must not
	// care, and must not replay the journal into the new file.
	civil := w1.DatabaseFiles[DeptCivil]
	db, err := sql.Open("sqlite", civil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM residents WHERE rowid % 2 = 0`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.WriteFile(civil+"-journal", []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	w2, err := Generate(context.Background(), Options{Dir: dir, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	after := worldChecksums(t, w2)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("regenerating did not restore the same data:\n%v\n%v", before, after)
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), ".tmp-") || strings.HasSuffix(d.Name(), "-journal") {
			t.Errorf("left behind %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGenerateCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := Generate(ctx, Options{Dir: dir}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestGenerateOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"no dir", Options{}, "output folder is required"},
		{"negative scale", Options{Dir: "x", Scale: -1}, "scale must be between 1 and 100"},
		{"huge scale", Options{Dir: "x", Scale: MaxScale + 1}, "scale must be between"},
		{"unknown department", Options{Dir: "x", AgentAddrs: map[string]string{"tax": "127.0.0.1:1"}}, `unknown department "tax"`},
		{"empty address", Options{Dir: "x", AgentAddrs: map[string]string{"civil": ""}}, "agent address of department civil is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(context.Background(), tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if sluice.ErrorCode(err) != sluice.EInvalid {
				t.Errorf("code = %s, want %s", sluice.ErrorCode(err), sluice.EInvalid)
			}
		})
	}
}

func queryInt(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestResidents(t *testing.T) {
	w := scale1(t)
	db := openDB(t, w.DatabaseFiles[DeptCivil])
	n := queryInt(t, db, `SELECT count(*) FROM residents`)
	if n < 20000 {
		t.Fatalf("scale 1 has %d residents, want at least 20000", n)
	}
	if w.Rows["civil.residents"] != n {
		t.Errorf("World.Rows says %d residents, the database %d", w.Rows["civil.residents"], n)
	}
	codes := map[string]string{}
	for _, d := range districts {
		codes[d.name] = d.code
	}
	phoneRE := regexp.MustCompile(`^1[358][0-9]{9}$`)
	// modernc.org/sqlite turns values of DATE columns into time.Time; the
	// concatenation keeps the stored text, which is what agents must see too.
	rows, err := db.Query(`SELECT id_card, name, gender, birth_date || '', typeof(birth_date), district, phone, low_income, monthly_allowance FROM residents`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	low := 0
	seen := map[string]bool{}
	for rows.Next() {
		var id, name, gender, birth, birthType, district, phone string
		var lowIncome int
		var allowance float64
		if err := rows.Scan(&id, &name, &gender, &birth, &birthType, &district, &phone, &lowIncome, &allowance); err != nil {
			t.Fatal(err)
		}
		switch {
		case birthType != "text" || len(birth) != 10:
			t.Fatalf("birth_date %q is stored as %s, want YYYY-MM-DD text", birth, birthType)
		case !ValidIDCard(id):
			t.Fatalf("invalid id_card %s", id)
		case seen[id]:
			t.Fatalf("id_card %s appears twice", id)
		case id[6:14] != strings.ReplaceAll(birth, "-", ""):
			t.Fatalf("id_card %s does not encode birth_date %s", id, birth)
		case birth < "1940-01-01" || birth > "2005-12-31":
			t.Fatalf("birth_date %s outside 1940-2005", birth)
		case (gender == "男") != idCardMale(id) || (gender != "男" && gender != "女"):
			t.Fatalf("id_card %s does not match gender %s", id, gender)
		case codes[district] != id[:6]:
			t.Fatalf("id_card %s is not from district %s (%s)", id, district, codes[district])
		case !phoneRE.MatchString(phone):
			t.Fatalf("bad phone %s", phone)
		case len([]rune(name)) < 2 || len([]rune(name)) > 4:
			t.Fatalf("bad name %q", name)
		case lowIncome == 0 && allowance != 0:
			t.Fatalf("%s is not low income but gets %v", id, allowance)
		case lowIncome == 1 && (allowance < 300 || allowance > 1500):
			t.Fatalf("%s gets allowance %v, want 300-1500", id, allowance)
		}
		seen[id] = true
		low += lowIncome
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if share := float64(low) / float64(n); share < 0.09 || share > 0.15 {
		t.Errorf("low income share %.3f, want about 12%%", share)
	}
}

func TestShares(t *testing.T) {
	w := scale1(t)
	dir := w.Dir
	db := openDB(t, w.DatabaseFiles[DeptMarket])
	for _, d := range []string{DeptCivil, DeptHealth, DeptPolice} {
		if _, err := db.Exec(fmt.Sprintf(`ATTACH DATABASE 'file:%s?mode=ro' AS %s`, filepath.Join(dir, d, d+".db"), d)); err != nil {
			t.Fatal(err)
		}
	}
	residents := queryInt(t, db, `SELECT count(*) FROM civil.residents`)
	tests := []struct {
		name   string
		query  string
		of     string
		lo, hi float64
	}{
		{"residents insured", `SELECT count(*) FROM health.insured i JOIN civil.residents r USING (id_card)`, "residents", 0.66, 0.74},
		{"insured non-residents", `SELECT count(*) FROM health.insured WHERE id_card NOT IN (SELECT id_card FROM civil.residents)`, "residents", 0.04, 0.06},
		{"chronic disease", `SELECT sum(chronic_disease) FROM health.insured`, "insured", 0.15, 0.21},
		{"household migrants", `SELECT sum(migrant) FROM police.household`, "household", 0.17, 0.23},
		{"residents with criminal records", `SELECT count(DISTINCT id_card) FROM police.criminal_records`, "residents", 0.007, 0.013},
		{"resident legal representatives", `SELECT count(*) FROM enterprises WHERE legal_rep_id_card IN (SELECT id_card FROM civil.residents)`, "enterprises", 0.55, 0.65},
		{"migrant legal representatives", `SELECT count(*) FROM enterprises e JOIN police.household h ON h.id_card = e.legal_rep_id_card WHERE h.migrant = 1`, "enterprises", 0.2, 0.4},
	}
	totals := map[string]int{
		"residents":   residents,
		"insured":     queryInt(t, db, `SELECT count(*) FROM health.insured`),
		"household":   queryInt(t, db, `SELECT count(*) FROM police.household`),
		"enterprises": queryInt(t, db, `SELECT count(*) FROM enterprises`),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			share := float64(queryInt(t, db, tt.query)) / float64(totals[tt.of])
			if share < tt.lo || share > tt.hi {
				t.Errorf("share %.3f of %s, want %.3f-%.3f", share, tt.of, tt.lo, tt.hi)
			}
		})
	}
	if missing := queryInt(t, db, `SELECT count(*) FROM civil.residents WHERE id_card NOT IN (SELECT id_card FROM police.household)`); missing != 0 {
		t.Errorf("%d residents are missing from police.household", missing)
	}
	if extra := queryInt(t, db, `SELECT count(*) FROM police.household WHERE id_card NOT IN (SELECT id_card FROM civil.residents)`); extra == 0 {
		t.Error("police.household has no one beyond the residents")
	}
	if bad := queryInt(t, db, `SELECT count(*) FROM police.criminal_records WHERE id_card NOT IN (SELECT id_card FROM civil.residents)`); bad != 0 {
		t.Errorf("%d criminal records of non-residents", bad)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM enterprises`); n != 3000 {
		t.Errorf("%d enterprises, want 3000", n)
	}
}

func TestEnterprisesAndIDs(t *testing.T) {
	w := scale1(t)
	tests := []struct {
		dept, query string
		valid       func(string) bool
	}{
		{DeptMarket, `SELECT credit_code FROM enterprises`, ValidCreditCode},
		{DeptMarket, `SELECT legal_rep_id_card FROM enterprises`, ValidIDCard},
		{DeptHealth, `SELECT id_card FROM insured`, ValidIDCard},
		{DeptPolice, `SELECT id_card FROM household`, ValidIDCard},
		{DeptPolice, `SELECT id_card FROM criminal_records`, ValidIDCard},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			db := openDB(t, w.DatabaseFiles[tt.dept])
			rows, err := db.Query(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				if !tt.valid(s) {
					t.Fatalf("invalid value %q", s)
				}
				n++
			}
			if n == 0 {
				t.Fatal("no rows")
			}
		})
	}
	db := openDB(t, w.DatabaseFiles[DeptMarket])
	if bad := queryInt(t, db, `SELECT count(*) FROM enterprises WHERE status NOT IN ('存续','在业','吊销','注销')
		OR established < '1995-01-01' OR established > '2025-12-31' OR registered_capital <= 0
		OR substr(credit_code, 3, 6) NOT IN ('630102','630103','630104','630105','630122')`); bad != 0 {
		t.Errorf("%d enterprises with a bad status, date, capital or division", bad)
	}
	// A representative is an adult when the enterprise is founded.
	if bad := queryInt(t, db, `SELECT count(*) FROM enterprises
		WHERE established < date(substr(legal_rep_id_card,7,4)||'-'||substr(legal_rep_id_card,11,2)||'-'||substr(legal_rep_id_card,13,2), '+18 years')`); bad != 0 {
		t.Errorf("%d enterprises founded by a minor", bad)
	}
}

func TestDepartmentFiles(t *testing.T) {
	w := scale1(t)
	want := map[string]map[string]string{
		"civil.residents": {"id_card": "join_key/person", "name": "masked/surname", "gender": "plain", "birth_date": "masked/year",
			"district": "plain", "phone": "masked/phone", "low_income": "plain", "monthly_allowance": "aggregate"},
		"health.insured": {"id_card": "join_key/person", "insurance_type": "plain", "chronic_disease": "aggregate",
			"annual_claims": "aggregate", "hospital_visits": "aggregate", "severe_mental_illness": "aggregate"},
		"market.enterprises": {"credit_code": "plain", "name": "plain", "legal_rep_name": "plain", "industry": "plain", "district": "plain",
			"registered_capital": "plain", "status": "plain", "established": "plain", "legal_rep_id_card": "join_key/person"},
		"police.household":        {"id_card": "join_key/person", "name": "masked/surname", "household_district": "plain", "migrant": "plain"},
		"police.criminal_records": {"id_card": "hidden", "offense": "hidden", "sentence_date": "hidden"},
	}
	shareClass := map[string]sluice.ShareClass{
		"civil.residents": sluice.ShareConditional, "health.insured": sluice.ShareConditional,
		"market.enterprises": sluice.ShareUnconditional, "police.household": sluice.ShareConditional,
		"police.criminal_records": sluice.ShareNone,
	}
	var depts []*sluice.Department
	for _, id := range deptIDs {
		d, err := sluice.LoadDepartment(w.DepartmentFiles[id])
		if err != nil {
			t.Fatalf("LoadDepartment(%s): %v", id, err)
		}
		if d.Sources[0].DSN != w.DatabaseFiles[id] {
			t.Errorf("%s: dsn resolves to %s, want %s", id, d.Sources[0].DSN, w.DatabaseFiles[id])
		}
		if d.Agent.Address != defaultAgentAddrs[id] {
			t.Errorf("%s: agent address %q", id, d.Agent.Address)
		}
		depts = append(depts, d)
	}
	cat, err := sluice.NewCatalog(depts...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	db := map[string]*sql.DB{}
	for _, ds := range cat.Datasets() {
		if ds.ShareClass != shareClass[ds.FullName()] {
			t.Errorf("%s: share class %s, want %s", ds.FullName(), ds.ShareClass, shareClass[ds.FullName()])
		}
		if ds.ShareClass == sluice.ShareNone && !strings.Contains(ds.LegalBasis, "刑事诉讼法") {
			t.Errorf("%s: legal basis %q does not cite the criminal procedure law", ds.FullName(), ds.LegalBasis)
		}
		if db[ds.Department] == nil {
			db[ds.Department] = openDB(t, w.DatabaseFiles[ds.Department])
		}
		// Every catalog column exists in the table, and nothing else does.
		n := queryInt(t, db[ds.Department], fmt.Sprintf(`SELECT count(*) FROM pragma_table_info('%s')`, ds.Table))
		if n != len(ds.Columns) {
			t.Errorf("%s: table has %d columns, catalog %d", ds.FullName(), n, len(ds.Columns))
		}
		got[ds.FullName()] = map[string]string{}
		for _, c := range ds.Columns {
			lvl := string(c.Release)
			if c.Mask != "" {
				lvl += "/" + string(c.Mask)
			}
			if c.KeyDomain != "" {
				lvl += "/" + c.KeyDomain
			}
			got[ds.FullName()][c.Name] = lvl
			if strings.Contains(c.Name, "id_card") && c.Grade != sluice.GradeL4 {
				t.Errorf("%s.%s: grade %s, want L4", ds.FullName(), c.Name, c.Grade)
			}
			if x := queryInt(t, db[ds.Department], fmt.Sprintf(`SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'`, ds.Table, c.Name)); x != 1 {
				t.Errorf("%s.%s: not in table %s", ds.FullName(), c.Name, ds.Table)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("release levels:\n got %v\nwant %v", got, want)
	}
}

func TestWriteDepartmentFileRoundTrip(t *testing.T) {
	w := scale1(t)
	dir := t.TempDir()
	for _, id := range deptIDs {
		raw, err := os.ReadFile(w.DepartmentFiles[id])
		if err != nil {
			t.Fatal(err)
		}
		d, err := sluice.ParseDepartment(id, raw)
		if err != nil {
			t.Fatal(err)
		}
		d.Agent.TLSCert = "../tls/" + id + ".crt"
		d.Agent.TLSKey = "../tls/" + id + ".key"
		d.Agent.Fingerprint = "sha256:" + strings.Repeat("ab", 32)
		d.Agent.BrokerFingerprints = []string{"sha256:" + strings.Repeat("cd", 32)}
		path := filepath.Join(dir, id+".yaml")
		if err := WriteDepartmentFile(path, d); err != nil {
			t.Fatal(err)
		}
		raw2, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		back, err := sluice.ParseDepartment(path, raw2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, back) {
			t.Errorf("%s does not round-trip:\n%+v\n%+v", id, d, back)
		}
	}
	bad := &sluice.Department{ID: "9bad"}
	path := filepath.Join(dir, "bad.yaml")
	if err := WriteDepartmentFile(path, bad); err == nil || !strings.Contains(err.Error(), "department") {
		t.Errorf("invalid department: err = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an invalid department was written anyway")
	}
	if err := WriteDepartmentFile(path, nil); err == nil {
		t.Error("nil department: no error")
	}
}

func TestPurposesAndGrantsLoadBack(t *testing.T) {
	w := scale1(t)
	ps, err := sluice.LoadPurposes(w.PurposesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ps, w.Purposes) {
		t.Errorf("purposes do not round-trip:\n%v\n%v", ps, w.Purposes)
	}
	gs, err := sluice.LoadGrants(w.GrantsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gs, w.Grants) {
		t.Errorf("grants do not round-trip:\n%v\n%v", gs, w.Grants)
	}
	purposes := map[string]bool{}
	for _, p := range ps {
		purposes[p.Code] = true
	}
	cat := map[string]*sluice.Dataset{}
	for _, id := range deptIDs {
		d, err := sluice.LoadDepartment(w.DepartmentFiles[id])
		if err != nil {
			t.Fatal(err)
		}
		for _, ds := range d.Datasets {
			cat[ds.FullName()] = ds
		}
	}
	tests := []struct {
		grantee, dataset, purpose string
		mode                      sluice.ReleaseMode
		k                         int
		current                   bool
	}{
		{"alice", "health.insured", "subsidy-review", sluice.ModeAggregate, 10, true},
		{"bob", "police.household", "enterprise-credit", sluice.ModeRows, 0, true},
		{"alice", "police.household", "subsidy-review", sluice.ModeAggregate, 10, true},
		{"alice", "health.insured", "public-health-planning", sluice.ModeAggregate, 10, true},
		{"erin", "civil.residents", "public-health-planning", sluice.ModeRows, 0, false},
	}
	if len(gs) != len(tests) {
		t.Fatalf("%d grants, want %d", len(gs), len(tests))
	}
	for i, tt := range tests {
		g := gs[i]
		if g.Grantee != tt.grantee || g.Dataset != tt.dataset || g.Purpose != tt.purpose || g.Mode != tt.mode || g.K != tt.k {
			t.Errorf("grant %d = %+v", i, g)
		}
		if cur := !testNow.Before(g.ValidFrom) && testNow.Before(g.ValidUntil); cur != tt.current {
			t.Errorf("grant %s current at Now = %v, want %v", g.ID, cur, tt.current)
		}
		if !purposes[g.Purpose] {
			t.Errorf("grant %s names unregistered purpose %s", g.ID, g.Purpose)
		}
		for _, c := range g.Columns {
			if cat[g.Dataset] == nil || cat[g.Dataset].Column(c) == nil {
				t.Errorf("grant %s names unknown column %s.%s", g.ID, g.Dataset, c)
			}
		}
	}
	if want := testNow.Add(-24 * time.Hour); !gs[4].ValidUntil.Equal(want) {
		t.Errorf("erin's grant ends %v, want yesterday %v", gs[4].ValidUntil, want)
	}
}

func TestUsersAndTokens(t *testing.T) {
	w := scale1(t)
	want := []User{
		{Name: "alice", Role: sluice.RoleAnalyst, Department: DeptCivil},
		{Name: "bob", Role: sluice.RoleAnalyst, Department: DeptMarket},
		{Name: "erin", Role: sluice.RoleAnalyst, Department: DeptHealth},
		{Name: "carol", Role: sluice.RoleAuditor, Department: PlatformDepartment},
		{Name: "dave", Role: sluice.RolePlatformAdmin, Department: PlatformDepartment},
		// Each department's data admin: registers and classifies its
		// datasets, answers applications and error reports.
		{Name: "cheng", Role: sluice.RoleDeptAdmin, Department: DeptCivil},
		{Name: "hana", Role: sluice.RoleDeptAdmin, Department: DeptHealth},
		{Name: "mei", Role: sluice.RoleDeptAdmin, Department: DeptMarket},
		{Name: "paul", Role: sluice.RoleDeptAdmin, Department: DeptPolice},
	}
	if len(w.Users) != len(want) {
		t.Fatalf("%d users, want %d", len(w.Users), len(want))
	}
	tokens := map[string]bool{}
	for i, u := range w.Users {
		tok := u.Token
		u.Token = ""
		if u != want[i] {
			t.Errorf("user %d = %+v, want %+v", i, u, want[i])
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "slc_"))
		if !strings.HasPrefix(tok, "slc_") || err != nil || len(raw) != 32 {
			t.Errorf("user %s: token %q is not slc_ + base64url(32 bytes)", u.Name, tok)
		}
		if tokens[tok] {
			t.Errorf("token of %s repeats", u.Name)
		}
		tokens[tok] = true
	}
}
