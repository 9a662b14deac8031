// Package psi holds the primitives of Sluice's private set intersection:
// ECDH ("double blinding") PSI over the prime-order group ristretto255.
//
// Each party hashes its normalised join keys into the group with a hash
// domain-separated by the key domain, and multiplies them by a fresh secret
// scalar of its own (Blind): a·H(k). The broker relays the singly blinded
// sets; each party multiplies the other's values by its own secret again
// (Reblind): b·(a·H(k)) = a·(b·H(k)). The broker matches the doubly blinded
// values (Match) without learning any key, and without being able to match
// the singly blinded sets, which are under different secrets.
//
// The group was chosen by measurement (bench_test.go); README.md has the
// figures and the reasons.
package psi

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/cloudflare/circl/group"
	"golang.org/x/text/unicode/norm"

	sluice "github.com/sluice-gov/sluice"
)

const (
	// GroupName names the group the package uses.
	GroupName = "ristretto255"
	// PointLen is the length of an encoded element (canonical ristretto255
	// encoding): every blinded value is exactly this long.
	PointLen = 32
	// dstPrefix versions the hash: changing the group, the hash or the
	// normalisation must change it, so that values of two versions never
	// match by accident.
	dstPrefix = "sluice-psi-v1:"
	// MaxDomainLen bounds a key domain so that the DST stays well under the
	// 255 bytes RFC 9380 allows.
	MaxDomainLen = 128
	// chunk is the number of keys a worker takes at a time in the batch
	// helpers: large enough to make the shared counter cheap, small enough
	// to balance the load and notice cancellation quickly.
	chunk = 512
)

// grp is the group. Changing it is a protocol change: bump dstPrefix.
var grp = group.Ristretto255

// DST is the hash-to-group domain separation tag for a key domain, so that
// the same key hashes to unrelated elements in different domains.
func DST(domain string) string { return dstPrefix + domain }

// CheckDomain reports whether domain can be used as a key domain.
func CheckDomain(domain string) error {
	if domain == "" {
		return sluice.Errorf(sluice.EInvalid, "the PSI key domain is empty; name the key domain of the join key columns (e.g. person)")
	}
	if len(domain) > MaxDomainLen {
		return sluice.Errorf(sluice.EInvalid, "the PSI key domain is %d bytes; at most %d are allowed", len(domain), MaxDomainLen)
	}
	if !utf8.ValidString(domain) {
		return sluice.Errorf(sluice.EInvalid, "the PSI key domain is not valid UTF-8")
	}
	return nil
}

// Normalize is the normalisation both parties apply to a join key before
// hashing it, so that the same identifier written differently matches:
// Unicode NFKC (full-width digits and letters become ASCII, the ideographic
// space a space), then every white-space and invisible format character
// (zero-width space, BOM, …) removed, then upper case (ID numbers end in X
// or x). An empty result means the key is absent and never matches.
func Normalize(key string) string {
	// Fast path: ASCII needs no NFKC.
	ascii := true
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		clean := true
		for i := 0; i < len(key); i++ {
			c := key[i]
			if c <= ' ' || c == 0x7f || ('a' <= c && c <= 'z') {
				clean = false
				break
			}
		}
		if clean {
			return key
		}
		b := make([]byte, 0, len(key))
		for i := 0; i < len(key); i++ {
			c := key[i]
			switch {
			case c <= ' ' || c == 0x7f: // white space and control characters
			case 'a' <= c && c <= 'z':
				b = append(b, c-'a'+'A')
			default:
				b = append(b, c)
			}
		}
		return string(b)
	}
	if !utf8.ValidString(key) {
		key = strings.ToValidUTF8(key, "\uFFFD")
	}
	s := norm.NFKC.String(key)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// hashToGroup is H(key) in the key domain: the ristretto255 hash of RFC 9380
// (appendix B; expand_message_xmd with SHA-512, two Elligator maps added).
func hashToGroup(normalizedKey, domain string) group.Element {
	return grp.HashToElement([]byte(normalizedKey), []byte(DST(domain)))
}

// Secret is one party's blinding scalar for one query. It is created fresh
// for every (query, agent) pair and never leaves the process: it has no
// encoding, and printing it prints nothing of it.
type Secret struct {
	mu sync.RWMutex
	k  group.Scalar // nil once destroyed
}

// NewSecret draws a uniformly random non-zero scalar from crypto/rand.
func NewSecret() (*Secret, error) {
	// Make sure the system's generator works before relying on it: circl's
	// ristretto255 draws from crypto/rand itself and cannot report a failure.
	var probe [1]byte
	if _, err := rand.Read(probe[:]); err != nil {
		return nil, &sluice.Error{Code: sluice.EInternal, Message: "the system random number generator failed; no PSI secret was made", Err: err}
	}
	k := grp.RandomNonZeroScalar(rand.Reader)
	if k.IsZero() {
		return nil, sluice.Errorf(sluice.EInternal, "the PSI secret came out zero; the random number generator is broken")
	}
	return &Secret{k: k}, nil
}

// String and GoString keep the scalar out of logs and error messages.
func (s *Secret) String() string   { return "psi.Secret(redacted)" }
func (s *Secret) GoString() string { return "psi.Secret(redacted)" }

// Destroy overwrites the scalar and makes every later use fail (Blind
// returns nil). It is safe to call more than once and concurrently with
// other uses: they finish with the scalar or see it gone.
func (s *Secret) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.k != nil {
		s.k.SetUint64(0)
		s.k = nil
	}
}

