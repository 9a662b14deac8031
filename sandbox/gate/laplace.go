package gate

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// laplace draws Laplace(0, scale) noise from a cryptographic random source.
//
// Sampling is by inverse CDF. The Laplace quantile function is
//
//	F⁻¹(p) = -b·sgn(p-½)·ln(1 - 2|p-½|)
//
// Writing p-½ = ±u/2 with u uniform on (0, 1] and the sign a fair coin
// gives F⁻¹ = ∓b·ln(u), which is what sample computes: u is built from 53
// random bits as (m+1)/2⁵³, m uniform on [0, 2⁵³), so u is never 0 and
// ln(u) is always finite; the sign comes from a further, independent bit
// of the same 64-bit draw.
//
// Floating-point caveat. The textbook mechanism assumes real numbers. In
// IEEE doubles the set of values that x + noise can take depends on x
// (Mironov, "On Significance of the Least Significant Bits for Differential
// Privacy", CCS 2012), so the low-order bits of a raw noisy double can
// reveal which x produced it. The gate therefore never releases a raw noisy
// double: integer columns are released as the true value plus noise
// rounded to the nearest integer (computed in integers, so large values
// stay exact), and float columns are snapped to a grid whose spacing is the
// smallest power of two at least the noise scale, the granularity of
// Mironov's snapping mechanism. The snapping mechanism also clamps its
// input and output to a known bound, which a SUM does not have here, so for
// float columns this is a mitigation rather than a proof. Because u has a
// resolution of 2⁻⁵³ the noise magnitude is at most 53·ln2·b ≈ 36.7·b; the
// true distribution exceeds that with probability about 10⁻¹⁶.
type laplace struct {
	r   io.Reader
	buf [512]byte
	n   int // unread bytes at the end of buf
}

func newLaplace(r io.Reader) *laplace {
	if r == nil {
		r = rand.Reader
	}
	return &laplace{r: r}
}

func (l *laplace) uint64() (uint64, error) {
	if l.n < 8 {
		if _, err := io.ReadFull(l.r, l.buf[:]); err != nil {
			return 0, fmt.Errorf("reading random bits for noise: %w", err)
		}
		l.n = len(l.buf)
	}
	off := len(l.buf) - l.n
	l.n -= 8
	return binary.LittleEndian.Uint64(l.buf[off : off+8]), nil
}

// sample returns one draw from Laplace(0, scale).
func (l *laplace) sample(scale float64) (float64, error) {
	x, err := l.uint64()
	if err != nil {
		return 0, err
	}
	return laplaceFromBits(x, scale), nil
}

// laplaceFromBits maps 64 random bits to a Laplace(0, scale) value: the top
// 53 bits give the uniform, the lowest bit the sign.
func laplaceFromBits(x uint64, scale float64) float64 {
	u := float64(x>>11+1) / (1 << 53) // (0, 1]
	v := -scale * math.Log(u)
	if x&1 == 1 {
		v = -v
	}
	return v
}

// snapGrid returns the spacing float outputs are rounded to for a given
// noise scale: the smallest power of two >= scale.
func snapGrid(scale float64) float64 {
	frac, exp := math.Frexp(scale) // scale = frac·2^exp, frac in [0.5, 1)
	if frac == 0.5 {
		return math.Ldexp(1, exp-1)
	}
	return math.Ldexp(1, exp)
}

// snap rounds v to the nearest multiple of grid.
func snap(v, grid float64) float64 {
	return math.Round(v/grid) * grid
}
