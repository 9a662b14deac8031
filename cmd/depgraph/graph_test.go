package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayering: no package imports across the rules (above all, nothing
// on the agent side imports the broker), and docs/packages.md shows the
// graph as it is.
func TestLayering(t *testing.T) {
	root := filepath.Join("..", "..")
	g, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if v := g.Violations(); len(v) > 0 {
		t.Fatalf("layering broken:\n%s", strings.Join(v, "\n"))
	}
	have, err := os.ReadFile(filepath.Join(root, "docs", "packages.md"))
	if err != nil {
		t.Fatalf("%v (run: go run ./cmd/depgraph > docs/packages.md)", err)
	}
	if string(have) != g.Markdown() {
		t.Fatal("docs/packages.md is stale; run: go run ./cmd/depgraph > docs/packages.md")
	}
}

// TestViolationsFound: a graph that breaks a rule is reported, read
// from go list's output.
func TestViolationsFound(t *testing.T) {
	g, err := Parse(`github.com/sluice-gov/sluice
github.com/sluice-gov/sluice/planner github.com/sluice-gov/sluice fmt
github.com/sluice-gov/sluice/broker github.com/sluice-gov/sluice/broker/audit
github.com/sluice-gov/sluice/broker/audit github.com/sluice-gov/sluice/broker
github.com/sluice-gov/sluice/adapters/agent github.com/sluice-gov/sluice/broker/audit github.com/sluice-gov/sluice/planner
`)
	if err != nil {
		t.Fatal(err)
	}
	v := g.Violations()
	if len(v) != 2 || !strings.Contains(v[0], "adapters/agent imports broker/audit") ||
		!strings.Contains(v[1], "broker/audit imports broker (the broker's packages never import the Flight SQL service") {
		t.Fatalf("violations %q", v)
	}
	if _, err := Parse("example.com/other fmt"); err == nil || !strings.Contains(err.Error(), "outside module") {
		t.Fatalf("a package of another module: %v", err)
	}
}
