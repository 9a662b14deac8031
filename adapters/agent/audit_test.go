package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/crypto/auditchain"
	"github.com/sluice-gov/sluice/crypto/digest"
	"github.com/sluice-gov/sluice/planner"
)

// openLog opens an audit log in a temp dir, closed at the end of the test
// (after the agent, whose cleanup is registered later and runs first).
func openLog(t *testing.T) *auditlog.Log {
	t.Helper()
	l, err := auditlog.Open(context.Background(), filepath.Join(t.TempDir(), "agent-audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// received is what a client got from a fetch, digested as the broker does.
type received struct {
	rows   int64
	digest *digest.Stream
	err    error
}

func fetchDigest(ctx context.Context, c *Client, f *planner.Fragment) (*received, error) {
	s, err := c.Fetch(ctx, f)
	if err != nil {
		return nil, err
	}
	defer s.Release()
	out := &received{digest: digest.NewStream(s.Schema())}
	for s.Next() {
		out.digest.Add(s.Record())
		out.rows += s.Record().NumRows()
	}
	out.err = s.Err()
	return out, nil
}

func lastEntry(t *testing.T, l *auditlog.Log) auditchain.Entry {
	t.Helper()
	es, err := l.Entries(context.Background(), l.Head().Seq-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("audit log has %d entries, want at least 1", len(es))
	}
	return es[0]
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestAuditLogRecordsWhatWasSent(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l), WithBatchRows(7)}, nil)
	c := fx.broker(t)
	withLiteral := frag("residents", outsider, sel("name", col("name"), "district", col("district")))
	withLiteral.Where = bin("=", col("district"), str("needle-A"))
	empty := frag("residents", outsider, sel("district", col("district")))
	empty.Where = bin("=", col("district"), str("nowhere"))
	grouped := frag("residents", outsider, sel("district", col("district"), "total", agg("sum", col("allowance"))))
	grouped.GroupBy = []*planner.Expr{col("district")}
	tests := []struct {
		name     string
		f        *planner.Fragment
		wantRows int64
		noInPlan []string // bind values must not be in the recorded SQL
	}{
		{"several batches, masked", frag("residents", outsider, sel("name", col("name"), "born", col("birth_date"))), 30, nil},
		{"bind values stay out of the plan", withLiteral, 0, []string{"needle-A"}},
		{"zero rows", empty, 0, []string{"nowhere"}},
		{"aggregate with the agent's k", grouped, 2, nil},
		{"owner, one batch", frag("residents", owner, sel("district", col("district"))), 30, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.QueryID = fmt.Sprintf("q-audit-%d", i)
			got, err := fetchDigest(context.Background(), c, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got.err != nil {
				t.Fatal(got.err)
			}
			if tt.wantRows > 0 && got.rows != tt.wantRows {
				t.Fatalf("received %d rows, want %d", got.rows, tt.wantRows)
			}
			e := lastEntry(t, l)
			if e.Kind != auditchain.KindFragment || e.Decision != auditchain.DecisionAllow || e.QueryID != tt.f.QueryID {
				t.Fatalf("entry kind %q decision %q query %q", e.Kind, e.Decision, e.QueryID)
			}
			who := tt.f.Requester
			if e.Principal != who.Name || e.Role != string(who.Role) || e.Department != who.Department || e.Purpose != "testing" {
				t.Errorf("entry names %s/%s/%s/%s, want %+v purpose testing", e.Principal, e.Role, e.Department, e.Purpose, who)
			}
			if !slices.Equal(e.Datasets, []string{"civil.residents"}) {
				t.Errorf("datasets %v", e.Datasets)
			}
			if !strings.Contains(strings.ToUpper(e.Plan), "SELECT") || e.PlanHash != sha(e.Plan) {
				t.Errorf("plan %q hash %q", e.Plan, e.PlanHash)
			}
			for _, v := range tt.noInPlan {
				if strings.Contains(e.Plan, v) {
					t.Errorf("plan carries the bind value %q: %s", v, e.Plan)
				}
			}
			// What the agent recorded is what the client received, digested
			// independently on each side.
			want := auditchain.FragmentRecord{
				Department: deptID, Dataset: "civil.residents", SQLHash: e.PlanHash,
				Rows: got.rows, Bytes: got.digest.Bytes(), Digest: got.digest.Sum(),
			}
			if len(e.Fragments) != 1 || e.Fragments[0] != want {
				t.Fatalf("fragments %+v, want [%+v]", e.Fragments, want)
			}
			if e.Rows != got.rows || e.Bytes != got.digest.Bytes() || e.Error != "" || e.Phase != "" {
				t.Errorf("entry rows %d bytes %d error %q phase %q; received %d rows, %d bytes", e.Rows, e.Bytes, e.Error, e.Phase, got.rows, got.digest.Bytes())
			}
			// The write-ahead entry just before it: the same fragment,
			// recorded before anything was sent.
			ahead, err := l.Entries(context.Background(), e.Seq-2, 1)
			if err != nil || len(ahead) != 1 {
				t.Fatal(ahead, err)
			}
			a := ahead[0]
			if a.Phase != auditchain.PhaseBegin || a.QueryID != tt.f.QueryID || a.Principal != who.Name || a.PlanHash != e.PlanHash ||
				!slices.Equal(a.Datasets, e.Datasets) || a.Rows != 0 || len(a.Fragments) != 0 || !a.Time.Before(e.Time) {
				t.Fatalf("write-ahead entry %+v for outcome %+v", a, e)
			}
		})
	}
	rep, err := l.Verify(context.Background())
	if err != nil || !rep.OK || rep.Entries != 2*int64(len(tests)) {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestAuditLogRecordsRefusals(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l)}, nil)
	c := fx.broker(t)
	tests := []struct {
		name     string
		f        *planner.Fragment
		code     string
		decision string
		contains string
	}{
		{"hidden column", frag("residents", outsider, sel("s", col("secret"))), sluice.EDenied, auditchain.DecisionDeny, "hidden"},
		{"join key", frag("residents", outsider, sel("id", col("id_card"))), sluice.EDenied, auditchain.DecisionDeny, "join key"},
		{"share class none", frag("records", outsider, sel("o", col("offense"))), sluice.EDenied, auditchain.DecisionDeny, noneBasis},
		{"unknown dataset", frag("nope", outsider, sel("d", col("district"))), sluice.ENotFound, auditchain.DecisionError, "nope"},
		{"unknown column", frag("residents", outsider, sel("x", col("nope"))), sluice.EInvalid, auditchain.DecisionError, "nope"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.QueryID = fmt.Sprintf("q-refused-%d", i)
			_, err := fetchAll(context.Background(), c, tt.f)
			wantCode(t, err, tt.code)
			e := lastEntry(t, l)
			if e.QueryID != tt.f.QueryID || e.Kind != auditchain.KindFragment || e.Decision != tt.decision {
				t.Fatalf("entry query %q kind %q decision %q, want %s %s", e.QueryID, e.Kind, e.Decision, tt.f.QueryID, tt.decision)
			}
			if !strings.Contains(e.Error, tt.contains) || e.Rows != 0 || len(e.Fragments) != 0 || e.Plan != "" {
				t.Errorf("entry error %q rows %d fragments %v plan %q", e.Error, e.Rows, e.Fragments, e.Plan)
			}
			if e.Principal != outsider.Name || !slices.Equal(e.Datasets, []string{tt.f.Dataset}) {
				t.Errorf("entry principal %q datasets %v", e.Principal, e.Datasets)
			}
			if tt.decision == auditchain.DecisionDeny && len(e.Reasons) == 0 {
				t.Errorf("denial recorded without its reasons")
			}
		})
	}
}

