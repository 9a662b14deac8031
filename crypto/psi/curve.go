package psi

import (
	"crypto"
	_ "crypto/sha512" // registers crypto.SHA512 for the RFC 9380 expander
	"crypto/subtle"
	"math/big"

	"github.com/cloudflare/circl/expander"
	fp "github.com/cloudflare/circl/math/fp25519"
	sluice "github.com/sluice-gov/sluice"
)

// This file is the hash into Curve25519: RFC 9380's
// curve25519_XMD:SHA-512_ELL2_RO_ (expand_message_xmd with SHA-512, two
// Elligator 2 maps, their sum) up to, but not including, clear_cofactor.
// Leaving out the multiplication by the cofactor 8 is sound here because
// every use of the hash is immediately multiplied by a clamped X25519
// scalar, which is 8·k: blinding R = Q0 + Q1 with it gives k·(8·R), that is
// k times the RFC's hash_to_curve output P = 8·R, a point of the prime-order
// subgroup. The test vectors of RFC 9380 appendix J.4.1 check u, Q0, Q1 and P.
//
// Points are handled by their Montgomery u-coordinate only (the X25519
// encoding: 32 bytes, little-endian), which identifies ±P. The X25519 ladder
// multiplies in that representation, and multiplication commutes with
// negation, so a·b·H(k) is still one value whichever party goes first.

// fieldBytes is L of RFC 9380 for p = 2^255 - 19: ceil((255 + 128) / 8).
const fieldBytes = 48

var (
	curveA  = smallElt(486662) // Curve25519: v² = u³ + A·u² + u
	two256  = smallElt(38)     // 2^256 mod p, for reducing the expander's 384-bit outputs
	sqrtM1  fp.Elt             // a square root of -1
	ell2C2  fp.Elt             // 2^((p+3)/8), constant c2 of RFC 9380 appendix G.2.1
	oneElt  = smallElt(1)
	fieldP  = fp.P()
	errDegn = sluice.Errorf(sluice.EInternal, "a join key hashed to an exceptional point (probability about 2^-250); the PSI hash cannot use it")
)

func init() {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	two := big.NewInt(2)
	// 2 is a non-residue mod p, so 2^((p-1)/4) squares to -1.
	sqrtM1 = bigElt(new(big.Int).Exp(two, new(big.Int).Rsh(new(big.Int).Sub(p, big.NewInt(1)), 2), p))
	ell2C2 = bigElt(new(big.Int).Exp(two, new(big.Int).Rsh(new(big.Int).Add(p, big.NewInt(3)), 3), p))
}

func smallElt(v uint64) fp.Elt {
	var e fp.Elt
	for i := 0; i < 8; i++ {
		e[i] = byte(v >> (8 * i))
	}
	return e
}

// bigElt converts a reduced non-negative big.Int to the little-endian field
// encoding. Used for constants only: big.Int is not constant time.
func bigElt(x *big.Int) fp.Elt {
	var be [fp.Size]byte
	x.FillBytes(be[:])
	var e fp.Elt
	for i := range e {
		e[i] = be[fp.Size-1-i]
	}
	return e
}

// hashToField is RFC 9380 hash_to_field(msg, 2) for p = 2^255 - 19 with
// expand_message_xmd(SHA-512): two field elements from 96 uniform bytes.
func hashToField(msg, dst []byte) (u0, u1 fp.Elt) {
	uniform := expander.NewExpanderMD(crypto.SHA512, dst).Expand(msg, 2*fieldBytes)
	return reduce48(uniform[:fieldBytes]), reduce48(uniform[fieldBytes:])
}

// reduce48 is OS2IP(b) mod p for 48 big-endian bytes, in constant time:
// b = hi·2^256 + lo with hi < 2^128, and 2^256 ≡ 38 (mod p).
func reduce48(b []byte) fp.Elt {
	var hi, lo fp.Elt
	for i := 0; i < 16; i++ {
		hi[i] = b[15-i]
	}
	for i := 0; i < 32; i++ {
		lo[i] = b[47-i]
	}
	var u fp.Elt
	fp.Mul(&u, &hi, &two256)
	fp.Add(&u, &u, &lo)
	fp.Modp(&u)
	return u
}

