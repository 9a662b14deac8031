package digest

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func batch(t *testing.T, ids []int64, names []string, nullAt int) arrow.Record {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range ids {
		if i == nullAt {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.Int64Builder).Append(ids[i])
		}
		b.Field(1).(*array.StringBuilder).Append(names[i])
	}
	return b.NewRecord()
}

func TestDigestIndependentOfBatching(t *testing.T) {
	whole := NewStream(schema)
	r := batch(t, []int64{1, 2, 3, 4}, []string{"张**", "王**", "a", ""}, 2)
	whole.Add(r)
	split := NewStream(schema)
	r1 := batch(t, []int64{1, 2}, []string{"张**", "王**"}, -1)
	r2 := batch(t, []int64{3, 4}, []string{"a", ""}, 0)
	split.Add(r1)
	split.Add(r2)
	if whole.Sum() != split.Sum() || whole.Rows() != 4 || whole.Bytes() != split.Bytes() {
		t.Fatalf("batching changed the digest: %s vs %s", whole.Sum(), split.Sum())
	}
}

func TestDigestDetectsChanges(t *testing.T) {
	base := NewStream(schema)
	base.Add(batch(t, []int64{1, 2}, []string{"a", "b"}, -1))
	cases := map[string]arrow.Record{
		"value":       batch(t, []int64{1, 3}, []string{"a", "b"}, -1),
		"text":        batch(t, []int64{1, 2}, []string{"a", "c"}, -1),
		"null":        batch(t, []int64{1, 2}, []string{"a", "b"}, 1),
		"missing row": batch(t, []int64{1}, []string{"a"}, -1),
		"text split":  batch(t, []int64{1, 2}, []string{"ab", ""}, -1),
	}
	for name, r := range cases {
		d := NewStream(schema)
		d.Add(r)
		if d.Sum() == base.Sum() {
			t.Fatalf("%s: digest did not change", name)
		}
	}
}
