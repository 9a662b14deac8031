package gate

import (
	"bytes"
	"encoding/binary"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/sandbox/sketch"
)

// UnitFormat says what a unit column holds: the privacy units (persons)
// behind one aggregate of each result row.
type UnitFormat int

const (
	// UnitList is text: the unit values of the group, comma-separated, as
	// an agent's SQL lists them; CountColumn holds how many there are.
	UnitList UnitFormat = iota + 1
	// UnitPseudonyms is binary: the group's units as concatenated 8-byte
	// little-endian pseudonyms (the sandbox's "units" aggregate).
	UnitPseudonyms
	// UnitSketch is binary: a sketch (sandbox/sketch) that an agent's gate
	// built from a UnitList.
	UnitSketch
)

// UnitColumn is one contributor set of a protected release: per result
// row, the persons of Dataset whose rows reach one aggregate. A row is
// released only if every one of its sets holds at least K distinct
// persons; otherwise it is suppressed and counted, like a group under k.
type UnitColumn struct {
	Name    string
	Dataset string // for the guard's scope and for messages
	K       int    // at least 1
	Format  UnitFormat
	// CountColumn (UnitList) is the database's count of the listed values;
	// the parsed list must have exactly as many, or the stream fails. It
	// is never released.
	CountColumn string
	// Hash (UnitList) turns one unit value into its keyed pseudonym. It is
	// called from the goroutine that calls Next or Apply.
	Hash func(string) uint64
	// SameAs (UnitList) names an earlier unit list whose set this one
	// equals when the database sends NULL for it with the same count: the
	// SQL lists a contributor set only when it differs from the group's.
	SameAs string
	// Keep outputs the set's sketch (binary) in place of the column, for a
	// gate whose output goes on to another gate (an agent's, or the one
	// right after the sandbox's aggregate). Otherwise the column is
	// dropped and the released rows' sketches are kept in Sets, for the
	// differencing guard.
	Keep bool
}

// ReleasedSet is the sketch of one contributor set of one released row.
type ReleasedSet struct {
	Row     int64 // the row's index in the released result
	Column  string
	Dataset string
	K       int
	Sketch  []byte
}

// unitCol is a UnitColumn resolved against the input schema.
type unitCol struct {
	UnitColumn
	idx      int // the column in the input
	countIdx int // UnitList: the count column, else -1
	builder  *sketch.Builder
	sameAs   *unitCol
	sketches [][]byte // per input row of the batch being gated (nil: not computed)
	units    []int    // per input row: distinct persons
	counts   []int64  // per input row (UnitList): the database's count
}

// checkUnits resolves the unit columns; it returns the input columns the
// output drops besides them.
func (g *Gate) checkUnits() (map[int]bool, error) {
	drop := map[int]bool{}
	if len(g.o.Units) == 0 {
		return drop, nil
	}
	s := g.inSchema
	seen := map[int]bool{}
	for _, u := range g.o.Units {
		i, err := column(s, u.Name, "unit column")
		if err != nil {
			return nil, err
		}
		if seen[i] {
			return nil, invalid("the unit column %q is listed twice", u.Name)
		}
		seen[i] = true
		if u.K < 1 {
			return nil, invalid("the unit column %q needs k >= 1; got %d", u.Name, u.K)
		}
		c := &unitCol{UnitColumn: u, idx: i, countIdx: -1, builder: sketch.NewBuilder(u.K)}
		t := s.Field(i).Type.ID()
		switch u.Format {
		case UnitList:
			if t != arrow.STRING {
				return nil, invalid("the unit list %q has type %s; it must be text", u.Name, s.Field(i).Type)
			}
			if u.Hash == nil {
				return nil, invalid("the unit list %q needs the agent's pseudonym function", u.Name)
			}
			j, err := column(s, u.CountColumn, "unit count column")
			if err != nil {
				return nil, err
			}
			if !isInteger(s.Field(j).Type) {
				return nil, invalid("the unit count column %q must be an integer", u.CountColumn)
			}
			c.countIdx = j
			drop[j] = true
		case UnitPseudonyms, UnitSketch:
			if t != arrow.BINARY {
				return nil, invalid("the unit column %q has type %s; it must be binary", u.Name, s.Field(i).Type)
			}
		default:
			return nil, invalid("the unit column %q has no known format", u.Name)
		}
		if u.SameAs != "" {
			for _, prev := range g.units {
				if prev.Name == u.SameAs && prev.Format == UnitList {
					c.sameAs = prev
				}
			}
			if c.sameAs == nil || u.Format != UnitList {
				return nil, invalid("the unit list %q is the same as %q, which is no earlier unit list", u.Name, u.SameAs)
			}
		}
		if !u.Keep {
			drop[i] = true
		}
		g.units = append(g.units, c)
	}
	return drop, nil
}

