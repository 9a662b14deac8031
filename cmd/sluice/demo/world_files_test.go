package demo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

func writeTemp(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkConfigError asserts that err names the file and the field, is a
// ConfigError underneath and carries the code invalid.
func checkConfigError(t *testing.T, err error, path, field, problem string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %s", field)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, path+": ") {
		t.Errorf("error %q does not start with the file name", msg)
	}
	if !strings.Contains(msg, field) {
		t.Errorf("error %q does not name field %q", msg, field)
	}
	if !strings.Contains(msg, problem) {
		t.Errorf("error %q does not say %q", msg, problem)
	}
	var ce *sluice.ConfigError
	if !errors.As(err, &ce) || ce.File != path {
		t.Errorf("error %q is not a ConfigError for the file", msg)
	}
	if sluice.ErrorCode(err) != sluice.EInvalid {
		t.Errorf("code = %s, want invalid", sluice.ErrorCode(err))
	}
}

func TestLoadPurposesErrors(t *testing.T) {
	tests := []struct {
		name, body, field, problem string
	}{
		{"not a list", "code: x\n", "", "must be a YAML list of purposes"},
		{"not YAML", "- code: [\n", "", "not valid YAML"},
		{"item not a mapping", "- subsidy-review\n", "purposes[0]", "must be a mapping"},
		{"missing code", "- name: 低保\n", "purposes[0].code", "is required"},
		{"bad code", "- code: 'subsidy review'\n  name: x\n", "purposes[0] (subsidy review).code", "must be letters"},
		{"leading dash", "- code: -x\n  name: x\n", "purposes[0] (-x).code", "must be letters"},
		{"duplicate", "- code: a\n  name: x\n- code: A\n  name: y\n", "purposes[1] (A).code", "already declared at purposes[0]"},
		{"missing name", "- code: a\n  name: ' '\n", "purposes[0] (a).name", "is required"},
		{"unknown field", "- code: a\n  name: x\n  legal_dutie: y\n", "purposes[0] (a).legal_dutie", "unknown field"},
		{"duplicate field", "- code: a\n  name: x\n  name: y\n", "purposes[0] (a).name", "is given twice"},
		{"wrong type", "- code: a\n  name: [x]\n", "purposes[0] (a).name", "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "purposes.yaml", tt.body)
			_, err := sluice.LoadPurposes(path)
			checkConfigError(t, err, path, tt.field, tt.problem)
		})
	}
}

func TestLoadPurposesOK(t *testing.T) {
	tests := []struct {
		name, body string
		want       int
	}{
		{"empty file", "", 0},
		{"only a comment", "# none yet\n", 0},
		{"empty list", "[]\n", 0},
		{"two", "- code: subsidy-review\n  name: 低保资格复核\n- code: public_health\n  name: 公共卫生\n  legal_duty: 法\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := sluice.LoadPurposes(writeTemp(t, "p.yaml", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != tt.want {
				t.Fatalf("%d purposes, want %d", len(ps), tt.want)
			}
		})
	}
	if _, err := sluice.LoadPurposes(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: err = %v", err)
	}
}

// grantYAML renders one grant with fields overridden or removed (value "-").
func grantYAML(over map[string]string) string {
	fields := []struct{ k, v string }{
		{"id", "g1"}, {"grantee", "alice"}, {"dataset", "health.insured"}, {"columns", "[id_card, chronic_disease]"},
		{"purpose", "subsidy-review"}, {"valid_from", "2026-01-01T00:00:00Z"}, {"valid_until", "2026-07-01T00:00:00Z"},
		{"mode", "aggregate"}, {"k", "10"},
	}
	var b strings.Builder
	b.WriteString("- ")
	for i, f := range fields {
		v := f.v
		if o, ok := over[f.k]; ok {
			v = o
		}
		if v == "-" {
			continue
		}
		if i > 0 && b.Len() > 2 {
			b.WriteString("  ")
		}
		b.WriteString(f.k + ": " + v + "\n")
	}
	for k, v := range over {
		if k == "extra" {
			b.WriteString("  " + v + "\n")
		}
	}
	return b.String()
}

func TestLoadGrantsErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		field   string
		problem string
	}{
		{"not a list", "id: g1\n", "", "must be a YAML list of grants"},
		{"missing id", grantYAML(map[string]string{"id": "-"}), "grants[0].id", "is required"},
		{"duplicate id", grantYAML(nil) + grantYAML(nil), "grants[1] (g1).id", `grant "g1" is already declared at grants[0]`},
		{"missing grantee", grantYAML(map[string]string{"grantee": "-"}), "grants[0] (g1).grantee", "is required"},
		{"bad grantee", grantYAML(map[string]string{"grantee": "'alice smith'"}), "grants[0] (g1).grantee", "must be a user name or dept:"},
		{"bad dept grantee", grantYAML(map[string]string{"grantee": "'dept:'"}), "grants[0] (g1).grantee", "dept: must be followed by a department id"},
		{"dataset without department", grantYAML(map[string]string{"dataset": "insured"}), "grants[0] (g1).dataset", "must be department.dataset"},
		{"dataset with three parts", grantYAML(map[string]string{"dataset": "a.b.c"}), "grants[0] (g1).dataset", "must be department.dataset"},
		{"no columns", grantYAML(map[string]string{"columns": "[]"}), "grants[0] (g1).columns", "at least one column"},
		{"missing columns", grantYAML(map[string]string{"columns": "-"}), "grants[0] (g1).columns", "at least one column"},
		{"bad column", grantYAML(map[string]string{"columns": "[id_card, 'a b']"}), "grants[0] (g1).columns[1]", "must be a column name"},
		{"repeated column", grantYAML(map[string]string{"columns": "[id_card, ID_CARD]"}), "grants[0] (g1).columns[1]", "listed twice"},
		{"columns not a list", grantYAML(map[string]string{"columns": "id_card"}), "grants[0] (g1).columns", "must be a list"},
		{"missing purpose", grantYAML(map[string]string{"purpose": "-"}), "grants[0] (g1).purpose", "is required"},
		{"bad purpose", grantYAML(map[string]string{"purpose": "'a b'"}), "grants[0] (g1).purpose", "must be a purpose code"},
		{"missing valid_from", grantYAML(map[string]string{"valid_from": "-"}), "grants[0] (g1).valid_from", "is required"},
		{"missing valid_until", grantYAML(map[string]string{"valid_until": "-"}), "grants[0] (g1).valid_until", "is required"},
		{"until before from", grantYAML(map[string]string{"valid_until": "2025-12-31"}), "grants[0] (g1).valid_until", "must be after valid_from"},
		{"until equals from", grantYAML(map[string]string{"valid_until": "2026-01-01T00:00:00Z"}), "grants[0] (g1).valid_until", "must be after valid_from"},
		{"bad time", grantYAML(map[string]string{"valid_from": "tomorrow"}), "grants[0] (g1).valid_from", "must be a time"},
		{"missing mode", grantYAML(map[string]string{"mode": "-"}), "grants[0] (g1).mode", "is required"},
		{"bad mode", grantYAML(map[string]string{"mode": "all"}), "grants[0] (g1).mode", `must be rows or aggregate, got "all"`},
		{"negative k", grantYAML(map[string]string{"k": "-1"}), "grants[0] (g1).k", "must be 0 or more"},
		{"k not a number", grantYAML(map[string]string{"k": "ten"}), "grants[0] (g1).k", "must be a whole number"},
		{"unknown field", grantYAML(map[string]string{"extra": "expires: 2027-01-01"}), "grants[0] (g1).expires", "unknown field"},
		{"second grant", grantYAML(nil) + grantYAML(map[string]string{"id": "g2", "mode": "rowz"}), "grants[1] (g2).mode", "must be rows or aggregate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "grants.yaml", tt.body)
			_, err := sluice.LoadGrants(path)
			checkConfigError(t, err, path, tt.field, tt.problem)
		})
	}
}

func TestLoadGrantsDefaults(t *testing.T) {
	tests := []struct {
		name  string
		over  map[string]string
		wantK int
	}{
		{"aggregate without k gets the default", map[string]string{"k": "-"}, sluice.DefaultGrantK},
		{"aggregate with k 0 gets the default", map[string]string{"k": "0"}, sluice.DefaultGrantK},
		{"aggregate keeps its k", map[string]string{"k": "25"}, 25},
		{"rows without k stays 0", map[string]string{"mode": "rows", "k": "-"}, 0},
		{"quoted times", map[string]string{"valid_from": `"2026-01-01T08:00:00+08:00"`, "valid_until": `'2026-03-01'`}, sluice.DefaultGrantK},
		{"department grantee and date-only times", map[string]string{"grantee": "'dept:civil'", "valid_from": "2026-01-01", "valid_until": "2026-02-01"}, sluice.DefaultGrantK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, err := sluice.LoadGrants(writeTemp(t, "grants.yaml", grantYAML(tt.over)))
			if err != nil {
				t.Fatal(err)
			}
			if len(gs) != 1 || gs[0].K != tt.wantK {
				t.Fatalf("grants = %+v, want one with k %d", gs, tt.wantK)
			}
			if !gs[0].ValidUntil.After(gs[0].ValidFrom) || gs[0].ValidFrom.Before(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("times = %v .. %v", gs[0].ValidFrom, gs[0].ValidUntil)
			}
		})
	}
}
