package broker

import (
	"context"

	"github.com/apache/arrow/go/v15/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
	"github.com/sluice-gov/sluice/sandbox/gate"
)

// WithBudgets keeps differential-privacy budgets in b: a query under a
// grant with a budget reserves its epsilon before it runs.
func WithBudgets(b *budget.Store) Option { return func(s *Server) { s.budgets = b } }

// release is what the gate must do to a result before it leaves, and the
// budget spent for it.
type release struct {
	obligations gate.Obligations
	spent       []string // query id under which epsilon was reserved (for a refund)
}

// needed reports whether the result must pass through the gate at all.
func (r *release) needed() bool {
	return r.obligations.RowCap > 0 || r.obligations.Epsilon > 0
}

// planRelease turns a decision's row cap and DP budgets into gate
// obligations for a single-dataset fragment and reserves the budget. Only
// COUNT can be released under a budget today: SUM and AVG need a clamp
// bound no grant states yet, and MIN/MAX have no useful DP release.
func (s *Server) planRelease(ctx context.Context, p sluice.Principal, purpose, queryID string, f *planner.Fragment, dec *policy.Decision) (*release, error) {
	r := &release{obligations: gate.Obligations{RowCap: dec.RowCap}}
	if len(dec.DP) == 0 {
		return r, nil
	}
	eps := dec.DP[0].EpsilonPerQuery
	for _, d := range dec.DP[1:] {
		eps = min(eps, d.EpsilonPerQuery)
	}
	for _, it := range f.Select {
		e := it.Expr
		if e.Kind != planner.KindAggregate {
			continue // a group key
		}
		if e.Func != "count" {
			return nil, sluice.Errorf(sluice.ENotSupported, "under a differential-privacy grant only COUNT can be released yet (%s needs a clamp bound the grant does not state); remove %s", e.Func, it.Alias)
		}
		r.obligations.Noisy = append(r.obligations.Noisy, gate.NoisyColumn{Name: it.Alias, Kind: gate.Count, Sensitivity: 1})
	}
	if len(r.obligations.Noisy) == 0 {
		return nil, sluice.Errorf(sluice.ENotSupported, "a differential-privacy grant releases only COUNT aggregates; add COUNT(*) and GROUP BY")
	}
	r.obligations.Epsilon = eps
	spent, err := s.reserve(ctx, queryID, dec)
	if err != nil {
		return nil, err
	}
	r.spent = spent.spent
	return r, nil
}

// reserve spends each DP budget the decision names, before the query runs;
// all or nothing.
func (s *Server) reserve(ctx context.Context, queryID string, dec *policy.Decision) (*release, error) {
	r := &release{obligations: gate.Obligations{RowCap: dec.RowCap}}
	if len(dec.DP) == 0 {
		return r, nil
	}
	if s.budgets == nil {
		return nil, sluice.Errorf(sluice.EUnavailable, "grant %s carries a differential-privacy budget but the broker keeps no budget store; ask the platform admin", dec.DP[0].Grant)
	}
	for _, d := range dec.DP {
		g := s.snap().grantsByID[d.Grant]
		if g == nil {
			s.refund(r)
			return nil, sluice.Errorf(sluice.EInternal, "the policy relied on grant %s that the broker does not know", d.Grant)
		}
		if _, err := s.budgets.Reserve(ctx, g.Grantee, g.Purpose, d.EpsilonPerQuery, queryID+"/"+d.Grant); err != nil {
			s.refund(r)
			return nil, err
		}
		r.spent = append(r.spent, queryID+"/"+d.Grant)
	}
	return r, nil
}

// refund gives back epsilon reserved for a query that released nothing.
func (s *Server) refund(r *release) {
	if r == nil || s.budgets == nil {
		return
	}
	for _, id := range r.spent {
		if err := s.budgets.Refund(context.Background(), id); err != nil {
			s.log.Error("budget refund failed", "spend", id, "err", err)
		}
	}
	r.spent = nil
}

// recordSource is the stream the relay reads: the agent's records, through
// the release gate when the decision asks for one.
type recordSource interface {
	Schema() *arrow.Schema
	Next(ctx context.Context) (arrow.Record, error)
}
