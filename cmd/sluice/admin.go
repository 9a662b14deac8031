package main

// Commands over the broker's admin API: catalog registration and search,
// purposes, users and tokens, access applications, grants, error reports,
// usage statistics. Each command takes the connection flags of adminConn
// and --json to print the API's answer as it came.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// adminSub is one subcommand of a command group.
type adminSub struct {
	name     string
	synopsis string // after "sluice ", without the connection flags
	about    string // one line for the group's help
	run      func(ctx context.Context, c *adminCmd, args []string) error
}

// adminCmd is a parsed admin command: its flags, connection and output.
type adminCmd struct {
	name           string
	fs             *flag.FlagSet
	conn           adminConn
	json           bool
	stdout, stderr io.Writer
	connFlags      map[string]bool
}

func newAdminCmd(name, synopsis, about string, stdout, stderr io.Writer) *adminCmd {
	c := &adminCmd{name: name, stdout: stdout, stderr: stderr, connFlags: map[string]bool{}}
	c.fs = newFlags(name, synopsis, stderr)
	c.conn.register(c.fs)
	c.fs.VisitAll(func(f *flag.Flag) { c.connFlags[f.Name] = true })
	c.fs.BoolVar(&c.json, "json", false, "print the API's JSON answer instead of tables")
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s [connection flags]\n\n%s\n", synopsis, about)
		own, conn := flag.NewFlagSet(name, flag.ContinueOnError), flag.NewFlagSet(name, flag.ContinueOnError)
		c.fs.VisitAll(func(f *flag.Flag) {
			dst := own
			if c.connFlags[f.Name] {
				dst = conn
			}
			dst.Var(f.Value, f.Name, f.Usage)
			dst.Lookup(f.Name).DefValue = f.DefValue
		})
		for _, s := range []struct {
			title string
			fs    *flag.FlagSet
		}{{"Flags", own}, {"Connection flags", conn}} {
			n := 0
			s.fs.VisitAll(func(*flag.Flag) { n++ })
			if n > 0 {
				fmt.Fprintf(stderr, "\n%s:\n", s.title)
				s.fs.SetOutput(stderr)
				s.fs.PrintDefaults()
			}
		}
	}
	return c
}

// parse parses flags and positional arguments in any order (flags may
// follow the arguments, as in 'applications approve ID --k 10'); "--" ends
// the flags. It wants exactly the named positional arguments.
func (c *adminCmd) parse(args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(c.fs, args); err != nil {
			return nil, err
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != len(names) {
		want := "no arguments"
		if len(names) > 0 {
			want = strings.Join(names, " ")
		}
		got := "none"
		if len(pos) > 0 {
			got = fmt.Sprintf("%d (%s)", len(pos), strings.Join(pos, " "))
		}
		return nil, usageErr("%s takes %s; got %s (see 'sluice %s -h')", c.name, want, got, c.name)
	}
	for i, p := range pos {
		if strings.TrimSpace(p) == "" {
			return nil, usageErr("%s: %s must not be empty", c.name, names[i])
		}
	}
	return pos, nil
}

// setLimit passes --limit on when given, checked against the API's range.
func (c *adminCmd) setLimit(q url.Values, limit int) error {
	if !c.set("limit") {
		return nil
	}
	if limit < 1 || limit > 10000 {
		return usageErr("--limit must be between 1 and 10000, got %d", limit)
	}
	q.Set("limit", strconv.Itoa(limit))
	return nil
}

// set reports whether a flag was given on the command line.
func (c *adminCmd) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// call runs one API call. With --json it prints the answer and reports
// done; otherwise it decodes the answer into out for the human output.
func (c *adminCmd) call(ctx context.Context, method, path string, query url.Values, body, out any) (done bool, err error) {
	raw, err := c.fetch(ctx, method, path, query, body)
	if err != nil {
		return false, err
	}
	if c.json {
		return true, writeJSON(c.stdout, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return false, sluice.Errorf(sluice.EInternal, "the admin API answered %s %s with JSON this CLI cannot read: %v", method, path, err)
		}
	}
	return false, nil
}

// fetch runs one call and returns the answer's body as it came.
func (c *adminCmd) fetch(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	ac, err := c.conn.dial()
	if err != nil {
		return nil, err
	}
	defer ac.hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, c.conn.timeout)
	defer cancel()
	return ac.do(ctx, method, path, query, body)
}

// writeJSON prints a JSON answer indented, ending with a newline.
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(raw))
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// runGroup dispatches a command group such as 'sluice applications'.
func runGroup(ctx context.Context, group, about string, subs []adminSub, args []string, stdout, stderr io.Writer) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: sluice %s <command> [flags] [connection flags]\n\n%s\n\nCommands:\n", group, about)
		for _, s := range subs {
			fmt.Fprintf(w, "  sluice %s\n      %s\n", s.synopsis, s.about)
		}
		fmt.Fprintf(w, "\nRun 'sluice %s <command> -h' for its flags; every command takes --json.\n", group)
	}
	if len(args) == 0 {
		help(stderr)
		return usageErr("usage: sluice %s <command>; commands: %s", group, subNames(subs))
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		help(stdout)
		return nil
	}
	if strings.HasPrefix(args[0], "-") {
		return usageErr("usage: sluice %s <command> [flags]: name the command (%s) before its flags", group, subNames(subs))
	}
	for _, s := range subs {
		if s.name == args[0] {
			c := newAdminCmd(group+" "+s.name, s.synopsis, s.about, stdout, stderr)
			return s.run(ctx, c, args[1:])
		}
	}
	return usageErr("unknown %s command %q; commands: %s", group, args[0], subNames(subs))
}

