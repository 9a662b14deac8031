package auditchain

import (
	"fmt"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// VerifyReport is the outcome of walking the chain.
type VerifyReport struct {
	// Entries is the number of stored entries walked.
	Entries int64 `json:"entries"`
	OK      bool  `json:"ok"`
	// FirstBad is the first sequence number that does not verify (for a
	// removed entry, the missing number); 0 when OK.
	FirstBad int64  `json:"first_bad,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// Head is the hash of the last entry that verified: on success, the
	// value an auditor records out of band to detect a later rewrite.
	Head string `json:"head"`
	// Checkpoints is the number of stored checkpoints; each was checked
	// against the chain. SignaturesChecked says whether their signatures
	// were verified (only with WithTrustedKeys); SignedThrough is the seq
	// of the last checkpoint, so entries after it are covered by the
	// chain alone.
	Checkpoints       int   `json:"checkpoints"`
	SignaturesChecked bool  `json:"signatures_checked"`
	SignedThrough     int64 `json:"signed_through,omitempty"`
	// Archives is the number of archive files verified before the store.
	Archives int `json:"archives,omitempty"`
}

type verifyOptions struct {
	grace    time.Duration
	trusted  []PublicKey
	archives []string
	err      error
}

// VerifyOption configures verification.
type VerifyOption func(*verifyOptions)

// WithTrustedKeys makes verification check every checkpoint's signatures:
// each checkpoint needs at least one valid signature from one of keys, and
// every signature made by one of keys must be valid. Signatures by other
// keys cannot be checked and are ignored.
func WithTrustedKeys(keys ...PublicKey) VerifyOption {
	return func(o *verifyOptions) {
		for _, k := range keys {
			if err := k.Check(); err != nil {
				o.err = err
				return
			}
		}
		o.trusted = append(o.trusted, keys...)
	}
}

// WithUnsignedGrace accepts entries after the last checkpoint as not yet
// signed when the oldest of them is younger than d (a live log between
// checkpoints); older unsigned entries are reported. Without it, with
// trusted keys, a log with entries and no checkpoint at all fails.
func WithUnsignedGrace(d time.Duration) VerifyOption {
	return func(o *verifyOptions) { o.grace = d }
}

// WithArchives verifies the given archive files (oldest first) before the
// store, so the chain is checked from entry 1 across archives.
func WithArchives(files ...string) VerifyOption {
	return func(o *verifyOptions) { o.archives = append(o.archives, files...) }
}

func verifyOpts(opts []VerifyOption) (verifyOptions, error) {
	var vo verifyOptions
	for _, o := range opts {
		if o != nil {
			o(&vo)
		}
	}
	if vo.err != nil {
		return vo, sluice.Errorf(sluice.EInvalid, "verify: %s", sluice.ErrorMessage(vo.err))
	}
	return vo, nil
}

// CheckVerifyOptions reports an invalid option (EInvalid) before a store
// is opened to verify.
func CheckVerifyOptions(opts ...VerifyOption) error {
	_, err := verifyOpts(opts)
	return err
}

// Snapshot is a stored chain as one consistent read of a store sees it.
type Snapshot struct {
	// Head is the recorded head; HeadMissing says the store has no head
	// record (Head is then EmptyHead).
	Head        Head
	HeadMissing bool
	// Checkpoints are the stored checkpoints, in seq order.
	Checkpoints []Checkpoint
	// Archives are the store's records of the archive files its oldest
	// entries moved to, oldest first.
	Archives []ArchiveRecord
	// Rows streams the stored entries in seq order to add. It is called
	// once, after the archives were checked, unless they already failed;
	// its error is returned as is.
	Rows func(add func(*StoredRow)) error
}

// Verify walks a stored chain in sequence order and reports the first
// entry that does not verify. Checkpoints are checked against the chain;
// with WithTrustedKeys their signatures too; with WithArchives the chain is
// walked from the first archive through the store. The error is for what
// could not be read (an archive file, the store's rows) or an invalid
// option; what does not verify is in the report.
func Verify(s Snapshot, opts ...VerifyOption) (*VerifyReport, error) {
	vo, err := verifyOpts(opts)
	if err != nil {
		return nil, err
	}
	cps, recorded := s.Checkpoints, s.Archives
	v := NewVerifier(EmptyHead, cps)
	var firstUnsigned time.Time // time of the first entry after the last checkpoint
	needArchives := false
	if len(vo.archives) > 0 {
		if err := verifyArchives(v, vo.archives, recorded); err != nil {
			return nil, err
		}
	} else if len(recorded) > 0 {
		// Walk the store from where the last archive ends, so the
		// entries still in the store are checked; the report still
		// fails because the archived part was not.
		last := recorded[len(recorded)-1]
		v.next, v.prevHash = last.LastSeq+1, last.LastHash
		needArchives = true
	}
	if !v.Failed() && s.Rows != nil {
		var signedThrough int64
		if len(cps) > 0 {
			signedThrough = cps[len(cps)-1].Seq
		}
		if err := s.Rows(func(r *StoredRow) {
			if r.Seq == signedThrough+1 {
				firstUnsigned = time.UnixMicro(r.TimeUS)
			}
			v.Add(r)
		}); err != nil {
			return nil, err
		}
	}
	rep := v.finish(s.Head)
	if s.HeadMissing && !v.Failed() && rep.Entries > 0 {
		rep.OK = false
		rep.FirstBad = 1
		rep.Problem = "the audit head record is missing, so removal of entries from the end cannot be ruled out"
	}
	last := v.next - 1
	if rep.OK && len(cps) > 0 && cps[len(cps)-1].Seq > last {
		c := cps[len(cps)-1]
		rep.OK = false
		rep.FirstBad = last + 1
		rep.Problem = fmt.Sprintf("a checkpoint was signed at entry %d but the log ends at entry %d: entries %d to %d were removed (the tail was truncated and the head rewritten)", c.Seq, last, last+1, c.Seq)
	}
	rep.Checkpoints = len(cps)
	if len(cps) > 0 {
		rep.SignedThrough = cps[len(cps)-1].Seq
	}
	if len(vo.trusted) > 0 {
		rep.SignaturesChecked = true
		seq, problem := checkSignatures(cps, vo.trusted)
		unsignedYoung := vo.grace > 0 && !firstUnsigned.IsZero() && time.Since(firstUnsigned) < vo.grace
		if problem == "" && len(cps) == 0 && last > 0 && !unsignedYoung {
			seq, problem = 1, "the log has no signed checkpoint: they were removed, or the broker never signed this log (trusted keys were given)"
		}
		if problem == "" && vo.grace > 0 && rep.SignedThrough < last && !unsignedYoung {
			seq, problem = rep.SignedThrough+1, fmt.Sprintf("entries after %d are not covered by a signed checkpoint although they are older than %s: checkpoints were removed or the signer stopped", rep.SignedThrough, vo.grace)
		}
		if problem != "" && (rep.OK || seq <= rep.FirstBad) {
			rep.OK, rep.FirstBad, rep.Problem = false, seq, problem
		}
	}
	if rep.OK && needArchives {
		first := recorded[0]
		lastA := recorded[len(recorded)-1]
		rep.OK = false
		rep.FirstBad = first.FirstSeq
		rep.Problem = fmt.Sprintf("entries %d to %d were moved to %d archive file(s) (%s … %s); pass the archive files, oldest first, to verify the whole chain (the %d entries in the store verify from there)",
			first.FirstSeq, lastA.LastSeq, len(recorded), first.File, lastA.File, rep.Entries)
	}
	return rep, nil
}
