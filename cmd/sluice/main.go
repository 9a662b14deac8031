// Command sluice is the one binary of Sluice: the demo, the broker, the
// department agent, and the tools of analysts, admins and auditors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	sluice "github.com/sluice-gov/sluice"
)

const usage = `sluice — a privacy-preserving federated query broker

Usage: sluice <command> [flags] [arguments]

Commands:
  demo      generate the demo world and serve it (four agents and a broker on loopback)
  broker    run the broker (Flight SQL over TLS)            --config broker.yaml
  agent     run a department agent (Arrow Flight over TLS)   --config dept.yaml
  query     run SQL through a broker and print the result    --purpose P "SQL"
  catalog   browse and register the data resource catalog    list | show | search | export | changes | register-agent | tables | propose | classify | remove
  policy    test the Rego policy or explain a decision       test | explain | show
  audit     review the audit log                             verify | tail | search | show | export | reconcile | archive | alerts
  budget    differential-privacy budgets of a principal      --principal NAME
  version   the module version and build information         [--json]

Data-sharing workflow (over the broker's admin API; --admin, --ca, --token or --user):
  applications  apply for data and review applications    submit | list | show | forward | approve | refuse | withdraw | overdue
  grants        grants from approved applications         list | revoke
  reports       data error reports to providers (纠错)    submit | list | show | ack | correct | reject
  usage         usage statistics per day and dataset      [--dataset D] [--department D] [--since DATE] [--until DATE]
  purposes      the purposes registry                     list | set | remove
  users         platform users                            list | set
  tokens        users' bearer tokens                      list | issue | revoke
  whoami        who your credentials authenticate as

Run 'sluice <command> -h' for the flags of a command; docs/cli-workflow.md walks through the workflow.
`

// exitError carries a process exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	code := exitCode(err)
	if code != 0 {
		fmt.Fprintln(os.Stderr, "sluice:", describe(err))
	}
	stop()
	os.Exit(code)
}

func describe(err error) string {
	var ce *sluice.ConfigError
	if errors.As(err, &ce) {
		return "configuration error: " + ce.Error()
	}
	return err.Error()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "broker":
		return cmdBroker(ctx, rest, stdout, stderr)
	case "agent":
		return cmdAgent(ctx, rest, stdout, stderr)
	case "query":
		return cmdQuery(ctx, rest, stdout, stderr)
	case "catalog":
		return cmdCatalog(ctx, rest, stdout, stderr)
	case "policy":
		return cmdPolicy(ctx, rest, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, rest, stdout, stderr)
	case "budget":
		return cmdBudget(ctx, rest, stdout, stderr)
	case "applications":
		return cmdApplications(ctx, rest, stdout, stderr)
	case "grants":
		return cmdGrants(ctx, rest, stdout, stderr)
	case "reports":
		return cmdReports(ctx, rest, stdout, stderr)
	case "usage":
		return cmdUsage(ctx, rest, stdout, stderr)
	case "purposes":
		return cmdPurposes(ctx, rest, stdout, stderr)
	case "users":
		return cmdUsers(ctx, rest, stdout, stderr)
	case "tokens":
		return cmdTokens(ctx, rest, stdout, stderr)
	case "whoami":
		return cmdWhoami(ctx, rest, stdout, stderr)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", cmd)}
	}
}

// newFlags makes a flag set that reports errors instead of exiting, so
// every bad flag gets one clear message.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// isHelp reports whether arg asks for help rather than naming a command.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// exitCode is the process exit code for what run returned: 0 for nil and
// for -h (the usage was printed as asked), the code of an exitError, else 1.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// parseFlags parses and turns flag errors into usage errors (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	return nil
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
