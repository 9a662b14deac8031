// Package admission decides when an allowed query may start running on the
// broker: a fixed number of running queries per cost class, a bounded
// queue in front of each class, fairness between departments and
// principals in that queue, and an early, explained "busy" for a query
// that would not start (or finish) in time anyway.
//
// Why: every query slows every other. Without admission, 64 concurrent
// private joins share two cores until most clients' deadlines pass while
// their work goes on for nobody; with it, a class runs as many queries as
// the machine serves well, the rest wait in order, and a client whose
// deadline the queue cannot meet is told so at once, with how long to wait
// before retrying.
//
// The package is plain Go: the broker asks Acquire before a query's work
// and calls Slot.Release when it ends; errors are *Busy (the edge maps it
// to ResourceExhausted with a retry delay) or the context's own error.
package admission

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Class is a cost class: queries of one class compete for its slots.
type Class string

const (
	// Single is a query one department's agent answers alone: the broker
	// relays a stream. Cheap for the broker.
	Single Class = "single"
	// Cross is a cross-department query: fragments meet in the sandbox
	// engine, through private joins (PSI) where identities are joined.
	// CPU-bound (PSI's curve arithmetic) and memory-bound (the engine).
	Cross Class = "cross"
)

// Classes lists the classes in a fixed order.
var Classes = []Class{Single, Cross}

// Limits bound one class.
type Limits struct {
	// Concurrency is how many queries of the class run at once (>= 1).
	Concurrency int
	// Queue is how many more may wait (0: none wait; a query that finds
	// every slot taken is refused).
	Queue int
	// PerPrincipal bounds one principal's waiting queries (0: Queue).
	PerPrincipal int
	// Initial is the expected run time of a query of the class before
	// any has been measured (0: no estimate until one has finished).
	Initial time.Duration
}

// Request is who wants a slot of which class.
type Request struct {
	Class      Class
	Principal  string
	Department string
}

// Busy is the refusal of a query the class cannot take now. It says why,
// where the query would have stood, and when to retry.
type Busy struct {
	Class Class
	// Reason is one of "queue_full", "principal_queue_full",
	// "deadline" (the expected wait exceeds the client's deadline) or
	// "waited" (the query waited until too little time was left).
	Reason string
	// Ahead is how many queries of the class were running or waiting
	// before this one.
	Ahead int
	// RetryAfter is the expected time until a slot is free, in whole
	// seconds, at least one.
	RetryAfter time.Duration
	// Limit is the bound that was hit, for the message.
	Limit int
}

func (b *Busy) Error() string {
	what := "cross-department queries"
	if b.Class == Single {
		what = "single-department queries"
	}
	retry := fmt.Sprintf("retry after %s", roundUp(b.RetryAfter))
	switch b.Reason {
	case "queue_full":
		return fmt.Sprintf("the broker is busy: %d %s are running or waiting, the queue's limit (%d waiting) is reached; %s", b.Ahead, what, b.Limit, retry)
	case "principal_queue_full":
		return fmt.Sprintf("the broker is busy: you already have %d %s waiting, the most one user may have queued; wait for them, or %s", b.Limit, what, retry)
	case "deadline":
		return fmt.Sprintf("the broker is busy: %d %s are ahead of yours and the expected wait, %s, does not fit your deadline; %s or allow more time", b.Ahead, what, roundUp(b.RetryAfter), retry)
	default:
		return fmt.Sprintf("the broker is busy: your query waited for one of the %s slots until too little of your deadline was left to run it; %s or allow more time", what, retry)
	}
}

// margin is the time a run is given against a deadline: the estimate and
// a quarter more, as runs vary around their average.
func margin(est time.Duration) time.Duration { return est + est/4 }

// roundUp is a retry delay as told: whole seconds, at least one.
func roundUp(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return d.Round(time.Second)
}

// Stats is a snapshot of one class, for metrics and status pages.
type Stats struct {
	Class    Class
	Limit    int
	Running  int
	Waiting  int
	Admitted uint64 // started, immediately or after waiting
	Refused  uint64 // Busy
	Gave     uint64 // left the queue because the client went away
	// Estimate is the current expected run time of a query.
	Estimate time.Duration
}

// Controller admits queries. Its zero value is not usable: use New.
type Controller struct {
	mu      sync.Mutex
	now     func() time.Time
	classes map[Class]*class
}

type class struct {
	name        Class
	lim         Limits
	running     int
	byPrincipal map[string]int // running
	byDept      map[string]int // running
	queuedBy    map[string]int // waiting, by principal
	waiters     []*waiter      // arrival order
	seq         uint64
	estimate    time.Duration // moving average of run time; 0 = unknown
	measured    bool
	admitted    uint64
	refused     uint64
	gave        uint64
}

