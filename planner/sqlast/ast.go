// Package sqlast is Sluice's SQL syntax tree: the query an analyst wrote,
// parsed by the PostgreSQL grammar (pg_query, the PostgreSQL parser
// itself) and reduced to plain Go types the planner reads. Names are as
// PostgreSQL reads them: unquoted identifiers folded to lower case,
// "quoted" ones kept as written. Every node carries its byte offset in
// the query text (Pos), so an error can point at what the analyst wrote.
//
// The tree holds only what the planner may meet; a construct of the
// grammar it has no node for is refused by Parse with an *Error whose
// NotSupported is set, naming the construct and its position — never
// dropped.
package sqlast

// Select is one query: a SELECT block, or (Op set) a set operation over
// Left and Right. With, OrderBy, Limit and Offset belong to either kind;
// the other fields to a SELECT block only.
type Select struct {
	Pos       int
	With      []*CTE
	Recursive bool

	Op          SetOp
	All         bool
	Left, Right *Select

	Distinct bool
	Items    []*SelectItem
	From     []TableExpr
	Where    Expr
	GroupBy  []Expr
	Having   Expr

	OrderBy []*OrderItem
	// Limit is nil without a limit (also for LIMIT ALL / LIMIT NULL);
	// FETCH FIRST n ROWS ONLY is a Limit too.
	Limit  Expr
	Offset Expr
}

// SetOp is a set operation of a Select.
type SetOp string

const (
	Union     SetOp = "UNION"
	Intersect SetOp = "INTERSECT"
	Except    SetOp = "EXCEPT"
)

// CTE is one common table expression of a WITH clause.
type CTE struct {
	Pos     int
	Name    string
	Columns []string
	Query   *Select
	// Materialized is "", "MATERIALIZED" or "NOT MATERIALIZED".
	Materialized string
}

// SelectItem is one item of a select list: * or t.* (Star), or an
// expression with an optional alias ("" when none).
type SelectItem struct {
	Pos   int
	Star  bool
	Table *TableName // t.* when set
	Expr  Expr
	Alias string
}

// OrderItem is one key of ORDER BY (or of a window's ORDER BY).
type OrderItem struct {
	Pos   int
	Expr  Expr
	Desc  bool
	Nulls Nulls
}

// Nulls is where an ORDER BY key puts NULLs.
type Nulls int

const (
	NullsDefault Nulls = iota
	NullsFirst
	NullsLast
)

// TableName is a possibly qualified name of a table (schema.name: in
// Sluice, department.dataset) or, as a column qualifier, of a table or
// alias.
type TableName struct {
	Pos    int
	Schema string
	Name   string
}

