// Package demo builds the synthetic, deterministic world that `sluice demo`
// runs on: four departments of one city, each with its own SQLite database and
// catalog file, plus the purposes registry, approved grants and demo users.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"gopkg.in/yaml.v3"
)

// DefaultSeed is the seed used when Options.Seed is zero.
const DefaultSeed int64 = 20261122

// MaxScale bounds Options.Scale. The world is built in memory before it is
// written; scale 100 (two million residents) needs about a gigabyte, and a
// typo beyond that would exhaust memory rather than make a better demo.
const MaxScale = 100

// Options says where and how big to generate the demo world.
type Options struct {
	Dir string // output folder (created)
	// Scale multiplies row counts; scale 1 is 20,000 residents and 3,000
	// enterprises. 0 means 1.
	Scale int
	// Seed selects the data; 0 means DefaultSeed.
	Seed int64
	// Now anchors grant validity, so the demo never ages: the same grant is
	// current (or expired) whenever the demo runs. Zero means time.Now().
	// The databases never depend on it.
	Now time.Time
	// AgentAddrs maps a department id (civil, health, market, police) to the
	// host:port of its agent; missing ones get 127.0.0.1:4710x.
	AgentAddrs map[string]string
}

// World is what Generate wrote.
type World struct {
	Dir             string
	DepartmentFiles map[string]string // department id → path of its YAML config
	DatabaseFiles   map[string]string // department id → SQLite file
	PurposesFile    string
	GrantsFile      string
	Purposes        []sluice.Purpose
	Grants          []sluice.Grant
	Users           []User // alice, bob, erin, carol, dave
	// Rows counts the generated rows per dataset ("civil.residents" → n).
	Rows map[string]int
}

// User is a demo user with a fresh bearer token.
type User struct {
	Name       string      `json:"name"`
	Role       sluice.Role `json:"role"`
	Department string      `json:"department"`
	Token      string      `json:"token"`
}

// Generate writes DIR/<dept>/<dept>.db and DIR/<dept>/<dept>.yaml for civil,
// health, market and police, and DIR/purposes.yaml and DIR/grants.yaml.
// Every file is written to a temporary name and renamed into place, so
// regenerating into an existing DIR replaces it whole; the same seed and
// scale give the same data. Agents must not have the databases open.
func Generate(ctx context.Context, opt Options) (*World, error) {
	opt, err := normalise(opt)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo: resolving output folder %q: %w", opt.Dir, err)
	}
	w := &World{
		Dir:             dir,
		DepartmentFiles: map[string]string{},
		DatabaseFiles:   map[string]string{},
		PurposesFile:    filepath.Join(dir, "purposes.yaml"),
		GrantsFile:      filepath.Join(dir, "grants.yaml"),
		Purposes:        demoPurposes(),
		Grants:          demoGrants(opt.Now),
		Rows:            map[string]int{},
	}
	addrs := map[string]string{}
	for id, a := range defaultAgentAddrs {
		addrs[id] = a
	}
	for id, a := range opt.AgentAddrs {
		addrs[id] = a
	}
	depts := demoDepartments(addrs)

	data, err := generateData(ctx, opt.Seed, opt.Scale)
	if err != nil {
		return nil, err
	}
	for _, d := range depts {
		ddir := filepath.Join(dir, d.ID)
		if err := os.MkdirAll(ddir, 0o755); err != nil {
			return nil, fmt.Errorf("demo: creating %s: %w", ddir, err)
		}
		dbPath := filepath.Join(ddir, d.ID+".db")
		rows, err := writeDatabase(ctx, dbPath, d, data)
		if err != nil {
			return nil, err
		}
		for k, v := range rows {
			w.Rows[k] = v
		}
		cfg := filepath.Join(ddir, d.ID+".yaml")
		if err := WriteDepartmentFile(cfg, d); err != nil {
			return nil, err
		}
		w.DatabaseFiles[d.ID] = dbPath
		w.DepartmentFiles[d.ID] = cfg
	}
	if err := WritePurposes(w.PurposesFile, w.Purposes); err != nil {
		return nil, err
	}
	if err := WriteGrants(w.GrantsFile, w.Grants); err != nil {
		return nil, err
	}
	if w.Users, err = demoUsers(); err != nil {
		return nil, err
	}
	return w, nil
}

func normalise(opt Options) (Options, error) {
	if strings.TrimSpace(opt.Dir) == "" {
		return opt, sluice.Errorf(sluice.EInvalid, "demo: an output folder is required")
	}
	if opt.Scale == 0 {
		opt.Scale = 1
	}
	if opt.Scale < 1 || opt.Scale > MaxScale {
		return opt, sluice.Errorf(sluice.EInvalid, "demo: scale must be between 1 and %d, got %d", MaxScale, opt.Scale)
	}
	if opt.Seed == 0 {
		opt.Seed = DefaultSeed
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	// Whole seconds in UTC keep grants.yaml readable; truncating only moves
	// the anchor back, so "expired yesterday" stays expired.
	opt.Now = opt.Now.UTC().Truncate(time.Second)
	ids := make([]string, 0, len(opt.AgentAddrs))
	for id := range opt.AgentAddrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, ok := defaultAgentAddrs[id]; !ok {
			return opt, sluice.Errorf(sluice.EInvalid, "demo: agent address given for unknown department %q; the demo departments are %s", id, strings.Join(deptIDs, ", "))
		}
		if strings.TrimSpace(opt.AgentAddrs[id]) == "" {
			return opt, sluice.Errorf(sluice.EInvalid, "demo: agent address of department %s is empty; give host:port", id)
		}
	}
	return opt, nil
}

