package audit

import (
	"fmt"
	"time"

	"github.com/sluice-gov/sluice/crypto/auditchain"
)

// Defaults for signed checkpoints, used when WithSigners is given without
// WithCheckpointEvery.
const (
	DefaultCheckpointEntries  = auditchain.DefaultCheckpointEntries
	DefaultCheckpointInterval = auditchain.DefaultCheckpointInterval
	DefaultBusyTimeout        = 5 * time.Second
)

// maxBatch bounds how many queued appends one transaction takes, so a
// burst does not hold the write lock for long.
const maxBatch = 512

type options struct {
	busyTimeout time.Duration
	readOnly    bool

	signers         []Signer
	checkpointEvery int
	checkpointAfter time.Duration

	err error
}

var defaultOptions = options{busyTimeout: DefaultBusyTimeout}

// Option configures Open.
type Option func(*options)

// WithSigners makes the log write signed checkpoints of its head, each
// signed by every signer (for example one Ed25519 and one ML-DSA-65 key).
// Without WithCheckpointEvery a checkpoint is written every
// DefaultCheckpointEntries entries or DefaultCheckpointInterval, whichever
// comes first, and on Close.
func WithSigners(s ...Signer) Option {
	return func(o *options) {
		for i, x := range s {
			if x == nil {
				o.err = fmt.Errorf("signer %d is nil", i+1)
				return
			}
		}
		o.signers = append(o.signers, s...)
	}
}

// WithCheckpointEvery sets when checkpoints are written: inside the
// transaction of the append that makes entries unsigned entries, and by a
// background timer once interval has passed since the first unsigned entry.
// Both must be positive.
func WithCheckpointEvery(entries int, interval time.Duration) Option {
	return func(o *options) {
		if entries < 1 || interval <= 0 {
			o.err = fmt.Errorf("checkpoint frequency must be at least 1 entry and a positive interval; got %d entries, %v", entries, interval)
			return
		}
		o.checkpointEvery, o.checkpointAfter = entries, interval
	}
}

// WithBusyTimeout sets how long an append waits for a write lock held by
// another connection before it fails (closed); DefaultBusyTimeout when not
// given.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.err = fmt.Errorf("busy timeout must be positive; got %v", d)
			return
		}
		o.busyTimeout = d
	}
}

// VerifyOption configures Verify and VerifyFile (auditchain.VerifyOption).
type VerifyOption = auditchain.VerifyOption

// WithTrustedKeys makes verification check every checkpoint's signatures
// (auditchain.WithTrustedKeys).
func WithTrustedKeys(keys ...PublicKey) VerifyOption { return auditchain.WithTrustedKeys(keys...) }

// WithUnsignedGrace accepts entries after the last checkpoint younger than
// d as not yet signed (auditchain.WithUnsignedGrace).
func WithUnsignedGrace(d time.Duration) VerifyOption { return auditchain.WithUnsignedGrace(d) }

// WithArchives verifies the given archive files (oldest first) before the
// store (auditchain.WithArchives).
func WithArchives(files ...string) VerifyOption { return auditchain.WithArchives(files...) }
