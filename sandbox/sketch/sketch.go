// Package sketch summarises the set of persons (privacy units) behind an
// aggregate group in a few kilobytes, so that the broker's differencing
// guard can tell whether two groups differ by fewer than k persons without
// ever holding the persons' identifiers.
//
// # What is summarised
//
// The units are 64-bit keyed pseudonyms (package crypto/pseudonym). A unit
// may stand behind several rows of a group (a person with several
// enterprises after a one-to-many join); its multiplicity m is its number
// of rows, and the set summarised is the set of pairs (u, m), one element
// per distinct unit. Two groups differ in a person when that person is in
// only one of them, or has a different number of rows in each: the same
// information as the rows (u, 1), …, (u, m), in one element instead of m.
// Multiplicities are capped at MaxMultiplicity: rows of one unit beyond
// the 65,535th are not counted, so two groups in which a person has at
// least 65,535 rows each are equal as far as that person goes.
//
// # The sketch
//
// A sketch is an invertible Bloom lookup table (IBLT) of the elements:
// three subtables of s cells each, s a power of two chosen from k (see
// CellsFor). An element is added to one cell of each subtable, at
// hash_t(u, m) mod s; a cell holds the number of its elements (modulo
// 2¹⁶), the XOR of their units, the XOR of their m and the XOR of a
// 32-bit check hash of each element. Subtracting two sketches cell by cell
// leaves exactly the elements in which the two sets differ, at most two
// per person, which can be listed ("peeled") when they are few: this is
// how Compare counts the persons two groups differ by. Sketches of
// different sizes are comparable: the larger is folded down to the smaller
// (cell i of a table of s' cells is the sum of cells i, i+s', i+2s', … of
// the larger), which is exact since cell indexes are hash mod s.
//
// A sketch also carries the number of distinct units, the number of rows
// (the "elements" of the header: the sum of the multiplicities) and a
// fingerprint: the sum modulo 2⁶⁴ of a 64-bit hash of every (u, m), which
// does not depend on the order in which rows were added. Equal counts and
// fingerprints are taken to mean equal sets; two different sets pass for
// equal with probability about 2⁻⁶⁴.
//
// # Serialised form
//
// Little endian: version (1 byte, 1), log2 s (1 byte, 4 to 10), flags
// (1 byte; bit 0: some unit has more than one row), units (uint32),
// rows (uint32), fingerprint (uint64); then the three subtables one after
// another, s cells each, a cell being count (uint16), unit XOR (uint64),
// multiplicity XOR (uint32) and check XOR (uint32): 19 + 54·s bytes.
//
// # What the sketch reveals
//
// A sketch is a hash-based summary of pseudonyms, not of identities: the
// broker cannot invert it to identifiers without the agents' keys. It
// does reveal, to whoever holds two sketches of the same scope, which
// pseudonyms differ between them when they differ by few elements;
// pseudonyms are unlinkable across scopes and agents' keys.
package sketch

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"strconv"
	"sync"

	sluice "github.com/sluice-gov/sluice"
)

// Version is the serialised format's version.
const Version = 1

// MaxMultiplicity caps the number of rows counted for one unit.
const MaxMultiplicity = 65535

const (
	minLog    = 4  // 16 cells per subtable
	maxLog    = 10 // 1024 cells per subtable
	tables    = 3
	headerLen = 19
	cellLen   = 18 // count u16, unit u64, multiplicity u32, check u32

	flagMulti = 1 // some unit has multiplicity > 1
)

// CellsFor returns the number of cells per subtable of a sketch built for
// minimum group size k: the next power of two at or above max(2k, 16), at
// most 1024 (every k above 512 gets 1024). k < 1 counts as 1.
func CellsFor(k int) int {
	k = max(k, 1)
	if k > 512 {
		return 1 << maxLog
	}
	return 1 << logFor(k)
}

func logFor(k int) int {
	k = min(max(k, 1), 512)
	want := max(2*k, 1<<minLog)
	return bits.Len(uint(want - 1))
}

