package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The defaults the sluice client commands assume: a demo started in the
// current folder (cmd/sluice/servers.go, client.go, admin_client.go).
const (
	defaultDemoDir  = ".sluice-demo"
	defaultDemoAddr = "127.0.0.1:47470"
)

// cleanEnv is the environment without SLUICE_* variables, so a developer's
// SLUICE_TOKEN or SLUICE_ADDR cannot change what the tour does.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// newCmd makes a command in its own process group, so that a Ctrl-C at
// the terminal reaches this tool (which then stops everything in order)
// and a timeout kills the command with whatever it started.
func newCmd(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// buildSluice builds ./cmd/sluice of the module at root into bin.
func buildSluice(ctx context.Context, root, bin string) error {
	cmd := newCmd(ctx, root, "go", "build", "-tags", "duckdb_arrow", "-o", bin, "./cmd/sluice")
	cmd.Env = os.Environ() // the Go toolchain's own settings stay
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/sluice in %s: %v\n%s", root, err, out)
	}
	return nil
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// demo is a running 'sluice demo'.
type demo struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	log  string
	done chan struct{}
	err  error // set when done is closed
}

// startDemo starts 'sluice demo' on addr with its files in dir and waits
// until it says it is running and its broker accepts connections.
func startDemo(ctx context.Context, bin, work, addr, dir, logFile string, wait time.Duration) (*demo, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	// Not tied to ctx: stop() ends it with an interrupt, as Ctrl-C would.
	cmd := newCmd(context.WithoutCancel(ctx), work, bin, "demo", "--addr", addr, "--dir", dir)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start the demo: %v", err)
	}
	d := &demo{cmd: cmd, addr: addr, dir: dir, log: logFile, done: make(chan struct{})}
	ready := make(chan struct{})
	scanned := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(lf, sc.Text())
			if strings.Contains(sc.Text(), "Sluice demo is running") {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(lf, pr)
	}()
	go func() {
		d.err = cmd.Wait()
		pw.Close()
		<-scanned
		lf.Close()
		close(d.done)
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ready:
	case <-d.done:
		return nil, fmt.Errorf("the demo exited before it was ready (%v); its log:\n%s", d.err, tail(logFile, 30))
	case <-timer.C:
		d.stop()
		return nil, fmt.Errorf("the demo was not ready after %v; its log:\n%s", wait, tail(logFile, 30))
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
	// It said so; check that the broker answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return d, nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("the demo's broker does not answer on %s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop interrupts the demo as Ctrl-C would, and kills it (and anything it
// started) if it has not stopped within 15 seconds.
func (d *demo) stop() {
	if d == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

func tail(file string, n int) string {
	raw, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// target knows which flags point a sluice command at the temporary demo.
// It reads each command's -h: every flag whose default names the default
// demo folder or address gets the temporary demo's equivalent (unless the
// README's command sets it). It also tells where a command's own words end,
// since flags must come right after them.
type target struct {
	bin, work string
	dir, addr string
	cache     map[string][]flagDefault // by command words
}

type flagDefault struct{ name, value string }

var (
	flagLine    = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_-]*)`)
	defaultText = regexp.MustCompile(`\(default "([^"]*)"\)`)
)

// probe runs 'sluice words... -h' and returns the flags whose defaults
// point at the default demo, and whether the help lists flags at all.
func (t *target) probe(ctx context.Context, words []string) ([]flagDefault, bool, error) {
	key := strings.Join(words, " ")
	if fl, ok := t.cache[key]; ok {
		return fl, fl != nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := newCmd(ctx, t.work, t.bin, append(append([]string{}, words...), "-h")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && ctx.Err() != nil {
		return nil, false, fmt.Errorf("sluice %s -h: %v", key, err)
	}
	var (
		fl      = []flagDefault{}
		any     bool
		current string
	)
	for _, ln := range strings.Split(out.String(), "\n") {
		if m := flagLine.FindStringSubmatch(ln); m != nil {
			current, any = m[1], true
		}
		if current == "" {
			continue
		}
		if m := defaultText.FindStringSubmatch(ln); m != nil {
			if v, ok := t.redirect(m[1]); ok {
				fl = append(fl, flagDefault{current, v})
			}
			current = ""
		}
	}
	if !any {
		t.cache[key] = nil
		return nil, false, nil
	}
	t.cache[key] = fl
	return fl, true, nil
}

// redirect maps a default value that names the default demo to the
// temporary demo's equivalent.
func (t *target) redirect(def string) (string, bool) {
	switch {
	case def == defaultDemoAddr:
		return t.addr, true
	case def == defaultDemoDir:
		return t.dir, true
	case strings.HasPrefix(def, defaultDemoDir+"/"):
		return filepath.Join(t.dir, strings.TrimPrefix(def, defaultDemoDir+"/")), true
	}
	return "", false
}

var commandWord = regexp.MustCompile(`^[a-z][a-z-]*$`)

// point returns the arguments with the flags that point the command at
// the temporary demo, inserted right after the command's own words (the
// command, and its subcommand if it has one), and the flags it added.
func (t *target) point(ctx context.Context, args []string) ([]string, []string, error) {
	if len(args) == 0 {
		return nil, nil, errors.New("no sluice command")
	}
	var words []string
	var fl []flagDefault
	found := false
	for n := 1; n <= 2 && n <= len(args) && commandWord.MatchString(args[n-1]); n++ {
		f, hasFlags, err := t.probe(ctx, args[:n])
		if err != nil {
			return nil, nil, err
		}
		if hasFlags {
			words, fl, found = args[:n], f, true
			break
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("cannot tell which flags 'sluice %s' takes: its -h lists none", strings.Join(args[:min(2, len(args))], " "))
	}
	var added []string
	for _, f := range fl {
		if setsFlag(args[len(words):], f.name) {
			continue
		}
		added = append(added, "--"+f.name+"="+f.value)
	}
	out := append(append(append([]string{}, words...), added...), args[len(words):]...)
	return out, added, nil
}

func setsFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		for _, p := range []string{"-", "--"} {
			if a == p+name || strings.HasPrefix(a, p+name+"=") {
				return true
			}
		}
	}
	return false
}
