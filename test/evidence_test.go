package test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/crypto/digest"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
	"github.com/sluice-gov/sluice/planner"
)

// TestAuditorTracesARelease checks that for a released result the audit
// trail answers: who asked, under which purpose and grant, which policy
// revision allowed it, and exactly what left the department — the digest
// the broker recorded equals the digest of the rows the client received and
// the one the police agent recorded in its own log.
func TestAuditorTracesARelease(t *testing.T) {
	ctx, bob := flightClient(t, "bob")
	ctx = metadata.AppendToOutgoingContext(ctx, broker.PurposeHeader, "enterprise-credit")
	info, err := bob.Execute(ctx, "SELECT name, household_district, migrant FROM police.household WHERE household_district = '城西区' LIMIT 40")
	if err != nil {
		t.Fatal(err)
	}
	rd, err := bob.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	got := digest.NewStream(rd.Schema())
	for rd.Next() {
		got.Add(rd.Record())
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	rd.Release()

	log := openAudit(t)
	results, err := log.Search(context.Background(), audit.Filter{Kind: audit.KindResult, Principal: "bob", Limit: 1})
	if err != nil || len(results) != 1 {
		t.Fatalf("result entry: %v %v", results, err)
	}
	res := results[0]
	decisions, err := log.Search(context.Background(), audit.Filter{Kind: audit.KindQuery, QueryID: res.QueryID})
	if err != nil || len(decisions) != 1 {
		t.Fatalf("decision entry of %s: %v %v", res.QueryID, decisions, err)
	}
	dec := decisions[0]
	if dec.Principal != "bob" || dec.Department != "market" || dec.Purpose != "enterprise-credit" || dec.PolicyRevision == "" || dec.CatalogVersion == "" || dec.PlanHash == "" {
		t.Fatalf("the decision entry does not say who, why and under which policy: %+v", dec)
	}
	if grants, _ := dec.Obligations["grants"].([]any); len(grants) != 1 || grants[0] != "bob-police-household" {
		t.Fatalf("the decision entry does not name the grant: %+v", dec.Obligations)
	}
	if _, err := log.PolicyRevision(context.Background(), dec.PolicyRevision); err != nil {
		t.Fatalf("the policy revision %s is not kept: %v", dec.PolicyRevision, err)
	}
	if res.Rows != got.Rows() || res.ResultDigest != got.Sum() || len(res.Fragments) != 1 || res.Fragments[0].Digest != got.Sum() || res.Fragments[0].Department != "police" {
		t.Fatalf("the broker's record of what left differs from what the client received:\n record %+v\n client rows %d digest %s", res, got.Rows(), got.Sum())
	}
	police := policeAgent(t)
	entries, err := police.AllAuditEntries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found, ahead := false, false
	for _, e := range entries {
		if e.QueryID == res.QueryID && e.Phase == audit.PhaseBegin {
			// The write-ahead entry, before the first batch left: it holds
			// the broker's anchor (the decision entry), and the broker's
			// result holds the agent's (this entry).
			ahead = true
			if e.Peer == nil || e.Peer.Seq != dec.Seq || e.Peer.Hash != dec.Hash {
				t.Fatalf("the police agent's write-ahead entry holds broker anchor %+v, want the decision entry %d %s", e.Peer, dec.Seq, dec.Hash)
			}
			if p := res.Fragments[0].Peer; p == nil || p.Seq != e.Seq || p.Hash != e.Hash {
				t.Fatalf("the broker's result holds agent anchor %+v, want the write-ahead entry %d %s", p, e.Seq, e.Hash)
			}
			continue
		}
		if e.QueryID == res.QueryID {
			found = true
			if len(e.Fragments) != 1 || e.Fragments[0].Digest != got.Sum() || e.Fragments[0].Rows != got.Rows() {
				t.Fatalf("the police agent's own record differs: %+v", e.Fragments)
			}
		}
	}
	if !found || !ahead {
		t.Fatalf("the police agent has no record (outcome %v, write-ahead %v) of query %s", found, ahead, res.QueryID)
	}
}

// TestReconcileCatchesDiscrepancies: the broker's and the agents' logs agree
// after normal use; a fragment fetched from an agent behind the broker's
// back shows as missing in the broker; a broker record whose digest differs
// from the agent's shows as a digest mismatch.
func TestReconcileCatchesDiscrepancies(t *testing.T) {
	log := openAudit(t)
	police := policeAgent(t)
	brokerResults := func() []audit.Entry {
		es, err := log.Search(context.Background(), audit.Filter{Kind: audit.KindResult, Limit: audit.MaxReadLimit})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	agentLog := func() map[string][]audit.Entry {
		es, err := police.AllAuditEntries(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]audit.Entry{"police": es}
	}
	// Earlier tests broke the audit store on purpose: a result the broker
	// could not record shows as missing in its log. Judge only what is new.
	baseline := map[string]bool{}
	for _, d := range audit.Reconcile(brokerResults(), agentLog()) {
		baseline[d.QueryID+d.Kind] = true
	}
	fresh := func() []audit.Discrepancy {
		var out []audit.Discrepancy
		for _, d := range audit.Reconcile(brokerResults(), agentLog()) {
			if !baseline[d.QueryID+d.Kind] {
				out = append(out, d)
			}
		}
		return out
	}
	if _, _, err := query(t, "bob", "enterprise-credit", "SELECT household_district, COUNT(*) AS n FROM police.household GROUP BY household_district"); err != nil {
		t.Fatal(err)
	}
	if ds := fresh(); len(ds) != 0 {
		t.Fatalf("logs should agree after normal use: %+v", ds)
	}

	// A fragment served behind the broker's back (e.g. a stolen broker key).
	frag := &planner.Fragment{
		QueryID:   "side-channel-1",
		Dataset:   "police.household",
		Select:    []planner.SelectItem{{Expr: &planner.Expr{Kind: planner.KindColumn, Column: "household_district"}, Alias: "household_district"}},
		Requester: sluice.Principal{Name: "mallory", Role: sluice.RoleAnalyst, Department: "market"},
		Purpose:   "enterprise-credit",
	}
	st, err := police.Fetch(context.Background(), frag)
	if err != nil {
		t.Fatal(err)
	}
	for st.Next() {
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	st.Release()
	ds := fresh()
	if len(ds) != 1 || ds[0].Kind != audit.DiscrepancyMissingInBroker || ds[0].QueryID != "side-channel-1" {
		t.Fatalf("want one missing_in_broker for side-channel-1, got %+v", ds)
	}

	// The broker's account of a fragment differs from the agent's.
	results := brokerResults()
	last := results[len(results)-1]
	last.Fragments[0].Digest = "sha256:00"
	results[len(results)-1] = last
	found := false
	for _, d := range audit.Reconcile(results, agentLog()) {
		found = found || (d.Kind == audit.DiscrepancyDigest && d.QueryID == last.QueryID)
	}
	if !found {
		t.Fatal("a digest mismatch was not reported")
	}
}

// TestSignedCheckpointsVerify checks the broker's log with its public key.
func TestSignedCheckpointsVerify(t *testing.T) {
	pub, err := audit.LoadPublicKey(filepath.Join(world.World.Dir, "keys", "broker-audit.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyFile(context.Background(), storePath(t), audit.WithTrustedKeys(pub), audit.WithUnsignedGrace(time.Minute))
	if err != nil || !rep.OK || !rep.SignaturesChecked {
		t.Fatalf("signed verification: %+v %v", rep, err)
	}
}

// policeAgent connects to the police agent as the broker (its pinned
// certificate), the way `sluice audit reconcile` does.
func policeAgent(t *testing.T) *agent.Client { return deptAgent(t, "police") }

// deptAgent connects to a department's agent as the broker does.
func deptAgent(t testing.TB, dept string) *agent.Client {
	t.Helper()
	dir := world.World.Dir
	cert, err := tlsutil.LoadKeyPair(filepath.Join(dir, "tls", "broker.crt"), filepath.Join(dir, "tls", "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	pin, err := tlsutil.FingerprintFile(filepath.Join(dir, "tls", dept+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.Dial(context.Background(), dept, world.AgentAddrs[dept], pin, cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
