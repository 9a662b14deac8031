// Command tourcheck checks that the README's tour prints what the README
// says it prints.
//
//	go run ./cmd/tourcheck [-readme README.md] [-keep] [-timeout 60s] [-v]
//
// It builds ./cmd/sluice of the README's module once, starts a fresh
// 'sluice demo' in a temporary folder on a free port, runs every command
// of the README's ```console blocks in order against it (rewriting
// "go run ./cmd/sluice" into the built binary and adding the flags that
// point the command at that demo instead of the default .sluice-demo on
// 127.0.0.1:47470), and compares each command's stdout and stderr with the
// lines the README shows after it.
//
// Values that differ from run to run by design are normalised, and only
// those (see classes in norm.go): identifiers, hashes and grant times are
// bound to the run's values the first time an output shows them and must
// then stay consistent, in outputs and in the later commands they are
// substituted into; dates are compared exactly when the tour runs on the
// day the README's ran (else bound like ids); audit event times and
// measured durations match any value of their shape; the number of signed
// audit checkpoints depends on how fast the tour ran. Where the paragraph
// that leads into a console block says the values are noisy (differential
// privacy), the numbers of a query's result table are compared by shape.
// Everything else — rows, counts, sums, reasons, messages, "…" — must
// match exactly; commands run in an empty folder with SLUICE_* unset.
//
// It prints one line per command (ok, or differs with a unified diff) and
// exits 0 when every output matches, 1 when one differs or a command could
// not be run, 2 when the tour could not be set up (README, build, demo),
// 130 when interrupted. The demo is always stopped.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	readme  string
	keep    bool
	timeout time.Duration
	ready   time.Duration
	verbose bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tourcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.readme, "readme", "README.md", "the README whose tour to check; ./cmd/sluice is built from its folder")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder (binary, demo files, demo log, each command's output)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up on one command after this long")
	fs.DurationVar(&o.ready, "ready-timeout", 5*time.Minute, "give up when the demo is not serving after this long")
	fs.BoolVar(&o.verbose, "v", false, "print each command as run, with the flags added")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: go run ./cmd/tourcheck [-readme README.md] [-keep] [-timeout 60s] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tourcheck: unexpected arguments %q\n", fs.Args())
		return 2
	}
	code, err := check(ctx, o, stdout)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "tourcheck: interrupted; the demo is stopped")
		return 130
	}
	if err != nil {
		fmt.Fprintln(stderr, "tourcheck:", err)
		return 2
	}
	return code
}

