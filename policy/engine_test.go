package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// now is the instant every demo decision is taken at (10:00 in Beijing).
var now = time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)

// personKey is a join key on the person domain declared unique: the
// dataset's privacy unit (one row per person).
func personKey() *sluice.Column {
	c := col("id_card", sluice.GradeL4, sluice.ReleaseJoinKey, "", "person")
	c.Unique = true
	return c
}

func col(name string, grade sluice.Grade, release sluice.Release, mask sluice.MaskRule, domain string) *sluice.Column {
	typ := sluice.TypeText
	if mask == sluice.MaskYear {
		typ = sluice.TypeDate
	}
	return &sluice.Column{Name: name, Type: typ, Grade: grade, Release: release, Mask: mask, KeyDomain: domain}
}

// demoCatalog is the brief's demo world. police.household also carries a
// hidden column, case_notes, that the demo does not have, so the hidden
// level is exercised against the same catalog.
func demoCatalog(t testing.TB) *sluice.Catalog {
	t.Helper()
	const L1, L2, L3, L4 = sluice.GradeL1, sluice.GradeL2, sluice.GradeL3, sluice.GradeL4
	const plain, masked, agg, key, hidden = sluice.ReleasePlain, sluice.ReleaseMasked, sluice.ReleaseAggregate, sluice.ReleaseJoinKey, sluice.ReleaseHidden
	depts := []*sluice.Department{
		{ID: "civil", Datasets: []*sluice.Dataset{{
			Name: "residents", ShareClass: sluice.ShareConditional, LegalBasis: "Civil Affairs Data Regulation art. 9",
			Columns: []*sluice.Column{
				personKey(),
				col("name", L3, masked, sluice.MaskSurname, ""),
				col("gender", L2, plain, "", ""),
				col("birth_date", L3, masked, sluice.MaskYear, ""),
				col("district", L1, plain, "", ""),
				col("phone", L3, masked, sluice.MaskPhone, ""),
				col("low_income", L3, plain, "", ""),
				col("monthly_allowance", L3, agg, "", ""),
			},
		}}},
		{ID: "health", Datasets: []*sluice.Dataset{{
			Name: "insured", ShareClass: sluice.ShareConditional, LegalBasis: "Medical Security Data Measures art. 14",
			Columns: []*sluice.Column{
				personKey(),
				col("insurance_type", L2, plain, "", ""),
				col("chronic_disease", L4, agg, "", ""),
				col("annual_claims", L4, agg, "", ""),
				col("hospital_visits", L4, agg, "", ""),
			},
		}}},
		{ID: "market", Datasets: []*sluice.Dataset{{
			Name: "enterprises", ShareClass: sluice.ShareUnconditional,
			Columns: []*sluice.Column{
				col("credit_code", L1, plain, "", ""),
				col("name", L1, plain, "", ""),
				col("legal_rep_name", L2, plain, "", ""),
				col("industry", L1, plain, "", ""),
				col("district", L1, plain, "", ""),
				col("registered_capital", L1, plain, "", ""),
				col("status", L1, plain, "", ""),
				col("established", L1, plain, "", ""),
				col("legal_rep_id_card", L4, key, "", "person"),
			},
		}}},
		{ID: "police", Datasets: []*sluice.Dataset{
			{
				Name: "household", ShareClass: sluice.ShareConditional, LegalBasis: "Household Registration Regulation art. 20",
				Columns: []*sluice.Column{
					personKey(),
					col("name", L3, masked, sluice.MaskSurname, ""),
					col("household_district", L2, plain, "", ""),
					col("migrant", L3, plain, "", ""),
					col("case_notes", L4, hidden, "", ""),
				},
			},
			{
				Name: "criminal_records", ShareClass: sluice.ShareNone, LegalBasis: "Criminal Records Inquiry Provisions art. 3",
				Columns: []*sluice.Column{
					col("id_card", L4, plain, "", ""),
					col("offense", L4, plain, "", ""),
					col("sentence_date", L4, plain, "", ""),
				},
			},
		}},
	}
	cat, err := sluice.NewCatalog(depts...)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

var demoPurposes = []sluice.Purpose{
	{Code: "subsidy-review", Name: "Subsidy eligibility review"},
	{Code: "enterprise-credit", Name: "Enterprise credit assessment"},
	{Code: "public-health-planning", Name: "Public health planning"},
}

func demoGrants() []sluice.Grant {
	year := 365 * 24 * time.Hour
	return []sluice.Grant{
		{
			ID: "g-alice-health", Grantee: "alice", Dataset: "health.insured", Columns: []string{"*"},
			Purpose: "subsidy-review", ValidFrom: now.Add(-year), ValidUntil: now.Add(year),
			Mode: sluice.ModeAggregate, K: 10,
		},
		{
			ID: "g-bob-household", Grantee: "bob", Dataset: "police.household",
			Columns: []string{"id_card", "name", "household_district", "case_notes"},
			Purpose: "enterprise-credit", ValidFrom: now.Add(-year), ValidUntil: now.Add(year),
			Mode: sluice.ModeRows,
		},
		{
			ID: "g-erin-residents", Grantee: "dept:health", Dataset: "civil.residents", Columns: []string{"*"},
			Purpose: "public-health-planning", ValidFrom: now.Add(-year), ValidUntil: now.Add(-24 * time.Hour),
			Mode: sluice.ModeRows,
		},
	}
}

var (
	alice = sluice.Principal{Name: "alice", Role: sluice.RoleAnalyst, Department: "civil"}
	bob   = sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	erin  = sluice.Principal{Name: "erin", Role: sluice.RoleAnalyst, Department: "health"}
	carol = sluice.Principal{Name: "carol", Role: sluice.RoleAuditor, Department: "audit"}
	dave  = sluice.Principal{Name: "dave", Role: sluice.RolePlatformAdmin, Department: "platform"}
)

func demoEngine(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	ctx := context.Background()
	e, err := New(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Update(ctx, demoCatalog(t), demoPurposes, demoGrants()); err != nil {
		t.Fatal(err)
	}
	return e
}

// use is a column usage: "dataset.column", usages...
func use(qualified string, usages ...sluice.Usage) sluice.ColumnUsage {
	i := strings.LastIndex(qualified, ".")
	return sluice.ColumnUsage{Dataset: qualified[:i], Column: qualified[i+1:], Usages: usages}
}

func query(p sluice.Principal, purpose string, aggregate bool, cols ...sluice.ColumnUsage) Input {
	var ds []string
	for _, c := range cols {
		if !slices.Contains(ds, c.Dataset) {
			ds = append(ds, c.Dataset)
		}
	}
	return Input{Principal: p, Purpose: purpose, Now: now, Datasets: ds, Columns: cols, Aggregate: aggregate}
}

const (
	out  = sluice.UseOutput
	pred = sluice.UsePredicate
	grp  = sluice.UseGroup
	ord  = sluice.UseOrder
	agg  = sluice.UseAggregate
	join = sluice.UseJoinKey
)

func ruleSet(d *Decision) []string {
	var rules []string
	for _, r := range d.Reasons {
		if !slices.Contains(rules, r.Rule) {
			rules = append(rules, r.Rule)
		}
	}
	sort.Strings(rules)
	return rules
}

func TestDecide(t *testing.T) {
	e := demoEngine(t)
	type masks = map[string]map[string]sluice.MaskRule
	tests := []struct {
		name       string
		in         Input
		allow      bool
		rules      []string
		masks      masks
		k          int
		grants     []string
		legalBasis string   // some reason must carry it
		mentions   []string // some reason's message must contain each
	}{
		{
			name:  "unconditional dataset open to any analyst",
			in:    query(alice, "subsidy-review", false, use("market.enterprises.name", out), use("market.enterprises.district", pred)),
			allow: true, rules: []string{"allow_unconditional"},
		},
		{
			name: "bob reads household rows under his grant, name masked at the source",
			in: query(bob, "enterprise-credit", false,
				use("police.household.name", out, ord), use("police.household.household_district", out, grp)),
			allow: true, rules: []string{"allow_grant"},
			masks:  masks{"police.household": {"name": sluice.MaskSurname}},
			grants: []string{"g-bob-household"},
		},
		{
			name: "owner reads every column of its own dataset at plain",
			in: query(alice, "subsidy-review", false,
				use("civil.residents.id_card", out), use("civil.residents.name", out),
				use("civil.residents.monthly_allowance", out, ord)),
			allow: true, rules: []string{"allow_owner"},
		},
		{
			name: "owner reads its own share-class-none dataset",
			in: query(sluice.Principal{Name: "paul", Role: sluice.RoleAnalyst, Department: "police"}, "enterprise-credit", false,
				use("police.criminal_records.offense", out)),
			allow: true, rules: []string{"allow_owner"},
		},
		{
			name:  "share class none cites the legal basis",
			in:    query(bob, "enterprise-credit", false, use("police.criminal_records.offense", out)),
			rules: []string{"share_class_none"}, legalBasis: "Criminal Records Inquiry Provisions art. 3",
			mentions: []string{"Criminal Records Inquiry Provisions art. 3"},
		},
		{
			name:  "conditional dataset without a grant",
			in:    query(bob, "enterprise-credit", false, use("civil.residents.district", out)),
			rules: []string{"no_grant"}, legalBasis: "Civil Affairs Data Regulation art. 9",
			mentions: []string{"Apply for access to civil.residents for purpose enterprise-credit"},
		},
		{
			name:     "department grant that expired yesterday",
			in:       query(erin, "public-health-planning", false, use("civil.residents.district", out)),
			rules:    []string{"grant_expired"},
			mentions: []string{"g-erin-residents", "2026-03-09T02:00:00Z", "renewal"},
		},
		{
			name:     "grant for another purpose",
			in:       query(bob, "subsidy-review", false, use("police.household.household_district", out)),
			rules:    []string{"grant_purpose"},
			mentions: []string{"g-bob-household", "enterprise-credit", `"subsidy-review"`},
		},
		{
			name:     "column outside the grant",
			in:       query(bob, "enterprise-credit", false, use("police.household.migrant", out)),
			rules:    []string{"grant_columns"},
			mentions: []string{"migrant"},
		},
		{
			name:  "join key released as output",
			in:    query(bob, "enterprise-credit", false, use("police.household.id_card", out)),
			rules: []string{"join_key_use"}, mentions: []string{"equality join key"},
		},
		{
			name:  "join key compared in WHERE",
			in:    query(bob, "enterprise-credit", false, use("police.household.id_card", pred), use("police.household.household_district", out)),
			rules: []string{"join_key_use"},
		},
		{
			name:  "join key counted distinct",
			in:    query(bob, "enterprise-credit", true, use("police.household.id_card", agg)),
			rules: []string{"join_key_use"},
		},
		{
			name: "join key used as a join key is allowed",
			in: query(bob, "enterprise-credit", false,
				use("police.household.id_card", join), use("market.enterprises.legal_rep_id_card", join),
				use("market.enterprises.name", out), use("police.household.household_district", out)),
			allow: true, rules: []string{"allow_grant", "allow_owner"}, grants: []string{"g-bob-household"},
		},
		{
			name:  "masked column as join key",
			in:    query(bob, "enterprise-credit", false, use("police.household.name", join)),
			rules: []string{"masked_join_key"},
		},
		{
			name:  "hidden column even though the grant names it",
			in:    query(bob, "enterprise-credit", false, use("police.household.case_notes", pred)),
			rules: []string{"hidden_column"},
		},
		{
			name:     "aggregate column released as rows",
			in:       query(alice, "subsidy-review", false, use("health.insured.annual_claims", out)),
			rules:    []string{"aggregate_only_grant", "aggregate_row_output"},
			mentions: []string{"COUNT/SUM/AVG", "at least 10 persons"},
		},
		{
			name:  "aggregate column as a GROUP BY key",
			in:    query(alice, "subsidy-review", true, use("health.insured.chronic_disease", grp), use("health.insured.annual_claims", agg)),
			rules: []string{"aggregate_column_use"},
		},
		{
			name: "alice's aggregate query under her k=10 grant",
			in: query(alice, "subsidy-review", true,
				use("civil.residents.id_card", join), use("civil.residents.district", grp, out),
				use("health.insured.id_card", join), use("health.insured.insurance_type", grp, out),
				use("health.insured.chronic_disease", agg, pred), use("health.insured.annual_claims", agg)),
			allow: true, rules: []string{"allow_grant", "allow_owner"}, k: 10, grants: []string{"g-alice-health"},
		},
		{
			name:     "alice's row query under an aggregate-only grant",
			in:       query(alice, "subsidy-review", false, use("health.insured.insurance_type", out)),
			rules:    []string{"aggregate_only_grant"},
			mentions: []string{"g-alice-health", "GROUP BY"},
		},
		{
			name:  "auditor reads no data",
			in:    query(carol, "subsidy-review", false, use("market.enterprises.name", out)),
			rules: []string{"role"},
		},
		{
			name:  "platform admin reads no data",
			in:    query(dave, "subsidy-review", false, use("market.enterprises.name", out)),
			rules: []string{"role"},
		},
		{
			name:     "unknown purpose lists the registered ones",
			in:       query(alice, "curiosity", false, use("market.enterprises.name", out)),
			rules:    []string{"unknown_purpose"},
			mentions: []string{`"curiosity"`, "enterprise-credit, public-health-planning, subsidy-review"},
		},
		{
			name:  "no purpose declared",
			in:    query(alice, "", false, use("market.enterprises.name", out)),
			rules: []string{"unknown_purpose"}, mentions: []string{"x-sluice-purpose"},
		},
		{
			name:  "unknown dataset",
			in:    query(alice, "subsidy-review", false, use("tax.returns.income", out)),
			rules: []string{"unknown_dataset"}, mentions: []string{"tax.returns"},
		},
		{
			name: "every denial is reported",
			in: query(bob, "enterprise-credit", false,
				use("police.criminal_records.offense", out), use("police.household.id_card", out),
				use("civil.residents.district", out)),
			rules: []string{"join_key_use", "no_grant", "share_class_none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow {
				t.Fatalf("allow = %v, want %v\n%s", d.Allow, tt.allow, d.Explain())
			}
			if got := ruleSet(d); !slices.Equal(got, tt.rules) {
				t.Errorf("rules = %v, want %v\n%s", got, tt.rules, d.Explain())
			}
			wantMasks := tt.masks
			if wantMasks == nil {
				wantMasks = masks{}
			}
			if !equalMasks(d.Masks, wantMasks) {
				t.Errorf("masks = %v, want %v", d.Masks, wantMasks)
			}
			if d.MinGroupSize != tt.k {
				t.Errorf("min group size = %d, want %d", d.MinGroupSize, tt.k)
			}
			wantGrants := tt.grants
			if wantGrants == nil {
				wantGrants = []string{}
			}
			if !slices.Equal(d.Grants, wantGrants) {
				t.Errorf("grants = %v, want %v", d.Grants, wantGrants)
			}
			if tt.legalBasis != "" && !slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.LegalBasis == tt.legalBasis }) {
				t.Errorf("no reason cites legal basis %q\n%s", tt.legalBasis, d.Explain())
			}
			for _, m := range tt.mentions {
				if !slices.ContainsFunc(d.Reasons, func(r Reason) bool { return strings.Contains(r.Message, m) }) {
					t.Errorf("no reason mentions %q\n%s", m, d.Explain())
				}
			}
			for _, r := range d.Reasons {
				if r.Message == "" || r.Rule == "" {
					t.Errorf("reason without rule or message: %+v", r)
				}
			}
			if !sort.SliceIsSorted(d.Reasons, func(i, j int) bool { return reasonLess(d.Reasons[i], d.Reasons[j]) }) {
				t.Errorf("reasons not sorted: %+v", d.Reasons)
			}
			if d.Revision != e.Revision() {
				t.Errorf("revision = %q, want %q", d.Revision, e.Revision())
			}
		})
	}
}

