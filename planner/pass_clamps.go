package planner

import (
	"math"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Differential privacy releases COUNT and SUM with Laplace noise scaled to
// each value's sensitivity: how far one individual can move it. A COUNT
// moves by 1; a SUM by as much as one source value, which is unbounded
// unless each value is clamped to bounds the grant states. ClampSums
// rewrites every SUM(col) a release under a budget computes into
//
//	SUM(CASE WHEN col < lo THEN lo WHEN col > hi THEN hi ELSE col END)
//
// (in the fragment the agent runs for one dataset, or in a sandbox project
// just below the aggregate across departments), so no value beyond the
// bounds is ever summed. NoisyOutputs and NoisyAggs read the bounds back
// from that very expression to give the release gate its sensitivity,
// max(|lo|, |hi|): the noise is always scaled to the clamp that ran.
//
// Under a budget only aggregates may be released, and only COUNT and
// clamped SUM of a column; anything else (AVG, MIN, MAX, SUM of an
// expression, an expression over an aggregate, an aggregate in HAVING or
// ORDER BY, which would be decided on exact values) is refused.

// clampUnderBudget is the pass "clamps": under a differential-privacy
// budget, before any budget is reserved (a query that cannot be released
// under the noise is refused for free), every budgeted dataset must
// declare its privacy unit (CheckPrivacyUnits) and every SUM is clamped to
// the bounds its grants state (ClampSums).
func clampUnderBudget(p *Plan, cat *sluice.Catalog, o *Obligations) error {
	if len(o.Budgets) == 0 {
		return nil
	}
	if err := CheckPrivacyUnits(cat, o.Budgets); err != nil {
		return err
	}
	return p.ClampSums(cat, o.Bounds)
}

// CheckPrivacyUnits refuses a release under a budget on a dataset that
// does not say one row is one person: the noise covers one row, and a
// person with several rows would stand out by more than it hides.
func CheckPrivacyUnits(cat *sluice.Catalog, budgets []Budget) error {
	for _, d := range budgets {
		ds := cat.Dataset(splitName(d.Dataset))
		if ds == nil {
			return sluice.Errorf(sluice.EInternal, "the policy relied on grant %s on dataset %s, which the catalog does not have", d.Grant, d.Dataset)
		}
		if ds.PrivacyUnit() == nil {
			return sluice.Errorf(sluice.ENotSupported, "under the differential-privacy budget of grant %s: %s declares no unique person identifier (a join_key column with unique: true), so one row is not known to be one person and the noise could not cover a person with several rows; not supported yet, ask the provider's data admin", d.Grant, ds.FullName())
		}
	}
	return nil
}

// BoundsFunc returns the clamp bounds the grants give a column of a
// dataset, or the error explaining why a SUM over it cannot be released.
type BoundsFunc func(dataset, column string) (sluice.Bounds, error)

// NoisyOutput is an output the release gate adds noise to.
type NoisyOutput struct {
	Name        string  // the output column: a fragment alias, or an aggregate node's alias
	Sum         bool    // a clamped SUM; otherwise a COUNT
	Sensitivity float64 // 1 for a COUNT, max(|lo|, |hi|) for a SUM
}

// maxExactBound keeps bounds where float64 holds every integer, so the
// sensitivity read back from a literal is never below the bound applied.
const maxExactBound = 1 << 53

// clampPrefix names the sandbox columns holding clamped values.
const clampPrefix = "$clamp"

func dpRefuse(format string, args ...any) error {
	return sluice.Errorf(sluice.ENotSupported, "under a differential-privacy budget "+format, args...)
}

// ClampSums prepares an allowed plan for a release under a differential-
// privacy budget: it checks that every aggregate the plan releases can be
// noised, and clamps the input of every SUM to the bounds that bounds
// gives for its source column. It runs once, after the masks are set; the
// catalog gives each column's type, which the bound literals follow.
func (p *Plan) ClampSums(cat *sluice.Catalog, bounds BoundsFunc) error {
	if p == nil || cat == nil || bounds == nil {
		return sluice.Errorf(sluice.EInternal, "clamping sums: no plan, catalog or bounds")
	}
	if p.Fragment != nil {
		ds := cat.Dataset(splitName(p.Fragment.Dataset))
		if ds == nil {
			return sluice.Errorf(sluice.EInternal, "clamping sums: the catalog has no dataset %s", p.Fragment.Dataset)
		}
		return p.Fragment.clampSums(ds, bounds)
	}
	return p.clampSandbox(cat, bounds)
}

func splitName(full string) (string, string) {
	d, n, _ := strings.Cut(full, ".")
	return d, n
}

// clampSums checks and rewrites a single-dataset fragment.
func (f *Fragment) clampSums(ds *sluice.Dataset, bounds BoundsFunc) error {
	if hasAggregate(f.Having) {
		return dpRefuse("HAVING cannot test an aggregate: it would keep or drop groups on exact values; filter the released result instead")
	}
	for _, o := range f.OrderBy {
		if hasAggregate(o.Expr) {
			return dpRefuse("ORDER BY cannot sort on an aggregate: the order would follow exact values; sort the released result instead")
		}
	}
	aggs := 0
	for i, it := range f.Select {
		e := it.Expr
		if e.Kind != KindAggregate {
			if hasAggregate(e) {
				return dpRefuse("%s computes on an aggregate, which would leave without noise; select the aggregate itself and compute on the released value", it.Alias)
			}
			continue // a group key
		}
		aggs++
		switch e.Func {
		case "count":
			continue
		case "sum":
		case "avg":
			return dpRefuse("AVG is not released (%s): use SUM and COUNT, each noised, and divide", it.Alias)
		default:
			return dpRefuse("only COUNT and SUM are released; %s (%s) has no noisy release", strings.ToUpper(e.Func), it.Alias)
		}
		if e.Distinct {
			return dpRefuse("SUM(DISTINCT ...) is not released (%s); use SUM", it.Alias)
		}
		arg := e.Args[0]
		if arg.Kind != KindColumn {
			return dpRefuse("SUM can only add up a column the grant bounds, not the expression %s (%s): clamp bounds hold for a column's values; sum a column", normExpr(arg, 0), it.Alias)
		}
		col := ds.Column(arg.Column)
		if col == nil {
			return sluice.Errorf(sluice.EInternal, "clamping sums: %s has no column %s", ds.FullName(), arg.Column)
		}
		b, err := bounds(ds.FullName(), col.Name)
		if err != nil {
			return err
		}
		c, err := clampExpr(&Expr{Kind: KindColumn, Column: col.Name}, col, b, ds.FullName())
		if err != nil {
			return err
		}
		f.Select[i].Expr = &Expr{Kind: KindAggregate, Func: "sum", Args: []*Expr{c}}
	}
	if aggs == 0 {
		return dpRefuse("only aggregates are released: COUNT, and SUM of a column the grant bounds; add COUNT(*) and GROUP BY")
	}
	return nil
}

// clampExpr is CASE WHEN v < lo THEN lo WHEN v > hi THEN hi ELSE v END,
// with the bounds as literals of the column's kind: an integer column is
// clamped to the whole numbers within the bounds, so it stays integer.
func clampExpr(v *Expr, col *sluice.Column, b sluice.Bounds, dataset string) (*Expr, error) {
	lo, hi := b.Lo(), b.Hi()
	switch col.Type {
	case sluice.TypeInteger:
		lo, hi = math.Ceil(lo), math.Floor(hi)
	case sluice.TypeFloat, sluice.TypeDecimal:
	default:
		return nil, dpRefuse("SUM needs a numeric column; %s.%s is %s", dataset, col.Name, col.Type)
	}
	name := dataset + "." + col.Name
	switch {
	case math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0):
		return nil, dpRefuse("the clamp bounds %s of %s are not finite; ask the provider to fix the grant", b, name)
	case math.Abs(lo) > maxExactBound || math.Abs(hi) > maxExactBound:
		return nil, dpRefuse("the clamp bounds %s of %s exceed ±2^53; ask the provider for tighter bounds", b, name)
	case !(lo < hi):
		return nil, dpRefuse("the clamp bounds %s of %s leave no range of values to sum; ask the provider to fix the grant", b, name)
	}
	lit := func(x float64) *Expr {
		if x == math.Trunc(x) {
			return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitInt, Text: strconv.FormatInt(int64(x), 10)}}
		}
		return &Expr{Kind: KindLiteral, Literal: &Literal{Type: LitFloat, Text: strconv.FormatFloat(x, 'g', -1, 64)}}
	}
	return &Expr{Kind: KindCase, HasElse: true, Args: []*Expr{
		{Kind: KindBinary, Op: "<", Args: []*Expr{cloneExpr(v), lit(lo)}}, lit(lo),
		{Kind: KindBinary, Op: ">", Args: []*Expr{cloneExpr(v), lit(hi)}}, lit(hi),
		cloneExpr(v),
	}}, nil
}

