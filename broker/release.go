package broker

import (
	"context"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/budget"
	"github.com/sluice-gov/sluice/broker/state"
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
	spent       []string  // query id under which epsilon was reserved (for a refund)
	spentDP     []dpSpend // whose budget and how much, for each of spent (metrics)
}

// dpSpend is one reservation's grantee and epsilon, for the metrics.
type dpSpend struct {
	grantee string
	epsilon float64
}

// needed reports whether the result must pass through the gate at all.
func (r *release) needed() bool {
	return r.obligations.RowCap > 0 || r.obligations.Epsilon > 0 || len(r.obligations.Units) > 0
}

// sketchUnits are the gate's obligations for the contributor sets that
// reach the broker as sketches (an agent's, or the sandbox's gate after
// its aggregate): each is checked against k again, then stripped, and its
// sketch kept for the differencing guard.
func sketchUnits(sets []planner.UnitSet) []gate.UnitColumn {
	out := make([]gate.UnitColumn, len(sets))
	for i, u := range sets {
		out[i] = gate.UnitColumn{Name: u.Column, Dataset: u.Dataset, K: u.K, Format: gate.UnitSketch}
	}
	return out
}

// planRelease turns a decision's row cap and DP budgets into gate
// obligations for a single-dataset fragment and reserves the budget. The
// fragment was prepared by ClampSums when the decision was made: every
// COUNT is noised with sensitivity 1 and every SUM, clamped at the source,
// with the sensitivity of its clamp.
func (s *Server) planRelease(ctx context.Context, st *state.State, queryID string, f *planner.Fragment, dec *policy.Decision) (*release, error) {
	r := &release{obligations: gate.Obligations{RowCap: dec.RowCap}}
	if len(dec.DP) == 0 {
		return r, nil
	}
	eps := dec.DP[0].EpsilonPerQuery
	for _, d := range dec.DP[1:] {
		eps = min(eps, d.EpsilonPerQuery)
	}
	noisy, err := f.NoisyOutputs()
	if err != nil {
		return nil, err
	}
	r.obligations.Noisy = noisyColumns(noisy)
	r.obligations.Epsilon = eps
	spent, err := s.reserve(ctx, st, queryID, dec)
	if err != nil {
		return nil, err
	}
	r.spent, r.spentDP = spent.spent, spent.spentDP
	return r, nil
}

// noisyColumns turns the planner's noisy outputs into the gate's columns.
func noisyColumns(outs []planner.NoisyOutput) []gate.NoisyColumn {
	cols := make([]gate.NoisyColumn, 0, len(outs))
	for _, o := range outs {
		kind := gate.Count
		if o.Sum {
			kind = gate.Sum
		}
		cols = append(cols, gate.NoisyColumn{Name: o.Name, Kind: kind, Sensitivity: o.Sensitivity})
	}
	return cols
}

// dpBounds gives ClampSums the clamp bounds of the DP grants a decision
// relies on. Every budgeted grant on the dataset must bound the column (a
// grant that states no bound never agreed to sums of it), and the value is
// clamped to the intersection, within every grant's bounds.
func dpBounds(dec *policy.Decision) planner.BoundsFunc {
	return func(dataset, column string) (sluice.Bounds, error) {
		var b sluice.Bounds
		found := false
		for _, d := range dec.DP {
			if !strings.EqualFold(d.Dataset, dataset) {
				continue
			}
			c, ok := d.Clamp[strings.ToLower(column)]
			if !ok {
				return b, sluice.Errorf(sluice.ENotSupported,
					"SUM(%s) cannot be released under the differential-privacy budget of grant %s: the grant states no clamp bounds for %s.%s, so one value could move the sum without limit. Ask the provider for a grant with clamp bounds for %s (clamp: {%s: [lo, hi]}), or release COUNT only",
					column, d.Grant, dataset, column, column, column)
			}
			if !found {
				b, found = c, true
			} else {
				b = sluice.Bounds{max(b.Lo(), c.Lo()), min(b.Hi(), c.Hi())}
			}
		}
		if !found {
			return b, sluice.Errorf(sluice.ENotSupported,
				"SUM(%s) cannot be released under a differential-privacy budget: no budgeted grant the query relies on gives clamp bounds for %s.%s, so one value could move the noisy sum without limit; sum a column a budgeted grant bounds, or release COUNT only",
				column, dataset, column)
		}
		if !(b.Lo() < b.Hi()) {
			return b, sluice.Errorf(sluice.ENotSupported, "the clamp bounds of the grants on %s do not overlap for %s; ask the provider to align them", dataset, column)
		}
		return b, nil
	}
}

// dpBudgets are the differential-privacy budgets a decision spends from,
// as the planner's clamps pass checks them.
func dpBudgets(dec *policy.Decision) []planner.Budget {
	out := make([]planner.Budget, len(dec.DP))
	for i, d := range dec.DP {
		out[i] = planner.Budget{Grant: d.Grant, Dataset: d.Dataset}
	}
	return out
}

// reserve spends each DP budget the decision names, before the query runs;
// all or nothing.
func (s *Server) reserve(ctx context.Context, st *state.State, queryID string, dec *policy.Decision) (*release, error) {
	r := &release{obligations: gate.Obligations{RowCap: dec.RowCap}}
	if len(dec.DP) == 0 {
		return r, nil
	}
	if s.budgets == nil {
		return nil, sluice.Errorf(sluice.EUnavailable, "grant %s carries a differential-privacy budget but the broker keeps no budget store; ask the platform admin", dec.DP[0].Grant)
	}
	for _, d := range dec.DP {
		g := st.GrantsByID[d.Grant]
		if g == nil {
			s.refund(r)
			return nil, sluice.Errorf(sluice.EInternal, "the policy relied on grant %s that the broker does not know", d.Grant)
		}
		if _, err := s.budgets.Reserve(ctx, g.Grantee, g.Purpose, d.EpsilonPerQuery, queryID+"/"+d.Grant); err != nil {
			s.refund(r)
			return nil, err
		}
		r.spent = append(r.spent, queryID+"/"+d.Grant)
		r.spentDP = append(r.spentDP, dpSpend{g.Grantee, d.EpsilonPerQuery})
		s.metrics.DPReserved(g.Grantee, d.EpsilonPerQuery)
	}
	return r, nil
}

// refund gives back epsilon reserved for a query that released nothing.
func (s *Server) refund(r *release) {
	if r == nil || s.budgets == nil {
		return
	}
	for i, id := range r.spent {
		if err := s.budgets.Refund(context.Background(), id); err != nil {
			s.log.Error("budget refund failed", "spend", id, "err", err)
		} else if i < len(r.spentDP) {
			s.metrics.DPRefunded(r.spentDP[i].grantee, r.spentDP[i].epsilon)
		}
	}
	r.spent, r.spentDP = nil, nil
}

// recordSource is the stream the relay reads: the agent's records, through
// the release gate when the decision asks for one.
type recordSource interface {
	Schema() *arrow.Schema
	Next(ctx context.Context) (arrow.Record, error)
}
