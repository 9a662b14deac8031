package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/sluice-gov/sluice/sandbox/engine"
)

// buildInfo is what 'sluice version' reports.
type buildInfo struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	Revision  string `json:"vcs_revision,omitempty"`
	Time      string `json:"vcs_time,omitempty"`
	// Modified is set when the working tree had uncommitted changes; nil
	// when the binary carries no version control information (go run, go
	// test, -buildvcs=false).
	Modified *bool  `json:"vcs_modified,omitempty"`
	Tags     string `json:"tags"`
	// DuckDB says whether the binary was built with -tags duckdb_arrow,
	// i.e. has the sandbox engine that cross-department queries need.
	DuckDB bool `json:"duckdb_arrow"`
}

// readBuildInfo collects the build information of this binary.
func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return fromBuildInfo(bi)
}

// fromBuildInfo reads what the Go toolchain stamped into the binary (nil:
// nothing, as for a binary built without module support).
func fromBuildInfo(bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Module: "github.com/sluice-gov/sluice", Version: "(unknown)", GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, DuckDB: engine.Available}
	if bi == nil {
		return b
	}
	if bi.Main.Path != "" {
		b.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			m := s.Value == "true"
			b.Modified = &m
		case "-tags":
			b.Tags = s.Value
		}
	}
	return b
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the build information as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("version takes no arguments, got %q", fs.Args())
	}
	b := readBuildInfo()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	}
	fmt.Fprintf(stdout, "sluice %s\n", b.Version)
	fmt.Fprintf(stdout, "  module:     %s\n", b.Module)
	fmt.Fprintf(stdout, "  go:         %s %s\n", b.GoVersion, b.Platform)
	switch {
	case b.Revision == "":
		fmt.Fprintf(stdout, "  revision:   unknown (no version control information: built by go run or go test, or with -buildvcs=false)\n")
	default:
		state := ""
		if b.Modified != nil && *b.Modified {
			state = " (modified: uncommitted changes)"
		} else if b.Modified != nil {
			state = " (clean)"
		}
		fmt.Fprintf(stdout, "  revision:   %s%s\n", b.Revision, state)
		if b.Time != "" {
			fmt.Fprintf(stdout, "  committed:  %s\n", b.Time)
		}
	}
	tags := b.Tags
	if tags == "" {
		tags = "(none)"
	}
	fmt.Fprintf(stdout, "  build tags: %s\n", tags)
	if b.DuckDB {
		fmt.Fprintf(stdout, "  sandbox:    DuckDB engine built in (duckdb_arrow): queries across departments run\n")
	} else {
		fmt.Fprintf(stdout, "  sandbox:    none (built without -tags duckdb_arrow): queries across departments fail\n")
	}
	return nil
}
