//go:build duckdb_arrow

package test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/go-sql-driver/mysql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/workflow"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/test/dbtest"
	"github.com/sluice-gov/sluice/test/tpch"
)

// tpchScale is the TPC-H scale factor of the end-to-end yardstick: SF 0.01
// (15,000 orders, about 60,000 lineitems) keeps the whole run short;
// TPCH_SF=0.1 measures at the scale docs/benchmarks.md reports.
var tpchScale = func() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("TPCH_SF"), 64); err == nil && v >= tpch.MinScaleFactor && v <= 1 {
		return v
	}
	return 0.01
}()

// The statistics analyst who asks the 22 queries, of a department of its
// own (so that it owns none of the TPC-H data), and the purpose it
// declares.
const (
	tpchAnalyst = "tpch_analyst"
	tpchPurpose = "economic-statistics"
)

// TestTPCH is TPC-H as the yardstick of Sluice's SQL support, end to end:
// the eight tables at SF 0.01 in three departments' databases (trade,
// customers, supply), each behind its own agent, registered with the
// running demo broker through the admin API as any new department is
// (test/workflow_e2e_test.go); the 22 queries sent by an analyst over
// Flight SQL; every answer compared with DuckDB's on the same data.
//
// The departments' data lives in SQLite (subtest sqlite, always) and, with
// CI=true, in PostgreSQL (subtest postgres: schemas tpch_trade,
// tpch_customers, tpch_supply of the local server's database) and in
// MariaDB (subtest mysql: databases of those names), which are dropped
// when the run ends. Each engine's run registers departments of its own,
// trade_postgres etc. (the SQLite run keeps trade, customers, supply), so
// the runs share nothing but the broker, the analyst and the reference.
//
// The departments publish the tables as open statistical data: share
// class unconditional (no application or grant), every column grade L1
// and released plain. A query the broker refuses as not supported yet
// (gRPC Unimplemented) is logged; any other error, or an answer that
// differs from DuckDB's, fails the test.
func TestTPCH(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()

	// The reference: DuckDB loaded with the same rows (test/tpch), while
	// the departments write their databases and register.
	type loaded struct {
		db  *sql.DB
		err error
	}
	duck := make(chan loaded, 1)
	go func() {
		db, err := sql.Open("duckdb", "")
		if err == nil {
			if err = tpch.LoadDuckDB(ctx, db, tpchScale); err != nil {
				db.Close()
				db = nil
			}
		}
		duck <- loaded{db, err}
	}()
	var ref loaded
	received := false
	t.Cleanup(func() {
		if !received {
			cancel()
			ref = <-duck
		}
		if ref.db != nil {
			ref.db.Close()
		}
	})

	start := time.Now()
	paths, err := tpch.WriteSQLite(ctx, dir, tpchScale)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SF %g written into %d SQLite files in %s", tpchScale, len(paths), time.Since(start).Round(time.Millisecond))
	tpchAnalystSetUp(t)

	ref, received = <-duck, true
	if ref.err != nil {
		t.Fatalf("loading DuckDB: %v", ref.err)
	}
	cl := tpchClient(t)

	t.Run("sqlite", func(t *testing.T) {
		sources := map[string]sluice.Source{}
		for dept, path := range paths {
			sources[dept] = sluice.Source{Name: "main", Driver: sluice.DriverSQLite, DSN: path}
		}
		tpchRun(t, ctx, dir, "SQLite", "", sources, ref.db, cl)
	})

	t.Run("postgres", func(t *testing.T) {
		tpchServerRun(t, "PostgreSQL", "127.0.0.1:5432, user postgres, database test")
		base := dbtest.PostgresURL(t)
		db := dbtest.Open(t, "pgx", base)
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		sources := tpchLoadServer(t, ctx, db, tpch.PostgreSQL, func(schema string) string {
			q := u.Query()
			q.Set("search_path", schema)
			v := *u
			v.RawQuery = q.Encode()
			return v.String()
		})
		tpchRun(t, ctx, dir, "PostgreSQL", "_postgres", sources, ref.db, cl)
	})

	t.Run("mysql", func(t *testing.T) {
		tpchServerRun(t, "MariaDB", "127.0.0.1:3306, root, database test")
		db := dbtest.Open(t, "mysql", dbtest.MariaDB)
		cfg, err := mysql.ParseDSN(dbtest.MariaDB)
		if err != nil {
			t.Fatal(err)
		}
		sources := tpchLoadServer(t, ctx, db, tpch.MySQL, func(schema string) string {
			c := cfg.Clone()
			c.DBName = schema
			return c.FormatDSN()
		})
		tpchRun(t, ctx, dir, "MariaDB", "_mysql", sources, ref.db, cl)
	})
}