// clampOf recognises an expression clampExpr built and returns its bounds.
func clampOf(e *Expr) (sluice.Bounds, bool) {
	if e == nil || e.Kind != KindCase || e.HasOperand || !e.HasElse || len(e.Args) != 5 {
		return sluice.Bounds{}, false
	}
	v := e.Args[4]
	if v == nil || v.Kind != KindColumn {
		return sluice.Bounds{}, false
	}
	bound := func(cond, then *Expr, op string) (float64, bool) {
		if cond == nil || cond.Kind != KindBinary || cond.Op != op || len(cond.Args) != 2 || !exprEqual(cond.Args[0], v) {
			return 0, false
		}
		x, ok := numLiteral(cond.Args[1])
		if !ok || !exprEqual(then, cond.Args[1]) {
			return 0, false
		}
		return x, true
	}
	lo, ok1 := bound(e.Args[0], e.Args[1], "<")
	hi, ok2 := bound(e.Args[2], e.Args[3], ">")
	if !ok1 || !ok2 || !(lo < hi) || math.Abs(lo) > maxExactBound || math.Abs(hi) > maxExactBound {
		return sluice.Bounds{}, false
	}
	return sluice.Bounds{lo, hi}, true
}

func numLiteral(e *Expr) (float64, bool) {
	if e == nil || e.Kind != KindLiteral || e.Literal == nil {
		return 0, false
	}
	switch e.Literal.Type {
	case LitInt:
		n, err := strconv.ParseInt(e.Literal.Text, 10, 64)
		return float64(n), err == nil
	case LitFloat:
		x, err := strconv.ParseFloat(e.Literal.Text, 64)
		return x, err == nil && !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return 0, false
}

// NoisyOutputs lists the outputs of a fragment prepared by ClampSums that
// the release gate must noise: every COUNT, and every SUM with the
// sensitivity of the clamp it computes. A SUM that does not clamp its
// input, or any other aggregate, is an error: the gate must never noise a
// sum it cannot bound.
func (f *Fragment) NoisyOutputs() ([]NoisyOutput, error) {
	var out []NoisyOutput
	for _, it := range f.Select {
		e := it.Expr
		if e.Kind != KindAggregate {
			if hasAggregate(e) {
				return nil, dpRefuse("%s computes on an aggregate", it.Alias)
			}
			continue
		}
		switch e.Func {
		case "count":
			out = append(out, NoisyOutput{Name: it.Alias, Sensitivity: 1})
		case "sum":
			b, ok := clampOf(e.Args[0])
			if !ok || e.Distinct {
				return nil, sluice.Errorf(sluice.EInternal, "the sum %s does not clamp its input; refusing to release it under a differential-privacy budget", it.Alias)
			}
			out = append(out, NoisyOutput{Name: it.Alias, Sum: true, Sensitivity: b.Sensitivity()})
		default:
			return nil, dpRefuse("only COUNT and SUM are released; %s (%s) has no noisy release", strings.ToUpper(e.Func), it.Alias)
		}
	}
	if len(out) == 0 {
		return nil, dpRefuse("only aggregates are released: COUNT, and SUM of a column the grant bounds; add COUNT(*) and GROUP BY")
	}
	return out, nil
}

// NoisyAggs lists the outputs of an aggregate node prepared by ClampSums
// that the release gate must noise, reading each SUM's bounds from the
// clamping project below it.
func NoisyAggs(n *Node) ([]NoisyOutput, error) {
	if n == nil || n.Op != OpAggregate || len(n.Inputs) != 1 {
		return nil, sluice.Errorf(sluice.EInternal, "noisy aggregates: not an aggregate node")
	}
	var out []NoisyOutput
	for _, a := range n.Aggs {
		switch a.Func {
		case AggUnits:
			continue // the persons behind the group: counted, never released
		case "count_star", "count":
			out = append(out, NoisyOutput{Name: a.Alias, Sensitivity: 1})
		case "sum":
			var def *Expr
			if in := n.Inputs[0]; in.Op == OpProject {
				for _, it := range in.Items {
					if it.Alias == a.Column {
						def = it.Expr
					}
				}
			}
			b, ok := clampOf(def)
			if !ok {
				return nil, sluice.Errorf(sluice.EInternal, "the sum %s does not clamp its input; refusing to release it under a differential-privacy budget", a.Alias)
			}
			out = append(out, NoisyOutput{Name: a.Alias, Sum: true, Sensitivity: b.Sensitivity()})
		default:
			return nil, aggRefusal(a.Func)
		}
	}
	if len(out) == 0 {
		return nil, dpRefuse("only aggregates are released: COUNT, and SUM of a column the grant bounds; add COUNT(*) and GROUP BY")
	}
	return out, nil
}

func aggRefusal(fn string) error {
	switch fn {
	case "avg":
		return dpRefuse("AVG is not released: use SUM and COUNT, each noised, and divide")
	case "count_distinct":
		return dpRefuse("COUNT(DISTINCT ...) is not released yet in a query over several datasets; use COUNT")
	}
	return dpRefuse("only COUNT and SUM are released; %s has no noisy release", strings.ToUpper(fn))
}

// clampSandbox checks and rewrites a multi-dataset plan. The sandbox must
// aggregate exactly once, as its last step before post-processing
// (project, filter, sort, limit, distinct over noisy values); each SUM's
// input is traced down to the fragment column it comes from and clamped
// to that column's bounds in a project inserted just below the aggregate.
func (p *Plan) clampSandbox(cat *sluice.Catalog, bounds BoundsFunc) error {
	for _, f := range p.Fragments {
		if isGrouped(f) {
			return dpRefuse("a fragment that aggregates at its source cannot be released across departments yet")
		}
	}
	if p.Sandbox == nil {
		return sluice.Errorf(sluice.EInternal, "clamping sums: the plan has no sandbox")
	}
	if n := countAggregates(p.Sandbox, 0); n != 1 {
		if n == 0 {
			return dpRefuse("only aggregates are released: COUNT, and SUM of a column the grant bounds; add COUNT(*) and GROUP BY")
		}
		return dpRefuse("a query over several datasets may aggregate only once (a grouped subquery's values would leave without noise); write one GROUP BY")
	}
	// Walk down from the root through post-processing to the aggregate.
	agg := p.Sandbox
	for agg.Op != OpAggregate {
		switch agg.Op {
		case OpProject, OpFilter, OpSort, OpLimit, OpDistinct:
		default:
			return dpRefuse("the aggregate must be the query's last step across departments; a %s above a grouped subquery is not supported yet", agg.Op)
		}
		if len(agg.Inputs) != 1 {
			return sluice.Errorf(sluice.EInternal, "clamping sums: a %s node with %d inputs", agg.Op, len(agg.Inputs))
		}
		agg = agg.Inputs[0]
	}
	if len(agg.Inputs) != 1 {
		return sluice.Errorf(sluice.EInternal, "clamping sums: an aggregate with %d inputs", len(agg.Inputs))
	}
	in := agg.Inputs[0]
	if err := p.checkOneToOne(cat, in, 0); err != nil {
		return err
	}
	used := map[string]bool{}
	collectNames(p.Sandbox, used, 0)
	var items []SelectItem
	passed := map[string]bool{}
	pass := func(c string) {
		if c != "" && !passed[c] {
			passed[c] = true
			items = append(items, SelectItem{Expr: &Expr{Kind: KindColumn, Column: c}, Alias: c})
		}
	}
	for _, g := range agg.GroupBy {
		pass(g)
	}
	for _, a := range agg.Aggs {
		if a.Func != "sum" {
			pass(a.Column)
		}
	}
	clamped := 0
	for i, a := range agg.Aggs {
		switch a.Func {
		case "count_star", "count", AggUnits:
			continue
		case "sum":
		default:
			return aggRefusal(a.Func)
		}
		dataset, column, err := p.sourceOf(in, a.Column, 0)
		if err != nil {
			return err
		}
		ds := cat.Dataset(splitName(dataset))
		if ds == nil || ds.Column(column) == nil {
			return sluice.Errorf(sluice.EInternal, "clamping sums: the catalog has no column %s.%s", dataset, column)
		}
		col := ds.Column(column)
		b, err := bounds(ds.FullName(), col.Name)
		if err != nil {
			return err
		}
		c, err := clampExpr(&Expr{Kind: KindColumn, Column: a.Column}, col, b, ds.FullName())
		if err != nil {
			return err
		}
		name := ""
		for k := clamped + 1; ; k++ {
			if name = clampPrefix + strconv.Itoa(k); !used[name] {
				break
			}
		}
		used[name] = true
		clamped++
		items = append(items, SelectItem{Expr: c, Alias: name})
		agg.Aggs[i].Column = name
	}
	if clamped > 0 {
		agg.Inputs[0] = &Node{Op: OpProject, Items: items, Inputs: []*Node{in}}
	}
	return nil
}

func countAggregates(n *Node, depth int) int {
	if n == nil || depth > 4*maxExprDepth {
		return 0
	}
	c := 0
	if n.Op == OpAggregate {
		c++
	}
	for _, in := range n.Inputs {
		c += countAggregates(in, depth+1)
	}
	return c
}

// collectNames gathers every column name the sandbox plan defines.
func collectNames(n *Node, into map[string]bool, depth int) {
	if n == nil || depth > 4*maxExprDepth {
		return
	}
	for _, g := range n.GroupBy {
		into[g] = true
	}
	for _, a := range n.Aggs {
		into[a.Alias] = true
		into[a.Column] = true
	}
	for _, it := range n.Items {
		into[it.Alias] = true
	}
	for _, in := range n.Inputs {
		collectNames(in, into, depth+1)
	}
}

// outputsOf lists the columns a finished sandbox node produces.
func (p *Plan) outputsOf(n *Node) []string {
	return nodeOutputs(n, func(f int) []string {
		if f < 0 || f >= len(p.Fragments) {
			return nil
		}
		var out []string
		for _, it := range p.Fragments[f].Select {
			out = append(out, it.Alias)
		}
		if u := p.Fragments[f].UnitAlias; u != "" {
			out = append(out, u)
		}
		return out
	}, 0)
}

// sourceOf traces column c of node n down to the source column it carries
// unchanged: through filters, sorts, joins and projects that rename it. A
// value computed by an expression, or one that passed an aggregate, LIMIT
// or DISTINCT (which could let one row change which others count), has no
// column's bounds and is refused.
func (p *Plan) sourceOf(n *Node, c string, depth int) (dataset, column string, err error) {
	if n == nil || depth > 4*maxExprDepth {
		return "", "", sluice.Errorf(sluice.EInternal, "clamping sums: column %s has no source", c)
	}
	switch n.Op {
	case OpFragment:
		if n.Fragment < 0 || n.Fragment >= len(p.Fragments) {
			break
		}
		f := p.Fragments[n.Fragment]
		for _, it := range f.Select {
			if it.Alias != c {
				continue
			}
			if it.Expr.Kind != KindColumn {
				return "", "", dpRefuse("SUM can only add up a column the grant bounds, not the expression %s: clamp bounds hold for a column's values; sum a column", normExpr(it.Expr, 0))
			}
			return f.Dataset, it.Expr.Column, nil
		}
	case OpFilter, OpSort:
		return p.sourceOf(n.Inputs[0], c, depth+1)
	case OpProject:
		for _, it := range n.Items {
			if it.Alias != c {
				continue
			}
			if it.Expr.Kind != KindColumn {
				return "", "", dpRefuse("SUM can only add up a column the grant bounds, not the expression %s: clamp bounds hold for a column's values; sum a column", normExpr(it.Expr, 0))
			}
			return p.sourceOf(n.Inputs[0], it.Expr.Column, depth+1)
		}
	case OpJoin:
		for i, in := range n.Inputs {
			if i == 1 && n.leftOnly() {
				break
			}
			for _, o := range p.outputsOf(in) {
				if o == c {
					return p.sourceOf(in, c, depth+1)
				}
			}
		}
	case OpAggregate, OpLimit, OpDistinct, OpUnion, OpWindow:
		return "", "", dpRefuse("SUM can only add up a column's own values; %s passed a grouped subquery, LIMIT or DISTINCT first; sum the column directly", c)
	}
	return "", "", sluice.Errorf(sluice.EInternal, "clamping sums: column %s has no source in the plan", c)
}

// checkOneToOne refuses a join below the released aggregate unless both
// its keys are columns their datasets declare unique: the noise is scaled
// to one row's contribution, and a row that met several rows would count
// several times. A semi join (IN a subquery) keeps each left row at most
// once and needs no such statement. The sandbox verifies the declaration
// on the data (JoinOptions.OneToOne).
func (p *Plan) checkOneToOne(cat *sluice.Catalog, n *Node, depth int) error {
	if n == nil || depth > 4*maxExprDepth {
		return nil
	}
	if n.Op == OpJoin && !n.leftOnly() && len(n.Inputs) == 2 {
		for _, k := range n.Keys {
			for side, c := range [2]string{k.Left, k.Right} {
				dataset, column, err := p.sourceOf(n.Inputs[side], c, 0)
				if err != nil {
					return dpRefuse("a join may only pair columns as stored at the source (%s is computed or aggregated first), so that each row meets at most one row", c)
				}
				ds := cat.Dataset(splitName(dataset))
				col := (*sluice.Column)(nil)
				if ds != nil {
					col = ds.Column(column)
				}
				if col == nil {
					return sluice.Errorf(sluice.EInternal, "checking joins: the catalog has no column %s.%s", dataset, column)
				}
				if !col.Unique {
					return dpRefuse("a join must pair each row with at most one row, or one person could count several times: %s.%s is not declared unique in the catalog (one row per value); join on a unique column, or ask the provider's data admin to declare it if the source enforces it", ds.FullName(), col.Name)
				}
			}
		}
	}
	for _, in := range n.Inputs {
		if err := p.checkOneToOne(cat, in, depth+1); err != nil {
			return err
		}
	}
	return nil
}
