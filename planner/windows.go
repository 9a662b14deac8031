package planner

import (
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// Window functions: f(x) OVER (PARTITION BY p ORDER BY o) in the select
// list or ORDER BY. The planner moves each into a window node of the
// sandbox plan, computed over the rows the query selects (after WHERE,
// before DISTINCT, ORDER BY and LIMIT) — in a query that aggregates, over
// its groups (after GROUP BY and HAVING, as SQL orders them), where a
// window's argument and keys may be group keys and aggregates:
//
//	SELECT district, count(*) AS n, rank() OVER (ORDER BY count(*) DESC) FROM ... GROUP BY district
//
// and
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
	if !hasWindows(L) {
		return node, nil
	}
	if isGrouped(L) {
		return nil, sluice.Errorf(sluice.EInternal, "the planner placed a window below the aggregate; please report it with the query text")
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

// hasWindows reports whether L's select list or ORDER BY holds a window
// function.
func hasWindows(L *Fragment) bool {
	for _, it := range L.Select {
		if hasWindow(it.Expr) {
			return true
		}
	}
	for _, o := range L.OrderBy {
		if hasWindow(o.Expr) {
			return true
		}
	}
	return false
}

// groupedColumns gives the aggregate's outputs their types (from the
// expressions they stand for, over synth), so windows and the columns
// above know them, and returns synth with those columns added.
func (m *mplan) groupedColumns(synth *sluice.Dataset, keys []groupKey, aggExprs []*Expr, aggs []Agg) (*sluice.Dataset, error) {
	c := &checker{ds: synth, maybeMasked: true}
	out := *synth
	out.Columns = append([]*sluice.Column(nil), synth.Columns...)
	add := func(name string, e *Expr) error {
		if m.meta[name] != nil && e.Kind == KindColumn {
			return nil
		}
		t, err := c.check(e, true, false, 0)
		if err != nil {
			return err
		}
		col := sluice.Column{Name: name, Type: t.t, Release: sluice.ReleasePlain}
		m.meta[name] = &colMeta{col: col, frag: -1}
		out.Columns = append(out.Columns, &col)
		return nil
	}
	for _, k := range keys {
		if err := add(k.name, k.expr); err != nil {
			return nil, err
		}
	}
	for i, e := range aggExprs {
		if err := add(aggs[i].Alias, e); err != nil {
			return nil, err
		}
	}
	return &out, nil
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
