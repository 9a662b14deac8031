package sluice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// purposeCode is what a purpose code must look like: it travels in the
// x-sluice-purpose header and in audit lines, so it stays short and plain.
var purposeCode = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)

// userName is what a grantee user name must look like.
var userName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// lineNo matches the line prefix yaml puts on messages; decodeStrict
// already reports the line.
var lineNo = regexp.MustCompile(`^line \d+: `)

// DefaultGrantK is the minimum group size of an aggregate grant that does
// not state one.
const DefaultGrantK = 10

// configError wraps a ConfigError in the core's typed error, so callers get
// both the file/field (errors.As *ConfigError) and the code EInvalid.
func configError(file, field, format string, args ...any) error {
	ce := &ConfigError{File: file, Field: field, Problem: fmt.Sprintf(format, args...)}
	return &Error{Code: EInvalid, Message: ce.Error(), Err: ce}
}

// LoadPurposes reads and validates a purposes file: a YAML list of
// {code, name, description, legal_duty}. Codes are identifiers that may
// contain dashes and must be unique; a name is required.
func LoadPurposes(path string) ([]Purpose, error) {
	items, err := readList(path, "purposes")
	if err != nil {
		return nil, err
	}
	out := make([]Purpose, 0, len(items))
	seen := map[string]int{}
	for i, n := range items {
		at := label("purposes", i, scalarField(n, "code"))
		var p Purpose
		if field, problem := decodeStrict(n, &p); problem != "" {
			return nil, configError(path, joinField(at, field), "%s", problem)
		}
		switch {
		case p.Code == "":
			return nil, configError(path, at+".code", "is required")
		case !purposeCode.MatchString(p.Code):
			return nil, configError(path, at+".code", "must be letters, digits, '_' and '-', starting with a letter or '_' (at most 63), got %q", p.Code)
		}
		if j, dup := seen[strings.ToLower(p.Code)]; dup {
			return nil, configError(path, at+".code", "purpose %q is already declared at purposes[%d]", p.Code, j)
		}
		seen[strings.ToLower(p.Code)] = i
		if strings.TrimSpace(p.Name) == "" {
			return nil, configError(path, at+".name", "is required: the purpose's name as the application states it")
		}
		out = append(out, p)
	}
	return out, nil
}

// LoadGrants reads and validates a grants file: a YAML list of approved
// applications. The error names the file, the grant (index and id) and the
// field. An aggregate grant without k gets DefaultGrantK.
func LoadGrants(path string) ([]Grant, error) {
	items, err := readList(path, "grants")
	if err != nil {
		return nil, err
	}
	out := make([]Grant, 0, len(items))
	seen := map[string]int{}
	for i, n := range items {
		at := label("grants", i, scalarField(n, "id"))
		var g Grant
		if field, problem := decodeStrict(n, &g); problem != "" {
			return nil, configError(path, joinField(at, field), "%s", problem)
		}
		if err := validateGrant(&g); err != nil {
			return nil, configError(path, at+"."+err.field, "%s", err.problem)
		}
		if j, dup := seen[g.ID]; dup {
			return nil, configError(path, at+".id", "grant %q is already declared at grants[%d]", g.ID, j)
		}
		seen[g.ID] = i
		out = append(out, g)
	}
	return out, nil
}