func reasonLess(a, b Reason) bool {
	if a.Dataset != b.Dataset {
		return a.Dataset < b.Dataset
	}
	if a.Column != b.Column {
		return a.Column < b.Column
	}
	return a.Rule < b.Rule
}

func equalMasks(a, b map[string]map[string]sluice.MaskRule) bool {
	if len(a) != len(b) {
		return false
	}
	for ds, cols := range a {
		other, ok := b[ds]
		if !ok || len(other) != len(cols) {
			return false
		}
		for c, m := range cols {
			if other[c] != m {
				return false
			}
		}
	}
	return true
}

func TestDecideIsDeterministic(t *testing.T) {
	e := demoEngine(t)
	in := query(bob, "enterprise-credit", false,
		use("police.criminal_records.offense", out), use("police.household.id_card", out, pred, grp),
		use("civil.residents.district", out), use("police.household.name", join))
	first, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		d, err := e.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Explain() != first.Explain() {
			t.Fatalf("decision changed between runs:\n%s\n---\n%s", first.Explain(), d.Explain())
		}
	}
}

func TestGrantTimeLimitsAndModes(t *testing.T) {
	ctx := context.Background()
	hour := time.Hour
	g := func(mut func(*sluice.Grant)) []sluice.Grant {
		base := sluice.Grant{
			ID: "g", Grantee: "bob", Dataset: "civil.residents", Columns: []string{"*"}, Purpose: "enterprise-credit",
			ValidFrom: now.Add(-hour), ValidUntil: now.Add(hour), Mode: sluice.ModeRows,
		}
		mut(&base)
		return []sluice.Grant{base}
	}
	in := query(bob, "enterprise-credit", true, use("civil.residents.district", grp), use("civil.residents.monthly_allowance", agg))
	tests := []struct {
		name     string
		opts     []Option
		grants   []sluice.Grant
		allow    bool
		rules    []string
		k        int
		mentions string
	}{
		{name: "valid rows grant, aggregate column gets default k", grants: g(func(*sluice.Grant) {}), allow: true, rules: []string{"allow_grant"}, k: 10},
		{name: "default k option", opts: []Option{WithDefaultK(20)}, grants: g(func(*sluice.Grant) {}), allow: true, rules: []string{"allow_grant"}, k: 20},
		{name: "aggregate grant without k uses default", grants: g(func(x *sluice.Grant) { x.Mode = sluice.ModeAggregate }), allow: true, rules: []string{"allow_grant"}, k: 10},
		{name: "larger grant k wins", grants: g(func(x *sluice.Grant) { x.Mode = sluice.ModeAggregate; x.K = 50 }), allow: true, rules: []string{"allow_grant"}, k: 50},
		{name: "not yet valid", grants: g(func(x *sluice.Grant) { x.ValidFrom = now.Add(hour); x.ValidUntil = now.Add(2 * hour) }), rules: []string{"grant_not_yet_valid"}},
		{name: "ends exactly now", grants: g(func(x *sluice.Grant) { x.ValidUntil = now }), rules: []string{"grant_expired"}},
		{name: "no end date is never valid", grants: g(func(x *sluice.Grant) { x.ValidUntil = time.Time{} }), rules: []string{"grant_expired"}},
		{name: "revoked", grants: g(func(x *sluice.Grant) { x.Revoked = true }), rules: []string{"grant_revoked"}, mentions: "revoked"},
		{name: "unknown mode is aggregate-only", grants: g(func(x *sluice.Grant) { x.Mode = "everything" }), allow: true, rules: []string{"allow_grant"}, k: 10},
		{name: "department grantee", grants: g(func(x *sluice.Grant) { x.Grantee = "dept:market" }), allow: true, rules: []string{"allow_grant"}, k: 10},
		{name: "other department's grant", grants: g(func(x *sluice.Grant) { x.Grantee = "dept:civil" }), rules: []string{"no_grant"}},
		{name: "dataset name case-insensitive", grants: g(func(x *sluice.Grant) { x.Dataset = "Civil.Residents" }), allow: true, rules: []string{"allow_grant"}, k: 10},
		{name: "budget with clamp bounds", grants: g(func(x *sluice.Grant) {
			x.Mode, x.Epsilon, x.EpsilonPerQuery, x.Clamp = sluice.ModeAggregate, 1, 0.5, map[string]sluice.Bounds{"Monthly_Allowance": {-10, 600}}
		}), allow: true, rules: []string{"allow_grant"}, k: 10, mentions: "SUM(civil.residents.monthly_allowance): each value clamped to [-10, 600] at the source (sensitivity 600)"},
		{name: "budget without clamp bounds", grants: g(func(x *sluice.Grant) { x.Mode, x.Epsilon, x.EpsilonPerQuery = sluice.ModeAggregate, 1, 0.5 }),
			allow: true, rules: []string{"allow_grant"}, k: 10, mentions: "the grant states no clamp bounds, so no column of civil.residents can be summed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(ctx, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Update(ctx, demoCatalog(t), demoPurposes, tt.grants); err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow || !slices.Equal(ruleSet(d), tt.rules) || d.MinGroupSize != tt.k {
				t.Fatalf("got allow=%v rules=%v k=%d, want allow=%v rules=%v k=%d\n%s",
					d.Allow, ruleSet(d), d.MinGroupSize, tt.allow, tt.rules, tt.k, d.Explain())
			}
			if tt.mentions != "" && !strings.Contains(d.Explain(), tt.mentions) {
				t.Errorf("explanation does not mention %q:\n%s", tt.mentions, d.Explain())
			}
		})
	}
}

