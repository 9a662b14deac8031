package planner

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	sluice "github.com/sluice-gov/sluice"
)

const (
	maxSelectItems = 1024
	maxAliasLen    = 128
	maxMinGroup    = 1_000_000_000
)

// Validate checks a fragment received over the network against the
// agent's own dataset. It never trusts the broker's planning: every column
// must exist, every expression must be well-formed, and the query shape
// must be one Render turns into SQL with the same meaning in every dialect.
func (f *Fragment) Validate(ds *sluice.Dataset) error {
	if f == nil {
		return invalid("no fragment")
	}
	if ds == nil {
		return invalid("no dataset to validate the fragment against")
	}
	if !strings.EqualFold(f.Dataset, ds.FullName()) {
		return invalid("the fragment is for dataset %q, not %s", clip(f.Dataset), ds.FullName())
	}
	if len(f.Select) == 0 {
		return invalid("the fragment selects nothing")
	}
	if len(f.Select) > maxSelectItems {
		return invalid("the fragment selects more than %d columns", maxSelectItems)
	}
	if f.Limit != nil && *f.Limit < 0 {
		return invalid("LIMIT must not be negative")
	}
	if f.Offset < 0 {
		return invalid("OFFSET must not be negative")
	}
	if f.SandboxK < 0 || f.SandboxK > maxMinGroup {
		return sluice.Errorf(sluice.EInvalid, "fragment sandbox_k must be between 0 and %d", maxMinGroup)
	}
	if f.MinGroupSize < 0 || f.MinGroupSize > maxMinGroup {
		return invalid("minimum group size must be between 0 and %d", maxMinGroup)
	}
	masked := map[string]bool{}
	for col, rule := range f.Masks {
		c := ds.Column(col)
		if c == nil {
			return invalid("a mask names column %q, which dataset %s does not have", clip(col), ds.FullName())
		}
		// Two spellings of one column could carry two rules, and which
		// one applied would depend on map order.
		if masked[c.Name] {
			return invalid("column %s has more than one mask", c.Name)
		}
		masked[c.Name] = true
		switch rule {
		case sluice.MaskIDCard, sluice.MaskPhone, sluice.MaskSurname, sluice.MaskYear, sluice.MaskRedact:
		default:
			return invalid("column %s has unknown mask rule %q; use one of id_card, phone, surname, year, redact", c.Name, clip(string(rule)))
		}
		if !maskApplies(rule, c.Type) {
			return invalid("mask %s cannot be applied to column %s of type %s", rule, c.Name, c.Type)
		}
	}
	for i, it := range f.Select {
		if err := checkAlias(it.Alias); err != nil {
			return err
		}
		for _, prev := range f.Select[:i] {
			if strings.EqualFold(prev.Alias, it.Alias) {
				return invalid("output name %q is used twice; give each output column its own alias", it.Alias)
			}
		}
	}
	if f.UnitAlias != "" {
		if err := checkAlias(f.UnitAlias); err != nil {
			return err
		}
		if !strings.HasSuffix(f.UnitAlias, unitSuffix) {
			return invalid("the unit column name %q must end in %s", clip(f.UnitAlias), unitSuffix)
		}
		for _, it := range f.Select {
			if strings.EqualFold(it.Alias, f.UnitAlias) {
				return invalid("the unit column name %q is also an output name", clip(f.UnitAlias))
			}
		}
		if f.MinGroupSize > 0 {
			return invalid("a fragment bound for the sandbox (unit_alias) has no minimum group size of its own")
		}
	}
	return checkShape(f, ds, false)
}

// checkShape validates every clause of f. Planning and Validate share it,
// so a plan the broker accepts is a fragment every agent accepts.
// planning is true while the masks are not decided yet (see
// checker.maybeMasked).
func checkShape(f *Fragment, ds *sluice.Dataset, planning bool) error {
	c := &checker{ds: ds, masks: f.Masks, maybeMasked: planning, windows: planning}
	for _, it := range f.Select {
		if _, err := c.check(it.Expr, true, false, 0); err != nil {
			return err
		}
	}
	if f.Where != nil {
		t, err := c.check(f.Where, false, false, 0)
		if err != nil {
			return err
		}
		if t.t != "" && t.t != sluice.TypeBoolean {
			return invalid("WHERE needs a condition, got %s; write e.g. WHERE col = 1", t.t)
		}
	}
	for _, g := range f.GroupBy {
		if _, err := c.check(g, false, false, 0); err != nil {
			return err
		}
		if !hasColumn(g) {
			return sluice.Errorf(sluice.ENotSupported, "GROUP BY a constant is not supported yet; group by columns or expressions over them")
		}
	}
	if f.Having != nil {
		t, err := c.check(f.Having, true, false, 0)
		if err != nil {
			return err
		}
		if t.t != "" && t.t != sluice.TypeBoolean {
			return invalid("HAVING needs a condition, got %s", t.t)
		}
	}
	for _, o := range f.OrderBy {
		if _, err := c.check(o.Expr, true, false, 0); err != nil {
			return err
		}
		if !hasColumn(o.Expr) && !hasAggregate(o.Expr) {
			return sluice.Errorf(sluice.ENotSupported, "ORDER BY a constant is not supported yet; order by a column, an output name or its position")
		}
	}
	grouped := isGrouped(f)
	if f.Having != nil && !grouped {
		return invalid("HAVING needs GROUP BY or an aggregate; filter rows with WHERE")
	}
	if grouped {
		for _, it := range f.Select {
			if col := ungroupedColumn(it.Expr, f.GroupBy); col != "" {
				return invalid("column %s must appear in GROUP BY or be used inside an aggregate such as count(), sum() or max()", col)
			}
		}
		if col := ungroupedColumn(f.Having, f.GroupBy); col != "" {
			return invalid("HAVING uses column %s, which is neither grouped nor inside an aggregate", col)
		}
		for _, o := range f.OrderBy {
			if col := ungroupedColumn(o.Expr, f.GroupBy); col != "" {
				return invalid("ORDER BY uses column %s, which is neither grouped nor inside an aggregate", col)
			}
		}
	}
	if f.Distinct {
		for _, o := range f.OrderBy {
			if selectIndex(f, o.Expr) < 0 {
				return invalid("with SELECT DISTINCT, every ORDER BY expression must appear in the select list")
			}
		}
	}
	if f.MinGroupSize > 0 && !grouped {
		// HAVING COUNT(*) on a row query would collapse it to one arbitrary
		// row in SQLite and MySQL: refuse rather than release it.
		return invalid("a minimum group size applies only to aggregate queries; use GROUP BY or aggregates")
	}
	return nil
}

