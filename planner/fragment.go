package planner

import (
	sluice "github.com/sluice-gov/sluice"
)

// The types in this file are the contract between the broker (which plans)
// and the department agents (which render and run fragments): a Fragment is
// serialised as JSON into the Flight ticket the broker sends to an agent.

// ExprKind tells which fields of an Expr are meaningful.
type ExprKind string

const (
	KindColumn    ExprKind = "column"    // Column
	KindLiteral   ExprKind = "literal"   // Literal
	KindStar      ExprKind = "star"      // the * of COUNT(*)
	KindUnary     ExprKind = "unary"     // Op ("-", "NOT") applied to Args[0]
	KindBinary    ExprKind = "binary"    // Args[0] Op Args[1]; Op is + - * / % = <> < <= > >= AND OR
	KindFunc      ExprKind = "func"      // scalar function Func(Args...)
	KindAggregate ExprKind = "aggregate" // Func is count|sum|avg|min|max; Distinct; Args[0] (star for COUNT(*))
	KindIsNull    ExprKind = "is_null"   // Args[0] IS [NOT] NULL (Negate)
	KindIn        ExprKind = "in"        // Args[0] [NOT] IN (Args[1:]...)
	KindBetween   ExprKind = "between"   // Args[0] [NOT] BETWEEN Args[1] AND Args[2]
	KindLike      ExprKind = "like"      // Args[0] [NOT] LIKE Args[1]
	KindCase      ExprKind = "case"      // CASE [Args[0] if HasOperand] WHEN/THEN pairs [ELSE last]
	// KindWindow is a window function Func over Args: its own arguments
	// (the first NArgs), then the PARTITION BY keys (the next NPart), then
	// the ORDER BY keys (the rest, descending where Desc says). It exists
	// only while planning: the planner moves it into a window node of the
	// sandbox plan, and no fragment may hold one.
	KindWindow ExprKind = "window"
)

// LiteralType is the type of a literal constant.
type LiteralType string

const (
	LitInt    LiteralType = "int"
	LitFloat  LiteralType = "float"
	LitString LiteralType = "string"
	LitBool   LiteralType = "bool"
	LitNull   LiteralType = "null"
)

// Literal is a constant from the query. It is always rendered as a bind
// parameter, never spliced into SQL text.
type Literal struct {
	Type LiteralType `json:"type"`
	// Text is the value in canonical text form: decimal digits for int,
	// strconv 'g' form for float, the raw string, "true"/"false".
	Text string `json:"text"`
}

// Expr is a resolved expression over the columns of one dataset.
type Expr struct {
	Kind     ExprKind `json:"kind"`
	Op       string   `json:"op,omitempty"`
	Column   string   `json:"column,omitempty"` // catalog column name, as declared
	Literal  *Literal `json:"literal,omitempty"`
	Func     string   `json:"func,omitempty"` // lower case
	Distinct bool     `json:"distinct,omitempty"`
	Negate   bool     `json:"negate,omitempty"`
	// HasOperand and HasElse shape a CASE: Args = [operand] when/then... [else].
	HasOperand bool    `json:"has_operand,omitempty"`
	HasElse    bool    `json:"has_else,omitempty"`
	Args       []*Expr `json:"args,omitempty"`
	// NArgs, NPart and Desc shape a window function (KindWindow).
	NArgs int    `json:"nargs,omitempty"`
	NPart int    `json:"npart,omitempty"`
	Desc  []bool `json:"desc,omitempty"`
}

// SelectItem is one output column of a fragment.
type SelectItem struct {
	Expr  *Expr  `json:"expr"`
	Alias string `json:"alias"` // the output column name, always set
}

// OrderItem is one ORDER BY key.
type OrderItem struct {
	Expr *Expr `json:"expr"`
	Desc bool  `json:"desc,omitempty"`
}

// Fragment is the part of a query one department's agent runs against one
// dataset. Everything in it refers to the dataset's catalog columns by name;
// the agent renders it to SQL for its own database.
type Fragment struct {
	QueryID  string       `json:"query_id"`
	Dataset  string       `json:"dataset"` // department.dataset
	Distinct bool         `json:"distinct,omitempty"`
	Select   []SelectItem `json:"select"`
	Where    *Expr        `json:"where,omitempty"`
	GroupBy  []*Expr      `json:"group_by,omitempty"`
	Having   *Expr        `json:"having,omitempty"`
	OrderBy  []OrderItem  `json:"order_by,omitempty"`
	Limit    *int64       `json:"limit,omitempty"`
	Offset   int64        `json:"offset,omitempty"`

	// Obligations from the policy decision, set by Plan.Apply (passes.go).

	// Masks maps a column to the mask applied at the source: every use of the
	// column in the fragment (output, predicate, group, order) sees only the
	// masked value.
	Masks map[string]sluice.MaskRule `json:"masks,omitempty"`
	// MinGroupSize, when > 0, makes the agent keep only groups of at least
	// this many distinct persons in each contributor set (UnitSets,
	// rendered by RenderUnits, enforced by the agent's gate).
	MinGroupSize int `json:"min_group_size,omitempty"`
	// SandboxK, when > 0, says the fragment's rows go to the broker's
	// sandbox to meet another department's rows, not to the analyst: the
	// sandbox releases only aggregates over groups of at least SandboxK
	// persons, counted by the pseudonyms the fragment carries (UnitAlias).
	// An agent may then send values of aggregate-level columns, which
	// never leave the sandbox as rows.
	SandboxK int `json:"sandbox_k,omitempty"`
	// UnitAlias, when set, asks the agent for one more output column under
	// this name: each row's privacy unit (the dataset's unique person key)
	// as a keyed pseudonym, so the sandbox can count the persons behind
	// each group (see units.go). Never the key itself.
	UnitAlias string `json:"unit_alias,omitempty"`

	// Requester is who asked, under which purpose: the agent decides the
	// masks it enforces itself from it, and records it.
	Requester sluice.Principal `json:"requester"`
	Purpose   string           `json:"purpose"`
}

// Field is one output column of a fragment or plan with its logical type.
type Field struct {
	Name string            `json:"name"`
	Type sluice.ColumnType `json:"type"`
}
