package psi

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"slices"
	"strings"
	"testing"

	fp "github.com/cloudflare/circl/math/fp25519"
)

// RFC 9380 appendix J.4.1, curve25519_XMD:SHA-512_ELL2_RO_. Coordinates are
// big-endian hex as printed in the RFC.
var rfc9380Vectors = []struct {
	msg, px, py, u0, u1, q0x, q0y, q1x, q1y string
}{
	{
		msg: "",
		px:  "2de3780abb67e861289f5749d16d3e217ffa722192d16bbd9d1bfb9d112b98c0",
		py:  "3b5dc2a498941a1033d176567d457845637554a2fe7a3507d21abd1c1bd6e878",
		u0:  "005fe8a7b8fef0a16c105e6cadf5a6740b3365e18692a9c05bfbb4d97f645a6a",
		u1:  "1347edbec6a2b5d8c02e058819819bee177077c9d10a4ce165aab0fd0252261a",
		q0x: "36b4df0c864c64707cbf6cf36e9ee2c09a6cb93b28313c169be29561bb904f98",
		q0y: "6cd59d664fb58c66c892883cd0eb792e52055284dac3907dd756b45d15c3983d",
		q1x: "3fa114783a505c0b2b2fbeef0102853c0b494e7757f2a089d0daae7ed9a0db2b",
		q1y: "76c0fe7fec932aaafb8eefb42d9cbb32eb931158f469ff3050af15cfdbbeff94",
	},
	{
		msg: "abc",
		px:  "2b4419f1f2d48f5872de692b0aca72cc7b0a60915dd70bde432e826b6abc526d",
		py:  "1b8235f255a268f0a6fa8763e97eb3d22d149343d495da1160eff9703f2d07dd",
		u0:  "49bed021c7a3748f09fa8cdfcac044089f7829d3531066ac9e74e0994e05bc7d",
		u1:  "5c36525b663e63389d886105cee7ed712325d5a97e60e140aba7e2ce5ae851b6",
		q0x: "16b3d86e056b7970fa00165f6f48d90b619ad618791661b7b5e1ec78be10eac1",
		q0y: "4ab256422d84c5120b278cbdfc4e1facc5baadffeccecf8ee9bf3946106d50ca",
		q1x: "7ec29ddbf34539c40adfa98fcb39ec36368f47f30e8f888cc7e86f4d46e0c264",
		q1y: "10d1abc1cae2d34c06e247f2141ba897657fb39f1080d54f09ce0af128067c74",
	},
	{
		msg: "abcdef0123456789",
		px:  "68ca1ea5a6acf4e9956daa101709b1eee6c1bb0df1de3b90d4602382a104c036",
		py:  "2a375b656207123d10766e68b938b1812a4a6625ff83cb8d5e86f58a4be08353",
		u0:  "6412b7485ba26d3d1b6c290a8e1435b2959f03721874939b21782df17323d160",
		u1:  "24c7b46c1c6d9a21d32f5707be1380ab82db1054fde82865d5c9e3d968f287b2",
		q0x: "71de3dadfe268872326c35ac512164850860567aea0e7325e6b91a98f86533ad",
		q0y: "26a08b6e9a18084c56f2147bf515414b9b63f1522e1b6c5649f7d4b0324296ec",
		q1x: "5704069021f61e41779e2ba6b932268316d6d2a6f064f997a22fef16d1eaeaca",
		q1y: "50483c7540f64fb4497619c050f2c7fe55454ec0f0e79870bb44302e34232210",
	},
	{
		msg: "q128_" + strings.Repeat("q", 128),
		px:  "096e9c8bae6c06b554c1ee69383bb0e82267e064236b3a30608d4ed20b73ac5a",
		py:  "1eb5a62612cafb32b16c3329794645b5b948d9f8ffe501d4e26b073fef6de355",
		u0:  "5e123990f11bbb5586613ffabdb58d47f64bb5f2fa115f8ea8df0188e0c9e1b5",
		u1:  "5e8553eb00438a0bb1e7faa59dec6d8087f9c8011e5fb8ed9df31cb6c0d4ac19",
		q0x: "7a94d45a198fb5daa381f45f2619ab279744efdd8bd8ed587fc5b65d6cea1df0",
		q0y: "67d44f85d376e64bb7d713585230cdbfafc8e2676f7568e0b6ee59361116a6e1",
		q1x: "30506fb7a32136694abd61b6113770270debe593027a968a01f271e146e60c18",
		q1y: "7eeee0e706b40c6b5174e551426a67f975ad5a977ee2f01e8e20a6d612458c3b",
	},
	{
		msg: "a512_" + strings.Repeat("a", 512),
		px:  "1bc61845a138e912f047b5e70ba9606ba2a447a4dade024c8ef3dd42b7bbc5fe",
		py:  "623d05e47b70e25f7f1d51dda6d7c23c9a18ce015fe3548df596ea9e38c69bf1",
		u0:  "20f481e85da7a3bf60ac0fb11ed1d0558fc6f941b3ac5469aa8b56ec883d6d7d",
		u1:  "017d57fd257e9a78913999a23b52ca988157a81b09c5442501d07fed20869465",
		q0x: "02d606e2699b918ee36f2818f2bc5013e437e673c9f9b9cdc15fd0c5ee913970",
		q0y: "29e9dc92297231ef211245db9e31767996c5625dfbf92e1c8107ef887365de1e",
		q1x: "38920e9b988d1ab7449c0fa9a6058192c0c797bb3d42ac345724341a1aa98745",
		q1y: "24dcc1be7c4d591d307e89049fd2ed30aae8911245a9d8554bf6032e5aa40d3d",
	},
}

