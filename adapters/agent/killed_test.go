package agent

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/crypto/auditchain"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// The helper process of TestAgentProcessKilledMidStream: an agent with its own
// audit log, serving until it is killed. It runs only when the test starts
// it.
const (
	killedDirEnv = "SLUICE_TEST_KILLED_AGENT_DIR"
	killedDBEnv  = "SLUICE_TEST_KILLED_AGENT_DB"
)

func TestKilledAgentProcess(t *testing.T) {
	dir := os.Getenv(killedDirEnv)
	if dir == "" {
		t.Skip("the agent process TestAgentProcessKilledMidStream starts and kills")
	}
	ctx := context.Background()
	if err := tlsutil.WriteSelfSigned(filepath.Join(dir, "agent.pem"), filepath.Join(dir, "agent.key"), "agent-civil", nil); err != nil {
		t.Fatal(err)
	}
	brokerPin, err := tlsutil.FingerprintFile(filepath.Join(dir, "broker.pem"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auditchain.LoadOrCreateEd25519(filepath.Join(dir, "agent-audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, filepath.Join(dir, "agent-audit.db"), signer)
	if err != nil {
		t.Fatal(err)
	}
	d := department(dir, os.Getenv(killedDBEnv), []string{brokerPin})
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(ctx, d, WithAuditLog(l), WithBatchRows(100))
	if err != nil {
		t.Fatal(err)
	}
	// Slow enough that the stream is still under way when the test kills
	// the process: 1000 batches, 20 ms each.
	srv.emitHook = func(context.Context) { time.Sleep(20 * time.Millisecond) }
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(lis.Addr().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		t.Fatal(err)
	}
	_ = srv.Serve(ctx, lis) // until killed
}

// TestAgentProcessKilledMidStream: an agent process killed (SIGKILL) while a
// fragment streams leaves a complete record of what began leaving — its
// write-ahead entry, naming the query, requester, purpose, dataset and
// rendered SQL, and holding the broker's anchor — in a log that verifies;
// reconciliation reports the fragment as interrupted, not as missing from
// the agent's log; and the anchor the broker received points at that entry.
func TestAgentProcessKilledMidStream(t *testing.T) {
	if os.Getenv(killedDirEnv) != "" {
		t.Skip("inside the helper process")
	}
	dir, db := t.TempDir(), sharedDB(t)
	if err := tlsutil.WriteSelfSigned(filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key"), "broker", nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledAgentProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), killedDirEnv+"="+dir, killedDBEnv+"="+db)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	kill := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(kill)
	var addr []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil {
			addr = b
			break
		}
		select {
		case <-exited:
			t.Fatalf("the agent process exited before serving:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent process did not start serving:\n%s", out.String())
		}
	}
	cert, err := tlsutil.LoadKeyPair(filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	pin, err := tlsutil.FingerprintFile(filepath.Join(dir, "agent.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, deptID, string(addr), pin, cert)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The broker's anchor, as the broker sends it with the request.
	brokerSide := &auditchain.Anchor{Seq: 41, Hash: "4f3c2e1d4f3c2e1d4f3c2e1d4f3c2e1d4f3c2e1d4f3c2e1d4f3c2e1d4f3c2e1d"}
	hv, err := auditchain.EncodeAnchor(brokerSide)
	if err != nil {
		t.Fatal(err)
	}
	f := frag("big", outsider, sel("n", col("n"), "label", col("label")))
	f.QueryID = "q-killed"
	stream, err := c.Fetch(metadata.AppendToOutgoingContext(ctx, BrokerAnchorHeader, hv), f)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Release()
	agentSide := stream.AgentAnchor()
	if agentSide == nil || agentSide.Seq != 1 {
		t.Fatalf("the agent's anchor %+v, want its write-ahead entry 1", agentSide)
	}
	var rows, batches int64
	for batches < 3 && stream.Next() {
		rows += stream.Record().NumRows()
		batches++
	}
	if batches < 3 {
		t.Fatalf("the stream ended after %d batches: %v", batches, stream.Err())
	}
	kill() // SIGKILL, mid-stream: no outcome entry, no final checkpoint
	for stream.Next() {
		rows += stream.Record().NumRows()
	}
	if stream.Err() == nil || sluice.ErrorCode(stream.Err()) != sluice.EUnavailable || rows >= bigRows {
		t.Fatalf("after the kill: %d rows, %v; want a cut stream (Unavailable)", rows, stream.Err())
	}

	// The log the killed agent left opens, verifies and holds the record.
	l, err := auditlog.Open(context.Background(), filepath.Join(dir, "agent-audit.db"))
	if err != nil {
		t.Fatalf("the killed agent's log does not open: %v", err)
	}
	defer l.Close()
	rep, err := l.Verify(context.Background())
	if err != nil || !rep.OK {
		t.Fatalf("the killed agent's log does not verify: %+v %v", rep, err)
	}
	es, err := l.Entries(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("the killed agent's log has %d entries, want its write-ahead entry only: %+v", len(es), es)
	}
	e := es[0]
	if e.Phase != auditchain.PhaseBegin || e.Kind != auditchain.KindFragment || e.QueryID != "q-killed" ||
		e.Principal != outsider.Name || e.Department != outsider.Department || e.Purpose != "testing" ||
		!slices.Equal(e.Datasets, []string{"civil.big"}) || e.Plan == "" || e.PlanHash != sha(e.Plan) {
		t.Fatalf("write-ahead entry %+v", e)
	}
	if e.Peer == nil || e.Peer.Seq != brokerSide.Seq || e.Peer.Hash != brokerSide.Hash {
		t.Fatalf("the write-ahead entry holds the broker anchor %+v, want %+v", e.Peer, brokerSide)
	}
	if e.Seq != agentSide.Seq || e.Hash != agentSide.Hash {
		t.Fatalf("the anchor the broker got (%d %s) is not the write-ahead entry (%d %s)", agentSide.Seq, agentSide.Hash, e.Seq, e.Hash)
	}

	// Reconciliation: the broker recorded a failed result with the rows it
	// received; the agent's log has the fragment begun and never finished.
	brokerLog := []auditchain.Entry{{Seq: 42, Kind: auditchain.KindResult, QueryID: "q-killed", Decision: auditchain.DecisionError,
		Error: "the agent of department civil is unavailable", Rows: rows,
		Fragments: []auditchain.FragmentRecord{{Department: deptID, Dataset: "civil.big", Rows: rows, Bytes: 1, Digest: "sha256:x", Peer: agentSide}}}}
	ds := auditchain.Reconcile(brokerLog, map[string][]auditchain.Entry{deptID: es})
	if len(ds) != 1 || ds[0].Kind != auditchain.DiscrepancyInterrupted || ds[0].Serious() || ds[0].Broker == nil {
		t.Fatalf("reconcile: %+v, want one interrupted fragment (not serious)", ds)
	}
	// Without the write-ahead entry the same fragment is missing from the
	// agent's log: the case this record exists for.
	if ds := auditchain.Reconcile(brokerLog, map[string][]auditchain.Entry{deptID: nil}); len(ds) != 1 || ds[0].Kind != auditchain.DiscrepancyMissingInAgent {
		t.Fatalf("reconcile without the write-ahead entry: %+v", ds)
	}
	// The anchor the broker holds is honoured by the agent's log.
	probs, err := auditchain.CheckAnchors(auditchain.EntriesView("the agent's log", es), auditchain.AnchorsForAgent(deptID, brokerLog))
	if err != nil || len(probs) != 0 {
		t.Fatalf("anchor check: %+v %v", probs, err)
	}
}
