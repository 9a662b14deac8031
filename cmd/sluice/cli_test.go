package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/cmd/sluice/demo"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

// TestHelpExitsZero: -h of every command and command group prints its usage
// and exits 0, never "unknown command" and never a failure.
func TestHelpExitsZero(t *testing.T) {
	cmds := [][]string{
		{}, {"demo"}, {"broker"}, {"agent"}, {"query"}, {"budget"}, {"version"},
		{"catalog"}, {"catalog", "list"}, {"catalog", "show"}, {"catalog", "register-agent"},
		{"policy"}, {"policy", "test"}, {"policy", "explain"}, {"policy", "show"}, {"policy", "list"}, {"policy", "diff"},
		{"audit"}, {"audit", "verify"}, {"audit", "tail"}, {"audit", "search"}, {"audit", "show"}, {"audit", "export"},
		{"audit", "reconcile"}, {"audit", "archive"}, {"audit", "alerts"},
		{"applications"}, {"applications", "submit"}, {"applications", "forward"}, {"grants"}, {"grants", "revoke"},
		{"reports"}, {"usage"}, {"purposes"}, {"users"}, {"tokens"}, {"whoami"},
	}
	for _, c := range cmds {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var out, errOut bytes.Buffer
				err := run(ctx, args, &out, &errOut)
				if code := exitCode(err); code != 0 {
					t.Fatalf("exit %d (%v); stderr %q", code, err, errOut.String())
				}
				all := out.String() + errOut.String()
				if !strings.Contains(strings.ToLower(all), "usage") {
					t.Fatalf("no usage printed: %q", all)
				}
				if strings.Contains(all, "unknown") {
					t.Fatalf("-h called unknown: %q", all)
				}
			})
		}
	}
	// The groups' help goes to stdout, so 'sluice audit -h | less' works.
	for _, g := range []string{"policy", "audit"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{g, "-h"}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "verify") && !strings.Contains(out.String(), "explain") {
			t.Fatalf("sluice %s -h printed no commands on stdout: %q", g, out.String())
		}
		// tourcheck reads flags from -h; a group's help must not look like
		// a command's flag list.
		for _, ln := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(ln, "  -") {
				t.Fatalf("sluice %s -h lists a flag line %q; its flags belong to its commands", g, ln)
			}
		}
	}
	if exitCode(flag.ErrHelp) != 0 || exitCode(usageErr("x")) != 2 || exitCode(errors.New("x")) != 1 || exitCode(nil) != 0 {
		t.Fatal("exitCode is wrong")
	}
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"sluice ", "module:", "go:         " + runtime.Version(), "revision:", "build tags:", "sandbox:"} {
		if !strings.Contains(text, want) {
			t.Fatalf("version output lacks %q:\n%s", want, text)
		}
	}
	if engine.Available != strings.Contains(text, "DuckDB engine built in (duckdb_arrow)") {
		t.Fatalf("version output does not say whether the sandbox engine is built in (engine.Available=%v):\n%s", engine.Available, text)
	}
	out.Reset()
	if err := run(context.Background(), []string{"version", "--json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var b buildInfo
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out.String())
	}
	if b.GoVersion != runtime.Version() || b.DuckDB != engine.Available || b.Module == "" || b.Version == "" {
		t.Fatalf("version --json = %+v", b)
	}
	if err := run(context.Background(), []string{"version", "extra"}, &out, &errOut); exitCode(err) != 2 {
		t.Fatalf("version extra: %v", err)
	}
}

