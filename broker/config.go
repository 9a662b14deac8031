package broker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// Config is the broker's configuration file. Relative paths are resolved
// against the file's folder.
type Config struct {
	// Listen is host:port of the Flight SQL service.
	Listen string `yaml:"listen"`
	// AdminListen is host:port of the admin API (HTTPS, same certificate and
	// tokens); empty disables it.
	AdminListen string `yaml:"admin_listen"`
	// TLSCert and TLSKey are the broker's certificate, used as the server
	// certificate for analysts and the client certificate towards agents.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Store holds the broker's state: catalog, purposes, users and tokens,
	// applications, grants, budgets, error reports and the audit log. A
	// SQLite file path, or a postgres:// URL for PostgreSQL.
	Store string `yaml:"store"`
	// Departments are department configuration files imported into the
	// catalog (again whenever a file changes); departments can also be
	// registered through the admin API.
	Departments []string `yaml:"departments"`
	// Users (JSON, users with SHA-256 hashes of their tokens), Purposes and
	// Grants (YAML) are imported into the store once each item; afterwards
	// the admin API manages them (see docs/configuration.md).
	Users    string `yaml:"users"`
	Purposes string `yaml:"purposes"`
	Grants   string `yaml:"grants"`
	// Calendar is the working-day calendar review deadlines are counted on.
	Calendar sluice.CalendarConfig `yaml:"calendar"`
	// PolicyDir holds the security team's additional .rego files.
	PolicyDir string `yaml:"policy_dir"`
	// SigningKey is the broker's Ed25519 key that signs audit checkpoints
	// (created if missing; its public key is written beside it as .pub).
	SigningKey string `yaml:"signing_key"`
	// PQSigningKey optionally adds an ML-DSA-65 signature to each checkpoint
	// for long-term, post-quantum evidence.
	PQSigningKey string `yaml:"pq_signing_key"`
	// CheckpointEntries and CheckpointInterval: sign the chain head every N
	// entries or T (defaults 100 and 10s).
	CheckpointEntries  int           `yaml:"checkpoint_entries"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Retention moves entries older than this to compressed archives in
	// ArchiveDir (checked hourly); zero keeps everything in the store.
	Retention  time.Duration `yaml:"retention"`
	ArchiveDir string        `yaml:"archive_dir"`
	// The sandbox engine (embedded DuckDB) runs each cross-department
	// query with its own limits (0 = the engine's defaults): memory
	// (beyond it, joins, aggregates and inputs spill to disk), threads,
	// the directory spill files go under, how much may be spilled, and the
	// time. Exceeding the spill or time limit ends the query with
	// ResourceExhausted naming the limit.
	SandboxMemoryMiB   int64         `yaml:"sandbox_memory_mib"`
	SandboxThreads     int           `yaml:"sandbox_threads"`
	SandboxSpillDir    string        `yaml:"sandbox_spill_dir"`
	SandboxMaxSpillMiB int64         `yaml:"sandbox_max_spill_mib"`
	SandboxTimeout     time.Duration `yaml:"sandbox_timeout"`
	// Alerts is an optional alert rules file (defaults apply without it).
	Alerts string `yaml:"alerts"`
	// DefaultK is the minimum group size, in persons, for aggregate-level
	// columns.
	DefaultK int `yaml:"default_k"`
	// DPGrades are the grades (L1..L4) whose columns other departments
	// may use only under a differential-privacy budget, besides the
	// columns the catalog marks dp_required.
	DPGrades []string `yaml:"dp_grades"`
	// GuardRetention is how long the differencing guard remembers each
	// released group of an aggregate-only release (default 365 days): a
	// later release that differs from it by fewer than k persons is
	// refused within this period.
	GuardRetention time.Duration `yaml:"guard_retention"`
	// Admission bounds how many queries of each cost class run at once
	// and how many wait (see AdmissionConfig; defaults without it).
	Admission AdmissionConfig `yaml:"admission"`
	// Tracing exports OpenTelemetry traces of every query (exporter none,
	// stdout or otlp; off by default; docs/operations.md, "Traces").
	Tracing sluice.TracingConfig `yaml:"tracing"`
}

// LoadConfig reads and checks a broker configuration file.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: fmt.Sprintf("cannot read: %v", err)}
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: "not valid broker YAML: " + err.Error()}
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	required := map[string]string{"listen": c.Listen, "tls_cert": c.TLSCert, "tls_key": c.TLSKey, "store": c.Store}
	for _, f := range []string{"listen", "tls_cert", "tls_key", "store"} {
		if required[f] == "" {
			return nil, &sluice.ConfigError{File: path, Field: f, Problem: "is required"}
		}
	}
	if _, err := sluice.NewCalendar(c.Calendar); err != nil {
		return nil, &sluice.ConfigError{File: path, Field: "calendar", Problem: sluice.ErrorMessage(err)}
	}
	if c.SandboxMemoryMiB < 0 || c.SandboxTimeout < 0 || c.SandboxThreads < 0 || c.SandboxMaxSpillMiB < 0 {
		return nil, &sluice.ConfigError{File: path, Field: "sandbox_memory_mib/sandbox_threads/sandbox_max_spill_mib/sandbox_timeout", Problem: "must not be negative (0 means the default)"}
	}
	if c.Retention < 0 || c.CheckpointEntries < 0 || c.CheckpointInterval < 0 {
		return nil, &sluice.ConfigError{File: path, Field: "retention/checkpoint_entries/checkpoint_interval", Problem: "must not be negative"}
	}
	if c.Retention > 0 && c.ArchiveDir == "" {
		return nil, &sluice.ConfigError{File: path, Field: "archive_dir", Problem: "is required when retention is set: archives are written there"}
	}
	if c.GuardRetention < 0 {
		return nil, &sluice.ConfigError{File: path, Field: "guard_retention", Problem: "must not be negative (0 means the default of 365 days)"}
	}
	for i, g := range c.DPGrades {
		switch strings.ToUpper(strings.TrimSpace(g)) {
		case "L1", "L2", "L3", "L4":
		default:
			return nil, &sluice.ConfigError{File: path, Field: fmt.Sprintf("dp_grades[%d]", i), Problem: fmt.Sprintf("%q is not a grade; use L1, L2, L3 or L4", g)}
		}
	}
	if field, problem := c.Admission.check(); field != "" {
		return nil, &sluice.ConfigError{File: path, Field: field, Problem: problem}
	}
	if field, problem := c.Tracing.Check(); field != "" {
		return nil, &sluice.ConfigError{File: path, Field: "tracing." + field, Problem: problem}
	}
	if c.DefaultK < 0 {
		return nil, &sluice.ConfigError{File: path, Field: "default_k", Problem: "must be >= 0 (0 means the built-in default of 10)"}
	}
	c.TLSCert, c.TLSKey = abs(c.TLSCert), abs(c.TLSKey)
	if !IsPostgresURL(c.Store) {
		c.Store = abs(c.Store)
	}
	c.Users, c.Purposes, c.Grants, c.PolicyDir, c.Alerts = abs(c.Users), abs(c.Purposes), abs(c.Grants), abs(c.PolicyDir), abs(c.Alerts)
	c.SigningKey, c.PQSigningKey, c.ArchiveDir = abs(c.SigningKey), abs(c.PQSigningKey), abs(c.ArchiveDir)
	for i := range c.Departments {
		c.Departments[i] = abs(c.Departments[i])
	}
	return &c, nil
}

// AuditSigners loads (or creates) the checkpoint signing keys the
// configuration names, writing each public key beside its private key.
func (c *Config) AuditSigners() ([]audit.Signer, error) {
	var out []audit.Signer
	load := []struct {
		path string
		fn   func(string) (audit.Signer, error)
	}{{c.SigningKey, audit.LoadOrCreateEd25519}, {c.PQSigningKey, audit.LoadOrCreateMLDSA65}}
	for _, l := range load {
		if l.path == "" {
			continue
		}
		s, err := l.fn(l.path)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(l.path + ".pub"); errors.Is(err, os.ErrNotExist) {
			if err := audit.WritePublicKey(l.path+".pub", s); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// AuditPublicKeys are the public keys of the configured signing keys, for
// verification.
func (c *Config) AuditPublicKeys() ([]audit.PublicKey, error) {
	var out []audit.PublicKey
	for _, p := range []string{c.SigningKey, c.PQSigningKey} {
		if p == "" {
			continue
		}
		k, err := audit.LoadPublicKey(p + ".pub")
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// IsPostgresURL reports whether a store string names a PostgreSQL server
// rather than a SQLite file.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
