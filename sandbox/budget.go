package sandbox

import (
	"strconv"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// MiB is 2^20 bytes, the unit limits are named in.
const MiB = 1 << 20

// Budget is a per-query memory budget. It is a memory.Allocator that counts
// the live bytes of every Arrow buffer allocated through it, plus explicit
// reservations for Go-side structures (hash tables, sort indexes, aggregate
// states) that Arrow does not see.
//
// Reservations are hard: Reserve fails with EResource when it would take
// the total over the limit. Arrow allocations cannot fail (the Allocator
// interface has no error), so an allocation that takes the total over the
// limit is served and the overrun is recorded; every operator checks Err
// between batches and every few thousand rows, and ends the query there.
// The overrun is therefore bounded by roughly one batch or one builder
// growth step.
type Budget struct {
	limit    int64
	mem      memory.Allocator
	live     atomic.Int64 // bytes in Arrow buffers from this allocator
	reserved atomic.Int64 // explicit reservations
	peak     atomic.Int64
	over     atomic.Bool
}

// NewBudget returns a budget of limit bytes (<= 0 means unlimited) over mem
// (nil means memory.DefaultAllocator).
func NewBudget(limit int64, mem memory.Allocator) *Budget {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &Budget{limit: limit, mem: mem}
}

// Limit returns the limit in bytes; 0 or less means unlimited.
func (b *Budget) Limit() int64 { return b.limit }

// InUse returns the bytes currently counted: live Arrow buffers plus
// reservations.
func (b *Budget) InUse() int64 { return b.live.Load() + b.reserved.Load() }

// Allocated returns the live bytes of Arrow buffers allocated through b.
func (b *Budget) Allocated() int64 { return b.live.Load() }

// Reserved returns the bytes explicitly reserved.
func (b *Budget) Reserved() int64 { return b.reserved.Load() }

// Peak returns the high-water mark of InUse.
func (b *Budget) Peak() int64 { return b.peak.Load() }

func (b *Budget) note(total int64) {
	for {
		p := b.peak.Load()
		if total <= p || b.peak.CompareAndSwap(p, total) {
			break
		}
	}
	if b.limit > 0 && total > b.limit {
		b.over.Store(true)
	}
}

// Allocate implements memory.Allocator.
func (b *Budget) Allocate(size int) []byte {
	out := b.mem.Allocate(size)
	n := b.live.Add(int64(len(out)))
	b.note(n + b.reserved.Load())
	return out
}

// Reallocate implements memory.Allocator.
func (b *Budget) Reallocate(size int, buf []byte) []byte {
	old := len(buf)
	out := b.mem.Reallocate(size, buf)
	n := b.live.Add(int64(len(out) - old))
	b.note(n + b.reserved.Load())
	return out
}

// Free implements memory.Allocator.
func (b *Budget) Free(buf []byte) {
	b.live.Add(-int64(len(buf)))
	b.mem.Free(buf)
}

// Reserve counts n more bytes of Go-side memory against the budget. It
// fails with EResource, reserving nothing, when that would exceed the limit.
func (b *Budget) Reserve(n int64) error {
	if n <= 0 {
		return nil
	}
	r := b.reserved.Add(n)
	total := r + b.live.Load()
	if b.limit > 0 && total > b.limit {
		b.reserved.Add(-n)
		b.over.Store(true)
		return b.err()
	}
	b.note(total)
	return nil
}

// Release returns n reserved bytes.
func (b *Budget) Release(n int64) {
	if n > 0 {
		b.reserved.Add(-n)
	}
}

// Err returns the memory-limit error once the budget has been exceeded,
// and nil before.
func (b *Budget) Err() error {
	if b.over.Load() {
		return b.err()
	}
	return nil
}

func (b *Budget) err() error {
	return sluice.Errorf(sluice.EResource, "the query needs more than %s in the sandbox (memory limit); add filters or aggregate at the source", formatMiB(b.limit))
}

func formatMiB(n int64) string {
	if n%MiB == 0 {
		return strconv.FormatInt(n/MiB, 10) + " MiB"
	}
	return strconv.FormatFloat(float64(n)/MiB, 'f', 2, 64) + " MiB"
}

// reservation tracks what one operator has reserved, so Close can give it
// all back.
type reservation struct {
	b *Budget
	n int64
}

func (r *reservation) grow(n int64) error {
	if err := r.b.Reserve(n); err != nil {
		return err
	}
	r.n += n
	return nil
}

func (r *reservation) releaseAll() {
	r.b.Release(r.n)
	r.n = 0
}
