package sluice

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigError says which file and field of a configuration is wrong and what
// to do about it.
type ConfigError struct {
	File    string
	Field   string
	Problem string
}

func (e *ConfigError) Error() string {
	if e.File == "" {
		// Checked outside any file (a classification sent to the admin API).
		if e.Field == "" {
			return e.Problem
		}
		return e.Field + ": " + e.Problem
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Problem)
}

// identifier is what department, dataset and column names must look like, so
// that they can be written in SQL without quoting and rendered in any dialect.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidIdentifier reports whether s can name a department, dataset or column.
func ValidIdentifier(s string) bool { return identifier.MatchString(s) }

// LoadDepartment reads and validates one department configuration file.
// Relative source DSNs of SQLite files and certificate paths are resolved
// against the file's folder.
func LoadDepartment(path string) (*Department, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Problem: fmt.Sprintf("cannot read: %v", err)}
	}
	d, err := ParseDepartment(path, raw)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for i := range d.Sources {
		if d.Sources[i].Driver == DriverSQLite {
			d.Sources[i].DSN = resolvePath(dir, d.Sources[i].DSN)
		}
		if fs := d.Sources[i].FlightSQL; fs != nil {
			fs.TLS.CAFile, fs.TLS.CertFile, fs.TLS.KeyFile = resolvePath(dir, fs.TLS.CAFile), resolvePath(dir, fs.TLS.CertFile), resolvePath(dir, fs.TLS.KeyFile)
		}
	}
	d.Agent.TLSCert = resolvePath(dir, d.Agent.TLSCert)
	d.Agent.TLSKey = resolvePath(dir, d.Agent.TLSKey)
	if d.Agent.AuditLog == "" {
		d.Agent.AuditLog = d.ID + "-agent-audit.db"
	}
	if d.Agent.SigningKey == "" {
		d.Agent.SigningKey = d.ID + "-agent.key"
	}
	if d.Agent.UnitKey == "" {
		d.Agent.UnitKey = d.ID + "-agent-unit.key"
	}
	d.Agent.UnitKey = resolvePath(dir, d.Agent.UnitKey)
	d.Agent.AuditLog = resolvePath(dir, d.Agent.AuditLog)
	d.Agent.SigningKey = resolvePath(dir, d.Agent.SigningKey)
	d.Agent.Registry = resolvePath(dir, d.Agent.Registry)
	return d, nil
}

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "file:") || p == ":memory:" {
		return p
	}
	return filepath.Join(dir, p)
}

// ParseDepartment decodes and validates a department configuration. name is
// used in error messages only. Unknown fields are errors, so a typo never
// silently drops a classification.
func ParseDepartment(name string, raw []byte) (*Department, error) {
	var d Department
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, &ConfigError{File: name, Problem: "not valid department YAML: " + yamlMessage(err)}
	}
	if err := d.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = name
		}
		return nil, err
	}
	return &d, nil
}

