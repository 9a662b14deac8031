package admission

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func newController(t *testing.T, l Limits) *Controller {
	t.Helper()
	c, err := New(map[Class]Limits{Cross: l})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func acquire(t *testing.T, c *Controller, p, d string) *Slot {
	t.Helper()
	s, err := c.Acquire(context.Background(), Request{Class: Cross, Principal: p, Department: d})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor waits until the class has n waiting queries.
func waitFor(t *testing.T, c *Controller, n int) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if c.Stats()[0].Waiting == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("waiting = %d, want %d", c.Stats()[0].Waiting, n)
}

func TestNewRejectsBadLimits(t *testing.T) {
	for _, l := range []Limits{{Concurrency: 0}, {Concurrency: 1, Queue: -1}, {Concurrency: 1, PerPrincipal: -2}} {
		if _, err := New(map[Class]Limits{Cross: l}); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

func TestUnknownClassRefused(t *testing.T) {
	c := newController(t, Limits{Concurrency: 1})
	if _, err := c.Acquire(context.Background(), Request{Class: Single}); err == nil {
		t.Fatal("a class without limits was admitted")
	}
}

func TestConcurrencyBoundAndQueueOrder(t *testing.T) {
	c := newController(t, Limits{Concurrency: 2, Queue: 10})
	a := acquire(t, c, "p1", "d")
	b := acquire(t, c, "p2", "d")
	got := make(chan string, 3)
	var wg sync.WaitGroup
	for i, name := range []string{"q1", "q2", "q3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.Acquire(context.Background(), Request{Class: Cross, Principal: name, Department: "d"})
			if err != nil {
				t.Error(err)
				return
			}
			got <- name
			s.Release(true)
		}()
		waitFor(t, c, i+1)
	}
	waitFor(t, c, 3)
	if st := c.Stats()[0]; st.Running != 2 {
		t.Fatalf("running %d, want 2", st.Running)
	}
	a.Release(true)
	b.Release(true)
	wg.Wait()
	close(got)
	var order []string
	for n := range got {
		order = append(order, n)
	}
	if len(order) != 3 {
		t.Fatalf("started %v", order)
	}
	if st := c.Stats()[0]; st.Running != 0 || st.Waiting != 0 || st.Admitted != 5 {
		t.Fatalf("stats after: %+v", st)
	}
}

func TestQueueFullIsBusy(t *testing.T) {
	c := newController(t, Limits{Concurrency: 1, Queue: 1})
	s := acquire(t, c, "p", "d")
	defer s.Release(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Acquire(ctx, Request{Class: Cross, Principal: "q", Department: "d"})
	waitFor(t, c, 1)
	_, err := c.Acquire(context.Background(), Request{Class: Cross, Principal: "r", Department: "d"})
	var b *Busy
	if !errors.As(err, &b) || b.Reason != "queue_full" {
		t.Fatalf("err %v, want queue_full", err)
	}
	if !strings.Contains(err.Error(), "retry after") || !strings.Contains(err.Error(), "queue's limit (1 waiting)") {
		t.Fatalf("message %q does not explain", err)
	}
}

func TestPerPrincipalQueue(t *testing.T) {
	c := newController(t, Limits{Concurrency: 1, Queue: 10, PerPrincipal: 2})
	s := acquire(t, c, "p", "d")
	defer s.Release(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		go c.Acquire(ctx, Request{Class: Cross, Principal: "greedy", Department: "d"})
	}
	waitFor(t, c, 2)
	_, err := c.Acquire(context.Background(), Request{Class: Cross, Principal: "greedy", Department: "d"})
	var b *Busy
	if !errors.As(err, &b) || b.Reason != "principal_queue_full" {
		t.Fatalf("err %v, want principal_queue_full", err)
	}
	// Another principal still gets in line.
	go c.Acquire(ctx, Request{Class: Cross, Principal: "other", Department: "d"})
	waitFor(t, c, 3)
}

// A department with many queued queries does not starve another's one:
// a free slot goes to the department with fewer queries running, then to
// the principal with fewer, then to the query that came first.
func TestFairnessBetweenDepartments(t *testing.T) {
	c := newController(t, Limits{Concurrency: 2, Queue: 20})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h1 := acquire(t, c, "h1", "heavy")
	h2 := acquire(t, c, "h2", "heavy")
	got := make(chan string, 4)
	slots := make(chan *Slot, 4)
	enqueue := func(p, d string, n int) {
		go func() {
			if s, err := c.Acquire(ctx, Request{Class: Cross, Principal: p, Department: d}); err == nil {
				slots <- s
				got <- p
			}
		}()
		waitFor(t, c, n)
	}
	enqueue("h3", "heavy", 1)
	enqueue("h4", "heavy", 2)
	enqueue("l1", "light", 3)
	h1.Release(true) // heavy still has h2 running, light none
	if p := <-got; p != "l1" {
		t.Fatalf("slot went to %s, want l1: the department with fewer running goes first", p)
	}
	h2.Release(true) // heavy 0 running, light 1: heavy's first in line
	if p := <-got; p != "h3" {
		t.Fatalf("then %s, want h3 (arrival order within heavy)", p)
	}
	(<-slots).Release(true)
	(<-slots).Release(true)
	if p := <-got; p != "h4" {
		t.Fatalf("then %s, want h4", p)
	}
	(<-slots).Release(true)
}

// A client that goes away leaves the queue at once.
func TestCancelledWaiterLeaves(t *testing.T) {
	c := newController(t, Limits{Concurrency: 1, Queue: 5})
	s := acquire(t, c, "p", "d")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, Request{Class: Cross, Principal: "q", Department: "d"})
		done <- err
	}()
	waitFor(t, c, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	st := c.Stats()[0]
	if st.Waiting != 0 || st.Gave != 1 {
		t.Fatalf("stats %+v: the cancelled query is still queued", st)
	}
	s.Release(true)
	if st := c.Stats()[0]; st.Running != 0 {
		t.Fatalf("running %d after release", st.Running)
	}
}

// With an estimate known, a query whose deadline the queue cannot meet
// is refused at once, with the expected wait.
func TestDeadlineRefusedEarly(t *testing.T) {
	c := newController(t, Limits{Concurrency: 1, Queue: 10, Initial: 2 * time.Second})
	s := acquire(t, c, "p", "d")
	defer s.Release(false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	began := time.Now()
	_, err := c.Acquire(ctx, Request{Class: Cross, Principal: "q", Department: "d"})
	var b *Busy
	if !errors.As(err, &b) || b.Reason != "deadline" {
		t.Fatalf("err %v, want deadline", err)
	}
	if time.Since(began) > 200*time.Millisecond {
		t.Fatalf("refusal took %s: it must come at once", time.Since(began))
	}
	if b.RetryAfter != 2*time.Second || !strings.Contains(err.Error(), "retry after 2s") {
		t.Fatalf("retry after %s (%q), want 2s", b.RetryAfter, err)
	}
	// A generous deadline waits in line instead.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	go c.Acquire(ctx2, Request{Class: Cross, Principal: "r", Department: "d"})
	waitFor(t, c, 1)
}

// A waiting query gives up, explained, once what is left of its deadline
// no longer covers a run.
func TestWaiterGivesUpBeforeDeadline(t *testing.T) {
	c := newController(t, Limits{Concurrency: 1, Queue: 10, Initial: 300 * time.Millisecond})
	s := acquire(t, c, "p", "d")
	defer s.Release(false)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := c.Acquire(ctx, Request{Class: Cross, Principal: "q", Department: "d"})
	var b *Busy
	if !errors.As(err, &b) || b.Reason != "waited" {
		t.Fatalf("err %v, want waited", err)
	}
	if el := time.Since(began); el < 300*time.Millisecond || el > 650*time.Millisecond {
		t.Fatalf("gave up after %s, want about 400ms (deadline minus one run)", el)
	}
	if st := c.Stats()[0]; st.Waiting != 0 {
		t.Fatalf("still queued: %+v", st)
	}
}

func TestEstimateLearnsFromRuns(t *testing.T) {
	now := time.Unix(0, 0)
	c, err := New(map[Class]Limits{Cross: {Concurrency: 1, Queue: 1}}, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	s := acquire(t, c, "p", "d")
	now = now.Add(3 * time.Second)
	s.Release(true)
	if e := c.Stats()[0].Estimate; e != 3*time.Second {
		t.Fatalf("estimate %s, want 3s (first sample)", e)
	}
	s = acquire(t, c, "p", "d")
	now = now.Add(time.Second)
	s.Release(true)
	if e := c.Stats()[0].Estimate; e != 2600*time.Millisecond {
		t.Fatalf("estimate %s, want 2.6s", e)
	}
	s = acquire(t, c, "p", "d")
	now = now.Add(time.Hour)
	s.Release(false) // a failed run is not a sample
	if e := c.Stats()[0].Estimate; e != 2600*time.Millisecond {
		t.Fatalf("estimate %s moved on an unmeasured release", e)
	}
	s.Release(true) // a second release does nothing
	if st := c.Stats()[0]; st.Running != 0 {
		t.Fatalf("running %d", st.Running)
	}
}

// Many clients at once: the bound holds, everyone is admitted or told
// busy, nothing leaks.
func TestStress(t *testing.T) {
	c := newController(t, Limits{Concurrency: 3, Queue: 20, PerPrincipal: 5})
	var mu sync.Mutex
	running, peak, busy, ok := 0, 0, 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := string(rune('a' + i%7))
			s, err := c.Acquire(context.Background(), Request{Class: Cross, Principal: p, Department: p})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				var b *Busy
				if !errors.As(err, &b) {
					t.Error(err)
				}
				busy++
				return
			}
			ok++
			running++
			peak = max(peak, running)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			running--
			s.Release(true)
		}()
	}
	wg.Wait()
	if peak > 3 {
		t.Fatalf("peak %d running, limit 3", peak)
	}
	if ok+busy != 200 || ok == 0 {
		t.Fatalf("ok %d busy %d", ok, busy)
	}
	if st := c.Stats()[0]; st.Running != 0 || st.Waiting != 0 {
		t.Fatalf("leaked: %+v", st)
	}
}
