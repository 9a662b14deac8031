package agent

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/auditchain"
	"github.com/sluice-gov/sluice/crypto/psi"
	"github.com/sluice-gov/sluice/planner"
)

// Two departments with person-domain join keys. Civil writes some keys in
// full width, lower case or with spaces; health writes them plainly.
var (
	psiCivilRows = []struct{ id, name, district string }{
		{"110105194912310021", "张三", "A"},
		{"１１０１０５１９４９１２３１００２ｘ", "李四", "B"}, // = 11010519491231002X
		{"110105195001010011", "王五", "A"},
		{" 440301198803030033 ", "赵六", "C"},
		{"", "陈七", "C"}, // empty: absent
		{"990000000000000000", "刘八", "B"},
	}
	psiHealthRows = []struct{ id, kind string }{
		{"11010519491231002x", "employee"},
		{"110105194912310021", "resident"},
		{"650102197707070077", "employee"},
		{"440301198803030033", "resident"},
		{"110105194912310021", "employee"}, // a second row for the same person
	}
	// The intersection by (civil name, health kind).
	psiWant = []string{"张三/employee", "张三/resident", "李四/employee", "赵六/resident"}
)

func psiRawKeys() []string {
	var out []string
	for _, r := range psiCivilRows {
		if strings.TrimSpace(r.id) != "" {
			out = append(out, r.id, strings.TrimSpace(r.id), psi.Normalize(r.id))
		}
	}
	for _, r := range psiHealthRows {
		out = append(out, r.id, psi.Normalize(r.id))
	}
	return out
}

func execAll(t testing.TB, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func psiAgents(t *testing.T, opts ...Option) (civil, health *fixture) {
	t.Helper()
	cdir, hdir := t.TempDir(), t.TempDir()
	cdb, hdb := filepath.Join(cdir, "civil.db"), filepath.Join(hdir, "health.db")
	stmts := []string{`CREATE TABLE residents (id_card TEXT, name TEXT, district TEXT, allowance REAL, secret TEXT, household_id TEXT)`}
	for i, r := range psiCivilRows {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO residents VALUES (%s, %s, %s, %d, 'secret', 'H%d')`, sqlQuote(r.id), sqlQuote(r.name), sqlQuote(r.district), 100*i, i))
	}
	stmts = append(stmts, `INSERT INTO residents VALUES (NULL, '孙九', 'A', 1, 'secret', 'H9')`)
	execAll(t, cdb, stmts...)
	stmts = []string{`CREATE TABLE insured (id_card TEXT, insurance_type TEXT, claims REAL)`}
	for i, r := range psiHealthRows {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO insured VALUES (%s, %s, %d)`, sqlQuote(r.id), sqlQuote(r.kind), 10*i))
	}
	execAll(t, hdb, stmts...)

	civil = startAgent(t, cdir, func(pins []string) *sluice.Department {
		return &sluice.Department{
			ID: "civil", Name: "Civil Affairs Bureau",
			Agent:   sluice.AgentInfo{TLSCert: filepath.Join(cdir, "agent.pem"), TLSKey: filepath.Join(cdir, "agent.key"), BrokerFingerprints: pins},
			Sources: []sluice.Source{{Name: "main", Driver: sluice.DriverSQLite, DSN: cdb}},
			Datasets: []*sluice.Dataset{{
				Name: "residents", Source: "main", ShareClass: sluice.ShareConditional, LegalBasis: "PIPL",
				Columns: []*sluice.Column{
					{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "person"},
					{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskSurname},
					{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
					{Name: "allowance", Type: sluice.TypeFloat, Grade: sluice.GradeL3, Release: sluice.ReleaseAggregate},
					{Name: "secret", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseHidden},
					{Name: "household_id", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseJoinKey, KeyDomain: "household"},
				},
			}},
		}
	}, opts, nil)
	health = startAgent(t, hdir, func(pins []string) *sluice.Department {
		return &sluice.Department{
			ID: "health", Name: "Healthcare Security Administration",
			Agent:   sluice.AgentInfo{TLSCert: filepath.Join(hdir, "agent.pem"), TLSKey: filepath.Join(hdir, "agent.key"), BrokerFingerprints: pins},
			Sources: []sluice.Source{{Name: "main", Driver: sluice.DriverSQLite, DSN: hdb}},
			Datasets: []*sluice.Dataset{{
				Name: "insured", Source: "main", ShareClass: sluice.ShareConditional, LegalBasis: "Medical Security Regulations",
				Columns: []*sluice.Column{
					{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "person", Unique: true},
					{Name: "insurance_type", Type: sluice.TypeText, Grade: sluice.GradeL2, Release: sluice.ReleasePlain},
					{Name: "claims", Type: sluice.TypeFloat, Grade: sluice.GradeL3, Release: sluice.ReleaseAggregate},
				},
			}},
		}
	}, opts, nil)
	return civil, health
}