// rlock returns the scalar with the read lock held; the caller unlocks.
func (s *Secret) rlock() (group.Scalar, error) {
	s.mu.RLock()
	if s.k == nil {
		s.mu.RUnlock()
		return nil, sluice.Errorf(sluice.ENotFound, "the PSI secret has been destroyed (the session was closed or expired)")
	}
	return s.k, nil
}

// Blind returns Encode(s·H(key)) for a key already passed through Normalize,
// in the hash domain of domain. It returns nil if the secret was destroyed.
func (s *Secret) Blind(normalizedKey string, domain string) []byte {
	k, err := s.rlock()
	if err != nil {
		return nil
	}
	defer s.mu.RUnlock()
	out, err := blind(k, normalizedKey, domain)
	if err != nil {
		return nil
	}
	return out
}

func blind(k group.Scalar, normalizedKey, domain string) ([]byte, error) {
	p := hashToGroup(normalizedKey, domain)
	p.Mul(p, k)
	return encode(p)
}

func encode(p group.Element) ([]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, &sluice.Error{Code: sluice.EInternal, Message: "a group element cannot be encoded", Err: err}
	}
	return b, nil
}

// Reblind returns Encode(s·P) for an encoded element P received from the
// other party. It rejects anything that is not the canonical encoding of a
// group element, and the identity (which would make every key match).
func (s *Secret) Reblind(point []byte) ([]byte, error) {
	k, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return reblind(k, point, -1)
}

func reblind(k group.Scalar, point []byte, index int) ([]byte, error) {
	if len(point) != PointLen {
		return nil, invalidPoint(index, "it is %d bytes, not %d", len(point), PointLen)
	}
	p := grp.NewElement()
	if err := p.UnmarshalBinary(point); err != nil {
		return nil, invalidPoint(index, "it is not the canonical encoding of a %s element", GroupName)
	}
	if p.IsIdentity() {
		return nil, invalidPoint(index, "it is the identity element")
	}
	p.Mul(p, k)
	return encode(p)
}

func invalidPoint(index int, format string, args ...any) error {
	where := "invalid PSI point: "
	if index >= 0 {
		where = fmt.Sprintf("invalid PSI point at index %d: ", index)
	}
	return sluice.Errorf(sluice.EInvalid, where+format, args...)
}

// BlindAll blinds every key (each already passed through Normalize) in the
// hash domain of domain, on runtime.GOMAXPROCS(0) workers. An empty key
// (an absent one) gives a nil entry: it never matches anything. The result
// has one entry per key, in order. It stops early with ctx's error when ctx
// ends.
func (s *Secret) BlindAll(ctx context.Context, keys []string, domain string) ([][]byte, error) {
	if err := CheckDomain(domain); err != nil {
		return nil, err
	}
	k, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make([][]byte, len(keys))
	slab := make([]byte, len(keys)*PointLen)
	err = parallel(ctx, len(keys), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if keys[i] == "" {
				continue
			}
			b, err := blind(k, keys[i], domain)
			if err != nil {
				return err
			}
			out[i] = slab[i*PointLen : (i+1)*PointLen : (i+1)*PointLen]
			copy(out[i], b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReblindAll reblinds every point, in order, on runtime.GOMAXPROCS(0)
// workers. Any invalid point fails the whole call with EInvalid naming its
// index (never its bytes). It stops early with ctx's error when ctx ends.
func (s *Secret) ReblindAll(ctx context.Context, points [][]byte) ([][]byte, error) {
	k, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make([][]byte, len(points))
	slab := make([]byte, len(points)*PointLen)
	err = parallel(ctx, len(points), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			b, err := reblind(k, points[i], i)
			if err != nil {
				return err
			}
			out[i] = slab[i*PointLen : (i+1)*PointLen : (i+1)*PointLen]
			copy(out[i], b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parallel runs fn over [0, n) in chunks on GOMAXPROCS workers. The first
// error (or ctx's, checked before every chunk) stops every worker.
func parallel(ctx context.Context, n int, fn func(lo, hi int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	workers := runtime.GOMAXPROCS(0)
	if c := (n + chunk - 1) / chunk; c < workers {
		workers = c
	}
	var (
		next     atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stop.Store(true)
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				if err := fn(lo, min(lo+chunk, n)); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// Match joins two doubly blinded sets by equality: it returns every pair
// (i, j) with a[i] == b[j], ordered by i and then j. Nil or empty entries
// (absent keys) never match. Duplicates on either side give every pair, as
// an inner join does. Each set may hold at most math.MaxInt32 entries.
func Match(aDouble, bDouble [][]byte) [][2]int32 {
	// Index b: first occurrence in a map, further ones chained through next.
	first := make(map[string]int32, len(bDouble))
	next := make([]int32, len(bDouble))
	for j := len(bDouble) - 1; j >= 0; j-- {
		v := bDouble[j]
		next[j] = -1
		if len(v) == 0 {
			continue
		}
		if f, ok := first[string(v)]; ok {
			next[j] = f
		}
		first[string(v)] = int32(j)
	}
	var out [][2]int32
	for i, v := range aDouble {
		if len(v) == 0 {
			continue
		}
		for j, ok := first[string(v)]; ok && j >= 0; j = next[j] {
			out = append(out, [2]int32{int32(i), j})
		}
	}
	return out
}