// unitSelection computes every row's sets and reports which rows hold at
// least k persons in each (nil: all of them) and how many.
func (g *Gate) unitSelection(rec arrow.Record) ([]bool, int, error) {
	n := int(rec.NumRows())
	if len(g.units) == 0 {
		return nil, n, nil
	}
	ok := make([]bool, n)
	for r := range n {
		ok[r] = true
	}
	for _, u := range g.units {
		if cap(u.sketches) < n {
			u.sketches, u.units, u.counts = make([][]byte, n), make([]int, n), make([]int64, n)
		}
		u.sketches, u.units, u.counts = u.sketches[:n], u.units[:n], u.counts[:n]
		col := rec.Column(u.idx)
		for r := range n {
			u.sketches[r] = nil
			if !ok[r] {
				continue
			}
			units, sk, err := u.set(rec, col, r)
			if err != nil {
				return nil, 0, err
			}
			u.units[r] = units
			if units < u.K {
				ok[r] = false
				continue
			}
			u.sketches[r] = sk
		}
	}
	kept := 0
	for _, v := range ok {
		if v {
			kept++
		}
	}
	if kept == n {
		return nil, n, nil
	}
	return ok, kept, nil
}

// set reads row r's set: the number of distinct persons and its sketch.
func (u *unitCol) set(rec arrow.Record, col arrow.Array, r int) (int, []byte, error) {
	switch u.Format {
	case UnitSketch:
		if col.IsNull(r) {
			return 0, nil, sluice.Errorf(sluice.EInternal, "release gate: group %d has no sketch of its persons in %s", r, u.Name)
		}
		raw := col.(*array.Binary).Value(r)
		sk, err := sketch.Parse(raw)
		if err != nil {
			return 0, nil, sluice.Errorf(sluice.EInternal, "release gate: the sketch of %s in group %d is damaged: %s", u.Name, r, sluice.ErrorMessage(err))
		}
		return sk.Units(), bytes.Clone(raw), nil
	case UnitPseudonyms:
		u.builder.Reset()
		if col.IsValid(r) {
			raw := col.(*array.Binary).Value(r)
			if len(raw)%8 != 0 {
				return 0, nil, sluice.Errorf(sluice.EInternal, "release gate: the pseudonyms of %s in group %d are not 8-byte values", u.Name, r)
			}
			for i := 0; i < len(raw); i += 8 {
				u.builder.Add(binary.LittleEndian.Uint64(raw[i:]))
			}
		}
	case UnitList:
		u.builder.Reset()
		want := int64(0)
		if c := rec.Column(u.countIdx); c.IsValid(r) {
			want = intValue(c, r)
		}
		u.counts[r] = want
		if s := u.sameAs; s != nil && col.IsNull(r) && want == s.counts[r] && want > 0 {
			// Every row of the group reaches this aggregate too: the
			// same persons, the same sketch.
			return s.units[r], s.sketches[r], nil
		}
		got := int64(0)
		if col.IsValid(r) {
			list := col.(*array.String).Value(r)
			for list != "" {
				v := list
				if i := strings.IndexByte(list, ','); i >= 0 {
					v, list = list[:i], list[i+1:]
				} else {
					list = ""
				}
				u.builder.Add(u.Hash(v))
				got++
			}
		}
		if got != want {
			return 0, nil, sluice.Errorf(sluice.EInternal, "release gate: group %d lists %d persons in %s but the database counted %d; a person key containing a comma cannot be counted, ask the data admin to check the key column", r, got, u.Name, want)
		}
	}
	return u.builder.Units(), u.builder.AppendSketch(nil), nil
}

// sketchArray builds the kept rows' sketches of u as a binary column.
func (g *Gate) sketchArray(u *unitCol, keep []bool) arrow.Array {
	b := array.NewBinaryBuilder(g.mem, arrow.BinaryTypes.Binary)
	defer b.Release()
	for r, sk := range u.sketches {
		if keep != nil && !keep[r] {
			continue
		}
		b.Append(sk)
	}
	return b.NewArray()
}

// recordSets keeps the released rows' sketches of the dropped unit
// columns; first is the result index of the batch's first kept row.
func (g *Gate) recordSets(keep []bool, first int64) {
	for _, u := range g.units {
		if u.Keep {
			continue
		}
		row := first
		for r, sk := range u.sketches {
			if keep != nil && !keep[r] {
				continue
			}
			g.sets = append(g.sets, ReleasedSet{Row: row, Column: u.Name, Dataset: u.Dataset, K: u.K, Sketch: sk})
			row++
		}
	}
}

// Sets returns the sketches of the released rows' contributor sets (the
// unit columns the gate dropped), in release order. Final after io.EOF.
func (g *Gate) Sets() []ReleasedSet {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]ReleasedSet(nil), g.sets...)
}