// pow22523 sets z = x^((p-5)/8) = x^(2^252 - 3).
func pow22523(z, x *fp.Elt) {
	var t0, t1, t2 fp.Elt
	sqrN := func(t *fp.Elt, n int) {
		for i := 0; i < n; i++ {
			fp.Sqr(t, t)
		}
	}
	fp.Sqr(&t0, x)        // 2
	fp.Sqr(&t1, &t0)      // 4
	fp.Sqr(&t1, &t1)      // 8
	fp.Mul(&t1, x, &t1)   // 9
	fp.Mul(&t0, &t0, &t1) // 11
	fp.Sqr(&t0, &t0)      // 22
	fp.Mul(&t0, &t1, &t0) // 2^5 - 1
	t1 = t0
	sqrN(&t1, 5)
	fp.Mul(&t0, &t1, &t0) // 2^10 - 1
	t1 = t0
	sqrN(&t1, 10)
	fp.Mul(&t1, &t1, &t0) // 2^20 - 1
	t2 = t1
	sqrN(&t2, 20)
	fp.Mul(&t1, &t2, &t1) // 2^40 - 1
	sqrN(&t1, 10)
	fp.Mul(&t0, &t1, &t0) // 2^50 - 1
	t1 = t0
	sqrN(&t1, 50)
	fp.Mul(&t1, &t1, &t0) // 2^100 - 1
	t2 = t1
	sqrN(&t2, 100)
	fp.Mul(&t1, &t2, &t1) // 2^200 - 1
	sqrN(&t1, 50)
	fp.Mul(&t0, &t1, &t0) // 2^250 - 1
	sqrN(&t0, 2)          // 2^252 - 4
	fp.Mul(z, &t0, x)     // 2^252 - 3
}

// equal reports x == y as 1 or 0, in constant time.
func equal(x, y *fp.Elt) uint {
	a, b := *x, *y
	fp.Modp(&a)
	fp.Modp(&b)
	return uint(subtle.ConstantTimeCompare(a[:], b[:]))
}

// sgn0 is RFC 9380's sgn0 for a prime field: the parity of the reduced value.
func sgn0(x *fp.Elt) uint {
	a := *x
	fp.Modp(&a)
	return uint(a[0] & 1)
}

// mapToCurve is RFC 9380's map_to_curve_elligator2_curve25519 (the
// straight-line, constant-time program of appendix G.2.1). It returns the
// point (xn/xd, y): one exponentiation, no inversion.
func mapToCurve(u *fp.Elt) (xn, xd, y fp.Elt) {
	var tv1, tv2, tv3, x1n, gxd, gx1, y11, y12, y1, x2n, y21, y22, gx2, y2, negY fp.Elt
	fp.Sqr(&tv1, u)
	fp.Add(&tv1, &tv1, &tv1)   // 2u²
	fp.Add(&xd, &tv1, &oneElt) // 1 + 2u², never 0: -1/2 is not a square
	fp.Neg(&x1n, &curveA)      // x1 = -A / (1 + 2u²)
	fp.Sqr(&tv2, &xd)
	fp.Mul(&gxd, &tv2, &xd) // xd³
	fp.Mul(&gx1, &curveA, &tv1)
	fp.Mul(&gx1, &gx1, &x1n)
	fp.Add(&gx1, &gx1, &tv2)
	fp.Mul(&gx1, &gx1, &x1n) // x1n³ + A·x1n²·xd + x1n·xd²
	fp.Sqr(&tv3, &gxd)
	fp.Sqr(&tv2, &tv3)       // gxd⁴
	fp.Mul(&tv3, &tv3, &gxd) // gxd³
	fp.Mul(&tv3, &tv3, &gx1) // gx1·gxd³
	fp.Mul(&tv2, &tv2, &tv3) // gx1·gxd⁷
	pow22523(&y11, &tv2)
	fp.Mul(&y11, &y11, &tv3)
	fp.Mul(&y12, &y11, &sqrtM1)
	fp.Sqr(&tv2, &y11)
	fp.Mul(&tv2, &tv2, &gxd)
	y1 = y12
	fp.Cmov(&y1, &y11, equal(&tv2, &gx1)) // sqrt(g(x1)) when it is a square
	fp.Mul(&x2n, &x1n, &tv1)              // x2 = 2u²·x1
	fp.Mul(&y21, &y11, u)
	fp.Mul(&y21, &y21, &ell2C2)
	fp.Mul(&y22, &y21, &sqrtM1)
	fp.Mul(&gx2, &gx1, &tv1) // g(x2) = 2u²·g(x1)
	fp.Sqr(&tv2, &y21)
	fp.Mul(&tv2, &tv2, &gxd)
	y2 = y22
	fp.Cmov(&y2, &y21, equal(&tv2, &gx2))
	fp.Sqr(&tv2, &y1)
	fp.Mul(&tv2, &tv2, &gxd)
	e3 := equal(&tv2, &gx1)
	xn = x2n
	fp.Cmov(&xn, &x1n, e3)
	y = y2
	fp.Cmov(&y, &y1, e3)
	e4 := sgn0(&y)
	fp.Neg(&negY, &y)
	fp.Cmov(&y, &negY, e3^e4)
	return xn, xd, y
}

// hashToCurve returns the u-coordinate (canonical, little-endian) of
// R = map(u0) + map(u1), where 8·R is RFC 9380's hash_to_curve(msg) for
// curve25519_XMD:SHA-512_ELL2_RO_ with the given DST.
func hashToCurve(msg, dst []byte) ([fp.Size]byte, error) {
	num, den, err := hashToCurveFraction(msg, dst)
	if err != nil {
		return [fp.Size]byte{}, err
	}
	fp.Inv(&den, &den)
	return ratio(&num, &den), nil
}

