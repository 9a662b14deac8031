package planner

import (
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// Window functions: f(x) OVER (PARTITION BY p ORDER BY o) in the select
// list or ORDER BY of a query that does not aggregate. The planner moves
// each into a window node of the sandbox plan, computed over the rows the
// query selects (after WHERE, before DISTINCT, ORDER BY and LIMIT), and
// the lineage tells the policy how each column is used: a window
// function's argument is released row by row (a window SUM over a
// partition of one person is that person's value), so it is an output, not
// an aggregate; partition keys group rows; order keys order them. A window
// over an aggregate-only column, or partitioned or ordered by a private
// join key, is therefore denied by the policy's usual rules.

// hasWindowSyntax reports whether the analyst's expressions hold a window
// function (the query then plans through the sandbox).
func hasWindowSyntax(es ...sqlast.Expr) bool {
	found := false
	for _, e := range es {
		sqlast.Walk(e, func(x sqlast.Expr) bool {
			if f, ok := x.(*sqlast.Func); ok && f.Over != nil {
				found = true
			}
			return !found
		})
	}
	return found
}

// planWindows moves the window functions of L's select list and ORDER BY
// into a window node above node, replacing each by the column it
// computes. It returns node unchanged when L has none.
func (m *mplan) planWindows(node *Node, L *Fragment) (*Node, error) {
	found := false
	for _, it := range L.Select {
		found = found || hasWindow(it.Expr)
	}
	for _, o := range L.OrderBy {
		found = found || hasWindow(o.Expr)
	}
	if !found {
		return node, nil
	}
	if isGrouped(L) {
		return nil, notSupported("window functions in a query with GROUP BY or aggregates are not supported yet; aggregate in a subquery and apply the window above it")
	}
	w := &Node{Op: OpWindow, Inputs: []*Node{node}}
	column := func(e *Expr) (string, error) {
		if e.Kind != KindColumn {
			return "", notSupported("a window function's argument, PARTITION BY and ORDER BY keys must be columns; compute %s in a subquery first", normExpr(displayExpr(e), 0))
		}
		return e.Column, nil
	}
	var move func(e *Expr) (*Expr, error)
	move = func(e *Expr) (*Expr, error) {
		if e == nil {
			return nil, nil
		}
		if e.Kind == KindWindow {
			wf := WindowFunc{Func: e.Func, Alias: m.gen()}
			for i, a := range e.Args {
				switch {
				case i < e.NArgs:
					if a.Kind == KindStar {
						continue
					}
					c, err := column(a)
					if err != nil {
						return nil, err
					}
					wf.Column = c
				case i < e.NArgs+e.NPart:
					c, err := column(a)
					if err != nil {
						return nil, err
					}
					wf.PartitionBy = append(wf.PartitionBy, c)
				default:
					c, err := column(a)
					if err != nil {
						return nil, err
					}
					wf.OrderBy = append(wf.OrderBy, SortKey{Column: c, Desc: e.Desc[i-e.NArgs-e.NPart]})
				}
			}
			for _, x := range w.Windows {
				if x.Func == wf.Func && x.Column == wf.Column && strings.Join(x.PartitionBy, "\\x00") == strings.Join(wf.PartitionBy, "\\x00") && sortKeysEqual(x.OrderBy, wf.OrderBy) {
					return &Expr{Kind: KindColumn, Column: x.Alias}, nil
				}
			}
			w.Windows = append(w.Windows, wf)
			t, _ := (&checker{ds: &sluice.Dataset{}, windows: true}).windowType(e.Func, m.columnType(wf.Column))
			m.meta[wf.Alias] = &colMeta{col: sluice.Column{Name: wf.Alias, Type: t, Release: sluice.ReleasePlain}, frag: -1}
			return &Expr{Kind: KindColumn, Column: wf.Alias}, nil
		}
		c := *e
		c.Args = make([]*Expr, len(e.Args))
		for i, a := range e.Args {
			x, err := move(a)
			if err != nil {
				return nil, err
			}
			c.Args[i] = x
		}
		return &c, nil
	}
	for i, it := range L.Select {
		e, err := move(it.Expr)
		if err != nil {
			return nil, err
		}
		L.Select[i].Expr = e
	}
	for i, o := range L.OrderBy {
		e, err := move(o.Expr)
		if err != nil {
			return nil, err
		}
		L.OrderBy[i].Expr = e
	}
	return w, nil
}

func sortKeysEqual(a, b []SortKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// columnType is the catalog type of an internal column, "" when unknown.
func (m *mplan) columnType(c string) sluice.ColumnType {
	if c == "" {
		return ""
	}
	if meta := m.meta[c]; meta != nil {
		return m.metaType(meta).t
	}
	return ""
}
