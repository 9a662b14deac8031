package alerts

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

type memLog struct {
	mu      sync.Mutex
	entries []audit.Entry
	fail    error
}

func (m *memLog) Append(_ context.Context, e *audit.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.entries = append(m.entries, *e)
	return nil
}

func (m *memLog) kinds() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.entries {
		out = append(out, e.Kind)
	}
	return out
}

// TestRecorder: every entry is appended, then the rules see it; an alert
// they raise is appended after it. A failed append is the caller's error
// and raises nothing.
func TestRecorder(t *testing.T) {
	e, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	log := &memLog{}
	r := NewRecorder(log, e, nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := r.Record(ctx, &audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionDeny, Principal: "bob", Time: noon.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	kinds := log.kinds()
	if len(kinds) != 6 || kinds[4] != audit.KindQuery || kinds[5] != audit.KindAlert {
		t.Fatalf("want five queries then the repeated-denials alert, got %v", kinds)
	}
	log.fail = errors.New("disk full")
	if err := r.Record(ctx, &audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionDeny, Principal: "bob", Time: noon}); err == nil {
		t.Fatal("a failed append was not reported")
	}
	// Without rules the recorder only appends.
	plain := &memLog{}
	if err := NewRecorder(plain, nil, nil).Record(ctx, &audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionDeny}); err != nil || len(plain.kinds()) != 1 {
		t.Fatalf("without rules: %v %v", plain.kinds(), err)
	}
}

// TestWatchGrants: grants about to expire raise an alert at start; the
// watch ends with its context.
func TestWatchGrants(t *testing.T) {
	e, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	log := &memLog{}
	r := NewRecorder(log, e, nil)
	grants := []sluice.Grant{{ID: "soon", Grantee: "alice", Dataset: "health.insured", ValidUntil: noon.Add(48 * time.Hour)},
		{ID: "later", Grantee: "bob", Dataset: "police.household", ValidUntil: noon.Add(90 * 24 * time.Hour)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.WatchGrants(ctx, func() time.Time { return noon }, func() []sluice.Grant { return grants })
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(log.kinds()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if kinds := log.kinds(); len(kinds) != 1 || kinds[0] != audit.KindAlert {
		t.Fatalf("want one grant_expiring alert, got %v", kinds)
	}
}

// A failed append is the caller's refusal, and the operator's log says so
// with the cause.
func TestRecorderLogsFailedAppend(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	r := NewRecorder(&memLog{fail: errors.New("database is locked")}, nil, logger)
	err := r.Record(context.Background(), &audit.Entry{Kind: "query", QueryID: "q-1", Principal: "alice"})
	if err == nil {
		t.Fatal("a failed append must fail the record")
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"audit append failed", "query_id=q-1", "database is locked"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