// TestAuditLogUnavailableBeforeTheFragment: a log that is down when a
// fragment arrives refuses it before anything is sent: the write-ahead
// entry cannot be written.
func TestAuditLogUnavailableBeforeTheFragment(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l), WithBatchRows(1000)}, nil)
	c := fx.broker(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*planner.Fragment{frag("big", outsider, sel("n", col("n"))), frag("residents", outsider, sel("district", col("district")))} {
		got, err := fetchDigest(context.Background(), c, f)
		if err == nil {
			err = got.err
		}
		wantCode(t, err, sluice.EUnavailable, "audit log is unavailable", "refused the fragment", "department "+deptID)
		if got != nil && got.rows != 0 {
			t.Fatalf("%s: %d rows left although the agent could not record the fragment first", f.Dataset, got.rows)
		}
	}
}

// TestAuditLogUnavailableWithholdsTheEnd: a log that fails while a
// fragment streams (after its write-ahead entry) withholds the last batch.
func TestAuditLogUnavailableWithholdsTheEnd(t *testing.T) {
	tests := []struct {
		name      string
		f         *planner.Fragment
		batchRows int
		fullRows  int64
		someRows  bool // batches before the last one still arrive
	}{
		{"several batches", frag("big", outsider, sel("n", col("n"))), 1000, bigRows, true},
		{"one batch", frag("residents", outsider, sel("district", col("district"))), 4096, 30, false},
		{"no rows", func() *planner.Fragment {
			f := frag("residents", outsider, sel("district", col("district")))
			f.Where = bin("=", col("district"), str("nowhere"))
			return f
		}(), 4096, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t)
			var once sync.Once
			fx := newFixture(t, []Option{WithAuditLog(l), WithBatchRows(tt.batchRows)}, nil)
			// The log fails underneath the agent once the fragment is under
			// way (its write-ahead entry written): at the first batch sent,
			// or, when nothing is sent before the end, at the end.
			fx.srv.emitHook = func(context.Context) { once.Do(func() { l.Close() }) }
			fx.srv.beforeFinish = func() { once.Do(func() { l.Close() }) }
			c := fx.broker(t)
			got, err := fetchDigest(context.Background(), c, tt.f)
			if err == nil {
				err = got.err
			}
			wantCode(t, err, sluice.EUnavailable, "audit log is unavailable", "department "+deptID)
			if st, _ := status.FromError(errUnwrapStatus(err)); st.Code() != codes.Unavailable {
				t.Errorf("gRPC code %s, want Unavailable", st.Code())
			}
			var rows int64
			if got != nil {
				rows = got.rows
			}
			if tt.fullRows > 0 && rows >= tt.fullRows {
				t.Fatalf("received all %d rows although the agent could not record them", rows)
			}
			if tt.someRows && rows != tt.fullRows-int64(tt.batchRows) {
				t.Errorf("received %d rows, want all but the held-back last batch (%d)", rows, tt.fullRows-int64(tt.batchRows))
			}
		})
	}
}

