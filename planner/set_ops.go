package planner

import (
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner/sqlast"
)

// UNION, INTERSECT and EXCEPT [ALL]: each SELECT is planned on its own
// (as a subquery would be, so each shows the policy every source column
// it uses — the second SELECT of INTERSECT and EXCEPT too: its rows decide
// which of the first's are released, so its columns count as released),
// and a set node combines their rows in the sandbox, column by column:
// UNION stacks them, INTERSECT keeps the first's rows found in the second,
// EXCEPT those not found; without ALL each distinct row once. The output
// columns take their names from the first SELECT, as in PostgreSQL, and
// their types unify across the SELECTs. ORDER BY, LIMIT and OFFSET of the
// whole may name output columns or positions. In an aggregate-only
// release all three are refused (pass privacy_units): the groups of the
// second SELECT would decide the answer without being counted.

// Set operations other than UNION (Node.SetOp).
const (
	SetIntersect = "intersect"
	SetExcept    = "except"
)

func (m *mplan) planSetOp(sel *sqlast.Select, prefix string, outer *scopeSet) (*selPlan, error) {
	var setOp string
	switch sel.Op {
	case sqlast.Union:
	case sqlast.Intersect:
		setOp = SetIntersect
	case sqlast.Except:
		setOp = SetExcept
	default:
		return nil, m.at(notSupported("%s is not supported yet; UNION, INTERSECT and EXCEPT are", clip(string(sel.Op))), sel.Pos)
	}
	var branches []*selPlan
	for _, q := range []*sqlast.Select{sel.Left, sel.Right} {
		sp, err := m.planSelect(q, m.uniqAlias("union")+".", outer)
		if err != nil {
			return nil, err
		}
		branches = append(branches, sp)
	}
	l, r := branches[0], branches[1]
	if len(l.outs) != len(r.outs) {
		return nil, m.at(invalid("each SELECT of a %s must have the same number of columns: %d and %d", sel.Op, len(l.outs), len(r.outs)), sel.Pos)
	}
	n := &Node{Op: OpUnion, UnionAll: sel.All, SetOp: setOp, Inputs: []*Node{l.node, r.node}}
	for i := range l.outs {
		lm, rm := m.meta[l.outs[i]], m.meta[r.outs[i]]
		if lm == nil || rm == nil {
			return nil, sluice.Errorf(sluice.EInternal, "the planner lost track of a UNION column; please report it with the query text")
		}
		lt, rt := m.metaType(lm), m.metaType(rm)
		u, ok := unify([]typ{lt, rt})
		if !ok {
			return nil, m.at(invalid("column %d of the %s is %s in one SELECT and %s in the other; give both the same kind of value", i+1, sel.Op, typeName(lt), typeName(rt)), sel.Pos)
		}
		_, name, _ := strings.Cut(l.outs[i], ".")
		out := prefix + name
		n.Outputs = append(n.Outputs, out)
		m.meta[out] = &colMeta{col: sluice.Column{Name: out, Type: u.t, Release: sluice.ReleasePlain}, frag: -1}
	}
	var node *Node = n
	var keys []SortKey
	for _, o := range sel.OrderBy {
		if err := nullsOrder(o); err != nil {
			return nil, m.at(err, o.Pos)
		}
		col := ""
		switch x := o.Expr.(type) {
		case *sqlast.Literal:
			if i, err := strconv.Atoi(x.Text); err == nil && x.Kind == sqlast.LitInt && i >= 1 && i <= len(n.Outputs) {
				col = n.Outputs[i-1]
			}
		case *sqlast.ColumnRef:
			for _, out := range n.Outputs {
				_, name, _ := strings.Cut(out, ".")
				if prefix == "" {
					name = out
				}
				if x.Table == nil && strings.EqualFold(name, x.Name) {
					col = out
				}
			}
		}
		if col == "" {
			return nil, m.at(notSupported("ORDER BY of a %s may name its output columns or their positions; other keys are not supported yet", sel.Op), o.Pos)
		}
		keys = append(keys, SortKey{Column: col, Desc: o.Desc})
	}
	if len(keys) > 0 {
		node = &Node{Op: OpSort, SortKeys: keys, Inputs: []*Node{node}}
	}
	var limit *int64
	var offset int64
	if sel.Limit != nil {
		v, err := limitValue(sel.Limit, "LIMIT")
		if err != nil {
			return nil, m.at(err, sel.Limit.Position())
		}
		limit = &v
	}
	if sel.Offset != nil {
		v, err := limitValue(sel.Offset, "OFFSET")
		if err != nil {
			return nil, m.at(err, sel.Offset.Position())
		}
		offset = v
	}
	if limit != nil || offset != 0 {
		node = &Node{Op: OpLimit, Limit: limit, Offset: offset, Inputs: []*Node{node}}
	}
	return &selPlan{node: node, outs: n.Outputs, logical: &Fragment{}}, nil
}
