package adapters

import (
	"github.com/apache/arrow/go/v15/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// DecimalPrecision and DecimalScale fix the Arrow type of every decimal
// column. The catalog declares "decimal" without precision or scale and the
// same logical column may be NUMERIC(18,2) in one department and
// DECIMAL(12,4) in another, so one wide type lets batches from different
// sources be joined and aggregated without rescaling: 38 digits is the most
// Decimal128 holds, and 4 fractional digits cover money (分) and the rates
// and ratios government datasets carry. Values with more fractional digits
// are rounded half away from zero.
const (
	DecimalPrecision = 38
	DecimalScale     = 4
)

// MetaType is the field metadata key carrying the catalog type, so a
// consumer can tell e.g. a decimal from a float without guessing from the
// Arrow type.
const MetaType = "sluice.type"

var (
	decimalType   = &arrow.Decimal128Type{Precision: DecimalPrecision, Scale: DecimalScale}
	timestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
)

// ArrowType is the Arrow type a catalog type is streamed as. An unknown type
// maps to String; Scan rejects unknown types before reading any row.
func ArrowType(t sluice.ColumnType) arrow.DataType {
	switch t {
	case sluice.TypeInteger:
		return arrow.PrimitiveTypes.Int64
	case sluice.TypeFloat:
		return arrow.PrimitiveTypes.Float64
	case sluice.TypeDecimal:
		return decimalType
	case sluice.TypeBoolean:
		return arrow.FixedWidthTypes.Boolean
	case sluice.TypeDate:
		return arrow.FixedWidthTypes.Date64
	case sluice.TypeTimestamp:
		return timestampType
	case sluice.TypeBinary:
		return arrow.BinaryTypes.Binary
	}
	return arrow.BinaryTypes.String
}

// Schema builds the Arrow schema for output fields: integer→Int64,
// float→Float64, decimal→Decimal128(38, 4) (see DecimalScale), text→String,
// boolean→Boolean, date→Date64, timestamp→Timestamp(µs, "UTC"). Every field
// is nullable and carries its catalog type under MetaType.
func Schema(fields []planner.Field) *arrow.Schema {
	out := make([]arrow.Field, len(fields))
	for i, f := range fields {
		out[i] = arrow.Field{
			Name:     f.Name,
			Type:     ArrowType(f.Type),
			Nullable: true,
			Metadata: arrow.NewMetadata([]string{MetaType}, []string{string(f.Type)}),
		}
	}
	return arrow.NewSchema(out, nil)
}