// errUnwrapStatus finds the gRPC status error under a *sluice.Error.
func errUnwrapStatus(err error) error {
	for err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return nil
		}
		err = u.Unwrap()
	}
	return nil
}

func TestAuditEntriesPaging(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l)}, nil)
	c := fx.broker(t)
	ctx := context.Background()
	const n = 5
	for i := 1; i <= n; i++ {
		f := frag("residents", outsider, sel("district", col("district")))
		f.QueryID = fmt.Sprintf("q-%d", i)
		if i == 3 {
			f = frag("residents", outsider, sel("s", col("secret"))) // a denial is on the log too
			f.QueryID = "q-3"
		}
		_, _ = fetchAll(ctx, c, f)
	}
	seqs := func(es []auditchain.Entry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	tests := []struct {
		name  string
		since int64
		limit int
		want  []int64
	}{
		{"first page", 0, 2, []int64{1, 2}},
		{"middle page", 2, 2, []int64{3, 4}},
		{"last, short page", 8, 2, []int64{9}},
		{"default limit", 0, 0, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"past the end", 9, 10, nil},
		{"far past the end", 99, 10, nil},
	}
	// Each query served leaves its write-ahead entry and its outcome; the
	// denial (q-3) only its outcome: it was refused before anything could
	// leave.
	query := map[int64]string{1: "q-1", 2: "q-1", 3: "q-2", 4: "q-2", 5: "q-3", 6: "q-4", 7: "q-4", 8: "q-5", 9: "q-5"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := c.AuditEntries(ctx, tt.since, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(es), tt.want) {
				t.Fatalf("seqs %v, want %v", seqs(es), tt.want)
			}
			for _, e := range es {
				page, err := l.Entries(ctx, e.Seq-1, 1)
				if err != nil || len(page) != 1 {
					t.Fatal(page, err)
				}
				stored := page[0]
				if e.Hash != stored.Hash || e.ComputeHash() != stored.Hash || e.QueryID != query[e.Seq] {
					t.Errorf("entry %d differs from the stored one", e.Seq)
				}
			}
		})
	}
	all, err := c.AllAuditEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(all), []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}) || all[4].Decision != auditchain.DecisionDeny {
		t.Fatalf("all entries %v (entry 5 %q)", seqs(all), all[4].Decision)
	}

	bad := []struct {
		name  string
		since int64
		limit int
	}{
		{"negative since", -1, 10},
		{"negative limit", 0, -1},
		{"limit over the maximum", 0, MaxAuditPage + 1},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AuditEntries(ctx, tt.since, tt.limit)
			wantCode(t, err, sluice.EInvalid)
		})
	}
	raw := []struct {
		name string
		body string
		code codes.Code
	}{
		{"unknown field", `{"since_seq":0,"everything":true}`, codes.InvalidArgument},
		{"not JSON", `since=0`, codes.InvalidArgument},
		{"limit over the maximum", `{"limit":10001}`, codes.InvalidArgument},
		{"negative since", `{"since_seq":-3}`, codes.InvalidArgument},
	}
	for _, tt := range raw {
		t.Run("raw "+tt.name, func(t *testing.T) {
			st, err := c.fc.DoAction(ctx, &flight.Action{Type: actionAudit, Body: []byte(tt.body)})
			if err == nil {
				_, err = st.Recv()
			}
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code %s (%v), want %s", got, err, tt.code)
			}
		})
	}
	// Only the pinned broker may read the log.
	intruder := fx.dial(t, fx.serverPin, fx.otherCert)
	if _, err := intruder.AuditEntries(ctx, 0, 10); err == nil {
		t.Fatal("an unpinned client read the agent's audit log")
	}
}

