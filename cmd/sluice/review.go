package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
)

const defaultBrokerConfig = ".sluice-demo/broker.yaml"

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("usage: sluice policy test [--policy-dir DIR] | explain --user U --purpose P \"SQL\" | show")
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
		fs := newFlags("policy show", "policy show [--policy-dir DIR]", stderr)
		dir := fs.String("policy-dir", "", "include the security-team modules of this folder")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		var opts []policy.Option
		if *dir != "" {
			opts = append(opts, policy.WithPolicyDir(*dir))
		}
		eng, err := policy.New(ctx, opts...)
		if err != nil {
			return err
		}
		for name, src := range eng.Modules() {
			fmt.Fprintf(stdout, "# ---- %s ----\n%s\n", name, src)
		}
		return nil
	}
	return usageErr("unknown policy command %q: use test, explain or show", sub)
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
		fmt.Fprintf(w, "fragment:  %s\n", plan.Fragment.Normalized())
	}
}

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "tail") {
		return usageErr("usage: sluice audit verify [--config broker.yaml | --store FILE] | sluice audit tail [-n N] [--json]")
	}
	sub := args[0]
	fs := newFlags("audit "+sub, "audit "+sub+" [--config broker.yaml | --store FILE]", stderr)
	config := fs.String("config", defaultBrokerConfig, "broker configuration naming the store")
	store := fs.String("store", "", "the audit store file (overrides --config)")
	n := fs.Int("n", 20, "tail: how many entries")
	asJSON := fs.Bool("json", false, "tail: print full entries as JSON lines")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *store == "" {
		cfg, err := broker.LoadConfig(*config)
		if err != nil {
			return err
		}
		*store = cfg.Store
	}
	if sub == "verify" {
		rep, err := audit.VerifyFile(ctx, *store)
		if err != nil {
			return err
		}
		if !rep.OK {
			fmt.Fprintf(stdout, "audit chain BROKEN at entry %d: %s (%d entries checked)\n", rep.FirstBad, rep.Problem, rep.Entries)
			return &exitError{code: 1, err: fmt.Errorf("the audit chain does not verify")}
		}
		fmt.Fprintf(stdout, "audit chain OK: %d entries, head %s\n", rep.Entries, rep.Head)
		return nil
	}
	if *n < 1 || *n > 100000 {
		return usageErr("-n must be between 1 and 100000, got %d", *n)
	}
	log, err := audit.Open(ctx, *store)
	if err != nil {
		return err
	}
	defer log.Close()
	entries, err := log.Tail(ctx, *n)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for i := range entries {
			if err := enc.Encode(&entries[i]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range entries {
		what := e.SQL
		if what == "" && len(e.Reasons) > 0 {
			what = e.Reasons[0]
		}
		line := fmt.Sprintf("#%d %s %-8s %-6s %-6s %s purpose=%s rows=%d", e.Seq, e.Time.Format("2006-01-02 15:04:05"), e.Kind, e.Decision, e.Principal, shortID(e.QueryID), e.Purpose, e.Rows)
		if e.Error != "" {
			line += " error=" + firstLine(e.Error)
		}
		fmt.Fprintf(stdout, "%s\n    %s\n", line, firstLine(what))
	}
	return nil
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
