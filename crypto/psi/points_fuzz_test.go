package psi

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	fp "github.com/cloudflare/circl/math/fp25519"

	sluice "github.com/sluice-gov/sluice"
)

var pointIndex = regexp.MustCompile(`index (\d+)`)

// splitPoints cuts data into PointLen-byte points, the remainder (if any)
// being a last, short one: a batch as received from the other party.
func splitPoints(data []byte) [][]byte {
	var pts [][]byte
	for len(data) > 0 {
		n := min(PointLen, len(data))
		pts = append(pts, data[:n])
		data = data[n:]
	}
	return pts
}

// FuzzReblindPoints feeds arbitrary bytes to an agent's secret as a batch
// of points received from the other party (psi-reblind). A batch is either
// reblinded whole or refused with EInvalid naming the index of a point that
// is itself invalid, and never the point's bytes; a reblinded point equals
// Reblind of it alone, is itself a valid point, and blinding commutes
// (a·(b·P) = b·(a·P)), which is what makes the doubly blinded sets match.
// CI runs it briefly (.ci/run).
func FuzzReblindPoints(f *testing.F) {
	a, err := NewSecret()
	if err != nil {
		f.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		f.Fatal(err)
	}
	valid := a.Blind(Normalize("110105194912310021"), "person")
	other := b.Blind(Normalize("91630102016031848A"), "enterprise")
	zero := make([]byte, PointLen)
	one := make([]byte, PointLen)
	one[0] = 1
	p := fp.P()
	order8, _ := hex.DecodeString("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
	top := bytes.Clone(valid)
	top[PointLen-1] |= 0x80
	for _, seed := range [][]byte{
		valid, other, append(bytes.Clone(valid), other...), zero, one, p[:], order8, top,
		valid[:31], append(bytes.Clone(valid), 0), bytes.Repeat([]byte{0xff}, PointLen),
		append(bytes.Clone(valid), zero...), {},
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		pts := splitPoints(data)
		out, err := b.ReblindAll(ctx, pts)
		if err != nil {
			var se *sluice.Error
			if !errors.As(err, &se) || se.Code != sluice.EInvalid {
				t.Fatalf("a bad batch gave %v (%T), want an %s sluice error", err, err, sluice.EInvalid)
			}
			m := pointIndex.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("the error names no index: %v", err)
			}
			i, _ := strconv.Atoi(m[1])
			if i >= len(pts) {
				t.Fatalf("the error names index %d of %d points: %v", i, len(pts), err)
			}
			if _, err1 := b.Reblind(pts[i]); err1 == nil {
				t.Fatalf("the batch was refused for point %d, which alone is accepted: %v", i, err)
			}
			for _, pt := range pts {
				if len(pt) >= 4 && bytes.Contains([]byte(err.Error()), []byte(hex.EncodeToString(pt))) {
					t.Fatalf("the error shows a received point's bytes: %v", err)
				}
			}
			return
		}
		if len(out) != len(pts) {
			t.Fatalf("%d points in, %d out", len(pts), len(out))
		}
		for i, pt := range pts {
			if len(out[i]) != PointLen {
				t.Fatalf("point %d: %d bytes out", i, len(out[i]))
			}
			alone, err := b.Reblind(pt)
			if err != nil {
				t.Fatalf("point %d passed in a batch but not alone: %v", i, err)
			}
			if !bytes.Equal(alone, out[i]) {
				t.Fatalf("point %d: the batch and Reblind disagree", i)
			}
			ab, err := a.Reblind(out[i])
			if err != nil {
				t.Fatalf("a reblinded point is not a valid point: %v", err)
			}
			aFirst, err := a.Reblind(pt)
			if err != nil {
				t.Fatalf("point %d is valid for one secret and not another: %v", i, err)
			}
			ba, err := b.Reblind(aFirst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ab, ba) {
				t.Fatalf("point %d: a·(b·P) != b·(a·P)", i)
			}
		}
		// Each doubly blinded value matches itself.
		got := Match(out, out)
		for i := range out {
			found := false
			for _, m := range got {
				found = found || (m[0] == int32(i) && m[1] == int32(i))
			}
			if !found {
				t.Fatalf("Match misses (%d, %d): %v", i, i, fmt.Sprint(got))
			}
		}
	})
}
