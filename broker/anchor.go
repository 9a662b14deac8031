package broker

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker/audit"
)

// lastCheckpointer is an audit log that can show its latest signed
// checkpoint (broker/audit.Log).
type lastCheckpointer interface {
	LastCheckpoint() *audit.Checkpoint
}

// withBrokerAnchor adds to ctx's outgoing metadata what the broker shows
// each agent of its own log with a fragment request: the seq and hash of
// the query's decision entry (appended before the ticket existed) and the
// log's latest signed checkpoint. The agent keeps it in its own chain, so a
// broker log later cut back below it is caught by what the agents hold
// (`sluice audit reconcile`; auditchain.CheckAnchors).
func (s *Server) withBrokerAnchor(ctx context.Context, q *pendingQuery) context.Context {
	a := &audit.Anchor{Seq: q.entry.Seq, Hash: q.entry.Hash}
	if lc, ok := s.audit.(lastCheckpointer); ok {
		a.Checkpoint = lc.LastCheckpoint().Signed()
	}
	if a.Seq == 0 && a.Checkpoint == nil {
		return ctx
	}
	v, err := audit.EncodeAnchor(a)
	if err != nil {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, agent.BrokerAnchorHeader, v)
}
