package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
)

// TestClientEnded: a request whose client cancelled or whose deadline
// passed is recorded and answered as such, whatever failed downstream; a
// live request's error and a denial are left alone.
func TestClientEnded(t *testing.T) {
	agentErr := sluice.Errorf(sluice.EUnavailable, "the agent of department police is unavailable (its connection failed or was cut)")
	start := time.Now()

	live := context.Background()
	if got := clientEnded(live, start, agentErr); got != agentErr {
		t.Fatalf("a live request: %v", got)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	got := clientEnded(cancelled, start, agentErr)
	var se *sluice.Error
	if !errors.As(got, &se) || !strings.Contains(se.Message, "client cancelled") || strings.Contains(se.Message, "police") ||
		len(se.Reasons) != 1 || se.Reasons[0] != ReasonClientCancelled {
		t.Fatalf("a cancelled request: %#v", got)
	}
	if status.Code(toStatus(got)) != codes.Canceled {
		t.Fatalf("a cancelled request is answered %v", toStatus(got))
	}
	if got := clientEnded(cancelled, start, nil); sluice.ErrorMessage(got) == "" {
		t.Fatal("a request cancelled with nothing failed downstream must still be recorded as cancelled")
	}

	expired, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	<-expired.Done()
	got = clientEnded(expired, start, agentErr)
	if !errors.As(got, &se) || !strings.Contains(se.Message, "client's deadline") || se.Reasons[0] != ReasonClientDeadline {
		t.Fatalf("a request past its deadline: %#v", got)
	}
	if status.Code(toStatus(got)) != codes.DeadlineExceeded {
		t.Fatalf("a request past its deadline is answered %v", toStatus(got))
	}
	// Cancelled at its deadline (the client's reset arrived first): the
	// deadline.
	atDeadline, cancel3 := context.WithDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	defer cancel3()
	cancel3()
	if got := clientEnded(atDeadline, start, agentErr); !errors.As(got, &se) || se.Reasons[0] != ReasonClientDeadline {
		t.Fatalf("a request reset at its deadline: %#v", got)
	}

	denied := sluice.Errorf(sluice.EDenied, "the differencing guard refused the release")
	if got := clientEnded(cancelled, start, denied); got != denied {
		t.Fatalf("a denial: %v", got)
	}
}