// demoGrants are the approved applications of the demo story, anchored at now.
func demoGrants(now time.Time) []sluice.Grant {
	day := 24 * time.Hour
	return []sluice.Grant{
		{
			ID: "alice-health-insured", Grantee: "alice", Dataset: "health.insured",
			// The provider approved the severe mental disorder flag too, but
			// the catalog releases it only under a differential-privacy
			// budget, which this grant does not carry: the tour shows both.
			Columns: []string{"id_card", "insurance_type", "chronic_disease", "annual_claims", "hospital_visits", "severe_mental_illness"},
			Purpose: "subsidy-review", ValidFrom: now.Add(-30 * day), ValidUntil: now.Add(180 * day),
			Mode: sluice.ModeAggregate, K: 10,
		},
		{
			ID: "bob-police-household", Grantee: "bob", Dataset: "police.household",
			Columns: []string{"id_card", "name", "household_district", "migrant"},
			Purpose: "enterprise-credit", ValidFrom: now.Add(-30 * day), ValidUntil: now.Add(90 * day),
			Mode: sluice.ModeRows,
		},
		{
			// Civil affairs checks household registration when reviewing
			// subsidies: aggregate-only, joined privately on the ID number.
			ID: "alice-police-household", Grantee: "alice", Dataset: "police.household",
			Columns: []string{"id_card", "household_district", "migrant"},
			Purpose: "subsidy-review", ValidFrom: now.Add(-30 * day), ValidUntil: now.Add(180 * day),
			Mode: sluice.ModeAggregate, K: 10,
		},
		{
			// Differential privacy: counts only, with Laplace noise, from a
			// budget of ε = 1 spent 0.25 per query, at most 50 groups a result.
			ID: "alice-health-dp", Grantee: "alice", Dataset: "health.insured",
			Columns: []string{"insurance_type", "chronic_disease", "hospital_visits", "severe_mental_illness"},
			Purpose: "public-health-planning", ValidFrom: now.Add(-7 * day), ValidUntil: now.Add(60 * day),
			Mode: sluice.ModeAggregate, K: 10, Epsilon: 1, EpsilonPerQuery: 0.25, RowCap: 50,
		},
		{
			// Expired yesterday: the demo shows the denial for an out-of-time use.
			ID: "erin-civil-residents", Grantee: "erin", Dataset: "civil.residents",
			Columns: []string{"district", "low_income", "gender", "birth_date"},
			Purpose: "public-health-planning", ValidFrom: now.Add(-90 * day), ValidUntil: now.Add(-day),
			Mode: sluice.ModeRows,
		},
	}
}

// demoUsers are the people of the demo story, each with a fresh token.
func demoUsers() ([]User, error) {
	users := []User{
		{Name: "alice", Role: sluice.RoleAnalyst, Department: DeptCivil},
		{Name: "bob", Role: sluice.RoleAnalyst, Department: DeptMarket},
		{Name: "erin", Role: sluice.RoleAnalyst, Department: DeptHealth},
		{Name: "carol", Role: sluice.RoleAuditor, Department: PlatformDepartment},
		{Name: "dave", Role: sluice.RolePlatformAdmin, Department: PlatformDepartment},
		// Each department's data admin: registers and classifies its
		// datasets, answers applications and error reports.
		{Name: "cheng", Role: sluice.RoleDeptAdmin, Department: DeptCivil},
		{Name: "hana", Role: sluice.RoleDeptAdmin, Department: DeptHealth},
		{Name: "mei", Role: sluice.RoleDeptAdmin, Department: DeptMarket},
		{Name: "paul", Role: sluice.RoleDeptAdmin, Department: DeptPolice},
	}
	for i := range users {
		t, err := NewToken()
		if err != nil {
			return nil, err
		}
		users[i].Token = t
	}
	return users, nil
}

// NewToken returns a fresh bearer token: 32 random bytes, base64url, with the
// prefix "slc_" so a leaked token is recognisable by secret scanners.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", &sluice.Error{Code: sluice.EInternal, Message: "demo: cannot read random bytes for a token", Err: err}
	}
	return "slc_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// WriteDepartmentFile writes d as a department configuration that
// sluice.LoadDepartment reads back unchanged. It refuses to write a
// configuration that would not load, and replaces the file atomically, so a
// running agent never reads half a file.
func WriteDepartmentFile(path string, d *sluice.Department) error {
	if d == nil {
		return sluice.Errorf(sluice.EInvalid, "demo: no department to write to %s", path)
	}
	body, err := marshalYAML(d)
	if err != nil {
		return fmt.Errorf("demo: encoding department %s: %w", d.ID, err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Department configuration of %s: its agent, sources and data resource catalog.\n", d.ID)
	buf.WriteString("# Relative sqlite DSNs and certificate paths are resolved against this file's folder.\n")
	buf.Write(body)
	if _, err := sluice.ParseDepartment(path, buf.Bytes()); err != nil {
		return &sluice.Error{Code: sluice.EInvalid, Message: "demo: refusing to write an invalid department configuration: " + err.Error(), Err: err}
	}
	return writeFileAtomic(path, buf.Bytes(), 0o644)
}

func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFileAtomic writes to a temporary file in the same folder and renames
// it over path, so readers see the old file or the new one, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("demo: writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("demo: writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("demo: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("demo: writing %s: %w", path, err)
	}
	return nil
}
