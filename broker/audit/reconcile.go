package audit

import "github.com/sluice-gov/sluice/crypto/auditchain"

// Reconciliation is auditchain's; these names re-export it.

// PhaseBegin marks an agent's write-ahead entry (auditchain.PhaseBegin).
const PhaseBegin = auditchain.PhaseBegin

// Discrepancy kinds.
const (
	DiscrepancyMissingInBroker = auditchain.DiscrepancyMissingInBroker
	DiscrepancyMissingInAgent  = auditchain.DiscrepancyMissingInAgent
	DiscrepancyRows            = auditchain.DiscrepancyRows
	DiscrepancyBytes           = auditchain.DiscrepancyBytes
	DiscrepancyDigest          = auditchain.DiscrepancyDigest
	DiscrepancyInterrupted     = auditchain.DiscrepancyInterrupted
)

// Discrepancy is one difference between the broker's and an agent's
// records (auditchain.Discrepancy).
type Discrepancy = auditchain.Discrepancy

// Reconcile compares the broker's result entries with each agent's
// fragment entries (auditchain.Reconcile).
func Reconcile(broker []Entry, agentLogs map[string][]Entry) []Discrepancy {
	return auditchain.Reconcile(broker, agentLogs)
}
