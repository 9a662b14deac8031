package agent

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/example"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// TestFlightSQLSourceEndToEnd: a real agent whose department's data lives
// in a Flight SQL server (the arrow-go example server, SQLite behind it)
// releases exactly what the same agent releases from an SQLite copy of the
// same data: masks forced for another department, small groups
// suppressed, large results streamed whole.
func TestFlightSQLSourceEndToEnd(t *testing.T) {
	ref := newFixture(t, nil, nil)

	remote := filepath.Join(t.TempDir(), "remote.db")
	makeDB(t, remote)
	rdb, err := sql.Open("sqlite", remote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	inner, err := example.NewSQLiteFlightSQLServer(rdb)
	if err != nil {
		t.Fatal(err)
	}
	fsrv := flight.NewServerWithMiddleware(nil)
	fsrv.RegisterFlightService(flightsql.NewFlightServer(inner))
	if err := fsrv.Init("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go fsrv.Serve()
	t.Cleanup(fsrv.Shutdown)

	dir := t.TempDir()
	fx := startAgent(t, dir, func(pins []string) *sluice.Department {
		d := department(dir, "", pins)
		d.Sources = []sluice.Source{{Name: "main", Driver: sluice.DriverFlightSQL,
			FlightSQL: &sluice.FlightSQLSource{Address: fsrv.Addr().String(), Plaintext: true}}}
		return d
	}, nil, nil)

	// COUNT(*) alone: with a SUM too, the rendered SQL sends the SUM's
	// contributor set as NULL when it equals the group's, and the example
	// server cannot type a computed column whose first value is NULL (it
	// never fills its dense-union fallback), a limit of that server.
	grouped := frag("residents", outsider, sel("district", col("district"), "n", agg("count", nil)))
	grouped.GroupBy = []*planner.Expr{col("district")}
	grouped.MinGroupSize = 10 // the broker's k: district B (5 persons) is suppressed
	grouped.OrderBy = []planner.OrderItem{{Expr: col("district")}}
	masked := frag("residents", outsider, sel("name", col("name"), "district", col("district"), "born", col("birth_date")))
	masked.OrderBy = []planner.OrderItem{{Expr: col("district")}, {Expr: col("name")}}
	filtered := frag("big", owner, sel("n", col("n"), "label", col("label")))
	filtered.Where = bin(">", col("n"), num(bigRows-3000))
	whole := frag("big", owner, sel("n", col("n")))

	for _, tc := range []struct {
		name string
		f    *planner.Fragment
		rows int
	}{
		{"masked for another department", masked, 30},
		{"groups under k suppressed", grouped, 2},
		{"filter pushed down", filtered, 3000},
		{"a large result streamed whole", whole, bigRows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			want, err := fetchAll(ctx, ref.broker(t), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fetchAll(ctx, fx.broker(t), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !got.schema.Equal(want.schema) {
				t.Errorf("schema %s, want %s", got.schema, want.schema)
			}
			// Sketches of persons differ between agents (each has its own
			// unit key): compare the fragment's own columns.
			cut := func(rows [][]string) [][]string {
				out := make([][]string, len(rows))
				for i, r := range rows {
					out[i] = r[:len(tc.f.Select)]
				}
				return out
			}
			if len(got.rows) != tc.rows || !slices.EqualFunc(cut(got.rows), cut(want.rows), slices.Equal) {
				t.Errorf("over Flight SQL %d rows, over SQLite %d (want %d); first rows %v vs %v", len(got.rows), len(want.rows), tc.rows, head(got.rows), head(want.rows))
			}
			if tc.f == masked {
				for _, r := range got.rows {
					if !strings.HasSuffix(r[0], "**") || len(r[2]) != 4 {
						t.Fatalf("row %v: name or birth date not masked", r)
					}
				}
			}
		})
	}
}

func TestFlightSQLSourceDescribeThroughAgent(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "remote.db")
	makeDB(t, remote)
	rdb, err := sql.Open("sqlite", remote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	inner, err := example.NewSQLiteFlightSQLServer(rdb)
	if err != nil {
		t.Fatal(err)
	}
	fsrv := flight.NewServerWithMiddleware(nil)
	fsrv.RegisterFlightService(flightsql.NewFlightServer(inner))
	if err := fsrv.Init("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go fsrv.Serve()
	t.Cleanup(fsrv.Shutdown)
	dir := t.TempDir()
	fx := startAgent(t, dir, func(pins []string) *sluice.Department {
		d := department(dir, "", pins)
		d.Sources = []sluice.Source{{Name: "main", Driver: sluice.DriverFlightSQL,
			FlightSQL: &sluice.FlightSQLSource{Address: fsrv.Addr().String(), Plaintext: true}}}
		return d
	}, nil, nil)
	ctx := context.Background()
	src, tables, err := fx.srv.ListTables(ctx, "")
	if err != nil || src != "main" || !slices.Equal(tables, []string{"big", "records", "residents"}) {
		t.Errorf("ListTables = %q %v, %v", src, tables, err)
	}
	d, err := fx.srv.Describe(ctx, "", "residents")
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range d.Columns {
		cols = append(cols, c.Name+":"+string(c.Type))
	}
	if want := []string{"id_card:text", "name:text", "district:text", "allowance:float", "secret:text", "birth_date:text"}; !slices.Equal(cols, want) {
		t.Errorf("described columns %v, want %v", cols, want)
	}
}

func head(rows [][]string) [][]string { return rows[:min(3, len(rows))] }
