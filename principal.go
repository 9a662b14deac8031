package sluice

import (
	"strings"
	"time"
)

// Role is what a principal may do on the platform.
type Role string

const (
	RoleAnalyst       Role = "analyst"
	RoleDeptAdmin     Role = "dept_admin"
	RolePlatformAdmin Role = "platform_admin"
	RoleAuditor       Role = "auditor"
)

// ValidRole reports whether r is a known role.
func ValidRole(r Role) bool {
	switch r {
	case RoleAnalyst, RoleDeptAdmin, RolePlatformAdmin, RoleAuditor:
		return true
	}
	return false
}

// Principal is an authenticated caller.
type Principal struct {
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	Department string `json:"department"`
}

// Purpose is a registered application scenario (用途).
type Purpose struct {
	Code        string `yaml:"code" json:"code"`
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description,omitempty"`
	LegalDuty   string `yaml:"legal_duty" json:"legal_duty,omitempty"`
}

// ReleaseMode is how a grant lets rows leave.
type ReleaseMode string

const (
	// ModeRows releases rows, each column at its catalog level (masks applied).
	ModeRows ReleaseMode = "rows"
	// ModeAggregate releases only aggregates over groups of at least K rows.
	ModeAggregate ReleaseMode = "aggregate"
)

// Grant is an approved application: who may use which columns of a dataset,
// for which purpose, until when, and how results may be released.
type Grant struct {
	ID string `yaml:"id" json:"id"`
	// Grantee is a user name, or "dept:<id>" for a whole department.
	Grantee    string      `yaml:"grantee" json:"grantee"`
	Dataset    string      `yaml:"dataset" json:"dataset"` // department.dataset
	Columns    []string    `yaml:"columns" json:"columns"`
	Purpose    string      `yaml:"purpose" json:"purpose"`
	ValidFrom  time.Time   `yaml:"valid_from" json:"valid_from"`
	ValidUntil time.Time   `yaml:"valid_until" json:"valid_until"`
	Mode       ReleaseMode `yaml:"mode" json:"mode"`
	K          int         `yaml:"k" json:"k,omitempty"`
	// Epsilon is the total differential-privacy budget of the grant for its
	// (grantee, purpose); EpsilonPerQuery is spent by each query, which then
	// gets Laplace noise on its COUNT and SUM outputs. 0 means no noise.
	Epsilon         float64 `yaml:"epsilon,omitempty" json:"epsilon,omitempty"`
	EpsilonPerQuery float64 `yaml:"epsilon_per_query,omitempty" json:"epsilon_per_query,omitempty"`
	// Clamp bounds, per column, the values a noisy SUM adds up: each
	// source value is clamped to [lo, hi] at the source before summing, so
	// one individual moves the sum by at most max(|lo|, |hi|), the
	// sensitivity the noise is scaled to. Under a budget, SUM(col) needs
	// bounds for col; the columns must be the grant's. Only with Epsilon.
	Clamp map[string]Bounds `yaml:"clamp,omitempty" json:"clamp,omitempty"`
	// RowCap limits how many rows one result may release (0 = no cap).
	RowCap int64 `yaml:"row_cap,omitempty" json:"row_cap,omitempty"`
	// RowFilter limits the grant to some rows (e.g. one district).
	RowFilter *RowFilter `yaml:"row_filter,omitempty" json:"row_filter,omitempty"`
	Revoked   bool       `yaml:"revoked" json:"revoked,omitempty"`
	// Workflow provenance (empty for grants read from a file).
	Application string     `yaml:"-" json:"application,omitempty"`
	RevokedAt   *time.Time `yaml:"-" json:"revoked_at,omitempty"`
	RevokedBy   string     `yaml:"-" json:"revoked_by,omitempty"`
}

// Names reports whether the grant names p, directly or by department.
func (g *Grant) Names(p Principal) bool {
	if dept, ok := strings.CutPrefix(g.Grantee, "dept:"); ok {
		return dept == p.Department
	}
	return g.Grantee == p.Name
}
