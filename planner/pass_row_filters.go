package planner

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// applyRowFilters is the pass "row_filters": the row filters of the grants
// the decision relies on go into the fragments of their datasets
// (Restrict), so rows outside a grant's scope never leave the department.
// It records every filter, "dataset: column in (v, ...)" sorted, in
// Plan.RowFilters for the audit entry.
func applyRowFilters(p *Plan, cat *sluice.Catalog, o *Obligations) error {
	if len(o.RowFilters) == 0 {
		return nil
	}
	for _, f := range p.fragments() {
		ds := cat.Dataset(splitName(f.Dataset))
		if ds == nil {
			continue
		}
		for _, rf := range o.RowFilters[f.Dataset] {
			if err := f.Restrict(ds, rf.Column, rf.Values); err != nil {
				return err
			}
		}
	}
	var shown []string
	for ds, fs := range o.RowFilters {
		for _, f := range fs {
			shown = append(shown, ds+": "+describeRowFilter(f))
		}
	}
	sort.Strings(shown)
	p.RowFilters = shown
	return nil
}

// describeRowFilter is a row filter as the audit entry shows it:
// "column in (v1, v2)".
func describeRowFilter(f *sluice.RowFilter) string {
	return fmt.Sprintf("%s in (%s)", f.Column, strings.Join(f.Values, ", "))
}

// Restrict narrows the fragment to the rows whose column holds one of the
// values: a grant's row filter (e.g. one district). It is ANDed with the
// fragment's own WHERE, so it applies before any grouping and the other
// rows never leave the department.
func (f *Fragment) Restrict(ds *sluice.Dataset, column string, values []string) error {
	col := ds.Column(column)
	if col == nil {
		return sluice.Errorf(sluice.EInvalid, "the grant's row filter names column %s, which %s does not have; ask the provider to fix the grant", column, ds.FullName())
	}
	if len(values) == 0 {
		return sluice.Errorf(sluice.EInvalid, "the grant's row filter on %s.%s has no values", ds.FullName(), col.Name)
	}
	in := &Expr{Kind: KindIn, Args: []*Expr{{Kind: KindColumn, Column: col.Name}}}
	for _, v := range values {
		lit, err := filterLiteral(col, v)
		if err != nil {
			return err
		}
		in.Args = append(in.Args, &Expr{Kind: KindLiteral, Literal: lit})
	}
	if f.Where == nil {
		f.Where = in
	} else {
		f.Where = &Expr{Kind: KindBinary, Op: "AND", Args: []*Expr{in, f.Where}}
	}
	return nil
}

func filterLiteral(col *sluice.Column, v string) (*Literal, error) {
	switch col.Type {
	case sluice.TypeInteger:
		if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "the grant's row filter value %q is not an integer, but column %s is", v, col.Name)
		}
		return &Literal{Type: LitInt, Text: strings.TrimSpace(v)}, nil
	case sluice.TypeFloat, sluice.TypeDecimal:
		if _, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "the grant's row filter value %q is not a number, but column %s is", v, col.Name)
		}
		return &Literal{Type: LitFloat, Text: strings.TrimSpace(v)}, nil
	case sluice.TypeBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "the grant's row filter value %q is not true or false, but column %s is boolean", v, col.Name)
		}
		return &Literal{Type: LitBool, Text: strconv.FormatBool(b)}, nil
	}
	return &Literal{Type: LitString, Text: v}, nil
}
