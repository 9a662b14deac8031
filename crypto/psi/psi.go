// Package psi holds the primitives of Sluice's private set intersection:
// ECDH ("double blinding") PSI over Curve25519 with the X25519 ladder and
// RFC 9380's Elligator 2 hash (curve.go).
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

	"github.com/cloudflare/circl/dh/x25519"
	fp "github.com/cloudflare/circl/math/fp25519"
	"golang.org/x/text/unicode/norm"

	sluice "github.com/sluice-gov/sluice"
)

const (
	// GroupName names the group and hash the package uses; both parties
	// and the broker check it, so that versions never mix.
	GroupName = "curve25519"
	// PointLen is the length of an encoded element (the canonical X25519
	// u-coordinate): every blinded value is exactly this long.
	PointLen = x25519.Size
	// dstPrefix versions the hash: changing the group, the hash or the
	// normalisation must change it, so that values of two versions never
	// match by accident.
	dstPrefix = "sluice-psi-v2:"
	// MaxDomainLen bounds a key domain so that the DST stays well under the
	// 255 bytes RFC 9380 allows.
	MaxDomainLen = 128
	// chunk is the number of keys a worker takes at a time in the batch
	// helpers: large enough to make the shared counter cheap, small enough
	// to balance the load and notice cancellation quickly.
	chunk = 512
)

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

// hashToGroup is H(key) in the key domain (curve.go): the u-coordinate of
// the RFC 9380 curve25519_XMD:SHA-512_ELL2_RO_ sum before clear_cofactor.
func hashToGroup(normalizedKey, domain string) ([PointLen]byte, error) {
	return hashToCurve([]byte(normalizedKey), []byte(DST(domain)))
}

// Secret is one party's blinding scalar for one query. It is created fresh
// for every (query, agent) pair and never leaves the process: it has no
// encoding, and printing it prints nothing of it.
type Secret struct {
	mu sync.RWMutex
	k  *x25519.Key // nil once destroyed; clamped by X25519 on every use
}

// NewSecret draws a random X25519 scalar from crypto/rand. Clamping makes
// it 8·k with 2^251 <= k < 2^252, never zero modulo the group order, and
// the factor 8 clears any small-order component of the points it
// multiplies.
func NewSecret() (*Secret, error) {
	k := new(x25519.Key)
	if _, err := rand.Read(k[:]); err != nil {
		return nil, &sluice.Error{Code: sluice.EInternal, Message: "the system random number generator failed; no PSI secret was made", Err: err}
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
		clear(s.k[:])
		s.k = nil
	}
}

// rlock returns the scalar with the read lock held; the caller unlocks.
func (s *Secret) rlock() (*x25519.Key, error) {
	s.mu.RLock()
	if s.k == nil {
		s.mu.RUnlock()
		return nil, sluice.Errorf(sluice.ENotFound, "the PSI secret has been destroyed (the session was closed or expired)")
	}
	return s.k, nil
}

// Blind returns s·H(key), encoded, for a key already passed through
// Normalize, in the hash domain of domain. It returns nil if the secret was
// destroyed.
func (s *Secret) Blind(normalizedKey string, domain string) []byte {
	k, err := s.rlock()
	if err != nil {
		return nil
	}
	defer s.mu.RUnlock()
	out := make([]byte, PointLen)
	if err := blind(out, k, normalizedKey, domain); err != nil {
		return nil
	}
	return out
}

// blind writes k·H(key) to out (PointLen bytes).
func blind(out []byte, k *x25519.Key, normalizedKey, domain string) error {
	h, err := hashToGroup(normalizedKey, domain)
	if err != nil {
		return err
	}
	return multiply(out, k, &h)
}

// multiply writes k·H to out for a hash output H.
func multiply(out []byte, k *x25519.Key, h *[PointLen]byte) error {
	var r x25519.Key
	if !x25519.Shared(&r, k, (*x25519.Key)(h)) {
		// H(key) of small order: negligible for a hash output.
		return sluice.Errorf(sluice.EInternal, "a join key hashed to a point of small order; the PSI hash cannot use it")
	}
	copy(out, r[:])
	return nil
}

// Reblind returns s·P, encoded, for an encoded element P received from the
// other party. It rejects anything that is not the canonical u-coordinate
// of a Curve25519 point (twist points included) and points of small order
// (which would make every key match).
func (s *Secret) Reblind(point []byte) ([]byte, error) {
	k, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make([]byte, PointLen)
	if err := reblind(out, k, point, -1); err != nil {
		return nil, err
	}
	return out, nil
}

// reblind writes k·point to out (PointLen bytes).
func reblind(out []byte, k *x25519.Key, point []byte, index int) error {
	if len(point) != PointLen {
		return invalidPoint(index, "it is %d bytes, not %d", len(point), PointLen)
	}
	if !canonical(point) {
		return invalidPoint(index, "it is not the canonical encoding of a %s point (a u-coordinate below 2^255-19)", GroupName)
	}
	var u fp.Elt
	copy(u[:], point)
	if !onCurve(&u) {
		return invalidPoint(index, "it is a point of the twist, not of %s", GroupName)
	}
	var r x25519.Key
	if !x25519.Shared(&r, k, (*x25519.Key)(&u)) {
		return invalidPoint(index, "it is a point of small order")
	}
	copy(out, r[:])
	return nil
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
	dst := []byte(DST(domain))
	err = parallel(ctx, len(keys), func(lo, hi int) error {
		part := keys[lo:hi]
		absent := func(i int) bool { return part[i] == "" }
		hashes := make([][PointLen]byte, len(part))
		if err := hashToCurveBatch(part, absent, dst, hashes); err != nil {
			return err
		}
		for i := range part {
			if absent(i) {
				continue
			}
			out[lo+i] = slab[(lo+i)*PointLen : (lo+i+1)*PointLen : (lo+i+1)*PointLen]
			if err := multiply(out[lo+i], k, &hashes[i]); err != nil {
				return err
			}
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
			out[i] = slab[i*PointLen : (i+1)*PointLen : (i+1)*PointLen]
			if err := reblind(out[i], k, points[i], i); err != nil {
				return err
			}
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
