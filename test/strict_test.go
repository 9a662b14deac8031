package test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
)

// TestDuplicateHeadersRefused: two authorization headers, or two declared
// purposes, are refused with a message saying what to send — on the
// Flight SQL service for statements and metadata calls alike, and on the
// admin API — and the refusal is on the audit record. The first header
// never silently wins, even when it alone would be valid.
func TestDuplicateHeadersRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := flightsql.NewClientCtx(ctx, world.BrokerAddr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	bob, alice := tokenFor(t, "bob"), tokenFor(t, "alice")
	const stmt = "SELECT COUNT(*) AS n FROM market.enterprises"
	l := openAudit(t)
	defer l.Close()

	cases := []struct {
		name  string
		md    []string
		code  codes.Code
		want  []string
		audit string // the principal the refusal is recorded under
	}{
		{"two tokens of different users", []string{"authorization", "Bearer " + bob, "authorization", "Bearer " + alice, broker.PurposeHeader, "enterprise-credit"},
			codes.Unauthenticated, []string{"2 authorization headers", "exactly one 'authorization: Bearer <token>'"}, "(unauthenticated)"},
		{"a valid token, then an invalid one", []string{"authorization", "Bearer " + bob, "authorization", "Bearer not-a-token", broker.PurposeHeader, "enterprise-credit"},
			codes.Unauthenticated, []string{"2 authorization headers"}, "(unauthenticated)"},
		{"two purposes", []string{"authorization", "Bearer " + bob, broker.PurposeHeader, "enterprise-credit", broker.PurposeHeader, "subsidy-review"},
			codes.InvalidArgument, []string{"declares 2 purposes", "exactly one 'x-sluice-purpose: <purpose>'"}, "bob"},
		{"the same purpose twice", []string{"authorization", "Bearer " + bob, broker.PurposeHeader, "enterprise-credit", broker.PurposeHeader, "enterprise-credit"},
			codes.InvalidArgument, []string{"declares 2 purposes"}, "bob"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := auditHead(t, l)
			cctx := metadata.AppendToOutgoingContext(ctx, tc.md...)
			_, err := cl.Execute(cctx, stmt)
			if status.Code(err) != tc.code {
				t.Fatalf("statement: %v, want %s", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("statement: %q does not say %q", status.Convert(err).Message(), w)
				}
			}
			// A metadata call is refused the same way.
			if _, err := cl.GetCatalogs(cctx); status.Code(err) != tc.code {
				t.Fatalf("GetCatalogs: %v, want %s", err, tc.code)
			}
			es, err := l.Search(context.Background(), audit.Filter{Kind: audit.KindAuth, Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, e := range es {
				if e.Seq > after && e.Principal == tc.audit && e.Decision == audit.DecisionDeny && strings.Contains(e.Error, tc.want[0]) {
					found++
				}
			}
			if found != 2 {
				t.Fatalf("%d refusals recorded under %s, want 2 (statement and metadata call)", found, tc.audit)
			}
		})
	}
	// One of each still works.
	if _, err := cl.Execute(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bob, broker.PurposeHeader, "enterprise-credit"), stmt); err != nil {
		t.Fatalf("one header each: %v", err)
	}

	// The admin API, over its real listener.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest("GET", "https://"+world.AdminAddr+"/v1/whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", "Bearer "+tokenFor(t, "carol"))
	req.Header.Add("Authorization", "Bearer "+tokenFor(t, "dave"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(raw), "2 Authorization headers") || !strings.Contains(string(raw), "exactly one") {
		t.Fatalf("admin API with two Authorization headers: %d %s", resp.StatusCode, raw)
	}
}

// TestClientDeadlineRecordedAsSuch: a client whose deadline passes while a
// slow cross-department query runs is recorded as the client's deadline
// (reason client_deadline), not as "the agent of department … is
// unavailable"; the broker still accounts for what it received.
func TestClientDeadlineRecordedAsSuch(t *testing.T) {
	pb := startProxiedBroker(t, "health")
	const stmt = "SELECT r.district, COUNT(*) AS n, AVG(h.annual_claims) AS avg_claims FROM civil.residents r " +
		"JOIN health.insured h ON r.id_card = h.id_card WHERE r.low_income = 1 AND h.chronic_disease = 1 GROUP BY r.district"
	// The health agent answers slowly: 300 ms per read, far past the
	// client's deadline.
	pb.proxies["health"].delay.Store(int64(300 * time.Millisecond))
	token, err := world.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl, err := flightsql.NewClientCtx(context.Background(), pb.addr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token, broker.PurposeHeader, "subsidy-review")
	start := time.Now()
	err = func() error {
		info, err := cl.Execute(cctx, stmt)
		if err != nil {
			return err
		}
		rd, err := cl.DoGet(cctx, info.Endpoint[0].Ticket)
		if err != nil {
			return err
		}
		defer rd.Release()
		for rd.Next() {
		}
		return rd.Err()
	}()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("after %v: %v, want the client's DeadlineExceeded", time.Since(start), err)
	}
	// The broker records the result once it notices; wait for it.
	var last *audit.Entry
	for deadline := time.Now().Add(30 * time.Second); last == nil; time.Sleep(100 * time.Millisecond) {
		l, err := audit.Open(context.Background(), pb.store)
		if err != nil {
			t.Fatal(err)
		}
		es, err := l.Search(context.Background(), audit.Filter{Principal: "alice", Kind: audit.KindResult, Limit: 50})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			if es[i].SQL == stmt {
				last = &es[i]
			}
		}
		if last == nil && time.Now().After(deadline) {
			t.Fatal("no result entry for the query whose client gave up")
		}
	}
	if last.Decision != audit.DecisionError || !strings.Contains(last.Error, "client's deadline") ||
		strings.Contains(last.Error, "unavailable") || !contains(last.Reasons, broker.ReasonClientDeadline) {
		t.Fatalf("the result entry says decision %q error %q reasons %v; want the client's deadline (%s), not an agent failure",
			last.Decision, last.Error, last.Reasons, broker.ReasonClientDeadline)
	}
}
