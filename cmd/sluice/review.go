package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
)

const defaultBrokerConfig = ".sluice-demo/broker.yaml"

const policyUsage = `Usage: sluice policy <command> [flags]

The Rego policy that decides every query: its tests, a decision explained, its revisions.

Commands:
  test      run the policy's tests                         [--policy-dir DIR]
  explain   explain a decision without running the query   --user U --purpose P "SQL"
  show      the policy's modules                           [--revision REV [--data]] [--policy-dir DIR]
  list      the revisions the broker has decided under     [--config broker.yaml | --store FILE]
  diff      what changed between two revisions             REV1 REV2

Run 'sluice policy <command> -h' for the flags of a command.
`

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("usage: sluice policy test [--policy-dir DIR] | explain --user U --purpose P \"SQL\" | show [--revision REV] | list | diff REV1 REV2 (see 'sluice policy -h')")
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "test":
		fs := newFlags("policy test", "policy test [--policy-dir DIR]", stderr)
		dir := fs.String("policy-dir", "", "also run the *_test.rego files of this folder (with its modules)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		var dirs []string
		if *dir != "" {
			dirs = append(dirs, *dir)
		}
		passed, failed, err := policy.RunTests(ctx, stdout, dirs...)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
		if failed > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%d policy tests failed", failed)}
		}
		return nil
	case "explain":
		fs := newFlags("policy explain", `policy explain [--config broker.yaml] --user U --purpose P "SQL"`, stderr)
		config := fs.String("config", defaultBrokerConfig, "broker configuration (catalog, users, grants, policy)")
		user := fs.String("user", "", "the user to decide for (required)")
		purpose := fs.String("purpose", "", "the declared purpose (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *user == "" || *purpose == "" || fs.NArg() != 1 {
			return usageErr(`policy explain needs --user, --purpose and one SQL statement in quotes`)
		}
		parts, err := loadParts(ctx, *config)
		if err != nil {
			return err
		}
		p, ok := parts.Users.Lookup(*user)
		if !ok {
			return usageErr("no user %q in %s", *user, parts.Config.Users)
		}
		plan, dec, err := parts.Explain(ctx, p, *purpose, fs.Arg(0))
		if err != nil {
			return err
		}
		printExplain(stdout, plan, dec)
		return nil
	case "show":
		fs := newFlags("policy show", "policy show [--revision REV [--config broker.yaml]] [--policy-dir DIR]", stderr)
		dir := fs.String("policy-dir", "", "include the security-team modules of this folder")
		rev := fs.String("revision", "", "show the policy as it stood at this revision (from an audit entry), read from the broker's store")
		config := fs.String("config", defaultBrokerConfig, "broker configuration naming the store (with --revision)")
		store := fs.String("store", "", "the broker's store file (overrides --config)")
		withData := fs.Bool("data", false, "with --revision: also print the data document (catalog, purposes, grants)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *rev != "" {
			pr, err := loadRevision(ctx, *config, *store, *rev)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "# revision %s, first in force %s\n", pr.Revision, pr.FirstSeen.Local().Format(time.RFC3339))
			printModules(stdout, pr.Modules)
			if *withData {
				fmt.Fprintf(stdout, "# ---- data ----\n%s\n", prettyJSON(pr.Data))
			}
			return nil
		}
		var opts []policy.Option
		if *dir != "" {
			opts = append(opts, policy.WithPolicyDir(*dir))
		}
		eng, err := policy.New(ctx, opts...)
		if err != nil {
			return err
		}
		printModules(stdout, eng.Modules())
		return nil
	case "list":
		fs := newFlags("policy list", "policy list [--config broker.yaml]", stderr)
		config := fs.String("config", defaultBrokerConfig, "broker configuration naming the store")
		store := fs.String("store", "", "the broker's store file (overrides --config)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		l, err := openLogAt(ctx, *config, *store)
		if err != nil {
			return err
		}
		defer l.Close()
		revs, err := l.PolicyRevisions(ctx)
		if err != nil {
			return err
		}
		rows := make([][]string, 0, len(revs))
		for _, r := range revs {
			rows = append(rows, []string{r.Revision, r.FirstSeen.Local().Format("2006-01-02 15:04:05"), strings.Join(r.Modules, ", ")})
		}
		printTable(stdout, []string{"revision", "first in force", "modules"}, rows)
		return nil
	case "diff":
		fs := newFlags("policy diff", "policy diff [--config broker.yaml] REV1 REV2", stderr)
		config := fs.String("config", defaultBrokerConfig, "broker configuration naming the store")
		store := fs.String("store", "", "the broker's store file (overrides --config)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() != 2 {
			return usageErr("policy diff takes two revisions (see 'sluice policy list')")
		}
		a, err := loadRevision(ctx, *config, *store, fs.Arg(0))
		if err != nil {
			return err
		}
		b, err := loadRevision(ctx, *config, *store, fs.Arg(1))
		if err != nil {
			return err
		}
		names := map[string]bool{}
		for n := range a.Modules {
			names[n] = true
		}
		for n := range b.Modules {
			names[n] = true
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		changed := false
		for _, n := range sorted {
			var buf strings.Builder
			if writeLineDiff(&buf, a.Modules[n], b.Modules[n], 3) {
				changed = true
				fmt.Fprintf(stdout, "--- module %s\n%s", n, buf.String())
			}
		}
		var buf strings.Builder
		if writeLineDiff(&buf, prettyJSON(a.Data), prettyJSON(b.Data), 3) {
			changed = true
			fmt.Fprintf(stdout, "--- data (catalog, purposes, grants)\n%s", buf.String())
		}
		if !changed {
			fmt.Fprintln(stdout, "the two revisions have the same modules and data")
		}
		return nil
	}
	return usageErr("unknown policy command %q: use test, explain, show, list or diff", sub)
}

func loadParts(ctx context.Context, config string) (*broker.Parts, error) {
	cfg, err := broker.LoadConfig(config)
	if err != nil {
		return nil, err
	}
	return broker.LoadParts(ctx, cfg)
}

func printExplain(w io.Writer, plan *planner.Plan, dec *policy.Decision) {
	fmt.Fprintf(w, "datasets:  %s\n", strings.Join(plan.Datasets, ", "))
	fmt.Fprintln(w, "lineage:")
	for _, u := range plan.Usages {
		uses := make([]string, len(u.Usages))
		for i, x := range u.Usages {
			uses[i] = string(x)
		}
		t := ""
		if u.Transformed {
			t = " (through an expression)"
		}
		fmt.Fprintf(w, "  %s.%s: %s%s\n", u.Dataset, u.Column, strings.Join(uses, ", "), t)
	}
	fmt.Fprintf(w, "aggregate-only result: %v\n", plan.Aggregate)
	fmt.Fprintln(w, dec.Explain())
	if dec.Allow {
		fmt.Fprintf(w, "plan:\n%s\n", plan.Normalized())
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func printModules(w io.Writer, mods map[string]string) {
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "# ---- %s ----\n%s\n", n, mods[n])
	}
}

func prettyJSON(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(raw)
	}
	return string(out)
}

func openLogAt(ctx context.Context, config, store string) (*audit.Log, error) {
	l, _, err := openLog(ctx, &auditFlags{config: config, store: store})
	return l, err
}

func loadRevision(ctx context.Context, config, store, rev string) (*audit.PolicyRevision, error) {
	l, err := openLogAt(ctx, config, store)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return l.PolicyRevision(ctx, rev)
}