// Size returns the length in bytes of a serialised sketch built for k.
func Size(k int) int { return headerLen + tables*CellsFor(k)*cellLen }

// Hashes. Each is a splitmix64 finaliser (Stafford's mix13) of the element
// key plus its own odd constant, so the five are independent for any
// practical purpose. The element key combines u and m; for m = 1 it is a
// fixed offset of u.

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

const (
	seedT0    = 0x9e3779b97f4a7c15
	seedT1    = 0xc2b2ae3d27d4eb4f
	seedT2    = 0x165667b19e3779f9
	seedCheck = 0xd6e8feb86659fd93
	seedFP    = 0xa0761d6478bd642f
	jStep     = 0xe7037ed1a0b428db
)

func elemKey(u uint64, j uint32) uint64 { return u ^ uint64(j)*jStep }

func index(t int, key uint64) uint64 {
	switch t {
	case 0:
		return mix64(key + seedT0)
	case 1:
		return mix64(key + seedT1)
	default:
		return mix64(key + seedT2)
	}
}

func checkOf(key uint64) uint32 { return uint32(mix64(key + seedCheck)) }
func fpOf(key uint64) uint64    { return mix64(key + seedFP) }

// cell is one cell of a table being built or of a difference.
type cell struct {
	unit  uint64
	j     uint32
	check uint32
	count uint16
}

func (c *cell) toggle(u uint64, j, check uint32, delta uint16) {
	c.count += delta
	c.unit ^= u
	c.j ^= j
	c.check ^= check
}

func (c *cell) empty() bool { return c.count == 0 && c.unit == 0 && c.j == 0 && c.check == 0 }

// Builder accumulates the units of one group. It is not safe for
// concurrent use; Reset makes it reusable without new allocations.
type Builder struct {
	log      int
	mult     unitTable
	elements uint32
	cells    []cell // AppendSketch's working table
}

// NewBuilder returns a Builder whose sketches have CellsFor(k) cells per
// subtable.
func NewBuilder(k int) *Builder {
	return &Builder{log: logFor(k)}
}

// Add adds one row of unit. Rows of a unit beyond MaxMultiplicity are
// ignored.
func (b *Builder) Add(unit uint64) {
	if b.mult.incr(unit) {
		b.elements++
	}
}

// Units returns the number of distinct units added.
func (b *Builder) Units() int { return b.mult.n }

// Elements returns the number of rows added, each unit's capped at
// MaxMultiplicity.
func (b *Builder) Elements() int { return int(b.elements) }

// Reset forgets everything added, keeping the memory.
func (b *Builder) Reset() {
	b.mult.reset()
	b.elements = 0
}

// AppendSketch appends the serialised sketch of what was added to dst and
// returns the extended slice. It does not reset the Builder.
func (b *Builder) AppendSketch(dst []byte) []byte {
	s := 1 << b.log
	if cap(b.cells) < tables*s {
		b.cells = make([]cell, tables*s)
	}
	cells := b.cells[:tables*s]
	clear(cells)
	mask := uint64(s - 1)
	var fp uint64
	multi := false
	put := func(u uint64, m uint16) {
		j := uint32(m)
		key := elemKey(u, j)
		chk := checkOf(key)
		cells[index(0, key)&mask].toggle(u, j, chk, 1)
		cells[s+int(index(1, key)&mask)].toggle(u, j, chk, 1)
		cells[2*s+int(index(2, key)&mask)].toggle(u, j, chk, 1)
		fp += fpOf(key)
		multi = multi || m > 1
	}
	if b.mult.zero > 0 {
		put(0, b.mult.zero)
	}
	for i, u := range b.mult.keys {
		if u != 0 {
			put(u, b.mult.vals[i])
		}
	}
	var flags byte
	if multi {
		flags |= flagMulti
	}
	dst = slices.Grow(dst, headerLen+len(cells)*cellLen)
	dst = append(dst, Version, byte(b.log), flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(b.mult.n))
	dst = binary.LittleEndian.AppendUint32(dst, b.elements)
	dst = binary.LittleEndian.AppendUint64(dst, fp)
	for i := range cells {
		c := &cells[i]
		dst = binary.LittleEndian.AppendUint16(dst, c.count)
		dst = binary.LittleEndian.AppendUint64(dst, c.unit)
		dst = binary.LittleEndian.AppendUint32(dst, c.j)
		dst = binary.LittleEndian.AppendUint32(dst, c.check)
	}
	return dst
}

