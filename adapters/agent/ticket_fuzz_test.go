package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// fuzzSeedFragments are real fragments of the agent's tests, as the broker
// sends them: projections, masks, conditions with literals, groups under a
// minimum group size, order and limit, a hidden column, another
// department's dataset, a person count.
func fuzzSeedFragments() []*planner.Fragment {
	limit := int64(3)
	grouped := frag("residents", outsider, sel("district", col("district"), "n", agg("count", nil), "total", agg("sum", col("allowance"))))
	grouped.GroupBy = []*planner.Expr{col("district")}
	grouped.MinGroupSize = 10
	filtered := frag("residents", outsider, sel("name", col("name"), "born", col("birth_date")))
	filtered.Where = bin("AND", bin("=", col("district"), str("A")), bin(">", col("allowance"), num(100)))
	filtered.OrderBy = []planner.OrderItem{{Expr: col("name"), Desc: true}}
	filtered.Limit = &limit
	filtered.Masks = map[string]sluice.MaskRule{"name": sluice.MaskSurname}
	big := frag("big", outsider, sel("n", col("n"), "label", col("label")))
	big.Where = bin("<", col("n"), num(50))
	big.Offset = 2
	distinct := frag("residents", owner, sel("district", col("district")))
	distinct.Distinct = true
	units := frag("residents", outsider, sel("district", col("district")))
	units.UnitAlias = "__unit"
	having := frag("big", owner, sel("label", col("label"), "m", agg("max", col("n"))))
	having.GroupBy = []*planner.Expr{col("label")}
	having.Having = bin(">", agg("count", nil), num(1))
	return []*planner.Fragment{
		grouped, filtered, big, distinct, units, having,
		frag("residents", outsider, sel("s", col("secret"))),
		frag("records", outsider, sel("offense", col("offense"))),
		{QueryID: "q", Dataset: "health.insured", Select: sel("d", col("district"))},
	}
}

// FuzzFragmentTicket feeds arbitrary bytes to the agent as a DoGet ticket:
// decoded as the Flight service decodes it, then prepared, rendered and
// run against the department's SQLite database as DoGet runs it. Any
// answer is fine except a panic, an internal error or a ticket error that
// is not EInvalid: a malformed or hostile fragment must be refused with a
// clean, typed error, never crash the agent or reach the database as
// something the agent did not validate. CI runs it briefly (.ci/run).
func FuzzFragmentTicket(f *testing.F) {
	for _, fr := range fuzzSeedFragments() {
		f.Add(mustJSON(fr))
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"dataset":"civil.residents"}`, `{"dataset":"civil.residents","select":[]} {}`,
		`{"dataset":"civil.residents","select":[{"alias":"x","expr":{"kind":"column","column":"district"}}],"limit":-1}`,
		`{"dataset":"civil.residents","select":[{"alias":"x","expr":{"kind":"aggregate","func":"count","args":[]}}],"min_group_size":-5}`,
		`{"dataset":"civil.residents","nope":1}`,
	} {
		f.Add([]byte(s))
	}
	fx := newFixture(f, nil, nil)
	srv := fx.srv
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, err := decodeFragment(raw)
		if err != nil {
			if code := sluice.ErrorCode(err); code != sluice.EInvalid {
				t.Fatalf("a bad ticket gave %s, want %s: %v", code, sluice.EInvalid, err)
			}
			return
		}
		if _, err := srv.Schema(fr); err != nil {
			if sluice.ErrorCode(err) == sluice.EInternal {
				t.Fatalf("internal error preparing %s: %v", raw, err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = srv.Execute(ctx, fr, func(arrow.Record) error { return nil })
		if err == nil || ctx.Err() != nil {
			return
		}
		if sluice.ErrorCode(err) == sluice.EInternal {
			t.Fatalf("internal error running %s: %v", raw, err)
		}
		// The agent accepted the fragment: the SQL it rendered for it must
		// be SQL the database reads.
		if strings.Contains(err.Error(), "rejected the query:") {
			t.Fatalf("the agent validated %s but its database rejected the SQL rendered for it: %v", raw, err)
		}
	})
}

// FuzzPSICommand feeds arbitrary bytes to the agent as the command of a
// psi-blind exchange: decoded, then prepared (dataset, key column, key
// domain and the fragment of its payload checked). Errors must be clean
// and typed.
func FuzzPSICommand(f *testing.F) {
	pay := psiFrag("civil.residents", "district", col("district"))
	for _, c := range []*psiCommand{
		{Op: "psi-blind", Fragment: pay, KeyColumn: "id_card", KeyDomain: "person"},
		{Op: "psi-blind", Fragment: pay, KeyColumn: "district", KeyDomain: "person"},
		{Op: "psi-blind", Fragment: pay, KeyColumn: "id_card", KeyDomain: "vehicle"},
		{Op: "psi-reblind", Session: "0123456789abcdef"},
		{Op: "psi-blind", Fragment: psiFrag("civil.big", "n", col("n")), KeyColumn: "n", KeyDomain: "person"},
	} {
		f.Add(mustJSON(c))
	}
	f.Add([]byte(`{"op":"psi-blind","fragment":null,"key_column":"id_card","key_domain":"person"}`))
	f.Add([]byte(`{"op":"psi-blind","key_domain":"` + string(make([]byte, 200)) + `"}`))
	fx := newFixture(f, nil, nil)
	srv := fx.srv
	f.Fuzz(func(t *testing.T, raw []byte) {
		cmd, err := decodePSICommand(raw)
		if err != nil {
			if code := sluice.ErrorCode(err); code != sluice.EInvalid {
				t.Fatalf("a bad PSI command gave %s, want %s: %v", code, sluice.EInvalid, err)
			}
			return
		}
		if _, _, err := srv.psiPrepare(cmd); err != nil && sluice.ErrorCode(err) == sluice.EInternal {
			t.Fatalf("internal error preparing PSI command %s: %v", raw, err)
		}
	})
}
