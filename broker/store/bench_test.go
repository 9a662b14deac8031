package store

import (
	"fmt"
	"testing"
)

// BenchmarkPutGrantAndList measures the broker's hot path when grants
// change: upsert one grant of a hundred, then reload them all (as the
// policy data is rebuilt after every change).
func BenchmarkPutGrantAndList(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := open(b, be.target(b))
			const n = 100
			for i := range n {
				must(b, s.PutGrant(ctx, grant(fmt.Sprintf("g-%03d", i))))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				g := grant(fmt.Sprintf("g-%03d", i%n))
				g.RowCap = int64(i)
				i++
				must(b, s.PutGrant(ctx, g))
				gs, err := s.Grants(ctx)
				if err != nil || len(gs) != n {
					b.Fatalf("%d grants, %v", len(gs), err)
				}
			}
		})
	}
}
