package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/planner"
)

func TestFetchAppliesMasksAtTheSource(t *testing.T) {
	fx := newFixture(t, nil, nil)
	c := fx.broker(t)
	nameAndYear := sel("name", col("name"), "born", col("birth_date"), "district", col("district"))
	tests := []struct {
		name      string
		who       sluice.Principal
		masks     map[string]sluice.MaskRule
		wantName  func(string) bool
		wantBorn  func(string) bool
		bornArrow arrow.Type
	}{
		{
			name: "outsider without masks from the broker", who: outsider,
			wantName: surnameMasked, wantBorn: isYear, bornArrow: arrow.INT64,
		},
		{
			name: "outsider with a looser mask from the broker", who: outsider,
			masks:    map[string]sluice.MaskRule{"NAME": sluice.MaskPhone},
			wantName: surnameMasked, wantBorn: isYear, bornArrow: arrow.INT64,
		},
		{
			name: "outsider with a stricter redact from the broker", who: outsider,
			masks:    map[string]sluice.MaskRule{"name": sluice.MaskRedact},
			wantName: func(s string) bool { return s == "***" }, wantBorn: isYear, bornArrow: arrow.INT64,
		},
		{
			name: "owner sees plain values", who: owner,
			wantName: func(s string) bool { return !strings.Contains(s, "*") && len([]rune(s)) >= 2 },
			wantBorn: func(s string) bool { return len(s) == 10 && s[4] == '-' }, bornArrow: adapters.ArrowType(sluice.TypeDate).ID(),
		},
		{
			name: "owner gets the masks the broker asked for", who: owner,
			masks:    map[string]sluice.MaskRule{"name": sluice.MaskSurname},
			wantName: surnameMasked,
			wantBorn: func(s string) bool { return len(s) == 10 }, bornArrow: adapters.ArrowType(sluice.TypeDate).ID(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := frag("residents", tt.who, nameAndYear)
			f.Masks = tt.masks
			res, err := fetchAll(context.Background(), c, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.rows) != 30 {
				t.Fatalf("got %d rows, want 30", len(res.rows))
			}
			if got := res.schema.Field(1).Type.ID(); got != tt.bornArrow {
				t.Errorf("born is %s, want %s", got, tt.bornArrow)
			}
			for _, r := range res.rows {
				if !tt.wantName(r[0]) || !tt.wantBorn(r[1]) {
					t.Fatalf("row %v not as expected", r)
				}
			}
		})
	}
}

func surnameMasked(s string) bool {
	r := []rune(s)
	return len(r) == 3 && slices.Contains(surnames, string(r[0])) && string(r[1:]) == "**"
}

func isYear(s string) bool { return len(s) == 4 && s >= "1950" && s <= "1999" }

