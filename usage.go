package sluice

// Usage is how a query uses a source column: the lineage the policy judges.
type Usage string

const (
	UseOutput    Usage = "output"    // released as (part of) an output value, outside any aggregate
	UsePredicate Usage = "predicate" // in WHERE, HAVING (outside aggregates), ON residuals, CASE conditions
	UseGroup     Usage = "group"     // a GROUP BY key
	UseOrder     Usage = "order"     // an ORDER BY key
	UseAggregate Usage = "aggregate" // the argument of COUNT/SUM/AVG/MIN/MAX
	UseJoinKey   Usage = "join_key"  // an equality join key
)

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
