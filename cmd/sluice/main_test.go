package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInvocations checks that every bad command line ends with a clear
// message and a non-zero exit, without panicking or waiting on a network.
func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("department: [\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"query"}, "exactly one SQL statement"},
		{[]string{"query", "--purpose", "x", "--format", "xml", "SELECT 1"}, "--format must be table, csv or json"},
		{[]string{"query", "SELECT 1"}, "--purpose is required"},
		{[]string{"query", "--purpose", "p", "--users", filepath.Join(dir, "none.json"), "--user", "bob", "SELECT 1"}, "cannot read the users file"},
		{[]string{"query", "--purpose", "p", "--token", "", "--nonsense", "SELECT 1"}, "flag provided but not defined"},
		{[]string{"query", "--purpose", "p", "--token", "t", "--ca", filepath.Join(dir, "none.crt"), "SELECT 1"}, "--ca"},
		{[]string{"demo", "--scale", "0"}, "--scale must be between 1 and 1000"},
		{[]string{"demo", "extra"}, "demo takes no arguments"},
		{[]string{"demo", "--addr", "not-an-address", "--dir", dir}, "not host:port"},
		{[]string{"broker"}, "--config is required"},
		{[]string{"broker", "--config", filepath.Join(dir, "missing.yaml")}, "cannot read"},
		{[]string{"agent"}, "--config is required"},
		{[]string{"agent", "--config", badYAML}, "not valid department YAML"},
		{[]string{"agent", "--config", badYAML, "--batch-rows", "0"}, "--batch-rows must be between"},
		{[]string{"catalog"}, "usage: sluice catalog"},
		{[]string{"catalog", "show"}, "one department.dataset"},
		{[]string{"policy"}, "usage: sluice policy"},
		{[]string{"policy", "explain", "--user", "bob"}, "needs --user, --purpose"},
		{[]string{"policy", "nope"}, "unknown policy command"},
		{[]string{"audit"}, "usage: sluice audit"},
		{[]string{"audit", "tail", "-n", "0", "--store", filepath.Join(dir, "a.db")}, "-n must be between"},
		{[]string{"audit", "verify", "--config", filepath.Join(dir, "missing.yaml")}, "cannot read"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			err := run(ctx, tc.args, &out, &errOut)
			if err == nil {
				t.Fatalf("want an error, got none; stdout %q", out.String())
			}
			msg := describe(err) + errOut.String()
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not contain %q", msg, tc.want)
			}
			var ee *exitError
			if !errors.As(err, &ee) && !strings.Contains(msg, "cannot read") && !strings.Contains(msg, "YAML") {
				t.Logf("note: %T is not a usage error (exit 1)", err)
			}
		})
	}
}

func TestFormatFloatAndWidth(t *testing.T) {
	if got := formatFloat(4301.041078212291); got != "4301.041078" {
		t.Fatalf("formatFloat = %q", got)
	}
	if got := formatFloat(5.445102362204724e+06); got != "5445102.362205" {
		t.Fatalf("formatFloat = %q", got)
	}
	if displayWidth("城东区") != 6 || displayWidth("abc") != 3 {
		t.Fatal("display width of CJK must count 2 per character")
	}
}

func TestLineDiff(t *testing.T) {
	var b bytes.Buffer
	if writeLineDiff(&b, "a\nb\nc", "a\nb\nc", 1) || b.Len() != 0 {
		t.Fatalf("equal texts differ: %q", b.String())
	}
	b.Reset()
	if !writeLineDiff(&b, "a\nb\nc\nd", "a\nx\nc\nd", 0) {
		t.Fatal("a change was not found")
	}
	if got := b.String(); !strings.Contains(got, "- b\n") || !strings.Contains(got, "+ x\n") || strings.Contains(got, "  d") {
		t.Fatalf("diff = %q", got)
	}
}
