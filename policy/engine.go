// Package policy decides, with embedded OPA, whether a planned query may run
// and under which obligations (masks applied at the source, a minimum group
// size). The decision is computed entirely by the Rego policy in rego/ plus
// any security-team modules; Go only builds OPA's input and data documents
// from the domain types and reads the decision back.
package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	sluice "github.com/sluice-gov/sluice"
)

// Input is what the policy judges: who asks, why, when, and how the planned
// query uses each source column.
type Input struct {
	Principal sluice.Principal     `json:"principal"`
	Purpose   string               `json:"purpose"`
	Now       time.Time            `json:"now"`      // marshalled RFC3339Nano
	Datasets  []string             `json:"datasets"` // department.dataset
	Columns   []sluice.ColumnUsage `json:"columns"`
	// Aggregate is true when the query result is aggregate-only (every
	// output is an aggregate or a group key).
	Aggregate bool `json:"aggregate"`
	// Joins are the query's equality join pairs by source column; a join
	// key may only be paired through a private set intersection.
	Joins []JoinPair `json:"joins,omitempty"`
}

// Reason is one ground of an allow or one cause of a denial.
type Reason struct {
	// Rule is a stable id: "role", "unknown_purpose", "unknown_dataset",
	// "unknown_column", "unknown_usage", "share_class_none",
	// "share_class_unknown", "no_grant", "grant_expired",
	// "grant_not_yet_valid", "grant_purpose", "grant_columns",
	// "grant_revoked", "aggregate_only_grant", "masked_join_key",
	// "aggregate_row_output", "aggregate_column_use", "order_statistic"
	// (MIN/MAX of an aggregate-level column, or of any column in a protected
	// release), "distinct_aggregate" (DISTINCT on an aggregate-level
	// column), "aggregate_expression" (a column inside an expression within
	// an aggregate: on an aggregate-level column, or on any column in a
	// protected release), "no_privacy_unit" (a protected dataset declares no
	// unique join_key), "dp_required" (a column that needs a
	// differential-privacy budget, used without one), "join_key_use",
	// "join_key_plain_join", "hidden_column", "custom:<package>", and on
	// allow "allow_owner", "allow_unconditional", "allow_grant".
	Rule    string `json:"rule"`
	Dataset string `json:"dataset,omitempty"`
	Column  string `json:"column,omitempty"`
	// Message is a full sentence saying what is wrong and what to do.
	Message string `json:"message"`
	// LegalBasis is the catalog's legal basis for share class none and
	// conditional denials.
	LegalBasis string `json:"legal_basis,omitempty"`
}

// Decision is the policy's answer for one query.
type Decision struct {
	Allow bool
	// Reasons: on deny every denial, sorted by dataset, column, rule; on
	// allow the grounds (allow_owner, allow_unconditional, allow_grant).
	Reasons []Reason
	// Masks is dataset → column → mask to apply at the source, for the
	// masked columns a non-owner uses.
	Masks map[string]map[string]sluice.MaskRule
	// MinGroupSize is k > 0 when the release is aggregate-only (protected):
	// the largest k of Protected. k counts distinct persons.
	MinGroupSize int
	// Protected maps each protected dataset's catalog name (department.dataset)
	// to its k: the larger of the default k, when a non-owner uses one of its
	// aggregate-level columns, and the k of the aggregate-only grant relied
	// on for it. Empty (never nil) when the release is not aggregate-only and
	// on deny.
	Protected map[string]int
	// Grants are the ids of the grants the allow relies on.
	Grants []string
	// RowCap > 0 limits the rows one result may release.
	RowCap int64
	// DP lists the differential-privacy budgets the query spends from.
	DP []DPBudget
	// Revision identifies the policy (modules and data) that decided.
	Revision string
	// RowFilters are the grants' row filters the broker added to the
	// fragments ("dataset: column in (...)"), for the audit entry.
	RowFilters []string
}

type options struct {
	dirs     []string
	defaultK int
	dpGrades []string
}

// Option configures an Engine.
type Option func(*options)

// WithPolicyDir adds the security team's *.rego files (not *_test.rego) in
// dir. They must declare package sluice.custom.<name>; they can only add
// denials. It may be given more than once.
func WithPolicyDir(dir string) Option {
	return func(o *options) { o.dirs = append(o.dirs, dir) }
}