// String renders the name as written (without quotes).
func (t *TableName) String() string {
	if t == nil {
		return ""
	}
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// TableExpr is an item of FROM: *Table, *Derived or *Join.
type TableExpr interface {
	Position() int
	tableExpr()
}

// Table is a table named in FROM, with its alias ("" when none).
type Table struct {
	Name          TableName
	Alias         string
	ColumnAliases []string
}

// Derived is a subquery in FROM.
type Derived struct {
	Pos           int
	Query         *Select
	Alias         string
	ColumnAliases []string
	Lateral       bool
}

// JoinKind is the kind of a Join.
type JoinKind string

const (
	JoinInner JoinKind = "JOIN"
	JoinLeft  JoinKind = "LEFT JOIN"
	JoinRight JoinKind = "RIGHT JOIN"
	JoinFull  JoinKind = "FULL JOIN"
	JoinCross JoinKind = "CROSS JOIN"
)

// Join is a join in FROM. Natural joins and USING are kept for the
// planner to decide on.
type Join struct {
	Pos         int
	Kind        JoinKind
	Left, Right TableExpr
	On          Expr
	Using       []string
	Natural     bool
}

func (t *Table) Position() int   { return t.Name.Pos }
func (t *Derived) Position() int { return t.Pos }
func (t *Join) Position() int    { return t.Pos }
func (*Table) tableExpr()        {}
func (*Derived) tableExpr()      {}
func (*Join) tableExpr()         {}

// Expr is an expression.
type Expr interface {
	Position() int
	expr()
}

// ColumnRef names a column, qualified (Table set) or not.
type ColumnRef struct {
	Pos   int
	Table *TableName
	Name  string
}

// LitKind is the kind of a Literal.
type LitKind int

const (
	LitNull LitKind = iota
	LitInt
	LitFloat // a decimal number with a point or an exponent, or an integer beyond 64 bits
	LitString
	LitBool
)

// Literal is a constant: Text holds the digits, the string's value, or
// "true"/"false".
type Literal struct {
	Pos  int
	Kind LitKind
	Text string
}

// Unary is -x, +x or NOT x.
type Unary struct {
	Pos int
	Op  string
	X   Expr
}

// Binary is an operator between two operands: arithmetic (+ - * / %),
// comparison (= <> < <= > >=), AND, OR, string concatenation (||), or any
// other operator of the grammar under its own name (which the planner
// refuses unless it knows it).
type Binary struct {
	Pos  int
	Op   string
	L, R Expr
}

// Between is x [NOT] BETWEEN [SYMMETRIC] lo AND hi.
type Between struct {
	Pos       int
	X, Lo, Hi Expr
	Not       bool
	Symmetric bool
}

// InList is x [NOT] IN (a, b, ...).
type InList struct {
	Pos  int
	X    Expr
	List []Expr
	Not  bool
}

// InSubquery is x [NOT] IN (SELECT ...), and x = ANY (SELECT ...).
type InSubquery struct {
	Pos   int
	X     Expr
	Query *Select
	Not   bool
}

// Like is x [NOT] LIKE / ILIKE pattern [ESCAPE e].
type Like struct {
	Pos        int
	X, Pattern Expr
	Escape     Expr
	Not        bool
	ILike      bool
}

// IsNull is x IS [NOT] NULL.
type IsNull struct {
	Pos int
	X   Expr
	Not bool
}

// IsBool is x IS [NOT] TRUE / FALSE / UNKNOWN.
type IsBool struct {
	Pos   int
	X     Expr
	Value string // "TRUE", "FALSE" or "UNKNOWN"
	Not   bool
}

// IsDistinct is l IS [NOT] DISTINCT FROM r.
type IsDistinct struct {
	Pos  int
	L, R Expr
	Not  bool
}

// Func is a function call, also an aggregate or window function. The
// special forms of the grammar arrive as calls of their functions:
// EXTRACT(f FROM x) is extract('f', x), SUBSTRING(x FROM a FOR b) is
// substring(x, a, b), COALESCE, NULLIF, GREATEST and LEAST are calls,
// CURRENT_DATE and its kind are calls without arguments.
type Func struct {
	Pos      int
	Schema   string // "" unless the analyst wrote one ("pg_catalog" for the grammar's special forms)
	Name     string
	Args     []Expr
	Star     bool // count(*)
	Distinct bool
	Filter   Expr    // FILTER (WHERE ...)
	Over     *Window // OVER (...)
}

// Window is the window of a window function.
type Window struct {
	Pos         int
	Ref         string // OVER w, or OVER (w ...)
	PartitionBy []Expr
	OrderBy     []*OrderItem
	// Frame is the frame clause as written ("" for the default).
	Frame string
}

// Case is CASE [operand] WHEN ... THEN ... [ELSE ...] END.
type Case struct {
	Pos     int
	Operand Expr
	Whens   []*When
	Else    Expr
}

// When is one WHEN cond THEN val of a Case.
type When struct {
	Cond, Val Expr
}

// Cast is CAST(x AS type), x::type, and a typed literal (DATE '...',
// INTERVAL '...' DAY).
type Cast struct {
	Pos  int
	X    Expr
	Type TypeName
}

// TypeName is a type as written: its name in lower case (without the
// pg_catalog qualifier the grammar adds to some), its modifiers, and for
// an interval its fields ("day", "year to month").
type TypeName struct {
	Name    string
	Mods    []int
	Fields  string
	IsArray bool
}

// Subquery is a scalar subquery: (SELECT ...) as a value.
type Subquery struct {
	Pos   int
	Query *Select
}

// Exists is EXISTS (SELECT ...).
type Exists struct {
	Pos   int
	Query *Select
}

func (e *ColumnRef) Position() int  { return e.Pos }
func (e *Literal) Position() int    { return e.Pos }
func (e *Unary) Position() int      { return e.Pos }
func (e *Binary) Position() int     { return e.Pos }
func (e *Between) Position() int    { return e.Pos }
func (e *InList) Position() int     { return e.Pos }
func (e *InSubquery) Position() int { return e.Pos }
func (e *Like) Position() int       { return e.Pos }
func (e *IsNull) Position() int     { return e.Pos }
func (e *IsBool) Position() int     { return e.Pos }
func (e *IsDistinct) Position() int { return e.Pos }
func (e *Func) Position() int       { return e.Pos }
func (e *Case) Position() int       { return e.Pos }
func (e *Cast) Position() int       { return e.Pos }
func (e *Subquery) Position() int   { return e.Pos }
func (e *Exists) Position() int     { return e.Pos }

func (*ColumnRef) expr()  {}
func (*Literal) expr()    {}
func (*Unary) expr()      {}
func (*Binary) expr()     {}
func (*Between) expr()    {}
func (*InList) expr()     {}
func (*InSubquery) expr() {}
func (*Like) expr()       {}
func (*IsNull) expr()     {}
func (*IsBool) expr()     {}
func (*IsDistinct) expr() {}
func (*Func) expr()       {}
func (*Case) expr()       {}
func (*Cast) expr()       {}
func (*Subquery) expr()   {}
func (*Exists) expr()     {}

// Walk calls fn for e and, while fn returns true, for the expressions
// inside it, depth first. Subqueries are not entered (their Select is
// the caller's to walk); WalkSelects visits every query of a tree.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	w := func(xs ...Expr) {
		for _, x := range xs {
			Walk(x, fn)
		}
	}
	switch n := e.(type) {
	case *Unary:
		w(n.X)
	case *Binary:
		w(n.L, n.R)
	case *Between:
		w(n.X, n.Lo, n.Hi)
	case *InList:
		w(n.X)
		w(n.List...)
	case *InSubquery:
		w(n.X)
	case *Like:
		w(n.X, n.Pattern, n.Escape)
	case *IsNull:
		w(n.X)
	case *IsBool:
		w(n.X)
	case *IsDistinct:
		w(n.L, n.R)
	case *Func:
		w(n.Args...)
		w(n.Filter)
		if n.Over != nil {
			w(n.Over.PartitionBy...)
			for _, o := range n.Over.OrderBy {
				w(o.Expr)
			}
		}
	case *Case:
		w(n.Operand)
		for _, wh := range n.Whens {
			w(wh.Cond, wh.Val)
		}
		w(n.Else)
	case *Cast:
		w(n.X)
	}
}

