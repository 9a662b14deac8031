// Package planner turns an analyst's SQL into a resolved logical plan:
// parse (the PostgreSQL grammar, planner/sqlast), resolve names against the catalog, compute
// column lineage, split into per-department fragments with pushdown, and
// render fragment SQL for each target dialect with literals as bind
// parameters.
//
// A query goes through the planner in two steps:
//
//   - Planner.Plan plans it before the policy has decided: one fragment
//     for a single dataset (resolve.go, lineage.go), or one per dataset
//     occurrence plus the sandbox plan across datasets (multi.go). The
//     policy decides on the plan's datasets, column usages and join pairs.
//   - Plan.Apply then rewrites the allowed plan with what the policy
//     decided (Obligations), running the passes of passes.go in the order
//     that list declares; each pass is in its own pass_*.go file.
//
// Fragments (fragment.go) are what the department agents receive and
// render for their own database (render.go).
package planner

import (
	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// Planner plans analyst SQL against a catalog. It holds no mutable state,
// so one Planner serves concurrent queries.
type Planner struct {
	cat *sluice.Catalog
}

// New builds a planner over a catalog. Safe for concurrent use.
func New(cat *sluice.Catalog) *Planner { return &Planner{cat: cat} }

// Plan is a planned query. A query over one dataset is one fragment,
// pushed down whole to that dataset's agent (Fragment). A query over
// several datasets (joins, subqueries) is one fragment per table
// occurrence (Fragments) plus the residual plan the sandbox runs over
// their outputs (Sandbox); Fragment is then nil.
type Plan struct {
	SQL       string               // as the analyst wrote it
	Fragment  *Fragment            // single-dataset queries only: the whole query, pushed down to the one dataset's agent
	Datasets  []string             // department.dataset, sorted
	Usages    []sluice.ColumnUsage // one entry per source column used, across every fragment and the sandbox plan
	Aggregate bool                 // the result releases only aggregates over groups

	// RowFilters are the grants' row filters the row_filters pass added
	// to the fragments ("department.dataset: column in (v, ...)", sorted),
	// for the audit entry. Set by Apply.
	RowFilters []string

	// Multi-dataset queries only.

	// Fragments has one fragment per dataset occurrence (table alias), with
	// everything pushable pushed down: only the columns the sandbox needs
	// (output names "<alias>.<column>"; a PSI key is the first item) and
	// the conditions on that dataset alone.
	Fragments []*Fragment
	// Sandbox is the residual plan over the fragments' outputs.
	Sandbox *Node
	// JoinPairs lists every equality join key pair by source column, for
	// the policy's join_key rule (see JoinPair).
	JoinPairs []JoinPair
	// UnitSets are the contributor sets the sandbox plan carries to its
	// top for a protected release (the privacy_units pass, CountUnits);
	// the broker's gate checks and strips them.
	UnitSets []UnitSet
}

// SyntaxPass is one named rewrite or check of the analyst's syntax tree,
// run before planning.
type SyntaxPass struct {
	Name string
	Run  func(sel *sqlast.Select, sql string) error
}

// syntaxPasses run over the parsed query, in this order, the one place it
// is declared. Planning proper then resolves names, decorrelates
// subqueries (exists.go, scalar_subquery.go, IN in multi.go), orders
// joins (join_order.go), folds constants (fold_*.go) and pushes down; the
// rewrites of an allowed plan are the passes of passes.go.
var syntaxPasses = []SyntaxPass{
	{Name: "inline_ctes", Run: inlineCTEs},         // each reference to a WITH query becomes the derived table it names
	{Name: "check_supported", Run: checkSupported}, // what the grammar reads but the planner cannot plan yet, refused with its place
}

// Plan parses and plans one SELECT: over one dataset here, over several in
// planMulti (multi.go). queryID is copied into every fragment. The plan
// carries no obligations yet: once the policy has allowed it, Plan.Apply
// fills masks, minimum group size, requester and purpose and runs the
// other rewrites (passes.go).
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
		return nil, err
	}
	for _, pass := range syntaxPasses {
		if err := pass.Run(sel, sql); err != nil {
			return nil, err
		}
	}
	t, single := singleTable(sel.From)
	if !single || hasSubquery(sel.Exprs()...) || hasWindowSyntax(sel.Exprs()...) {
		return p.planMulti(queryID, sql, sel)
	}
	ds, err := resolveDataset(p.cat, t.Name)
	if err != nil {
		return nil, locate(err, sql, t.Name.Pos)
	}
	if len(t.ColumnAliases) > 0 {
		return nil, locate(notSupported("column aliases for a table (AS t(a, b)) are not supported yet; alias the columns in the select list"), sql, t.Name.Pos)
	}
	r := &resolver{sql: sql, ds: ds, alias: t.Alias}
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
