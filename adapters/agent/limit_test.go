package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStreamLimiter(t *testing.T) {
	l := newStreamLimiter(2)
	l.wait = 200 * time.Millisecond
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := l.acquire(ctx); err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
	}
	// A third waits, and gets the slot another releases.
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	time.Sleep(20 * time.Millisecond)
	l.release()
	if err := <-got; err != nil {
		t.Fatalf("waiting stream: %v", err)
	}
	// With every slot taken, a waiter gives up after the longest wait,
	// explained.
	began := time.Now()
	err := l.acquire(ctx)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "agent.max_concurrent") {
		t.Fatalf("err %v, want ResourceExhausted naming agent.max_concurrent", err)
	}
	if el := time.Since(began); el < 150*time.Millisecond || el > time.Second {
		t.Fatalf("gave up after %s, want about 200ms", el)
	}
	// Beyond the waiting room, refused at once.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < 2; i++ {
		go l.acquire(cctx)
	}
	for len(l.waiting) < 2 {
		time.Sleep(time.Millisecond)
	}
	began = time.Now()
	if err := l.acquire(ctx); status.Code(err) != codes.ResourceExhausted || time.Since(began) > 50*time.Millisecond {
		t.Fatalf("err %v after %s, want an immediate ResourceExhausted", err, time.Since(began))
	}
	// A caller that goes away stops waiting.
	cancel()
	for len(l.waiting) > 0 {
		time.Sleep(time.Millisecond)
	}
	if n := newStreamLimiter(0); cap(n.slots) != defaultMaxStreams() {
		t.Fatalf("default %d", cap(n.slots))
	}
}
