package planner

import (
	sluice "github.com/sluice-gov/sluice"
)

// verifyPlan is the pass "verify", the last: a plan across departments is
// checked again as the sandbox will run it, after the rewrites that
// follow planning (Verify). A single-dataset fragment has no sandbox plan;
// its agent and the broker validate it against the catalog
// (Fragment.Validate).
func verifyPlan(p *Plan, _ *sluice.Catalog, _ *Obligations) error {
	return p.Verify()
}

// Verify checks a finished multi-dataset plan again after the rewrites
// that follow planning (row filters, units, clamps): every column an
// operator refers to is an output of its input, and names never collide.
func (p *Plan) Verify() error {
	if p == nil || p.Sandbox == nil {
		return nil
	}
	psiNames := map[string]bool{}
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		if n == nil || depth > 4*maxExprDepth {
			return
		}
		if n.Op == OpJoin && n.PSI {
			for _, k := range n.Keys {
				psiNames[k.Left], psiNames[k.Right] = true, true
			}
		}
		for _, in := range n.Inputs {
			walk(in, depth+1)
		}
	}
	walk(p.Sandbox, 0)
	_, err := verifyNodes(p.Sandbox, p.Fragments, psiNames)
	return err
}
