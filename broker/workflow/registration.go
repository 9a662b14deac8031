package workflow

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/state"
)

// AgentRegistration is what a department admin (or, for a new department,
// the platform admin) sends to register the department's agent.
type AgentRegistration struct {
	Name        string `json:"name,omitempty"`
	Address     string `json:"address"`
	Fingerprint string `json:"fingerprint"`
}

var fingerprintRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// RegisterAgent records where a department's agent listens and pins its
// certificate. The broker connects and pings it first: an agent it cannot
// reach is not registered. A department that does not exist yet is created
// (platform admin only).
func (w *Service) RegisterAgent(ctx context.Context, p sluice.Principal, dept string, r AgentRegistration) (*sluice.CatalogChange, error) {
	if !sluice.ValidIdentifier(dept) {
		return nil, sluice.Errorf(sluice.EInvalid, "department id %q must be an identifier (letters, digits, underscore)", dept)
	}
	if r.Address == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "address: host:port of the agent's Flight service is required")
	}
	r.Fingerprint = strings.ToLower(strings.TrimSpace(r.Fingerprint))
	if !fingerprintRE.MatchString(r.Fingerprint) {
		return nil, sluice.Errorf(sluice.EInvalid, "fingerprint: must be sha256:<64 hex> of the agent's certificate (its department file's agent.fingerprint; 'sluice catalog register-agent --fingerprint' also takes the certificate file)")
	}
	d, err := w.store.Department(ctx, dept)
	isNew := sluice.ErrorCode(err) == sluice.ENotFound
	switch {
	case isNew:
		if p.Role != sluice.RolePlatformAdmin && !isDeptAdmin(p, dept) {
			return nil, denied("only the platform admin or an admin of %s may register its agent", dept)
		}
		if strings.TrimSpace(r.Name) == "" {
			return nil, sluice.Errorf(sluice.EInvalid, "name: a new department needs its name (e.g. 交通运输局 Transport Bureau)")
		}
		d = &sluice.Department{ID: dept}
	case err != nil:
		return nil, err
	case !isDeptAdmin(p, dept) && p.Role != sluice.RolePlatformAdmin:
		return nil, denied("only an admin of %s or the platform admin may change its agent", dept)
	}
	if r.Name != "" {
		d.Name = r.Name
	}
	c, err := w.dial(ctx, dept, r.Address, r.Fingerprint)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if pinger, ok := c.(interface{ Ping(context.Context) error }); ok {
		if err := pinger.Ping(ctx); err != nil {
			return nil, sluice.Errorf(sluice.EUnavailable, "the agent at %s did not answer (check the address, that its certificate has fingerprint %s, and that it accepts this broker's certificate): %s", r.Address, r.Fingerprint, sluice.ErrorMessage(err))
		}
	}
	d.Agent.Address, d.Agent.Fingerprint = r.Address, r.Fingerprint
	action := "register-agent"
	if !isNew {
		action = "update-agent"
	}
	return w.putDepartment(ctx, p, d, "", action, fmt.Sprintf("agent at %s (%s)", r.Address, r.Fingerprint))
}

// putDepartment stores a department change with its catalog version and
// applies it.
func (w *Service) putDepartment(ctx context.Context, p sluice.Principal, d *sluice.Department, dataset, action, summary string) (*sluice.CatalogChange, error) {
	depts, err := w.store.Departments(ctx)
	if err != nil {
		return nil, err
	}
	next := []*sluice.Department{d}
	for _, o := range depts {
		if o.ID != d.ID {
			next = append(next, o)
		}
	}
	cat, err := sluice.NewCatalog(next...)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "%s", sluice.ErrorMessage(err))
	}
	ch, err := w.store.PutDepartment(ctx, d, sluice.CatalogChange{
		Time: w.now(), Actor: p.Name, Department: d.ID, Dataset: dataset, Action: action, Summary: summary,
		CatalogVersion: state.CatalogVersion(cat),
	})
	if err != nil {
		return nil, err
	}
	return &ch, w.Reload(ctx)
}

// registrar is the agent of dept as a Registrar.
func (w *Service) registrar(dept string) (Registrar, error) {
	c := w.Current().Agents[dept]
	if c == nil {
		return nil, sluice.Errorf(sluice.EUnavailable, "department %s has no registered agent; register it first (sluice catalog register-agent)", dept)
	}
	r, ok := c.(Registrar)
	if !ok {
		return nil, sluice.Errorf(sluice.ENotSupported, "the agent client of %s cannot register datasets", dept)
	}
	return r, nil
}

func (w *Service) mustAdminister(p sluice.Principal, dept string) error {
	if !isDeptAdmin(p, dept) {
		return denied("only an admin of department %s classifies its datasets; you are %s of %s", dept, p.Role, p.Department)
	}
	return nil
}

// ListSourceTables lists what the agent of dept could register.
func (w *Service) ListSourceTables(ctx context.Context, p sluice.Principal, dept, source string) ([]string, error) {
	if err := w.mustAdminister(p, dept); err != nil {
		return nil, err
	}
	r, err := w.registrar(dept)
	if err != nil {
		return nil, err
	}
	return r.ListTables(ctx, source)
}

// DatasetRegistration is a classified dataset over a source table.
type DatasetRegistration struct {
	Source  string         `json:"source,omitempty"`
	Table   string         `json:"table"`
	Dataset sluice.Dataset `json:"dataset"`
}

