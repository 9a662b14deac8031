package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/flight"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
)

// Dataset registration: a department admin registers a table of one of the
// agent's sources as a dataset through the broker. The broker first reads
// the table's schema through the agent ("describe"), the admin classifies
// the columns, and the classified dataset comes back ("register-dataset").
// The agent checks it against its own sources and its configuration, keeps
// it in its registry file and from then on serves and enforces it exactly
// like a dataset from its YAML. YAML datasets are authoritative: a
// registration can never replace, shadow or loosen one.

const (
	actionDescribe   = "describe"
	actionRegister   = "register-dataset"
	actionUnregister = "unregister-dataset"

	// maxListedTables bounds the table names an unknown-table error lists.
	maxListedTables = 20
	// maxListedColumns bounds the column names an unknown-column error lists.
	maxListedColumns = 50
	// registryFileVersion is written into the registry file.
	registryFileVersion = 1
)

// WithRegistry makes the agent accept dataset registrations from the broker
// and keep them in the JSON file at path, so they survive restarts. New
// loads the file when it exists (a missing file is an empty registry; its
// folder must exist) and checks every entry as a new registration is
// checked. Without this option the register-dataset and unregister-dataset
// actions answer ENotSupported; describe works either way.
func WithRegistry(path string) Option {
	return func(o *options) { o.registry = path }
}

// Registration is a dataset registered through the agent: the body of the
// register-dataset action and one entry of the registry file. Source and
// Table are carried here because sluice.Dataset does not put them on the
// wire.
type Registration struct {
	// Source names one of the department's sources; it may be empty when
	// the department has exactly one.
	Source string `json:"source"`
	// Table is a table or view of the source: a plain identifier, in the
	// current schema (PostgreSQL) or database (MySQL).
	Table string `json:"table"`
	// Dataset is the classified dataset. Its department, when set, must be
	// the agent's. Every column must exist in the table; table columns it
	// does not list are not exposed.
	Dataset *sluice.Dataset `json:"dataset"`
}

// registryFile is the registry file's content.
type registryFile struct {
	Version    int             `json:"version"`
	Department string          `json:"department"`
	Datasets   []*Registration `json:"datasets"`
}

// TableDescription is the answer of describe for one table.
type TableDescription struct {
	Source  string        `json:"source"`
	Table   string        `json:"table"`
	Columns []TableColumn `json:"columns"`
}

// TableColumn is one column of a described table: its name as the
// database spells it, the catalog type proposed for it and the declared
// database type it was mapped from.
type TableColumn struct {
	Name   string            `json:"name"`
	Type   sluice.ColumnType `json:"type"`
	DBType string            `json:"db_type,omitempty"`
}

// tableList is the answer of describe without a table.
type tableList struct {
	Source string   `json:"source"`
	Tables []string `json:"tables"`
}

// describeRequest is the body of describe.
type describeRequest struct {
	Source string `json:"source"`
	Table  string `json:"table"`
}

// unregisterRequest is the body of unregister-dataset.
type unregisterRequest struct {
	Name string `json:"name"`
}

// registerResult is the answer of register-dataset.
type registerResult struct {
	Registration
	Replaced bool `json:"replaced"`
}

// catalogView is an immutable snapshot of the datasets the agent serves.
// Readers load it without a lock; registrations build a new one and swap it
// in, so a fragment in flight keeps the dataset it started with.
type catalogView struct {
	byName     map[string]*sluice.Dataset // lower-case name: YAML and registered
	ordered    []*sluice.Dataset          // YAML in configuration order, then registered by name
	registered map[string]*Registration   // lower-case name
}

// view returns the current snapshot.
func (s *Server) view() *catalogView { return s.catalog.Load() }

// setView builds and installs a snapshot from the YAML datasets and reg.
func (s *Server) setView(reg map[string]*Registration) {
	v := &catalogView{
		byName:     make(map[string]*sluice.Dataset, len(s.yaml)+len(reg)),
		ordered:    make([]*sluice.Dataset, 0, len(s.yaml)+len(reg)),
		registered: reg,
	}
	for _, ds := range s.yaml {
		v.byName[strings.ToLower(ds.Name)] = ds
		v.ordered = append(v.ordered, ds)
	}
	names := make([]string, 0, len(reg))
	for k := range reg {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ds := reg[k].Dataset
		v.byName[k] = ds
		v.ordered = append(v.ordered, ds)
	}
	s.catalog.Store(v)
}

