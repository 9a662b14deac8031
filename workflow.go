package sluice

import (
	"fmt"
	"maps"
	"strings"
	"time"
)

// Review deadlines, in working days (供需对接: the platform's first review
// within 3 working days, the provider's answer within 10).
const (
	PlatformReviewDays = 3
	ProviderReviewDays = 10
)

// ApplicationStatus is where an access application stands.
type ApplicationStatus string

const (
	AppSubmitted ApplicationStatus = "submitted" // waiting for the platform's first review
	AppForwarded ApplicationStatus = "forwarded" // waiting for the provider
	AppApproved  ApplicationStatus = "approved"  // grants created
	AppRefused   ApplicationStatus = "refused"   // by the platform or the provider, with a basis
	AppWithdrawn ApplicationStatus = "withdrawn" // by the applicant
)

// ApplicationItem is one dataset an application asks for, and which of its
// columns (最少够用: columns are always named).
type ApplicationItem struct {
	Dataset string   `json:"dataset"`
	Columns []string `json:"columns"`
	// Clamp bounds columns for differentially private SUMs (see
	// Grant.Clamp); only with epsilon.
	Clamp map[string]Bounds `json:"clamp,omitempty"`
}

// RowFilter narrows a grant to the rows whose column holds one of the
// values (e.g. one district). The broker adds it to the fragment sent to the
// provider's agent, so other rows never leave the department.
type RowFilter struct {
	Column string   `json:"column" yaml:"column"`
	Values []string `json:"values" yaml:"values"`
}

// ApplicationEvent is one step of an application's history.
type ApplicationEvent struct {
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`
	Role   Role              `json:"role"`
	Action string            `json:"action"` // submit, forward, approve, refuse, withdraw
	Status ApplicationStatus `json:"status"` // after the step
	Note   string            `json:"note,omitempty"`
}

// Application is an analyst's request for access to one provider
// department's datasets, for a purpose and a period.
type Application struct {
	ID string `json:"id"`
	// Applicant is the user who applied; Department is theirs. With
	// ForDepartment the grant goes to the whole department (dept:<id>).
	Applicant     string            `json:"applicant"`
	Department    string            `json:"department"`
	ForDepartment bool              `json:"for_department,omitempty"`
	Provider      string            `json:"provider"` // department id of every item's dataset
	Items         []ApplicationItem `json:"items"`
	Purpose       string            `json:"purpose"`
	Justification string            `json:"justification"`
	ValidFrom     time.Time         `json:"valid_from"`
	ValidUntil    time.Time         `json:"valid_until"`
	// Requested release: rows with masks, or aggregate-only with K; the
	// provider may tighten these when approving.
	Mode            ReleaseMode `json:"mode"`
	K               int         `json:"k,omitempty"`
	Epsilon         float64     `json:"epsilon,omitempty"`
	EpsilonPerQuery float64     `json:"epsilon_per_query,omitempty"`
	RowCap          int64       `json:"row_cap,omitempty"`
	RowFilter       *RowFilter  `json:"row_filter,omitempty"`

	Status      ApplicationStatus `json:"status"`
	SubmittedAt time.Time         `json:"submitted_at"`
	// PlatformDue is set at submission, ProviderDue when forwarded.
	PlatformDue time.Time  `json:"platform_due"`
	ForwardedAt *time.Time `json:"forwarded_at,omitempty"`
	ProviderDue *time.Time `json:"provider_due,omitempty"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	// A refusal cites its legal or policy basis; the applicant sees it.
	RefusalBasis  string             `json:"refusal_basis,omitempty"`
	RefusalReason string             `json:"refusal_reason,omitempty"`
	GrantIDs      []string           `json:"grant_ids,omitempty"`
	History       []ApplicationEvent `json:"history"`
}

// WaitingOn says whose move it is and until when: "platform" or
// "provider:<department>", or "" when the application is closed.
func (a *Application) WaitingOn() (who string, due time.Time) {
	switch a.Status {
	case AppSubmitted:
		return "platform", a.PlatformDue
	case AppForwarded:
		if a.ProviderDue != nil {
			return "provider:" + a.Provider, *a.ProviderDue
		}
		return "provider:" + a.Provider, time.Time{}
	}
	return "", time.Time{}
}

