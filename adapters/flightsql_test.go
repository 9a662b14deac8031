package adapters

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/example"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/planner"
)

// The department's data as the remote engine holds it: Chinese names,
// identity numbers, a NULL. Column types are ones the arrow-go example
// server maps (varchar, text, date, int, real).
var fqStatements = []string{
	`CREATE TABLE residents (id_card varchar(18), name varchar(20), district text, born date, income real, age int)`,
	`INSERT INTO residents VALUES
		('110101199001011234', '张三', '城东区', '1990-01-01', 5200.5, 36),
		('110101198505052345', '李四', '城东区', '1985-05-05', 8100.0, 41),
		('320102197712123456', '王五', '城西区', '1977-12-12', NULL, 48),
		('440305200002024567', NULL, '城西区', '2000-02-02', 3000.25, 26),
		('510104199909095678', '欧阳娜娜', '城南区', '1999-09-09', 12000.0, 27)`,
	`CREATE TABLE big (n int, s text)`,
	`INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x, 'row ' || x FROM c`,
}

func fqDataset() *sluice.Dataset {
	return &sluice.Dataset{
		Department: "civil", Name: "residents", Table: "residents", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{
			{Name: "id_card", Type: sluice.TypeText, Grade: "L4", Release: sluice.ReleaseMasked, Mask: sluice.MaskIDCard},
			{Name: "name", Type: sluice.TypeText, Grade: "L3", Release: sluice.ReleaseMasked, Mask: sluice.MaskSurname},
			{Name: "district", Type: sluice.TypeText, Grade: "L1", Release: sluice.ReleasePlain},
			{Name: "born", Type: sluice.TypeDate, Grade: "L3", Release: sluice.ReleasePlain},
			{Name: "income", Type: sluice.TypeFloat, Grade: "L2", Release: sluice.ReleasePlain},
			{Name: "age", Type: sluice.TypeInteger, Grade: "L2", Release: sluice.ReleasePlain},
		},
	}
}

// recordingServer is the arrow-go example Flight SQL server (SQLite
// behind it) that remembers the SQL it was sent and can hold a result
// stream after its first batch.
type recordingServer struct {
	*example.SQLiteFlightSQLServer
	mu      sync.Mutex
	queries []string
	// hold, when set, makes result streams stop after their first batch
	// until the call ends.
	hold atomic.Bool
	held chan struct{} // receives when a held stream sent its first batch
}

func (s *recordingServer) record(q string) {
	s.mu.Lock()
	s.queries = append(s.queries, q)
	s.mu.Unlock()
}

func (s *recordingServer) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

func (s *recordingServer) GetFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	s.record(cmd.GetQuery())
	return s.SQLiteFlightSQLServer.GetFlightInfoStatement(ctx, cmd, desc)
}

func (s *recordingServer) CreatePreparedStatement(ctx context.Context, req flightsql.ActionCreatePreparedStatementRequest) (flightsql.ActionCreatePreparedStatementResult, error) {
	s.record(req.GetQuery())
	return s.SQLiteFlightSQLServer.CreatePreparedStatement(ctx, req)
}

func (s *recordingServer) DoGetStatement(ctx context.Context, cmd flightsql.StatementQueryTicket) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	sc, ch, err := s.SQLiteFlightSQLServer.DoGetStatement(ctx, cmd)
	return sc, s.maybeHold(ctx, ch), err
}

func (s *recordingServer) DoGetPreparedStatement(ctx context.Context, cmd flightsql.PreparedStatementQuery) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	sc, ch, err := s.SQLiteFlightSQLServer.DoGetPreparedStatement(ctx, cmd)
	return sc, s.maybeHold(ctx, ch), err
}

