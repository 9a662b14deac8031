package sluice

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const dpGrant = `
- id: g-dp
  grantee: bob
  dataset: health.insured
  columns: [insurance_type, annual_claims, hospital_visits]
  purpose: public-health-planning
  valid_from: 2026-01-01
  valid_until: 2026-12-31
  mode: aggregate
  k: 10
`

// TestLoadGrantsClamp: clamp bounds are read from a grants file and every
// malformed bound is refused with the file, the grant and the field.
func TestLoadGrantsClamp(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, extra string
		wantField   string // the field named, e.g. "clamp.annual_claims"
		wantProblem string
		want        map[string]Bounds
	}{
		{name: "valid", extra: "  epsilon: 1\n  epsilon_per_query: 0.25\n  clamp: {annual_claims: [0, 5000], hospital_visits: [-1.5, 30]}\n",
			want: map[string]Bounds{"annual_claims": {0, 5000}, "hospital_visits": {-1.5, 30}}},
		{name: "block style", extra: "  epsilon: 1\n  epsilon_per_query: 0.25\n  clamp:\n    annual_claims:\n      - 0\n      - 5000\n",
			want: map[string]Bounds{"annual_claims": {0, 5000}}},
		{name: "without epsilon", extra: "  clamp: {annual_claims: [0, 5000]}\n", wantField: "clamp", wantProblem: "applies only with epsilon"},
		{name: "lo equals hi", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [100, 100]}\n", wantField: "clamp.annual_claims", wantProblem: "lower bound 100 must be below the upper bound 100"},
		{name: "lo above hi", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [5000, 0]}\n", wantField: "clamp.annual_claims", wantProblem: "must be below"},
		{name: "NaN", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [.nan, 5000]}\n", wantField: "clamp.annual_claims", wantProblem: "finite"},
		{name: "infinite", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [0, .inf]}\n", wantField: "clamp.annual_claims", wantProblem: "finite"},
		{name: "not a granted column", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {chronic_disease: [0, 1]}\n", wantField: "clamp.chronic_disease", wantProblem: "not one of the grant's columns"},
		{name: "not a column name", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {\"a b\": [0, 1]}\n", wantField: "clamp.a b", wantProblem: "must be a column name"},
		{name: "one number", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [5000]}\n", wantField: "clamp", wantProblem: "two numbers [lo, hi]"},
		{name: "three numbers", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [0, 1, 2]}\n", wantField: "clamp", wantProblem: "two numbers [lo, hi]"},
		{name: "not numbers", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [low, high]}\n", wantField: "clamp", wantProblem: "two numbers [lo, hi]"},
		{name: "twice in two spellings", extra: "  epsilon: 1\n  epsilon_per_query: 0.5\n  clamp: {annual_claims: [0, 1], Annual_Claims: [0, 2]}\n", wantField: "clamp.annual_claims", wantProblem: "bounded twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(dpGrant+c.extra), 0o600); err != nil {
				t.Fatal(err)
			}
			gs, err := LoadGrants(path)
			if c.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(gs[0].Clamp) != len(c.want) {
					t.Fatalf("clamp %v, want %v", gs[0].Clamp, c.want)
				}
				for k, v := range c.want {
					if gs[0].Clamp[k] != v {
						t.Fatalf("clamp %v, want %v", gs[0].Clamp, c.want)
					}
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ErrorCode(err) != EInvalid {
				t.Fatalf("want an EInvalid ConfigError, got %v", err)
			}
			if ce.File != path || ce.Field != "grants[0] (g-dp)."+c.wantField || !strings.Contains(ce.Problem, c.wantProblem) {
				t.Fatalf("want field %q saying %q, got field %q: %s", c.wantField, c.wantProblem, ce.Field, ce.Problem)
			}
		})
	}
}

// TestValidateGrantClamp: grants made by the workflow get the same checks.
func TestValidateGrantClamp(t *testing.T) {
	base := func() Grant {
		return Grant{ID: "g", Grantee: "bob", Dataset: "health.insured", Columns: []string{"annual_claims"}, Purpose: "p",
			ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			Mode: ModeAggregate, Epsilon: 1, EpsilonPerQuery: 0.5}
	}
	cases := []struct {
		name  string
		clamp map[string]Bounds
		eps   float64
		want  string
	}{
		{"valid", map[string]Bounds{"ANNUAL_CLAIMS": {0, 10}}, 1, ""},
		{"no epsilon", map[string]Bounds{"annual_claims": {0, 10}}, 0, "clamp applies only with epsilon"},
		{"reversed", map[string]Bounds{"annual_claims": {10, 0}}, 1, "clamp.annual_claims the lower bound 10 must be below"},
		{"negative infinity", map[string]Bounds{"annual_claims": {math.Inf(-1), 0}}, 1, "clamp.annual_claims bounds must be finite"},
		{"unknown column", map[string]Bounds{"visits": {0, 10}}, 1, "clamp.visits column \"visits\" is not one of the grant's columns (annual_claims)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := base()
			g.Clamp = c.clamp
			if c.eps == 0 {
				g.Epsilon, g.EpsilonPerQuery = 0, 0
			}
			err := ValidateGrant(&g)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if ErrorCode(err) != EInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want EInvalid saying %q, got %v", c.want, err)
			}
		})
	}
}

