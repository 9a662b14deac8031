package test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
)

// cutProxy forwards TCP between a broker and an agent and can drop every
// connection once a given number of bytes has gone from the agent to the
// broker. To the broker that is what an agent process killed mid-stream
// looks like: the sockets under a live call close with no final status.
// The shared demo agent behind the proxy keeps running, so the other tests
// of the package are unaffected, and new connections go through again (the
// agent "restarted").
type cutProxy struct {
	lis    net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	sent  atomic.Int64 // agent→broker bytes since the last arm
	cutAt atomic.Int64 // 0: never cut
	cuts  atomic.Int64 // how many times the proxy has cut
	delay atomic.Int64 // nanoseconds to wait before forwarding each agent→broker read (a slow agent)
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		lis.Close()
		p.closeAll()
	})
	return p
}

func (p *cutProxy) addr() string { return p.lis.Addr().String() }

// arm makes the proxy cut once n more bytes have gone to the broker;
// n = 0 only resets the count (to measure a clean run).
func (p *cutProxy) arm(n int64) {
	p.sent.Store(0)
	p.cutAt.Store(n)
}

func (p *cutProxy) accept() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		a, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[a] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(a, c); a.Close(); c.Close() }()
		go p.pump(c, a)
	}
}

// pump copies agent → broker, counting bytes and cutting when armed.
func (p *cutProxy) pump(toBroker, fromAgent net.Conn) {
	defer toBroker.Close()
	defer fromAgent.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := fromAgent.Read(buf)
		if d := p.delay.Load(); d > 0 && n > 0 {
			time.Sleep(time.Duration(d))
		}
		if n > 0 {
			if _, werr := toBroker.Write(buf[:n]); werr != nil {
				return
			}
			total := p.sent.Add(int64(n))
			if at := p.cutAt.Load(); at > 0 && total >= at && p.cutAt.CompareAndSwap(at, 0) {
				p.cuts.Add(1)
				p.closeAll()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *cutProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as from a killed process with unread data
		}
		c.Close()
		delete(p.conns, c)
	}
}

// proxiedBroker is a second broker over the shared demo world's catalog,
// users and grants, with its own store (so its audit log is its own) and
// with the agents of some departments reached through cut proxies.
type proxiedBroker struct {
	addr    string
	store   string
	proxies map[string]*cutProxy
}

func startProxiedBroker(t *testing.T, depts ...string) *proxiedBroker {
	t.Helper()
	dir := t.TempDir()
	cfg, err := broker.LoadConfig(world.BrokerConfig)
	if err != nil {
		t.Fatal(err)
	}
	pb := &proxiedBroker{proxies: map[string]*cutProxy{}}
	for i, path := range cfg.Departments {
		d, err := sluice.LoadDepartment(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range depts {
			if d.ID == want {
				p := newCutProxy(t, d.Agent.Address)
				pb.proxies[d.ID] = p
				d.Agent.Address = p.addr()
			}
		}
		cfg.Departments[i] = filepath.Join(dir, d.ID+".yaml")
		if err := demo.WriteDepartmentFile(cfg.Departments[i], d); err != nil {
			t.Fatal(err)
		}
	}
	if len(pb.proxies) != len(depts) {
		t.Fatalf("the demo world has no department among %v", depts)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Store = filepath.Join(dir, "broker.db")
	cfg.SigningKey = filepath.Join(dir, "keys", "audit.key")
	cfg.AdminListen = ""
	pb.store = cfg.Store
	ctx, cancel := context.WithCancel(context.Background())
	srv, closeFn, err := broker.Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	pb.addr = lis.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxied broker: %v", err)
		}
		if err := closeFn(); err != nil {
			t.Errorf("close proxied broker: %v", err)
		}
	})
	return pb
}