func (s *recordingServer) maybeHold(ctx context.Context, in <-chan flight.StreamChunk) <-chan flight.StreamChunk {
	if in == nil || !s.hold.Load() {
		return in
	}
	out := make(chan flight.StreamChunk)
	go func() {
		defer close(out)
		defer func() {
			for c := range in {
				if c.Data != nil {
					c.Data.Release()
				}
			}
		}()
		c, ok := <-in
		if !ok {
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
			if c.Data != nil {
				c.Data.Release()
			}
			return
		}
		select {
		case s.held <- struct{}{}:
		default:
		}
		<-ctx.Done()
	}()
	return out
}

type fqServer struct {
	srv   *recordingServer
	addr  string
	certs string // the server certificate (PEM file) when TLS is on
	mu    sync.Mutex
	md    []metadata.MD // incoming metadata of every call
}

func (f *fqServer) headers(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, md := range f.md {
		out = append(out, md.Get(key)...)
	}
	return out
}

type fqOptions struct {
	tls  bool
	mw   []flight.ServerMiddleware
	sqls []string
}

var fqDBSeq atomic.Int64

// startFlightSQL runs the arrow-go example Flight SQL server over an
// in-memory SQLite database loaded with stmts.
func startFlightSQL(t testing.TB, o fqOptions) *fqServer {
	t.Helper()
	dsn := fmt.Sprintf("file:sluice-flightsql-%d-%d?mode=memory&cache=shared", os.Getpid(), fqDBSeq.Add(1))
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(4)
	t.Cleanup(func() { db.Close() })
	stmts := o.sqls
	if stmts == nil {
		stmts = fqStatements
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	inner, err := example.NewSQLiteFlightSQLServer(db)
	if err != nil {
		t.Fatal(err)
	}
	f := &fqServer{srv: &recordingServer{SQLiteFlightSQLServer: inner, held: make(chan struct{}, 1)}}
	record := flight.ServerMiddleware{
		Unary: func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			f.mu.Lock()
			f.md = append(f.md, md)
			f.mu.Unlock()
			return h(ctx, req)
		},
		Stream: func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			md, _ := metadata.FromIncomingContext(ss.Context())
			f.mu.Lock()
			f.md = append(f.md, md)
			f.mu.Unlock()
			return h(srv, ss)
		},
	}
	var opts []grpc.ServerOption
	if o.tls {
		certPEM, keyPEM, err := tlsutil.GenerateSelfSigned("flightsql.test", []string{"127.0.0.1", "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		f.certs = filepath.Join(t.TempDir(), "server.crt")
		if err := os.WriteFile(f.certs, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})))
	}
	s := flight.NewServerWithMiddleware(append([]flight.ServerMiddleware{record}, o.mw...), opts...)
	s.RegisterFlightService(flightsql.NewFlightServer(f.srv))
	if err := s.Init("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(s.Shutdown)
	f.addr = s.Addr().String()
	return f
}

