package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseReadme(t *testing.T) {
	raw, err := os.ReadFile("testdata/tour.md")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := parseReadme(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line     int
		words    []string
		expected []string
		noisy    bool
	}{
		{10, []string{"go", "run", "./cmd/sluice", "catalog", "list", "--user", "alice"}, []string{
			"dataset         | share class",
			"----------------+------------",
			"civil.residents | conditional",
			"(1 datasets)",
		}, false},
		{20, []string{"go", "run", "./cmd/sluice", "query", "--user", "bob", "--purpose", "enterprise-credit",
			"SELECT district, COUNT(*) AS n\n     FROM market.enterprises WHERE status = '存续' GROUP BY district"}, []string{
			"district | n",
			"---------+----",
			"城东区   | 367",
			"(1 row)",
		}, false},
		{33, []string{"go", "run", "./cmd/sluice", "query", "--user", "alice", "--purpose", "public-health-planning",
			"SELECT insurance_type, COUNT(*) AS insured FROM health.insured GROUP BY insurance_type"}, []string{
			"insurance_type | insured",
			"---------------+--------",
			"employee       | 7156",
			"(1 row)",
		}, true},
		{38, []string{"go", "run", "./cmd/sluice", "budget", "--principal", "alice"}, []string{
			"purpose                | ε spent",
			"-----------------------+--------",
			"public-health-planning | 0.25",
		}, true},
		{49, []string{"go", "run", "./cmd/sluice", "query", "--user", "bob", "--purpose", "x", "SELECT * FROM police.criminal_records"},
			[]string{"sluice: PermissionDenied: denied by policy"}, false},
		{52, []string{"go", "run", "./cmd/sluice", "applications", "submit", "--user", "erin", "--from", "2026-12-02",
			"--justification", `it's "needed"`, "--until", "2027-05-22"}, []string{
			"submitted application app-20261203-59aa7275 to civil",
			"status submitted; the platform's first review is due 2026-12-08",
		}, false},
		{56, []string{"go", "run", "./cmd/sluice", "applications", "approve", "app-20261203-59aa7275", "--user", "cheng"},
			[]string{"  valid until: 2027-05-22 23:59"}, false},
		{58, []string{"ls", "-l"}, []string{"total 0"}, false},
	}
	if len(steps) != len(want) {
		for _, s := range steps {
			t.Logf("line %d: %q", s.Line, s.Words)
		}
		t.Fatalf("got %d steps, want %d", len(steps), len(want))
	}
	for i, w := range want {
		s := steps[i]
		if s.Err != nil {
			t.Errorf("step %d: %v", i+1, s.Err)
		}
		if s.Line != w.line {
			t.Errorf("step %d: line %d, want %d", i+1, s.Line, w.line)
		}
		if !reflect.DeepEqual(s.Words, w.words) {
			t.Errorf("step %d: words\n%q\nwant\n%q", i+1, s.Words, w.words)
		}
		if !reflect.DeepEqual(s.Expected, w.expected) {
			t.Errorf("step %d: expected output\n%q\nwant\n%q", i+1, s.Expected, w.expected)
		}
		if s.Noisy != w.noisy {
			t.Errorf("step %d: noisy %v, want %v (%q)", i+1, s.Noisy, w.noisy, s.NoiseWhy)
		}
	}
	if why := steps[2].NoiseWhy; why != "Counts with Laplace noise (the true count is 7160)." {
		t.Errorf("noise sentence %q", why)
	}
	if args, why := sluiceArgs(steps[7]); args != nil || why == "" {
		t.Errorf("ls is not a sluice command: %q %q", args, why)
	}
	if args, why := sluiceArgs(steps[0]); why != "" || strings.Join(args, " ") != "catalog list --user alice" {
		t.Errorf("sluice args %q (%s)", args, why)
	}
}

func TestParseReadmeErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"open quote", "```console\n$ go run ./cmd/sluice query \"SELECT\n```\n", "does not end before the block"},
		{"unclosed block", "```console\n$ go run ./cmd/sluice audit verify\n", "not closed"},
		{"output first", "```console\nhello\n$ go run ./cmd/sluice audit verify\n```\n", "output before any command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := parseReadme(tc.text)
			if err == nil && len(steps) > 0 && steps[0].Err != nil {
				err = steps[0].Err
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{`a b  c`, []string{"a", "b", "c"}, ""},
		{"a \\\n  b", []string{"a", "b"}, ""},
		{`a "b c" 'd "e"' f\ g`, []string{"a", "b c", `d "e"`, "f g"}, ""},
		{"q \"x\n  y\"", []string{"q", "x\n  y"}, ""},
		{`"a\"b\\c\d"`, []string{`a"b\c\d`}, ""},
		{`x"y"'z'`, []string{"xyz"}, ""},
		{`""`, []string{""}, ""},
		{`a "b`, nil, "continues"},
		{`a \`, nil, "continues"},
		{`a 'b`, nil, "continues"},
		{`echo $HOME`, []string{"echo", varMark("HOME")}, ""},
		{`echo "$HOME/x" ${A}b`, []string{"echo", varMark("HOME") + "/x", varMark("A") + "b"}, ""},
		{`echo $(date)`, nil, "unsupported"},
		{`echo "$1"`, nil, "unsupported"},
		{"echo \"`date`\"", nil, "unsupported"},
		{`a | b`, nil, "unsupported"},
		{`COUNT(*)`, nil, "unsupported"},
		{`a # comment`, nil, "unsupported"},
		{`a b#c`, []string{"a", "b#c"}, ""},
	} {
		got, err := splitWords(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