// TestDecisionCarriesClampBounds: a budget relied on reaches the broker
// with its dataset and clamp bounds (lower-case columns), which it uses to
// clamp and noise SUMs.
func TestDecisionCarriesClampBounds(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := sluice.Grant{ID: "g-dp", Grantee: "bob", Dataset: "civil.residents", Columns: []string{"district", "monthly_allowance"},
		Purpose: "enterprise-credit", ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Mode: sluice.ModeAggregate,
		Epsilon: 2, EpsilonPerQuery: 0.25, Clamp: map[string]sluice.Bounds{"Monthly_Allowance": {0, 600}}}
	if err := e.Update(ctx, demoCatalog(t), demoPurposes, []sluice.Grant{g}); err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(ctx, query(bob, "enterprise-credit", true, use("civil.residents.district", grp), use("civil.residents.monthly_allowance", agg)))
	if err != nil || !d.Allow {
		t.Fatalf("decision %v, %v", d, err)
	}
	want := DPBudget{Grant: "g-dp", Dataset: "civil.residents", EpsilonPerQuery: 0.25, Epsilon: 2, Clamp: map[string]sluice.Bounds{"monthly_allowance": {0, 600}}}
	if len(d.DP) != 1 || d.DP[0].Grant != want.Grant || d.DP[0].Dataset != want.Dataset || d.DP[0].EpsilonPerQuery != want.EpsilonPerQuery ||
		d.DP[0].Epsilon != want.Epsilon || len(d.DP[0].Clamp) != 1 || d.DP[0].Clamp["monthly_allowance"] != want.Clamp["monthly_allowance"] {
		t.Fatalf("dp %+v, want [%+v]", d.DP, want)
	}
}