func fqOpen(t testing.TB, addr string, cfg sluice.FlightSQLSource, opts ...Option) *DB {
	t.Helper()
	cfg.Address = addr
	if cfg.TLS == (sluice.FlightSQLTLS{}) {
		cfg.Plaintext = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := Open(ctx, sluice.Source{Name: "warehouse", Driver: sluice.DriverFlightSQL, FlightSQL: &cfg}, opts...)
	if err != nil {
		t.Fatalf("open flightsql source: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func fqCol(name string) *planner.Expr { return &planner.Expr{Kind: planner.KindColumn, Column: name} }

func fqInt(n int) *planner.Expr {
	return &planner.Expr{Kind: planner.KindLiteral, Literal: &planner.Literal{Type: planner.LitInt, Text: fmt.Sprint(n)}}
}

func fqSel(exprs ...any) []planner.SelectItem {
	var out []planner.SelectItem
	for i := 0; i < len(exprs); i += 2 {
		out = append(out, planner.SelectItem{Alias: exprs[i].(string), Expr: exprs[i+1].(*planner.Expr)})
	}
	return out
}

// fqRun renders f for db's dialect and scans it, returning the rows as
// strings (NULL for null), the number of batches, and the schema seen.
func fqRun(t *testing.T, db *DB, f *planner.Fragment, batchRows int) ([][]string, int, error) {
	t.Helper()
	ds := fqDataset()
	sqlText, args, err := planner.Render(f, ds, db.Driver())
	if err != nil {
		return nil, 0, err
	}
	fields, err := planner.OutputFields(f, ds)
	if err != nil {
		t.Fatal(err)
	}
	want := Schema(fields)
	var rows [][]string
	batches := 0
	n, err := db.Scan(context.Background(), sqlText, args, fields, batchRows, func(rec arrow.Record) error {
		if !rec.Schema().Equal(want) {
			t.Errorf("batch schema %s, want %s", rec.Schema(), want)
		}
		if batchRows > 0 && rec.NumRows() > int64(batchRows) {
			t.Errorf("batch of %d rows, more than %d", rec.NumRows(), batchRows)
		}
		batches++
		rows = append(rows, fqStrings(rec)...)
		return nil
	})
	if err == nil && n != int64(len(rows)) {
		t.Errorf("Scan reported %d rows, emitted %d", n, len(rows))
	}
	return rows, batches, err
}

func fqStrings(rec arrow.Record) [][]string {
	out := make([][]string, rec.NumRows())
	for i := range out {
		row := make([]string, rec.NumCols())
		for j := range row {
			c := rec.Column(j)
			switch {
			case c.IsNull(i):
				row[j] = "NULL"
			case c.DataType().ID() == arrow.DATE64:
				row[j] = c.(*array.Date64).Value(i).ToTime().Format("2006-01-02")
			default:
				row[j] = c.ValueStr(i)
			}
		}
		out[i] = row
	}
	return out
}

func TestFlightSQLScanMatchesData(t *testing.T) {
	fs := startFlightSQL(t, fqOptions{})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{}, WithAllocator(mem))
	if db.Driver() != sluice.DriverSQLite {
		t.Fatalf("dialect %q, want sqlite (the example server declares %q)", db.Driver(), db.FlightSQLServer())
	}
	f := &planner.Fragment{Dataset: "civil.residents", Select: fqSel(
		"id_card", fqCol("id_card"), "name", fqCol("name"), "district", fqCol("district"),
		"born", fqCol("born"), "income", fqCol("income"), "age", fqCol("age")),
		OrderBy: []planner.OrderItem{{Expr: fqCol("age")}}}
	rows, batches, err := fqRun(t, db, f, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"440305200002024567", "NULL", "城西区", "2000-02-02", "3000.25", "26"},
		{"510104199909095678", "欧阳娜娜", "城南区", "1999-09-09", "12000", "27"},
		{"110101199001011234", "张三", "城东区", "1990-01-01", "5200.5", "36"},
		{"110101198505052345", "李四", "城东区", "1985-05-05", "8100", "41"},
		{"320102197712123456", "王五", "城西区", "1977-12-12", "NULL", "48"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows:\n%v\nwant:\n%v", rows, want)
	}
	if batches != 3 {
		t.Errorf("%d batches for 5 rows at 2 per batch, want 3", batches)
	}
	mem.AssertSize(t, 0)
}

func TestFlightSQLMasksAtTheRemote(t *testing.T) {
	fs := startFlightSQL(t, fqOptions{})
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{})
	f := &planner.Fragment{Dataset: "civil.residents",
		Select: fqSel("id_card", fqCol("id_card"), "name", fqCol("name"), "age", fqCol("age")),
		// Descending: the arrow-go example server cannot type a computed
		// column whose first value is NULL (it never fills its dense-union
		// fallback), so the row with the NULL name comes last.
		OrderBy: []planner.OrderItem{{Expr: fqCol("age"), Desc: true}},
		Masks:   map[string]sluice.MaskRule{"id_card": sluice.MaskIDCard, "name": sluice.MaskSurname}}
	rows, _, err := fqRun(t, db, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The same fragment over the same data in a local SQLite source is
	// the reference: the Flight SQL source must release exactly that.
	local := openSQLite(t, newSQLiteFile(t, fqStatements[:2]...))
	want, _, err := fqRun(t, local, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("masked rows over Flight SQL:\n%v\nover SQLite:\n%v", rows, want)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rows))
	}
	for _, r := range rows {
		for _, raw := range []string{"110101199001011234", "110101198505052345", "320102197712123456", "440305200002024567", "510104199909095678", "张三", "李四", "王五", "欧阳娜娜"} {
			if r[0] == raw || r[1] == raw {
				t.Errorf("row %v releases the raw value %q", r, raw)
			}
		}
	}
	if rows[4][1] != "NULL" || !strings.HasPrefix(rows[3][1], "欧") || !strings.HasPrefix(rows[4][0], "440305") || !strings.HasSuffix(rows[4][0], "4567") {
		t.Errorf("masks not as expected: %v", rows)
	}
	// The mask ran at the remote: its SQL holds the mask expression.
	q := fs.srv.Queries()
	last := q[len(q)-1]
	if !strings.Contains(last, "substr(") || strings.Contains(last, "'110101") {
		t.Errorf("the server did not receive the masking SQL: %s", last)
	}
}

func TestFlightSQLPushesDownFilterAndAggregate(t *testing.T) {
	fs := startFlightSQL(t, fqOptions{})
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{})
	f := &planner.Fragment{Dataset: "civil.residents",
		Select: fqSel("district", fqCol("district"),
			"n", &planner.Expr{Kind: planner.KindAggregate, Func: "count", Args: []*planner.Expr{{Kind: planner.KindStar}}},
			"total", &planner.Expr{Kind: planner.KindAggregate, Func: "sum", Args: []*planner.Expr{fqCol("income")}}),
		Where:   &planner.Expr{Kind: planner.KindBinary, Op: ">", Args: []*planner.Expr{fqCol("age"), fqInt(30)}},
		GroupBy: []*planner.Expr{fqCol("district")},
		OrderBy: []planner.OrderItem{{Expr: fqCol("district")}}}
	rows, _, err := fqRun(t, db, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"城东区", "2", "13300.5"}, {"城西区", "1", "NULL"}}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows %v, want %v", rows, want)
	}
	q := fs.srv.Queries()
	last := q[len(q)-1]
	for _, part := range []string{"WHERE", "GROUP BY", "COUNT(*)", "SUM("} {
		if !strings.Contains(last, part) {
			t.Errorf("the server's SQL lacks %s (not pushed down): %s", part, last)
		}
	}
	if strings.Contains(last, "30") {
		t.Errorf("the literal 30 is in the SQL text, not a bind parameter: %s", last)
	}
}

