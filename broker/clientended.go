package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// Reasons recorded when the client, not an agent or the broker, ended a
// request: its own cancellation, or the deadline it set.
const (
	ReasonClientCancelled = "client_cancelled"
	ReasonClientDeadline  = "client_deadline"
)

// deadlineSlack is how close to its deadline a client's cancellation counts
// as the deadline passing.
const deadlineSlack = 100 * time.Millisecond

// clientEnded returns what to record and answer when the request's context
// has ended: the client cancelled the call or its deadline passed. Whatever
// failed downstream because of that (an agent call cut short, the sandbox
// interrupted) is a consequence, not the cause, and must not be recorded
// as an agent failure. When the context is still live, cause is returned
// unchanged; a release the differencing guard refused stays a denial.
func clientEnded(ctx context.Context, start time.Time, cause error) error {
	cerr := ctx.Err()
	if cerr == nil || sluice.ErrorCode(cause) == sluice.EDenied {
		return cause
	}
	after := time.Since(start).Round(time.Millisecond)
	reason, msg := ReasonClientCancelled, fmt.Sprintf("the client cancelled the request after %s; the broker stopped the query (not an agent or broker failure)", after)
	// A client whose deadline passes also resets the call, which can
	// reach the broker as a cancellation a moment before the broker's own
	// copy of the deadline fires: a cancellation at (or past) the deadline
	// is the deadline.
	dl, hasDeadline := ctx.Deadline()
	if errors.Is(cerr, context.DeadlineExceeded) || (hasDeadline && !time.Now().Before(dl.Add(-deadlineSlack))) {
		reason = ReasonClientDeadline
		msg = fmt.Sprintf("the client's deadline passed %s into this call, before the result was complete; the broker stopped the query (not an agent or broker failure): raise the client's timeout or narrow the query", after)
	}
	// Err is the context's error, so the gRPC edge answers Canceled or
	// DeadlineExceeded (toStatus) rather than Unavailable.
	return &sluice.Error{Code: sluice.EUnavailable, Message: msg, Reasons: []string{reason}, Err: cerr}
}
