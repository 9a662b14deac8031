package sketch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

func build(t testing.TB, k int, rows []uint64) *Sketch {
	t.Helper()
	b := NewBuilder(k)
	for _, u := range rows {
		b.Add(u)
	}
	s, err := Parse(b.AppendSketch(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Units() != b.Units() || s.Elements() != b.Elements() {
		t.Fatalf("parsed counts %d/%d, builder %d/%d", s.Units(), s.Elements(), b.Units(), b.Elements())
	}
	return s
}

func randomUnits(r *rand.Rand, n int) []uint64 {
	seen := make(map[uint64]bool, n)
	out := make([]uint64, 0, n)
	for len(out) < n {
		u := r.Uint64()
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// pair returns two unit sets sharing base and differing in d persons:
// about half of them only in a, the rest only in b.
func pair(r *rand.Rand, base, d int) (a, b []uint64) {
	all := randomUnits(r, base+d)
	common, extra := all[:base], all[base:]
	na := d / 2
	if d%2 == 1 && r.IntN(2) == 0 {
		na++
	}
	a = append(slices.Clone(common), extra[:na]...)
	b = append(slices.Clone(common), extra[na:]...)
	return a, b
}

func TestCellsFor(t *testing.T) {
	for _, c := range []struct{ k, s int }{
		{-3, 16}, {0, 16}, {1, 16}, {8, 16}, {9, 32}, {10, 32}, {16, 32}, {17, 64},
		{256, 512}, {257, 1024}, {512, 1024}, {513, 1024}, {100000, 1024},
	} {
		if got := CellsFor(c.k); got != c.s {
			t.Errorf("CellsFor(%d) = %d, want %d", c.k, got, c.s)
		}
		b := NewBuilder(c.k)
		if got := len(b.AppendSketch(nil)); got != Size(c.k) {
			t.Errorf("k=%d: sketch is %d bytes, Size says %d", c.k, got, Size(c.k))
		}
	}
	if Size(10) != 19+3*32*18 {
		t.Fatalf("Size(10) = %d", Size(10))
	}
}

func TestSameInAnyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	units := randomUnits(r, 3000)
	var rows []uint64
	for i, u := range units {
		for range 1 + i%3 { // multiplicities 1, 2, 3
			rows = append(rows, u)
		}
	}
	a := build(t, 10, rows)
	r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	b := build(t, 10, rows)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same rows in another order gave another sketch")
	}
	if v, n := Compare(a, b, 10); v != Same || n != 0 {
		t.Fatalf("Compare = %v %d, want same", v, n)
	}
	if a.Units() != 3000 || a.Elements() != 6000 || !a.Multi() {
		t.Fatalf("units %d elements %d multi %v", a.Units(), a.Elements(), a.Multi())
	}
	// A Builder for a larger k gives a comparable sketch: still Same.
	c := build(t, 300, rows)
	if v, _ := Compare(a, c, 10); v != Same {
		t.Fatalf("across sizes: %v", v)
	}
}

func TestEmpty(t *testing.T) {
	e := build(t, 10, nil)
	if v, _ := Compare(e, e, 10); v != Same {
		t.Fatalf("empty vs empty: %v", v)
	}
	one := build(t, 10, []uint64{42})
	if v, n := Compare(e, one, 10); v != Near || n != 1 {
		t.Fatalf("empty vs one: %v %d", v, n)
	}
	if v, _ := Compare(e, build(t, 10, randomUnits(rand.New(rand.NewPCG(3, 3)), 10)), 10); v != Far {
		t.Fatalf("empty vs ten: %v", v)
	}
}

func TestUnitZero(t *testing.T) {
	a := build(t, 10, []uint64{0, 1, 2, 0})
	if a.Units() != 3 || a.Elements() != 4 || !a.Multi() {
		t.Fatalf("units %d elements %d", a.Units(), a.Elements())
	}
	b := build(t, 10, []uint64{0, 1, 2})
	if v, n := Compare(a, b, 10); v != Near || n != 1 {
		t.Fatalf("%v %d", v, n)
	}
}

func TestMultiplicityCap(t *testing.T) {
	b := NewBuilder(5)
	for range MaxMultiplicity + 100 {
		b.Add(7)
	}
	b.Add(8)
	if b.Units() != 2 || b.Elements() != MaxMultiplicity+1 {
		t.Fatalf("units %d elements %d", b.Units(), b.Elements())
	}
	if _, err := Parse(b.AppendSketch(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestBuilderReset(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	b := NewBuilder(10)
	for _, u := range randomUnits(r, 5000) {
		b.Add(u)
	}
	b.Reset()
	if b.Units() != 0 || b.Elements() != 0 {
		t.Fatal("Reset left counts")
	}
	if !bytes.Equal(b.AppendSketch(nil), NewBuilder(10).AppendSketch(nil)) {
		t.Fatal("a reset Builder is not empty")
	}
	units := randomUnits(r, 100)
	for _, u := range units {
		b.Add(u)
	}
	if !bytes.Equal(b.AppendSketch(nil), build(t, 10, units).Bytes()) {
		t.Fatal("a reset Builder builds another sketch")
	}
}

func TestFarLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, k := range []int{2, 5, 10, 50, 600} {
		a, b := randomUnits(r, 2000), randomUnits(r, 2000)
		if v, _ := Compare(build(t, k, a), build(t, k, b), k); v != Far {
			t.Fatalf("k=%d disjoint sets: %v", k, v)
		}
		// Same size, half shared.
		b = append(a[:1000:1000], b[:1000]...)
		if v, _ := Compare(build(t, k, a), build(t, k, b), k); v != Far {
			t.Fatalf("k=%d half shared: %v", k, v)
		}
		// Many units apart.
		if v, _ := Compare(build(t, k, a), build(t, k, a[:1000]), k); v != Far {
			t.Fatalf("k=%d subset: %v", k, v)
		}
	}
}

func TestKOne(t *testing.T) {
	a := build(t, 1, []uint64{1, 2, 3})
	b := build(t, 1, []uint64{1, 2, 4})
	for _, k := range []int{-1, 0, 1} {
		if v, _ := Compare(a, b, k); v != Far {
			t.Fatalf("k=%d: %v", k, v)
		}
		if v, _ := Compare(a, a, k); v != Same {
			t.Fatalf("k=%d: %v", k, v)
		}
	}
}

// checkVerdict compares sets differing by d persons for minimum group size
// k and returns the verdict, failing on a wrong one.
func checkVerdict(t *testing.T, a, b *Sketch, k, d int) (Verdict, int) {
	t.Helper()
	v, n := Compare(a, b, k)
	v2, n2 := Compare(b, a, k)
	if v != v2 || n != n2 {
		t.Fatalf("Compare is not symmetric: %v %d / %v %d", v, n, v2, n2)
	}
	switch {
	case v == Same:
		t.Fatalf("k=%d d=%d: same", k, d)
	case d < k && v == Far:
		t.Fatalf("k=%d d=%d: far", k, d)
	case d >= k && v == Near:
		t.Fatalf("k=%d d=%d: near", k, d)
	case v == Near && n != d:
		t.Fatalf("k=%d d=%d: near with %d persons", k, d, n)
	case v == Far && n != 0 && n != d:
		t.Fatalf("k=%d d=%d: far with %d persons", k, d, n)
	}
	return v, n
}

func TestNearIsNeverFar(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	for _, k := range []int{2, 3, 5, 10, 20, 100} {
		for d := 1; d <= 2*k; d++ {
			for range 5 {
				a, b := pair(r, 200+r.IntN(2000), d)
				checkVerdict(t, build(t, k, a), build(t, k, b), k, d)
			}
		}
	}
}

// TestUnknownRate measures how often Compare cannot decide, for unit sets
// differing by d persons (each person one row); run with -v to see the
// figures.
func TestUnknownRate(t *testing.T) {
	trials := 2000
	if testing.Short() {
		trials = 100
	}
	r := rand.New(rand.NewPCG(13, 17))
	for _, k := range []int{2, 5, 10, 20, 50, 100, 500} {
		var near, nearUnknown, far, farUnknown, farPeeled int
		for range trials {
			d := 1 + r.IntN(2*k)
			a, b := pair(r, 100+r.IntN(1000), d)
			v, n := checkVerdict(t, build(t, k, a), build(t, k, b), k, d)
			if d < k {
				near++
				if v == Unknown {
					nearUnknown++
				}
			} else {
				far++
				if v == Unknown {
					farUnknown++
				}
				if n > 0 {
					farPeeled++
				}
			}
		}
		t.Logf("k=%3d s=%4d: d in 1..k-1: %d/%d unknown (%.3f%%); d in k..2k: %d/%d unknown (%.3f%%), %d decided by listing",
			k, CellsFor(k), nearUnknown, near, 100*float64(nearUnknown)/float64(max(near, 1)),
			farUnknown, far, 100*float64(farUnknown)/float64(max(far, 1)), farPeeled)
	}
}

// TestUnknownRateMulti measures the same with several rows per unit,
// where only listing can tell Near from Far.
func TestUnknownRateMulti(t *testing.T) {
	trials := 1000
	if testing.Short() {
		trials = 50
	}
	r := rand.New(rand.NewPCG(19, 23))
	for _, k := range []int{5, 10, 50} {
		var near, nearUnknown, far, farUnknown int
		for range trials {
			// A one-to-many join: every unit has 1..3 rows; d persons
			// differ, each by one row more or less, or by being absent.
			d := 1 + r.IntN(2*k)
			units := randomUnits(r, 500+d)
			var ra, rb []uint64
			for i, u := range units {
				m := 1 + int(u%3)
				ma, mb := m, m
				if i >= 500 {
					switch r.IntN(3) {
					case 0:
						ma = 0
					case 1:
						mb = m + 1
					default:
						mb = 0
					}
				}
				for range ma {
					ra = append(ra, u)
				}
				for range mb {
					rb = append(rb, u)
				}
			}
			v, _ := checkVerdict(t, build(t, k, ra), build(t, k, rb), k, d)
			if d < k {
				near++
				if v == Unknown {
					nearUnknown++
				}
			} else {
				far++
				if v == Unknown {
					farUnknown++
				}
			}
		}
		t.Logf("multiplicities 1..3, k=%3d s=%4d: d in 1..k-1: %d/%d unknown (%.2f%%); d in k..2k: %d/%d unknown (%.2f%%)",
			k, CellsFor(k), nearUnknown, near, 100*float64(nearUnknown)/float64(max(near, 1)),
			farUnknown, far, 100*float64(farUnknown)/float64(max(far, 1)))
	}
}

func TestMultiplicityChangeIsAPerson(t *testing.T) {
	base := randomUnits(rand.New(rand.NewPCG(29, 29)), 1000)
	a := append(slices.Clone(base), base[0], base[1]) // two persons with two rows
	b := append(slices.Clone(base), base[0], base[0]) // one of them with three, the other with one
	sa, sb := build(t, 10, a), build(t, 10, b)
	if sa.Units() != sb.Units() || sa.Elements() != sb.Elements() {
		t.Fatal("setup")
	}
	if v, n := Compare(sa, sb, 10); v != Near || n != 2 {
		t.Fatalf("Compare = %v %d, want near 2", v, n)
	}
	if v, _ := Compare(sa, sb, 2); v != Far {
		t.Fatalf("k=2: Compare = %v, want far", v)
	}
	// One person with 20 rows more is one person.
	c := slices.Clone(a)
	for range 20 {
		c = append(c, base[5])
	}
	if v, n := Compare(sa, build(t, 10, c), 10); v != Near || n != 1 {
		t.Fatalf("20 more rows of one person: %v %d, want near 1", v, n)
	}
	// However many rows: still one person.
	for range 100000 {
		c = append(c, base[5])
	}
	sc := build(t, 10, c)
	if v, n := Compare(sa, sc, 10); v != Near || n != 1 {
		t.Fatalf("100020 more rows of one person: %v %d, want near 1", v, n)
	}
	if sc.Elements() != sa.Elements()-1+MaxMultiplicity {
		t.Fatalf("rows %d, want capped", sc.Elements())
	}
	// Nine persons with changed rows and nine new ones: 18 persons, far.
	d := slices.Clone(a)
	d = append(d, base[10:19]...)
	d = append(d, randomUnits(rand.New(rand.NewPCG(1, 99)), 9)...)
	if v, _ := Compare(sa, build(t, 10, d), 10); v != Far {
		t.Fatalf("18 persons: %v, want far", v)
	}
}

func TestFolding(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 31))
	a, b := pair(r, 3000, 7)
	for _, ka := range []int{1, 10, 100, 1000} {
		for _, kb := range []int{1, 10, 100, 1000} {
			sa, sb := build(t, ka, a), build(t, kb, b)
			if v, n := Compare(sa, sb, 10); v != Near || n != 7 {
				// Folded to 16 cells, 7 persons still list.
				t.Fatalf("sizes %d/%d: %v %d", sa.Cells(), sb.Cells(), v, n)
			}
			if v, _ := Compare(sa, build(t, kb, a), 10); v != Same {
				t.Fatalf("sizes %d/%d: same set is %v", sa.Cells(), CellsFor(kb), v)
			}
		}
	}
	// Folding is exact: a large sketch folded equals the small one.
	big, small := build(t, 1000, a), build(t, 1, a)
	sc := new(scratch)
	cells := subtract(sc, big, small, small.Cells())
	for i := range cells {
		if !cells[i].empty() {
			t.Fatalf("cell %d of the folded difference is not empty", i)
		}
	}
	// Far through folding and the cell count (flat sets, different sizes).
	c := randomUnits(r, 3000)
	if v, _ := Compare(build(t, 10, a), build(t, 100, c), 10); v != Far {
		t.Fatalf("disjoint across sizes: %v", v)
	}
}

func TestVerdictString(t *testing.T) {
	for v, s := range map[Verdict]string{Same: "same", Far: "far", Near: "near", Unknown: "unknown", 9: "Verdict(9)"} {
		if v.String() != s {
			t.Errorf("%d: %q", int(v), v.String())
		}
	}
}

func valid(t testing.TB) []byte {
	b := NewBuilder(5)
	for i := range uint64(40) {
		b.Add(i*7919 + 1)
	}
	return b.AppendSketch(nil)
}

func TestParseMalformed(t *testing.T) {
	good := valid(t)
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	cases := map[string][]byte{
		"nil":            nil,
		"header only":    good[:headerLen],
		"truncated":      good[:len(good)-1],
		"trailing":       append(slices.Clone(good), 0),
		"version 0":      mut(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":      mut(func(b []byte) []byte { b[0] = 2; return b }),
		"log 3":          mut(func(b []byte) []byte { b[1] = 3; return b }),
		"log 11":         mut(func(b []byte) []byte { b[1] = 11; return b }),
		"log 5 (length)": mut(func(b []byte) []byte { b[1] = 5; return b }),
		"flags":          mut(func(b []byte) []byte { b[2] = 2; return b }),
		"multi flag":     mut(func(b []byte) []byte { b[2] = 1; return b }),
		"units > elems":  mut(func(b []byte) []byte { b[3]++; return b }),
	}
	for name, data := range cases {
		_, err := Parse(data)
		if sluice.ErrorCode(err) != sluice.EInvalid {
			t.Errorf("%s: %v, want EInvalid", name, err)
		}
	}
	// Every single-byte change outside the fingerprint is detected.
	for i := range good {
		if i >= 11 && i < 19 {
			continue // the fingerprint cannot be checked
		}
		for _, x := range []byte{1, 0x80, 0xff} {
			data := slices.Clone(good)
			data[i] ^= x
			if _, err := Parse(data); err == nil {
				t.Fatalf("byte %d ^ %#x went unnoticed", i, x)
			}
		}
	}
	// Parse copies its input.
	data := slices.Clone(good)
	s, _ := Parse(data)
	data[20]++
	if !bytes.Equal(s.Bytes(), good) {
		t.Fatal("Parse kept the caller's slice")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(valid(f))
	f.Add([]byte{})
	f.Add(NewBuilder(1).AppendSketch(nil))
	multi := NewBuilder(1)
	multi.Add(1)
	multi.Add(1)
	multi.Add(2)
	f.Add(multi.AppendSketch(nil))
	ref, err := Parse(valid(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if sluice.ErrorCode(err) != sluice.EInvalid {
				t.Fatalf("error code %s", sluice.ErrorCode(err))
			}
			return
		}
		if !bytes.Equal(s.Bytes(), data) {
			t.Fatal("Bytes differs from the input")
		}
		if v, _ := Compare(s, s, 10); v != Same {
			t.Fatalf("a sketch compared with itself: %v", v)
		}
		for _, k := range []int{1, 2, 10, 1000} {
			Compare(s, ref, k)
			Compare(ref, s, k)
		}
	})
}

func BenchmarkBuild15000(b *testing.B) {
	units := randomUnits(rand.New(rand.NewPCG(1, 1)), 15000)
	bl := NewBuilder(10)
	buf := make([]byte, 0, Size(10))
	b.ReportAllocs()
	for b.Loop() {
		bl.Reset()
		for _, u := range units {
			bl.Add(u)
		}
		buf = bl.AppendSketch(buf[:0])
	}
}

func BenchmarkBuild15000Fresh(b *testing.B) {
	units := randomUnits(rand.New(rand.NewPCG(1, 1)), 15000)
	b.ReportAllocs()
	for b.Loop() {
		bl := NewBuilder(10)
		for _, u := range units {
			bl.Add(u)
		}
		bl.AppendSketch(nil)
	}
}

func BenchmarkParse(b *testing.B) {
	data := NewBuilder(10)
	for _, u := range randomUnits(rand.New(rand.NewPCG(1, 1)), 1000) {
		data.Add(u)
	}
	buf := data.AppendSketch(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareFar(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	x := randomUnits(r, 1000)
	sx := build(b, 10, x)
	for _, c := range []struct {
		name string
		s    *Sketch
	}{
		// Same number of units, other persons: far by the cell count.
		{"disjoint", build(b, 10, randomUnits(r, 1000))},
		// 10 persons left, 10 others came: 20 persons, same unit count.
		{"20persons", build(b, 10, append(slices.Clone(x[:990]), randomUnits(r, 10)...))},
	} {
		b.Run(c.name, func(b *testing.B) {
			if v, _ := Compare(sx, c.s, 10); v != Far || sx.Units() != c.s.Units() {
				b.Fatalf("setup: %v", v)
			}
			b.ReportAllocs()
			for b.Loop() {
				Compare(sx, c.s, 10)
			}
		})
	}
}

func BenchmarkCompareNear(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, d := range []int{1, 5, 9} {
		x, y := pair(r, 1000, d)
		sx, sy := build(b, 10, x), build(b, 10, y)
		b.Run(fmt.Sprintf("%dpersons", d), func(b *testing.B) {
			if v, n := Compare(sx, sy, 10); v != Near || n != d {
				b.Fatalf("setup: %v %d", v, n)
			}
			b.ReportAllocs()
			for b.Loop() {
				Compare(sx, sy, 10)
			}
		})
	}
}

func BenchmarkCompareSame(b *testing.B) {
	x := build(b, 10, randomUnits(rand.New(rand.NewPCG(4, 4)), 1000))
	y, _ := Parse(x.Bytes())
	for b.Loop() {
		Compare(x, y, 10)
	}
}

// TestCompareAdversarial feeds Compare sketches that pass Parse but were
// not built from any set (random cells, the subtables permutations of one
// another): it must not panic or loop, and must not call them Same.
func TestCompareAdversarial(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 41))
	real := build(t, 10, randomUnits(r, 12))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		l := minLog + r.IntN(3)
		s := 1 << l
		t0 := make([]cell, s)
		var units uint16
		for i := range t0 {
			if r.IntN(3) == 0 {
				continue
			}
			c := cell{count: uint16(r.IntN(3)), unit: r.Uint64(), j: uint32(1 + r.IntN(4)), check: r.Uint32()}
			if r.IntN(4) == 0 { // a real-looking pure cell
				c.count, c.j = 1, 1
				c.check = checkOf(elemKey(c.unit, 1))
			}
			units += c.count
			t0[i] = c
		}
		data := []byte{Version, byte(l), flagMulti}
		data = binary.LittleEndian.AppendUint32(data, uint32(units)+1)
		data = binary.LittleEndian.AppendUint32(data, uint32(units)+2)
		data = binary.LittleEndian.AppendUint64(data, r.Uint64())
		for range tables {
			r.Shuffle(s, func(i, j int) { t0[i], t0[j] = t0[j], t0[i] })
			for _, c := range t0 {
				data = binary.LittleEndian.AppendUint16(data, c.count)
				data = binary.LittleEndian.AppendUint64(data, c.unit)
				data = binary.LittleEndian.AppendUint32(data, c.j)
				data = binary.LittleEndian.AppendUint32(data, c.check)
			}
		}
		// The header's units must agree with the cells mod 2^16.
		binary.LittleEndian.PutUint32(data[3:], uint32(units))
		binary.LittleEndian.PutUint32(data[7:], uint32(units)+1)
		if units == 0 {
			continue
		}
		g, err := Parse(data)
		if err != nil {
			t.Fatalf("setup: %v", err)
		}
		for _, k := range []int{2, 10, 40} {
			if v, _ := Compare(g, real, k); v == Same {
				t.Fatal("garbage is the same as a real sketch")
			}
			Compare(real, g, k)
		}
	}
}
