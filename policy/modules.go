package policy

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	sluice "github.com/sluice-gov/sluice"
)

//go:embed rego/*.rego
var embedded embed.FS

// baseModuleName is the name the embedded base policy is shown and hashed
// under; custom modules keep their file path so errors and `policy show`
// point at the file the security team edits.
const baseModuleName = "sluice.rego"

// customRoot is the only package tree security-team modules may define:
// the base policy collects denials from it, and nothing else there is read,
// so a module confined to it cannot remove denials or add allows.
var customRoot = ast.MustParseRef("data.sluice.custom")

type module struct {
	name   string
	source string
	parsed *ast.Module
}

func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// embeddedModules returns the base policy and, when withTests, its tests.
func embeddedModules(withTests bool) ([]module, error) {
	entries, err := fs.ReadDir(embedded, "rego")
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "policy: reading embedded modules: %v", err)
	}
	var out []module
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".rego") || (isTestFile(e.Name()) && !withTests) {
			continue
		}
		raw, err := embedded.ReadFile("rego/" + e.Name())
		if err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "policy: reading embedded module %s: %v", e.Name(), err)
		}
		m, err := parseModule(e.Name(), string(raw))
		if err != nil {
			// A broken embedded policy is a build defect, not bad input.
			var se *sluice.Error
			if errors.As(err, &se) {
				se.Code = sluice.EInternal
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// dirModules loads the *.rego files directly in dir (not sub-folders), in
// name order, with or without the *_test.rego files.
func dirModules(dir string, withTests bool) ([]module, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "policy: cannot read policy directory %s: %v", dir, err)
	}
	var out []module
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".rego") || (isTestFile(name) && !withTests) {
			continue
		}
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "policy: cannot read %s: %v", path, err)
		}
		m, err := parseModule(path, string(raw))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func parseModule(name, src string) (module, error) {
	parsed, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return module{}, regoError("cannot parse", err)
	}
	if parsed == nil {
		return module{}, sluice.Errorf(sluice.EInvalid, "policy: %s: empty module: a Rego file must start with a package declaration", name)
	}
	return module{name: name, source: src, parsed: parsed}, nil
}

// checkCustom enforces that a security-team module lives under
// data.sluice.custom.<name>: a module in any other package could define
// rules of the base policy (allow, decision) and so widen it.
func checkCustom(m module) error {
	path := m.parsed.Package.Path
	if len(path) > len(customRoot) && path.HasPrefix(customRoot) {
		return nil
	}
	line := 0
	if m.parsed.Package.Location != nil {
		line = m.parsed.Package.Location.Row
	}
	return sluice.Errorf(sluice.EInvalid,
		"policy: %s:%d: package %s is not allowed: security-team modules must declare package sluice.custom.<name> and add denials with `deny contains reason if { ... }`",
		m.name, line, strings.TrimPrefix(path.String(), "data."))
}

// regoError turns OPA parse/compile errors into one EInvalid naming each
// file and line, so an operator can fix the module without reading a trace.
func regoError(what string, err error) error {
	var errs ast.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		lines := make([]string, 0, len(errs))
		for _, e := range errs {
			lines = append(lines, describeASTError(e))
		}
		sort.Strings(lines)
		return &sluice.Error{
			Code:    sluice.EInvalid,
			Message: fmt.Sprintf("policy: %s: %s", what, strings.Join(lines, "; ")),
			Err:     err,
		}
	}
	var one *ast.Error
	if errors.As(err, &one) {
		return &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("policy: %s: %s", what, describeASTError(one)), Err: err}
	}
	return &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("policy: %s: %v", what, err), Err: err}
}

func describeASTError(e *ast.Error) string {
	if e.Location == nil {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s line %d: %s: %s", e.Location.File, e.Location.Row, e.Code, e.Message)
}
