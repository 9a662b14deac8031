//go:build duckdb_arrow

package sandbox

import (
	"errors"
	"math/rand"
	"testing"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// randExpr builds an arbitrary (often ill-typed) expression tree over
// exprSchema's columns.
func randExpr(r *rand.Rand, depth int) *planner.Expr {
	leaf := func() *planner.Expr {
		switch r.Intn(9) {
		case 0:
			return null()
		case 1:
			return i(int64(r.Intn(7) - 3))
		case 2:
			return f([]string{"0", "1.5", "-2.25", "1e300"}[r.Intn(4)])
		case 3:
			return s([]string{"", "a%", "_b", "2020-01-01", `\`, "黄%"}[r.Intn(6)])
		case 4:
			return bl(r.Intn(2) == 0)
		default:
			return c([]string{"a", "b", "s", "flag", "d", "dt", "ts"}[r.Intn(7)])
		}
	}
	if depth <= 0 || r.Intn(4) == 0 {
		return leaf()
	}
	sub := func() *planner.Expr { return randExpr(r, depth-1) }
	switch r.Intn(10) {
	case 0:
		return un([]string{"-", "NOT", "~"}[r.Intn(3)], sub())
	case 1, 2:
		ops := []string{"+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "AND", "OR"}
		return bin(sub(), ops[r.Intn(len(ops))], sub())
	case 3:
		names := []string{"lower", "upper", "length", "substr", "trim", "abs", "round", "coalesce"}
		args := []*planner.Expr{sub()}
		for k := r.Intn(3); k > 0; k-- {
			args = append(args, sub())
		}
		return fn(names[r.Intn(len(names))], args...)
	case 4:
		return isNull(sub(), r.Intn(2) == 0)
	case 5:
		return in(r.Intn(2) == 0, sub(), sub(), sub())
	case 6:
		return between(r.Intn(2) == 0, sub(), sub(), sub())
	case 7:
		return like(r.Intn(2) == 0, sub(), sub())
	default:
		args := []*planner.Expr{sub(), sub(), sub()}
		if r.Intn(2) == 0 {
			args = append(args, sub())
		}
		return caseE(r.Intn(2) == 0, r.Intn(2) == 0, args...)
	}
}

// TestRandomExpressionsNeverPanic runs random expressions, as projections
// and as filters, through the engine path: each either fails with a
// *sluice.Error (from the renderer or the engine) or yields a column.
// (The answers of random expressions are checked against the old
// operators' in the golden corpus, testdata/engine/random.json.)
func TestRandomExpressionsNeverPanic(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 300
	}
	r := rand.New(rand.NewSource(1))
	p := exprPath(t, 0)
	ok, ran := 0, 0
	for k := 0; k < n; k++ {
		e := randExpr(r, 4)
		for _, plan := range []*planner.Node{project("x", e), nProject(nFilter(nFrag(0), e), "rn", c("rn"))} {
			res, err := p.run(plan, pathOpts{})
			var se *sluice.Error
			if err != nil && !errors.As(err, &se) {
				t.Fatalf("untyped error %T %v\n%s", err, err, plan.Normalized())
			}
			if res.q != nil {
				ran++
			}
			if err == nil && plan.Op == planner.OpSort {
				ok++
				if len(res.rows) != len(exprRows) {
					t.Fatalf("%d rows from a projection of %d\n%s", len(res.rows), len(exprRows), plan.Normalized())
				}
			}
		}
	}
	t.Logf("%d random expressions: %d valid projections; %d plans reached the engine", n, ok, ran)
	if ok < n/10 {
		t.Errorf("only %d of %d random expressions were valid; the generator is too hostile", ok, n)
	}
}
