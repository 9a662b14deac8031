package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Explain renders the decision for people: the verdict, each reason with
// its rule, dataset.column and legal basis, the obligations and the policy
// revision.
func (d *Decision) Explain() string {
	var b strings.Builder
	if d.Allow {
		b.WriteString("ALLOW\n")
	} else {
		b.WriteString("DENY\n")
	}
	for _, r := range d.Reasons {
		target := r.Dataset
		if r.Column != "" {
			target += "." + r.Column
		}
		if target != "" {
			fmt.Fprintf(&b, "  - [%s] %s: %s\n", r.Rule, target, r.Message)
		} else {
			fmt.Fprintf(&b, "  - [%s] %s\n", r.Rule, r.Message)
		}
		if r.LegalBasis != "" {
			fmt.Fprintf(&b, "    legal basis: %s\n", r.LegalBasis)
		}
	}
	if d.Allow {
		var masks []string
		for ds, cols := range d.Masks {
			for col, rule := range cols {
				masks = append(masks, fmt.Sprintf("  mask %s.%s with %s at the source\n", ds, col, rule))
			}
		}
		sort.Strings(masks)
		if len(masks) > 0 || d.MinGroupSize > 0 || d.RowCap > 0 || len(d.DP) > 0 {
			b.WriteString("obligations:\n")
			for _, m := range masks {
				b.WriteString(m)
			}
			if d.MinGroupSize > 0 {
				fmt.Fprintf(&b, "  aggregate-only release: every group must count at least %d distinct persons\n", d.MinGroupSize)
				names := make([]string, 0, len(d.Protected))
				for ds := range d.Protected {
					names = append(names, ds)
				}
				sort.Strings(names)
				for _, ds := range names {
					fmt.Fprintf(&b, "    %s: k = %d\n", ds, d.Protected[ds])
				}
			}
			if d.RowCap > 0 {
				fmt.Fprintf(&b, "  at most %d rows may be released\n", d.RowCap)
			}
			for _, dp := range d.DP {
				fmt.Fprintf(&b, "  differential privacy: spends ε=%g of grant %s's budget (ε=%g); COUNT and SUM get Laplace noise\n", dp.EpsilonPerQuery, dp.Grant, dp.Epsilon)
				if len(dp.Clamp) == 0 {
					fmt.Fprintf(&b, "    SUM: the grant states no clamp bounds, so no column of %s can be summed\n", dp.Dataset)
					continue
				}
				cols := make([]string, 0, len(dp.Clamp))
				for c := range dp.Clamp {
					cols = append(cols, c)
				}
				sort.Strings(cols)
				for _, c := range cols {
					bd := dp.Clamp[c]
					fmt.Fprintf(&b, "    SUM(%s.%s): each value clamped to %s at the source (sensitivity %g)\n", dp.Dataset, c, bd, bd.Sensitivity())
				}
			}
		}
		if len(d.Grants) > 0 {
			fmt.Fprintf(&b, "grants: %s\n", strings.Join(d.Grants, ", "))
		}
	}
	fmt.Fprintf(&b, "policy revision: %s\n", d.Revision)
	return b.String()
}
