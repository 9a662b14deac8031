package planner

import (
	sluice "github.com/sluice-gov/sluice"
)

// Obligations are what the policy decided for an allowed query, as the
// planner needs them to rewrite the plan. The broker builds them from the
// decision (and its grants' row filters) and calls Plan.Apply once.
type Obligations struct {
	// Requester and Purpose are who asks and why: every fragment carries
	// them, so the agent can decide its own masks and record the request.
	Requester sluice.Principal
	Purpose   string
	// Masks is dataset (department.dataset) → column → the mask applied
	// at the source.
	Masks map[string]map[string]sluice.MaskRule
	// MinGroupSize is k > 0 when the release is aggregate-only: the least
	// number of persons a released group of a single-dataset query needs.
	MinGroupSize int
	// Protected maps each protected dataset to its k in persons; across
	// datasets it is enforced in the sandbox, per dataset.
	Protected map[string]int
	// RowFilters are the row filters of the grants the decision relies
	// on, by dataset (department.dataset).
	RowFilters map[string][]*sluice.RowFilter
	// Budgets are the differential-privacy budgets the release spends
	// from; none when the release is not under a budget. Bounds gives the
	// clamp bounds their grants state for a summed column.
	Budgets []Budget
	Bounds  BoundsFunc
}

// Budget is a differential-privacy budget a release spends from: the grant
// that carries it and the dataset the grant is on.
type Budget struct {
	Grant   string
	Dataset string // department.dataset
}

// Pass is one named rewrite of an allowed plan.
type Pass struct {
	Name string
	Run  func(*Plan, *sluice.Catalog, *Obligations) error
}

// passes are the rewrites Plan.Apply runs, in this order, the one place
// it is declared; each is in the file pass_<name>.go. A pass may rely on
// the ones before it: the row filters narrow fragments that already carry
// their obligations, the clamps pass the persons' pseudonyms collected by
// privacy_units through the project it inserts below the aggregate, and
// the plan is verified last, as the sandbox will run it.
var passes = []Pass{
	{Name: "obligations", Run: applyObligations},    // masks, k, requester and purpose into every fragment
	{Name: "row_filters", Run: applyRowFilters},     // the grants' row filters into their datasets' fragments
	{Name: "privacy_units", Run: countPrivacyUnits}, // across departments: the persons behind every group (CountUnits)
	{Name: "clamps", Run: clampUnderBudget},         // under a DP budget: privacy units declared, every SUM clamped (ClampSums)
	{Name: "verify", Run: verifyPlan},               // across departments: the rewritten sandbox plan is consistent (Verify)
}

// Apply rewrites an allowed plan with the policy's obligations: it runs
// passes in order and stops at the first error, which it returns as the
// pass produced it.
func (p *Plan) Apply(cat *sluice.Catalog, o Obligations) error {
	return p.runPasses(passes, cat, &o)
}

// Passes lists the rewrites Plan.Apply runs, in order (a copy: the order
// is declared once, in passes).
func Passes() []Pass { return append([]Pass(nil), passes...) }

func (p *Plan) runPasses(passes []Pass, cat *sluice.Catalog, o *Obligations) error {
	if p == nil {
		return sluice.Errorf(sluice.EInternal, "applying obligations: no plan")
	}
	for _, pass := range passes {
		if err := pass.Run(p, cat, o); err != nil {
			return err
		}
	}
	return nil
}

// fragments lists every fragment of the plan: the single-dataset query's
// one fragment first, then those of a query across datasets.
func (p *Plan) fragments() []*Fragment {
	if p.Fragment == nil {
		return p.Fragments
	}
	return append([]*Fragment{p.Fragment}, p.Fragments...)
}
