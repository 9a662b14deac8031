package broker

import (
	"context"

	sluice "github.com/sluice-gov/sluice"
)

// WithPrincipal lets tests and benchmarks call handlers directly, as the
// authentication interceptor would after a valid token.
func WithPrincipal(ctx context.Context, p sluice.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}