// tpchServerRun skips a run on a database server unless CI=true, where
// the local servers are part of the run (and one that does not answer
// fails it: dbtest.Open).
func tpchServerRun(t *testing.T, what, where string) {
	t.Helper()
	if !dbtest.Required() {
		t.Skipf("TPC-H with the departments' data in %s runs with CI=true (a server on this machine: %s)", what, where)
	}
}

// tpchLoadServer writes each department's tables at SF tpchScale into a
// schema of its own on db's server, tpch_<department> (a PostgreSQL schema,
// a MySQL database), dropped first and again when the test ends, and
// returns each department's source: dsn(schema) is the DSN whose
// connections see that schema's tables.
func tpchLoadServer(t *testing.T, ctx context.Context, db *sql.DB, d tpch.Dialect, dsn func(schema string) string) map[string]sluice.Source {
	t.Helper()
	drop := func() {
		for _, dept := range tpch.DepartmentNames() {
			stmt := "DROP SCHEMA IF EXISTS tpch_" + dept + " CASCADE"
			if d == tpch.MySQL {
				stmt = "DROP DATABASE IF EXISTS tpch_" + dept
			}
			if _, err := db.ExecContext(context.Background(), stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	}
	drop()
	// Registered before the agents start, so it runs after they stop.
	t.Cleanup(drop)
	start := time.Now()
	driver := sluice.DriverPostgres
	if d == tpch.MySQL {
		driver = sluice.DriverMySQL
	}
	sources := map[string]sluice.Source{}
	for _, dept := range tpch.DepartmentNames() {
		schema := "tpch_" + dept
		if err := tpch.Load(ctx, db, d, schema, tpchScale, tpch.TablesOf(dept)...); err != nil {
			t.Fatalf("loading %s: %v", schema, err)
		}
		sources[dept] = sluice.Source{Name: "main", Driver: driver, DSN: dsn(schema)}
	}
	what := "PostgreSQL schemas"
	if d == tpch.MySQL {
		what = "MariaDB databases"
	}
	t.Logf("SF %g written into %d %s (tpch_customers, tpch_supply, tpch_trade) in %s", tpchScale, len(sources), what, time.Since(start).Round(time.Millisecond))
	return sources
}

// tpchRun registers the three departments, whose data sources holds, as
// departments <department><suffix> (trade_postgres, …) and runs the 22
// queries through the broker, each compared with DuckDB's answer on ref;
// it logs a table of the outcomes and timings.
func tpchRun(t *testing.T, ctx context.Context, dir, engine, suffix string, sources map[string]sluice.Source, ref *sql.DB, cl *flightsql.Client) {
	start := time.Now()
	for _, dept := range tpch.DepartmentNames() {
		registerTPCHDepartment(t, ctx, dir, dept+suffix, dept, sources[dept])
	}
	t.Logf("3 departments and 8 datasets in %s registered in %s", engine, time.Since(start).Round(time.Millisecond))
	name := func(table string) string { return tpch.Departments[table] + suffix + "." + table }

	// A first small query checks the registration (and, in the first run,
	// opens the connection, which the timings then leave out).
	if got, _, err := tpchQuery(cl, "SELECT r_regionkey, r_name FROM "+name("region")+" ORDER BY r_regionkey"); err != nil || len(got) != 5 {
		t.Fatalf("the analyst reads %s: %v (%d rows, want 5)", name("region"), err, len(got))
	}
	type outcome struct {
		status       string
		broker, duck time.Duration
	}
	results := make([]outcome, tpch.NumQueries+1)
	answered, unsupported, failed := 0, 0, 0
	for n := 1; n <= tpch.NumQueries; n++ {
		res := &results[n]
		start := time.Now()
		want, err := tpch.QueryRows(ctx, ref, tpch.Query(n))
		res.duck = time.Since(start)
		if err != nil {
			t.Errorf("Q%02d: DuckDB: %v", n, err)
			res.status, failed = "FAILED: DuckDB: "+oneLine(err.Error(), 80), failed+1
			continue
		}
		start = time.Now()
		got, types, err := tpchQuery(cl, tpch.QueryWith(n, name))
		res.broker = time.Since(start)
		switch {
		case status.Code(err) == codes.Unimplemented:
			unsupported++
			msg := status.Convert(err).Message()
			res.status = "not supported yet: " + oneLine(msg, 110)
			t.Logf("Q%02d not supported yet: %s", n, msg)
		case err != nil:
			failed++
			res.status = "FAILED: " + status.Code(err).String() + ": " + oneLine(status.Convert(err).Message(), 100)
			t.Errorf("Q%02d: %v", n, err)
		default:
			if d := tpch.SameAnswer(want, got); d != nil {
				failed++
				res.status = "FAILED: differs from DuckDB: " + oneLine(d.Error(), 90)
				t.Errorf("Q%02d: the broker's answer differs from DuckDB's: %v\n%s", n, d, answerDiff(want, got, types))
			} else {
				answered++
				res.status = fmt.Sprintf("answered-equal (%d rows)", len(got))
			}
		}
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "query\tbroker\tDuckDB\tstatus")
	var brokerTotal, duckTotal time.Duration
	for n := 1; n <= tpch.NumQueries; n++ {
		r := results[n]
		brokerTotal += r.broker
		duckTotal += r.duck
		fmt.Fprintf(tw, "Q%02d\t%s\t%s\t%s\n", n, r.broker.Round(10*time.Microsecond), r.duck.Round(10*time.Microsecond), r.status)
	}
	fmt.Fprintf(tw, "all\t%s\t%s\t%d answered-equal, %d not supported yet, %d FAILED\n",
		brokerTotal.Round(time.Millisecond), duckTotal.Round(time.Millisecond), answered, unsupported, failed)
	tw.Flush()
	t.Logf("TPC-H SF %g with the departments' data in %s, through the broker (analyst %s, purpose %s) against DuckDB on the same data:\n%s",
		tpchScale, engine, tpchAnalyst, tpchPurpose, b.String())
}

// registerTPCHDepartment brings TPC-H department dept (trade, customers,
// supply) onto the running demo platform as department id, the way a new
// department joins: its agent started beside its database (here
// in-process, serving src), the platform admin (dave) creating its data
// admin and registering the agent, and the data admin classifying each of
// its tables from the agent's proposal.
//
// The tables are published as open statistics: share class unconditional
// (no legal basis restricts them, so no application or grant is needed),
// every column grade L1 (public) and released plain, a single-column
// primary key declared unique.
func registerTPCHDepartment(t *testing.T, ctx context.Context, dir, id, dept string, src sluice.Source) {
	t.Helper()
	crt, key := filepath.Join(dir, id+".crt"), filepath.Join(dir, id+".key")
	if err := tlsutil.WriteSelfSigned(crt, key, "sluice-agent-"+id, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	agentPin, err := tlsutil.FingerprintFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	brokerPin, err := tlsutil.FingerprintFile(world.BrokerCert)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	name := "TPC-H " + dept
	if id != dept {
		name += " (" + id + ")"
	}
	d := &sluice.Department{
		ID: id, Name: name,
		Agent: sluice.AgentInfo{Address: lis.Addr().String(), TLSCert: crt, TLSKey: key, BrokerFingerprints: []string{brokerPin},
			AuditLog: filepath.Join(dir, id+"-agent-audit.db"), SigningKey: filepath.Join(dir, id+"-agent.key"),
			UnitKey: filepath.Join(dir, id+"-agent-unit.key")},
		Sources: []sluice.Source{src},
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	srv, err := agent.New(actx, d, agent.WithRegistry(filepath.Join(dir, id+"-registry.json")),
		agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		acancel()
		lis.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(actx, lis) }()
	t.Cleanup(func() {
		acancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("agent %s: %v", id, err)
		}
		srv.Close()
	})

	// The platform admin creates the department's data admin and registers
	// the agent (a new department: the platform admin's to create).
	admin := id + "_admin"
	tpchUser(t, admin, sluice.RoleDeptAdmin, id)
	mustAPI(t, 200, "PUT", "/v1/departments/"+id+"/agent", "dave",
		fmt.Sprintf(`{"name":%q,"address":%q,"fingerprint":%q}`, name, lis.Addr().String(), agentPin))

	// The data admin classifies each table from the agent's proposal.
	for _, table := range tpch.TablesOf(dept) {
		tb, _ := tpch.Lookup(table)
		var reg workflow.DatasetRegistration
		decodeJSON(t, mustAPI(t, 200, "GET", "/v1/departments/"+id+"/tables/"+table+"/proposal", admin, ""), &reg)
		kinds := map[string]tpch.Kind{}
		for _, c := range tb.Columns {
			kinds[c.Name] = c.Kind
		}
		if len(reg.Dataset.Columns) != len(tb.Columns) {
			t.Fatalf("%s.%s: the agent proposes %d columns, the table has %d", id, table, len(reg.Dataset.Columns), len(tb.Columns))
		}
		for _, c := range reg.Dataset.Columns {
			k, ok := kinds[c.Name]
			if !ok {
				t.Fatalf("%s.%s: the agent proposes an unknown column %s", id, table, c.Name)
			}
			if want := tpchColumnType(k); c.Type != want {
				t.Fatalf("%s.%s.%s: the agent reads it as %s, want %s (declared %s)", id, table, c.Name, c.Type, want, k)
			}
			c.Grade, c.Release, c.Mask, c.KeyDomain = sluice.GradeL1, sluice.ReleasePlain, "", ""
			c.Unique = len(tb.Key) == 1 && tb.Key[0] == c.Name
		}
		reg.Dataset.Title = "TPC-H " + table
		reg.Dataset.Description = fmt.Sprintf("TPC-H table %s at scale factor %g (test/tpch), published as open statistics", table, tpchScale)
		reg.Dataset.ShareClass = sluice.ShareUnconditional
		reg.Dataset.LegalBasis = ""
		raw, err := json.Marshal(reg)
		if err != nil {
			t.Fatal(err)
		}
		mustAPI(t, 200, "PUT", "/v1/departments/"+id+"/datasets/"+table, admin, string(raw))
	}
}

func tpchColumnType(k tpch.Kind) sluice.ColumnType {
	switch k {
	case tpch.KindInt:
		return sluice.TypeInteger
	case tpch.KindDecimal:
		return sluice.TypeDecimal
	case tpch.KindDate:
		return sluice.TypeDate
	}
	return sluice.TypeText
}

// tpchUser creates (or replaces) a user through the admin API and issues
// its token, which tokenFor then finds.
func tpchUser(t *testing.T, name string, role sluice.Role, dept string) {
	t.Helper()
	mustAPI(t, 200, "PUT", "/v1/users/"+name, "dave", fmt.Sprintf(`{"role":%q,"department":%q}`, role, dept))
	var tok struct {
		Secret string `json:"token"`
	}
	decodeJSON(t, mustAPI(t, 201, "POST", "/v1/users/"+name+"/tokens", "dave", `{"ttl":"2h","label":"TPC-H yardstick"}`), &tok)
	issuedTokens.Store(name, tok.Secret)
}

// tpchAnalystSetUp registers the statistics purpose and the analyst, of a
// statistics department that owns none of the TPC-H data.
func tpchAnalystSetUp(t *testing.T) {
	t.Helper()
	mustAPI(t, 200, "PUT", "/v1/purposes/"+tpchPurpose, "dave", fmt.Sprintf(`{"code":%q,"name":"经济统计 (economic statistics)",
		"description":"Statistical analysis of trade, customers and supply (the TPC-H yardstick).",
		"legal_duty":"《中华人民共和国统计法》第七条 (Statistics Law Art. 7)"}`, tpchPurpose))
	tpchUser(t, tpchAnalyst, sluice.RoleAnalyst, "statistics")
}

// tpchClient is the analyst's Flight SQL client.
func tpchClient(t *testing.T) *flightsql.Client {
	t.Helper()
	cl, err := flightsql.NewClient(world.BrokerAddr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// tpchQuery runs stmt as the TPC-H analyst and returns every row with
// each Arrow value as a Go value that tpch.SameAnswer compares: integers
// as int64, floats as float64, decimals as their exact text, dates and
// timestamps as time.Time (UTC), text as string, NULL as nil; and the
// columns' Arrow types.
func tpchQuery(cl *flightsql.Client, stmt string) ([][]any, []arrow.DataType, error) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	tok, _ := issuedTokens.Load(tpchAnalyst)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.(string), broker.PurposeHeader, tpchPurpose)
	info, err := cl.Execute(ctx, stmt)
	if err != nil {
		return nil, nil, err
	}
	var rows [][]any
	var types []arrow.DataType
	for _, ep := range info.Endpoint {
		rd, err := cl.DoGet(ctx, ep.Ticket)
		if err != nil {
			return nil, nil, err
		}
		for rd.Next() {
			rec := rd.RecordBatch()
			if types == nil {
				for _, f := range rec.Schema().Fields() {
					types = append(types, f.Type)
				}
			}
			for i := 0; i < int(rec.NumRows()); i++ {
				row := make([]any, rec.NumCols())
				for j := range row {
					v, err := arrowValue(rec.Column(j), i)
					if err != nil {
						rd.Release()
						return nil, nil, fmt.Errorf("column %s: %w", rec.ColumnName(j), err)
					}
					row[j] = v
				}
				rows = append(rows, row)
			}
		}
		err = rd.Err()
		rd.Release()
		if err != nil {
			return nil, nil, err
		}
	}
	return rows, types, nil
}

func arrowValue(col arrow.Array, i int) (any, error) {
	if col.IsNull(i) {
		return nil, nil
	}
	switch c := col.(type) {
	case *array.Int64:
		return c.Value(i), nil
	case *array.Int32:
		return int64(c.Value(i)), nil
	case *array.Int16:
		return int64(c.Value(i)), nil
	case *array.Int8:
		return int64(c.Value(i)), nil
	case *array.Uint64:
		return fmt.Sprint(c.Value(i)), nil
	case *array.Uint32:
		return int64(c.Value(i)), nil
	case *array.Float64:
		return c.Value(i), nil
	case *array.Float32:
		return float64(c.Value(i)), nil
	case *array.Decimal128:
		return c.Value(i).ToString(c.DataType().(*arrow.Decimal128Type).Scale), nil
	case *array.Decimal256:
		return c.Value(i).ToString(c.DataType().(*arrow.Decimal256Type).Scale), nil
	case *array.String:
		return c.Value(i), nil
	case *array.LargeString:
		return c.Value(i), nil
	case *array.Boolean:
		return c.Value(i), nil
	case *array.Date32:
		return c.Value(i).ToTime().UTC(), nil
	case *array.Date64:
		return c.Value(i).ToTime().UTC(), nil
	case *array.Timestamp:
		return c.Value(i).ToTime(c.DataType().(*arrow.TimestampType).Unit).UTC(), nil
	}
	return nil, fmt.Errorf("no comparison for Arrow type %s", col.DataType())
}

// answerDiff is a short diff of two answers: their sizes and the first
// rows that differ, side by side.
func answerDiff(want, got [][]any, types []arrow.DataType) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tbroker %d rows, DuckDB %d rows; broker column types %v\n", len(got), len(want), types)
	shown := 0
	for i := 0; i < max(len(want), len(got)) && shown < 3; i++ {
		var w, g [][]any
		if i < len(want) {
			w = want[i : i+1]
		}
		if i < len(got) {
			g = got[i : i+1]
		}
		if len(w) == 1 && len(g) == 1 && tpch.SameAnswer(w, g) == nil {
			continue
		}
		shown++
		fmt.Fprintf(&b, "\trow %d\n\t  broker %s\n\t  DuckDB %s\n", i+1, showRow(g), showRow(w))
	}
	return b.String()
}

func showRow(r [][]any) string {
	if len(r) == 0 {
		return "(none)"
	}
	parts := make([]string, len(r[0]))
	for i, v := range r[0] {
		switch v := v.(type) {
		case nil:
			parts[i] = "NULL"
		case time.Time:
			parts[i] = v.Format(time.DateOnly)
		case string:
			parts[i] = fmt.Sprintf("%q", v)
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return "[" + strings.Join(parts, " | ") + "]"
}

// oneLine shortens s to at most n characters on one line.
func oneLine(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return string(r)
}