type waiter struct {
	req     Request
	seq     uint64
	ready   chan struct{}
	granted bool
}

// Option configures a Controller.
type Option func(*Controller)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(c *Controller) { c.now = now } }

// New returns a controller with the given limits per class. A class
// missing from limits is refused outright (fail closed).
func New(limits map[Class]Limits, opts ...Option) (*Controller, error) {
	c := &Controller{now: time.Now, classes: map[Class]*class{}}
	for _, o := range opts {
		o(c)
	}
	for name, l := range limits {
		if l.Concurrency < 1 {
			return nil, fmt.Errorf("admission: class %s: concurrency must be at least 1", name)
		}
		if l.Queue < 0 || l.PerPrincipal < 0 || l.Initial < 0 {
			return nil, fmt.Errorf("admission: class %s: queue, per-principal queue and initial estimate must not be negative", name)
		}
		if l.PerPrincipal == 0 || l.PerPrincipal > l.Queue {
			l.PerPrincipal = l.Queue
		}
		c.classes[name] = &class{name: name, lim: l, byPrincipal: map[string]int{}, byDept: map[string]int{},
			queuedBy: map[string]int{}, estimate: l.Initial}
	}
	return c, nil
}

// Slot is a granted place to run. Release it exactly when the query's
// work has ended (further calls do nothing).
type Slot struct {
	c     *Controller
	cl    *class
	req   Request
	start time.Time
	// Waited is how long the query waited in the queue.
	Waited time.Duration
	once   sync.Once
}

// Release gives the slot back and lets the next waiting query start.
// measure says whether the run time is a fair sample of the class's work
// (false for a query that failed early or was cancelled).
func (s *Slot) Release(measure bool) {
	if s == nil {
		return
	}
	s.once.Do(func() {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		cl := s.cl
		if measure {
			cl.observe(s.c.now().Sub(s.start))
		}
		cl.running--
		dec(cl.byPrincipal, s.req.Principal)
		dec(cl.byDept, s.req.Department)
		s.c.dispatchLocked(cl)
	})
}

func dec(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
		return
	}
	m[k]--
}

// observe folds one run time into the class's estimate (an exponentially
// weighted average, a fifth of weight to each new sample).
func (cl *class) observe(d time.Duration) {
	if !cl.measured {
		cl.estimate, cl.measured = d, true
		return
	}
	cl.estimate = time.Duration(0.8*float64(cl.estimate) + 0.2*float64(d))
}

// wait is the expected time before a query with ahead queries before it
// (running and waiting) starts: slots free at a rate of Concurrency per
// estimate.
func (cl *class) wait(ahead int) time.Duration {
	if cl.estimate <= 0 {
		return 0
	}
	beyond := ahead - cl.lim.Concurrency + 1
	if beyond <= 0 {
		return 0
	}
	rounds := math.Ceil(float64(beyond) / float64(cl.lim.Concurrency))
	return time.Duration(rounds * float64(cl.estimate))
}

