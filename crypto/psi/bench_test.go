package psi

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/group"
)

// The group benchmarks measure the candidate groups on the operations PSI
// spends its time in: hashing a key to an element (RFC 9380 hash_to_curve /
// the ristretto255 hash) and multiplying an element by a secret scalar, plus
// the encode/decode around each. Two come from circl/group; curve25519 is
// the one the package uses (circl's X25519 ladder and curve.go's hash). The
// README records the figures and the choice made from them.
var candidates = []struct {
	name string
	g    group.Group
}{
	{"ristretto255", group.Ristretto255},
	{"P256", group.P256},
}

func BenchmarkGroupHashToElement(b *testing.B) {
	b.Run("curve25519", func(b *testing.B) {
		dst := []byte(DST("person"))
		for i := 0; b.Loop(); i++ {
			if _, err := hashToCurve(fmt.Appendf(nil, "110105194912%06d", i%1000000), dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			dst := []byte(DST("person"))
			for i := 0; b.Loop(); i++ {
				_ = c.g.HashToElement(fmt.Appendf(nil, "110105194912%06d", i%1000000), dst)
			}
		})
	}
}

func BenchmarkGroupScalarMult(b *testing.B) {
	b.Run("curve25519", func(b *testing.B) {
		var k, out x25519.Key
		_, _ = rand.Read(k[:])
		h, err := hashToCurve([]byte("110105194912310021"), []byte(DST("person")))
		if err != nil {
			b.Fatal(err)
		}
		p := x25519.Key(h)
		for b.Loop() {
			x25519.Shared(&out, &k, &p)
		}
	})
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			s := c.g.RandomNonZeroScalar(rand.Reader)
			p := c.g.HashToElement([]byte("110105194912310021"), []byte(DST("person")))
			q := c.g.NewElement()
			for b.Loop() {
				q.Mul(p, s)
			}
		})
	}
}

// BenchmarkGroupReblindOp is one second-round operation as the agent does
// it: decode, check, multiply, encode.
func BenchmarkGroupReblindOp(b *testing.B) {
	b.Run("curve25519", func(b *testing.B) {
		s, err := NewSecret()
		if err != nil {
			b.Fatal(err)
		}
		p := s.Blind("110105194912310021", "person")
		out := make([]byte, PointLen)
		for b.Loop() {
			if err := reblind(out, s.k, p, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			s := c.g.RandomNonZeroScalar(rand.Reader)
			enc, _ := c.g.HashToElement([]byte("110105194912310021"), []byte(DST("person"))).MarshalBinaryCompress()
			for b.Loop() {
				p := c.g.NewElement()
				if err := p.UnmarshalBinary(enc); err != nil {
					b.Fatal(err)
				}
				q := c.g.NewElement().Mul(p, s)
				if _, err := q.MarshalBinaryCompress(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBlind is one Blind (hash to the group, multiply, encode) on one
// core.
func BenchmarkBlind(b *testing.B) {
	s, err := NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("1101051949%08d", i)
	}
	for i := 0; b.Loop(); i++ {
		if s.Blind(keys[i%len(keys)], "person") == nil {
			b.Fatal("nil")
		}
	}
}

// BenchmarkReblind is one Reblind (decode and check, multiply, encode) on
// one core.
func BenchmarkReblind(b *testing.B) {
	s, err := NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	p := s.Blind("110105194912310021", "person")
	for b.Loop() {
		if _, err := s.Reblind(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlindAll and BenchmarkReblindAll are the batch helpers over all
// CPUs, per key.
func BenchmarkBlindAll(b *testing.B) {
	s, err := NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 20000)
	for i := range keys {
		keys[i] = fmt.Sprintf("1101051949%08d", i)
	}
	for b.Loop() {
		if _, err := s.BlindAll(context.Background(), keys, "person"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}

func BenchmarkReblindAll(b *testing.B) {
	s, err := NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 20000)
	for i := range keys {
		keys[i] = fmt.Sprintf("1101051949%08d", i)
	}
	pts, err := s.BlindAll(context.Background(), keys, "person")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.ReblindAll(context.Background(), pts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/key")
}

// BenchmarkMatch1M is Match over two sets of 1,000,000 doubly blinded
// values with half of them in common (random bytes stand in for points:
// Match only compares bytes).
func BenchmarkMatch1M(b *testing.B) {
	const n = 1_000_000
	a := make([][]byte, n)
	c := make([][]byte, n)
	slab := make([]byte, 2*n*PointLen)
	if _, err := rand.Read(slab); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		a[i] = slab[i*PointLen : (i+1)*PointLen]
		c[i] = slab[(n+i)*PointLen : (n+i+1)*PointLen]
	}
	for i := 0; i < n; i += 2 {
		c[i] = a[(i*7)%n]
	}
	for b.Loop() {
		if got := Match(a, c); len(got) != n/2 {
			b.Fatalf("%d matches", len(got))
		}
	}
}