// Datasets returns the datasets the agent serves: those of its
// configuration, then the registered ones by name. They must not be
// changed.
func (s *Server) Datasets() []*sluice.Dataset {
	return append([]*sluice.Dataset(nil), s.view().ordered...)
}

// Registrations returns the registered datasets, by name.
func (s *Server) Registrations() []Registration {
	v := s.view()
	out := make([]Registration, 0, len(v.registered))
	for _, r := range v.registered {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dataset.Name < out[j].Dataset.Name })
	return out
}

// registryState is the part of Server that registrations change; it is
// kept apart so that the zero value means "no registry".
type registryState struct {
	path string
	// mu is held by one writer at a time: the check, the file write and
	// the swap of the snapshot happen together.
	mu chan struct{}
}

func (s *Server) lockRegistry(ctx context.Context) error {
	select {
	case s.reg.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) unlockRegistry() { <-s.reg.mu }

// loadRegistry reads the registry file (when configured) and checks every
// entry; any problem fails New with an error naming the file.
func (s *Server) loadRegistry(ctx context.Context) error {
	reg := map[string]*Registration{}
	path := s.opts.registry
	if path == "" {
		s.setView(reg)
		return nil
	}
	s.reg = registryState{path: path, mu: make(chan struct{}, 1)}
	fail := func(code, format string, args ...any) error {
		return sluice.Errorf(code, "agent of department %s: registry file %s: %s", s.dept.ID, path, fmt.Sprintf(format, args...))
	}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Registrations will create it; its folder must exist now, so that
		// a mistyped path fails the start instead of the first registration.
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return fail(sluice.EInvalid, "the folder %s does not exist; create it or fix the path", filepath.Dir(path))
		}
		s.setView(reg)
		return nil
	case err != nil:
		return fail(sluice.EUnavailable, "cannot read it: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		s.setView(reg)
		return nil
	}
	var file registryFile
	if err := decodeStrict(raw, &file); err != nil {
		return fail(sluice.EInvalid, "not a valid registry: %v", err)
	}
	if file.Version != registryFileVersion {
		return fail(sluice.EInvalid, "version %d is not supported (want %d)", file.Version, registryFileVersion)
	}
	if file.Department != s.dept.ID {
		return fail(sluice.EInvalid, "it belongs to department %q, not %s; each agent needs its own registry file", file.Department, s.dept.ID)
	}
	for i, r := range file.Datasets {
		if r == nil || r.Dataset == nil {
			return fail(sluice.EInvalid, "entry %d holds no dataset", i+1)
		}
		checked, err := s.checkRegistration(ctx, r)
		if err != nil {
			return &sluice.Error{
				Code:    sluice.ErrorCode(err),
				Message: fmt.Sprintf("agent of department %s: registry file %s: entry %d (dataset %q): %s; fix or remove the entry", s.dept.ID, path, i+1, clip(r.Dataset.Name), safeMessage(err)),
				Err:     err,
			}
		}
		key := strings.ToLower(checked.Dataset.Name)
		if _, dup := reg[key]; dup {
			return fail(sluice.EInvalid, "dataset %s is registered twice", checked.Dataset.Name)
		}
		reg[key] = checked
	}
	s.setView(reg)
	return nil
}