// Open reports whether the application still waits for a decision.
func (a *Application) Open() bool { return a.Status == AppSubmitted || a.Status == AppForwarded }

// Grantee is who the resulting grants name.
func (a *Application) Grantee() string {
	if a.ForDepartment {
		return "dept:" + a.Department
	}
	return a.Applicant
}

// Validate checks an application as submitted (before review fields are
// set). Every problem names its field.
func (a *Application) Validate() error {
	bad := func(field, format string, args ...any) error {
		return Errorf(EInvalid, "%s: %s", field, fmt.Sprintf(format, args...))
	}
	if len(a.Items) == 0 {
		return bad("items", "name at least one dataset and its columns")
	}
	for i, it := range a.Items {
		dept, name, ok := strings.Cut(it.Dataset, ".")
		if !ok || !ValidIdentifier(dept) || !ValidIdentifier(name) {
			return bad(fmt.Sprintf("items[%d].dataset", i), "must be department.dataset, got %q", it.Dataset)
		}
		if i == 0 {
			a.Provider = dept
		} else if dept != a.Provider {
			return bad(fmt.Sprintf("items[%d].dataset", i), "one application goes to one provider (%s); apply to %s separately", a.Provider, dept)
		}
		if len(it.Columns) == 0 {
			return bad(fmt.Sprintf("items[%d].columns", i), "name the columns you need (necessary and minimum sufficient)")
		}
		seen := map[string]bool{}
		for j, c := range it.Columns {
			if !ValidIdentifier(c) {
				return bad(fmt.Sprintf("items[%d].columns[%d]", i, j), "must be a column name, got %q", c)
			}
			if seen[strings.ToLower(c)] {
				return bad(fmt.Sprintf("items[%d].columns[%d]", i, j), "column %q is listed twice", c)
			}
			seen[strings.ToLower(c)] = true
		}
		if p := validateClamp(it.Clamp, it.Columns, a.Epsilon); p != nil {
			return bad(fmt.Sprintf("items[%d].%s", i, p.field), "%s", p.problem)
		}
	}
	if !purposeCode.MatchString(a.Purpose) {
		return bad("purpose", "must be a registered purpose code, got %q", a.Purpose)
	}
	if len(strings.TrimSpace(a.Justification)) < 10 {
		return bad("justification", "say why the data is needed for the purpose (at least 10 characters)")
	}
	if a.ValidFrom.IsZero() || a.ValidUntil.IsZero() {
		return bad("valid_until", "valid_from and valid_until are required: access is time-limited")
	}
	if !a.ValidUntil.After(a.ValidFrom) {
		return bad("valid_until", "must be after valid_from")
	}
	g := a.grantFor(0, "check")
	if p := validateGrant(&g); p != nil && p.field != "id" {
		return bad(p.field, "%s", p.problem)
	}
	a.K = g.K
	if a.RowFilter != nil {
		if !ValidIdentifier(a.RowFilter.Column) {
			return bad("row_filter.column", "must be a column name, got %q", a.RowFilter.Column)
		}
		if len(a.RowFilter.Values) == 0 || len(a.RowFilter.Values) > 100 {
			return bad("row_filter.values", "give between 1 and 100 values")
		}
	}
	return nil
}

// grantFor is the grant item i of the application becomes.
func (a *Application) grantFor(i int, id string) Grant {
	it := a.Items[i]
	return Grant{
		ID: id, Grantee: a.Grantee(), Dataset: it.Dataset, Columns: append([]string(nil), it.Columns...), Clamp: maps.Clone(it.Clamp),
		Purpose: a.Purpose, ValidFrom: a.ValidFrom, ValidUntil: a.ValidUntil, Mode: a.Mode, K: a.K,
		Epsilon: a.Epsilon, EpsilonPerQuery: a.EpsilonPerQuery, RowCap: a.RowCap, RowFilter: a.RowFilter,
		Application: a.ID,
	}
}