// An analyst of a third department: neither agent's owner.
var psiAnalyst = sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}

func psiFrag(ds string, items ...any) *planner.Fragment {
	return &planner.Fragment{QueryID: "q-psi", Dataset: ds, Select: sel(items...), Requester: psiAnalyst, Purpose: "testing"}
}

// psiSide is what the broker holds from one agent's psi-blind.
type psiSide struct {
	session string
	keys    [][]byte
	payload [][]string
	raw     bytes.Buffer // every record as Arrow IPC, plus the header
}

func psiBlindAll(t *testing.T, c *Client, f *planner.Fragment, keyCol, domain string) *psiSide {
	t.Helper()
	s, err := c.PSIBlind(context.Background(), f, keyCol, domain)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	out := &psiSide{session: s.Session}
	fmt.Fprint(&out.raw, s.Session, s.Group, s.KeyDomain, s.Schema().String())
	w := ipc.NewWriter(&out.raw, ipc.WithSchema(s.Schema()), ipc.WithAllocator(memory.DefaultAllocator))
	for s.Next() {
		rec := s.Record()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		keys := rec.Column(0).(*array.Binary)
		for i := 0; i < int(rec.NumRows()); i++ {
			if keys.IsNull(i) {
				out.keys = append(out.keys, nil)
			} else {
				out.keys = append(out.keys, slices.Clone(keys.Value(i)))
			}
			var row []string
			for ci := 1; ci < int(rec.NumCols()); ci++ {
				row = append(row, cell(rec.Column(ci), i))
			}
			out.payload = append(out.payload, row)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return out
}

func TestPSIJoinBetweenTwoAgents(t *testing.T) {
	l := openLog(t)
	civil, health := psiAgents(t, WithAuditLog(l), WithBatchRows(2))
	cc, hc := civil.broker(t), health.broker(t)
	ctx := context.Background()

	a := psiBlindAll(t, cc, psiFrag("civil.residents", "id_card", col("id_card"), "name", col("name"), "district", col("district")), "id_card", "person")
	b := psiBlindAll(t, hc, psiFrag("health.insured", "id", col("id_card"), "insurance_type", col("insurance_type")), "ID_CARD", "person")
	if len(a.keys) != len(psiCivilRows)+1 || len(b.keys) != len(psiHealthRows) {
		t.Fatalf("got %d and %d rows", len(a.keys), len(b.keys))
	}
	// Absent keys (NULL, empty) come back null; the row stays.
	nulls := 0
	for _, k := range a.keys {
		if k == nil {
			nulls++
		} else if len(k) != psi.PointLen {
			t.Errorf("blinded key of %d bytes", len(k))
		}
	}
	if nulls != 2 {
		t.Errorf("%d null keys from civil, want 2 (NULL and empty)", nulls)
	}
	// The payload is masked at the source.
	for _, r := range a.payload {
		if !strings.HasSuffix(r[0], "*") {
			t.Errorf("name %q is not masked", r[0])
		}
	}

	// Crosswise reblinding.
	a2, err := hc.PSIReblind(ctx, b.session, a.keys)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := cc.PSIReblind(ctx, a.session, b.keys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range psi.Match(a2, b2) {
		got = append(got, psiCivilRowsName(a.payload[p[0]][0], p[0])+"/"+b.payload[p[1]][0])
	}
	sort.Strings(got)
	if !slices.Equal(got, psiWant) {
		t.Errorf("joined %v, want %v", got, psiWant)
	}

	// Nothing the broker received holds a raw or normalised key.
	var view bytes.Buffer
	view.Write(a.raw.Bytes())
	view.Write(b.raw.Bytes())
	for _, set := range [][][]byte{a.keys, b.keys, a2, b2} {
		for _, v := range set {
			view.Write(v)
		}
	}
	for _, k := range psiRawKeys() {
		if bytes.Contains(view.Bytes(), []byte(k)) {
			t.Errorf("the broker received raw key %q", k)
		}
		if len(k) > 6 && bytes.Contains(view.Bytes(), []byte(strings.TrimSpace(k))[:12]) {
			t.Errorf("the broker received a 12-byte prefix of key %q", k)
		}
	}
	// Singly blinded values of the two sides never coincide.
	if len(psi.Match(a.keys, b.keys)) != 0 {
		t.Error("the singly blinded sets match each other")
	}

	for _, s := range []struct {
		c  *Client
		id string
		fx *fixture
	}{{cc, a.session, civil}, {hc, b.session, health}} {
		if err := s.c.PSIClose(ctx, s.id); err != nil {
			t.Fatal(err)
		}
		if n := s.fx.srv.PSISessions(); n != 0 {
			t.Errorf("%d sessions left after close", n)
		}
		// Closing again is fine; reblinding is not.
		if err := s.c.PSIClose(ctx, s.id); err != nil {
			t.Errorf("second close: %v", err)
		}
		_, err := s.c.PSIReblind(ctx, s.id, a.keys[:1])
		wantCode(t, err, sluice.ENotFound, "unknown or has expired")
	}

	// Both psi-blind runs are on the shared log as allowed fragment runs.
	es, err := l.Entries(ctx, max(l.Head().Seq-10, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	for _, e := range es {
		if e.Kind == auditchain.KindFragment && e.Decision == auditchain.DecisionAllow && e.QueryID == "q-psi" {
			seen[e.Datasets[0]] = e.Rows
			if strings.Contains(e.Plan, "110105") {
				t.Errorf("the audit plan quotes a key: %s", e.Plan)
			}
		}
	}
	if seen["civil.residents"] != int64(len(a.keys)) || seen["health.insured"] != int64(len(b.keys)) {
		t.Errorf("audit entries %v, want civil.residents=%d health.insured=%d", seen, len(a.keys), len(b.keys))
	}
}

// psiCivilRowsName maps a masked name back to the test's row name.
func psiCivilRowsName(masked string, _ int32) string {
	for _, r := range psiCivilRows {
		if []rune(r.name)[0] == []rune(masked)[0] {
			return r.name
		}
	}
	return masked
}

func TestPSIBlindRefusals(t *testing.T) {
	civil, _ := psiAgents(t)
	c := civil.broker(t)
	ctx := context.Background()
	base := func() *planner.Fragment {
		return psiFrag("civil.residents", "k", col("id_card"), "district", col("district"))
	}
	tests := []struct {
		name     string
		f        func() *planner.Fragment
		key, dom string
		code     string
		contains string
	}{
		{"key column not join_key", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", col("district"), "name", col("name"))
		}, "district", "person", sluice.EDenied, "not join_key"},
		{"hidden key column", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", col("secret"))
		}, "secret", "person", sluice.EDenied, "not join_key"},
		{"domain mismatch", base, "id_card", "household", sluice.EDenied, "key domain"},
		{"household key as person", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", col("household_id"))
		}, "household_id", "person", sluice.EDenied, "key domain"},
		{"join key in WHERE", func() *planner.Fragment {
			f := base()
			f.Where = &planner.Expr{Kind: planner.KindLike, Args: []*planner.Expr{col("id_card"), str("110105%")}}
			return f
		}, "id_card", "person", sluice.EDenied, "WHERE"},
		{"join key in ORDER BY", func() *planner.Fragment {
			f := base()
			f.OrderBy = []planner.OrderItem{{Expr: col("id_card")}}
			return f
		}, "id_card", "person", sluice.EDenied, "ORDER BY"},
		{"join key as another output", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", col("id_card"), "again", col("id_card"))
		}, "id_card", "person", sluice.EDenied, "SELECT"},
		{"key inside an expression", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", &planner.Expr{Kind: planner.KindFunc, Func: "substr", Args: []*planner.Expr{col("id_card"), num(1), num(6)}})
		}, "id_card", "person", sluice.EInvalid, "first select item"},
		{"key not first", func() *planner.Fragment {
			return psiFrag("civil.residents", "district", col("district"), "k", col("id_card"))
		}, "id_card", "person", sluice.EInvalid, "first select item"},
		{"masked key", func() *planner.Fragment {
			f := base()
			f.Masks = map[string]sluice.MaskRule{"ID_CARD": sluice.MaskIDCard}
			return f
		}, "id_card", "person", sluice.EInvalid, "masked"},
		{"hidden payload", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", col("id_card"), "s", col("secret"))
		}, "id_card", "person", sluice.EDenied, "hidden"},
		{"aggregate payload as rows", func() *planner.Fragment {
			return psiFrag("civil.residents", "k", col("id_card"), "a", col("allowance"))
		}, "id_card", "person", sluice.EDenied, "allowance"},
		{"aggregated fragment", func() *planner.Fragment {
			f := psiFrag("civil.residents", "k", col("id_card"), "n", agg("count", nil))
			f.GroupBy = []*planner.Expr{col("id_card")}
			return f
		}, "id_card", "person", sluice.EInvalid, "aggregate after the join"},
		{"no domain", base, "id_card", "", sluice.EInvalid, "key domain"},
		{"unknown key column", base, "nope", "person", sluice.ENotFound, "nope"},
		{"other department's dataset", func() *planner.Fragment {
			return psiFrag("health.insured", "k", col("id_card"))
		}, "id_card", "person", sluice.ENotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.PSIBlind(ctx, tt.f(), tt.key, tt.dom)
			if err == nil {
				s.Release()
			}
			wantCode(t, err, tt.code, tt.contains)
		})
	}
	if n := civil.srv.PSISessions(); n != 0 {
		t.Errorf("refused requests left %d sessions", n)
	}
	// The owner is held to the same rule: the key leaves only blinded.
	f := base()
	f.Requester = sluice.Principal{Name: "carl", Role: sluice.RoleAnalyst, Department: "civil"}
	f.Where = bin("=", col("id_card"), str("110105194912310021"))
	_, err := c.PSIBlind(ctx, f, "id_card", "person")
	wantCode(t, err, sluice.EDenied, "WHERE")
}

