package planner

import (
	"strconv"
	"strings"
)

// Node is one operator of the sandbox plan of a multi-dataset query: the
// residual work over the fragments' outputs that no single department can
// do. Every column a node refers to is an OUTPUT column name of its
// input(s): a fragment output ("<alias>.<column>"), a derived-table
// output ("<alias>.<name>"), a name the planner generated ("$n"), or, at
// the top project only, the analyst's output name. Names are unique
// across the whole plan, so the inputs of a join never share a name.
//
// The sandbox plan is rendered to DuckDB SQL from the plan itself (never
// from the analyst's text) by RenderDuckDB (render_duckdb.go), and runs in
// the sandbox engine (sandbox/engine) over the fragments' Arrow batches.
type Node struct {
	// Op is fragment | join | filter | aggregate | project | sort | limit | distinct.
	Op string `json:"op"`
	// Fragment indexes Plan.Fragments (Op "fragment"); its output columns
	// are the fragment's select aliases.
	Fragment int     `json:"fragment,omitempty"`
	Inputs   []*Node `json:"inputs,omitempty"`

	// JoinKind is inner | left | semi | anti (Op "join"). A left join keeps every
	// left row, null-extending the right columns when no right row
	// satisfies the keys AND the residual (ON semantics). A semi join
	// outputs each left row that has at least one right row matching the
	// keys (and residual), once; an anti join each left row that has none
	// (NOT EXISTS: a NULL key matches nothing); their output is the left
	// columns only.
	JoinKind string `json:"join_kind,omitempty"`
	// NullAware makes an anti join one of NOT IN (SELECT ...): with one
	// key, a left row whose key is NULL, or any right key NULL, keeps no
	// row (when the right input has rows at all).
	NullAware bool `json:"null_aware,omitempty"`
	// Keys are the equality keys: Left names a column of Inputs[0], Right
	// of Inputs[1]. NULL keys never match.
	Keys []JoinKey `json:"keys,omitempty"`
	// PSI: the one key pair is a join_key column of KeyDomain on both
	// sides, and both inputs are fragment nodes: the join runs as private
	// set intersection (each fragment's first select item is its key, which
	// the agent blinds). After a PSI join the key columns hold blinded
	// values; the planner never refers to them above the join.
	PSI       bool   `json:"psi,omitempty"`
	KeyDomain string `json:"key_domain,omitempty"`
	// Residual holds the non-equality ON conditions (and, for a PSI join,
	// any further equalities), over the columns of both inputs.
	Residual *Expr `json:"residual,omitempty"`

	// Predicate filters rows (Op "filter"); NULL counts as false.
	Predicate *Expr `json:"predicate,omitempty"`

	// GroupBy and Aggs (Op "aggregate"): the output is the group keys
	// (under their input names) followed by one column per Agg. With no
	// GroupBy the aggregate yields exactly one row, even over no input.
	GroupBy []string `json:"group_by,omitempty"`
	Aggs    []Agg    `json:"aggs,omitempty"`

	// Items (Op "project"): Expr columns refer to input column names;
	// Alias is the output name. Exprs contain no aggregates.
	Items []SelectItem `json:"items,omitempty"`

	// SortKeys (Op "sort"): ascending puts NULLs first, descending last
	// (the order of SQLite and MySQL, which fragments use too); ties keep
	// no particular order.
	SortKeys []SortKey `json:"sort_keys,omitempty"`
	// Outputs and UnionAll (Op "union"): the rows of Inputs[0] and then
	// those of Inputs[1], column i of each under the name Outputs[i];
	// without UnionAll each distinct row once.
	Outputs  []string `json:"outputs,omitempty"`
	UnionAll bool     `json:"union_all,omitempty"`
	// SetOp turns the union node into INTERSECT ("intersect": the rows of
	// Inputs[0] also in Inputs[1]) or EXCEPT ("except": those not in
	// Inputs[1]); NULLs compare equal, as in every set operation, and
	// UnionAll keeps duplicates by count (INTERSECT ALL, EXCEPT ALL).
	SetOp string `json:"set_op,omitempty"`

	// Windows (Op "window"): the input's columns and then one column per
	// window function, computed over the input's rows.
	Windows []WindowFunc `json:"windows,omitempty"`

	// Limit and Offset (Op "limit"): Limit nil means no limit.
	Limit  *int64 `json:"limit,omitempty"`
	Offset int64  `json:"offset,omitempty"`
}

