package broker

import (
	"time"

	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/metrics"
)

// observeEnd counts a statement that ended before any ticket was used:
// refused by the policy, failed, or its decision not on record (aerr).
func (s *Server) observeEnd(department, decision string, cause, aerr error, d time.Duration) {
	s.metrics.QueryDone(outcome(decision, cause, aerr), department, d)
}

// observeResult counts a statement whose result entry was just written
// (or failed to be): its outcome, its time in the broker (the decision
// before the ticket, then the fetch and release) and what each
// department's agent delivered.
func (s *Server) observeResult(q *pendingQuery, decision string, cause, aerr error, frags []audit.FragmentRecord, start time.Time) {
	d := time.Duration(q.entry.DurationMS*float64(time.Millisecond)) + time.Since(start)
	s.metrics.QueryDone(outcome(decision, cause, aerr), q.principal.Department, d)
	for _, f := range frags {
		s.metrics.Fragment(f.Department, f.Rows, f.Bytes)
	}
}

// outcome is the outcome label of a statement: a failed audit append is an
// error whatever came before (no entry, no data).
func outcome(decision string, cause, aerr error) string {
	switch {
	case aerr != nil:
		return metrics.OutcomeError
	case decision == audit.DecisionDeny:
		return metrics.OutcomeDenied
	}
	return metrics.OutcomeOf(cause)
}