// WithDefaultK sets the minimum group size for aggregate-level columns and
// for aggregate grants that give no k. The default is 10.
func WithDefaultK(k int) Option {
	return func(o *options) { o.defaultK = k }
}

// WithDPGrades makes every column of the given grades ("L1" … "L4")
// usable by other departments only under a grant with a
// differential-privacy budget, as if the catalog marked it dp_required. It
// may be given more than once; the grades add up. By default no grade
// requires it.
func WithDPGrades(grades ...string) Option {
	return func(o *options) { o.dpGrades = append(o.dpGrades, grades...) }
}

// dpGrades validates and normalises the grades of WithDPGrades: known
// grades only, upper case, sorted, without duplicates, never nil.
func dpGrades(in []string) ([]string, error) {
	out := []string{}
	for _, g := range in {
		norm := sluice.Grade(strings.ToUpper(strings.TrimSpace(g)))
		switch norm {
		case sluice.GradeL1, sluice.GradeL2, sluice.GradeL3, sluice.GradeL4:
		default:
			return nil, sluice.Errorf(sluice.EInvalid, "policy: %q is not a grade; differential privacy can be required for grades L1, L2, L3 and L4", g)
		}
		if !slices.Contains(out, string(norm)) {
			out = append(out, string(norm))
		}
	}
	sort.Strings(out)
	return out, nil
}

// DefaultK is the minimum group size used when nothing says otherwise.
const DefaultK = 10

const decisionQuery = "data.sluice.authz.decision"

// Engine holds the prepared policy. Decide is safe for concurrent use and
// never blocks on Update: Update prepares a new query off to the side and
// swaps it in atomically.
type Engine struct {
	opts    options
	modules []module
	hash    []byte // sha256 state input of the modules, reused per Update

	mu    sync.Mutex // serialises Update
	state atomic.Pointer[Prepared]
}

// Prepared is one revision of the policy: the modules and one data
// document (catalog, purposes, grants), compiled once. It is immutable and
// safe for concurrent use; a request decides with one Prepared from start
// to end, and the broker keeps it in the same snapshot as the catalog and
// grants it was built from.
type Prepared struct {
	query    rego.PreparedEvalQuery
	revision string
	data     []byte // the data document the revision covers
}

// New loads the base policy and the security team's modules, compiles them
// and prepares the decision query over an empty data document, so that a
// Decide before the first Update denies (every dataset is unknown).
func New(ctx context.Context, opts ...Option) (*Engine, error) {
	o := options{defaultK: DefaultK}
	for _, opt := range opts {
		opt(&o)
	}
	if o.defaultK <= 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "policy: default k must be a positive number of persons, got %d", o.defaultK)
	}
	grades, err := dpGrades(o.dpGrades)
	if err != nil {
		return nil, err
	}
	o.dpGrades = grades
	mods, err := embeddedModules(false)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range mods {
		seen[m.name] = true
	}
	for _, dir := range o.dirs {
		custom, err := dirModules(dir, false)
		if err != nil {
			return nil, err
		}
		for _, m := range custom {
			if err := checkCustom(m); err != nil {
				return nil, err
			}
			if seen[m.name] {
				return nil, sluice.Errorf(sluice.EInvalid, "policy: module %s is loaded twice", m.name)
			}
			seen[m.name] = true
			mods = append(mods, m)
		}
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].name < mods[j].name })
	e := &Engine{opts: o, modules: mods, hash: modulesDigestInput(mods)}
	if err := e.Update(ctx, nil, nil, nil); err != nil {
		return nil, err
	}
	return e, nil
}