func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// Validate checks a department and its datasets; the error names the field.
func (d *Department) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if !ValidIdentifier(d.ID) {
		return bad("department", "must be an identifier (letters, digits, underscore; not starting with a digit), got %q", d.ID)
	}
	if d.Agent.MaxConcurrent < 0 {
		return bad("agent.max_concurrent", "must not be negative (0 means four per CPU core), got %d", d.Agent.MaxConcurrent)
	}
	if err := validListen(d.Agent.MetricsListen); err != "" {
		return bad("agent.metrics_listen", "%s", err)
	}
	if d.Agent.MetricsListen != "" && d.Agent.MetricsListen == d.Agent.Address {
		return bad("agent.metrics_listen", "must differ from agent.address (%s): the Flight service and the metrics listener cannot share a port", d.Agent.Address)
	}
	if field, problem := d.Agent.Tracing.Check(); field != "" {
		return bad("agent.tracing."+field, "%s", problem)
	}
	sources := map[string]bool{}
	for i, s := range d.Sources {
		f := fmt.Sprintf("sources[%d]", i)
		if s.Name == "" {
			return bad(f+".name", "is required")
		}
		if sources[s.Name] {
			return bad(f+".name", "source %q is declared twice", s.Name)
		}
		sources[s.Name] = true
		switch s.Driver {
		case DriverSQLite, DriverPostgres, DriverMySQL, DriverFlightSQL:
		default:
			return bad(f+".driver", "must be one of sqlite, postgres, mysql, flightsql; got %q", s.Driver)
		}
		if field, problem := s.checkFlightSQL(); field != "" {
			return bad(f+"."+field, "%s", problem)
		}
		if s.DSN == "" && s.Driver != DriverFlightSQL {
			return bad(f+".dsn", "is required (a file path for sqlite, a URL or DSN for postgres and mysql)")
		}
	}
	names := map[string]bool{}
	for i, ds := range d.Datasets {
		f := fmt.Sprintf("datasets[%d]", i)
		if ds == nil {
			return bad(f, "is empty")
		}
		ds.Department = d.ID
		if !ValidIdentifier(ds.Name) {
			return bad(f+".name", "must be an identifier, got %q", ds.Name)
		}
		f = fmt.Sprintf("datasets[%s]", ds.Name)
		if names[strings.ToLower(ds.Name)] {
			return bad(f+".name", "dataset %q is declared twice", ds.Name)
		}
		names[strings.ToLower(ds.Name)] = true
		if len(d.Sources) > 0 || ds.Source != "" {
			if ds.Source == "" && len(d.Sources) == 1 {
				ds.Source = d.Sources[0].Name
			}
			if !sources[ds.Source] {
				return bad(f+".source", "names no declared source (got %q); declare it under sources", ds.Source)
			}
		}
		if ds.Table == "" {
			ds.Table = ds.Name
		}
		if !validTableName(ds.Table) {
			return bad(f+".table", "must be a table name, optionally schema-qualified (schema.table), got %q", ds.Table)
		}
		switch ds.ShareClass {
		case ShareUnconditional:
		case ShareConditional, ShareNone:
			if strings.TrimSpace(ds.LegalBasis) == "" {
				return bad(f+".legal_basis", "is required for share class %s: cite the law or policy that restricts sharing", ds.ShareClass)
			}
		default:
			return bad(f+".share_class", "must be one of unconditional, conditional, none; got %q", ds.ShareClass)
		}
		if len(ds.Columns) == 0 {
			return bad(f+".columns", "at least one column is required")
		}
		cols := map[string]bool{}
		for j, c := range ds.Columns {
			cf := fmt.Sprintf("%s.columns[%d]", f, j)
			if c == nil {
				return bad(cf, "is empty")
			}
			if !ValidIdentifier(c.Name) {
				return bad(cf+".name", "must be an identifier, got %q", c.Name)
			}
			if strings.HasPrefix(strings.ToLower(c.Name), "__sluice_") {
				return bad(cf+".name", "names starting with __sluice_ are reserved for the columns Sluice adds to results; rename %q", c.Name)
			}
			cf = fmt.Sprintf("%s.columns[%s]", f, c.Name)
			if cols[strings.ToLower(c.Name)] {
				return bad(cf, "column %q is declared twice", c.Name)
			}
			cols[strings.ToLower(c.Name)] = true
			if err := c.validate(); err != nil {
				return bad(cf+"."+err.field, "%s", err.problem)
			}
		}
	}
	return nil
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

func validTableName(s string) bool { return tableName.MatchString(s) }

type fieldProblem struct{ field, problem string }

func (c *Column) validate() *fieldProblem {
	switch c.Type {
	case TypeInteger, TypeFloat, TypeDecimal, TypeText, TypeBoolean, TypeDate, TypeTimestamp:
	default:
		return &fieldProblem{"type", fmt.Sprintf("must be one of integer, float, decimal, text, boolean, date, timestamp; got %q", c.Type)}
	}
	switch c.Grade {
	case GradeL1, GradeL2, GradeL3, GradeL4:
	default:
		return &fieldProblem{"grade", fmt.Sprintf("must be one of L1, L2, L3, L4; got %q", c.Grade)}
	}
	if !ValidRelease(c.Release) {
		return &fieldProblem{"release", fmt.Sprintf("must be one of plain, masked, aggregate, join_key, hidden; got %q", c.Release)}
	}
	if c.Release == ReleaseMasked {
		switch c.Mask {
		case MaskIDCard, MaskPhone, MaskSurname, MaskRedact:
			if c.Type != TypeText {
				return &fieldProblem{"mask", fmt.Sprintf("mask %s applies to text columns, but the column is %s", c.Mask, c.Type)}
			}
		case MaskYear:
			if c.Type != TypeDate && c.Type != TypeTimestamp {
				return &fieldProblem{"mask", fmt.Sprintf("mask year applies to date or timestamp columns, but the column is %s", c.Type)}
			}
		case "":
			return &fieldProblem{"mask", "is required for a masked column: one of id_card, phone, surname, year, redact"}
		default:
			return &fieldProblem{"mask", fmt.Sprintf("must be one of id_card, phone, surname, year, redact; got %q", c.Mask)}
		}
	} else if c.Mask != "" {
		return &fieldProblem{"mask", fmt.Sprintf("is only allowed on masked columns (release is %s)", c.Release)}
	}
	if c.Release == ReleaseJoinKey && c.KeyDomain == "" {
		return &fieldProblem{"key_domain", "is required for a join_key column (e.g. person, enterprise): only keys of the same domain can be joined"}
	}
	return nil
}

// validListen checks an optional host:port to listen on; the problem, or
// "".
func validListen(addr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port (e.g. 127.0.0.1:9465; an empty host listens on every interface), got %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("the port of %q must be a number from 1 to 65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Sprintf("the host of %q is not a host name or IP address", addr)
	}
	return ""
}
