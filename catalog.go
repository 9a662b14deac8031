// Package sluice holds the domain types shared by every part of the broker:
// the data resource catalog (departments, datasets, columns), principals,
// purposes, grants and the typed errors the core returns. Packages that talk
// to databases, OPA or the network depend on these types, never the reverse.
package sluice

import (
	"fmt"
	"sort"
	"strings"
)

// ShareClass is the catalog's share type (共享类型) of a dataset.
type ShareClass string

const (
	ShareUnconditional ShareClass = "unconditional" // 无条件共享
	ShareConditional   ShareClass = "conditional"   // 有条件共享
	ShareNone          ShareClass = "none"          // 不予共享
)

// Grade is a column's sensitivity grade (分级).
type Grade string

const (
	GradeL1 Grade = "L1" // public
	GradeL2 Grade = "L2" // internal
	GradeL3 Grade = "L3" // sensitive personal or business data
	GradeL4 Grade = "L4" // highly sensitive: identity numbers, health, criminal records
)

// Release is what a column allows a non-owner to do with it.
type Release string

const (
	ReleasePlain     Release = "plain"
	ReleaseMasked    Release = "masked"
	ReleaseAggregate Release = "aggregate"
	ReleaseJoinKey   Release = "join_key"
	ReleaseHidden    Release = "hidden"
)

// releaseRank orders levels from most to least permissive; a grant may move
// a column towards the end of this order but never towards the start.
var releaseRank = map[Release]int{
	ReleasePlain: 0, ReleaseMasked: 1, ReleaseAggregate: 2, ReleaseJoinKey: 3, ReleaseHidden: 4,
}

// MaskRule names a desensitisation (脱敏) rule applied at the source.
type MaskRule string

const (
	MaskIDCard  MaskRule = "id_card" // 110101********1234: first 6, last 4
	MaskPhone   MaskRule = "phone"   // 138****5678: first 3, last 4
	MaskSurname MaskRule = "surname" // 张**: first character kept
	MaskYear    MaskRule = "year"    // a date becomes its year
	MaskRedact  MaskRule = "redact"  // free text becomes "***"
)

// ColumnType is the logical type of a column as declared in the catalog.
type ColumnType string

const (
	TypeInteger   ColumnType = "integer"
	TypeFloat     ColumnType = "float"
	TypeDecimal   ColumnType = "decimal"
	TypeText      ColumnType = "text"
	TypeBoolean   ColumnType = "boolean"
	TypeDate      ColumnType = "date"
	TypeTimestamp ColumnType = "timestamp"
	// TypeBinary is not a catalog type: it types the columns Sluice adds
	// to results for its own use (pseudonyms, sketches), which never
	// reach an analyst.
	TypeBinary ColumnType = "binary"
)

// Driver names a database driver an adapter can open.
type Driver string

const (
	DriverSQLite   Driver = "sqlite"
	DriverPostgres Driver = "postgres"
	DriverMySQL    Driver = "mysql"
)

// Department is one provider of data, with the agent that serves it.
type Department struct {
	ID       string     `yaml:"department" json:"id"`
	Name     string     `yaml:"name" json:"name"`
	Agent    AgentInfo  `yaml:"agent" json:"agent"`
	Sources  []Source   `yaml:"sources" json:"-"`
	Datasets []*Dataset `yaml:"datasets" json:"datasets"`
}

// AgentInfo says where a department's agent listens and how it is trusted.
type AgentInfo struct {
	// Address is host:port of the agent's Flight service.
	Address string `yaml:"address" json:"address"`
	// TLSCert and TLSKey are the agent's server certificate files.
	TLSCert string `yaml:"tls_cert" json:"-"`
	TLSKey  string `yaml:"tls_key" json:"-"`
	// Fingerprint pins the agent's certificate (sha256:hex) for the broker.
	Fingerprint string `yaml:"fingerprint" json:"fingerprint,omitempty"`
	// BrokerFingerprints are the client certificates (sha256:hex) the agent
	// accepts as the broker.
	BrokerFingerprints []string `yaml:"broker_fingerprints" json:"-"`
	// AuditLog is the agent's own signed, chained log of the fragments it
	// served (SQLite file); empty means <department>-agent-audit.db beside
	// the configuration file.
	AuditLog string `yaml:"audit_log,omitempty" json:"-"`
	// SigningKey is the agent's Ed25519 key for its log's checkpoints;
	// empty means <department>-agent.key beside the configuration file.
	SigningKey string `yaml:"signing_key,omitempty" json:"-"`
	// Registry, when set, is the file where the agent keeps the datasets
	// its department admin registered through the platform (the broker's
	// admin API); without it the agent serves only the datasets of this
	// file and refuses registrations.
	Registry string `yaml:"registry,omitempty" json:"-"`
	// UnitKey is the agent's secret for the pseudonyms of persons it sends
	// for counting (never the person keys themselves); empty means
	// <department>-agent-unit.key beside the configuration file, created
	// on first start. Keep it: a new key makes earlier releases
	// incomparable for the broker's differencing guard.
	UnitKey string `yaml:"unit_key,omitempty" json:"-"`
	// MaxConcurrent bounds the data streams (fragments, private-join
	// steps) the agent serves at once (0: four per CPU core); more wait
	// briefly, then are refused as busy.
	MaxConcurrent int `yaml:"max_concurrent,omitempty" json:"-"`
	// MetricsListen, when set, is host:port of the agent's plain-HTTP
	// listener for /metrics, /healthz and /readyz (docs/operations.md):
	// bind it to loopback or the management network.
	MetricsListen string `yaml:"metrics_listen,omitempty" json:"-"`
	// Tracing exports the agent's spans (serving a fragment, private-join
	// steps) as children of the broker's; off unless set (TracingConfig).
	Tracing TracingConfig `yaml:"tracing,omitempty" json:"-"`
}