func TestDecideBeforeUpdateDenies(t *testing.T) {
	e, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), query(alice, "subsidy-review", false, use("market.enterprises.name", out)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow {
		t.Fatalf("allowed with no catalog:\n%s", d.Explain())
	}
}

func TestNoDatasetNoReasonStillExplains(t *testing.T) {
	// A principal without a role is not an analyst: denied with a reason.
	e := demoEngine(t)
	d, err := e.Decide(context.Background(), Input{Principal: sluice.Principal{Name: "x"}, Purpose: "subsidy-review"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || len(d.Reasons) == 0 {
		t.Fatalf("want an explained denial, got:\n%s", d.Explain())
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCustomPolicy(t *testing.T) {
	ctx := context.Background()
	night := now.Add(13 * time.Hour) // 15:00 UTC, 23:00 in Beijing
	sensitive := query(bob, "enterprise-credit", false, use("police.household.name", out))

	t.Run("example module denies at night only", func(t *testing.T) {
		e := demoEngine(t, WithPolicyDir("examples"))
		day, err := e.Decide(ctx, sensitive)
		if err != nil {
			t.Fatal(err)
		}
		if !day.Allow {
			t.Fatalf("denied in office hours:\n%s", day.Explain())
		}
		in := sensitive
		in.Now = night
		d, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow || !slices.Equal(ruleSet(d), []string{"custom:no_night_queries"}) {
			t.Fatalf("want custom denial at night, got:\n%s", d.Explain())
		}
		if d.Reasons[0].Dataset != "police.household" || d.Reasons[0].Column != "name" {
			t.Errorf("custom reason target = %s.%s", d.Reasons[0].Dataset, d.Reasons[0].Column)
		}
		if _, ok := e.Modules()[filepath.Join("examples", "no_night_queries.rego")]; !ok {
			t.Errorf("Modules() = %v, want the example module", keys(e.Modules()))
		}
		if _, ok := e.Modules()["sluice.rego"]; !ok {
			t.Errorf("Modules() lacks the base policy")
		}
	})

	t.Run("string denials get the package as rule and cannot be overridden", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"freeze.rego": "package sluice.custom.freeze\n\ndeny contains \"all sharing is frozen during the audit\" if input.principal.department == \"market\"\n",
			// Helpers without a deny set add nothing.
			"helpers.rego":     "package sluice.custom.helpers\n\nfrozen := true\n",
			"freeze_test.rego": "package custom_test.freeze\n\ntest_nothing if true\n",
		})
		e := demoEngine(t, WithPolicyDir(dir))
		d, err := e.Decide(ctx, query(bob, "enterprise-credit", false, use("market.enterprises.name", out)))
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow || !slices.Equal(ruleSet(d), []string{"custom:sluice.custom.freeze"}) || d.Reasons[0].Message != "all sharing is frozen during the audit" {
			t.Fatalf("want the freeze denial, got:\n%s", d.Explain())
		}
		if _, ok := e.Modules()[filepath.Join(dir, "freeze_test.rego")]; ok {
			t.Error("test files must not be loaded as policy")
		}
		d, err = e.Decide(ctx, query(alice, "subsidy-review", false, use("market.enterprises.name", out)))
		if err != nil || !d.Allow {
			t.Fatalf("custom module denied an unrelated query: %v\n%v", err, d)
		}
	})

	t.Run("runtime error fails closed", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"broken.rego": "package sluice.custom.broken\n\ndeny contains msg if {\n\tmsg := sprintf(\"%d\", [count(input.principal.name) / 0])\n}\n",
		})
		e := demoEngine(t, WithPolicyDir(dir))
		d, err := e.Decide(ctx, query(alice, "subsidy-review", false, use("market.enterprises.name", out)))
		if err == nil || d != nil {
			t.Fatalf("want an error, got %v", d)
		}
		if sluice.ErrorCode(err) != sluice.EInternal {
			t.Errorf("code = %s, want internal: %v", sluice.ErrorCode(err), err)
		}
	})

	errs := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name:  "syntax error names file and line",
			files: map[string]string{"bad.rego": "package sluice.custom.bad\n\ndeny contains r if {\n\tr := \n}\n"},
			want:  []string{"bad.rego line 5", "rego_parse_error"},
		},
		{
			name:  "compile error names file and line",
			files: map[string]string{"undef.rego": "package sluice.custom.undef\n\ndeny contains r if {\n\tr := no_such_rule\n}\n"},
			want:  []string{"undef.rego line 4", "no_such_rule"},
		},
		{
			name:  "module outside sluice.custom is refused",
			files: map[string]string{"widen.rego": "package sluice.authz\n\nallow := true\n"},
			want:  []string{"widen.rego:1", "sluice.custom.<name>"},
		},
		{
			name:  "sluice.custom itself is refused",
			files: map[string]string{"root.rego": "package sluice.custom\n\ndeny contains \"x\" if false\n"},
			want:  []string{"root.rego:1"},
		},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(ctx, WithPolicyDir(writeFiles(t, tt.files)))
			if err == nil {
				t.Fatal("want an error")
			}
			if sluice.ErrorCode(err) != sluice.EInvalid {
				t.Errorf("code = %s, want invalid", sluice.ErrorCode(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	t.Run("missing directory", func(t *testing.T) {
		_, err := New(ctx, WithPolicyDir(filepath.Join(t.TempDir(), "nope")))
		if sluice.ErrorCode(err) != sluice.EInvalid {
			t.Fatalf("want invalid, got %v", err)
		}
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRevision(t *testing.T) {
	ctx := context.Background()
	e := demoEngine(t)
	rev := e.Revision()
	if !strings.HasPrefix(rev, "sha256:") || len(rev) != len("sha256:")+64 {
		t.Fatalf("revision %q is not sha256:<hex>", rev)
	}
	if err := e.Update(ctx, demoCatalog(t), demoPurposes, demoGrants()); err != nil {
		t.Fatal(err)
	}
	if e.Revision() != rev {
		t.Errorf("same data gave a new revision")
	}
	if other := demoEngine(t); other.Revision() != rev {
		t.Errorf("two engines with the same policy and data disagree on the revision")
	}
	grants := demoGrants()
	grants[0].Revoked = true
	if err := e.Update(ctx, demoCatalog(t), demoPurposes, grants); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == rev {
		t.Errorf("revoking a grant did not change the revision")
	}
	if custom := demoEngine(t, WithPolicyDir("examples")); custom.Revision() == rev {
		t.Errorf("adding a module did not change the revision")
	}
	cat := demoCatalog(t)
	cat.Dataset("market", "enterprises").Column("industry").Release = sluice.ReleaseHidden
	if err := e.Update(ctx, cat, demoPurposes, demoGrants()); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == rev {
		t.Errorf("reclassifying a column did not change the revision")
	}
}

func TestUpdateRejectsAmbiguousData(t *testing.T) {
	ctx := context.Background()
	e := demoEngine(t)
	rev := e.Revision()
	dup := append(demoGrants(), demoGrants()[0])
	tests := []struct {
		name     string
		purposes []sluice.Purpose
		grants   []sluice.Grant
	}{
		{"duplicate grant id", demoPurposes, dup},
		{"grant without id", demoPurposes, []sluice.Grant{{Dataset: "civil.residents", Grantee: "bob"}}},
		{"duplicate purpose", append(slices.Clone(demoPurposes), demoPurposes[0]), nil},
		{"purpose without code", []sluice.Purpose{{Name: "x"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.Update(ctx, demoCatalog(t), tt.purposes, tt.grants)
			if sluice.ErrorCode(err) != sluice.EInvalid {
				t.Fatalf("want invalid, got %v", err)
			}
			if e.Revision() != rev {
				t.Errorf("a rejected update changed the policy in force")
			}
		})
	}
	if err := e.Update(ctx, nil, nil, nil); err != nil {
		t.Errorf("an empty world must be accepted: %v", err)
	}
	if _, err := New(ctx, WithDefaultK(0)); sluice.ErrorCode(err) != sluice.EInvalid {
		t.Errorf("k = 0: want invalid, got %v", err)
	}
}

func TestConcurrentDecideDuringUpdate(t *testing.T) {
	ctx := context.Background()
	e := demoEngine(t)
	withGrant := e.Revision()
	revoked := demoGrants()
	revoked[1].Revoked = true
	if err := e.Update(ctx, demoCatalog(t), demoPurposes, revoked); err != nil {
		t.Fatal(err)
	}
	withoutGrant := e.Revision()
	in := query(bob, "enterprise-credit", false, use("police.household.household_district", out))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := e.Decide(ctx, in)
				if err != nil {
					errs <- err
					return
				}
				// Each decision must be consistent with the revision it
				// reports: no mix of old modules and new data.
				if (d.Revision == withGrant) != d.Allow || (d.Revision != withGrant && d.Revision != withoutGrant) {
					errs <- errors.New("decision inconsistent with its revision:\n" + d.Explain())
					return
				}
			}
		})
	}
	for i := range 20 {
		grants := demoGrants()
		if i%2 == 1 {
			grants = revoked
		}
		if err := e.Update(ctx, demoCatalog(t), demoPurposes, grants); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExplain(t *testing.T) {
	e := demoEngine(t)
	d, err := e.Decide(context.Background(), query(bob, "enterprise-credit", false, use("police.criminal_records.offense", out)))
	if err != nil {
		t.Fatal(err)
	}
	text := d.Explain()
	for _, want := range []string{"DENY", "[share_class_none] police.criminal_records:", "legal basis: Criminal Records Inquiry Provisions art. 3", e.Revision()} {
		if !strings.Contains(text, want) {
			t.Errorf("explanation lacks %q:\n%s", want, text)
		}
	}
	d, err = e.Decide(context.Background(), query(bob, "enterprise-credit", false, use("police.household.name", out)))
	if err != nil {
		t.Fatal(err)
	}
	text = d.Explain()
	for _, want := range []string{"ALLOW", "[allow_grant] police.household:", "mask police.household.name with surname", "grants: g-bob-household"} {
		if !strings.Contains(text, want) {
			t.Errorf("explanation lacks %q:\n%s", want, text)
		}
	}
	d, err = e.Decide(context.Background(), query(alice, "subsidy-review", true, use("health.insured.annual_claims", agg)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Explain(), "at least 10 distinct persons") || !strings.Contains(d.Explain(), "health.insured: k = 10") {
		t.Errorf("explanation lacks k:\n%s", d.Explain())
	}
}

func TestRunTests(t *testing.T) {
	ctx := context.Background()
	t.Run("embedded and example tests pass", func(t *testing.T) {
		var buf bytes.Buffer
		passed, failed, err := RunTests(ctx, &buf, "examples")
		if err != nil {
			t.Fatal(err)
		}
		if failed != 0 || passed < 20 {
			t.Fatalf("passed=%d failed=%d\n%s", passed, failed, buf.String())
		}
		for _, want := range []string{"PASS data.sluice.authz_test.test_share_class_none_cites_legal_basis", "PASS data.custom_test.no_night_queries.test_sensitive_column_at_night_denied"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, buf.String())
			}
		}
	})
	t.Run("a failing test is reported", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"mine_test.rego": "package custom_test.mine\n\nimport data.sluice.authz\n\ntest_auditor_allowed if {\n\tauthz.allow with input as {\"principal\": {\"role\": \"auditor\"}}\n}\n\ntest_auditor_denied if {\n\tnot authz.allow with input as {\"principal\": {\"role\": \"auditor\"}}\n}\n",
		})
		var buf bytes.Buffer
		_, failed, err := RunTests(ctx, &buf, dir)
		if err != nil {
			t.Fatal(err)
		}
		if failed != 1 {
			t.Fatalf("failed = %d, want 1\n%s", failed, buf.String())
		}
		if !strings.Contains(buf.String(), "FAIL data.custom_test.mine.test_auditor_allowed") || !strings.Contains(buf.String(), "PASS data.custom_test.mine.test_auditor_denied") {
			t.Errorf("output:\n%s", buf.String())
		}
	})
	t.Run("a test file that does not parse is an error", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"x_test.rego": "package x\n\ntest_x if {\n"})
		_, _, err := RunTests(ctx, &bytes.Buffer{}, dir)
		if sluice.ErrorCode(err) != sluice.EInvalid || !strings.Contains(err.Error(), "x_test.rego") {
			t.Fatalf("want invalid naming the file, got %v", err)
		}
	})
}