const rfc9380DST = "QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_RO_"

// The reference below is written over math/big, independently of curve.go's
// constant-time field code: affine Montgomery arithmetic and the generic
// Elligator 2 map of RFC 9380 section 6.7.1.
var (
	refP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	refA = big.NewInt(486662)
)

type refPoint struct{ x, y *big.Int } // affine; nil x is the point at infinity

func mod(x *big.Int) *big.Int { return x.Mod(x, refP) }

func refG(x *big.Int) *big.Int { // x³ + A·x² + x
	x2 := new(big.Int).Mul(x, x)
	g := new(big.Int).Mul(x2, x)
	g.Add(g, new(big.Int).Mul(refA, x2))
	g.Add(g, x)
	return mod(g)
}

func refSgn0(y *big.Int) uint { return y.Bit(0) }

func refMap(u *big.Int) refPoint {
	x1 := refX1(u)
	if x1.Sign() == 0 {
		x1 = mod(new(big.Int).Neg(refA))
	}
	gx1 := refG(x1)
	if y := new(big.Int).ModSqrt(gx1, refP); y != nil {
		if refSgn0(y) != 1 {
			y = mod(y.Neg(y))
		}
		return refPoint{x1, y}
	}
	x2 := mod(new(big.Int).Sub(new(big.Int).Neg(x1), refA))
	y := new(big.Int).ModSqrt(refG(x2), refP)
	if refSgn0(y) != 0 {
		y = mod(y.Neg(y))
	}
	return refPoint{x2, y}
}

func refAdd(p, q refPoint) refPoint {
	if p.x == nil {
		return q
	}
	if q.x == nil {
		return p
	}
	var l *big.Int
	if p.x.Cmp(q.x) == 0 {
		if new(big.Int).Add(p.y, q.y).Mod(new(big.Int).Add(p.y, q.y), refP).Sign() == 0 {
			return refPoint{}
		}
		// λ = (3x² + 2Ax + 1) / 2y
		n := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(p.x, p.x))
		n.Add(n, new(big.Int).Mul(big.NewInt(2), new(big.Int).Mul(refA, p.x)))
		n.Add(n, big.NewInt(1))
		l = mod(n.Mul(n, new(big.Int).ModInverse(mod(new(big.Int).Mul(big.NewInt(2), p.y)), refP)))
	} else {
		n := new(big.Int).Sub(q.y, p.y)
		d := mod(new(big.Int).Sub(q.x, p.x))
		l = mod(n.Mul(n, new(big.Int).ModInverse(d, refP)))
	}
	x := new(big.Int).Mul(l, l)
	x.Sub(x, refA).Sub(x, p.x).Sub(x, q.x)
	mod(x)
	y := new(big.Int).Sub(p.x, x)
	y.Mul(y, l).Sub(y, p.y)
	return refPoint{x, mod(y)}
}

