package psi

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/group"
)

// The group benchmarks measure the two candidate groups of circl/group on
// the operations PSI spends its time in: hashing a key to an element
// (RFC 9380 hash_to_curve / the ristretto255 hash) and multiplying an
// element by a secret scalar, plus the encode/decode around each. The
// README records the figures and the choice made from them.
var candidates = []struct {
	name string
	g    group.Group
}{
	{"ristretto255", group.Ristretto255},
	{"P256", group.P256},
}

func BenchmarkGroupHashToElement(b *testing.B) {
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