// RegisterDataset checks r against the agent's sources and configuration
// and, when it passes, records it in the registry file and serves it. A
// dataset registered before under the same name is replaced (replaced is
// true). A dataset of the agent's configuration cannot be registered over.
// On success *r is set to the registration as stored: source resolved,
// table as the database spells it, a copy of the dataset. On failure
// nothing changes, in the file or in what is served.
func (s *Server) RegisterDataset(ctx context.Context, r *Registration) (replaced bool, err error) {
	if err := s.registryEnabled(); err != nil {
		return false, err
	}
	if r == nil || r.Dataset == nil {
		return false, sluice.Errorf(sluice.EInvalid, `the registration holds no dataset; send {"source": ..., "table": ..., "dataset": {...}}`)
	}
	if err := s.lockRegistry(ctx); err != nil {
		return false, err
	}
	defer s.unlockRegistry()
	checked, err := s.checkRegistration(ctx, r)
	if err != nil {
		return false, err
	}
	cur := s.view().registered
	key := strings.ToLower(checked.Dataset.Name)
	next := make(map[string]*Registration, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	_, replaced = next[key]
	next[key] = checked
	if err := s.saveRegistry(next); err != nil {
		return false, err
	}
	s.setView(next)
	s.log.Info("dataset registered", "dataset", checked.Dataset.FullName(), "source", checked.Source,
		"table", checked.Table, "columns", len(checked.Dataset.Columns), "replaced", replaced)
	*r = *checked
	return replaced, nil
}

// UnregisterDataset stops serving a registered dataset and removes it from
// the registry file. Datasets of the agent's configuration cannot be
// removed this way.
func (s *Server) UnregisterDataset(ctx context.Context, name string) error {
	if err := s.registryEnabled(); err != nil {
		return err
	}
	if name == "" {
		return sluice.Errorf(sluice.EInvalid, `unregister-dataset takes {"name": dataset}`)
	}
	if err := s.lockRegistry(ctx); err != nil {
		return err
	}
	defer s.unlockRegistry()
	key := strings.ToLower(name)
	if s.isYAML(key) {
		return sluice.Errorf(sluice.EInvalid,
			"dataset %s.%s is defined in the agent's configuration, which is authoritative: it cannot be unregistered through the broker; remove it from the department's YAML instead", s.dept.ID, name)
	}
	cur := s.view().registered
	if _, ok := cur[key]; !ok {
		return sluice.Errorf(sluice.ENotFound, "department %s has no registered dataset %q; %s", s.dept.ID, clip(name), listNames("registered datasets", registeredNames(cur), maxListedTables))
	}
	next := make(map[string]*Registration, len(cur))
	for k, v := range cur {
		if k != key {
			next[k] = v
		}
	}
	if err := s.saveRegistry(next); err != nil {
		return err
	}
	s.setView(next)
	s.log.Info("dataset unregistered", "dataset", s.dept.ID+"."+cur[key].Dataset.Name)
	return nil
}

func registeredNames(reg map[string]*Registration) []string {
	out := make([]string, 0, len(reg))
	for _, r := range reg {
		out = append(out, r.Dataset.Name)
	}
	sort.Strings(out)
	return out
}

func (s *Server) registryEnabled() error {
	if s.reg.path == "" {
		return sluice.Errorf(sluice.ENotSupported,
			"the agent of department %s does not accept registrations; start it with a registry file", s.dept.ID)
	}
	return nil
}

func (s *Server) isYAML(key string) bool {
	for _, ds := range s.yaml {
		if strings.ToLower(ds.Name) == key {
			return true
		}
	}
	return false
}

// checkRegistration validates r and returns the registration as it will be
// served: its own copy of the dataset, with the source resolved, the table
// as the database spells it and the department set. r is not changed.
func (s *Server) checkRegistration(ctx context.Context, r *Registration) (*Registration, error) {
	in := r.Dataset
	if in.Department != "" && in.Department != s.dept.ID {
		return nil, sluice.Errorf(sluice.EInvalid, "dataset %q belongs to department %q; this agent serves department %s", clip(in.Name), clip(in.Department), s.dept.ID)
	}
	src, db, err := s.source(r.Source)
	if err != nil {
		return nil, err
	}
	if r.Table == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the registration names no table; describe the source to list its tables")
	}
	if !sluice.ValidIdentifier(r.Table) {
		return nil, badTable(r.Table)
	}
	ds := copyDataset(in)
	ds.Department = s.dept.ID
	ds.Source = src.Name
	ds.Table = r.Table
	if sluice.ValidIdentifier(ds.Name) && s.isYAML(strings.ToLower(ds.Name)) {
		return nil, sluice.Errorf(sluice.EInvalid,
			"dataset %s.%s is defined in the agent's configuration, which is authoritative: a registration cannot replace or change it; choose another name, or change the department's YAML", s.dept.ID, ds.Name)
	}
	// The same rules as the department's YAML: the loader's own check on a
	// department holding just this dataset.
	probe := &sluice.Department{ID: s.dept.ID, Name: s.dept.Name, Sources: s.dept.Sources, Datasets: []*sluice.Dataset{ds}}
	if err := probe.Validate(); err != nil {
		return nil, &sluice.Error{Code: sluice.EInvalid, Message: "the dataset is not valid: " + err.Error(), Err: err}
	}
	table, err := db.FindTable(ctx, r.Table)
	if err != nil {
		return nil, err
	}
	cols, err := db.Columns(ctx, table)
	if err != nil {
		return nil, err
	}
	byExact := make(map[string]string, len(cols))
	byFold := make(map[string]string, len(cols))
	names := make([]string, len(cols))
	for i, c := range cols {
		byExact[c.Name] = c.Name
		byFold[strings.ToLower(c.Name)] = c.Name
		names[i] = c.Name
	}
	read := make([]string, len(ds.Columns))
	for i, c := range ds.Columns {
		name, ok := byExact[c.Name]
		if !ok && db.Driver() != sluice.DriverPostgres {
			// SQLite and MySQL resolve column names without regard to case.
			name, ok = byFold[strings.ToLower(c.Name)]
		}
		if !ok {
			hint := ""
			if n, ok := byFold[strings.ToLower(c.Name)]; ok {
				hint = fmt.Sprintf(" (column names are case-sensitive here; did you mean %q?)", n)
			}
			return nil, sluice.Errorf(sluice.ENotFound, "table %s of source %s has no column %q%s; %s",
				table, src.Name, c.Name, hint, listNames("columns", names, maxListedColumns))
		}
		read[i] = name
	}
	if err := db.Probe(ctx, table, read); err != nil {
		return nil, err
	}
	ds.Table = table
	return &Registration{Source: src.Name, Table: table, Dataset: ds}, nil
}

