// Package test holds Sluice's end-to-end tests: the demo world started
// in-process (real agents and broker on loopback sockets with TLS) and
// queried through the Arrow Flight SQL database/sql driver, as an analyst's
// tool would.
package test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	_ "github.com/apache/arrow-go/v18/arrow/flight/flightsql/driver"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	_ "modernc.org/sqlite"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
)

var world *demo.Running

// queryTimeout bounds each query the tests run (benchmarks raise it).
var queryTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	world, err = demo.Start(ctx, demo.RunOptions{Addr: "127.0.0.1:0", Dir: dir, Scale: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start demo:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if err := world.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop demo:", err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// dsn is how an analyst's tool connects: the Flight SQL driver with the
// token, TLS and the purpose passed through as gRPC metadata.
func dsn(t testing.TB, user, purpose string) string {
	t.Helper()
	token := "not-a-valid-token"
	if user != "" {
		token = tokenFor(t, user)
	}
	q := url.Values{}
	q.Set("token", token)
	q.Set("tls", "skip-verify")
	q.Set("timeout", queryTimeout.String())
	if purpose != "" {
		q.Set(broker.PurposeHeader, purpose)
	}
	return "flightsql://" + world.BrokerAddr + "?" + q.Encode()
}

// issuedTokens holds the tokens of users a test created through the admin
// API, whom the demo world does not know: user → token.
var issuedTokens sync.Map

// tokenFor is user's bearer token.
func tokenFor(t testing.TB, user string) string {
	t.Helper()
	if tok, ok := issuedTokens.Load(user); ok {
		return tok.(string)
	}
	tok, err := world.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// query runs sql as user under purpose and returns every row as strings.
func query(t testing.TB, user, purpose, stmt string) ([]string, [][]string, error) {
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
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				row[i] = "NULL"
			case float64:
				row[i] = fmt.Sprintf("%.4f", x)
			case time.Time:
				row[i] = x.UTC().Format("2006-01-02")
			default:
				row[i] = fmt.Sprint(x)
			}
		}
		out = append(out, row)
	}
	return cols, out, rows.Err()
}