func validateGrant(g *Grant) *fieldProblem {
	bad := func(field, format string, args ...any) *fieldProblem {
		return &fieldProblem{field, fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(g.ID) == "" {
		return bad("id", "is required")
	}
	if g.Grantee == "" {
		return bad("grantee", "is required: a user name or dept:<department id>")
	}
	if dept, ok := strings.CutPrefix(g.Grantee, "dept:"); ok {
		if !ValidIdentifier(dept) {
			return bad("grantee", "dept: must be followed by a department id, got %q", g.Grantee)
		}
	} else if !userName.MatchString(g.Grantee) {
		return bad("grantee", "must be a user name or dept:<department id>, got %q", g.Grantee)
	}
	dept, name, ok := strings.Cut(g.Dataset, ".")
	if !ok || !ValidIdentifier(dept) || !ValidIdentifier(name) {
		return bad("dataset", "must be department.dataset (e.g. health.insured), got %q", g.Dataset)
	}
	if len(g.Columns) == 0 {
		return bad("columns", "at least one column is required: grants name columns, never a whole table (最少够用)")
	}
	cols := map[string]bool{}
	for j, c := range g.Columns {
		if !ValidIdentifier(c) {
			return bad(fmt.Sprintf("columns[%d]", j), "must be a column name, got %q", c)
		}
		if cols[strings.ToLower(c)] {
			return bad(fmt.Sprintf("columns[%d]", j), "column %q is listed twice", c)
		}
		cols[strings.ToLower(c)] = true
	}
	if g.Purpose == "" {
		return bad("purpose", "is required: the purpose code the grant was approved for")
	}
	if !purposeCode.MatchString(g.Purpose) {
		return bad("purpose", "must be a purpose code, got %q", g.Purpose)
	}
	if g.ValidFrom.IsZero() {
		return bad("valid_from", "is required (RFC 3339 time or YYYY-MM-DD)")
	}
	if g.ValidUntil.IsZero() {
		return bad("valid_until", "is required (RFC 3339 time or YYYY-MM-DD): grants are time-limited")
	}
	if !g.ValidUntil.After(g.ValidFrom) {
		return bad("valid_until", "must be after valid_from (%s), got %s", g.ValidFrom.Format("2006-01-02T15:04:05Z07:00"), g.ValidUntil.Format("2006-01-02T15:04:05Z07:00"))
	}
	switch g.Mode {
	case ModeRows, ModeAggregate:
	case "":
		return bad("mode", "is required: rows or aggregate")
	default:
		return bad("mode", "must be rows or aggregate, got %q", g.Mode)
	}
	if g.K < 0 {
		return bad("k", "must be 0 or more, got %d", g.K)
	}
	if g.Mode == ModeAggregate && g.K == 0 {
		g.K = DefaultGrantK
	}
	if math.IsNaN(g.Epsilon) || math.IsInf(g.Epsilon, 0) || g.Epsilon < 0 {
		return bad("epsilon", "must be a finite number >= 0 (0 means no differential-privacy noise), got %v", g.Epsilon)
	}
	if g.Epsilon > 0 && g.Mode != ModeAggregate {
		return bad("epsilon", "applies to aggregate grants only: noise is added to COUNT and SUM results")
	}
	if g.EpsilonPerQuery < 0 || g.EpsilonPerQuery > g.Epsilon || (g.Epsilon > 0 && g.EpsilonPerQuery == 0) {
		return bad("epsilon_per_query", "must be > 0 and at most epsilon (the total budget) when epsilon is set, got %v", g.EpsilonPerQuery)
	}
	if p := validateClamp(g.Clamp, g.Columns, g.Epsilon); p != nil {
		return p
	}
	if g.RowCap < 0 {
		return bad("row_cap", "must be 0 (no cap) or more, got %d", g.RowCap)
	}
	if f := g.RowFilter; f != nil {
		if !ValidIdentifier(f.Column) {
			return bad("row_filter.column", "must be a column name, got %q", f.Column)
		}
		if len(f.Values) == 0 || len(f.Values) > 100 {
			return bad("row_filter.values", "give between 1 and 100 values, got %d", len(f.Values))
		}
	}
	return nil
}

// Bounds is a closed interval [lo, hi], written as a list of two numbers.
type Bounds [2]float64

// Lo is the lower bound.
func (b Bounds) Lo() float64 { return b[0] }

// Hi is the upper bound.
func (b Bounds) Hi() float64 { return b[1] }

// Sensitivity is how far one value clamped to b can move a sum:
// max(|lo|, |hi|).
func (b Bounds) Sensitivity() float64 { return max(math.Abs(b[0]), math.Abs(b[1])) }

// String renders b as [lo, hi].
func (b Bounds) String() string { return fmt.Sprintf("[%g, %g]", b[0], b[1]) }

// UnmarshalJSON accepts exactly two numbers: encoding/json would
// zero-fill a shorter list and drop the rest of a longer one, turning
// [-5] into [-5, 0] without a word.
func (b *Bounds) UnmarshalJSON(data []byte) error {
	var xs []float64
	if err := json.Unmarshal(data, &xs); err != nil || len(xs) != 2 {
		return fmt.Errorf("must be a list of two numbers [lo, hi], got %s", clipText(string(data)))
	}
	*b = Bounds{xs[0], xs[1]}
	return nil
}

// UnmarshalYAML accepts exactly two numbers, as UnmarshalJSON.
func (b *Bounds) UnmarshalYAML(n *yaml.Node) error {
	var xs []float64
	if n.Kind != yaml.SequenceNode || len(n.Content) != 2 || n.Decode(&xs) != nil {
		return fmt.Errorf("line %d: must be a list of two numbers [lo, hi]", n.Line)
	}
	*b = Bounds{xs[0], xs[1]}
	return nil
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// validateClamp checks a grant's (or an application item's) clamp bounds:
// only with a budget, only on the grant's own columns, finite, lo < hi.
// Whether a column is numeric needs the catalog: see CheckClamp.
func validateClamp(clamp map[string]Bounds, columns []string, epsilon float64) *fieldProblem {
	if len(clamp) == 0 {
		return nil
	}
	bad := func(field, format string, args ...any) *fieldProblem {
		return &fieldProblem{field, fmt.Sprintf(format, args...)}
	}
	if epsilon <= 0 {
		return bad("clamp", "applies only with epsilon: clamp bounds serve differentially private SUMs; set epsilon and epsilon_per_query, or remove clamp")
	}
	names := make([]string, 0, len(clamp))
	for c := range clamp {
		names = append(names, c)
	}
	sort.Strings(names)
	seen := map[string]string{}
	for _, c := range names {
		b := clamp[c]
		field := "clamp." + c
		if !ValidIdentifier(c) {
			return bad(field, "must be a column name, got %q", c)
		}
		if prev, dup := seen[strings.ToLower(c)]; dup {
			return bad(field, "column %q is bounded twice (also as %q)", c, prev)
		}
		seen[strings.ToLower(c)] = c
		if !slices.ContainsFunc(columns, func(g string) bool { return strings.EqualFold(g, c) }) {
			return bad(field, "column %q is not one of the grant's columns (%s); bounds apply to granted columns only", c, strings.Join(columns, ", "))
		}
		if math.IsNaN(b[0]) || math.IsInf(b[0], 0) || math.IsNaN(b[1]) || math.IsInf(b[1], 0) {
			return bad(field, "bounds must be finite numbers, got [%v, %v]", b[0], b[1])
		}
		if !(b[0] < b[1]) {
			return bad(field, "the lower bound %g must be below the upper bound %g", b[0], b[1])
		}
	}
	return nil
}

// CheckClamp checks clamp bounds against the dataset they bound, when the
// catalog is at hand: every bounded column must exist and be numeric, and
// an integer column needs whole-number bounds (its clamped values stay
// integers). field prefixes the field named in the error (e.g. "items[0]").
func CheckClamp(ds *Dataset, clamp map[string]Bounds, field string) error {
	if field != "" {
		field += "."
	}
	names := make([]string, 0, len(clamp))
	for c := range clamp {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		b := clamp[c]
		col := ds.Column(c)
		if col == nil {
			return Errorf(EInvalid, "%sclamp.%s: %s has no column %q", field, c, ds.FullName(), c)
		}
		switch col.Type {
		case TypeInteger:
			if b[0] != math.Trunc(b[0]) || b[1] != math.Trunc(b[1]) {
				return Errorf(EInvalid, "%sclamp.%s: %s.%s is an integer column; give whole-number bounds, got %s", field, c, ds.FullName(), col.Name, b)
			}
		case TypeFloat, TypeDecimal:
		default:
			return Errorf(EInvalid, "%sclamp.%s: %s.%s is a %s column; only numeric columns can be summed and bounded", field, c, ds.FullName(), col.Name, col.Type)
		}
	}
	return nil
}

// readList parses a YAML file whose document is a list; an empty file is an
// empty list.
func readList(path, what string) ([]*yaml.Node, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, configError(path, "", "cannot read: %v", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, configError(path, "", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, configError(path, "", "line %d: must be a YAML list of %s (each item starting with '- ')", root.Line, what)
	}
	return root.Content, nil
}

// label names a list item by index and, when it has one, its id, so the
// author can find it either way.
func label(list string, i int, id string) string {
	if id == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, id)
}

// scalarField returns the value of key in a mapping node when it is a plain
// scalar, before the item is decoded, so even decoding errors name the item.
func scalarField(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

func joinField(at, field string) string {
	if field == "" {
		return at
	}
	return at + "." + field
}

// decodeStrict decodes a mapping node into the struct pointed to by out,
// field by field, so an error can name the field: unknown keys, duplicate
// keys and values of the wrong type are reported with the YAML key.
func decodeStrict(n *yaml.Node, out any) (field, problem string) {
	if n.Kind != yaml.MappingNode {
		return "", fmt.Sprintf("line %d: must be a mapping of field: value", n.Line)
	}
	v := reflect.ValueOf(out).Elem()
	t := v.Type()
	fields := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		idx, ok := fields[key]
		if !ok {
			known := make([]string, 0, len(fields))
			for k := range fields {
				known = append(known, k)
			}
			sort.Strings(known)
			return key, fmt.Sprintf("line %d: unknown field; known fields are %s", n.Content[i].Line, strings.Join(known, ", "))
		}
		if seen[key] {
			return key, fmt.Sprintf("line %d: is given twice", n.Content[i].Line)
		}
		seen[key] = true
		if tp, ok := v.Field(idx).Addr().Interface().(*time.Time); ok && val.Kind == yaml.ScalarNode && val.Tag != "!!null" {
			parsed, err := parseTime(val.Value)
			if err != nil {
				return key, fmt.Sprintf("line %d: must be a time (RFC 3339, e.g. 2026-01-31T00:00:00+08:00, or YYYY-MM-DD), got %q", val.Line, val.Value)
			}
			*tp = parsed
			continue
		}
		if err := val.Decode(v.Field(idx).Addr().Interface()); err != nil {
			return key, fmt.Sprintf("line %d: %s", val.Line, describeDecodeError(err, t.Field(idx).Type))
		}
	}
	return "", ""
}

// timeLayouts are the forms a grant time may take, quoted or not. A time
// without a zone is UTC, as YAML timestamps are.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05", time.DateOnly}

func parseTime(s string) (time.Time, error) {
	var err error
	for _, layout := range timeLayouts {
		var t time.Time
		if t, err = time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// describeDecodeError turns yaml's Go-typed message into one a config author
// can act on.
func describeDecodeError(err error, typ reflect.Type) string {
	var want string
	switch {
	case typ.String() == "time.Time":
		want = "a time (RFC 3339, e.g. 2026-01-31T00:00:00Z, or YYYY-MM-DD)"
	case typ.Kind() == reflect.Slice:
		want = "a list"
	case typ.Kind() == reflect.Int:
		want = "a whole number"
	case typ.Kind() == reflect.Bool:
		want = "true or false"
	case typ.Kind() == reflect.String:
		want = "a string"
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		msg = strings.TrimSpace(msg[i:])
	}
	msg = strings.TrimPrefix(strings.TrimPrefix(msg, "unmarshal errors:"), " ")
	msg = lineNo.ReplaceAllString(msg, "")
	if want == "" {
		return msg
	}
	return "must be " + want + " (" + msg + ")"
}
