package sluice

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// The seed corpora of these targets (testdata/fuzz/Fuzz*) hold the demo
// world's own files, as 'sluice demo' writes them; CI runs each briefly
// (.ci/run).

// wantConfigError fails unless err is a *ConfigError (with the core's
// EInvalid code when wrapped): every problem with a configuration file
// must name the file and field, never surface as a bare decoder error.
func wantConfigError(t *testing.T, err error) {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *ConfigError, got %T: %v", err, err)
	}
	var se *Error
	if errors.As(err, &se) && se.Code != EInvalid {
		t.Fatalf("a configuration error has code %s, want %s: %v", se.Code, EInvalid, err)
	}
	if ce.Error() == "" {
		t.Fatal("a configuration error with no message")
	}
}

// FuzzParseDepartment feeds arbitrary bytes to the department file parser.
// Any answer is fine except a panic or an error that is not a ConfigError;
// a department it accepts must validate again, make a catalog, and survive
// being written back as YAML and read again (the demo and the registry
// write department files).
func FuzzParseDepartment(f *testing.F) {
	f.Add([]byte(validDept))
	f.Add([]byte("department: civil\nname: x\n"))
	f.Add([]byte("department: [\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := ParseDepartment("fuzz.yaml", raw)
		if err != nil {
			wantConfigError(t, err)
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("a parsed department does not validate again: %v", err)
		}
		if _, err := NewCatalog(d); err != nil {
			var se *Error
			var ce *ConfigError
			if !errors.As(err, &se) && !errors.As(err, &ce) {
				t.Fatalf("NewCatalog of a valid department: untyped error %T: %v", err, err)
			}
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			t.Fatalf("a valid department cannot be written as YAML: %v", err)
		}
		if _, err := ParseDepartment("fuzz-again.yaml", out); err != nil {
			t.Fatalf("a valid department, written back, is refused: %v\n%s", err, out)
		}
	})
}

// fuzzFile is one file per fuzzing process that the loaders read from.
func fuzzFile(f *testing.F, name string) string {
	return filepath.Join(f.TempDir(), name)
}

// FuzzLoadPurposes feeds arbitrary bytes to the purposes file loader.
func FuzzLoadPurposes(f *testing.F) {
	f.Add([]byte("- code: subsidy-review\n  name: Subsidy review\n  legal_duty: Social Assistance Measures, art. 6\n"))
	f.Add([]byte("- code: a\n  name: x\n- code: A\n  name: y\n"))
	f.Add([]byte("purposes: []\n"))
	path := fuzzFile(f, "purposes.yaml")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		ps, err := LoadPurposes(path)
		if err != nil {
			wantConfigError(t, err)
			return
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if p.Code == "" || seen[p.Code] {
				t.Fatalf("accepted a purpose without a code or twice: %+v", ps)
			}
			seen[p.Code] = true
		}
	})
}

// FuzzLoadGrants feeds arbitrary bytes to the grants file loader; an
// accepted grant must pass validateGrant again.
func FuzzLoadGrants(f *testing.F) {
	f.Add([]byte(dpGrant))
	f.Add([]byte("- id: g\n  grantee: alice\n  dataset: civil.residents\n  columns: [district]\n  purpose: p\n  mode: aggregate\n  valid_from: 2026-01-01T00:00:00Z\n  valid_until: 2027-01-01T00:00:00Z\n"))
	f.Add([]byte("- id: g\n  epsilon: .nan\n"))
	path := fuzzFile(f, "grants.yaml")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		gs, err := LoadGrants(path)
		if err != nil {
			wantConfigError(t, err)
			return
		}
		for i := range gs {
			if p := validateGrant(&gs[i]); p != nil {
				t.Fatalf("an accepted grant does not validate again: %s: %s", p.field, p.problem)
			}
		}
	})
}
