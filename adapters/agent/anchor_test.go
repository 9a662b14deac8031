package agent

import (
	"context"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// TestAnchorsTravelBothWays: the broker's anchor sent with a fragment
// request is kept in the agent's write-ahead and outcome entries (and in a
// refusal's), the agent's anchor comes back in the response header before
// the first batch and names its write-ahead entry and latest signed
// checkpoint; a malformed or repeated broker anchor is refused.
func TestAnchorsTravelBothWays(t *testing.T) {
	ctx := context.Background()
	signer, err := auditchain.LoadOrCreateEd25519(filepath.Join(t.TempDir(), "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, filepath.Join(t.TempDir(), "agent-audit.db"), signer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fx := newFixture(t, []Option{WithAuditLog(l), WithBatchRows(7)}, nil)
	c := fx.broker(t)
	brokerSide := &auditchain.Anchor{Seq: 7, Hash: "aa", Checkpoint: &auditchain.SignedHead{Seq: 5, Hash: "bb", Time: "2026-12-03T10:00:00Z"}}
	hv, err := auditchain.EncodeAnchor(brokerSide)
	if err != nil {
		t.Fatal(err)
	}
	withAnchor := metadata.AppendToOutgoingContext(ctx, BrokerAnchorHeader, hv)

	// A first fragment, then a checkpoint, then a second: the second
	// anchor carries the checkpoint.
	for i, wantCP := range []bool{false, true} {
		f := frag("residents", outsider, sel("district", col("district")))
		f.QueryID = []string{"q-anchor-1", "q-anchor-2"}[i]
		s, err := c.Fetch(withAnchor, f)
		if err != nil {
			t.Fatal(err)
		}
		a := s.AgentAnchor()
		for s.Next() {
		}
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
		s.Release()
		out := lastEntry(t, l)
		es, err := l.Entries(ctx, out.Seq-2, 2)
		if err != nil || len(es) != 2 {
			t.Fatal(es, err)
		}
		begin := es[0]
		if begin.Phase != auditchain.PhaseBegin || a == nil || a.Seq != begin.Seq || a.Hash != begin.Hash {
			t.Fatalf("agent anchor %+v, write-ahead entry %+v", a, begin)
		}
		if (a.Checkpoint != nil) != wantCP {
			t.Fatalf("fragment %d: agent anchor checkpoint %+v", i+1, a.Checkpoint)
		}
		if wantCP {
			all, err := l.Entries(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			key := auditchain.PublicKey{Algorithm: signer.Algorithm(), Key: signer.PublicKey()}
			probs, err := auditchain.CheckAnchors(auditchain.EntriesView("the agent's log", all), []auditchain.HeldAnchor{{Anchor: *a, Holder: "the broker"}}, key)
			if a.Checkpoint.Seq != 2 || err != nil || len(probs) != 0 {
				t.Fatalf("the anchor %+v does not check against the agent's log and key: %+v %v", a, probs, err)
			}
			other, _ := auditchain.LoadOrCreateEd25519(filepath.Join(t.TempDir(), "other.key"))
			probs, _ = auditchain.CheckAnchors(auditchain.EntriesView("the agent's log", all), []auditchain.HeldAnchor{{Anchor: *a, Holder: "the broker"}},
				auditchain.PublicKey{Algorithm: other.Algorithm(), Key: other.PublicKey()})
			if len(probs) != 1 {
				t.Fatalf("a checkpoint checked with another key: %+v", probs)
			}
		}
		for _, e := range es {
			if e.Peer == nil || e.Peer.Seq != 7 || e.Peer.Hash != "aa" || e.Peer.Checkpoint == nil || e.Peer.Checkpoint.Seq != 5 {
				t.Fatalf("entry %d holds broker anchor %+v", e.Seq, e.Peer)
			}
		}
		if i == 0 {
			if err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A refusal holds the broker's anchor too.
	refused := frag("residents", outsider, sel("s", col("secret")))
	if _, err := fetchAll(withAnchor, c, refused); sluice.ErrorCode(err) != sluice.EDenied {
		t.Fatalf("hidden column: %v", err)
	}
	if e := lastEntry(t, l); e.Decision != auditchain.DecisionDeny || e.Peer == nil || e.Peer.Seq != 7 {
		t.Fatalf("refusal entry %+v", e)
	}
	// Malformed or repeated anchors are refused, before anything runs.
	for name, md := range map[string][]string{
		"malformed": {BrokerAnchorHeader, `{"seq":"seven"}`},
		"unknown":   {BrokerAnchorHeader, `{"seq":7,"hash":"aa","extra":1}`},
		"twice":     {BrokerAnchorHeader, hv, BrokerAnchorHeader, hv},
	} {
		f := frag("residents", outsider, sel("district", col("district")))
		if _, err := fetchAll(metadata.AppendToOutgoingContext(ctx, md...), c, f); sluice.ErrorCode(err) != sluice.EInvalid {
			t.Fatalf("%s anchor: %v, want invalid", name, err)
		}
	}
}