// Source is one database of a department.
type Source struct {
	Name   string `yaml:"name"`
	Driver Driver `yaml:"driver"`
	DSN    string `yaml:"dsn"`
	// FlightSQL is the connection of a flightsql source (source_flightsql.go).
	FlightSQL *FlightSQLSource `yaml:"flightsql,omitempty"`
}

// Dataset is one entry of the data resource catalog (政务数据资源目录).
type Dataset struct {
	Department      string     `yaml:"-" json:"department"`
	Name            string     `yaml:"name" json:"name"`
	Title           string     `yaml:"title" json:"title,omitempty"`
	Description     string     `yaml:"description" json:"description,omitempty"`
	Source          string     `yaml:"source" json:"-"`
	Table           string     `yaml:"table" json:"-"`
	Format          string     `yaml:"format" json:"format,omitempty"`
	ShareClass      ShareClass `yaml:"share_class" json:"share_class"`
	LegalBasis      string     `yaml:"legal_basis" json:"legal_basis,omitempty"`
	ShareConditions string     `yaml:"share_conditions" json:"share_conditions,omitempty"`
	UpdateFrequency string     `yaml:"update_frequency" json:"update_frequency,omitempty"`
	Columns         []*Column  `yaml:"columns" json:"columns"`
}

// FullName is the name analysts write: department.dataset.
func (d *Dataset) FullName() string { return d.Department + "." + d.Name }

// Column looks a column up by name, case-insensitively.
func (d *Dataset) Column(name string) *Column {
	for _, c := range d.Columns {
		if strings.EqualFold(c.Name, name) {
			return c
		}
	}
	return nil
}

// PrivacyUnit is the column that identifies the individual each row is
// about: a join_key declared unique. Differential privacy counts one row
// as one person only when there is one; nil otherwise.
func (d *Dataset) PrivacyUnit() *Column {
	for _, c := range d.Columns {
		if c.Release == ReleaseJoinKey && c.Unique {
			return c
		}
	}
	return nil
}

// Column is one classified column of a dataset.
type Column struct {
	Name      string     `yaml:"name" json:"name"`
	Type      ColumnType `yaml:"type" json:"type"`
	Grade     Grade      `yaml:"grade" json:"grade"`
	Release   Release    `yaml:"release" json:"release"`
	Mask      MaskRule   `yaml:"mask" json:"mask,omitempty"`
	KeyDomain string     `yaml:"key_domain" json:"key_domain,omitempty"`
	// Unique is the department's statement that no two rows share a
	// non-null value of the column (a primary key or UNIQUE constraint at
	// the source). Differential privacy needs it to join: a row that met
	// several rows would count several times. The sandbox checks it on
	// every join it relies on and fails the query if the data disagrees.
	Unique bool `yaml:"unique,omitempty" json:"unique,omitempty"`
	// DPRequired makes the column releasable to other departments only
	// under a differential-privacy budget (the policy can also require it
	// for whole grades); aggregates under a minimum group size alone do
	// not protect it against several queries combined.
	DPRequired  bool   `yaml:"dp_required,omitempty" json:"dp_required,omitempty"`
	Description string `yaml:"description" json:"description,omitempty"`
}

// Catalog is the read-only view of every department's datasets.
type Catalog struct {
	departments map[string]*Department
	datasets    map[string]*Dataset
}

// NewCatalog indexes departments; it rejects duplicate names.
func NewCatalog(depts ...*Department) (*Catalog, error) {
	c := &Catalog{departments: map[string]*Department{}, datasets: map[string]*Dataset{}}
	for _, d := range depts {
		if _, dup := c.departments[d.ID]; dup {
			return nil, Errorf(EInvalid, "department %q is declared twice", d.ID)
		}
		c.departments[d.ID] = d
		for _, ds := range d.Datasets {
			ds.Department = d.ID
			c.datasets[strings.ToLower(ds.FullName())] = ds
		}
	}
	return c, nil
}

// Dataset finds department.dataset, case-insensitively.
func (c *Catalog) Dataset(department, name string) *Dataset {
	return c.datasets[strings.ToLower(department+"."+name)]
}

// Department returns a department by id.
func (c *Catalog) Department(id string) *Department { return c.departments[id] }

// Departments lists departments sorted by id.
func (c *Catalog) Departments() []*Department {
	out := make([]*Department, 0, len(c.departments))
	for _, d := range c.departments {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Datasets lists every dataset sorted by full name.
func (c *Catalog) Datasets() []*Dataset {
	out := make([]*Dataset, 0, len(c.datasets))
	for _, d := range c.datasets {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FullName() < out[j].FullName() })
	return out
}

// AtMostAsOpen reports whether level a is the same as or stricter than b.
func AtMostAsOpen(a, b Release) bool { return releaseRank[a] >= releaseRank[b] }

// ValidRelease reports whether r is a known release level.
func ValidRelease(r Release) bool { _, ok := releaseRank[r]; return ok }

// String renders a column as dataset.column for messages.
func (c *Column) String() string { return fmt.Sprintf("%s (%s, %s)", c.Name, c.Grade, c.Release) }