// unitTable counts rows per unit: open addressing with linear probing over
// a power-of-two table, at most half full. Unit 0 is kept aside, since 0
// marks an empty slot.
type unitTable struct {
	keys  []uint64
	vals  []uint16
	n     int // distinct units, including zero
	used  int // occupied slots (zero excluded)
	zero  uint16
	shift uint // 64 - log2(len(keys))
}

// incr adds one row of u; it reports false if u was already at
// MaxMultiplicity.
func (t *unitTable) incr(u uint64) bool {
	if u == 0 {
		return t.bump(&t.zero)
	}
	if 2*(t.used+1) > len(t.keys) {
		t.grow()
	}
	mask := uint64(len(t.keys) - 1)
	i := (u * 0x9e3779b97f4a7c15) >> t.shift
	for {
		switch t.keys[i] {
		case u:
			return t.bump(&t.vals[i])
		case 0:
			t.keys[i], t.vals[i] = u, 1
			t.used++
			t.n++
			return true
		}
		i = (i + 1) & mask
	}
}

func (t *unitTable) bump(v *uint16) bool {
	switch *v {
	case MaxMultiplicity:
		return false
	case 0:
		t.n++
	}
	*v++
	return true
}

func (t *unitTable) grow() {
	size := max(2*len(t.keys), 1024)
	oldK, oldV := t.keys, t.vals
	t.keys, t.vals = make([]uint64, size), make([]uint16, size)
	t.shift = uint(64 - bits.Len(uint(size-1)))
	mask := uint64(size - 1)
	for i, k := range oldK {
		if k == 0 {
			continue
		}
		j := (k * 0x9e3779b97f4a7c15) >> t.shift
		for t.keys[j] != 0 {
			j = (j + 1) & mask
		}
		t.keys[j], t.vals[j] = k, oldV[i]
	}
}

func (t *unitTable) reset() {
	clear(t.keys)
	t.n, t.used, t.zero = 0, 0, 0
}

// Sketch is a parsed sketch. It is read-only and safe for concurrent use.
type Sketch struct {
	data     []byte // the serialised form, validated
	log      uint8
	flags    uint8
	units    uint32
	elements uint32
	fp       uint64
}

func invalid(format string, args ...any) error {
	return sluice.Errorf(sluice.EInvalid, "malformed unit sketch: "+format, args...)
}