// ProposeDataset reads a table's schema through the agent and proposes a
// classification the admin then reviews: identity-like columns as L4
// join keys, names and phones masked, everything else L2 plain; the share
// class conditional with the legal basis left for the admin to cite.
func (w *Service) ProposeDataset(ctx context.Context, p sluice.Principal, dept, source, table string) (*DatasetRegistration, error) {
	if err := w.mustAdminister(p, dept); err != nil {
		return nil, err
	}
	r, err := w.registrar(dept)
	if err != nil {
		return nil, err
	}
	desc, err := r.Describe(ctx, source, table)
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(table)
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	ds := sluice.Dataset{Department: dept, Name: name, Title: table, ShareClass: sluice.ShareConditional, Format: "table",
		UpdateFrequency: "daily"}
	for _, c := range desc.Columns {
		ds.Columns = append(ds.Columns, proposeColumn(c.Name, c.Type))
	}
	return &DatasetRegistration{Source: desc.Source, Table: desc.Table, Dataset: ds}, nil
}

// proposeColumn guesses a classification from a column's name; the admin
// decides.
func proposeColumn(name string, typ sluice.ColumnType) *sluice.Column {
	n := strings.ToLower(name)
	has := func(parts ...string) bool {
		for _, p := range parts {
			if strings.Contains(n, p) {
				return true
			}
		}
		return false
	}
	c := &sluice.Column{Name: name, Type: typ, Grade: sluice.GradeL2, Release: sluice.ReleasePlain}
	switch {
	case has("id_card", "idcard", "id_no", "identity", "sfz", "passport"):
		c.Grade, c.Release, c.KeyDomain = sluice.GradeL4, sluice.ReleaseJoinKey, "person"
	case has("credit_code", "uscc"):
		c.Grade, c.Release, c.KeyDomain = sluice.GradeL2, sluice.ReleasePlain, ""
	case has("phone", "mobile", "tel"):
		c.Grade, c.Release, c.Mask = sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskPhone
	case n == "name" || has("_name", "name_") && !has("company", "enterprise", "org"):
		c.Grade, c.Release, c.Mask = sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskSurname
	case has("birth"):
		c.Grade, c.Release, c.Mask = sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskYear
	case has("address", "addr"):
		c.Grade, c.Release, c.Mask = sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskRedact
	case has("diagnos", "disease", "criminal", "offense", "offence"):
		c.Grade, c.Release = sluice.GradeL4, sluice.ReleaseAggregate
	}
	if c.Mask != "" && typ != sluice.TypeText && c.Mask != sluice.MaskYear {
		c.Release, c.Mask = sluice.ReleaseAggregate, ""
	}
	return c
}

// PutDataset registers or reclassifies a dataset: checked by the catalog's
// rules, handed to the agent (which checks the table and columns exist and
// will enforce the classification), then versioned in the catalog.
func (w *Service) PutDataset(ctx context.Context, p sluice.Principal, dept string, reg DatasetRegistration) (*sluice.CatalogChange, error) {
	if err := w.mustAdminister(p, dept); err != nil {
		return nil, err
	}
	d, err := w.store.Department(ctx, dept)
	if err != nil {
		return nil, err
	}
	ds := reg.Dataset
	ds.Department, ds.Source, ds.Table = dept, "", reg.Table
	// The department's rules (identifiers, share class and legal basis,
	// column grades, releases, masks, key domains) checked on a copy.
	check := &sluice.Department{ID: dept, Datasets: []*sluice.Dataset{&ds}}
	if err := check.Validate(); err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "%s", strings.Replace(err.Error(), "datasets[", "dataset[", 1))
	}
	r, err := w.registrar(dept)
	if err != nil {
		return nil, err
	}
	if err := r.RegisterDataset(ctx, &ds, reg.Source, reg.Table); err != nil {
		return nil, err
	}
	action, idx := "register-dataset", -1
	for i, o := range d.Datasets {
		if strings.EqualFold(o.Name, ds.Name) {
			action, idx = "update-dataset", i
		}
	}
	stored := ds
	if idx >= 0 {
		d.Datasets[idx] = &stored
	} else {
		d.Datasets = append(d.Datasets, &stored)
	}
	return w.putDepartment(ctx, p, d, ds.FullName(), action, classificationSummary(&ds))
}

func classificationSummary(ds *sluice.Dataset) string {
	parts := []string{"share class " + string(ds.ShareClass)}
	for _, c := range ds.Columns {
		x := fmt.Sprintf("%s %s/%s", c.Name, c.Grade, c.Release)
		if c.Mask != "" {
			x += "(" + string(c.Mask) + ")"
		}
		parts = append(parts, x)
	}
	return strings.Join(parts, "; ")
}

// RemoveDataset withdraws a registered dataset from the catalog and its
// agent. Grants on it stop working with it.
func (w *Service) RemoveDataset(ctx context.Context, p sluice.Principal, dept, name string) (*sluice.CatalogChange, error) {
	if err := w.mustAdminister(p, dept); err != nil {
		return nil, err
	}
	d, err := w.store.Department(ctx, dept)
	if err != nil {
		return nil, err
	}
	idx := slices.IndexFunc(d.Datasets, func(ds *sluice.Dataset) bool { return strings.EqualFold(ds.Name, name) })
	if idx < 0 {
		return nil, sluice.Errorf(sluice.ENotFound, "department %s has no dataset %s", dept, name)
	}
	r, err := w.registrar(dept)
	if err != nil {
		return nil, err
	}
	if err := r.UnregisterDataset(ctx, d.Datasets[idx].Name); err != nil {
		return nil, err
	}
	full := d.Datasets[idx].FullName()
	d.Datasets = slices.Delete(d.Datasets, idx, idx+1)
	return w.putDepartment(ctx, p, d, full, "remove-dataset", "removed from the catalog")
}