func badTable(t string) error {
	return sluice.Errorf(sluice.EInvalid,
		"table %q is not a plain table name: use letters, digits and underscores, not starting with a digit (at most 63), and no schema prefix", clip(t))
}

// copyDataset copies ds and its columns, so that the agent's dataset never
// shares memory with a caller's.
func copyDataset(ds *sluice.Dataset) *sluice.Dataset {
	c := *ds
	c.Columns = make([]*sluice.Column, len(ds.Columns))
	for i, col := range ds.Columns {
		if col != nil {
			cc := *col
			c.Columns[i] = &cc
		}
	}
	return &c
}

// source resolves a source name; an empty name means the only source.
func (s *Server) source(name string) (sluice.Source, *adapters.DB, error) {
	var names []string
	for _, src := range s.dept.Sources {
		names = append(names, src.Name)
	}
	if name == "" {
		if len(s.dept.Sources) != 1 {
			return sluice.Source{}, nil, sluice.Errorf(sluice.EInvalid,
				"department %s has %d sources; name one: %s", s.dept.ID, len(names), strings.Join(names, ", "))
		}
		name = s.dept.Sources[0].Name
	}
	for _, src := range s.dept.Sources {
		if src.Name == name {
			db := s.dbs[src.Name]
			if db == nil {
				return sluice.Source{}, nil, sluice.Errorf(sluice.EUnavailable, "source %s of department %s is not open", src.Name, s.dept.ID)
			}
			return src, db, nil
		}
	}
	return sluice.Source{}, nil, sluice.Errorf(sluice.ENotFound, "department %s has no source %q; %s", s.dept.ID, clip(name), listNames("sources", names, maxListedTables))
}

// saveRegistry writes reg to the registry file atomically: a temporary file
// in the same folder, synced, then renamed over the old one.
func (s *Server) saveRegistry(reg map[string]*Registration) error {
	file := registryFile{Version: registryFileVersion, Department: s.dept.ID, Datasets: make([]*Registration, 0, len(reg))}
	for _, k := range sortedKeys(reg) {
		file.Datasets = append(file.Datasets, reg[k])
	}
	raw, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "the registry cannot be encoded: %v", err)
	}
	if err := writeFileAtomic(s.reg.path, append(raw, '\n')); err != nil {
		s.log.Error("registry file write failed", "path", s.reg.path, "error", err.Error())
		return &sluice.Error{
			Code:    sluice.EUnavailable,
			Message: fmt.Sprintf("the agent of department %s cannot write its registry file; nothing was changed; the agent's log has the details", s.dept.ID),
			Err:     err,
		}
	}
	return nil
}

func sortedKeys(m map[string]*Registration) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the folder is synced; not every file
	// system supports that, and the data is already safe in the file.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Describe returns the columns of a table of a source (the only source