// TestAggregatesCannotSingleOut: the attacks under alice's
// aggregate-only grant (k = 10) are refused, each with a reason naming the
// rule, dataset and column, and what is allowed instead.
func TestAggregatesCannotSingleOut(t *testing.T) {
	e := demoEngine(t)
	const (
		dist  = sluice.UseDistinctAggregate
		ostat = sluice.UseOrderStatistic
		expr  = sluice.UseAggregateExpression
	)
	joined := func(cols ...sluice.ColumnUsage) Input {
		return query(alice, "subsidy-review", true,
			append([]sluice.ColumnUsage{use("civil.residents.id_card", join), use("health.insured.id_card", join)}, cols...)...)
	}
	type want struct{ rule, dataset, column, mentions string }
	tests := []struct {
		name string
		in   Input
		want []want
	}{
		{
			name: "SUM(CASE WHEN r.phone = '...' THEN i.annual_claims ELSE 0 END)",
			in:   joined(use("civil.residents.phone", pred, expr), use("health.insured.annual_claims", expr)),
			want: []want{
				{"aggregate_expression", "civil.residents", "phone", "health.insured with k = 10"},
				{"aggregate_expression", "health.insured", "annual_claims", "e.g. SUM(annual_claims) or AVG(annual_claims)"},
			},
		},
		{
			name: "MAX(annual_claims)",
			in:   query(alice, "subsidy-review", true, use("health.insured.annual_claims", ostat), use("health.insured.insurance_type", grp, out)),
			want: []want{{"order_statistic", "health.insured", "annual_claims", "COUNT, SUM and AVG of the bare column"}},
		},
		{
			name: "MAX(CASE WHEN ... THEN chronic_disease*1000 + hospital_visits END)",
			in: query(alice, "subsidy-review", true, use("health.insured.insurance_type", pred, expr),
				use("health.insured.chronic_disease", expr), use("health.insured.hospital_visits", expr)),
			want: []want{
				{"aggregate_expression", "health.insured", "chronic_disease", "Move conditions to WHERE"},
				{"aggregate_expression", "health.insured", "hospital_visits", "Move conditions to WHERE"},
				{"aggregate_expression", "health.insured", "insurance_type", "bare column or *"},
			},
		},
		{
			name: "SUM(CASE WHEN annual_claims > 100000 THEN 1 ELSE 0 END)",
			in:   query(alice, "subsidy-review", true, use("health.insured.annual_claims", pred, expr)),
			want: []want{{"aggregate_expression", "health.insured", "annual_claims", "inside an aggregate it may appear only as the bare argument"}},
		},
		{
			name: "MAX(r.monthly_allowance) per insurance_type, on alice's own column",
			in:   joined(use("civil.residents.monthly_allowance", ostat), use("health.insured.insurance_type", grp, out)),
			want: []want{{"order_statistic", "civil.residents", "monthly_allowance", "your own department's"}},
		},
		{
			name: "COUNT(DISTINCT annual_claims)",
			in:   query(alice, "subsidy-review", true, use("health.insured.annual_claims", dist), use("health.insured.insurance_type", grp, out)),
			want: []want{{"distinct_aggregate", "health.insured", "annual_claims", "without DISTINCT"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow || len(d.Protected) != 0 || d.MinGroupSize != 0 {
				t.Fatalf("want a denial without obligations:\n%s", d.Explain())
			}
			if len(d.Reasons) != len(tt.want) {
				t.Fatalf("got %d reasons, want %d:\n%s", len(d.Reasons), len(tt.want), d.Explain())
			}
			for i, w := range tt.want {
				r := d.Reasons[i]
				if r.Rule != w.rule || r.Dataset != w.dataset || r.Column != w.column || !strings.Contains(r.Message, w.mentions) {
					t.Errorf("reason %d = %+v, want %s on %s.%s mentioning %q", i, r, w.rule, w.dataset, w.column, w.mentions)
				}
			}
		})
	}

	t.Run("bare aggregates and COUNT(DISTINCT) of a plain column are allowed", func(t *testing.T) {
		d, err := e.Decide(context.Background(), joined(use("civil.residents.district", grp, out), use("civil.residents.gender", dist),
			use("health.insured.annual_claims", agg), use("health.insured.chronic_disease", agg, pred)))
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allow || d.MinGroupSize != 10 || len(d.Protected) != 1 || d.Protected["health.insured"] != 10 {
			t.Fatalf("want an allow with health.insured protected at k = 10, got protected %v:\n%s", d.Protected, d.Explain())
		}
	})
	t.Run("without a protected dataset the owner's MIN and CASE are allowed", func(t *testing.T) {
		d, err := e.Decide(context.Background(), query(alice, "subsidy-review", true,
			use("civil.residents.monthly_allowance", ostat, expr), use("civil.residents.phone", pred, expr), use("civil.residents.district", grp, out)))
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allow || d.MinGroupSize != 0 || d.Protected == nil || len(d.Protected) != 0 {
			t.Fatalf("want an unprotected allow, got protected %v:\n%s", d.Protected, d.Explain())
		}
	})
}

// TestProtectedDecoding: "protected" is decoded into Decision.Protected,
// never nil, and the decision's shape stays strict.
func TestProtectedDecoding(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		doc := map[string]any{
			"allow": true, "reasons": []any{}, "masks": map[string]any{}, "min_group_size": 25,
			"grants": []any{"g"}, "row_cap": 0, "dp": []any{},
		}
		for k, v := range extra {
			doc[k] = v
		}
		return doc
	}
	d, err := decodeDecision(base(map[string]any{"protected": map[string]any{"civil.residents": 25, "health.insured": 10}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Protected) != 2 || d.Protected["civil.residents"] != 25 || d.Protected["health.insured"] != 10 {
		t.Fatalf("protected = %v", d.Protected)
	}
	for name, doc := range map[string]map[string]any{
		"missing": base(nil),
		"null":    base(map[string]any{"protected": nil}),
		"empty":   base(map[string]any{"protected": map[string]any{}}),
	} {
		d, err := decodeDecision(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.Protected == nil || len(d.Protected) != 0 {
			t.Errorf("%s: protected = %#v, want an empty map", name, d.Protected)
		}
	}
	if _, err := decodeDecision(base(map[string]any{"protected": map[string]any{"x": "ten"}})); sluice.ErrorCode(err) != sluice.EInternal {
		t.Errorf("a non-integer k: want internal, got %v", err)
	}
	if _, err := decodeDecision(base(map[string]any{"protected": map[string]any{}, "surprise": 1})); sluice.ErrorCode(err) != sluice.EInternal {
		t.Errorf("an unknown field: want internal, got %v", err)
	}

	// Through the policy: two protected datasets with different k; on deny
	// the map is empty.
	ctx := context.Background()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	year := 365 * 24 * time.Hour
	grants := []sluice.Grant{
		{ID: "g-civil", Grantee: "dept:market", Dataset: "civil.residents", Columns: []string{"*"}, Purpose: "enterprise-credit",
			ValidFrom: now.Add(-year), ValidUntil: now.Add(year), Mode: sluice.ModeAggregate, K: 25},
		{ID: "g-health", Grantee: "dept:market", Dataset: "health.insured", Columns: []string{"*"}, Purpose: "enterprise-credit",
			ValidFrom: now.Add(-year), ValidUntil: now.Add(year), Mode: sluice.ModeRows},
	}
	if err := e.Update(ctx, demoCatalog(t), demoPurposes, grants); err != nil {
		t.Fatal(err)
	}
	cols := []sluice.ColumnUsage{
		use("civil.residents.id_card", join), use("civil.residents.district", grp, out),
		use("health.insured.id_card", join), use("health.insured.annual_claims", agg),
	}
	d, err = e.Decide(ctx, query(bob, "enterprise-credit", true, cols...))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.MinGroupSize != 25 || len(d.Protected) != 2 || d.Protected["civil.residents"] != 25 || d.Protected["health.insured"] != 10 {
		t.Fatalf("want civil.residents k = 25 and health.insured k = 10, got %v:\n%s", d.Protected, d.Explain())
	}
	for _, want := range []string{"civil.residents: k = 25", "health.insured: k = 10"} {
		if !strings.Contains(d.Explain(), want) {
			t.Errorf("explanation lacks %q:\n%s", want, d.Explain())
		}
	}
	d, err = e.Decide(ctx, query(bob, "enterprise-credit", true, append(cols, use("health.insured.hospital_visits", sluice.UseOrderStatistic))...))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || d.Protected == nil || len(d.Protected) != 0 || d.MinGroupSize != 0 {
		t.Fatalf("want a denial with no protected datasets, got %v:\n%s", d.Protected, d.Explain())
	}
}

// TestNoPrivacyUnit: a protected dataset must declare a unique join key.
func TestNoPrivacyUnit(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cat := demoCatalog(t)
	cat.Dataset("health", "insured").Column("id_card").Unique = false
	if err := e.Update(ctx, cat, demoPurposes, demoGrants()); err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(ctx, query(alice, "subsidy-review", true, use("health.insured.annual_claims", agg), use("health.insured.insurance_type", grp, out)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || !slices.Equal(ruleSet(d), []string{"no_privacy_unit"}) {
		t.Fatalf("want no_privacy_unit:\n%s", d.Explain())
	}
	r := d.Reasons[0]
	if r.Dataset != "health.insured" || r.Column != "" || r.LegalBasis != "" || !strings.Contains(r.Message, "unique: true") {
		t.Errorf("reason = %+v", r)
	}
}

// TestWithDPGrades: the option is validated and normalised, reaches the
// data document, and makes columns of those grades need a budget.
func TestWithDPGrades(t *testing.T) {
	ctx := context.Background()
	for _, bad := range [][]string{{"L5"}, {""}, {"L4", "secret"}, {"4"}} {
		_, err := New(ctx, WithDPGrades(bad...))
		if sluice.ErrorCode(err) != sluice.EInvalid || !strings.Contains(err.Error(), "L1, L2, L3 and L4") {
			t.Errorf("WithDPGrades(%q): want invalid naming the grades, got %v", bad, err)
		}
	}
	plain := demoEngine(t)
	if !strings.Contains(string(plain.Data()), `"dp_grades":[]`) {
		t.Errorf("data document without dp grades: %s", plain.Data())
	}
	e := demoEngine(t, WithDPGrades("l4", " L4"), WithDPGrades("L3"))
	if !strings.Contains(string(e.Data()), `"dp_grades":["L3","L4"]`) {
		t.Errorf("data document lacks the normalised dp grades: %s", e.Data())
	}
	if e.Revision() == plain.Revision() {
		t.Errorf("dp grades did not change the revision")
	}

	in := query(alice, "subsidy-review", true, use("health.insured.insurance_type", grp, out), use("health.insured.annual_claims", agg))
	d, err := plain.Decide(ctx, in)
	if err != nil || !d.Allow {
		t.Fatalf("without dp grades: %v\n%v", err, d)
	}
	d, err = e.Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || !slices.Equal(ruleSet(d), []string{"dp_required"}) || d.Reasons[0].Column != "annual_claims" ||
		!strings.Contains(d.Reasons[0].Message, "graded L4") || !strings.Contains(d.Reasons[0].Message, "differential-privacy budget") {
		t.Fatalf("want dp_required on annual_claims:\n%s", d.Explain())
	}

	// The catalog flag alone, and a grant with a budget that lifts it.
	cat := demoCatalog(t)
	cat.Dataset("health", "insured").Column("annual_claims").DPRequired = true
	grants := demoGrants()
	if err := plain.Update(ctx, cat, demoPurposes, grants); err != nil {
		t.Fatal(err)
	}
	d, err = plain.Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || !slices.Equal(ruleSet(d), []string{"dp_required"}) || !strings.Contains(d.Reasons[0].Message, "marks it dp_required") {
		t.Fatalf("want dp_required by the catalog flag:\n%s", d.Explain())
	}
	grants[0].Epsilon, grants[0].EpsilonPerQuery = 1, 0.1
	if err := plain.Update(ctx, cat, demoPurposes, grants); err != nil {
		t.Fatal(err)
	}
	d, err = plain.Decide(ctx, in)
	if err != nil || !d.Allow || len(d.DP) != 1 {
		t.Fatalf("a grant with a budget must allow: %v\n%v", err, d)
	}
}