func TestAuditEntriesWithoutALog(t *testing.T) {
	fx := newFixture(t, nil, nil)
	_, err := fx.broker(t).AuditEntries(context.Background(), 0, 10)
	wantCode(t, err, sluice.ENotSupported, "audit_log")
}

func TestNewOpensTheConfiguredAuditLog(t *testing.T) {
	dir, db := t.TempDir(), sharedDB(t)
	logPath := filepath.Join(dir, "civil-agent-audit.db")
	fx := startAgent(t, dir, func(pins []string) *sluice.Department {
		d := department(dir, db, pins)
		d.Agent.AuditLog = logPath
		return d
	}, nil, nil)
	l := fx.srv.AuditLog()
	if l == nil {
		t.Fatal("the agent did not open agent.audit_log")
	}
	f := frag("residents", owner, sel("district", col("district")))
	if _, err := fetchAll(context.Background(), fx.broker(t), f); err != nil {
		t.Fatal(err)
	}
	es, err := fx.broker(t).AllAuditEntries(context.Background())
	if err != nil || len(es) != 2 || es[0].Phase != auditchain.PhaseBegin || es[1].Rows != 30 {
		t.Fatalf("entries %+v, %v", es, err)
	}
	fx.shutdown(t)
	if err := fx.srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Close closed the log it opened.
	if err := l.Append(context.Background(), &auditchain.Entry{Kind: auditchain.KindFragment, QueryID: "q", Decision: auditchain.DecisionAllow}); sluice.ErrorCode(err) != sluice.EUnavailable {
		t.Fatalf("append after Close: %v, want unavailable", err)
	}
	// The file verifies when opened again (broker/audit's tests check that
	// `sluice audit verify --store` reads an agent's file too).
	again, err := auditlog.Open(context.Background(), logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	rep, err := again.Verify(context.Background())
	if err != nil || !rep.OK || rep.Entries != 2 {
		t.Fatalf("verify %s: %+v %v", logPath, rep, err)
	}

	// A log that cannot be opened stops New.
	d := department(dir, db, []string{"sha256:00"})
	d.Agent.AuditLog = dir // a directory
	_, err = New(context.Background(), d)
	wantCode(t, err, sluice.EInvalid, "audit log")
}

func TestCloseLeavesAGivenLogOpen(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l)}, nil)
	fx.shutdown(t)
	if err := fx.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatalf("the caller's log was closed by the agent: %v", err)
	}
}

