package test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
)

// tracedWorld is a broker and the agents of some departments of the shared
// demo world, started by the test with tracer providers of their own (so
// the shared world and the other tests are not traced): the broker's spans
// go to brokerSpans, every agent's to agentSpans, as if they were separate
// processes — an agent span can be a child of a broker span only through
// the trace context carried in gRPC metadata.
type tracedWorld struct {
	*proxiedBroker
	brokerSpans, agentSpans *tracetest.InMemoryExporter
}

func startTracedWorld(t *testing.T, depts ...string) *tracedWorld {
	t.Helper()
	dir := t.TempDir()
	tw := &tracedWorld{brokerSpans: tracetest.NewInMemoryExporter(), agentSpans: tracetest.NewInMemoryExporter()}
	agentTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tw.agentSpans))
	brokerTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tw.brokerSpans))
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan error
	t.Cleanup(func() {
		cancel()
		for _, d := range done {
			if err := <-d; err != nil {
				t.Errorf("traced world: %v", err)
			}
		}
		_ = agentTP.Shutdown(context.Background())
		_ = brokerTP.Shutdown(context.Background())
	})
	serve := func(f func() error) {
		d := make(chan error, 1)
		done = append(done, d)
		go func() { d <- f() }()
	}
	cfg, err := broker.LoadConfig(world.BrokerConfig)
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]bool{}
	for i, path := range cfg.Departments {
		d, err := sluice.LoadDepartment(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range depts {
			if d.ID != want {
				continue
			}
			// The test's agent keeps its own log, not the demo agent's.
			d.Agent.AuditLog = filepath.Join(dir, d.ID+"-agent-audit.db")
			srv, err := agent.New(ctx, d, agent.WithTracerProvider(agentTP))
			if err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				srv.Close()
				t.Fatal(err)
			}
			d.Agent.Address = lis.Addr().String()
			serve(func() error { defer srv.Close(); return srv.Serve(ctx, lis) })
			started[d.ID] = true
		}
		cfg.Departments[i] = filepath.Join(dir, d.ID+".yaml")
		if err := demo.WriteDepartmentFile(cfg.Departments[i], d); err != nil {
			t.Fatal(err)
		}
	}
	if len(started) != len(depts) {
		t.Fatalf("the demo world has no department among %v", depts)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Store = filepath.Join(dir, "broker.db")
	cfg.SigningKey = filepath.Join(dir, "keys", "audit.key")
	cfg.AdminListen = ""
	srv, closeFn, err := broker.Open(ctx, cfg, broker.WithTracerProvider(brokerTP))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeFn()
		t.Fatal(err)
	}
	serve(func() error {
		err := srv.Serve(ctx, lis)
		if cerr := closeFn(); err == nil {
			err = cerr
		}
		return err
	})
	tw.proxiedBroker = &proxiedBroker{addr: lis.Addr().String(), store: cfg.Store}
	return tw
}

// auditTrace finds the query and result entries of the last run of stmt by
// user in the traced broker's log.
func (tw *tracedWorld) auditTrace(t *testing.T, user, stmt string) (query, result audit.Entry) {
	t.Helper()
	l, err := audit.Open(context.Background(), tw.store)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	es, err := l.Search(context.Background(), audit.Filter{Principal: user, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.SQL != stmt {
			continue
		}
		switch e.Kind {
		case audit.KindResult:
			if e.Seq > result.Seq {
				result = e
			}
		}
	}
	if result.Seq == 0 {
		t.Fatalf("no result entry for %q", stmt)
	}
	for _, e := range es {
		if e.Kind == audit.KindQuery && e.QueryID == result.QueryID {
			query = e
		}
	}
	if query.Seq == 0 {
		t.Fatalf("no query entry for query %s", result.QueryID)
	}
	return query, result
}

// spansOf are the spans of one trace, waiting up to 10 s for ok to hold:
// a server ends its span when its handler returns, which may be after the
// client has its last row.
func spansOf(t *testing.T, exp *tracetest.InMemoryExporter, id trace.TraceID, ok func([]tracetest.SpanStub) bool) []tracetest.SpanStub {
	t.Helper()
	var out []tracetest.SpanStub
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out = out[:0]
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				out = append(out, s)
			}
		}
		if ok(out) || time.Now().After(deadline) {
			return out
		}
	}
}