func check(ctx context.Context, o options, w io.Writer) (code int, err error) {
	began := time.Now()
	readme, err := filepath.Abs(o.readme)
	if err != nil {
		return 2, err
	}
	raw, err := os.ReadFile(readme)
	if err != nil {
		return 2, err
	}
	steps, err := parseReadme(string(raw))
	if err != nil {
		return 2, fmt.Errorf("%s: %v", o.readme, err)
	}
	if len(steps) == 0 {
		return 2, fmt.Errorf("%s has no commands in ```console blocks", o.readme)
	}
	root := filepath.Dir(readme)
	if _, err := os.Stat(filepath.Join(root, "cmd", "sluice")); err != nil {
		return 2, fmt.Errorf("no ./cmd/sluice next to %s: %v", o.readme, err)
	}

	tmp, err := os.MkdirTemp("", "tourcheck-")
	if err != nil {
		return 2, err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(w, "kept %s (sluice binary, demo/, demo.log, out/NN.txt)\n", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	// Commands run in an empty folder: should a flag fail to point one at
	// the temporary demo, it finds no .sluice-demo and fails visibly
	// rather than reach a demo the developer runs in the repository.
	work := filepath.Join(tmp, "work")
	outDir := filepath.Join(tmp, "out")
	for _, d := range []string{work, outDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return 2, err
		}
	}

	bin := filepath.Join(tmp, "sluice")
	fmt.Fprintf(w, "tourcheck: %s — %d commands; building ./cmd/sluice …\n", o.readme, len(steps))
	t0 := time.Now()
	if err := buildSluice(ctx, root, bin); err != nil {
		return 2, err
	}
	buildTook := time.Since(t0)

	addr, err := freeAddr()
	if err != nil {
		return 2, err
	}
	demoDir := filepath.Join(tmp, "demo")
	t0 = time.Now()
	d, err := startDemo(ctx, bin, work, addr, demoDir, filepath.Join(tmp, "demo.log"), o.ready)
	if err != nil {
		return 2, err
	}
	defer d.stop()
	fmt.Fprintf(w, "tourcheck: built in %v; demo serving on %s after %v (%s)\n",
		buildTook.Round(time.Second), addr, time.Since(t0).Round(100*time.Millisecond), demoDir)

	tg := &target{bin: bin, work: work, dir: demoDir, addr: addr, cache: map[string][]flagDefault{}}
	b := newBindings()
	// Dates depend on the day the tour runs. On the README's own day they
	// must be the README's; on another day they are bound like ids.
	readmeDay := tourDay(steps)
	now := time.Now()
	// Due dates count working days in the calendar's zone (the demo's is
	// sluice.DefaultTimeZone), so that day must match too.
	calDay := now.Format(time.DateOnly)
	if loc, err := time.LoadLocation(sluice.DefaultTimeZone); err == nil {
		calDay = now.In(loc).Format(time.DateOnly)
	}
	if readmeDay != "" && now.UTC().Format(time.DateOnly) == readmeDay && now.Format(time.DateOnly) == readmeDay && calDay == readmeDay {
		b.exactDates = true
		fmt.Fprintf(w, "tourcheck: the README's tour ran on %s, and so does this one: dates are compared exactly\n\n", readmeDay)
	} else if readmeDay != "" {
		fmt.Fprintf(w, "tourcheck: the README's tour ran on %s, this one on %s (%s in %s, where due dates are counted): dates are bound to this run's (a wrong due date goes unnoticed)\n\n", readmeDay, now.Format(time.DateOnly), calDay, sluice.DefaultTimeZone)
	}
	if o.verbose {
		fmt.Fprintln(w, "volatile values (everything else is compared exactly):")
		for _, c := range classes {
			mode := "bound"
			if c.mode == wild {
				mode = "any value of its shape"
			}
			fmt.Fprintf(w, "  %-20s %-22s %s\n", c.name, mode, c.why)
		}
		fmt.Fprintln(w)
	}
	var nOK, nDiff, nErr int
	vars := map[string]string{} // set by NAME=$(command) lines
	tourBegan := time.Now()
	for i, st := range steps {
		if ctx.Err() != nil {
			return 130, ctx.Err()
		}
		select {
		case <-d.done:
			return 2, fmt.Errorf("the demo stopped during the tour (%v); its log:\n%s", d.err, tail(d.log, 30))
		default:
		}
		where := fmt.Sprintf("%s:%d", filepath.Base(o.readme), st.Line)
		label := fmt.Sprintf("[%2d] %s", i+1, where)
		args, why := sluiceArgs(st)
		display := clip(st.Text, 100)
		if why == "" {
			display = clip("sluice "+showVars(shellQuote(args)), 100)
			if st.Assign != "" {
				display = clip(st.Assign+"=$(sluice "+showVars(shellQuote(args))+")", 100)
			}
		}
		if why != "" {
			nErr++
			fmt.Fprintf(w, "%-22s CANNOT RUN  $ %s\n    %s\n\n", label, display, why)
			continue
		}
		var pinned []string
		for k := range args {
			var p []string
			args[k], p = b.substitute(args[k], where)
			pinned = append(pinned, p...)
		}
		var verr error
		for k := range args {
			if args[k], verr = expandVars(args[k], vars); verr != nil {
				break
			}
		}
		if verr != nil {
			nErr++
			fmt.Fprintf(w, "%-22s CANNOT RUN  $ %s\n    %v\n\n", label, clip(st.Text, 100), verr)
			continue
		}
		full, added, err := tg.point(ctx, args)
		if ctx.Err() != nil {
			return 130, ctx.Err()
		}
		if err != nil {
			nErr++
			fmt.Fprintf(w, "%-22s CANNOT RUN  $ %s\n    %v (the CLI offers no flag to reach the temporary demo)\n\n", label, display, err)
			continue
		}
		if o.verbose {
			fmt.Fprintf(w, "%s $ sluice %s\n    (added %s)\n", label, shellQuote(full), strings.Join(added, " "))
		}
		out, captured, status, took := runStep(ctx, tg, full, o.timeout, st.Assign != "")
		if st.Assign != "" {
			// As a shell does: stdout without its trailing newlines.
			vars[st.Assign] = strings.TrimRight(captured, "\n")
		}
		os.WriteFile(filepath.Join(outDir, fmt.Sprintf("%02d.txt", i+1)), []byte("$ sluice "+shellQuote(full)+"\n"+out), 0o644)
		if ctx.Err() != nil {
			return 130, ctx.Err()
		}
		noisy := st.Noisy && args[0] == "query"
		res := compareOutput(b, st.Expected, out, where, noisy)
		state := "ok"
		if !res.OK {
			state = "DIFFERS"
			nDiff++
		} else {
			nOK++
		}
		fmt.Fprintf(w, "%-22s %-10s $ %s  (%s, %v)\n", label, state, display, status, took.Round(10*time.Millisecond))
		for _, p := range pinned {
			if isDate.MatchString(p) {
				continue // a date given as input: nothing to remark
			}
			fmt.Fprintf(w, "    note: %s is input here (no earlier output showed it): pinned, later outputs must show it as written\n", p)
		}
		for _, n := range res.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
		if res.Noisy && st.NoiseWhy != "" {
			fmt.Fprintf(w, "    (the README says: %q)\n", st.NoiseWhy)
		}
		if !res.OK {
			fmt.Fprintln(w, indent(res.Diff, "    "))
		}
	}
	tourTook := time.Since(tourBegan)
	d.stop()

	if ch := b.changed(); len(ch) > 0 {
		fmt.Fprintf(w, "\nvolatile values, README → this run:\n")
		for _, c := range ch {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	fmt.Fprintf(w, "\n%d commands: %d ok, %d differ, %d could not run; tour %v, total %v\n",
		len(steps), nOK, nDiff, nErr, tourTook.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
	if nDiff > 0 || nErr > 0 {
		return 1, nil
	}
	return 0, nil
}

// sluiceArgs returns the arguments after "go run ./cmd/sluice", or why the
// command is not one the tool can run.
func sluiceArgs(st step) ([]string, string) {
	if st.Err != nil {
		return nil, st.Err.Error()
	}
	w := st.Words
	if len(w) < 4 || w[0] != "go" || w[1] != "run" || (w[2] != "./cmd/sluice" && w[2] != "./cmd/sluice/") {
		return nil, "not a 'go run ./cmd/sluice …' command"
	}
	if w[3] == "demo" {
		return nil, "the tour's demo is the one this tool starts"
	}
	return append([]string{}, w[3:]...), ""
}

// runStep runs one command with its stdout and stderr interleaved as a
// terminal shows them, for at most timeout. With capture, as in
// NAME=$(command), the terminal shows only stderr: stdout is returned
// apart, as the value of the variable.
func runStep(ctx context.Context, tg *target, args []string, timeout time.Duration, capture bool) (string, string, string, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := newCmd(ctx, tg.work, tg.bin, args...)
	var out, captured bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // one pipe: the order of the lines is kept
	if capture {
		cmd.Stdout = &captured
	}
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	status := "exit 0"
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		status = fmt.Sprintf("killed after %v", timeout)
		out.WriteString(fmt.Sprintf("\n[tourcheck: no answer within %v; killed]\n", timeout))
	case errors.As(err, &ee):
		status = fmt.Sprintf("exit %d", ee.ExitCode())
	case err != nil:
		status = err.Error()
	}
	return out.String(), captured.String(), status, took
}

var isDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// clip puts s on one line of at most n characters.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func indent(s, pre string) string {
	s = strings.TrimRight(s, "\n")
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}