func TestPSIReblindErrors(t *testing.T) {
	civil, health := psiAgents(t)
	cc, hc := civil.broker(t), health.broker(t)
	ctx := context.Background()
	a := psiBlindAll(t, cc, psiFrag("civil.residents", "k", col("id_card")), "id_card", "person")
	b := psiBlindAll(t, hc, psiFrag("health.insured", "k", col("id_card")), "id_card", "person")

	_, err := cc.PSIReblind(ctx, "psi-00000000000000000000000000000000", b.keys)
	wantCode(t, err, sluice.ENotFound)

	identity := make([]byte, psi.PointLen)
	for name, bad := range map[string][]byte{
		"short":    b.keys[0][:10],
		"garbage":  bytes.Repeat([]byte{0xff}, psi.PointLen),
		"identity": identity,
		"raw key":  []byte("110105194912310021"),
	} {
		t.Run(name, func(t *testing.T) {
			// Each attempt needs a fresh session: a session answers one
			// reblind, even a failed one.
			s := psiBlindAll(t, hc, psiFrag("health.insured", "k", col("id_card")), "id_card", "person")
			_, err := hc.PSIReblind(ctx, s.session, append(slices.Clone(a.keys[:1]), bad))
			wantCode(t, err, sluice.EInvalid, "invalid PSI point")
			_, err = hc.PSIReblind(ctx, s.session, a.keys[:1])
			wantCode(t, err, sluice.EInvalid, "already reblinded")
		})
	}

	// One reblind per session.
	if _, err := cc.PSIReblind(ctx, a.session, b.keys); err != nil {
		t.Fatal(err)
	}
	_, err = cc.PSIReblind(ctx, a.session, b.keys)
	wantCode(t, err, sluice.EInvalid, "already reblinded")

	// An empty reblind is answered with nothing.
	e := psiBlindAll(t, hc, psiFrag("health.insured", "k", col("id_card")), "id_card", "person")
	if got, err := hc.PSIReblind(ctx, e.session, nil); err != nil || len(got) != 0 {
		t.Errorf("empty reblind = %d points, %v", len(got), err)
	}
}