func named(spans []tracetest.SpanStub, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func countNamed(spans []tracetest.SpanStub, want map[string]int) bool {
	for name, n := range want {
		if len(named(spans, name)) < n {
			return false
		}
	}
	return true
}

var traceIDHex = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestTraceAcrossBrokerAndAgents runs a cross-department private join and
// a single-department query through a traced broker and traced agents and
// checks that each query is one trace: the statement and the fetch on the
// broker, the agents' spans as children of the broker's calls to them
// (W3C trace context in gRPC metadata), and the trace id in the query's
// audit entries. No span carries SQL text or the purpose.
func TestTraceAcrossBrokerAndAgents(t *testing.T) {
	tw := startTracedWorld(t, "civil", "police", "health")
	const (
		joined = "SELECT COUNT(*) AS n FROM civil.residents r JOIN police.household h ON r.id_card = h.id_card"
		single = "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type"
	)
	if n, err := tw.run(t, "alice", "subsidy-review", joined); err != nil || n != 1 {
		t.Fatalf("private join: %d rows, %v", n, err)
	}
	if _, err := tw.run(t, "alice", "subsidy-review", single); err != nil {
		t.Fatalf("single-department query: %v", err)
	}

	// The audit entries name the trace.
	qe, re := tw.auditTrace(t, "alice", joined)
	if !traceIDHex.MatchString(qe.TraceID) || re.TraceID != qe.TraceID {
		t.Fatalf("audit entries of the join: query entry trace id %q, result entry %q; want the same 32 hex digits", qe.TraceID, re.TraceID)
	}
	// The log, traced entries and untraced ones (the policy revision, the
	// refusals of other calls) alike, still verifies.
	if l, err := audit.Open(context.Background(), tw.store); err != nil {
		t.Fatal(err)
	} else {
		rep, err := l.Verify(context.Background())
		l.Close()
		if err != nil || !rep.OK {
			t.Fatalf("the traced broker's audit log does not verify: %+v %v", rep, err)
		}
	}
	tid, err := trace.TraceIDFromHex(qe.TraceID)
	if err != nil {
		t.Fatal(err)
	}

	// The broker's side of the join.
	b := spansOf(t, tw.brokerSpans, tid, func(s []tracetest.SpanStub) bool {
		return countNamed(s, map[string]int{"sluice.statement": 1, "sluice.fetch": 1, "sluice.release": 1, "sluice.audit.append": 2})
	})
	one := func(spans []tracetest.SpanStub, name string) tracetest.SpanStub {
		t.Helper()
		got := named(spans, name)
		if len(got) != 1 {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("want one %s span in the trace, got %d (spans: %v)", name, len(got), names)
		}
		return got[0]
	}
	childOf := func(child, parent tracetest.SpanStub) {
		t.Helper()
		if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.Parent.TraceID() != parent.SpanContext.TraceID() {
			t.Errorf("%s (%s) is not a child of %s: parent %s, want %s", child.Name, attr(child, tracing.AttrDepartment), parent.Name, child.Parent.SpanID(), parent.SpanContext.SpanID())
		}
	}
	stmt := one(b, "sluice.statement")
	if stmt.Parent.IsValid() {
		t.Errorf("the statement span has a parent (%s); it is the root of the query's trace", stmt.Parent.SpanID())
	}
	if got := attr(stmt, tracing.AttrQueryID); got != qe.QueryID {
		t.Errorf("statement span query id %q, want %q", got, qe.QueryID)
	}
	childOf(one(b, "sluice.plan"), stmt)
	childOf(one(b, "sluice.policy.decide"), stmt)
	fetch := one(b, "sluice.fetch")
	childOf(fetch, stmt)
	childOf(one(b, "sluice.admission.wait"), fetch)
	psiSpan := one(b, "sluice.psi")
	childOf(psiSpan, fetch)
	childOf(one(b, "sluice.sandbox.query"), fetch)
	release := one(b, "sluice.release")
	childOf(release, fetch)
	var kinds []string
	for _, a := range named(b, "sluice.audit.append") {
		kinds = append(kinds, attr(a, tracing.AttrKind))
		switch attr(a, tracing.AttrKind) {
		case "query":
			childOf(a, stmt)
		case "result":
			childOf(a, release)
		}
	}
	if strings.Join(kinds, ",") != "query,result" {
		t.Errorf("audit appends in the trace: %v, want the query's then the result's", kinds)
	}
	// Both agents blind their keys and re-blind the other side's.
	calls := map[string]tracetest.SpanStub{} // name/department → the broker's call span
	for _, name := range []string{"sluice.psi.blind", "sluice.psi.reblind"} {
		got := named(b, name)
		if len(got) != 2 {
			t.Fatalf("want two %s spans (one per agent), got %d", name, len(got))
		}
		for _, c := range got {
			childOf(c, psiSpan)
			calls[name+"/"+attr(c, tracing.AttrDepartment)] = c
		}
	}

	// The agents' side: children of the broker's calls, through gRPC.
	a := spansOf(t, tw.agentSpans, tid, func(s []tracetest.SpanStub) bool {
		return countNamed(s, map[string]int{"sluice.agent.psi.blind": 2, "sluice.agent.psi.reblind": 2})
	})
	for _, pair := range [][2]string{{"sluice.agent.psi.blind", "sluice.psi.blind"}, {"sluice.agent.psi.reblind", "sluice.psi.reblind"}} {
		got := named(a, pair[0])
		if len(got) != 2 {
			t.Fatalf("want two %s spans on the agents, got %d", pair[0], len(got))
		}
		seen := map[string]bool{}
		for _, s := range got {
			dept := attr(s, tracing.AttrDepartment)
			seen[dept] = true
			call, ok := calls[pair[1]+"/"+dept]
			if !ok {
				t.Errorf("%s of department %q has no matching broker call", pair[0], dept)
				continue
			}
			if !s.Parent.IsRemote() {
				t.Errorf("%s of %s: the parent is not remote; the context must have come over gRPC", pair[0], dept)
			}
			childOf(s, call)
			if got := attr(s, tracing.AttrQueryID); got != qe.QueryID {
				t.Errorf("%s of %s: query id %q, want %q", pair[0], dept, got, qe.QueryID)
			}
		}
		if !seen["civil"] || !seen["police"] {
			t.Errorf("%s spans from departments %v, want civil and police", pair[0], seen)
		}
	}

	// The single-department query is a trace of its own, with the
	// agent's fragment under the broker's fetch from it.
	sq, sr := tw.auditTrace(t, "alice", single)
	if !traceIDHex.MatchString(sq.TraceID) || sr.TraceID != sq.TraceID || sq.TraceID == qe.TraceID {
		t.Fatalf("single query trace ids: query %q result %q (join %q); want one trace of its own", sq.TraceID, sr.TraceID, qe.TraceID)
	}
	sid, _ := trace.TraceIDFromHex(sq.TraceID)
	sb := spansOf(t, tw.brokerSpans, sid, func(s []tracetest.SpanStub) bool {
		return countNamed(s, map[string]int{"sluice.agent.fetch": 1, "sluice.fetch": 1})
	})
	call := one(sb, "sluice.agent.fetch")
	childOf(call, one(sb, "sluice.fetch"))
	sa := spansOf(t, tw.agentSpans, sid, func(s []tracetest.SpanStub) bool {
		return countNamed(s, map[string]int{"sluice.agent.fragment": 1})
	})
	frag := one(sa, "sluice.agent.fragment")
	childOf(frag, call)
	if attr(frag, tracing.AttrDepartment) != "health" || attr(frag, tracing.AttrDataset) != "health.insured" || attr(frag, tracing.AttrRequester) != "civil" {
		t.Errorf("agent fragment span attributes: %v", frag.Attributes)
	}

	// Nothing in any span quotes the statements or the purpose.
	for _, s := range append(tw.brokerSpans.GetSpans(), tw.agentSpans.GetSpans()...) {
		for _, kv := range s.Attributes {
			v := strings.ToLower(kv.Value.Emit())
			for _, bad := range []string{"select", "id_card", "subsidy-review", "alice"} {
				if strings.Contains(v, bad) {
					t.Errorf("span %s attribute %s=%q quotes %q", s.Name, kv.Key, v, bad)
				}
			}
		}
		if strings.Contains(strings.ToLower(s.Status.Description), "select") {
			t.Errorf("span %s status %q quotes the statement", s.Name, s.Status.Description)
		}
	}
}