// Parse validates a serialised sketch and returns it; data is copied. It
// checks the version, the table size, the length, the counts, and that the
// three subtables agree (each unit is in one cell of each, so their counts
// sum to the unit count and their XORs are equal). Anything malformed is
// an EInvalid error; Parse never panics.
func Parse(data []byte) (*Sketch, error) {
	if len(data) < headerLen {
		return nil, invalid("%d bytes is shorter than the %d-byte header", len(data), headerLen)
	}
	if data[0] != Version {
		return nil, invalid("version %d; this broker reads version %d", data[0], Version)
	}
	l := int(data[1])
	if l < minLog || l > maxLog {
		return nil, invalid("2^%d cells per subtable; must be 2^%d to 2^%d", l, minLog, maxLog)
	}
	flags := data[2]
	if flags&^flagMulti != 0 {
		return nil, invalid("unknown flags %#x", flags)
	}
	s := 1 << l
	if want := headerLen + tables*s*cellLen; len(data) != want {
		return nil, invalid("%d bytes; a sketch of %d cells per subtable is %d bytes", len(data), s, want)
	}
	sk := &Sketch{
		log:      uint8(l),
		flags:    flags,
		units:    binary.LittleEndian.Uint32(data[3:]),
		elements: binary.LittleEndian.Uint32(data[7:]),
		fp:       binary.LittleEndian.Uint64(data[11:]),
	}
	u, e := uint64(sk.units), uint64(sk.elements)
	switch {
	case u > e:
		return nil, invalid("%d units but only %d rows", u, e)
	case e > u*MaxMultiplicity:
		return nil, invalid("%d rows is more than %d units can have", e, u)
	case flags&flagMulti == 0 && e != u:
		return nil, invalid("%d rows for %d units without the multiplicity flag", e, u)
	case flags&flagMulti != 0 && e == u:
		return nil, invalid("the multiplicity flag is set but every unit has one row")
	}
	var sums [tables]struct {
		count    uint16
		unit     uint64
		j, check uint32
	}
	body := data[headerLen:]
	for t := range tables {
		for i := range s {
			c := body[(t*s+i)*cellLen:][:cellLen]
			count := binary.LittleEndian.Uint16(c)
			j := binary.LittleEndian.Uint32(c[10:])
			if flags&flagMulti == 0 && j != uint32(count&1) {
				// Without multiplicity every element has m = 1.
				return nil, invalid("cell %d of subtable %d is inconsistent", i, t)
			}
			sums[t].count += count
			sums[t].unit ^= binary.LittleEndian.Uint64(c[2:])
			sums[t].j ^= j
			sums[t].check ^= binary.LittleEndian.Uint32(c[14:])
		}
	}
	if sums[0].count != uint16(u) {
		return nil, invalid("the cells hold %d units (mod 65536), the header says %d", sums[0].count, u)
	}
	if sums[1] != sums[0] || sums[2] != sums[0] {
		return nil, invalid("the subtables disagree")
	}
	sk.data = slices.Clone(data)
	return sk, nil
}

// Units returns the number of distinct units.
func (s *Sketch) Units() int { return int(s.units) }

// Elements returns the number of rows, each unit's capped at
// MaxMultiplicity (the sum of the multiplicities).
func (s *Sketch) Elements() int { return int(s.elements) }

// Fingerprint returns the order-independent hash of the set of (unit,
// multiplicity) pairs.
func (s *Sketch) Fingerprint() uint64 { return s.fp }

// Cells returns the number of cells per subtable.
func (s *Sketch) Cells() int { return 1 << s.log }

// Multi reports whether some unit has more than one row.
func (s *Sketch) Multi() bool { return s.flags&flagMulti != 0 }

// Bytes returns the serialised sketch. It must not be modified.
func (s *Sketch) Bytes() []byte { return s.data }

func (s *Sketch) body() []byte { return s.data[headerLen:] }

// Verdict is how two unit sets compare against a minimum group size k.
type Verdict int

const (
	// Same: identical sets (the same units, each with the same rows).
	Same Verdict = iota
	// Far: at least k persons differ.
	Far
	// Near: between 1 and k-1 persons differ.
	Near
	// Unknown: the sketches could not tell; treat it as Near.
	Unknown
)