func TestPSISessionExpires(t *testing.T) {
	civil, _ := psiAgents(t)
	civil.srv.SetPSISessionLimits(150*time.Millisecond, 2)
	c := civil.broker(t)
	ctx := context.Background()
	frag := func() *planner.Fragment { return psiFrag("civil.residents", "k", col("id_card")) }
	a := psiBlindAll(t, c, frag(), "id_card", "person")
	_ = psiBlindAll(t, c, frag(), "id_card", "person")
	// The store is full.
	s, err := c.PSIBlind(ctx, frag(), "id_card", "person")
	if err == nil {
		s.Release()
	}
	wantCode(t, err, sluice.EResource, "psi-close")

	deadline := time.Now().Add(5 * time.Second)
	for civil.srv.PSISessions() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := civil.srv.PSISessions(); n != 0 {
		t.Fatalf("%d sessions left after the TTL", n)
	}
	_, err = c.PSIReblind(ctx, a.session, a.keys[:1])
	wantCode(t, err, sluice.ENotFound, "expired")
	// Room again.
	_ = psiBlindAll(t, c, frag(), "id_card", "person")
	civil.srv.ClosePSISessions()
	if n := civil.srv.PSISessions(); n != 0 {
		t.Errorf("%d sessions after ClosePSISessions", n)
	}
}

