package agent

import (
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/pseudonym"
	"github.com/sluice-gov/sluice/crypto/psi"
	"github.com/sluice-gov/sluice/planner"
)

// Privacy units at the agent. An aggregate-only release counts persons,
// not rows: the dataset's unique person key (Dataset.PrivacyUnit) names
// them. The key itself never leaves the agent: what leaves is a keyed
// pseudonym, HMAC-SHA256 under the agent's own unit key (WithUnitKey),
// scoped to the requesting department and the dataset, so pseudonyms of
// two departments' releases cannot be linked and the broker, which never
// holds the key, cannot test a guessed ID number against them.
//
//   - One dataset (MinGroupSize > 0): the database lists each group's
//     person keys per contributor set (planner.RenderUnits); the agent's
//     gate hashes them, drops the groups of fewer than k persons and sends
//     each kept group's sketches (sandbox/sketch) for the broker's
//     differencing guard.
//   - Bound for the sandbox (UnitAlias): every row carries its person's
//     pseudonym in the UnitAlias column, for the sandbox to count.
//
// Both paths hash the same canonical text of the key (the private join's
// normalisation; integers in decimal), so the broker can compare the
// persons of a single-dataset release with those of a joined one.

// openUnitKey sets the agent's pseudonym key: the option's, the
// configured file's (created if missing), or a process-lifetime one.
func (s *Server) openUnitKey() error {
	switch {
	case s.opts.unitKey != nil:
		s.unitKey = s.opts.unitKey
	case s.dept.Agent.UnitKey != "":
		k, err := pseudonym.LoadOrCreate(s.dept.Agent.UnitKey)
		if err != nil {
			return err
		}
		s.unitKey = k
	default:
		k, err := pseudonym.NewRandom()
		if err != nil {
			return err
		}
		s.unitKey = k
		s.log.Warn("no unit_key configured: person pseudonyms change when the agent restarts, so the broker's differencing guard cannot compare releases across restarts; set agent.unit_key")
	}
	return nil
}

// unitScope is the pseudonym scope of a fragment's requester.
func unitScope(f *planner.Fragment, ds *sluice.Dataset) (string, error) {
	if f.Requester.Department == "" {
		return "", sluice.Errorf(sluice.EInvalid, "the fragment names no requesting department; persons are counted per department")
	}
	return f.Requester.Department + "|" + strings.ToLower(ds.FullName()), nil
}

// unitHash is the pseudonym of one person key, in canonical text form.
func unitHash(h *pseudonym.Hasher) func(string) uint64 {
	return func(v string) uint64 { return h.UnitString(psi.Normalize(v)) }
}

// unitField is the scanned column holding the raw person key of a
// sandbox-bound fragment: the last one, named UnitAlias.
func unitField(f *planner.Fragment, unit *sluice.Column) planner.Field {
	return planner.Field{Name: f.UnitAlias, Type: unit.Type}
}

// withUnitItem is the fragment the database runs for a sandbox-bound
// fragment: f with the person key as its last output, named UnitAlias.
// It is rendered only; enforcement judged f, and the key is replaced by
// its pseudonym (pseudonymise) before any row leaves.
func withUnitItem(f *planner.Fragment, unit *sluice.Column) *planner.Fragment {
	fr := *f
	fr.Select = append(append([]planner.SelectItem(nil), f.Select...),
		planner.SelectItem{Expr: &planner.Expr{Kind: planner.KindColumn, Column: unit.Name}, Alias: f.UnitAlias})
	fr.UnitAlias = ""
	return &fr
}

// pseudonymise replaces the last column of rec (the raw person key) by
// its 8-byte pseudonyms, under schema. NULL keys stay NULL: no person.
func pseudonymise(rec arrow.Record, schema *arrow.Schema, hash func(string) uint64) (arrow.Record, error) {
	n := int(rec.NumRows())
	last := int(rec.NumCols()) - 1
	b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
	defer b.Release()
	b.Reserve(n)
	b.ReserveData(8 * n)
	var buf [8]byte
	put := func(u uint64) {
		for i := range buf {
			buf[i] = byte(u >> (8 * i))
		}
		b.Append(buf[:])
	}
	switch col := rec.Column(last).(type) {
	case *array.String:
		for i := 0; i < n; i++ {
			if col.IsNull(i) {
				b.AppendNull()
			} else {
				put(hash(col.Value(i)))
			}
		}
	case *array.Int64:
		for i := 0; i < n; i++ {
			if col.IsNull(i) {
				b.AppendNull()
			} else {
				put(hash(strconv.FormatInt(col.Value(i), 10)))
			}
		}
	default:
		return nil, sluice.Errorf(sluice.ENotSupported, "the person key was read as %s; persons are counted by text or integer keys", col.DataType())
	}
	units := b.NewArray()
	defer units.Release()
	cols := make([]arrow.Array, rec.NumCols())
	for i := 0; i < last; i++ {
		cols[i] = rec.Column(i)
	}
	cols[last] = units
	return array.NewRecord(schema, cols, int64(n)), nil
}

// requireUnit returns the dataset's privacy unit, or the denial that an
// aggregate-only release of it cannot count persons.
func requireUnit(ds *sluice.Dataset) (*sluice.Column, error) {
	unit := ds.PrivacyUnit()
	if unit == nil {
		return nil, deny("no_privacy_unit", ds.FullName(),
			"%s declares no unique person key, so an aggregate-only release cannot count its persons; the department's data admin must mark the column that identifies each row's person as join_key with unique: true", ds.FullName())
	}
	if unit.Type != sluice.TypeText && unit.Type != sluice.TypeInteger {
		return nil, sluice.Errorf(sluice.ENotSupported, "the person key %s.%s is of type %s; persons are counted by text or integer keys", ds.FullName(), unit.Name, unit.Type)
	}
	return unit, nil
}