// Sandbox operators.
const (
	OpFragment  = "fragment"
	OpJoin      = "join"
	OpFilter    = "filter"
	OpAggregate = "aggregate"
	OpProject   = "project"
	OpSort      = "sort"
	OpLimit     = "limit"
	OpDistinct  = "distinct"
	OpUnion     = "union"
	OpWindow    = "window"
)

// Join kinds.
const (
	JoinInner = "inner"
	JoinLeft  = "left"
	JoinSemi  = "semi"
	JoinAnti  = "anti"
)

// oneRow reports whether n yields at most one row whatever its inputs: an
// aggregate without groups (exactly one), and a filter, projection, sort
// or limit over such.
func (n *Node) oneRow(depth int) bool {
	if n == nil || depth > 4*maxExprDepth {
		return false
	}
	switch n.Op {
	case OpAggregate:
		return len(n.GroupBy) == 0
	case OpFilter, OpProject, OpSort, OpLimit:
		return len(n.Inputs) == 1 && n.Inputs[0].oneRow(depth+1)
	}
	return false
}

// leftOnly reports whether a join outputs its left input's columns only
// (a semi or anti join: the right side decides which left rows stay).
func (n *Node) leftOnly() bool {
	return n.Op == OpJoin && (n.JoinKind == JoinSemi || n.JoinKind == JoinAnti)
}

// WindowFunc is one window function of a window node: Func (row_number,
// rank, dense_rank without Column; count with Column "" for count(*);
// count, sum, avg, min, max of Column) over the rows with the same
// PartitionBy values, ordered by OrderBy (the default frame: from the
// partition's first row to the current row and its peers when ordered,
// the whole partition otherwise). NULLs sort as in a sort node.
type WindowFunc struct {
	Func        string    `json:"func"`
	Column      string    `json:"column,omitempty"`
	PartitionBy []string  `json:"partition_by,omitempty"`
	OrderBy     []SortKey `json:"order_by,omitempty"`
	Alias       string    `json:"alias"`
}

// JoinKey is one equality key of a join: Left = Right.
type JoinKey struct {
	Left  string `json:"left"`
	Right string `json:"right"`
}

// Agg is one aggregate of an aggregate node. Func is count_star (Column
// empty) | count | count_distinct | sum | avg | min | max; count and
// count_distinct ignore NULLs, sum/avg/min/max of no non-NULL value are
// NULL, count of none is 0.
type Agg struct {
	Func   string `json:"func"`
	Column string `json:"column,omitempty"`
	Alias  string `json:"alias"`
}

// SortKey is one key of a sort node.
type SortKey struct {
	Column string `json:"column"`
	Desc   bool   `json:"desc,omitempty"`
}

// ColumnRef names one source column.
type ColumnRef struct {
	Dataset string `json:"dataset"` // department.dataset
	Column  string `json:"column"`
}

// JoinPair records one equality join key pair by its source columns, for
// the policy: a join_key column may be used as a join key only with
// another join_key column of the same key domain, through PSI. A side that
// is not a bare source column (an expression, an aggregate, a value
// computed in a subquery) has an empty ColumnRef.
type JoinPair struct {
	Left      ColumnRef `json:"left"`
	Right     ColumnRef `json:"right"`
	PSI       bool      `json:"psi,omitempty"`
	KeyDomain string    `json:"key_domain,omitempty"`
}

// OutermostAggregate is the first aggregate met from n (depth first, inputs
// in order): the one whose groups a release gate checks; inner aggregates
// feed it. Nil when the plan does not aggregate.
func (n *Node) OutermostAggregate() *Node {
	if n == nil {
		return nil
	}
	if n.Op == OpAggregate {
		return n
	}
	for _, in := range n.Inputs {
		if a := in.OutermostAggregate(); a != nil {
			return a
		}
	}
	return nil
}