func checkAlias(a string) error {
	if a == "" {
		return invalid("every output column needs a name")
	}
	if len(a) > maxAliasLen || !utf8.ValidString(a) {
		return invalid("output name is longer than %d bytes or not valid UTF-8", maxAliasLen)
	}
	for _, r := range a {
		if unicode.IsControl(r) {
			return invalid("output name %q contains a control character", a)
		}
	}
	if len(a) >= len(reservedPrefix) && strings.EqualFold(a[:len(reservedPrefix)], reservedPrefix) {
		return invalid("output names starting with %s are reserved for Sluice; choose another alias than %q", reservedPrefix, a)
	}
	return nil
}

// clip keeps messages about hostile input short and printable.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// isGrouped reports whether f computes groups: GROUP BY or any aggregate in
// the select list, HAVING or ORDER BY.
func isGrouped(f *Fragment) bool {
	if len(f.GroupBy) > 0 || hasAggregate(f.Having) {
		return true
	}
	for _, it := range f.Select {
		if hasAggregate(it.Expr) {
			return true
		}
	}
	for _, o := range f.OrderBy {
		if hasAggregate(o.Expr) {
			return true
		}
	}
	return false
}

func hasAggregate(e *Expr) bool {
	if e == nil {
		return false
	}
	if e.Kind == KindAggregate {
		return true
	}
	for _, a := range e.Args {
		if hasAggregate(a) {
			return true
		}
	}
	return false
}

func hasColumn(e *Expr) bool {
	if e == nil {
		return false
	}
	if e.Kind == KindColumn {
		return true
	}
	for _, a := range e.Args {
		if hasColumn(a) {
			return true
		}
	}
	return false
}

// ungroupedColumn returns a column e uses outside aggregates and outside
// any GROUP BY key, or "" when every such column is covered by a key.
func ungroupedColumn(e *Expr, keys []*Expr) string {
	if e == nil {
		return ""
	}
	for _, k := range keys {
		if exprEqual(e, k) {
			return ""
		}
	}
	switch e.Kind {
	case KindColumn:
		return e.Column
	case KindAggregate:
		return ""
	}
	for _, a := range e.Args {
		if c := ungroupedColumn(a, keys); c != "" {
			return c
		}
	}
	return ""
}

// selectIndex is the position of the select item whose expression equals
// e, or -1.
func selectIndex(f *Fragment, e *Expr) int {
	for i, it := range f.Select {
		if exprEqual(it.Expr, e) {
			return i
		}
	}
	return -1
}

// exprEqual compares two expressions structurally; column names compare
// case-insensitively as the catalog does.
func exprEqual(a, b *Expr) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind || a.Op != b.Op || !strings.EqualFold(a.Column, b.Column) || a.Func != b.Func ||
		a.Distinct != b.Distinct || a.Negate != b.Negate || a.HasOperand != b.HasOperand ||
		a.HasElse != b.HasElse || len(a.Args) != len(b.Args) || a.NArgs != b.NArgs || a.NPart != b.NPart ||
		fmt.Sprint(a.Desc) != fmt.Sprint(b.Desc) {
		return false
	}
	if (a.Literal == nil) != (b.Literal == nil) {
		return false
	}
	if a.Literal != nil && *a.Literal != *b.Literal {
		return false
	}
	for i := range a.Args {
		if !exprEqual(a.Args[i], b.Args[i]) {
			return false
		}
	}
	return true
}

// cloneExpr deep-copies e so that a substituted alias never shares nodes
// with the select item it came from.
func cloneExpr(e *Expr) *Expr {
	if e == nil {
		return nil
	}
	c := *e
	if e.Literal != nil {
		l := *e.Literal
		c.Literal = &l
	}
	if e.Args != nil {
		c.Args = make([]*Expr, len(e.Args))
		for i, a := range e.Args {
			c.Args[i] = cloneExpr(a)
		}
	}
	return &c
}