func hexInt(t *testing.T, s string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad hex %q", s)
	}
	return v
}

func eltInt(e fp.Elt) *big.Int {
	fp.Modp(&e)
	be := slices.Clone(e[:])
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

func fracInt(n, d fp.Elt) *big.Int {
	x := eltInt(n)
	return mod(x.Mul(x, new(big.Int).ModInverse(eltInt(d), refP)))
}

func TestHashToCurveRFC9380Vectors(t *testing.T) {
	for _, v := range rfc9380Vectors {
		t.Run(v.msg[:min(len(v.msg), 16)], func(t *testing.T) {
			u0, u1 := hashToField([]byte(v.msg), []byte(rfc9380DST))
			if got := eltInt(u0); got.Cmp(hexInt(t, v.u0)) != 0 {
				t.Errorf("u0 = %x, want %s", got, v.u0)
			}
			if got := eltInt(u1); got.Cmp(hexInt(t, v.u1)) != 0 {
				t.Errorf("u1 = %x, want %s", got, v.u1)
			}
			for i, want := range [][2]string{{v.q0x, v.q0y}, {v.q1x, v.q1y}} {
				u := [2]fp.Elt{u0, u1}[i]
				xn, xd, y := mapToCurve(&u)
				if got := fracInt(xn, xd); got.Cmp(hexInt(t, want[0])) != 0 {
					t.Errorf("Q%d.x = %x, want %s", i, got, want[0])
				}
				if got := eltInt(y); got.Cmp(hexInt(t, want[1])) != 0 {
					t.Errorf("Q%d.y = %x, want %s", i, got, want[1])
				}
			}
			// hashToCurve gives u(R) for R = Q0 + Q1; the RFC's P is 8·R.
			q0 := refPoint{hexInt(t, v.q0x), hexInt(t, v.q0y)}
			q1 := refPoint{hexInt(t, v.q1x), hexInt(t, v.q1y)}
			r := refAdd(q0, q1)
			got, err := hashToCurve([]byte(v.msg), []byte(rfc9380DST))
			if err != nil {
				t.Fatal(err)
			}
			if u := eltInt(fp.Elt(got)); u.Cmp(r.x) != 0 {
				t.Errorf("u(Q0+Q1) = %x, want %x", u, r.x)
			}
			p := r
			for range 3 {
				p = refAdd(p, p)
			}
			if p.x.Cmp(hexInt(t, v.px)) != 0 || p.y.Cmp(hexInt(t, v.py)) != 0 {
				t.Errorf("8·(Q0+Q1) = (%x, %x), want (%s, %s)", p.x, p.y, v.px, v.py)
			}
		})
	}
}

// TestMapMatchesReference compares the constant-time map and sum with the
// math/big reference on random field elements (both branches of the map).
func TestMapMatchesReference(t *testing.T) {
	branch := map[bool]int{}
	for i := 0; i < 2000; i++ {
		var b [48]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		u := reduce48(b[:])
		want := refMap(eltInt(u))
		branch[want.x.Cmp(refX1(eltInt(u))) == 0]++
		if new(big.Int).Mod(new(big.Int).Mul(want.y, want.y), refP).Cmp(refG(want.x)) != 0 {
			t.Fatal("the reference map's output is not on the curve")
		}
		xn, xd, y := mapToCurve(&u)
		if got := fracInt(xn, xd); got.Cmp(want.x) != 0 {
			t.Fatalf("map(%x).x = %x, want %x", eltInt(u), got, want.x)
		}
		if got := eltInt(y); got.Cmp(want.y) != 0 {
			t.Fatalf("map(%x).y = %x, want %x", eltInt(u), got, want.y)
		}
	}
	if branch[true] < 500 || branch[false] < 500 {
		t.Errorf("both branches of the map should be exercised: %v", branch)
	}
	for i := 0; i < 200; i++ {
		msg := make([]byte, i)
		_, _ = rand.Read(msg)
		u0, u1 := hashToField(msg, []byte("test"))
		want := refAdd(refMap(eltInt(u0)), refMap(eltInt(u1)))
		got, err := hashToCurve(msg, []byte("test"))
		if err != nil {
			t.Fatal(err)
		}
		if eltInt(fp.Elt(got)).Cmp(want.x) != 0 {
			t.Fatalf("hashToCurve(%x) differs from the reference", msg)
		}
	}
}

// refX1 is the map's first candidate, -A / (1 + 2u²).
func refX1(u *big.Int) *big.Int {
	tv := mod(new(big.Int).Add(big.NewInt(1), new(big.Int).Mul(big.NewInt(2), new(big.Int).Mul(u, u))))
	return mod(new(big.Int).Mul(new(big.Int).Neg(refA), new(big.Int).ModInverse(tv, refP)))
}

func TestReduce48(t *testing.T) {
	for i := 0; i < 500; i++ {
		var b [48]byte
		_, _ = rand.Read(b[:])
		if i == 0 {
			for j := range b {
				b[j] = 0xff
			}
		}
		want := mod(new(big.Int).SetBytes(b[:]))
		if got := eltInt(reduce48(b[:])); got.Cmp(want) != 0 {
			t.Fatalf("reduce48(%x) = %x, want %x", b, got, want)
		}
	}
}

func TestCanonicalAndOnCurve(t *testing.T) {
	p := fp.P()
	below := p
	below[0]--
	if !canonical(below[:]) || canonical(p[:]) {
		t.Error("canonical must accept p-1 and refuse p")
	}
	for i := 0; i < 300; i++ {
		var e fp.Elt
		_, _ = rand.Read(e[:])
		e[31] &= 0x7f
		fp.Modp(&e)
		want := refG(eltInt(e)).Sign() == 0 || new(big.Int).ModSqrt(refG(eltInt(e)), refP) != nil
		if got := onCurve(&e); got != want {
			t.Fatalf("onCurve(%x) = %v, want %v", eltInt(e), got, want)
		}
	}
}

// twistPoint is the smallest u >= 2 of a point of the twist (not of the
// curve), checked against the reference.
func twistPoint(t *testing.T) []byte {
	t.Helper()
	for v := uint64(2); v < 100; v++ {
		u := smallElt(v)
		if new(big.Int).ModSqrt(refG(eltInt(u)), refP) == nil {
			return u[:]
		}
	}
	t.Fatal("no twist point below 100")
	return nil
}

// order8Point is the u-coordinate of a point of order 8 (RFC 7748's list
// of low-order points); doubling it twice gives u = 0, the point of order 2.
func order8Point(t *testing.T) []byte {
	t.Helper()
	b, err := hex.DecodeString("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
	if err != nil {
		t.Fatal(err)
	}
	var e fp.Elt
	copy(e[:], b)
	x := eltInt(e)
	y := new(big.Int).ModSqrt(refG(x), refP)
	if y == nil {
		t.Fatal("the order-8 point is not on the curve")
	}
	q := refPoint{x, y}
	q = refAdd(q, q)
	q = refAdd(q, q)
	if q.x == nil || q.x.Sign() != 0 {
		t.Fatal("4·P is not the point of order 2")
	}
	return b
}

func setTopBit(b []byte) []byte {
	c := slices.Clone(b)
	c[PointLen-1] |= 0x80
	return c
}
