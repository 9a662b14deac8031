package agent

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/metadata"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/sandbox/gate"
)

// suppressedHeader carries, in the trailer of a successful DoGet, how many
// groups the agent suppressed for having fewer than the fragment's minimum
// group size. Only the count leaves the agent, never the groups' values;
// the broker tells it to the analyst as the sandbox's gate does for
// cross-department results.
const suppressedHeader = "x-sluice-suppressed-groups"

// groupFilter enforces a protected fragment's minimum group size in the
// agent rather than in the database's HAVING, counting persons rather than
// rows, so the agent knows how many groups it drops. The database returns
// every group with the person keys behind each of its contributor sets
// (planner.RenderUnits); the release gate (the same code the broker's
// sandbox uses) hashes them into sketches, drops the groups of fewer than
// k persons in any set, and counts what it dropped. LIMIT and OFFSET,
// which the database would have applied before, apply here to the groups
// kept.
type groupFilter struct {
	g      *gate.Gate
	offset int64
	limit  int64 // < 0: no limit
	sent   int64
	emit   func(arrow.Record) error
}

// countsGroups reports whether f runs through a groupFilter: it has a
// minimum group size (only aggregate fragments do).
func countsGroups(f *planner.Fragment) bool { return f.MinGroupSize > 0 }

// newGroupFilter renders p's fragment with its contributor sets and
// returns the SQL and the filter that turns the scanned batches into the
// released ones (with the sets' sketches) for emit.
func (s *Server) newGroupFilter(p *prepared, emit func(arrow.Record) error) (string, []any, *groupFilter, error) {
	sqlText, args, err := planner.RenderUnits(p.f, p.ds, p.db.Driver())
	if err != nil {
		return "", nil, nil, asInvalid(err)
	}
	sets, err := p.f.UnitSets()
	if err != nil {
		return "", nil, nil, err
	}
	scope, err := unitScope(p.f, p.ds)
	if err != nil {
		return "", nil, nil, err
	}
	hash := unitHash(s.unitKey.Scope(scope))
	units := make([]gate.UnitColumn, len(sets))
	for i, u := range sets {
		units[i] = gate.UnitColumn{Name: u.Column, Dataset: u.Dataset, K: u.K, Format: gate.UnitList,
			CountColumn: planner.UnitCountPrefix + strconv.Itoa(i), Hash: hash, Keep: true}
		if i > 0 {
			units[i].SameAs = sets[0].Column
		}
	}
	g, err := gate.NewFilter(adapters.Schema(p.scanFields), gate.Obligations{Units: units})
	if err != nil {
		return "", nil, nil, err
	}
	if !g.Schema().Equal(adapters.Schema(p.fields)) {
		return "", nil, nil, sluice.Errorf(sluice.EInternal, "the agent's gate would send %s, not the announced %s", g.Schema(), adapters.Schema(p.fields))
	}
	gf := &groupFilter{g: g, offset: p.f.Offset, limit: -1, emit: emit}
	if p.f.Limit != nil {
		gf.limit = *p.f.Limit
	}
	return sqlText, args, gf, nil
}

// push gates one scanned batch and emits what is released of it. After
// the limit it keeps reading, to count every suppressed group, but emits
// nothing more.
func (gf *groupFilter) push(rec arrow.Record) error {
	out, err := gf.g.Apply(rec)
	if err != nil || out == nil {
		return err
	}
	defer out.Release()
	n := out.NumRows()
	lo := min(gf.offset, n)
	gf.offset -= lo
	hi := n
	if gf.limit >= 0 {
		hi = min(n, lo+max(gf.limit-gf.sent, 0))
	}
	if hi <= lo {
		return nil
	}
	if lo == 0 && hi == n {
		gf.sent += n
		return gf.emit(out)
	}
	part := out.NewSlice(lo, hi)
	defer part.Release()
	gf.sent += hi - lo
	return gf.emit(part)
}

// suppressed is how many groups the filter has dropped so far.
func (gf *groupFilter) suppressed() int64 { return gf.g.Report().SuppressedGroups }

// execReport is what an execution tells its caller besides the rows.
type execReport struct {
	// SuppressedGroups is meaningful when Counted is set: the fragment
	// had a minimum group size the agent enforced itself.
	Counted          bool
	SuppressedGroups int64
}

// trailer is the report as DoGet's trailer metadata (nil: nothing to say).
func (r execReport) trailer() metadata.MD {
	if !r.Counted {
		return nil
	}
	return metadata.Pairs(suppressedHeader, strconv.FormatInt(r.SuppressedGroups, 10))
}