func TestFlightSQLDescribe(t *testing.T) {
	fs := startFlightSQL(t, fqOptions{})
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{})
	ctx := context.Background()
	tables, err := db.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tables, []string{"big", "residents"}) {
		t.Errorf("tables %v, want [big residents]", tables)
	}
	name, err := db.FindTable(ctx, "RESIDENTS")
	if err != nil || name != "residents" {
		t.Errorf("FindTable(RESIDENTS) = %q, %v; want residents (SQLite resolves names without case)", name, err)
	}
	if _, err := db.FindTable(ctx, "nosuch"); sluice.ErrorCode(err) != sluice.ENotFound || !strings.Contains(err.Error(), "residents") {
		t.Errorf("unknown table: %v, want ENotFound listing the tables", err)
	}
	cols, err := db.Columns(ctx, "residents")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]sluice.ColumnType{}
	var names []string
	for _, c := range cols {
		got[c.Name] = c.Type
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"id_card", "name", "district", "born", "income", "age"}) {
		t.Errorf("columns %v", names)
	}
	for c, want := range map[string]sluice.ColumnType{"id_card": sluice.TypeText, "age": sluice.TypeInteger, "income": sluice.TypeFloat} {
		if got[c] != want {
			t.Errorf("column %s described as %q, want %q", c, got[c], want)
		}
	}
	if err := db.Probe(ctx, "residents", []string{"id_card", "name", "age"}); err != nil {
		t.Errorf("probe: %v", err)
	}
	if err := db.Probe(ctx, "residents", []string{"nosuch"}); err == nil {
		t.Errorf("probing a missing column succeeded")
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestFlightSQLTLSAndAuth(t *testing.T) {
	ctx := context.Background()
	t.Run("ca_file", func(t *testing.T) {
		fs := startFlightSQL(t, fqOptions{tls: true})
		db := fqOpen(t, fs.addr, sluice.FlightSQLSource{TLS: sluice.FlightSQLTLS{CAFile: fs.certs, ServerName: "localhost"}})
		if _, err := db.Tables(ctx); err != nil {
			t.Fatal(err)
		}
		// Without the CA the server's certificate is not trusted.
		_, err := Open(ctx, sluice.Source{Name: "w", Driver: sluice.DriverFlightSQL, FlightSQL: &sluice.FlightSQLSource{Address: fs.addr}})
		if sluice.ErrorCode(err) != sluice.EUnavailable || !strings.Contains(err.Error(), "not reachable") {
			t.Errorf("untrusted certificate: %v, want EUnavailable not reachable", err)
		}
		// Skip-verify (tests only) connects.
		db2 := fqOpen(t, fs.addr, sluice.FlightSQLSource{TLS: sluice.FlightSQLTLS{InsecureSkipVerify: true}})
		if _, err := db2.Tables(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("token and headers", func(t *testing.T) {
		check := func(ctx context.Context) error {
			md, _ := metadata.FromIncomingContext(ctx)
			if a := md.Get("authorization"); len(a) != 1 || a[0] != "Bearer s3cret-token" {
				return status.Error(codes.Unauthenticated, "bad token")
			}
			return nil
		}
		mw := flight.ServerMiddleware{
			Unary: func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if err := check(ctx); err != nil {
					return nil, err
				}
				return h(ctx, req)
			},
			Stream: func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				if err := check(ss.Context()); err != nil {
					return err
				}
				return h(srv, ss)
			},
		}
		fs := startFlightSQL(t, fqOptions{mw: []flight.ServerMiddleware{mw}})
		db := fqOpen(t, fs.addr, sluice.FlightSQLSource{Token: "s3cret-token", Headers: map[string]string{"X-Tenant": "civil"}})
		f := &planner.Fragment{Dataset: "civil.residents", Select: fqSel("age", fqCol("age"))}
		if rows, _, err := fqRun(t, db, f, 0); err != nil || len(rows) != 5 {
			t.Fatalf("scan with token: %d rows, %v", len(rows), err)
		}
		if h := fs.headers("x-tenant"); len(h) == 0 || slices.ContainsFunc(h, func(v string) bool { return v != "civil" }) {
			t.Errorf("x-tenant headers seen by the server: %v", h)
		}
		_, err := Open(ctx, sluice.Source{Name: "w", Driver: sluice.DriverFlightSQL, FlightSQL: &sluice.FlightSQLSource{Address: fs.addr, Plaintext: true, Token: "wrong-token"}})
		if sluice.ErrorCode(err) != sluice.EUnavailable || !strings.Contains(err.Error(), "credentials") || strings.Contains(err.Error(), "wrong-token") {
			t.Errorf("wrong token: %v, want EUnavailable about credentials, without the token", err)
		}
	})
	t.Run("basic auth handshake", func(t *testing.T) {
		fs := startFlightSQL(t, fqOptions{mw: []flight.ServerMiddleware{flight.CreateServerBasicAuthMiddleware(fqValidator{})}})
		db := fqOpen(t, fs.addr, sluice.FlightSQLSource{Username: "agent", Password: "pa55word"})
		if _, err := db.Tables(ctx); err != nil {
			t.Fatal(err)
		}
		f := &planner.Fragment{Dataset: "civil.residents", Select: fqSel("age", fqCol("age")), Limit: ptr(int64(2))}
		if rows, _, err := fqRun(t, db, f, 0); err != nil || len(rows) != 2 {
			t.Fatalf("scan after handshake: %d rows, %v", len(rows), err)
		}
		_, err := Open(ctx, sluice.Source{Name: "w", Driver: sluice.DriverFlightSQL, FlightSQL: &sluice.FlightSQLSource{Address: fs.addr, Plaintext: true, Username: "agent", Password: "wrong-pass"}})
		if sluice.ErrorCode(err) != sluice.EUnavailable || strings.Contains(err.Error(), "wrong-pass") {
			t.Errorf("wrong password: %v", err)
		}
	})
}

// TestFlightSQLRenewsExpiredBearer: a server that stops accepting the
// bearer token of the basic-auth handshake (it expired) gets a new
// handshake and the call is retried once.
func TestFlightSQLRenewsExpiredBearer(t *testing.T) {
	v := &rotatingValidator{}
	fs := startFlightSQL(t, fqOptions{mw: []flight.ServerMiddleware{flight.CreateServerBasicAuthMiddleware(v)}})
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{Username: "agent", Password: "pa55word"})
	v.expire()
	f := &planner.Fragment{Dataset: "civil.residents", Select: fqSel("age", fqCol("age")), Limit: ptr(int64(3))}
	if rows, _, err := fqRun(t, db, f, 0); err != nil || len(rows) != 3 {
		t.Fatalf("scan after the token expired: %d rows, %v", len(rows), err)
	}
	v.expire()
	if _, err := db.Tables(context.Background()); err != nil {
		t.Fatalf("tables after the token expired: %v", err)
	}
	if n := v.issued.Load(); n != 3 {
		t.Errorf("%d handshakes, want 3 (open and one per expiry)", n)
	}
}

type rotatingValidator struct {
	issued  atomic.Int64
	current atomic.Value // string
}

func (v *rotatingValidator) Validate(user, pass string) (string, error) {
	if user != "agent" || pass != "pa55word" {
		return "", status.Error(codes.Unauthenticated, "invalid username or password")
	}
	tok := fmt.Sprintf("tok-%d", v.issued.Add(1))
	v.current.Store(tok)
	return tok, nil
}

func (v *rotatingValidator) IsValid(tok string) (any, error) {
	if cur, _ := v.current.Load().(string); cur != "" && tok == cur {
		return "agent", nil
	}
	return nil, status.Error(codes.Unauthenticated, "token expired")
}

func (v *rotatingValidator) expire() { v.current.Store("") }

func ptr[T any](v T) *T { return &v }

type fqValidator struct{}

func (fqValidator) Validate(user, pass string) (string, error) {
	if user == "agent" && pass == "pa55word" {
		return "bearer-for-agent", nil
	}
	return "", status.Error(codes.Unauthenticated, "invalid username or password")
}

func (fqValidator) IsValid(tok string) (any, error) {
	if tok == "bearer-for-agent" {
		return "agent", nil
	}
	return nil, status.Error(codes.Unauthenticated, "invalid token")
}

func TestFlightSQLOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  *sluice.FlightSQLSource
		code string
		want string
	}{
		{"no connection", nil, sluice.EInvalid, "flightsql.address is required"},
		{"no address", &sluice.FlightSQLSource{}, sluice.EInvalid, "flightsql.address is required"},
		{"missing CA file", &sluice.FlightSQLSource{Address: "127.0.0.1:1", TLS: sluice.FlightSQLTLS{CAFile: filepath.Join(dir, "nope.pem")}}, sluice.EInvalid, "flightsql.tls.ca_file: cannot read"},
		{"CA file without certificate", &sluice.FlightSQLSource{Address: "127.0.0.1:1", TLS: sluice.FlightSQLTLS{CAFile: garbage}}, sluice.EInvalid, "holds no PEM certificate"},
		{"bad client certificate", &sluice.FlightSQLSource{Address: "127.0.0.1:1", TLS: sluice.FlightSQLTLS{CertFile: garbage, KeyFile: garbage}}, sluice.EInvalid, "flightsql.tls.cert_file"},
		{"nobody listening", &sluice.FlightSQLSource{Address: "127.0.0.1:1", Plaintext: true}, sluice.EUnavailable, "not reachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := Open(c, sluice.Source{Name: "warehouse", Driver: sluice.DriverFlightSQL, FlightSQL: tc.cfg})
			if err == nil {
				t.Fatal("opened")
			}
			if sluice.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "warehouse") {
				t.Errorf("error %v (%s), want %s containing %q and the source name", err, sluice.ErrorCode(err), tc.code, tc.want)
			}
		})
	}
}

