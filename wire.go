package sluice

// The Arrow form of catalog values: shared by the agents, which stream
// record batches, and the broker's sandbox and release gate, which join,
// aggregate and release them. One definition, so the two sides cannot
// drift apart.
const (
	// MetaType is the field metadata key carrying a column's catalog type
	// (ColumnType), so a consumer can tell e.g. a decimal from a float
	// without guessing from the Arrow type.
	MetaType = "sluice.type"
	// DecimalPrecision and DecimalScale fix the Arrow type of every decimal
	// value: decimal128(38, 4). The catalog declares "decimal" without
	// precision or scale and the same logical column may be NUMERIC(18,2)
	// in one department and DECIMAL(12,4) in another, so one wide type lets
	// batches from different sources be joined and aggregated without
	// rescaling: 38 digits is the most Decimal128 holds, and 4 fractional
	// digits cover money (分) and the rates and ratios government datasets
	// carry. Values with more fractional digits are rounded half away from
	// zero.
	DecimalPrecision = 38
	DecimalScale     = 4
)