// TestVersionFromBuildInfo: what 'go build' stamps (a module version, the
// revision, a dirty tree, the tags) is what 'sluice version' reports.
func TestVersionFromBuildInfo(t *testing.T) {
	b := fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/sluice-gov/sluice", Version: "v0.0.0-20261203175921-62f750394b8f+dirty"},
		Settings: []debug.BuildSetting{{Key: "-tags", Value: "duckdb_arrow"}, {Key: "vcs.revision", Value: "62f750394b8f"}, {Key: "vcs.time", Value: "2026-12-03T17:59:21Z"}, {Key: "vcs.modified", Value: "true"}}})
	if b.Version != "v0.0.0-20261203175921-62f750394b8f+dirty" || b.Revision != "62f750394b8f" || b.Modified == nil || !*b.Modified || b.Tags != "duckdb_arrow" || b.Time == "" {
		t.Fatalf("%+v", b)
	}
	if b := fromBuildInfo(nil); b.Version != "(unknown)" || b.Modified != nil || b.GoVersion != runtime.Version() {
		t.Fatalf("without build information: %+v", b)
	}
}

func TestLogFormat(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"broker", "--config", filepath.Join(dir, "broker.yaml"), "--log-format", "xml"},
		{"agent", "--config", filepath.Join(dir, "dept.yaml"), "--log-format", "logfmt"},
		{"demo", "--dir", dir, "--log-format", "JSON"},
	} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if exitCode(err) != 2 || !strings.Contains(describe(err), "--log-format must be text or json, got") {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for format, want := range map[string]string{"json": `{"time":`, "text": "time="} {
		var buf bytes.Buffer
		h, err := logHandler(format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		logTo(h, "broker listening")
		if !strings.HasPrefix(buf.String(), want) || !strings.Contains(buf.String(), "broker listening") {
			t.Fatalf("%s log: %q", format, buf.String())
		}
		if format == "json" {
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["addr"] != "127.0.0.1:1" {
				t.Fatalf("json log line %q: %v", buf.String(), err)
			}
		}
	}
}

// TestBrokerNotRunning: a query to an address where no broker listens says
// what to check, not gRPC's transport message alone.
func TestBrokerNotRunning(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	for _, args := range [][]string{
		{"query", "--addr", addr, "--token", "t", "--insecure-skip-verify", "--timeout", "10s", "--purpose", "p", "SELECT 1 FROM civil.residents"},
		{"catalog", "list", "--addr", addr, "--token", "t", "--insecure-skip-verify", "--timeout", "10s"},
	} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		msg := describe(err)
		for _, want := range []string{"cannot reach a broker at " + addr, "connection refused", "sluice demo", "--addr"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("%s: %q lacks %q", args[0], msg, want)
			}
		}
		if exitCode(err) != 1 {
			t.Fatalf("exit %d", exitCode(err))
		}
	}
	// The admin API's commands likewise.
	err = run(context.Background(), []string{"whoami", "--admin", addr, "--token", "t", "--insecure-skip-verify", "--timeout", "10s"}, &bytes.Buffer{}, &bytes.Buffer{})
	msg := describe(err)
	for _, want := range []string{"cannot reach the admin API at", addr, "connection refused", "sluice demo", "--admin"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("whoami: %q lacks %q", msg, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runDemoUntilServing runs 'sluice demo args...' until it says it is
// running, then stops it as Ctrl-C would, and returns its stdout.
func runDemoUntilServing(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"demo", "--addr", "127.0.0.1:0"}, args...), &out, &bytes.Buffer{})
	}()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
		select {
		case err := <-done:
			t.Fatalf("demo %v ended before serving: %v\n%s", args, err, out.String())
		case <-deadline:
			t.Fatalf("demo %v is not serving after 2 minutes:\n%s", args, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo %v: %v", args, err)
	}
	return out.String()
}

