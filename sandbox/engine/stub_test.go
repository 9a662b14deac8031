//go:build !duckdb_arrow

package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

func TestWithoutArrowTag(t *testing.T) {
	_, err := Open(context.Background(), Limits{})
	if sluice.ErrorCode(err) != sluice.EInternal || !strings.Contains(sluice.ErrorMessage(err), "-tags duckdb_arrow") {
		t.Fatalf("Open: %v", err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewInt64Builder(mem)
	b.Append(1)
	arr := b.NewArray()
	b.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, 1)
	arr.Release()
	r, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	rec.Release()
	var s *Session
	if err := s.Register("x", r); sluice.ErrorCode(err) != sluice.EInternal {
		t.Fatalf("Register: %v", err)
	}
}