// Normalized renders the sandbox plan as an indented tree in a canonical
// text form for audit records and golden files. Fragments are named by
// their index in Plan.Fragments.
func (n *Node) Normalized() string {
	var b strings.Builder
	n.norm(&b, 0)
	return strings.TrimSuffix(b.String(), "\n")
}

func (n *Node) norm(b *strings.Builder, depth int) {
	if n == nil {
		b.WriteString(strings.Repeat("  ", depth) + "<nil>\n")
		return
	}
	if depth > maxExprDepth {
		b.WriteString(strings.Repeat("  ", depth) + "<too deep>\n")
		return
	}
	b.WriteString(strings.Repeat("  ", depth))
	switch n.Op {
	case OpFragment:
		b.WriteString("fragment " + strconv.Itoa(n.Fragment))
	case OpJoin:
		b.WriteString("join " + n.JoinKind)
		if n.NullAware {
			b.WriteString(" null-aware")
		}
		if n.PSI {
			b.WriteString(" psi(" + n.KeyDomain + ")")
		}
		for i, k := range n.Keys {
			if i == 0 {
				b.WriteString(" keys ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(k.Left + " = " + k.Right)
		}
		if n.Residual != nil {
			b.WriteString(" residual " + normExpr(n.Residual, 0))
		}
	case OpFilter:
		b.WriteString("filter " + normExpr(n.Predicate, 0))
	case OpAggregate:
		b.WriteString("aggregate")
		if len(n.GroupBy) > 0 {
			b.WriteString(" group " + strings.Join(n.GroupBy, ", "))
		}
		for i, a := range n.Aggs {
			if i == 0 {
				b.WriteString(" aggs ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(a.Func + "(" + a.Column + ") AS " + quoteNorm(a.Alias))
		}
	case OpProject:
		b.WriteString("project ")
		for i, it := range n.Items {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(normExpr(it.Expr, 0) + " AS " + quoteNorm(it.Alias))
		}
	case OpSort:
		b.WriteString("sort ")
		for i, k := range n.SortKeys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k.Column)
			if k.Desc {
				b.WriteString(" DESC")
			}
		}
	case OpLimit:
		b.WriteString("limit")
		if n.Limit != nil {
			b.WriteString(" " + strconv.FormatInt(*n.Limit, 10))
		}
		if n.Offset != 0 {
			b.WriteString(" offset " + strconv.FormatInt(n.Offset, 10))
		}
	case OpDistinct:
		b.WriteString("distinct")
	case OpWindow:
		b.WriteString("window ")
		for i, w := range n.Windows {
			if i > 0 {
				b.WriteString(", ")
			}
			var spec []string
			if len(w.PartitionBy) > 0 {
				spec = append(spec, "partition "+strings.Join(w.PartitionBy, ", "))
			}
			if len(w.OrderBy) > 0 {
				var ks []string
				for _, k := range w.OrderBy {
					if k.Desc {
						ks = append(ks, k.Column+" DESC")
					} else {
						ks = append(ks, k.Column)
					}
				}
				spec = append(spec, "order "+strings.Join(ks, ", "))
			}
			b.WriteString(w.Func + "(" + w.Column + ") over (" + strings.Join(spec, " ") + ") AS " + quoteNorm(w.Alias))
		}
	case OpUnion:
		if n.SetOp != "" {
			b.WriteString(clip(n.SetOp))
		} else {
			b.WriteString("union")
		}
		if n.UnionAll {
			b.WriteString(" all")
		}
		b.WriteString(" " + strings.Join(n.Outputs, ", "))
	default:
		b.WriteString("<" + clip(n.Op) + ">")
	}
	b.WriteString("\n")
	for _, in := range n.Inputs {
		in.norm(b, depth+1)
	}
}

// Normalized renders the whole plan: the single fragment of a
// single-dataset query, or every fragment and the sandbox plan.
func (p *Plan) Normalized() string {
	if p == nil {
		return ""
	}
	if p.Fragment != nil {
		return p.Fragment.Normalized()
	}
	var b strings.Builder
	for i, f := range p.Fragments {
		b.WriteString("-- fragment " + strconv.Itoa(i) + "\n" + f.Normalized() + "\n")
	}
	b.WriteString("-- sandbox\n" + p.Sandbox.Normalized())
	return b.String()
}
