package psi

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/group"
)

// TestR255MatchesCircl proves the edwards25519-based ristretto255 is the
// same group with the same encodings as circl's, on random inputs: hashing,
// decoding (including which byte strings are rejected), multiplication.
func TestR255MatchesCircl(t *testing.T) {
	g := group.Ristretto255
	dst := []byte(DST("person"))
	for i := 0; i < 500; i++ {
		msg := []byte(fmt.Sprintf("11010519491231%04d", i))
		want, _ := g.HashToElement(msg, dst).MarshalBinary()
		got := r255Encode(r255Hash(msg, dst))
		if !bytes.Equal(got, want) {
			t.Fatalf("hash %d differs:\n got %x\nwant %x", i, got, want)
		}
		// Decode + scalar multiplication agree.
		var seed [64]byte
		rand.Read(seed[:])
		ks, _ := edwards25519.NewScalar().SetUniformBytes(seed[:])
		kc := g.NewScalar()
		if err := kc.UnmarshalBinary(ks.Bytes()); err != nil {
			t.Fatal(err)
		}
		p, err := r255Decode(want)
		if err != nil {
			t.Fatalf("decode of a valid element %d failed", i)
		}
		gotMul := r255Encode(new(edwards25519.Point).ScalarMult(ks, p))
		pc := g.NewElement()
		pc.UnmarshalBinary(want)
		wantMul, _ := g.NewElement().Mul(pc, kc).MarshalBinary()
		if !bytes.Equal(gotMul, wantMul) {
			t.Fatalf("multiplication %d differs", i)
		}
	}
	// Random byte strings: accepted by both or by neither.
	accepted := 0
	for i := 0; i < 5000; i++ {
		var b [32]byte
		rand.Read(b[:])
		if i%2 == 0 {
			b[31] &= 0x7f
			b[0] &= 0xfe
		}
		_, err := r255Decode(b[:])
		cerr := g.NewElement().UnmarshalBinary(b[:])
		if (err == nil) != (cerr == nil) {
			t.Fatalf("decode of %x: ours %v, circl %v", b, err, cerr)
		}
		if err == nil {
			accepted++
			p, _ := r255Decode(b[:])
			if !bytes.Equal(r255Encode(p), b[:]) {
				t.Fatalf("decode/encode of %x does not round-trip", b)
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no random string decoded; the test does not exercise acceptance")
	}
}

func BenchmarkR255ScalarMult(b *testing.B) {
	var seed [64]byte
	rand.Read(seed[:])
	k, _ := edwards25519.NewScalar().SetUniformBytes(seed[:])
	p := r255Hash([]byte("x"), []byte("d"))
	for i := 0; i < b.N; i++ {
		p = new(edwards25519.Point).ScalarMult(k, p)
	}
}