func TestExecuteIsAuditedWhenALogIsSet(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l), WithBatchRows(10)}, nil)
	f := frag("residents", owner, sel("district", col("district")))
	f.QueryID = "q-local"
	var d *digest.Stream
	n, err := fx.srv.Execute(context.Background(), f, func(rec arrow.Record) error {
		if d == nil {
			d = digest.NewStream(rec.Schema())
		}
		d.Add(rec)
		return nil
	})
	if err != nil || n != 30 || d.Rows() != 30 {
		t.Fatalf("n %d err %v", n, err)
	}
	e := lastEntry(t, l)
	if e.QueryID != "q-local" || e.Decision != auditchain.DecisionAllow || len(e.Fragments) != 1 || e.Fragments[0].Digest != d.Sum() {
		t.Fatalf("entry %+v", e)
	}
	// The log failing mid-stream ends Execute with EUnavailable and holds
	// back the last record.
	var rows int64
	n, err = fx.srv.Execute(context.Background(), f, func(rec arrow.Record) error {
		l.Close()
		rows += rec.NumRows()
		return nil
	})
	wantCode(t, err, sluice.EUnavailable, "audit log")
	if rows != 20 || n != 20 {
		t.Fatalf("emitted %d rows (returned %d), want the first 20 of 30", rows, n)
	}
	// A log that is down before Execute begins: nothing is emitted.
	rows = 0
	n, err = fx.srv.Execute(context.Background(), f, func(rec arrow.Record) error { rows += rec.NumRows(); return nil })
	wantCode(t, err, sluice.EUnavailable, "audit log")
	if rows != 0 || n != 0 {
		t.Fatalf("emitted %d rows (returned %d) with the log down, want none", rows, n)
	}
}

// TestReconcileWithARealAgent records on the broker side what a client
// received, as the broker does, and reconciles it with the agent's log read
// over Flight.
func TestReconcileWithARealAgent(t *testing.T) {
	l := openLog(t)
	fx := newFixture(t, []Option{WithAuditLog(l), WithBatchRows(5)}, nil)
	c := fx.broker(t)
	ctx := context.Background()
	var brokerLog []auditchain.Entry
	for i, f := range []*planner.Fragment{
		frag("residents", outsider, sel("name", col("name"))),
		frag("big", outsider, sel("n", col("n"), "label", col("label"))),
		frag("residents", outsider, sel("s", col("secret"))), // denied: nothing to reconcile
	} {
		f.QueryID = fmt.Sprintf("q-rec-%d", i)
		got, err := fetchDigest(ctx, c, f)
		if err == nil {
			err = got.err
		}
		if i == 2 {
			wantCode(t, err, sluice.EDenied)
			brokerLog = append(brokerLog, auditchain.Entry{Kind: auditchain.KindResult, QueryID: f.QueryID, Decision: auditchain.DecisionError})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		brokerLog = append(brokerLog, auditchain.Entry{Kind: auditchain.KindResult, QueryID: f.QueryID, Decision: auditchain.DecisionAllow,
			Fragments: []auditchain.FragmentRecord{{Department: deptID, Dataset: f.Dataset, Rows: got.rows, Bytes: got.digest.Bytes(), Digest: got.digest.Sum()}}})
	}
	agentLog, err := c.AllAuditEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := auditchain.Reconcile(brokerLog, map[string][]auditchain.Entry{deptID: agentLog}); len(d) != 0 {
		t.Fatalf("discrepancies: %+v", d)
	}
	// Drop one row on the broker side: the agent's record disagrees.
	brokerLog[0].Fragments[0].Rows--
	d := auditchain.Reconcile(brokerLog, map[string][]auditchain.Entry{deptID: agentLog})
	if len(d) != 1 || d[0].Kind != auditchain.DiscrepancyRows || d[0].QueryID != "q-rec-0" {
		t.Fatalf("discrepancies: %+v", d)
	}
}