func TestFlightSQLDialect(t *testing.T) {
	for _, tc := range []struct {
		forced string
		info   serverInfo
		want   sluice.Driver
		err    bool
	}{
		{"", serverInfo{name: "db_name", version: "sqlite 3", quoteChar: `"`}, sluice.DriverSQLite, false},
		{"", serverInfo{name: "PostgreSQL", version: "16.2", quoteChar: `"`}, sluice.DriverPostgres, false},
		{"", serverInfo{name: "Apache Doris", version: "2.1", quoteChar: "`"}, sluice.DriverFlightSQL, false},
		{"", serverInfo{name: "Dremio", quoteChar: `"`}, sluice.DriverFlightSQL, false},
		{"", serverInfo{name: "sqlite", quoteChar: "`"}, sluice.DriverFlightSQL, false},
		{"postgres", serverInfo{name: "Dremio", quoteChar: `"`}, sluice.DriverPostgres, false},
		{"postgres", serverInfo{name: "Doris", quoteChar: "`"}, "", true},
	} {
		got, err := chooseDialect("w", tc.forced, tc.info)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("chooseDialect(%q, %+v) = %q, %v; want %q (error %v)", tc.forced, tc.info, got, err, tc.want, tc.err)
		}
	}

	// A server whose dialect is unknown still describes, but fragments are
	// refused as not supported yet, never sent unmasked.
	fs := startFlightSQL(t, fqOptions{})
	fs.srv.RegisterSqlInfo(flightsql.SqlInfoFlightSqlServerVersion, "engine 1")
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{})
	if db.Driver() != sluice.DriverFlightSQL {
		t.Fatalf("dialect %q, want flightsql (unknown)", db.Driver())
	}
	if _, err := db.Tables(context.Background()); err != nil {
		t.Errorf("describe on an unknown dialect: %v", err)
	}
	n := len(fs.srv.Queries())
	f := &planner.Fragment{Dataset: "civil.residents", Select: fqSel("name", fqCol("name")), Masks: map[string]sluice.MaskRule{"name": sluice.MaskSurname}}
	_, _, err := fqRun(t, db, f, 0)
	if sluice.ErrorCode(err) != sluice.ENotSupported || !strings.Contains(err.Error(), "not supported yet") {
		t.Errorf("fragment on an unknown dialect: %v, want ENotSupported", err)
	}
	if len(fs.srv.Queries()) != n {
		t.Errorf("the server was sent SQL for an unknown dialect: %v", fs.srv.Queries()[n:])
	}
	// Forcing a dialect renders again.
	db2 := fqOpen(t, fs.addr, sluice.FlightSQLSource{Dialect: "sqlite"})
	if rows, _, err := fqRun(t, db2, f, 0); err != nil || len(rows) != 5 {
		t.Errorf("forced sqlite dialect: %d rows, %v", len(rows), err)
	}
}

