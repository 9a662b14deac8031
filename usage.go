package sluice

// Usage is how a query uses a source column: the lineage the policy judges.
type Usage string

const (
	UseOutput    Usage = "output"    // released as (part of) an output value, outside any aggregate
	UsePredicate Usage = "predicate" // in WHERE, HAVING (outside aggregates), ON residuals, CASE conditions
	UseGroup     Usage = "group"     // a GROUP BY key
	UseOrder     Usage = "order"     // an ORDER BY key
	UseJoinKey   Usage = "join_key"  // an equality join key

	// Inside aggregates. Only a bare column is a sound aggregate argument:
	// a condition or arithmetic inside an aggregate selects, or weighs, a
	// sub-population that the minimum group size does not see.

	UseAggregate           Usage = "aggregate"            // the bare argument of COUNT/SUM/AVG
	UseDistinctAggregate   Usage = "distinct_aggregate"   // the bare argument of COUNT/SUM/AVG(DISTINCT ...)
	UseOrderStatistic      Usage = "order_statistic"      // the bare argument of MIN/MAX: one row's exact value
	UseAggregateExpression Usage = "aggregate_expression" // anywhere inside an aggregate argument that is an expression (CASE, arithmetic, functions)
)

// AggregateUsages are the usages of a column inside an aggregate.
var AggregateUsages = []Usage{UseAggregate, UseDistinctAggregate, UseOrderStatistic, UseAggregateExpression}

// InAggregate reports whether u is a use inside an aggregate.
func (u Usage) InAggregate() bool {
	switch u {
	case UseAggregate, UseDistinctAggregate, UseOrderStatistic, UseAggregateExpression:
		return true
	}
	return false
}

// ColumnUsage is one source column and every way the query uses it.
type ColumnUsage struct {
	Dataset string  `json:"dataset"` // department.dataset
	Column  string  `json:"column"`
	Usages  []Usage `json:"usages"`
	// Transformed is true when the column reaches its use through an
	// expression (a function, arithmetic, CASE) rather than as itself.
	Transformed bool `json:"transformed,omitempty"`
}

// Has reports whether u includes usage x.
func (u ColumnUsage) Has(x Usage) bool {
	for _, v := range u.Usages {
		if v == x {
			return true
		}
	}
	return false
}