// Acquire returns a slot of req's class for a query that starts now, once
// one is free, or a *Busy refusal, or ctx's error if the client went away
// while waiting (the query leaves the queue at once).
func (c *Controller) Acquire(ctx context.Context, req Request) (*Slot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	cl := c.classes[req.Class]
	if cl == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("admission: no limits for class %q", req.Class)
	}
	now := c.now()
	if cl.running < cl.lim.Concurrency && len(cl.waiters) == 0 {
		cl.take(req)
		c.mu.Unlock()
		return &Slot{c: c, cl: cl, req: req, start: now}, nil
	}
	ahead := cl.running + len(cl.waiters)
	busy := func(reason string, limit int) (*Slot, error) {
		cl.refused++
		b := &Busy{Class: req.Class, Reason: reason, Ahead: ahead, Limit: limit, RetryAfter: cl.wait(ahead)}
		if b.RetryAfter <= 0 {
			b.RetryAfter = cl.estimate
		}
		b.RetryAfter = roundUp(b.RetryAfter)
		c.mu.Unlock()
		return nil, b
	}
	if len(cl.waiters) >= cl.lim.Queue {
		return busy("queue_full", cl.lim.Queue)
	}
	if cl.queuedBy[req.Principal] >= cl.lim.PerPrincipal {
		return busy("principal_queue_full", cl.lim.PerPrincipal)
	}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline && cl.estimate > 0 && now.Add(cl.wait(ahead)+margin(cl.estimate)).After(deadline) {
		return busy("deadline", 0)
	}
	cl.seq++
	w := &waiter{req: req, seq: cl.seq, ready: make(chan struct{})}
	cl.waiters = append(cl.waiters, w)
	cl.queuedBy[req.Principal]++
	c.mu.Unlock()

	// A waiting query gives up, explained, when what is left of its
	// deadline no longer covers a run: better told now than cancelled
	// halfway.
	var giveUp <-chan time.Time
	if hasDeadline {
		c.mu.Lock()
		est := cl.estimate
		c.mu.Unlock()
		if est > 0 {
			t := time.NewTimer(max(deadline.Sub(now)-margin(est), 0))
			defer t.Stop()
			giveUp = t.C
		}
	}
	select {
	case <-w.ready:
		return c.granted(cl, w, now)
	case <-ctx.Done():
		if s, ok := c.leave(cl, w, now, func() { cl.gave++ }); ok {
			return s, nil
		}
		return nil, ctx.Err()
	case <-giveUp:
		var ahead int
		if s, ok := c.leave(cl, w, now, func() {
			cl.refused++
			ahead = cl.running + len(cl.waiters)
		}); ok {
			return s, nil
		}
		c.mu.Lock()
		retry := cl.wait(ahead)
		if retry <= 0 {
			retry = cl.estimate
		}
		c.mu.Unlock()
		return nil, &Busy{Class: req.Class, Reason: "waited", Ahead: ahead, RetryAfter: roundUp(retry)}
	}
}

// granted completes a waiter that was given a slot.
func (c *Controller) granted(cl *class, w *waiter, arrived time.Time) (*Slot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	return &Slot{c: c, cl: cl, req: w.req, start: now, Waited: now.Sub(arrived)}, nil
}

// leave takes w out of the queue; if a slot was granted meanwhile, the
// caller gets it (ok) instead — its Release frees it.
func (c *Controller) leave(cl *class, w *waiter, arrived time.Time, count func()) (*Slot, bool) {
	c.mu.Lock()
	if w.granted {
		c.mu.Unlock()
		s, _ := c.granted(cl, w, arrived)
		return s, true
	}
	for i, x := range cl.waiters {
		if x == w {
			cl.waiters = append(cl.waiters[:i], cl.waiters[i+1:]...)
			break
		}
	}
	dec(cl.queuedBy, w.req.Principal)
	count()
	c.mu.Unlock()
	return nil, false
}

// take counts a query of req's as running. c.mu must be held.
func (cl *class) take(req Request) {
	cl.running++
	cl.byPrincipal[req.Principal]++
	cl.byDept[req.Department]++
	cl.admitted++
}

// dispatchLocked starts waiting queries while slots are free, the fairest
// first: the one whose department, then whose principal, has the fewest
// queries running, then the one that came first.
func (c *Controller) dispatchLocked(cl *class) {
	for cl.running < cl.lim.Concurrency && len(cl.waiters) > 0 {
		best := 0
		for i := 1; i < len(cl.waiters); i++ {
			if cl.fairer(cl.waiters[i], cl.waiters[best]) {
				best = i
			}
		}
		w := cl.waiters[best]
		cl.waiters = append(cl.waiters[:best], cl.waiters[best+1:]...)
		dec(cl.queuedBy, w.req.Principal)
		cl.take(w.req)
		w.granted = true
		close(w.ready)
	}
}

func (cl *class) fairer(a, b *waiter) bool {
	if da, db := cl.byDept[a.req.Department], cl.byDept[b.req.Department]; da != db {
		return da < db
	}
	if pa, pb := cl.byPrincipal[a.req.Principal], cl.byPrincipal[b.req.Principal]; pa != pb {
		return pa < pb
	}
	return a.seq < b.seq
}

// Stats returns a snapshot of every class, in Classes order then by name.
func (c *Controller) Stats() []Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Stats, 0, len(c.classes))
	for _, cl := range c.classes {
		out = append(out, Stats{Class: cl.name, Limit: cl.lim.Concurrency, Running: cl.running, Waiting: len(cl.waiters),
			Admitted: cl.admitted, Refused: cl.refused, Gave: cl.gave, Estimate: cl.estimate})
	}
	order := map[Class]int{}
	for i, k := range Classes {
		order[k] = i + 1
	}
	sort.Slice(out, func(i, j int) bool {
		oi, oj := order[out[i].Class], order[out[j].Class]
		if oi != oj {
			if oi == 0 || oj == 0 {
				return oj == 0
			}
			return oi < oj
		}
		return out[i].Class < out[j].Class
	})
	return out
}