func TestFetchMasksOnlyAtTheAgentNotTheCaller(t *testing.T) {
	// Execute must not write the agent's obligations back into the caller's
	// fragment: the broker may reuse it.
	fx := newFixture(t, nil, nil)
	f := frag("residents", outsider, sel("name", col("name")))
	if _, err := fx.srv.Execute(context.Background(), f, func(arrow.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(f.Masks) != 0 || f.MinGroupSize != 0 {
		t.Errorf("caller's fragment changed: masks %v, k %d", f.Masks, f.MinGroupSize)
	}
}

func TestDenials(t *testing.T) {
	fx := newFixture(t, nil, nil)
	c := fx.broker(t)
	tests := []struct {
		name     string
		f        *planner.Fragment
		contains []string
	}{
		{"join key output", frag("residents", outsider, sel("id", col("id_card"))), []string{"join key", "private join"}},
		{"join key in WHERE", func() *planner.Fragment {
			f := frag("residents", outsider, sel("d", col("district")))
			f.Where = bin("=", col("id_card"), str("110101199000000001"))
			return f
		}(), []string{"id_card"}},
		{"join key inside COUNT DISTINCT", frag("residents", outsider, sel("n", &planner.Expr{
			Kind: planner.KindAggregate, Func: "count", Distinct: true, Args: []*planner.Expr{col("id_card")},
		})), []string{"id_card"}},
		{"hidden column", frag("residents", outsider, sel("s", col("secret"))), []string{"secret", "hidden"}},
		{"hidden column in ORDER BY", func() *planner.Fragment {
			f := frag("residents", outsider, sel("d", col("district")))
			f.OrderBy = []planner.OrderItem{{Expr: col("secret")}}
			return f
		}(), []string{"secret"}},
		{"share class none", frag("records", outsider, sel("o", col("offense"))), []string{"not shared", noneBasis}},
		{"aggregate column as rows", frag("residents", outsider, sel("a", col("allowance"))), []string{"allowance", "SELECT"}},
		{"aggregate column in arithmetic outside aggregate", frag("residents", outsider,
			sel("a", bin("+", col("allowance"), num(1)))), []string{"allowance"}},
		{"aggregate column as group key", func() *planner.Fragment {
			f := frag("residents", outsider, sel("a", col("allowance"), "n", agg("count", nil)))
			f.GroupBy = []*planner.Expr{col("allowance")}
			return f
		}(), []string{"allowance"}},
		{"aggregate column in WHERE of a row query", func() *planner.Fragment {
			f := frag("residents", outsider, sel("d", col("district")))
			f.Where = bin(">", col("allowance"), num(1000))
			return f
		}(), []string{"allowance", "aggregate-only"}},
		{"aggregate column in ORDER BY of a row query", func() *planner.Fragment {
			f := frag("residents", outsider, sel("d", col("district")))
			f.OrderBy = []planner.OrderItem{{Expr: col("allowance")}}
			return f
		}(), []string{"allowance", "ORDER BY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fetchAll(context.Background(), c, tt.f)
			wantCode(t, err, sluice.EDenied, tt.contains...)
			var e *sluice.Error
			errors.As(err, &e)
			if len(e.Reasons) == 0 {
				t.Errorf("denial carries no reasons")
			}
			st, _ := status.FromError(errors.Unwrap(err))
			if st.Code() != codes.PermissionDenied {
				t.Errorf("gRPC code %s, want PermissionDenied", st.Code())
			}
			// The same fragment from the owner is allowed (or at least not
			// denied): the rules are for other departments.
			owned := *tt.f
			owned.Requester = owner
			if _, err := fetchAll(context.Background(), c, &owned); sluice.ErrorCode(err) == sluice.EDenied {
				t.Errorf("owner denied: %v", err)
			}
		})
	}
}

func TestMinGroupSizeEnforced(t *testing.T) {
	fx := newFixture(t, nil, nil)
	c := fx.broker(t)
	grouped := func(who sluice.Principal, k int, withAggCol bool) *planner.Fragment {
		items := sel("district", col("district"), "n", agg("count", nil))
		if withAggCol {
			items = append(items, planner.SelectItem{Alias: "total", Expr: agg("sum", col("allowance"))})
		}
		f := frag("residents", who, items)
		f.GroupBy = []*planner.Expr{col("district")}
		f.OrderBy = []planner.OrderItem{{Expr: col("district")}}
		f.MinGroupSize = k
		return f
	}
	withWhere := grouped(outsider, 0, false)
	withWhere.Where = bin(">", col("allowance"), num(0))
	tests := []struct {
		name string
		f    *planner.Fragment
		want []string // districts
	}{
		{"outsider using an aggregate column gets k=10", grouped(outsider, 0, true), []string{"A", "C"}},
		{"aggregate column in WHERE of a grouped query gets k=10", withWhere, []string{"A", "C"}},
		{"outsider without aggregate columns keeps the broker's k", grouped(outsider, 0, false), []string{"A", "B", "C"}},
		{"a stricter k from the broker is kept", grouped(outsider, 13, true), []string{"C"}},
		{"a looser k from the broker is raised", grouped(outsider, 2, true), []string{"A", "C"}},
		{"owner sees every group", grouped(owner, 0, true), []string{"A", "B", "C"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fetchAll(context.Background(), c, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res.rows {
				got = append(got, r[0])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("districts %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMinGroupSizeFloorOption(t *testing.T) {
	fx := newFixture(t, []Option{WithMinGroupSize(13)}, nil)
	f := frag("residents", outsider, sel("district", col("district"), "total", agg("sum", col("allowance"))))
	f.GroupBy = []*planner.Expr{col("district")}
	res, err := fetchAll(context.Background(), fx.broker(t), f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 1 || res.rows[0][0] != "C" {
		t.Errorf("rows %v, want only district C", res.rows)
	}
}

func TestBadRequests(t *testing.T) {
	fx := newFixture(t, nil, nil)
	c := fx.broker(t)
	good, _ := json.Marshal(frag("residents", owner, sel("d", col("district"))))
	tests := []struct {
		name   string
		ticket []byte
		code   codes.Code
	}{
		{"not JSON", []byte("SELECT * FROM residents"), codes.InvalidArgument},
		{"empty", nil, codes.InvalidArgument},
		{"unknown field", []byte(`{"dataset":"civil.residents","select":[],"drop_masks":true}`), codes.InvalidArgument},
		{"trailing data", append(append([]byte{}, good...), []byte(`{}`)...), codes.InvalidArgument},
		{"too big", []byte(`{"query_id":"` + strings.Repeat("x", maxTicketBytes) + `"}`), codes.InvalidArgument},
		{"no select", []byte(`{"dataset":"civil.residents","select":[]}`), codes.InvalidArgument},
		{"unknown column", mustJSON(frag("residents", owner, sel("x", col("nope")))), codes.InvalidArgument},
		{"unknown dataset", mustJSON(frag("nope", owner, sel("d", col("district")))), codes.NotFound},
		{"another department's dataset", mustJSON(&planner.Fragment{Dataset: "health.insured", Select: sel("d", col("district"))}), codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := c.fc.DoGet(context.Background(), &flight.Ticket{Ticket: tt.ticket})
			if err == nil {
				_, err = st.Recv()
			}
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code %s (%v), want %s", got, err, tt.code)
			}
		})
	}
	// Through the client, the codes come back as sluice codes.
	_, err := fetchAll(context.Background(), c, frag("nope", owner, sel("d", col("district"))))
	wantCode(t, err, sluice.ENotFound, "nope")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestZeroRowsStillHaveASchema(t *testing.T) {
	fx := newFixture(t, nil, nil)
	f := frag("residents", outsider, sel("name", col("name"), "district", col("district")))
	f.Where = bin("=", col("district"), str("nowhere"))
	res, err := fetchAll(context.Background(), fx.broker(t), f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 0 {
		t.Fatalf("got %d rows", len(res.rows))
	}
	if res.schema == nil || res.schema.NumFields() != 2 || res.schema.Field(0).Name != "name" {
		t.Fatalf("schema %v", res.schema)
	}
}

func TestAuthentication(t *testing.T) {
	fx := newFixture(t, nil, nil)
	tests := []struct {
		name string
		c    *Client
	}{
		{"no client certificate", fx.dial(t, fx.serverPin, emptyCert)},
		{"unpinned client certificate", fx.dial(t, fx.serverPin, fx.otherCert)},
		{"wrong server pin", fx.dial(t, "sha256:"+strings.Repeat("ab", 32), fx.brokerCert)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := fetchAll(ctx, tt.c, frag("residents", owner, sel("name", col("name"))))
			if err == nil || (res != nil && len(res.rows) > 0) {
				t.Fatalf("got data (%v) or no error (%v)", res, err)
			}
			t.Logf("refused with: %v", err)
			if code := sluice.ErrorCode(err); code != sluice.EUnavailable && code != sluice.EUnauthenticated {
				t.Fatalf("code %s (%v), want unavailable or unauthenticated", code, err)
			}
			if err := tt.c.Ping(ctx); err == nil {
				t.Fatal("ping succeeded")
			}
		})
	}
	if err := fx.broker(t).Ping(context.Background()); err != nil {
		t.Fatalf("pinned broker cannot ping: %v", err)
	}
}

func TestSchemaAndActions(t *testing.T) {
	fx := newFixture(t, nil, nil)
	c := fx.broker(t)
	ctx := context.Background()
	sc, err := c.Schema(ctx, frag("residents", outsider, sel("name", col("name"), "born", col("birth_date"))))
	if err != nil {
		t.Fatal(err)
	}
	if sc.NumFields() != 2 || sc.Field(0).Type.ID() != arrow.STRING || sc.Field(1).Type.ID() != arrow.INT64 {
		t.Errorf("schema %v: want name string and born as an int64 year", sc)
	}
	_, err = c.Schema(ctx, frag("residents", outsider, sel("s", col("secret"))))
	wantCode(t, err, sluice.EDenied, "secret")

	cat, err := c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ds := range cat {
		names = append(names, ds.FullName())
		if ds.Source != "" || ds.Table != "" {
			t.Errorf("catalog leaks source %q / table %q", ds.Source, ds.Table)
		}
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"civil.big", "civil.records", "civil.residents"}) {
		t.Errorf("catalog %v", names)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.action(ctx, "drop_tables")
	wantCode(t, err, sluice.ENotSupported)
	_, err = c.fc.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("{}")})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("GetFlightInfo: %v, want Unimplemented", err)
	}
}

func TestCancelMidStreamStopsTheScan(t *testing.T) {
	done := make(chan error, 4)
	fx := newFixture(t, []Option{WithBatchRows(64)}, func(s *Server) {
		s.executeDone = func(err error) { done <- err }
	})
	c := fx.broker(t)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Fetch(ctx, frag("big", owner, sel("n", col("n"), "label", col("label"))))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Next() {
		t.Fatalf("no first record: %v", s.Err())
	}
	s.Release()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Execute ended with %v, want a cancellation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Execute still running 5s after the client went away")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after cancel, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func TestBigResultStreamsCompletely(t *testing.T) {
	fx := newFixture(t, []Option{WithBatchRows(1000)}, nil)
	s, err := fx.broker(t).Fetch(context.Background(), frag("big", outsider, sel("n", col("n"))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var rows, sum int64
	for s.Next() {
		rec := s.Record()
		rows += rec.NumRows()
		for _, v := range rec.Column(0).(interface{ Int64Values() []int64 }).Int64Values() {
			sum += v
		}
	}
	if s.Err() != nil || rows != bigRows || sum != int64(bigRows)*(bigRows+1)/2 {
		t.Fatalf("rows %d sum %d err %v", rows, sum, s.Err())
	}
}

func TestAgentKilledMidStream(t *testing.T) {
	midway := make(chan struct{})
	unblock := make(chan struct{})
	fx := newFixture(t, []Option{WithBatchRows(100), WithShutdownTimeout(50 * time.Millisecond)}, func(s *Server) {
		n := 0
		// Like a slow database call, the hook honours its context, which
		// the hard stop cancels.
		s.emitHook = func(ctx context.Context) {
			n++
			if n == 3 {
				close(midway)
				select {
				case <-unblock:
				case <-ctx.Done():
				}
			}
		}
	})
	defer close(unblock)
	s, err := fx.broker(t).Fetch(context.Background(), frag("big", owner, sel("n", col("n"))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	<-midway
	fx.shutdown(t) // graceful stop times out on the blocked stream, then hard stop
	var rows int64
	for s.Next() {
		rows += s.Record().NumRows()
	}
	if rows >= bigRows {
		t.Fatalf("read all %d rows from a killed agent", rows)
	}
	wantCode(t, s.Err(), sluice.EUnavailable, "department "+deptID)
}

func TestExecuteDirect(t *testing.T) {
	fx := newFixture(t, nil, nil)
	var rows int64
	n, err := fx.srv.Execute(context.Background(), frag("big", owner, sel("n", col("n"))), func(r arrow.Record) error {
		rows += r.NumRows()
		return nil
	})
	if err != nil || n != bigRows || rows != bigRows {
		t.Fatalf("n %d rows %d err %v", n, rows, err)
	}
	_, err = fx.srv.Execute(context.Background(), nil, nil)
	wantCode(t, err, sluice.EInvalid)
	_, err = fx.srv.Execute(context.Background(), frag("big", owner, sel("n", col("n"))), func(arrow.Record) error { return io.ErrClosedPipe })
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("emit error not returned: %v", err)
	}
}

func TestNewAndServeErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		mod  func(*sluice.Department)
		code string
		msg  string
	}{
		{"missing sqlite file", func(d *sluice.Department) { d.Sources[0].DSN = filepath.Join(dir, "missing.db") }, sluice.EUnavailable, "main"},
		{"undeclared source", func(d *sluice.Department) { d.Datasets[0].Source = "other" }, sluice.EInvalid, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := department(dir, filepath.Join(dir, "x.db"), []string{"sha256:00"})
			tt.mod(d)
			_, err := New(context.Background(), d)
			wantCode(t, err, tt.code, tt.msg)
		})
	}

	dbPath := filepath.Join(dir, "ok.db")
	makeDB(t, dbPath)
	d := department(dir, dbPath, nil)
	srv, err := New(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	lis := listen(t)
	err = srv.Serve(context.Background(), lis)
	wantCode(t, err, sluice.EInvalid, "broker_fingerprints")

	d.Agent.BrokerFingerprints = []string{"sha256:00"}
	err = srv.Serve(context.Background(), listen(t))
	wantCode(t, err, sluice.EInvalid, "agent.pem")
}

func TestErrorCodeMapping(t *testing.T) {
	for _, code := range []string{sluice.EInvalid, sluice.EUnauthenticated, sluice.EDenied, sluice.ENotFound,
		sluice.ENotSupported, sluice.EUnavailable, sluice.EResource, sluice.EInternal} {
		if got := sluiceCode(grpcCode(code)); got != code {
			t.Errorf("%s → %s → %s", code, grpcCode(code), got)
		}
	}
	c := &Client{dept: "health"}
	err := c.mapError(status.Error(codes.Unavailable, "connection refused"), nil)
	wantCode(t, err, sluice.EUnavailable, "the agent of department health is unavailable", "nothing partial was released")
	if strings.Contains(sluice.ErrorMessage(err), "connection refused") {
		t.Errorf("transport text reaches the analyst: %q", sluice.ErrorMessage(err))
	}
	err = c.mapError(status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), nil)
	wantCode(t, err, sluice.EUnavailable, "health")
}

func TestLogsCarryNoValues(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	fx := newFixture(t, []Option{WithLogger(logger)}, nil)
	c := fx.broker(t)
	f := frag("residents", owner, sel("name", col("name"), "id", col("id_card")))
	f.QueryID = "q-logged"
	f.Where = bin("=", col("district"), str("needle-literal"))
	if _, err := fetchAll(context.Background(), c, f); err != nil {
		t.Fatal(err)
	}
	denied := frag("residents", outsider, sel("id", col("id_card")))
	denied.QueryID = "q-denied"
	if _, err := fetchAll(context.Background(), c, denied); err == nil {
		t.Fatal("want denial")
	}
	fx.shutdown(t)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"q-logged", "q-denied", "civil.residents", "code=denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{"needle-literal", "110101", "张", "SELECT"} {
		if strings.Contains(out, leak) {
			t.Errorf("log contains %q:\n%s", leak, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
