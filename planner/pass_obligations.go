package planner

import (
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// applyObligations is the pass "obligations": it copies the decision's
// masks and k, the requester and the purpose into every fragment the
// agents will run, so small groups and raw masked values never leave them.
// Across departments k is enforced in the sandbox after the join, over the
// persons of each protected dataset: such a fragment is not grouped
// (MinGroupSize 0) and carries its dataset's k as SandboxK.
func applyObligations(p *Plan, _ *sluice.Catalog, o *Obligations) error {
	if p.Fragment != nil {
		o.applyTo(p.Fragment)
	}
	for _, f := range p.Fragments {
		o.applyTo(f)
		f.SandboxK, f.MinGroupSize = o.protectedK(f.Dataset), 0
	}
	return nil
}

func (o *Obligations) applyTo(f *Fragment) {
	if m := o.Masks[f.Dataset]; len(m) > 0 {
		f.Masks = map[string]sluice.MaskRule{}
		for c, r := range m {
			f.Masks[c] = r
		}
	}
	f.MinGroupSize = o.MinGroupSize
	f.Requester = o.Requester
	f.Purpose = o.Purpose
}

// protectedK is the minimum group size (in persons) the decision gives a
// dataset; 0 when the dataset is not protected.
func (o *Obligations) protectedK(dataset string) int {
	for d, k := range o.Protected {
		if strings.EqualFold(d, dataset) {
			return k
		}
	}
	return 0
}
