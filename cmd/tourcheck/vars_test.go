package main

import (
	"strings"
	"testing"
)

// TestShellVariables: NAME=$(command) lines and $NAME in later commands,
// as the README's workflow tour uses them.
func TestShellVariables(t *testing.T) {
	readme := "```console\n" +
		"$ APP=$(go run ./cmd/sluice applications submit --user erin \\\n" +
		"    --justification \"clinics (new)\" --print-id)\n" +
		"submitted application app-20261203-59aa7275 to civil: civil.residents (district, low_income)\n" +
		"$ go run ./cmd/sluice applications forward \"$APP\" --user dave\n" +
		"forwarded application app-20261203-59aa7275 to civil\n" +
		"$ go run ./cmd/sluice grants revoke \"${APP}-1\" --user cheng $APP\n" +
		"```\n"
	steps, err := parseReadme(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Fatalf("%d steps", len(steps))
	}
	if steps[0].Assign != "APP" || steps[0].Err != nil {
		t.Fatalf("step 1: assign %q, err %v", steps[0].Assign, steps[0].Err)
	}
	args, why := sluiceArgs(steps[0])
	if why != "" || strings.Join(args, "|") != "applications|submit|--user|erin|--justification|clinics (new)|--print-id" {
		t.Fatalf("step 1 args %q (%s)", args, why)
	}
	if len(steps[0].Expected) != 1 || !strings.HasPrefix(steps[0].Expected[0], "submitted application") {
		t.Fatalf("step 1 expected %q", steps[0].Expected)
	}
	vars := map[string]string{"APP": "app-20261204-0badc0de"}
	for i, want := range []string{
		"applications|forward|app-20261204-0badc0de|--user|dave",
		"grants|revoke|app-20261204-0badc0de-1|--user|cheng|app-20261204-0badc0de",
	} {
		args, why := sluiceArgs(steps[i+1])
		if why != "" {
			t.Fatal(why)
		}
		if got := showVars(shellQuote(args)); !strings.Contains(got, "$APP") {
			t.Fatalf("display %q does not show the variable", got)
		}
		for k := range args {
			if args[k], err = expandVars(args[k], vars); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(args, "|"); got != want {
			t.Fatalf("step %d: %q, want %q", i+2, got, want)
		}
	}
	if _, err := expandVars(varMark("NOPE"), vars); err == nil || !strings.Contains(err.Error(), "$NOPE") {
		t.Fatalf("an unset variable: %v", err)
	}
}

func TestAssignmentErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"X=$(go run ./cmd/sluice whoami", "continues"},
		{"X=$(go run ./cmd/sluice whoami) extra", "after X=$(…)"},
		{"X=$(go run $(date))", "nested parentheses"},
		{`go run ./cmd/sluice query "$(date)"`, "only $NAME"},
		{"go run ./cmd/sluice query $1", "only $NAME"},
	} {
		_, _, err := splitCommand(tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.line, err, tc.want)
		}
	}
	// Not an assignment: a plain command.
	if w, name, err := splitCommand("go run ./cmd/sluice whoami --user X=$(y)"); err == nil || name != "" {
		t.Errorf("a $( inside a command: %q %q %v", w, name, err)
	}
}