// run queries the proxied broker and reports how many rows arrived before
// the end and the error that ended them (rows.Err included).
func (pb *proxiedBroker) run(t *testing.T, user, purpose, stmt string) (int, error) {
	t.Helper()
	token, err := world.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{}
	q.Set("token", token)
	q.Set("tls", "skip-verify")
	q.Set("timeout", queryTimeout.String())
	q.Set(broker.PurposeHeader, purpose)
	db, err := sql.Open("flightsql", "flightsql://"+pb.addr+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// stream runs stmt with the plain Flight SQL client, which shows what
// arrives before the end: the rows relayed before the cut, then the status
// that ended the stream.
func (pb *proxiedBroker) stream(t *testing.T, user, purpose, stmt string) (int64, error) {
	t.Helper()
	token, err := world.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	cl, err := flightsql.NewClientCtx(ctx, pb.addr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token, broker.PurposeHeader, purpose)
	info, err := cl.Execute(ctx, stmt)
	if err != nil {
		return 0, err
	}
	rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		return 0, err
	}
	defer rd.Release()
	var n int64
	for rd.Next() {
		n += rd.Record().NumRows()
	}
	return n, rd.Err()
}

// TestAgentKilledMidQuery: an agent whose connection dies while its
// fragment is streaming ends the query with Unavailable naming the
// department, never with a short result that looks complete; the result
// entry in the audit log records the error, and the broker goes on serving.
// Both execution paths are covered: a single-dataset query relayed to the
// client as it streams, and a cross-department private join whose fragment
// streams into the sandbox.
func TestAgentKilledMidQuery(t *testing.T) {
	start := time.Now()
	pb := startProxiedBroker(t, "health", "civil")
	t.Logf("second broker with proxies started in %v", time.Since(start))

	cases := []struct {
		name, user, purpose, stmt string
		dept                      string // whose agent dies
		// rowsBeforeCut: the client must receive rows before the error
		// (single-dataset results stream through the broker; a sandbox
		// result is released only once every input has ended).
		rowsBeforeCut bool
	}{
		{
			name: "single dataset", user: "erin", purpose: "public-health-planning",
			stmt:          "SELECT id_card, insurance_type, annual_claims, hospital_visits FROM health.insured",
			dept:          "health",
			rowsBeforeCut: true,
		},
		{
			name: "cross-department private join", user: "alice", purpose: "subsidy-review",
			stmt: "SELECT r.district, COUNT(*) AS n, AVG(h.annual_claims) AS avg_claims FROM civil.residents r " +
				"JOIN health.insured h ON r.id_card = h.id_card WHERE r.low_income = 1 AND h.chronic_disease = 1 GROUP BY r.district",
			dept: "health",
		},
		{
			name: "cross-department, the other side dies", user: "alice", purpose: "subsidy-review",
			stmt: "SELECT r.district, COUNT(*) AS n, AVG(h.annual_claims) AS avg_claims FROM civil.residents r " +
				"JOIN health.insured h ON r.id_card = h.id_card WHERE r.low_income = 1 AND h.chronic_disease = 1 GROUP BY r.district",
			dept: "civil",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pb.proxies[tc.dept]
			// A clean run through the proxy measures how much the agent
			// sends, so the cut can land in the middle of it.
			p.arm(0)
			full, err := pb.run(t, tc.user, tc.purpose, tc.stmt)
			if err != nil || full == 0 {
				t.Fatalf("clean run: %d rows, %v", full, err)
			}
			total := p.sent.Load()
			if total < 64<<10 {
				t.Fatalf("the agent of %s sent only %d bytes; the query is too small to cut mid-stream", tc.dept, total)
			}
			// Three quarters in: past the agent's second batch (of about
			// four), because the broker holds one batch back until it
			// knows how the stream ends, and well before the last.
			cut := total * 3 / 4
			if !tc.rowsBeforeCut {
				// The sandbox releases nothing before every input has
				// ended: the database/sql driver sees the error at once.
				cuts := p.cuts.Load()
				p.arm(cut)
				got, err := pb.run(t, tc.user, tc.purpose, tc.stmt)
				if p.cuts.Load() != cuts+1 {
					t.Fatalf("the proxy did not cut (sent %d of %d bytes)", p.sent.Load(), total)
				}
				if err == nil {
					t.Fatalf("a query whose agent died mid-stream succeeded with %d of %d rows", got, full)
				}
				msg := err.Error()
				if !strings.Contains(msg, "Unavailable") || !strings.Contains(msg, "department "+tc.dept) {
					t.Fatalf("want Unavailable naming department %s, got %v", tc.dept, err)
				}
				if got >= full {
					t.Fatalf("all %d rows arrived although the stream was cut", got)
				}
				t.Logf("database/sql: %d of %d rows, then %v", got, full, err)
				assertResultError(t, pb.store, tc.user, tc.stmt, tc.dept)
			} else {
				// Rows are relayed while the agent streams, so the error
				// comes after some of them. On the wire the stream ends
				// with the error status, not a clean end that would pass
				// for complete. (arrow-go v18.9.0's database/sql driver
				// loses a status that arrives while Rows.Next waits for
				// the next batch and reports a clean, short end — an
				// upstream bug the README warns about — so the wire is
				// checked with the plain Flight SQL client.)
				cuts := p.cuts.Load()
				p.arm(cut)
				n, err := pb.stream(t, tc.user, tc.purpose, tc.stmt)
				if p.cuts.Load() != cuts+1 {
					t.Fatalf("the proxy did not cut (sent %d of %d bytes)", p.sent.Load(), total)
				}
				if err == nil || status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "department "+tc.dept) {
					t.Fatalf("Flight stream: want Unavailable naming department %s after %d rows, got %v", tc.dept, n, err)
				}
				if n == 0 || n >= int64(full) {
					t.Fatalf("Flight stream: %d of %d rows arrived; the cut did not land mid-stream", n, full)
				}
				t.Logf("Flight stream: %d of %d rows, then %v", n, full, err)
				assertResultError(t, pb.store, tc.user, tc.stmt, tc.dept)
			}

			// The broker keeps serving: another department at once, and
			// the same department once its agent is reachable again.
			if n, err := pb.run(t, "bob", "enterprise-credit", "SELECT COUNT(*) AS n FROM market.enterprises"); err != nil || n != 1 {
				t.Fatalf("the broker must keep serving other departments: %d rows, %v", n, err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				n, err := pb.run(t, tc.user, tc.purpose, tc.stmt)
				if err == nil && n == full {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the broker did not recover the agent of %s: %d rows, %v", tc.dept, n, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// assertResultError checks that the newest result entry for stmt records
// an error naming the department, not an allowed (complete) result.
func assertResultError(t *testing.T, store, user, stmt, dept string) {
	t.Helper()
	l, err := audit.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	es, err := l.Search(context.Background(), audit.Filter{Principal: user, Kind: audit.KindResult, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var last *audit.Entry
	for i := range es {
		if es[i].SQL == stmt && (last == nil || es[i].Seq > last.Seq) {
			last = &es[i]
		}
	}
	if last == nil {
		t.Fatalf("no result entry for %q", stmt)
	}
	if last.Decision != audit.DecisionError || !strings.Contains(last.Error, "department "+dept) {
		t.Fatalf("the result entry must record the error naming department %s; got decision %q error %q", dept, last.Decision, last.Error)
	}
}