// modulesDigestInput is the module part of the revision: length-prefixed
// names and sources, so that no two module sets hash alike by concatenation.
func modulesDigestInput(mods []module) []byte {
	var b bytes.Buffer
	for _, m := range mods {
		fmt.Fprintf(&b, "module %d:%s %d:", len(m.name), m.name, len(m.source))
		b.WriteString(m.source)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Update rebuilds the data document from the catalog, purposes and grants,
// prepares the decision query against it and swaps it in. On error the
// previous policy stays in force.
func (e *Engine) Update(ctx context.Context, cat *sluice.Catalog, purposes []sluice.Purpose, grants []sluice.Grant) error {
	// Held throughout so that two racing Updates land in call order and the
	// later data is the one left in force.
	e.mu.Lock()
	defer e.mu.Unlock()
	raw, err := buildData(cat, purposes, grants, settingsDoc{DefaultK: e.opts.defaultK, DPGrades: e.opts.dpGrades})
	if err != nil {
		return err
	}
	value, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "policy: building the data document: %v", err)
	}
	obj, ok := value.(ast.Object)
	if !ok {
		return sluice.Errorf(sluice.EInternal, "policy: the data document is not an object")
	}

	ropts := []func(*rego.Rego){
		rego.Query(decisionQuery),
		rego.Store(inmem.NewFromASTObject(obj)),
		// A builtin error must fail the decision, not silently make a
		// denial rule undefined.
		rego.StrictBuiltinErrors(true),
		// Policy modules decide from their input and data only: no network,
		// no reading the process environment.
		rego.Capabilities(decisionCapabilities),
	}
	for _, m := range e.modules {
		ropts = append(ropts, rego.ParsedModule(m.parsed))
	}
	pq, err := rego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		return regoError("cannot compile", err)
	}

	sum := sha256.New()
	sum.Write(e.hash)
	fmt.Fprintf(sum, "data %d:", len(raw))
	sum.Write(raw)
	next := &Prepared{query: pq, revision: "sha256:" + hex.EncodeToString(sum.Sum(nil)), data: raw}

	e.state.Store(next)
	return nil
}

// Revision is the revision of the policy currently in force.
func (e *Engine) Revision() string { return e.state.Load().revision }

// Data returns the OPA data document of the revision in force (JSON), so
// the broker can keep the policy as it stood at every decision.
func (e *Engine) Data() []byte {
	if st := e.state.Load(); st != nil {
		return st.data
	}
	return nil
}

// Modules returns the policy modules in force (file name → Rego source).
func (e *Engine) Modules() map[string]string {
	out := make(map[string]string, len(e.modules))
	for _, m := range e.modules {
		out[m.name] = m.source
	}
	return out
}

// Decide evaluates the policy for in. It fails closed: an evaluation error
// or an undefined decision is an EInternal error, never an allow. A zero
// in.Now means the current time.
func (e *Engine) Decide(ctx context.Context, in Input) (*Decision, error) {
	return e.state.Load().Decide(ctx, in)
}

// Current is the revision in force: the one the last Update prepared.
func (e *Engine) Current() *Prepared { return e.state.Load() }

// Revision identifies this revision: sha256 over the modules and the data.
func (p *Prepared) Revision() string { return p.revision }

// Decide evaluates this revision of the policy for in; see Engine.Decide.
func (p *Prepared) Decide(ctx context.Context, in Input) (*Decision, error) {
	st := p
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	rs, err := st.query.Eval(ctx, rego.EvalParsedInput(inputValue(in)))
	if err != nil {
		if ctx.Err() != nil {
			return nil, &sluice.Error{Code: sluice.EInternal, Message: "policy: decision cancelled: " + ctx.Err().Error(), Err: err}
		}
		return nil, &sluice.Error{Code: sluice.EInternal, Message: "policy: evaluation failed, denying: " + err.Error(), Err: err}
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, sluice.Errorf(sluice.EInternal, "policy: the decision is undefined, denying")
	}
	d, err := decodeDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, err
	}
	d.Revision = st.revision
	return d, nil
}

// JoinPair is one equality join pair of a query, by source column; a side
// computed by an expression has an empty Dataset.
type JoinPair struct {
	Left  JoinSide `json:"left"`
	Right JoinSide `json:"right"`
	PSI   bool     `json:"psi"`
}

// JoinSide names a source column of a join pair.
type JoinSide struct {
	Dataset string `json:"dataset"`
	Column  string `json:"column"`
}

// DPBudget is a grant's differential-privacy budget a query spends from:
// EpsilonPerQuery of its total Epsilon for the grantee and purpose. Clamp
// holds the grant's bounds on Dataset's columns (lower-case names) for
// noisy SUMs.
type DPBudget struct {
	Grant           string                   `json:"grant"`
	Dataset         string                   `json:"dataset"`
	EpsilonPerQuery float64                  `json:"epsilon_per_query"`
	Epsilon         float64                  `json:"epsilon"`
	Clamp           map[string]sluice.Bounds `json:"clamp,omitempty"`
}