// Grants are the grants an approved application creates, one per item,
// with ids <application id>-<n>.
func (a *Application) Grants() []Grant {
	out := make([]Grant, len(a.Items))
	for i := range a.Items {
		out[i] = a.grantFor(i, fmt.Sprintf("%s-%d", a.ID, i+1))
	}
	return out
}

// ValidateGrant checks a grant built outside a grants file (the workflow),
// with the same rules LoadGrants applies.
func ValidateGrant(g *Grant) error {
	if p := validateGrant(g); p != nil {
		return Errorf(EInvalid, "grant %s: %s %s", g.ID, p.field, p.problem)
	}
	return nil
}

// ReportStatus is where an error report (纠错) stands.
type ReportStatus string

const (
	ReportSubmitted    ReportStatus = "submitted"
	ReportAcknowledged ReportStatus = "acknowledged"
	ReportCorrected    ReportStatus = "corrected"
	ReportRejected     ReportStatus = "rejected"
)

// ReportEvent is one step of an error report's history.
type ReportEvent struct {
	Time   time.Time    `json:"time"`
	Actor  string       `json:"actor"`
	Status ReportStatus `json:"status"`
	Note   string       `json:"note,omitempty"`
}

// ErrorReport is an analyst's report of a suspected data error, sent back
// to the providing department to correct at the source.
type ErrorReport struct {
	ID          string `json:"id"`
	Reporter    string `json:"reporter"`
	Department  string `json:"department"` // the reporter's
	Dataset     string `json:"dataset"`
	Provider    string `json:"provider"`
	Column      string `json:"column,omitempty"`
	Description string `json:"description"`
	// RowRef points at the row by a value the reporter saw: a masked key
	// or a pseudonym, never a raw protected value it could not see anyway.
	RowRef    string        `json:"row_ref,omitempty"`
	Status    ReportStatus  `json:"status"`
	Reason    string        `json:"reason,omitempty"` // of a rejection, or what was corrected
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	History   []ReportEvent `json:"history"`
	// Seen is set when the reporter has read the latest status change.
	Seen bool `json:"seen"`
}

// User is an account on the platform. Tokens are kept apart, hashed.
type User struct {
	Name       string    `json:"name"`
	Role       Role      `json:"role"`
	Department string    `json:"department"`
	Disabled   bool      `json:"disabled,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
	// CertFingerprint lets the user authenticate with a client certificate
	// (sha256:hex) instead of a token.
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
}

// Principal is the identity a user acts as.
func (u *User) Principal() Principal {
	return Principal{Name: u.Name, Role: u.Role, Department: u.Department}
}

// Token is a bearer token's record: only its SHA-256 is kept; the token is
// shown once when issued.
type Token struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	SHA256    string     `json:"-"`
	Label     string     `json:"label,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"` // zero: never (file-seeded demo tokens only)
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Valid reports whether the token may be used at now.
func (t *Token) Valid(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// CatalogChange is one versioned change to the catalog: who changed what,
// when, and the catalog version it produced.
type CatalogChange struct {
	Version        int64     `json:"version"`
	Time           time.Time `json:"time"`
	Actor          string    `json:"actor"`
	Department     string    `json:"department"`
	Dataset        string    `json:"dataset,omitempty"`
	Action         string    `json:"action"` // register-agent, register-dataset, update-dataset, remove-dataset, import
	Summary        string    `json:"summary"`
	CatalogVersion string    `json:"catalog_version"` // sha256 of the catalog after the change
}

// ValidatePurpose checks a purpose entered through the admin API with the
// rules of the purposes file.
func ValidatePurpose(p *Purpose) error {
	p.Code, p.Name = strings.TrimSpace(p.Code), strings.TrimSpace(p.Name)
	if !purposeCode.MatchString(p.Code) {
		return Errorf(EInvalid, "code: must be letters, digits, '_' and '-', starting with a letter or '_' (at most 63), got %q", p.Code)
	}
	if p.Name == "" {
		return Errorf(EInvalid, "name: is required: the purpose's name as applications state it")
	}
	if strings.TrimSpace(p.LegalDuty) == "" {
		return Errorf(EInvalid, "legal_duty: cite the legal duty the purpose serves (e.g. the regulation and article)")
	}
	return nil
}
