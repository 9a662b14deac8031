package adapters

import (
	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// DecimalPrecision, DecimalScale and MetaType are the shared wire
// conventions (sluice.DecimalPrecision, sluice.DecimalScale,
// sluice.MetaType), under the names this package has always exported.
const (
	DecimalPrecision = sluice.DecimalPrecision
	DecimalScale     = sluice.DecimalScale
	MetaType         = sluice.MetaType
)

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