// TestDemoNewReuseReset: the demo says whether it generates a new world or
// reuses the one in --dir, and --reset starts over.
func TestDemoNewReuseReset(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo three times")
	}
	dir := filepath.Join(t.TempDir(), "world")
	if out := runDemoUntilServing(t, "--dir", dir); !strings.Contains(out, "Generating a new demo world in "+dir) {
		t.Fatalf("first run:\n%s", out)
	}
	if !demo.Exists(dir) {
		t.Fatal("no demo world after the first run")
	}
	if out := runDemoUntilServing(t, "--dir", dir); !strings.Contains(out, "Reusing the demo world in "+dir) || !strings.Contains(out, "--reset") {
		t.Fatalf("second run:\n%s", out)
	}
	out := runDemoUntilServing(t, "--dir", dir, "--reset")
	if !strings.Contains(out, "Removed the demo world in "+dir) || !strings.Contains(out, "Generating a new demo world in "+dir) {
		t.Fatalf("--reset run:\n%s", out)
	}
}

// TestDemoResetRefusesOtherFolders: --reset deletes nothing in a folder
// that is not a demo world, or that holds files a demo does not write.
func TestDemoResetRefusesOtherFolders(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("mine"), 0o600)
	err := run(context.Background(), []string{"demo", "--dir", dir, "--reset", "--addr", "127.0.0.1:0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(describe(err), "does not hold a demo world") {
		t.Fatalf("reset of a foreign folder: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "users.json"), []byte("[]"), 0o600)
	err = run(context.Background(), []string{"demo", "--dir", dir, "--reset", "--addr", "127.0.0.1:0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(describe(err), "notes.txt") || !strings.Contains(describe(err), "nothing was deleted") {
		t.Fatalf("reset of a demo folder with other files: %v", err)
	}
	if _, err := os.Stat(notes); err != nil {
		t.Fatalf("--reset deleted a file it does not own: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users.json")); err != nil {
		t.Fatalf("--reset deleted part of the world after refusing: %v", err)
	}
	// Not while a demo (anything) listens on --addr.
	os.Remove(notes)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = run(context.Background(), []string{"demo", "--dir", dir, "--reset", "--addr", busy.Addr().String()}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(describe(err), "is a demo still running there") {
		t.Fatalf("reset under a running demo: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users.json")); err != nil {
		t.Fatalf("--reset deleted the world of a running demo: %v", err)
	}
}

func logTo(h slog.Handler, msg string) { slog.New(h).Info(msg, "addr", "127.0.0.1:1") }

// TestSubmitPrintID: --print-id prints the new application's id alone on
// stdout, for APP=$(sluice applications submit … --print-id), and the
// summary on stderr, where a terminal still shows it.
func TestSubmitPrintID(t *testing.T) {
	f := newFakeAdmin(t)
	tc := &adminCase{name: "submit --print-id", method: "POST", path: "/v1/applications", status: 201,
		body: `{"items":[{"dataset":"health.insured","columns":["chronic_disease"]}],"purpose":"subsidy-review","justification":"verify subsidy eligibility","valid_from":"` +
			localDay(2026, 3, 1, false) + `","valid_until":"` + localDay(2026, 6, 30, true) + `","mode":"aggregate","k":10}`,
		answer: appSubmitted}
	args := append([]string{"applications", "submit", "--dataset", "health.insured", "--columns", "chronic_disease", "--purpose", "subsidy-review",
		"--justification", "verify subsidy eligibility", "--from", "2026-03-01", "--until", "2026-06-30", "--mode", "aggregate", "--k", "10", "--print-id"}, f.flags()...)
	out, errOut, calls, err := f.exec(t, tc, args)
	if err != nil || calls != 1 {
		t.Fatalf("%v (%d calls)\n%s", err, calls, errOut)
	}
	if out != "app-20260302-aaaa0001\n" {
		t.Fatalf("stdout %q, want the id alone", out)
	}
	if !strings.Contains(errOut, "submitted application app-20260302-aaaa0001 to health") || !strings.Contains(errOut, "first review is due") {
		t.Fatalf("stderr lacks the summary: %q", errOut)
	}
	_, _, _, err = f.exec(t, tc, append(args, "--json"))
	if exitCode(err) != 2 || !strings.Contains(describe(err), "--print-id and --json") {
		t.Fatalf("--print-id --json: %v", err)
	}
}
