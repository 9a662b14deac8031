package test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/sluice-gov/sluice/broker"
)

// BenchmarkAuditedQueries32 measures audited queries per second through the
// whole system — Flight SQL client, broker (plan, policy, two audit entries,
// alerts), agent (render, SQLite, masks), back to the client — with 32
// concurrent clients. Every query is a small masked read by bob.
//
//	go test -run xxx -bench AuditedQueries32 -benchtime 2000x ./test/
func BenchmarkAuditedQueries32(b *testing.B) {
	const clients = 32
	type conn struct {
		ctx  context.Context
		next func(context.Context) error
	}
	conns := make([]conn, clients)
	for i := range conns {
		ctx, cl := flightClient(b, "bob")
		ctx = metadata.AppendToOutgoingContext(ctx, broker.PurposeHeader, "enterprise-credit")
		conns[i] = conn{ctx: ctx, next: func(ctx context.Context) error {
			info, err := cl.Execute(ctx, "SELECT name, household_district FROM police.household WHERE migrant = 1 LIMIT 10")
			if err != nil {
				return err
			}
			rd, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
			if err != nil {
				return err
			}
			defer rd.Release()
			for rd.Next() {
			}
			return rd.Err()
		}}
	}
	var done atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c conn) {
			defer wg.Done()
			for done.Add(1) <= int64(b.N) {
				if err := c.next(c.ctx); err != nil {
					failed.Store(err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
}
