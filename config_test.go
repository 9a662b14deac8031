package sluice

import (
	"errors"
	"strings"
	"testing"
)

const validDept = `
department: civil
name: Civil Affairs Bureau
agent:
  address: 127.0.0.1:47471
sources:
  - name: main
    driver: sqlite
    dsn: civil.db
datasets:
  - name: residents
    table: residents
    share_class: conditional
    legal_basis: PIPL Art. 13
    columns:
      - {name: id_card, type: text, grade: L4, release: join_key, key_domain: person}
      - {name: name, type: text, grade: L3, release: masked, mask: surname}
      - {name: birth_date, type: date, grade: L3, release: masked, mask: year}
      - {name: district, type: text, grade: L2, release: plain}
`

func TestParseDepartmentValid(t *testing.T) {
	d, err := ParseDepartment("civil.yaml", []byte(validDept))
	if err != nil {
		t.Fatal(err)
	}
	if d.Datasets[0].Department != "civil" || d.Datasets[0].Source != "main" || len(d.Datasets[0].Columns) != 4 {
		t.Fatalf("unexpected department: %+v", d.Datasets[0])
	}
	cat, err := NewCatalog(d)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Dataset("CIVIL", "Residents") == nil || cat.Dataset("civil", "nope") != nil {
		t.Fatal("catalog lookup is wrong")
	}
}

func TestParseDepartmentErrors(t *testing.T) {
	cases := []struct {
		name, from, to string
		field, want    string
	}{
		{"bad department id", "department: civil", "department: 1civil", "department", "identifier"},
		{"unknown field", "name: Civil Affairs Bureau", "nmae: typo", "", "not found"},
		{"bad driver", "driver: sqlite", "driver: oracle", "sources[0].driver", "sqlite, postgres, mysql"},
		{"empty dsn", "dsn: civil.db", "dsn: \"\"", "sources[0].dsn", "required"},
		{"bad share class", "share_class: conditional", "share_class: maybe", "share_class", "unconditional, conditional, none"},
		{"conditional without legal basis", "legal_basis: PIPL Art. 13", "legal_basis: \"\"", "legal_basis", "cite the law"},
		{"bad column type", "{name: district, type: text", "{name: district, type: varchar", "columns[district].type", "integer, float"},
		{"bad grade", "grade: L2, release: plain}", "grade: L9, release: plain}", "columns[district].grade", "L1, L2, L3, L4"},
		{"bad release", "release: plain}", "release: public}", "columns[district].release", "plain, masked"},
		{"masked without mask", "release: masked, mask: surname}", "release: masked}", "columns[name].mask", "is required"},
		{"mask on plain column", "grade: L2, release: plain}", "grade: L2, release: plain, mask: phone}", "columns[district].mask", "only allowed on masked"},
		{"year mask on text", "type: date, grade: L3, release: masked, mask: year", "type: text, grade: L3, release: masked, mask: year", "columns[birth_date].mask", "date or timestamp"},
		{"join key without domain", "release: join_key, key_domain: person}", "release: join_key}", "columns[id_card].key_domain", "required"},
		{"duplicate column", "{name: district, type: text", "{name: NAME, type: text", "columns[NAME]", "declared twice"},
		{"injection in table name", "table: residents", "table: \"residents; DROP TABLE x\"", "table", "table name"},
		{"unknown source", "    table: residents", "    source: other\n    table: residents", "source", "no declared source"},
		{"not yaml", "datasets:", "datasets: [", "", "not valid department YAML"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(validDept, tc.from) {
				t.Fatalf("test setup: %q not in the valid config", tc.from)
			}
			raw := strings.Replace(validDept, tc.from, tc.to, 1)
			_, err := ParseDepartment("civil.yaml", []byte(raw))
			if err == nil {
				t.Fatal("want an error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want *ConfigError, got %T: %v", err, err)
			}
			if ce.File != "civil.yaml" {
				t.Fatalf("error does not name the file: %v", err)
			}
			if tc.field != "" && !strings.Contains(ce.Field, tc.field) {
				t.Fatalf("field %q does not contain %q (%v)", ce.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestLoadDepartmentMissingFile(t *testing.T) {
	_, err := LoadDepartment("/nonexistent/dept.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/dept.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}
