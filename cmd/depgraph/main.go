// Command depgraph draws the package graph of Sluice from the Go sources
// (production code, not tests) as a Mermaid diagram, and checks the
// layering rules the architecture depends on:
//
//	go run ./cmd/depgraph            # print docs/packages.md
//	go run ./cmd/depgraph -check     # exit 1 if docs/packages.md is stale or a rule is broken
//
// docs/architecture.md explains the graph; the test of this command keeps
// docs/packages.md current.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	check := flag.Bool("check", false, "compare with docs/packages.md and the layering rules instead of printing")
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	g, err := Load(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "depgraph:", err)
		os.Exit(2)
	}
	doc := g.Markdown()
	if !*check {
		fmt.Print(doc)
		return
	}
	bad := false
	for _, v := range g.Violations() {
		fmt.Fprintln(os.Stderr, "depgraph: layering:", v)
		bad = true
	}
	have, err := os.ReadFile(filepath.Join(*root, "docs", "packages.md"))
	if err != nil || !bytes.Equal(have, []byte(doc)) {
		fmt.Fprintln(os.Stderr, "depgraph: docs/packages.md is stale; run: go run ./cmd/depgraph > docs/packages.md")
		bad = true
	}
	if bad {
		os.Exit(1)
	}
}
