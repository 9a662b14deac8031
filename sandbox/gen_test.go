package sandbox

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// newInt64Batch builds a two-int64-column batch of n rows from fn.
func newInt64Batch(q *Query, n int, fn func(r int) (int64, int64)) arrow.Record {
	kb := array.NewInt64Builder(q.Allocator())
	vb := array.NewInt64Builder(q.Allocator())
	defer kb.Release()
	defer vb.Release()
	kb.Reserve(n)
	vb.Reserve(n)
	for r := 0; r < n; r++ {
		k, v := fn(r)
		kb.UnsafeAppend(k)
		vb.UnsafeAppend(v)
	}
	ka, va := kb.NewArray(), vb.NewArray()
	defer ka.Release()
	defer va.Release()
	return array.NewRecord(genSchema, []arrow.Array{ka, va}, int64(n))
}
