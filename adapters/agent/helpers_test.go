package agent

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/planner"
)

const (
	deptID    = "civil"
	bigRows   = 100_000
	noneBasis = "Regulations on Criminal Records, art. 7"
)

// district sizes: A and C reach the default k of 10, B does not.
var districtSizes = map[string]int{"A": 12, "B": 5, "C": 13}

var surnames = []string{"张", "李", "王", "赵", "陈"}

// fixture is one department with a real agent serving it over TLS on
// loopback, and the broker-side material to talk to it.
type fixture struct {
	dept       *sluice.Department
	srv        *Server
	addr       string
	serverPin  string
	brokerCert tls.Certificate
	otherCert  tls.Certificate
	stop       context.CancelFunc
	served     chan error
}

func makeDB(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		`CREATE TABLE residents (id_card TEXT, name TEXT, district TEXT, allowance REAL, secret TEXT, birth_date DATE)`,
		`CREATE TABLE big (n INTEGER, label TEXT)`,
		`INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ` + fmt.Sprint(bigRows) + `)
		 SELECT x, 'row ' || x FROM c`,
		`CREATE TABLE records (id_card TEXT, offense TEXT)`,
		`INSERT INTO records VALUES ('110101199001011234', 'theft')`,
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	i := 0
	for _, d := range []string{"A", "B", "C"} {
		for j := 0; j < districtSizes[d]; j++ {
			i++
			_, err := db.Exec(`INSERT INTO residents VALUES (?, ?, ?, ?, ?, ?)`,
				fmt.Sprintf("1101011990%08d", i), surnames[i%len(surnames)]+"三"+strings.Repeat("丰", i%2),
				d, float64(100*i), "secret", fmt.Sprintf("19%02d-03-04", 50+i))
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func department(dir, dbPath string, brokerPins []string) *sluice.Department {
	return &sluice.Department{
		ID:   deptID,
		Name: "Civil Affairs Bureau",
		Agent: sluice.AgentInfo{
			TLSCert:            filepath.Join(dir, "agent.pem"),
			TLSKey:             filepath.Join(dir, "agent.key"),
			BrokerFingerprints: brokerPins,
		},
		Sources: []sluice.Source{{Name: "main", Driver: sluice.DriverSQLite, DSN: dbPath}},
		Datasets: []*sluice.Dataset{
			{
				Name: "residents", Source: "main", ShareClass: sluice.ShareConditional, LegalBasis: "Personal Information Protection Law",
				Columns: []*sluice.Column{
					{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "person", Unique: true},
					{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskSurname},
					{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
					{Name: "allowance", Type: sluice.TypeFloat, Grade: sluice.GradeL3, Release: sluice.ReleaseAggregate},
					{Name: "secret", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseHidden},
					{Name: "birth_date", Type: sluice.TypeDate, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskYear},
				},
			},
			{
				Name: "big", Source: "main", ShareClass: sluice.ShareUnconditional,
				Columns: []*sluice.Column{
					{Name: "n", Type: sluice.TypeInteger, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
					{Name: "label", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
				},
			},
			{
				Name: "records", Source: "main", ShareClass: sluice.ShareNone, LegalBasis: noneBasis,
				Columns: []*sluice.Column{
					{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleasePlain},
					{Name: "offense", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleasePlain},
				},
			},
		},
	}
}

func genCert(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	c, k, err := tlsutil.GenerateSelfSigned(cn, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// newFixture starts an agent; setup may install test hooks before it
// serves.
func newFixture(t testing.TB, opts []Option, setup func(*Server)) *fixture {
	t.Helper()
	dir, db := t.TempDir(), sharedDB(t)
	return startAgent(t, dir, func(pins []string) *sluice.Department { return department(dir, db, pins) }, opts, setup)
}

// The agent opens SQLite read-only, so every fixture can share one
// database, built once per test binary.
var (
	sharedOnce sync.Once
	sharedPath string
	sharedDir  string
)

func sharedDB(t testing.TB) string {
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-agent-test-")
		if err != nil {
			t.Fatal(err)
		}
		sharedDir = dir
		sharedPath = filepath.Join(dir, "civil.db")
		makeDB(t, sharedPath)
	})
	if sharedPath == "" {
		t.Fatal("shared test database was not created")
	}
	return sharedPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// startAgent writes the agent's certificate into dir (where mk's
// department must point) and serves mk's department, pinning a fresh broker
// certificate.
func startAgent(t testing.TB, dir string, mk func(brokerPins []string) *sluice.Department, opts []Option, setup func(*Server)) *fixture {
	t.Helper()
	if err := tlsutil.WriteSelfSigned(filepath.Join(dir, "agent.pem"), filepath.Join(dir, "agent.key"), "agent-civil", nil); err != nil {
		t.Fatal(err)
	}
	pin, err := tlsutil.FingerprintFile(filepath.Join(dir, "agent.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{brokerCert: genCert(t, "broker"), otherCert: genCert(t, "intruder"), serverPin: pin}
	f.dept = mk([]string{tlsutil.Fingerprint(f.brokerCert.Certificate[0])})
	if err := f.dept.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), f.dept, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv)
	}
	f.srv = srv
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	f.served = make(chan error, 1)
	go func() { f.served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		f.shutdown(t)
		srv.Close()
	})
	return f
}

var shutdownOnce sync.Map

// shutdown stops the agent and checks Serve returned nil; safe to repeat.
func (f *fixture) shutdown(t testing.TB) {
	if _, done := shutdownOnce.LoadOrStore(f, true); done {
		return
	}
	f.stop()
	select {
	case err := <-f.served:
		if err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after its context ended")
	}
}

func (f *fixture) dial(t testing.TB, pin string, cert tls.Certificate) *Client {
	t.Helper()
	c, err := Dial(context.Background(), deptID, f.addr, pin, cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) broker(t testing.TB) *Client { return f.dial(t, f.serverPin, f.brokerCert) }

// Fragment builders.

func col(name string) *planner.Expr { return &planner.Expr{Kind: planner.KindColumn, Column: name} }

func str(s string) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitString, Text: s}}
}

func num(n int) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitInt, Text: fmt.Sprint(n)}}
}

