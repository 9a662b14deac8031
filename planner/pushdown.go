package planner

import (
	"regexp"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Planner plans analyst SQL against a catalog. It holds no mutable state,
// so one Planner serves concurrent queries.
type Planner struct {
	cat *sluice.Catalog
}

// New builds a planner over a catalog. Safe for concurrent use.
func New(cat *sluice.Catalog) *Planner { return &Planner{cat: cat} }

// Plan is a planned query: today one fragment over one dataset, pushed
// down whole to that dataset's agent.
type Plan struct {
	SQL       string               // as the analyst wrote it
	Fragment  *Fragment            // the whole query, pushed down to the one dataset's agent
	Datasets  []string             // department.dataset, sorted
	Usages    []sluice.ColumnUsage // one entry per source column used
	Aggregate bool                 // the result releases only aggregates over groups
}

// The parser reports these constructs as plain syntax errors; spotting
// them gives the analyst the real reason instead.
var (
	windowRE = regexp.MustCompile(`(?i)\)\s*over\s*\(`)
	withRE   = regexp.MustCompile(`(?i)^\s*with\s`)
)

// Plan parses and plans one SELECT over ONE dataset. queryID is copied
// into the fragment. The fragment carries no obligations yet: the broker
// fills masks, minimum group size, requester and purpose from the policy.
func (p *Planner) Plan(queryID, sql string) (plan *Plan, err error) {
	defer func() {
		// A planner bug must fail the one query, never the broker.
		if r := recover(); r != nil {
			plan, err = nil, sluice.Errorf(sluice.EInternal, "the planner failed on this query; please report it with the query text")
		}
	}()
	if p == nil || p.cat == nil {
		return nil, sluice.Errorf(sluice.EInternal, "planner has no catalog")
	}
	sel, err := parseSelect(sql)
	if err != nil {
		if sluice.ErrorCode(err) == sluice.EInvalid && strings.HasPrefix(sluice.ErrorMessage(err), "SQL syntax error") {
			switch {
			case windowRE.MatchString(sql):
				return nil, notSupported("window functions (OVER) are not supported yet; use GROUP BY")
			case withRE.MatchString(sql):
				return nil, notSupported("WITH (common table expressions) is not supported yet; write one SELECT")
			}
		}
		return nil, err
	}
	tn, alias, err := sourceTable(sel)
	if err != nil {
		return nil, err
	}
	ds, err := resolveDataset(p.cat, tn)
	if err != nil {
		return nil, err
	}
	r := &resolver{ds: ds, alias: alias}
	frag, err := r.build(sel)
	if err != nil {
		return nil, err
	}
	frag.QueryID = queryID
	if err := checkShape(frag, ds, true); err != nil {
		return nil, err
	}
	return &Plan{
		SQL:       sql,
		Fragment:  frag,
		Datasets:  []string{ds.FullName()},
		Usages:    Usages(frag, ds),
		Aggregate: aggregateOnly(frag),
	}, nil
}
