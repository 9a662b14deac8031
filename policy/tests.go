package policy

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	sluice "github.com/sluice-gov/sluice"
)

// RunTests runs the Rego unit tests: the embedded base policy's tests plus
// every *.rego file (policies and *_test.rego) in dirs, all compiled
// together so a security team's tests can exercise its modules through the
// base decision. It writes one "PASS name" or "FAIL name: why" line per
// test, in name order, and returns the counts; err is for tests that could
// not be run at all (a parse or compile error).
func RunTests(ctx context.Context, w io.Writer, dirs ...string) (passed, failed int, err error) {
	mods, err := embeddedModules(true)
	if err != nil {
		return 0, 0, err
	}
	for _, dir := range dirs {
		more, err := dirModules(dir, true)
		if err != nil {
			return 0, 0, err
		}
		mods = append(mods, more...)
	}
	parsed := make(map[string]*ast.Module, len(mods))
	for _, m := range mods {
		if _, dup := parsed[m.name]; dup {
			return 0, 0, sluice.Errorf(sluice.EInvalid, "policy: module %s is loaded twice", m.name)
		}
		parsed[m.name] = m.parsed
	}

	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx, storage.TransactionParams{})
	if err != nil {
		return 0, 0, sluice.Errorf(sluice.EInternal, "policy: opening the test store: %v", err)
	}
	defer store.Abort(ctx, txn)

	runner := tester.NewRunner().
		SetStore(store).
		SetModules(parsed).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true)
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return 0, 0, regoError("cannot compile tests", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	// Results arrive in completion order; sort for a stable report.
	sort.Slice(results, func(i, j int) bool {
		if results[i].Package != results[j].Package {
			return results[i].Package < results[j].Package
		}
		return results[i].Name < results[j].Name
	})
	for _, r := range results {
		name := r.Package + "." + r.Name
		switch {
		case r.Skip:
			_, err = fmt.Fprintf(w, "SKIP %s\n", name)
		case r.Pass():
			passed++
			_, err = fmt.Fprintf(w, "PASS %s\n", name)
		default:
			failed++
			why := "test evaluated to false or undefined"
			if r.Error != nil {
				why = r.Error.Error()
			}
			if r.Location != nil {
				why = fmt.Sprintf("%s:%d: %s", r.Location.File, r.Location.Row, why)
			}
			_, err = fmt.Fprintf(w, "FAIL %s: %s\n", name, why)
		}
		if err != nil {
			return passed, failed, sluice.Errorf(sluice.EInternal, "policy: writing test results: %v", err)
		}
	}
	return passed, failed, nil
}
