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

// TestViolationsFound: a graph that breaks a rule is reported.
func TestViolationsFound(t *testing.T) {
	g := &Graph{Imports: map[string][]string{"adapters/agent": {"broker/audit", "planner"}, "planner": {"."}, ".": nil, "broker/audit": nil}}
	v := g.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "adapters/agent imports broker/audit") {
		t.Fatalf("violations %v", v)
	}
}
