package policy

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// The OPA data document. Field names are the contract with sluice.rego and
// with security-team modules (documented in README.md); keys of datasets and
// columns are lower case because catalog names are case-insensitive.
type dataDoc struct {
	Catalog  catalogDoc            `json:"catalog"`
	Purposes map[string]purposeDoc `json:"purposes"`
	Grants   []grantDoc            `json:"grants"`
	Settings settingsDoc           `json:"settings"`
}

type catalogDoc struct {
	Datasets map[string]datasetDoc `json:"datasets"`
}

type datasetDoc struct {
	Name       string               `json:"name"`
	Department string               `json:"department"`
	ShareClass string               `json:"share_class"`
	LegalBasis string               `json:"legal_basis"`
	Columns    map[string]columnDoc `json:"columns"`
}

type columnDoc struct {
	Name      string `json:"name"`
	Release   string `json:"release"`
	Mask      string `json:"mask"`
	Grade     string `json:"grade"`
	KeyDomain string `json:"key_domain"`
	// Unique: no two rows share a value; a join_key column with unique is
	// the dataset's privacy unit (one row per person).
	Unique bool `json:"unique"`
	// DPRequired: other departments may use the column only under a grant
	// with a differential-privacy budget.
	DPRequired bool `json:"dp_required"`
}

type purposeDoc struct {
	Code      string `json:"code"`
	Name      string `json:"name"`
	LegalDuty string `json:"legal_duty"`
}

type grantDoc struct {
	ID           string   `json:"id"`
	Grantee      string   `json:"grantee"`
	Dataset      string   `json:"dataset"`
	Columns      []string `json:"columns"`
	Purpose      string   `json:"purpose"`
	ValidFrom    string   `json:"valid_from"`
	ValidFromNS  int64    `json:"valid_from_ns"`
	ValidUntil   string   `json:"valid_until"`
	ValidUntilNS int64    `json:"valid_until_ns"`
	Mode         string   `json:"mode"`
	K            int      `json:"k"`
	Revoked      bool     `json:"revoked"`
	Epsilon      float64  `json:"epsilon"`
	EpsilonPQ    float64  `json:"epsilon_per_query"`
	RowCap       int64    `json:"row_cap"`
	// Clamp: lower-case column → [lo, hi], for the broker's noisy SUMs.
	Clamp map[string]sluice.Bounds `json:"clamp,omitempty"`
}

type settingsDoc struct {
	DefaultK int `json:"default_k"`
	// DPGrades are the grades ("L1" … "L4") whose columns are treated as
	// dp_required; never null.
	DPGrades []string `json:"dp_grades"`
}

// buildData marshals the domain types into the data document. It rejects
// only what would make the document ambiguous (duplicate purpose codes or
// grant ids); judging grants is the policy's job.
func buildData(cat *sluice.Catalog, purposes []sluice.Purpose, grants []sluice.Grant, settings settingsDoc) ([]byte, error) {
	if settings.DPGrades == nil {
		settings.DPGrades = []string{}
	}
	doc := dataDoc{
		Catalog:  catalogDoc{Datasets: map[string]datasetDoc{}},
		Purposes: map[string]purposeDoc{},
		Grants:   []grantDoc{},
		Settings: settings,
	}
	if cat != nil {
		for _, ds := range cat.Datasets() {
			cols := map[string]columnDoc{}
			for _, c := range ds.Columns {
				if c == nil {
					continue
				}
				cols[strings.ToLower(c.Name)] = columnDoc{
					Name:       c.Name,
					Release:    string(c.Release),
					Mask:       string(c.Mask),
					Grade:      string(c.Grade),
					KeyDomain:  c.KeyDomain,
					Unique:     c.Unique,
					DPRequired: c.DPRequired,
				}
			}
			doc.Catalog.Datasets[strings.ToLower(ds.FullName())] = datasetDoc{
				Name:       ds.FullName(),
				Department: ds.Department,
				ShareClass: string(ds.ShareClass),
				LegalBasis: ds.LegalBasis,
				Columns:    cols,
			}
		}
	}
	for _, p := range purposes {
		if strings.TrimSpace(p.Code) == "" {
			return nil, sluice.Errorf(sluice.EInvalid, "policy: a purpose has no code (name %q); every registered purpose needs a code", p.Name)
		}
		if _, dup := doc.Purposes[p.Code]; dup {
			return nil, sluice.Errorf(sluice.EInvalid, "policy: purpose %q is registered twice", p.Code)
		}
		doc.Purposes[p.Code] = purposeDoc{Code: p.Code, Name: p.Name, LegalDuty: p.LegalDuty}
	}
	ids := map[string]bool{}
	for _, g := range grants {
		if strings.TrimSpace(g.ID) == "" {
			return nil, sluice.Errorf(sluice.EInvalid, "policy: a grant on %s for %s has no id; every grant needs one so decisions can cite it", g.Dataset, g.Grantee)
		}
		if ids[g.ID] {
			return nil, sluice.Errorf(sluice.EInvalid, "policy: grant id %q is used twice", g.ID)
		}
		ids[g.ID] = true
		cols := make([]string, 0, len(g.Columns))
		cols = append(cols, g.Columns...)
		var clamp map[string]sluice.Bounds
		for c, b := range g.Clamp {
			if clamp == nil {
				clamp = map[string]sluice.Bounds{}
			}
			clamp[strings.ToLower(c)] = b
		}
		doc.Grants = append(doc.Grants, grantDoc{
			ID:          g.ID,
			Grantee:     g.Grantee,
			Dataset:     g.Dataset,
			Columns:     cols,
			Purpose:     g.Purpose,
			ValidFrom:   g.ValidFrom.UTC().Format(time.RFC3339),
			ValidFromNS: unixNanos(g.ValidFrom),
			ValidUntil:  g.ValidUntil.UTC().Format(time.RFC3339),
			// A grant without an end date is treated as already expired:
			// the rules require every approval to carry a time limit.
			ValidUntilNS: unixNanos(g.ValidUntil),
			Mode:         string(g.Mode),
			K:            g.K,
			Epsilon:      g.Epsilon,
			EpsilonPQ:    g.EpsilonPerQuery,
			RowCap:       g.RowCap,
			Revoked:      g.Revoked,
			Clamp:        clamp,
		})
	}
	return json.Marshal(doc)
}

// unixNanos is t in Unix nanoseconds, clamped to the int64 range, which
// UnixNano leaves undefined. The zero time maps to the smallest value: no
// lower bound for valid_from, already expired for valid_until.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	minT := time.Unix(0, math.MinInt64)
	maxT := time.Unix(0, math.MaxInt64)
	switch {
	case t.Before(minT):
		return math.MinInt64
	case t.After(maxT):
		return math.MaxInt64
	}
	return t.UnixNano()
}
