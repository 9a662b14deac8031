package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // "class:token" of each token, in order
	}{
		{"submitted application app-20261203-59aa7275 to civil", []string{"workflow id:app-20261203-59aa7275"}},
		{"grants: app-20261203-59aa7275-1", []string{"workflow id:app-20261203-59aa7275"}},
		{"query 8ce2aad5-96d9-4425-a34a-a36f239e1a12 at 2026-12-03T12:01:50Z by", []string{
			"uuid:8ce2aad5-96d9-4425-a34a-a36f239e1a12", "timestamp:2026-12-03T12:01:50Z"}},
		{"policy revision: sha256:4aa1ec9818bc841d11fe8a230104ba441fa692ba200187bb3ac4f468385f42a1", []string{
			"sha256:4aa1ec9818bc841d11fe8a230104ba441fa692ba200187bb3ac4f468385f42a1"}},
		{"#28 2026-12-03 12:01:52 result   deny   alice  695fa791 purpose=subsidy-review", []string{
			"event time:2026-12-03 12:01:52", "short id:695fa791"}},
		{"queried [health.insured] at 2026-12-03 20:01, outside", []string{"event time:2026-12-03 20:01"}},
		{"the platform's first review is due 2026-12-08", []string{"date:2026-12-08"}},
		{"1 signed checkpoints verified, signed through entry 36", []string{
			"checkpoint progress:1 signed checkpoints verified, signed through entry 36"}},
		{"took 1.234567ms, then 2m3.5s; timeout 60s", []string{"duration:1.234567ms", "duration:2m3.5s"}},
		{"token slc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA issued", []string{
			"token:slc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		// data: numbers, decimals, credit codes, hex-looking words
		{"城东区   | 367         | 5359501.362398", nil},
		{"916301020009768H3B | 12059751 | deadbeef | 12345678", nil},
		{"k = 10, ε = 0.25 of 1", nil},
	} {
		var got []string
		for _, sg := range tokenize(tc.in) {
			if sg.class >= 0 {
				got = append(got, classes[sg.class].name+":"+sg.tok)
			}
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
		var back strings.Builder
		for _, sg := range tokenize(tc.in) {
			back.WriteString(sg.lit + sg.tok)
		}
		if back.String() != tc.in {
			t.Errorf("%q: segments join to %q", tc.in, back.String())
		}
	}
}

func TestSubstitute(t *testing.T) {
	b := newBindings()
	if err := b.bindOne("app-20261203-59aa7275", "app-20270104-0c1d2e3f", 1, "x:1"); err != nil {
		t.Fatal(err)
	}
	got, pinned := b.substitute("app-20261203-59aa7275-1", "x:2")
	if got != "app-20270104-0c1d2e3f-1" || len(pinned) != 0 {
		t.Errorf("got %q, pinned %q", got, pinned)
	}
	got, pinned = b.substitute("--from=2026-12-02", "x:3")
	if got != "--from=2026-12-02" || strings.Join(pinned, ",") != "2026-12-02" {
		t.Errorf("got %q, pinned %q", got, pinned)
	}
	if !b.isPinnedDate("2026-12-02") {
		t.Error("2026-12-02 is not pinned")
	}
	// A pinned date is the run's date too: no other README date may stand for it.
	if err := b.bindOne("2026-12-03", "2026-12-02", 7, "x:4"); err == nil {
		t.Error("2026-12-03 bound to the pinned 2026-12-02")
	}
	// Wild tokens are not substituted or pinned.
	got, pinned = b.substitute("2026-12-03 20:01", "x:5")
	if got != "2026-12-03 20:01" || len(pinned) != 0 {
		t.Errorf("got %q, pinned %q", got, pinned)
	}
}

// TestCases runs the sessions of testdata/norm: each is a sequence of
// commands with the README's output and a run's, and what the comparison
// must say.
func TestCases(t *testing.T) {
	files, _ := filepath.Glob("testdata/norm/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata/norm/*.txt")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b := newBindings()
			for i, st := range parseCase(t, string(raw)) {
				where := fmt.Sprintf("%s step %d", filepath.Base(f), i+1)
				words, err := splitWords(st["cmd"])
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				for k := range words {
					words[k], _ = b.substitute(words[k], where)
				}
				if want, ok := st["subst"]; ok && strings.Join(words, " ") != strings.TrimSpace(want) {
					t.Errorf("%s: command became %q, want %q", where, strings.Join(words, " "), strings.TrimSpace(want))
				}
				if _, ok := st["exactdates"]; ok {
					b.exactDates = true
				}
				_, noisy := st["noisy"]
				res := compareOutput(b, lines(st["readme"]), st["run"], where, noisy)
				got := "ok"
				switch {
				case res.OK:
				case res.Elided:
					got = "elided"
				default:
					got = "differs"
				}
				if want := strings.TrimSpace(st["want"]); got != want {
					t.Errorf("%s: %s, want %s\nnotes: %q\n%s", where, got, want, res.Notes, res.Diff)
				}
				if want, ok := st["note"]; ok && !strings.Contains(strings.Join(res.Notes, "\n"), strings.TrimSpace(want)) {
					t.Errorf("%s: notes %q lack %q", where, res.Notes, strings.TrimSpace(want))
				}
				if want, ok := st["diff"]; ok && strings.TrimRight(res.Diff, "\n") != strings.TrimRight(want, "\n") {
					t.Errorf("%s: diff\n%s\nwant\n%s", where, res.Diff, want)
				}
			}
		})
	}
}

var sectionLine = regexp.MustCompile(`^-- ([a-z]+) --$`)

// parseCase reads a session file: "# comments", then sections "-- name --";
// each "-- cmd --" starts a new step.
func parseCase(t *testing.T, text string) []map[string]string {
	var steps []map[string]string
	var cur map[string]string
	name := ""
	for _, ln := range strings.Split(text, "\n") {
		if m := sectionLine.FindStringSubmatch(ln); m != nil {
			name = m[1]
			if name == "cmd" {
				cur = map[string]string{}
				steps = append(steps, cur)
			}
			if cur == nil {
				t.Fatalf("section %q before any -- cmd --", name)
			}
			cur[name] += ""
			continue
		}
		if cur == nil || name == "" {
			continue // leading comments
		}
		cur[name] += ln + "\n"
	}
	return steps
}

func lines(s string) []string {
	return trimTrailingBlank(strings.Split(s, "\n"))
}

func TestUnifiedDiff(t *testing.T) {
	a := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	b := []string{"a", "B", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	want := `--- x
+++ y
@@ -1,5 +1,5 @@
 a
-b
+B
 c
 d
 e
@@ -8,3 +8,4 @@
 h
 i
 j
+k
`
	if got := unifiedDiff(a, b, "x", "y"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := unifiedDiff(a, a, "x", "y"); got != "" {
		t.Errorf("equal inputs give %q", got)
	}
	if got := unifiedDiff(nil, []string{"x"}, "a", "b"); got != "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("from nothing: %q", got)
	}
}

func TestTourDay(t *testing.T) {
	steps := []step{
		{Expected: []string{"grant expired at 2026-12-02T12:01:16Z", "submitted application app-20261203-59aa7275"}},
		{Expected: []string{"#28 2026-12-03 12:01:52 result", "due 2026-12-08", "due 2026-12-17"}},
	}
	if got := tourDay(steps); got != "2026-12-03" {
		t.Errorf("tour day %q", got)
	}
	if got := tourDay([]step{{Expected: []string{"(5 rows)"}}}); got != "" {
		t.Errorf("tour day of no dates %q", got)
	}
}