func subNames(subs []adminSub) string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.name
	}
	return strings.Join(out, ", ")
}

// runSingle runs a command without subcommands, such as 'sluice whoami'.
func runSingle(ctx context.Context, s adminSub, args []string, stdout, stderr io.Writer) error {
	return s.run(ctx, newAdminCmd(s.name, s.synopsis, s.about, stdout, stderr), args)
}

// --- command groups (the top-level switch in main.go calls these) ---

func cmdPurposes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "purposes", "The purposes registry (用途): the application scenarios data may be used for.", purposeSubs, args, stdout, stderr)
}

func cmdUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "users", "Platform users and their roles (platform admin).", userSubs, args, stdout, stderr)
}

func cmdTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "tokens", "Bearer tokens of users: listed without secrets, issued once, revoked at once.", tokenSubs, args, stdout, stderr)
}

func cmdApplications(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "applications", "Access applications (供需对接): apply, platform first review (3 working days), provider answer (10 working days).", applicationSubs, args, stdout, stderr)
}

func cmdGrants(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "grants", "Grants created by approved applications.", grantSubs, args, stdout, stderr)
}

func cmdReports(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "reports", "Data error reports (纠错): users report, the provider corrects at the source.", reportSubs, args, stdout, stderr)
}

func cmdUsage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSingle(ctx, usageSub, args, stdout, stderr)
}

func cmdWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSingle(ctx, whoamiSub, args, stdout, stderr)
}

// adminCatalogCommand reports whether 'sluice catalog NAME' is an admin API
// command (the others, list and show, go over Flight SQL).
func adminCatalogCommand(name string) bool {
	switch name {
	case "help", "-h", "-help", "--help":
		return true
	}
	for _, s := range catalogSubs {
		if s.name == name {
			return true
		}
	}
	return false
}

func cmdCatalogAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "catalog", "The data resource catalog (政务数据资源目录). 'sluice catalog list [--department D]' and\n'sluice catalog show department.dataset' read it over Flight SQL (see 'sluice catalog list -h');\nthe commands below use the broker's admin API.", catalogSubs, args, stdout, stderr)
}

// --- argument parsing shared by the commands ---

// parseDay reads a date (YYYY-MM-DD, local time) or an RFC 3339 time. A
// date means the start of that day, or with endOfDay its last second, so
// that '--until 2026-06-30' includes the 30th.
func parseDay(flagName, v string, endOfDay bool) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, v, time.Local)
	if err != nil {
		return time.Time{}, usageErr("--%s %q is not a date: write YYYY-MM-DD (or an RFC 3339 time)", flagName, v)
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1).Add(-time.Second)
	}
	return d, nil
}

// parseRowFilter reads col=v1,v2: the grant covers only rows whose column
// holds one of the values.
func parseRowFilter(flagName, v string) (*sluice.RowFilter, error) {
	col, vals, ok := strings.Cut(v, "=")
	col = strings.TrimSpace(col)
	if !ok || !sluice.ValidIdentifier(col) {
		return nil, usageErr("--%s %q: write column=value1,value2 (e.g. district=城东区,城西区)", flagName, v)
	}
	f := &sluice.RowFilter{Column: col}
	for _, x := range strings.Split(vals, ",") {
		x = strings.TrimSpace(x)
		if x == "" {
			return nil, usageErr("--%s %q: a value is empty; write column=value1,value2", flagName, v)
		}
		f.Values = append(f.Values, x)
	}
	if len(f.Values) > 100 {
		return nil, usageErr("--%s: at most 100 values, got %d", flagName, len(f.Values))
	}
	return f, nil
}

// oneOf checks an enumerated flag value.
func oneOf(flagName, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return usageErr("--%s must be %s; got %q", flagName, orList(allowed), v)
}

func orList(xs []string) string {
	if len(xs) <= 1 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// checkDataset wants department.dataset.
func checkDataset(flagName, v string) error {
	d, n, ok := strings.Cut(v, ".")
	if !ok || !sluice.ValidIdentifier(d) || !sluice.ValidIdentifier(n) {
		return usageErr("--%s %q: write department.dataset, e.g. civil.residents", flagName, v)
	}
	return nil
}

// --- human output ---

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateOnly)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func fmtRowFilter(f *sluice.RowFilter) string {
	if f == nil {
		return "-"
	}
	return f.Column + " in (" + strings.Join(f.Values, ", ") + ")"
}

// fields prints "label: value" lines aligned, skipping empty values.
func fields(w io.Writer, kv [][2]string) {
	width := 0
	for _, p := range kv {
		if p[1] != "" {
			width = max(width, displayWidth(p[0]))
		}
	}
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(w, "  %s:%s %s\n", p[0], strings.Repeat(" ", width-displayWidth(p[0])), p[1])
	}
}