func TestPSIBlindSchema(t *testing.T) {
	civil, _ := psiAgents(t)
	c := civil.broker(t)
	s, err := c.PSIBlind(context.Background(), psiFrag("civil.residents", "key", col("id_card"), "district", col("district")), "id_card", "person")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	sc := s.Schema()
	if sc.NumFields() != 2 || sc.Field(0).Name != "key" || sc.Field(0).Type.ID() != arrow.BINARY || sc.Field(1).Type.ID() != arrow.STRING {
		t.Errorf("schema %s", sc)
	}
	if !strings.HasPrefix(s.Session, "psi-") || s.Group != psi.GroupName || s.KeyDomain != "person" {
		t.Errorf("header %q %q %q", s.Session, s.Group, s.KeyDomain)
	}
	for s.Next() {
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

// An aggregate-release column may be payload when the fragment is bound for
// the broker's sandbox with at least the agent's k (Fragment.SandboxK).
func TestPSIAggregatePayloadForTheSandbox(t *testing.T) {
	_, health := psiAgents(t)
	c := health.broker(t)
	f := psiFrag("health.insured", "k", col("id_card"), "claims", col("claims"))
	s, err := c.PSIBlind(context.Background(), f, "id_card", "person")
	if err == nil {
		s.Release()
	}
	wantCode(t, err, sluice.EDenied, "claims")
	// The sandbox counts persons: without their pseudonyms, no values.
	f.SandboxK = defaultMinGroupSize
	s, err = c.PSIBlind(context.Background(), f, "id_card", "person")
	if err == nil {
		s.Release()
	}
	wantCode(t, err, sluice.EDenied, "pseudonyms")
	f.UnitAlias = "i.$unit"
	side := psiBlindAll(t, c, f, "id_card", "person")
	if len(side.keys) != len(psiHealthRows) {
		t.Errorf("got %d rows, want %d", len(side.keys), len(psiHealthRows))
	}
	// Each row carries its person's 8-byte pseudonym, last: one per
	// person (the fourth person has two rows), never the key.
	s, err = c.PSIBlind(context.Background(), f, "id_card", "person")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	last := s.Schema().NumFields() - 1
	if fd := s.Schema().Field(last); fd.Name != "i.$unit" || fd.Type.ID() != arrow.BINARY {
		t.Fatalf("last field %s, want the pseudonym column i.$unit", fd)
	}
	seen := map[string]bool{}
	for s.Next() {
		col := s.Record().Column(last).(*array.Binary)
		for r := 0; r < col.Len(); r++ {
			if v := col.Value(r); len(v) != 8 {
				t.Fatalf("row %d: pseudonym %x, want 8 bytes", r, v)
			}
			seen[string(col.Value(r))] = true
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	persons := map[string]bool{}
	for _, r := range psiHealthRows {
		persons[psi.Normalize(r.id)] = true
	}
	if len(seen) != len(persons) {
		t.Errorf("%d pseudonyms for %d persons", len(seen), len(persons))
	}
}