type decisionDoc struct {
	RowCap       int64                                 `json:"row_cap"`
	DP           []DPBudget                            `json:"dp"`
	Allow        *bool                                 `json:"allow"`
	Reasons      []Reason                              `json:"reasons"`
	Masks        map[string]map[string]sluice.MaskRule `json:"masks"`
	MinGroupSize int                                   `json:"min_group_size"`
	Protected    map[string]int                        `json:"protected"`
	Grants       []string                              `json:"grants"`
}

func decodeDecision(v any) (*Decision, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "policy: reading the decision: %v", err)
	}
	var doc decisionDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "policy: the decision has an unexpected shape, denying: %v", err)
	}
	if doc.Allow == nil {
		return nil, sluice.Errorf(sluice.EInternal, "policy: the decision says neither allow nor deny, denying")
	}
	d := &Decision{
		Allow:        *doc.Allow,
		Reasons:      doc.Reasons,
		Masks:        doc.Masks,
		MinGroupSize: doc.MinGroupSize,
		Protected:    doc.Protected,
		Grants:       doc.Grants,
		RowCap:       doc.RowCap,
		DP:           doc.DP,
	}
	if d.Masks == nil {
		d.Masks = map[string]map[string]sluice.MaskRule{}
	}
	if d.Protected == nil {
		d.Protected = map[string]int{}
	}
	if d.Grants == nil {
		d.Grants = []string{}
	}
	if !d.Allow && len(d.Reasons) == 0 {
		// Deny by default still owes the caller an explanation.
		d.Reasons = []Reason{{Rule: "default_deny", Message: "no rule allows this query (deny by default)"}}
	}
	return d, nil
}

// inputValue builds the OPA input directly as an AST value: it avoids a
// JSON round trip per decision, and nil slices become empty arrays rather
// than null.
func inputValue(in Input) ast.Value {
	str := ast.StringTerm
	datasets := make([]*ast.Term, 0, len(in.Datasets))
	for _, d := range in.Datasets {
		datasets = append(datasets, str(d))
	}
	cols := make([]*ast.Term, 0, len(in.Columns))
	for _, c := range in.Columns {
		usages := make([]*ast.Term, 0, len(c.Usages))
		for _, u := range c.Usages {
			usages = append(usages, str(string(u)))
		}
		cols = append(cols, ast.ObjectTerm(
			ast.Item(str("dataset"), str(c.Dataset)),
			ast.Item(str("column"), str(c.Column)),
			ast.Item(str("usages"), ast.ArrayTerm(usages...)),
			ast.Item(str("transformed"), ast.BooleanTerm(c.Transformed)),
		))
	}
	side := func(j JoinSide) *ast.Term {
		return ast.ObjectTerm(ast.Item(str("dataset"), str(j.Dataset)), ast.Item(str("column"), str(j.Column)))
	}
	joins := make([]*ast.Term, 0, len(in.Joins))
	for _, j := range in.Joins {
		joins = append(joins, ast.ObjectTerm(
			ast.Item(str("left"), side(j.Left)),
			ast.Item(str("right"), side(j.Right)),
			ast.Item(str("psi"), ast.BooleanTerm(j.PSI)),
		))
	}
	return ast.NewObject(
		ast.Item(str("joins"), ast.ArrayTerm(joins...)),
		ast.Item(str("principal"), ast.ObjectTerm(
			ast.Item(str("name"), str(in.Principal.Name)),
			ast.Item(str("role"), str(string(in.Principal.Role))),
			ast.Item(str("department"), str(in.Principal.Department)),
		)),
		ast.Item(str("purpose"), str(in.Purpose)),
		ast.Item(str("now"), str(in.Now.UTC().Format(time.RFC3339Nano))),
		ast.Item(str("datasets"), ast.ArrayTerm(datasets...)),
		ast.Item(str("columns"), ast.ArrayTerm(cols...)),
		ast.Item(str("aggregate"), ast.BooleanTerm(in.Aggregate)),
	)
}

// forbiddenBuiltins reach outside the decision: a security-team module that
// called them could leak the query's lineage or stall every request.
var forbiddenBuiltins = map[string]bool{
	"http.send":          true,
	"net.lookup_ip_addr": true,
	"opa.runtime":        true,
}

var decisionCapabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	kept := c.Builtins[:0]
	for _, b := range c.Builtins {
		if !forbiddenBuiltins[b.Name] {
			kept = append(kept, b)
		}
	}
	c.Builtins = kept
	return c
}()