// cutProxy forwards TCP connections to addr until cut, which closes every
// connection: the server going away mid-stream.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, addr string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func TestFlightSQLServerGoesAwayMidStream(t *testing.T) {
	fs := startFlightSQL(t, fqOptions{})
	proxy := newCutProxy(t, fs.addr)
	db := fqOpen(t, proxy.addr(), sluice.FlightSQLSource{})
	ds := &sluice.Dataset{Department: "civil", Name: "big", Table: "big", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{{Name: "n", Type: sluice.TypeInteger, Grade: "L1", Release: sluice.ReleasePlain}, {Name: "s", Type: sluice.TypeText, Grade: "L1", Release: sluice.ReleasePlain}}}
	f := &planner.Fragment{Dataset: "civil.big", Select: fqSel("n", fqCol("n"), "s", fqCol("s")), Limit: ptr(int64(20000))}
	sqlText, args, err := planner.Render(f, ds, db.Driver())
	if err != nil {
		t.Fatal(err)
	}
	fields, _ := planner.OutputFields(f, ds)

	fs.srv.hold.Store(true)
	done := make(chan struct{})
	var rows int64
	go func() {
		<-fs.srv.held
		proxy.cut()
	}()
	go func() {
		defer close(done)
		rows, err = db.Scan(context.Background(), sqlText, args, fields, 0, func(arrow.Record) error { return nil })
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the scan hangs after the server went away")
	}
	if err == nil {
		t.Fatalf("the scan succeeded with %d rows after the server went away", rows)
	}
	if sluice.ErrorCode(err) != sluice.EUnavailable || !strings.Contains(err.Error(), "warehouse") {
		t.Errorf("error %v (%s), want EUnavailable naming the source", err, sluice.ErrorCode(err))
	}
	if rows >= 20000 {
		t.Errorf("all %d rows arrived", rows)
	}
}

