package planner

import (
	"sort"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// lineage records how a fragment uses each source column. The policy
// denies on these usages, so every walk errs towards recording more: a
// missed usage would be a leak.
type lineage struct {
	dataset string
	ds      *sluice.Dataset
	cols    map[string]*sluice.ColumnUsage // by lower-case column name
}

func (l *lineage) add(col string, u sluice.Usage, transformed bool) {
	name := col
	if c := l.ds.Column(col); c != nil {
		name = c.Name
	}
	key := strings.ToLower(name)
	cu := l.cols[key]
	if cu == nil {
		cu = &sluice.ColumnUsage{Dataset: l.dataset, Column: name}
		l.cols[key] = cu
	}
	if !cu.Has(u) {
		cu.Usages = append(cu.Usages, u)
	}
	if transformed {
		cu.Transformed = true
	}
}

// walk records the columns of e under usage u. Inside an aggregate every
// column is an aggregate use instead, of the kind aggregateUse says. top
// is true while e is the whole output expression, so a bare output column
// is not "transformed".
func (l *lineage) walk(e *Expr, u sluice.Usage, top bool) {
	if e == nil {
		return
	}
	switch e.Kind {
	case KindColumn:
		l.add(e.Column, u, u == sluice.UseOutput && !top)
		return
	case KindAggregate:
		if len(e.Args) == 1 && e.Args[0] != nil && e.Args[0].Kind == KindColumn {
			l.add(e.Args[0].Column, aggregateUse(e.Func, e.Distinct), false)
			return
		}
		// An argument that is an expression: every column in it is an
		// aggregate-expression use, and CASE conditions also filter.
		for _, a := range e.Args {
			l.walkAll(a, sluice.UseAggregateExpression)
			caseConditions(a, func(c *Expr) { l.walkAll(c, sluice.UsePredicate) })
		}
		return
	case KindCase:
		// A CASE condition filters values as a WHERE would: besides the
		// use of its context, its columns are also predicates.
		for _, a := range e.Args {
			l.walk(a, u, false)
		}
		caseConditions(e, func(c *Expr) { l.walkAll(c, sluice.UsePredicate) })
		return
	}
	for _, a := range e.Args {
		l.walk(a, u, false)
	}
}

// aggregateUse is the usage of the bare column argument of an aggregate:
// MIN and MAX release one row's value (an order statistic), DISTINCT
// counts or adds values rather than rows.
func aggregateUse(fn string, distinct bool) sluice.Usage {
	switch {
	case fn == "min" || fn == "max":
		return sluice.UseOrderStatistic
	case distinct:
		return sluice.UseDistinctAggregate
	}
	return sluice.UseAggregate
}

// walkAll records usage u for every column of e, inside aggregates or not.
func (l *lineage) walkAll(e *Expr, u sluice.Usage) {
	if e == nil {
		return
	}
	if e.Kind == KindColumn {
		l.add(e.Column, u, false)
	}
	for _, a := range e.Args {
		l.walkAll(a, u)
	}
}

// Usages computes the column lineage of f over dataset ds: one entry per
// source column, sorted by column, each with its usages sorted.
func Usages(f *Fragment, ds *sluice.Dataset) []sluice.ColumnUsage {
	if f == nil || ds == nil {
		return nil
	}
	l := &lineage{dataset: ds.FullName(), ds: ds, cols: map[string]*sluice.ColumnUsage{}}
	for _, it := range f.Select {
		l.walk(it.Expr, sluice.UseOutput, true)
	}
	l.walk(f.Where, sluice.UsePredicate, false)
	for _, g := range f.GroupBy {
		l.walk(g, sluice.UseGroup, false)
	}
	l.walk(f.Having, sluice.UsePredicate, false)
	for _, o := range f.OrderBy {
		l.walk(o.Expr, sluice.UseOrder, false)
	}
	out := make([]sluice.ColumnUsage, 0, len(l.cols))
	for _, cu := range l.cols {
		sort.Slice(cu.Usages, func(i, j int) bool { return cu.Usages[i] < cu.Usages[j] })
		out = append(out, *cu)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dataset != out[j].Dataset {
			return out[i].Dataset < out[j].Dataset
		}
		return out[i].Column < out[j].Column
	})
	return out
}

// aggregateOnly reports whether f releases only aggregates: it is grouped,
// and every output item is an aggregate or built from GROUP BY keys.
func aggregateOnly(f *Fragment) bool {
	if !isGrouped(f) {
		return false
	}
	for _, it := range f.Select {
		if ungroupedColumn(it.Expr, f.GroupBy) != "" {
			return false
		}
	}
	return true
}