// when source is empty), with the catalog type proposed for each.
func (s *Server) Describe(ctx context.Context, source, table string) (*TableDescription, error) {
	src, db, err := s.source(source)
	if err != nil {
		return nil, err
	}
	if table == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "describe needs a table; without one it lists the tables of the source")
	}
	if !sluice.ValidIdentifier(table) {
		return nil, badTable(table)
	}
	name, err := db.FindTable(ctx, table)
	if err != nil {
		return nil, err
	}
	cols, err := db.Columns(ctx, name)
	if err != nil {
		return nil, err
	}
	out := &TableDescription{Source: src.Name, Table: name, Columns: make([]TableColumn, len(cols))}
	for i, c := range cols {
		out.Columns[i] = TableColumn{Name: c.Name, Type: c.Type, DBType: c.DBType}
	}
	return out, nil
}

// ListTables lists the tables and views of a source (the only source when
// source is empty) that can be registered: those whose names are plain
// identifiers.
func (s *Server) ListTables(ctx context.Context, source string) (string, []string, error) {
	src, db, err := s.source(source)
	if err != nil {
		return "", nil, err
	}
	all, err := db.Tables(ctx)
	if err != nil {
		return "", nil, err
	}
	out := make([]string, 0, len(all))
	for _, t := range all {
		if sluice.ValidIdentifier(t) {
			out = append(out, t)
		}
	}
	return src.Name, out, nil
}

// listNames renders "its <what>: a, b, c (and N more)" for messages.
func listNames(what string, names []string, max int) string {
	if len(names) == 0 {
		return "there are no " + what
	}
	shown, more := names, ""
	if len(shown) > max {
		shown = shown[:max]
		more = fmt.Sprintf(" (and %d more)", len(names)-max)
	}
	return what + ": " + strings.Join(shown, ", ") + more
}

// clip shortens a caller-supplied string quoted in a message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// decodeAction decodes an action body strictly.
func decodeAction(action string, raw []byte, v any, form string) error {
	if len(raw) > maxTicketBytes {
		return sluice.Errorf(sluice.EInvalid, "the %s request is %d bytes; the limit is %d", action, len(raw), maxTicketBytes)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	if err := decodeStrict(raw, v); err != nil {
		return sluice.Errorf(sluice.EInvalid, "the %s request is not valid: %v; send %s", action, err, form)
	}
	return nil
}

// Action handlers.

const (
	describeForm   = `{"source": name, "table": name} (without "table" to list the tables; "source" may be left out when the department has one)`
	registerForm   = `{"source": name, "table": name, "dataset": {dataset}}`
	unregisterForm = `{"name": dataset}`
)

func (fs *flightService) describe(ctx context.Context, raw []byte) ([]byte, error) {
	var req describeRequest
	if err := decodeAction(actionDescribe, raw, &req, describeForm); err != nil {
		return nil, err
	}
	if req.Table == "" {
		src, tables, err := fs.s.ListTables(ctx, req.Source)
		if err != nil {
			return nil, err
		}
		return json.Marshal(tableList{Source: src, Tables: tables})
	}
	d, err := fs.s.Describe(ctx, req.Source, req.Table)
	if err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

func (fs *flightService) register(ctx context.Context, raw []byte) ([]byte, error) {
	if err := fs.s.registryEnabled(); err != nil {
		return nil, err
	}
	var req Registration
	if err := decodeAction(actionRegister, raw, &req, registerForm); err != nil {
		return nil, err
	}
	replaced, err := fs.s.RegisterDataset(ctx, &req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(registerResult{Registration: req, Replaced: replaced})
}

func (fs *flightService) unregister(ctx context.Context, raw []byte) ([]byte, error) {
	if err := fs.s.registryEnabled(); err != nil {
		return nil, err
	}
	var req unregisterRequest
	if err := decodeAction(actionUnregister, raw, &req, unregisterForm); err != nil {
		return nil, err
	}
	if err := fs.s.UnregisterDataset(ctx, req.Name); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// registryActionTypes are listed by ListActions.
var registryActionTypes = []*flight.ActionType{
	{Type: actionDescribe, Description: `columns of a table of a source with proposed catalog types: {"source": s, "table": t} → {"source", "table", "columns": [{"name", "type", "db_type"}]}; without "table" → {"source", "tables": [...]}`},
	{Type: actionRegister, Description: `registers or replaces a classified dataset over a table: {"source": s, "table": t, "dataset": {...}} → the registration as stored, with "replaced"`},
	{Type: actionUnregister, Description: `removes a registered dataset: {"name": dataset} → ok`},
}