func TestFlightSQLCancel(t *testing.T) {
	fs := startFlightSQL(t, fqOptions{})
	db := fqOpen(t, fs.addr, sluice.FlightSQLSource{})
	fs.srv.hold.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds := &sluice.Dataset{Department: "civil", Name: "big", Table: "big", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{{Name: "n", Type: sluice.TypeInteger, Grade: "L1", Release: sluice.ReleasePlain}}}
	f := &planner.Fragment{Dataset: "civil.big", Select: fqSel("n", fqCol("n"))}
	sqlText, args, err := planner.Render(f, ds, db.Driver())
	if err != nil {
		t.Fatal(err)
	}
	fields, _ := planner.OutputFields(f, ds)
	go func() {
		<-fs.srv.held
		cancel()
	}()
	start := time.Now()
	_, err = db.Scan(ctx, sqlText, args, fields, 0, func(arrow.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: %v, want context.Canceled", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
}

// BenchmarkFlightSQLSource compares rows/s through the Flight SQL source
// (render, prepare, stream, conform to the promised schema) with a direct
// Flight SQL read of the same query from the same server.
func BenchmarkFlightSQLSource(b *testing.B) {
	fs := startFlightSQL(b, fqOptions{})
	ds := &sluice.Dataset{Department: "civil", Name: "big", Table: "big", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{{Name: "n", Type: sluice.TypeInteger, Grade: "L1", Release: sluice.ReleasePlain}, {Name: "s", Type: sluice.TypeText, Grade: "L1", Release: sluice.ReleasePlain}}}
	f := &planner.Fragment{Dataset: "civil.big", Select: fqSel("n", fqCol("n"), "s", fqCol("s"))}
	const rows = 20000
	b.Run("direct", func(b *testing.B) {
		cl, err := flightsql.NewClient(fs.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			fi, err := cl.Execute(ctx, `SELECT "n" AS "n", "s" AS "s" FROM "big"`)
			if err != nil {
				b.Fatal(err)
			}
			rdr, err := cl.DoGet(ctx, fi.Endpoint[0].Ticket)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rdr.Next() {
				n += int(rdr.RecordBatch().NumRows())
			}
			rdr.Release()
			if n != rows {
				b.Fatalf("%d rows", n)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("source", func(b *testing.B) {
		db := fqOpen(b, fs.addr, sluice.FlightSQLSource{})
		sqlText, args, err := planner.Render(f, ds, db.Driver())
		if err != nil {
			b.Fatal(err)
		}
		fields, _ := planner.OutputFields(f, ds)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			n, err := db.Scan(ctx, sqlText, args, fields, 0, func(arrow.Record) error { return nil })
			if err != nil || n != rows {
				b.Fatalf("%d rows, %v", n, err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
