package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/broker/audit"
)

// TestAuditArchiveAndVerifyCLI archives old entries with the CLI and checks
// that verify passes across the archive and fails without it.
func TestAuditArchiveAndVerifyCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := filepath.Join(dir, "broker.db")
	l, err := audit.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour)
	for i := 0; i < 10; i++ {
		at := old
		if i >= 6 {
			at = time.Now()
		}
		e := &audit.Entry{Kind: audit.KindQuery, QueryID: "q", Principal: "bob", Decision: audit.DecisionDeny, Time: at}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.RecordPolicyRevision(ctx, "sha256:aa", map[string]string{"sluice.rego": "package a\n\nx := 1\n"}, []byte(`{"k":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordPolicyRevision(ctx, "sha256:bb", map[string]string{"sluice.rego": "package a\n\nx := 2\n"}, []byte(`{"k":1}`)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	archives := filepath.Join(dir, "archive")
	runOK := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(ctx, args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return out.String()
	}
	if got := runOK("audit", "archive", "--store", store, "--older-than", "24h", "--dir", archives); !strings.Contains(got, "archived entries 1–6 (6)") {
		t.Fatalf("archive output: %q", got)
	}
	if got := runOK("audit", "verify", "--store", store, "--archive-dir", archives); !strings.Contains(got, "audit chain OK: 10 entries, 1 archives") {
		t.Fatalf("verify across the archive: %q", got)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify", "--store", store}, &out, &out); err == nil || !strings.Contains(out.String(), "pass the archive files") {
		t.Fatalf("verify without the archive must fail and say so: %v %q", err, out.String())
	}
	if got := runOK("audit", "search", "--store", store, "--principal", "bob", "-n", "2"); !strings.Contains(got, "#10") {
		t.Fatalf("search: %q", got)
	}
	if got := runOK("policy", "diff", "--store", store, "sha256:aa", "sha256:bb"); !strings.Contains(got, "- x := 1") || !strings.Contains(got, "+ x := 2") {
		t.Fatalf("policy diff: %q", got)
	}
	if got := runOK("policy", "list", "--store", store); !strings.Contains(got, "sha256:aa") || !strings.Contains(got, "sha256:bb") {
		t.Fatalf("policy list: %q", got)
	}
	if got := runOK("policy", "show", "--store", store, "--revision", "sha256:aa"); !strings.Contains(got, "x := 1") {
		t.Fatalf("policy show --revision: %q", got)
	}
}