// TestBoundsJSON: the admin API reads bounds strictly; encoding/json on
// its own would turn [-5] into [-5, 0].
func TestBoundsJSON(t *testing.T) {
	cases := []struct {
		in   string
		want Bounds
		ok   bool
	}{
		{`[0, 5000]`, Bounds{0, 5000}, true},
		{`[-2.5, 1e3]`, Bounds{-2.5, 1000}, true},
		{`[-5]`, Bounds{}, false},
		{`[1, 2, 3]`, Bounds{}, false},
		{`null`, Bounds{}, false},
		{`{"lo": 0, "hi": 1}`, Bounds{}, false},
		{`["0", "1"]`, Bounds{}, false},
	}
	for _, c := range cases {
		var m map[string]Bounds
		err := json.Unmarshal([]byte(`{"x": `+c.in+`}`), &m)
		if c.ok != (err == nil) || (c.ok && m["x"] != c.want) {
			t.Errorf("%s: got %v, %v", c.in, m["x"], err)
		}
	}
	raw, err := json.Marshal(Grant{Clamp: map[string]Bounds{"x": {0, 5000}}})
	if err != nil || !strings.Contains(string(raw), `"clamp":{"x":[0,5000]}`) {
		t.Fatalf("marshal: %s %v", raw, err)
	}
}

// TestCheckClamp: with the catalog at hand, bounded columns must exist and
// be numeric, and an integer column needs whole-number bounds.
func TestCheckClamp(t *testing.T) {
	ds := &Dataset{Name: "insured", Department: "health", Columns: []*Column{
		{Name: "insurance_type", Type: TypeText},
		{Name: "annual_claims", Type: TypeDecimal},
		{Name: "hospital_visits", Type: TypeInteger},
		{Name: "score", Type: TypeFloat},
	}}
	cases := []struct {
		name  string
		clamp map[string]Bounds
		want  string
	}{
		{"numeric columns", map[string]Bounds{"annual_claims": {0, 5000.5}, "Hospital_Visits": {0, 30}, "score": {-1.5, 1.5}}, ""},
		{"text column", map[string]Bounds{"insurance_type": {0, 1}}, "items[0].clamp.insurance_type: health.insured.insurance_type is a text column"},
		{"fractional bounds on an integer column", map[string]Bounds{"hospital_visits": {0, 2.5}}, "whole-number bounds"},
		{"missing column", map[string]Bounds{"nope": {0, 1}}, "health.insured has no column \"nope\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckClamp(ds, c.clamp, "items[0]")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if ErrorCode(err) != EInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want EInvalid saying %q, got %v", c.want, err)
			}
		})
	}
}

// TestApplicationClampNamesItsItem: an application's clamp bounds are
// checked per item, the error naming the item, and reach the grants.
func TestApplicationClampNamesItsItem(t *testing.T) {
	a := Application{
		Items: []ApplicationItem{
			{Dataset: "health.insured", Columns: []string{"annual_claims"}, Clamp: map[string]Bounds{"annual_claims": {0, 5000}}},
			{Dataset: "health.visits", Columns: []string{"cost"}, Clamp: map[string]Bounds{"cost": {9, 1}}},
		},
		Applicant: "bob", Department: "market", Purpose: "p", Justification: "for planning the clinics",
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Mode: ModeAggregate, Epsilon: 1, EpsilonPerQuery: 0.5,
	}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "items[1].clamp.cost: the lower bound 9 must be below") {
		t.Fatalf("got %v", err)
	}
	a.Items[1].Clamp["cost"] = Bounds{1, 9}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	a.ID = "app-1"
	gs := a.Grants()
	if gs[0].Clamp["annual_claims"] != (Bounds{0, 5000}) || gs[1].Clamp["cost"] != (Bounds{1, 9}) {
		t.Fatalf("grants carry %v and %v", gs[0].Clamp, gs[1].Clamp)
	}
	a.Epsilon, a.EpsilonPerQuery = 0, 0
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "items[0].clamp: applies only with epsilon") {
		t.Fatalf("without epsilon: %v", err)
	}
}