// direct opens a demo department database as ground truth.
func direct(t *testing.T, dept string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+world.World.DatabaseFiles[dept]+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func legalBasis(t *testing.T, dept, dataset string) string {
	t.Helper()
	cfg, err := broker.LoadConfig(world.BrokerConfig)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := broker.LoadParts(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ds := parts.Catalog.Dataset(dept, dataset)
	if ds == nil || ds.LegalBasis == "" {
		t.Fatalf("%s.%s has no legal basis in the catalog", dept, dataset)
	}
	return ds.LegalBasis
}

var (
	maskedName = regexp.MustCompile(`^\p{Han}\*\*$`)
	plainName  = regexp.MustCompile(`^\p{Han}{2,4}$`)
	idCard     = regexp.MustCompile(`^\d{17}[\dX]$`)
)

func TestSingleDatasetQueries(t *testing.T) {
	type check func(t *testing.T, cols []string, rows [][]string)
	cases := []struct {
		name, user, purpose, sql string
		wantErr                  []string // substrings of the error, all required
		check                    check
		auditDecision            string
	}{
		{
			name: "unconditional dataset allowed", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT credit_code, name, district FROM market.enterprises WHERE district = '城东区' ORDER BY credit_code LIMIT 5",
			auditDecision: "allow",
			check: func(t *testing.T, cols []string, rows [][]string) {
				if len(rows) != 5 {
					t.Fatalf("want 5 rows, got %d", len(rows))
				}
				want := directStrings(t, "market", "SELECT credit_code, name, district FROM enterprises WHERE district = '城东区' ORDER BY credit_code LIMIT 5")
				if fmt.Sprint(rows) != fmt.Sprint(want) {
					t.Fatalf("broker and database disagree:\n got %v\nwant %v", rows, want)
				}
			},
		},
		{
			name: "masked column through a grant", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT name, household_district, migrant FROM police.household LIMIT 50",
			auditDecision: "allow",
			check: func(t *testing.T, cols []string, rows [][]string) {
				if len(rows) != 50 {
					t.Fatalf("want 50 rows, got %d", len(rows))
				}
				for _, r := range rows {
					if !maskedName.MatchString(r[0]) {
						t.Fatalf("name %q is not masked as 张**", r[0])
					}
				}
			},
		},
		{
			name: "predicate on a masked column sees only the masked value", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT name, COUNT(*) AS n FROM police.household WHERE name LIKE '王%' GROUP BY name",
			auditDecision: "allow",
			check: func(t *testing.T, cols []string, rows [][]string) {
				if len(rows) != 1 || rows[0][0] != "王**" {
					t.Fatalf("grouping a masked name must give the single masked group 王**, got %v", rows)
				}
			},
		},
		{
			name: "owner sees its own data plain", user: "alice", purpose: "subsidy-review",
			sql:           "SELECT name, id_card, phone FROM civil.residents ORDER BY id_card LIMIT 10",
			auditDecision: "allow",
			check: func(t *testing.T, cols []string, rows [][]string) {
				want := directStrings(t, "civil", "SELECT name, id_card, phone FROM residents ORDER BY id_card LIMIT 10")
				if fmt.Sprint(rows) != fmt.Sprint(want) {
					t.Fatalf("owner must see plain values:\n got %v\nwant %v", rows, want)
				}
				for _, r := range rows {
					if !plainName.MatchString(r[0]) || !idCard.MatchString(r[1]) {
						t.Fatalf("owner row %v is not plain", r)
					}
				}
			},
		},
		{
			name: "owner reads dates and decimals typed", user: "alice", purpose: "subsidy-review",
			sql:           "SELECT id_card, birth_date, monthly_allowance FROM civil.residents WHERE low_income = 1 ORDER BY id_card LIMIT 5",
			auditDecision: "allow",
			check: func(t *testing.T, cols []string, rows [][]string) {
				want := directStrings(t, "civil", "SELECT id_card, birth_date, printf('%.4f', monthly_allowance) FROM residents WHERE low_income = 1 ORDER BY id_card LIMIT 5")
				if fmt.Sprint(rows) != fmt.Sprint(want) {
					t.Fatalf("typed values differ:\n got %v\nwant %v", rows, want)
				}
			},
		},
		{
			name: "share class none denied citing its legal basis", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT offense FROM police.criminal_records",
			wantErr:       []string{"PermissionDenied", "share_class_none", legalBasis(t, "police", "criminal_records")},
			auditDecision: "deny",
		},
		{
			name: "conditional dataset without a grant", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT insurance_type FROM health.insured",
			wantErr:       []string{"PermissionDenied", "no_grant", "health.insured"},
			auditDecision: "deny",
		},
		{
			name: "expired grant", user: "erin", purpose: "public-health-planning",
			sql:           "SELECT district, COUNT(*) AS n FROM civil.residents GROUP BY district",
			wantErr:       []string{"PermissionDenied", "grant_expired"},
			auditDecision: "deny",
		},
		{
			name: "wrong purpose for the grant", user: "bob", purpose: "subsidy-review",
			sql:           "SELECT household_district FROM police.household LIMIT 1",
			wantErr:       []string{"PermissionDenied", "grant_purpose"},
			auditDecision: "deny",
		},
		{
			name: "output of a join_key column", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT id_card FROM police.household LIMIT 1",
			wantErr:       []string{"PermissionDenied", "join_key_use", "id_card"},
			auditDecision: "deny",
		},
		{
			name: "predicate on a join_key column", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT household_district FROM police.household WHERE id_card LIKE '630102%'",
			wantErr:       []string{"PermissionDenied", "join_key_use", "id_card"},
			auditDecision: "deny",
		},
		{
			name: "join_key hidden in an expression", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT substr(id_card, 1, 6) AS region FROM police.household LIMIT 1",
			wantErr:       []string{"PermissionDenied", "join_key_use"},
			auditDecision: "deny",
		},
		{
			name: "row output of an aggregate column", user: "alice", purpose: "subsidy-review",
			sql:           "SELECT annual_claims FROM health.insured LIMIT 5",
			wantErr:       []string{"PermissionDenied", "health.insured.annual_claims"},
			auditDecision: "deny",
		},
		{
			name: "aggregate-only grant refuses row queries", user: "alice", purpose: "subsidy-review",
			sql:           "SELECT insurance_type FROM health.insured LIMIT 5",
			wantErr:       []string{"PermissionDenied", "aggregate_only_grant"},
			auditDecision: "deny",
		},
		{
			name: "missing purpose", user: "bob", purpose: "",
			sql:           "SELECT name FROM market.enterprises LIMIT 1",
			wantErr:       []string{"InvalidArgument", "no purpose declared", broker.PurposeHeader},
			auditDecision: "error",
		},
		{
			name: "unregistered purpose", user: "bob", purpose: "curiosity",
			sql:           "SELECT name FROM market.enterprises LIMIT 1",
			wantErr:       []string{"PermissionDenied", "unknown_purpose"},
			auditDecision: "deny",
		},
		{
			name: "bad token", user: "", purpose: "enterprise-credit",
			sql:           "SELECT name FROM market.enterprises LIMIT 1",
			wantErr:       []string{"Unauthenticated", "token is not valid"},
			auditDecision: "deny",
		},
		{
			name: "auditor reads no data", user: "carol", purpose: "enterprise-credit",
			sql:           "SELECT name FROM market.enterprises LIMIT 1",
			wantErr:       []string{"PermissionDenied", "role"},
			auditDecision: "deny",
		},
		{
			name: "malformed SQL", user: "bob", purpose: "enterprise-credit",
			sql:           "SELEC name FROM market.enterprises",
			wantErr:       []string{"InvalidArgument"},
			auditDecision: "error",
		},
		{
			name: "not supported yet: right joins", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT e.name FROM market.enterprises e RIGHT JOIN police.household h ON e.legal_rep_id_card = h.id_card",
			wantErr:       []string{"Unimplemented", "not supported yet"},
			auditDecision: "error",
		},
		{
			name: "broker keeps serving after bad input", user: "bob", purpose: "enterprise-credit",
			sql:           "SELECT COUNT(*) AS n FROM market.enterprises",
			auditDecision: "allow",
			check: func(t *testing.T, cols []string, rows [][]string) {
				want := directStrings(t, "market", "SELECT COUNT(*) FROM enterprises")
				if fmt.Sprint(rows) != fmt.Sprint(want) {
					t.Fatalf("got %v want %v", rows, want)
				}
			},
		},
	}
	log := openAudit(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := auditHead(t, log)
			cols, rows, err := query(t, tc.user, tc.purpose, tc.sql)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("want an error containing %q, got %d rows", tc.wantErr, len(rows))
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error %q does not contain %q", err, w)
					}
				}
			} else {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tc.check(t, cols, rows)
			}
			assertAudited(t, log, before, tc.sql, tc.auditDecision)
		})
	}
	// Bob's burst of denials above is what the repeated-denials rule is for.
	alerts, err := log.Search(context.Background(), audit.Filter{Kind: audit.KindAlert, Principal: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	raised := false
	for _, a := range alerts {
		raised = raised || (len(a.Reasons) > 0 && strings.HasPrefix(a.Reasons[0], "repeated_denials"))
	}
	if !raised {
		t.Fatalf("no repeated_denials alert for bob; alerts: %+v", alerts)
	}
	rep, err := audit.VerifyFile(context.Background(), storePath(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("the audit chain does not verify: %+v", rep)
	}
}

// TestAggregateOnlyGrantSuppressesSmallGroups checks alice's aggregate-only
// grant (k = 10): every group returned has at least k rows, and groups
// below k are absent — verified against the health database directly.
func TestAggregateOnlyGrantSuppressesSmallGroups(t *testing.T) {
	db := direct(t, "health")
	// Find a claims threshold that leaves one insurance type with fewer than
	// 10 rows above it and the other with at least 10.
	var threshold float64
	found := false
	rows, err := db.Query("SELECT DISTINCT CAST(annual_claims AS REAL) FROM insured ORDER BY 1 DESC LIMIT 2000")
	if err != nil {
		t.Fatal(err)
	}
	var candidates []float64
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		candidates = append(candidates, v)
	}
	rows.Close()
	for _, c := range candidates {
		counts := groupCounts(t, db, c)
		small, big := 0, 0
		for _, n := range counts {
			if n < 10 {
				small++
			} else {
				big++
			}
		}
		if small > 0 && big > 0 {
			threshold, found = c, true
			break
		}
	}
	if !found {
		t.Fatal("no threshold splits the insurance types into a small and a large group; the demo data changed")
	}
	want := groupCounts(t, db, threshold)
	stmt := fmt.Sprintf("SELECT insurance_type, COUNT(*) AS n FROM health.insured WHERE annual_claims > %v GROUP BY insurance_type", threshold)
	_, got, err := query(t, "alice", "subsidy-review", stmt)
	if err != nil {
		t.Fatal(err)
	}
	gotMap := map[string]string{}
	for _, r := range got {
		gotMap[r[0]] = r[1]
	}
	for typ, n := range want {
		v, present := gotMap[typ]
		switch {
		case n < 10 && present:
			t.Fatalf("group %s with %d rows (< k = 10) was released", typ, n)
		case n >= 10 && (!present || v != fmt.Sprint(n)):
			t.Fatalf("group %s: want count %d, got %q (present %v)", typ, n, v, present)
		}
	}
	if len(gotMap) == 0 {
		t.Fatal("no group released at all")
	}
}

func groupCounts(t *testing.T, db *sql.DB, threshold float64) map[string]int {
	t.Helper()
	rows, err := db.Query("SELECT insurance_type, COUNT(*) FROM insured WHERE annual_claims > ? GROUP BY insurance_type", threshold)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

func directStrings(t *testing.T, dept, stmt string) [][]string {
	t.Helper()
	return rowsOf(t, direct(t, dept), stmt)
}

func storePath(t *testing.T) string {
	t.Helper()
	cfg, err := broker.LoadConfig(world.BrokerConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Store
}

func openAudit(t *testing.T) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), storePath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func auditHead(t *testing.T, l *audit.Log) int64 {
	t.Helper()
	es, err := l.Tail(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		return 0
	}
	return es[0].Seq
}

// assertAudited checks that the request left an entry after seq `after`
// with the expected decision.
func assertAudited(t *testing.T, l *audit.Log, after int64, stmt, decision string) {
	t.Helper()
	es, err := l.Tail(context.Background(), 20)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range es {
		if e.Seq <= after {
			continue
		}
		seen = append(seen, e.Kind+"/"+e.Decision)
		if (e.SQL == stmt || e.Kind == "auth") && e.Decision == decision {
			return
		}
	}
	sort.Strings(seen)
	t.Fatalf("no audit entry with decision %q for %q; new entries: %v", decision, stmt, seen)
}

// TestCatalogBrowsing checks that GetTables shows each principal only what
// it may know exists: hidden columns only to the owner department.
func TestCatalogBrowsing(t *testing.T) {
	aliceView := datasetColumns(t, "alice", "civil", "residents")
	if !contains(aliceView, "id_card") || !contains(aliceView, "monthly_allowance") {
		t.Fatalf("alice (owner) must see every column of civil.residents, saw %v", aliceView)
	}
	if bobView := datasetColumns(t, "bob", "civil", "residents"); len(bobView) != len(aliceView) {
		t.Fatalf("civil.residents has no hidden columns; bob should see them all, saw %v", bobView)
	}
	if hidden := datasetColumns(t, "bob", "police", "criminal_records"); len(hidden) != 0 {
		t.Fatalf("bob must not see the hidden columns of police.criminal_records, saw %v", hidden)
	}
}

// flightClient connects as user with the plain Flight SQL client.
func flightClient(t testing.TB, user string) (context.Context, *flightsql.Client) {
	t.Helper()
	token := tokenFor(t, user)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cl, err := flightsql.NewClientCtx(ctx, world.BrokerAddr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), cl
}

// strings0 reads the first column of every record of a FlightInfo.
func strings0(t *testing.T, ctx context.Context, cl *flightsql.Client, info *flight.FlightInfo, col int) []string {
	t.Helper()
	rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var out []string
	for rd.Next() {
		rec := rd.Record()
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, rec.Column(col).ValueStr(i))
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMetadataCalls(t *testing.T) {
	ctx, cl := flightClient(t, "bob")
	info, err := cl.GetCatalogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings0(t, ctx, cl, info, 0); fmt.Sprint(got) != "[sluice]" {
		t.Fatalf("catalogs: %v", got)
	}
	info, err = cl.GetDBSchemas(ctx, &flightsql.GetDBSchemasOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// The demo's departments, in order; departments other tests register
	// in the shared demo world (transport, TPC-H's) may be listed too.
	got := strings0(t, ctx, cl, info, 1)
	var demo []string
	for _, d := range got {
		switch d {
		case "civil", "health", "market", "police":
			demo = append(demo, d)
		}
	}
	if fmt.Sprint(demo) != "[civil health market police]" || !sort.StringsAreSorted(got) {
		t.Fatalf("schemas: %v", got)
	}
	// GetSqlInfo tells the dialect truthfully: PostgreSQL's quote
	// character, the Arrow version the broker speaks.
	want := map[flightsql.SqlInfo]string{
		flightsql.SqlInfoFlightSqlServerName:         "Sluice",
		flightsql.SqlInfoIdentifierQuoteChar:         `"`,
		flightsql.SqlInfoFlightSqlServerArrowVersion: "18.9.0",
	}
	var ids []flightsql.SqlInfo
	for id := range want {
		ids = append(ids, id)
	}
	info, err = cl.GetSqlInfo(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	got2 := map[flightsql.SqlInfo]string{}
	for rd.Next() {
		rec := rd.RecordBatch()
		names := rec.Column(0).(*array.Uint32)
		vals := rec.Column(1).(*array.DenseUnion)
		for i := 0; i < int(rec.NumRows()); i++ {
			child := vals.Field(vals.ChildID(i))
			if s, ok := child.(*array.String); ok {
				got2[flightsql.SqlInfo(names.Value(i))] = s.Value(int(vals.ValueOffset(i)))
			}
		}
	}
	if fmt.Sprint(got2) != fmt.Sprint(want) {
		t.Fatalf("GetSqlInfo: %v, want %v", got2, want)
	}
}

// datasetColumns lists the columns GetTables shows user for one dataset.
func datasetColumns(t *testing.T, user, dept, dataset string) []string {
	t.Helper()
	ctx, cl := flightClient(t, user)
	info, err := cl.GetTables(ctx, &flightsql.GetTablesOpts{DbSchemaFilterPattern: &dept, TableNameFilterPattern: &dataset, IncludeSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var cols []string
	found := 0
	for rd.Next() {
		rec := rd.Record()
		for i := 0; i < int(rec.NumRows()); i++ {
			found++
			schema, err := flight.DeserializeSchema(rec.Column(4).(*array.Binary).Value(i), memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range schema.Fields() {
				cols = append(cols, f.Name)
			}
		}
	}
	if found != 1 {
		t.Fatalf("want exactly one dataset %s.%s in the catalog, got %d", dept, dataset, found)
	}
	return cols
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestTicketIsBoundToItsPrincipal checks that a statement handle cannot be
// redeemed by another user, and only once by its own.
func TestTicketIsBoundToItsPrincipal(t *testing.T) {
	bctx, bob := flightClient(t, "bob")
	bctx = metadata.AppendToOutgoingContext(bctx, broker.PurposeHeader, "enterprise-credit")
	info, err := bob.Execute(bctx, "SELECT name FROM police.household LIMIT 3")
	if err != nil {
		t.Fatal(err)
	}
	actx, alice := flightClient(t, "alice")
	if rd, err := alice.DoGet(actx, info.Endpoint[0].Ticket); err == nil {
		for rd.Next() {
			t.Fatal("alice redeemed bob's ticket")
		}
		err = rd.Err()
		rd.Release()
		if err == nil {
			t.Fatal("alice redeemed bob's ticket without an error")
		}
	}
	if got := strings0(t, bctx, bob, info, 0); len(got) != 3 {
		t.Fatalf("bob's own ticket: %v", got)
	}
	rd, err := bob.DoGet(bctx, info.Endpoint[0].Ticket)
	if err == nil {
		for rd.Next() {
		}
		err = rd.Err()
		rd.Release()
	}
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("a ticket must be single-use, got %v", err)
	}
}