func agg(fn string, arg *planner.Expr) *planner.Expr {
	if arg == nil {
		arg = &planner.Expr{Kind: planner.KindStar}
	}
	return &planner.Expr{Kind: planner.KindAggregate, Func: fn, Args: []*planner.Expr{arg}}
}

func bin(op string, l, r *planner.Expr) *planner.Expr {
	return &planner.Expr{Kind: planner.KindBinary, Op: op, Args: []*planner.Expr{l, r}}
}

func sel(exprs ...any) []planner.SelectItem {
	var out []planner.SelectItem
	for i := 0; i < len(exprs); i += 2 {
		out = append(out, planner.SelectItem{Alias: exprs[i].(string), Expr: exprs[i+1].(*planner.Expr)})
	}
	return out
}

var (
	owner    = sluice.Principal{Name: "carl", Role: sluice.RoleAnalyst, Department: deptID}
	outsider = sluice.Principal{Name: "erin", Role: sluice.RoleAnalyst, Department: "health"}
)

func frag(ds string, who sluice.Principal, items []planner.SelectItem) *planner.Fragment {
	return &planner.Fragment{QueryID: "q-test", Dataset: deptID + "." + ds, Select: items, Requester: who, Purpose: "testing"}
}

// table is a fetched result as strings, for easy comparison.
type table struct {
	schema *arrow.Schema
	rows   [][]string
}

func fetchAll(ctx context.Context, c *Client, f *planner.Fragment) (*table, error) {
	s, err := c.Fetch(ctx, f)
	if err != nil {
		return nil, err
	}
	defer s.Release()
	out := &table{schema: s.Schema()}
	for s.Next() {
		rec := s.Record()
		for r := 0; r < int(rec.NumRows()); r++ {
			var row []string
			for ci := 0; ci < int(rec.NumCols()); ci++ {
				row = append(row, cell(rec.Column(ci), r))
			}
			out.rows = append(out.rows, row)
		}
	}
	return out, s.Err()
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return fmt.Sprint(a.Value(i))
	case *array.Float64:
		return fmt.Sprint(a.Value(i))
	case *array.Date32:
		return a.Value(i).FormattedString()
	case *array.Date64:
		return a.Value(i).FormattedString()
	}
	return a.ValueStr(i)
}

func wantCode(t *testing.T, err error, code string, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error, got none", code)
	}
	var e *sluice.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *sluice.Error, got %T: %v", err, err)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%v), want %s", e.Code, err, code)
	}
	for _, s := range contains {
		if !strings.Contains(e.Error(), s) {
			t.Errorf("message %q does not mention %q", e.Error(), s)
		}
	}
}

var emptyCert tls.Certificate

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}