// Exprs lists the expressions directly in s (not in its subqueries, CTEs
// or set-operation operands), for walking.
func (s *Select) Exprs() []Expr {
	var out []Expr
	for _, it := range s.Items {
		if it.Expr != nil {
			out = append(out, it.Expr)
		}
	}
	if s.Where != nil {
		out = append(out, s.Where)
	}
	out = append(out, s.GroupBy...)
	if s.Having != nil {
		out = append(out, s.Having)
	}
	for _, o := range s.OrderBy {
		out = append(out, o.Expr)
	}
	if s.Limit != nil {
		out = append(out, s.Limit)
	}
	if s.Offset != nil {
		out = append(out, s.Offset)
	}
	return out
}

// Subqueries lists the queries of the subqueries in es (scalar, EXISTS,
// IN), not those nested inside them, in the order they appear.
func Subqueries(es ...Expr) []*Select {
	var out []*Select
	for _, e := range es {
		Walk(e, func(x Expr) bool {
			switch q := x.(type) {
			case *Subquery:
				out = append(out, q.Query)
			case *Exists:
				out = append(out, q.Query)
			case *InSubquery:
				out = append(out, q.Query)
			}
			return true
		})
	}
	return out
}

// WalkSelects calls fn for s and, while fn returns true, for every query
// inside it: its CTEs, the operands of a set operation, derived tables
// and the subqueries of its expressions (also in join conditions and
// windows), depth first. depth counts the queries above the one visited.
func WalkSelects(s *Select, fn func(q *Select, depth int) bool) {
	walkSelects(s, 0, fn)
}

func walkSelects(s *Select, depth int, fn func(*Select, int) bool) bool {
	if s == nil {
		return true
	}
	if !fn(s, depth) {
		return false
	}
	ok := true
	sub := func(q *Select) {
		if ok {
			ok = walkSelects(q, depth+1, fn)
		}
	}
	exprs := func(es ...Expr) {
		for _, q := range Subqueries(es...) {
			sub(q)
		}
	}
	var from func(t TableExpr)
	from = func(t TableExpr) {
		switch f := t.(type) {
		case *Derived:
			sub(f.Query)
		case *Join:
			from(f.Left)
			from(f.Right)
			exprs(f.On)
		}
	}
	for _, c := range s.With {
		sub(c.Query)
	}
	sub(s.Left)
	sub(s.Right)
	for _, t := range s.From {
		from(t)
	}
	exprs(s.Exprs()...)
	return ok
}