// ratio returns num·denInv, reduced and encoded.
func ratio(num, denInv *fp.Elt) [fp.Size]byte {
	var u fp.Elt
	fp.Mul(&u, num, denInv)
	var out [fp.Size]byte
	_ = fp.ToBytes(out[:], &u) // reduces: the encoding is canonical
	return out
}

// hashToCurveFraction is hashToCurve up to its one inversion: u(R) =
// num/den with den != 0, so that a batch can share one inversion
// (hashToCurveBatch).
func hashToCurveFraction(msg, dst []byte) (num, den fp.Elt, err error) {
	u0, u1 := hashToField(msg, dst)
	x0n, x0d, y0 := mapToCurve(&u0)
	x1n, x1d, y1 := mapToCurve(&u1)
	// λ = (y1 - y0)·D / M with D = x0d·x1d and M = x1n·x0d - x0n·x1d;
	// u3 = λ² - A - x0 - x1 = [(y1-y0)²·D³ - (A·D + S)·M²] / (M²·D)
	// with S = x0n·x1d + x1n·x0d.
	var d, m, s, t, dy, acc fp.Elt
	fp.Mul(&d, &x0d, &x1d)
	fp.Mul(&m, &x1n, &x0d)
	fp.Mul(&t, &x0n, &x1d)
	fp.Add(&s, &m, &t)
	fp.Sub(&m, &m, &t)
	if fp.IsZero(&m) {
		// Q0 = ±Q1: the chord is a tangent or vertical. Happens only if two
		// independent hash outputs collide; refuse rather than mis-hash.
		return num, den, errDegn
	}
	fp.Sub(&dy, &y1, &y0)
	fp.Sqr(&num, &dy)
	fp.Sqr(&t, &d)
	fp.Mul(&t, &t, &d)
	fp.Mul(&num, &num, &t) // (y1-y0)²·D³
	fp.Mul(&acc, &curveA, &d)
	fp.Add(&acc, &acc, &s)
	fp.Sqr(&t, &m)
	fp.Mul(&acc, &acc, &t) // (A·D + S)·M²
	fp.Sub(&num, &num, &acc)
	fp.Mul(&den, &t, &d) // M²·D, non-zero: D and M are
	return num, den, nil
}

// hashToCurveBatch hashes every message of msgs whose skip entry is false
// into out (same indexes), with one field inversion for the whole batch
// (Montgomery's trick) instead of one per message.
func hashToCurveBatch(msgs []string, skip func(int) bool, dst []byte, out [][fp.Size]byte) error {
	nums := make([]fp.Elt, len(msgs))
	dens := make([]fp.Elt, len(msgs))
	prefix := make([]fp.Elt, len(msgs)) // prefix[i] = product of dens[..i]
	acc := oneElt
	for i, m := range msgs {
		if skip(i) {
			dens[i] = oneElt
		} else {
			var err error
			if nums[i], dens[i], err = hashToCurveFraction([]byte(m), dst); err != nil {
				return err
			}
		}
		fp.Mul(&acc, &acc, &dens[i])
		prefix[i] = acc
	}
	var inv fp.Elt
	fp.Inv(&inv, &acc) // 1 / (d0·d1·…·dn-1)
	for i := len(msgs) - 1; i >= 0; i-- {
		var di fp.Elt // 1/dens[i] = inv · prefix[i-1]
		if i > 0 {
			fp.Mul(&di, &inv, &prefix[i-1])
		} else {
			di = inv
		}
		fp.Mul(&inv, &inv, &dens[i]) // now 1 / (d0·…·di-1)
		if !skip(i) {
			out[i] = ratio(&nums[i], &di)
		}
	}
	return nil
}

// onCurve reports whether the canonical u-coordinate u belongs to a point
// of Curve25519 rather than of its quadratic twist: u³ + A·u² + u must be a
// square.
func onCurve(u *fp.Elt) bool {
	var u2, g, z fp.Elt
	fp.Sqr(&u2, u)
	fp.Mul(&g, &curveA, u)
	fp.Add(&g, &g, &u2)
	fp.Add(&g, &g, &oneElt)
	fp.Mul(&g, &g, u) // u·(u² + A·u + 1)
	if fp.IsZero(&g) {
		return true // u = 0, the point of order 2; refused later as low order
	}
	return fp.InvSqrt(&z, &g, &oneElt)
}

// canonical reports whether b is a fully reduced field element (< p).
func canonical(b []byte) bool {
	// Compare as little-endian integers from the top byte down.
	for i := fp.Size - 1; i >= 0; i-- {
		if b[i] != fieldP[i] {
			return b[i] < fieldP[i]
		}
	}
	return false // equal to p
}