func (v Verdict) String() string {
	switch v {
	case Same:
		return "same"
	case Far:
		return "far"
	case Near:
		return "near"
	case Unknown:
		return "unknown"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// scratch is Compare's working memory.
type scratch struct {
	cells []cell
	stack []int32
	dec   []decoded
}

type decoded struct {
	unit uint64
	m    uint32
	in   bool // in a (count +1) rather than b (count -1)
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Compare tells by how many persons (distinct units) the sets of a and b
// differ, against the minimum group size k (k < 1 counts as 1): Same if
// the sets are identical (every unit with the same number of rows); Far if
// at least k persons differ; Near if 1 to k-1 do; Unknown if the sketches
// cannot tell, which callers must treat like Near. The second result is
// the number of persons when the difference was listed (Near, and Far
// decided by listing), 0 otherwise.
//
// Compare first decides what it can from the counts (Same; Far when the
// numbers of distinct units differ by k or more), then from how many cells
// of the difference are not empty: a person who differs is one element of
// the difference if it is in one set only and two (u, m) and (u, m') if
// its number of rows changed, and each element occupies one cell per
// subtable, so more than k-1 non-empty cells in a subtable (2(k-1) when
// a set has units with several rows) means at least k persons. Otherwise
// it lists the difference by peeling, and accepts the listing only if it
// accounts for the whole difference of the fingerprints and of the unit
// and row counts; if not, the verdict is Unknown. Listing succeeds with
// high probability up to about twice as many elements as the smaller
// sketch has cells per subtable, which CellsFor makes at least 4k.
func Compare(a, b *Sketch, k int) (Verdict, int) {
	k = max(k, 1)
	if a.elements == b.elements && a.units == b.units && a.fp == b.fp {
		return Same, 0
	}
	if k == 1 {
		return Far, 0 // the sets differ, so by at least one person
	}
	if d := int64(a.units) - int64(b.units); d >= int64(k) || -d >= int64(k) {
		return Far, 0
	}
	// At most perPerson elements of the difference per differing person.
	perPerson := 1
	if (a.flags|b.flags)&flagMulti != 0 {
		perPerson = 2
	}
	limit := perPerson * (k - 1) // non-empty cells per subtable if Near
	if a.log == b.log && farByCells(a.body(), b.body(), 1<<a.log, limit) {
		return Far, 0
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	l := min(a.log, b.log)
	s := 1 << l
	cells := subtract(sc, a, b, s)
	if a.log != b.log && limit < s {
		for t := range tables {
			n := 0
			for i := range s {
				if !cells[t*s+i].empty() {
					n++
				}
			}
			if n > limit {
				return Far, 0
			}
		}
	}
	persons, ok := peel(sc, cells, uint(l), a, b)
	if !ok || persons == 0 {
		return Unknown, 0
	}
	if persons < k {
		return Near, persons
	}
	return Far, persons
}

// farByCells reports whether some subtable of the difference of two
// sketches of s cells has more than limit non-empty cells, comparing the
// serialised cells in place.
func farByCells(a, b []byte, s, limit int) bool {
	if limit >= s {
		return false
	}
	n := tables * s * cellLen
	a, b = a[:n], b[:n]
	for t := range tables {
		differ := 0
		for i := t * s * cellLen; i < (t+1)*s*cellLen; i += cellLen {
			ca, cb := a[i:i+cellLen], b[i:i+cellLen]
			if binary.LittleEndian.Uint64(ca) != binary.LittleEndian.Uint64(cb) ||
				binary.LittleEndian.Uint64(ca[8:]) != binary.LittleEndian.Uint64(cb[8:]) ||
				binary.LittleEndian.Uint16(ca[16:]) != binary.LittleEndian.Uint16(cb[16:]) {
				differ++
				if differ > limit {
					return true
				}
			}
		}
	}
	return false
}

// subtract folds a and b to s cells per subtable and returns a - b.
func subtract(sc *scratch, a, b *Sketch, s int) []cell {
	n := tables * s
	if cap(sc.cells) < n {
		sc.cells = make([]cell, n)
	}
	cells := sc.cells[:n]
	if a.log == b.log {
		ab, bb := a.body()[:n*cellLen], b.body()[:n*cellLen]
		for x := range cells {
			ca, cb := ab[x*cellLen:][:cellLen], bb[x*cellLen:][:cellLen]
			cells[x] = cell{
				count: binary.LittleEndian.Uint16(ca) - binary.LittleEndian.Uint16(cb),
				unit:  binary.LittleEndian.Uint64(ca[2:]) ^ binary.LittleEndian.Uint64(cb[2:]),
				j:     binary.LittleEndian.Uint32(ca[10:]) ^ binary.LittleEndian.Uint32(cb[10:]),
				check: binary.LittleEndian.Uint32(ca[14:]) ^ binary.LittleEndian.Uint32(cb[14:]),
			}
		}
		return cells
	}
	clear(cells)
	accumulate(cells, a, s, 1)
	accumulate(cells, b, s, 0xffff) // -1 mod 2^16
	return cells
}

// accumulate adds sign times sk, folded to s cells per subtable, to dst.
func accumulate(dst []cell, sk *Sketch, s int, sign uint16) {
	src := 1 << sk.log
	body := sk.body()
	for t := range tables {
		row := dst[t*s : (t+1)*s]
		for i := range src {
			c := body[(t*src+i)*cellLen:][:cellLen]
			d := &row[i&(s-1)]
			d.count += sign * binary.LittleEndian.Uint16(c)
			d.unit ^= binary.LittleEndian.Uint64(c[2:])
			d.j ^= binary.LittleEndian.Uint32(c[10:])
			d.check ^= binary.LittleEndian.Uint32(c[14:])
		}
	}
}

// pure reports whether cell i of subtable t holds exactly one element.
func pure(c *cell, t int, i int, mask uint64) bool {
	if c.count != 1 && c.count != 0xffff {
		return false
	}
	if c.j == 0 || c.j > MaxMultiplicity {
		return false
	}
	key := elemKey(c.unit, c.j)
	return c.check == checkOf(key) && index(t, key)&mask == uint64(i)
}

// peel lists the difference in cells (s = 1<<l cells per subtable) and
// returns the number of distinct units in it; ok is false when it cannot
// be listed completely or the listing does not account for the difference
// between a and b.
func peel(sc *scratch, cells []cell, l uint, a, b *Sketch) (persons int, ok bool) {
	s := 1 << l
	mask := uint64(s - 1)
	stack := sc.stack[:0]
	nonEmpty := 0
	for x := range cells {
		if !cells[x].empty() {
			nonEmpty++
			if pure(&cells[x], x>>l, x&(s-1), mask) {
				stack = append(stack, int32(x))
			}
		}
	}
	dec := sc.dec[:0]
	// In a true listing every peel empties a cell for good, so there are
	// at most len(cells) peels; more means the listing went wrong.
	for len(stack) > 0 && nonEmpty > 0 && len(dec) <= len(cells) {
		x := int(stack[len(stack)-1])
		stack = stack[:len(stack)-1]
		c := &cells[x]
		if !pure(c, x>>l, x&(s-1), mask) {
			continue
		}
		u, j, sign := c.unit, c.j, c.count
		dec = append(dec, decoded{unit: u, m: j, in: sign == 1})
		key := elemKey(u, j)
		chk := checkOf(key)
		for t := range tables {
			y := t*s + int(index(t, key)&mask)
			d := &cells[y]
			was := d.empty()
			d.toggle(u, j, chk, -sign)
			switch {
			case d.empty():
				nonEmpty--
			case was:
				nonEmpty++
			}
			if pure(d, t, y-t*s, mask) {
				stack = append(stack, int32(y))
			}
		}
	}
	sc.stack, sc.dec = stack, dec
	if nonEmpty != 0 {
		return 0, false
	}
	// The listing must account for the whole difference: a unit is at
	// most once on each side, and the fingerprints, rows and units must
	// add up.
	slices.SortFunc(dec, func(x, y decoded) int {
		switch {
		case x.unit < y.unit:
			return -1
		case x.unit > y.unit:
			return 1
		case x.in == y.in:
			return 0
		case x.in:
			return -1
		}
		return 1
	})
	var fp uint64
	var rows, units int64
	for i, d := range dec {
		f := fpOf(elemKey(d.unit, d.m))
		if d.in {
			fp += f
			rows += int64(d.m)
		} else {
			fp -= f
			rows -= int64(d.m)
		}
		first := i == 0 || dec[i-1].unit != d.unit
		last := i == len(dec)-1 || dec[i+1].unit != d.unit
		switch {
		case first && last: // in one set only
			persons++
			if d.in {
				units++
			} else {
				units--
			}
		case first: // in both, with different rows: (u, m) in a, then (u, m') in b
			persons++
			if !d.in || last || dec[i+1].in || (i+2 < len(dec) && dec[i+2].unit == d.unit) {
				return 0, false
			}
		}
	}
	if fp != a.fp-b.fp || rows != int64(a.elements)-int64(b.elements) || units != int64(a.units)-int64(b.units) {
		return 0, false
	}
	return persons, true
}
