package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/cmd/sluice/demo"
	"github.com/sluice-gov/sluice/sandbox/engine"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [--addr 127.0.0.1:47470] [--dir .sluice-demo] [--scale N] [--reset] [-v] [--log-format text|json]", stderr)
	addr := fs.String("addr", "127.0.0.1:47470", "broker address (host:port); agents listen on free ports of the same host")
	dir := fs.String("dir", ".sluice-demo", "folder for the generated databases, certificates and configuration")
	scale := fs.Int("scale", 1, "multiplies the row counts (1 = 20,000 residents)")
	verbose := fs.Bool("v", false, "log every query (never values) to stderr")
	logFormat := fs.String("log-format", "text", "format of the log on stderr: text or json (setting it turns -v on)")
	reset := fs.Bool("reset", false, "delete the demo world in --dir (audit logs, applications, grants, tokens) and generate a new one")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("demo takes no arguments, got %q", fs.Args())
	}
	if *scale < 1 || *scale > 1000 {
		return usageErr("--scale must be between 1 and 1000, got %d", *scale)
	}
	handler, err := logHandler(*logFormat, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose || flagSet(fs, "log-format") {
		log = slog.New(handler)
	}
	warnNoEngine(stderr)
	if *reset {
		// A demo still serving this world would lose its files under it.
		if err := addrFree(*addr); err != nil {
			return sluice.Errorf(sluice.EUnavailable, "--reset: cannot listen on %s (is a demo still running there? stop it first): %v", *addr, err)
		}
		removed, err := demo.Reset(*dir)
		if err != nil {
			return err
		}
		if removed {
			fmt.Fprintf(stdout, "Removed the demo world in %s (--reset).\n", *dir)
		}
	}
	if demo.Exists(*dir) {
		fmt.Fprintf(stdout, "Reusing the demo world in %s: its audit log, applications, grants, registered datasets and tokens are kept; the databases and configuration are rewritten (scale %d). 'sluice demo --reset' starts over.\n", *dir, *scale)
	} else {
		fmt.Fprintf(stdout, "Generating a new demo world in %s (scale %d)…\n", *dir, *scale)
	}
	r, err := demo.Start(ctx, demo.RunOptions{Addr: *addr, Dir: *dir, Scale: *scale, Logger: log})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(*dir)
	fmt.Fprintf(stdout, `
Sluice demo is running.
  broker (Flight SQL, TLS)  %s
  admin API (HTTPS)         https://%s  (auditors: GET /v1/alerts, /v1/audit/entries)
  console (browser)         https://%[2]s/console/  (sign in with a token from the users file)
  agents                    civil %s, health %s, market %s, police %s
  users and tokens          %s
  broker certificate        %s
  audit log                 %s

Query it from another terminal (the defaults of 'sluice query' point at this demo):
  go run ./cmd/sluice query --user bob --purpose enterprise-credit \
    "SELECT name, household_district, migrant FROM police.household LIMIT 3"
  go run ./cmd/sluice query --user alice --purpose subsidy-review \
    "SELECT insurance_type, COUNT(*) AS n, AVG(annual_claims) AS avg_claims FROM health.insured GROUP BY insurance_type"
  go run ./cmd/sluice catalog list --user alice
  go run ./cmd/sluice audit verify --config %s

Press Ctrl-C to stop.
`, r.BrokerAddr, r.AdminAddr, r.AgentAddrs["civil"], r.AgentAddrs["health"], r.AgentAddrs["market"], r.AgentAddrs["police"],
		r.UsersFile, r.BrokerCert, filepath.Join(abs, "broker.db"), r.BrokerConfig)
	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping…")
	return r.Stop()
}

// warnNoEngine says so when this binary has no sandbox engine: queries
// across departments would fail.
func warnNoEngine(stderr io.Writer) {
	if !engine.Available {
		fmt.Fprintln(stderr, "warning: this binary was built without -tags duckdb_arrow, so it has no sandbox engine and every query across departments will fail; run it with: go run -tags duckdb_arrow ./cmd/sluice ...")
	}
}

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("broker", "broker --config broker.yaml [--store FILE|postgres://...] [--policy-dir DIR] [--log-format text|json]", stderr)
	config := fs.String("config", "", "broker configuration file (required)")
	storeFlag := fs.String("store", "", "the broker's state store (overrides store): a SQLite file, or postgres://user@host:port/db?sslmode=... for PostgreSQL")
	policyDir := fs.String("policy-dir", "", "folder of additional security-team .rego files (overrides policy_dir)")
	logFormat := fs.String("log-format", "text", "format of the log on stderr: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	handler, err := logHandler(*logFormat, stderr)
	if err != nil {
		return err
	}
	if *config == "" {
		return usageErr("--config is required: the broker's YAML configuration (see docs/configuration.md)")
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return err
	}
	if *policyDir != "" {
		cfg.PolicyDir = *policyDir
	}
	if *storeFlag != "" {
		cfg.Store = *storeFlag
	}
	warnNoEngine(stderr)
	log := slog.New(handler)
	srv, closeFn, err := broker.Open(ctx, cfg, broker.WithLogger(log))
	if err != nil {
		return err
	}
	defer closeFn()
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return sluice.Errorf(sluice.EUnavailable, "cannot listen on %s: %v", cfg.Listen, err)
	}
	fmt.Fprintf(stdout, "sluice broker listening on %s\n", lis.Addr())
	log.Info("broker listening", "addr", lis.Addr().String())
	if cfg.AdminListen != "" {
		alis, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return sluice.Errorf(sluice.EUnavailable, "cannot listen on %s (admin_listen): %v", cfg.AdminListen, err)
		}
		fmt.Fprintf(stdout, "sluice admin API listening on https://%s\n", alis.Addr())
		go func() {
			if err := srv.ServeAdmin(ctx, alis); err != nil {
				log.Error("admin API stopped", "err", err)
			}
		}()
	}
	return srv.Serve(ctx, lis)
}

func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("agent", "agent --config dept.yaml [--listen host:port] [--log-format text|json]", stderr)
	config := fs.String("config", "", "department configuration file (required)")
	listen := fs.String("listen", "", "address to listen on (default: agent.address of the configuration)")
	batch := fs.Int("batch-rows", 4096, "rows per Arrow record batch")
	logFormat := fs.String("log-format", "text", "format of the log on stderr: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	handler, err := logHandler(*logFormat, stderr)
	if err != nil {
		return err
	}
	if *config == "" {
		return usageErr("--config is required: the department's YAML configuration")
	}
	if *batch < 1 || *batch > 1<<20 {
		return usageErr("--batch-rows must be between 1 and 1048576, got %d", *batch)
	}
	dept, err := sluice.LoadDepartment(*config)
	if err != nil {
		return err
	}
	addr := *listen
	if addr == "" {
		addr = dept.Agent.Address
	}
	if addr == "" {
		return usageErr("no address: set agent.address in %s or pass --listen", *config)
	}
	log := slog.New(handler)
	aopts := []agent.Option{agent.WithLogger(log), agent.WithBatchRows(*batch)}
	if dept.Agent.Registry != "" {
		aopts = append(aopts, agent.WithRegistry(dept.Agent.Registry))
	}
	srv, err := agent.New(ctx, dept, aopts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return sluice.Errorf(sluice.EUnavailable, "cannot listen on %s: %v", addr, err)
	}
	fmt.Fprintf(stdout, "sluice agent of department %s listening on %s\n", dept.ID, lis.Addr())
	log.Info("agent listening", "department", dept.ID, "addr", lis.Addr().String())
	if dept.Agent.MetricsListen != "" {
		olis, err := net.Listen("tcp", dept.Agent.MetricsListen)
		if err != nil {
			lis.Close()
			return sluice.Errorf(sluice.EUnavailable, "cannot listen on %s (agent.metrics_listen): %v", dept.Agent.MetricsListen, err)
		}
		fmt.Fprintf(stdout, "agent metrics and health on http://%s (/metrics, /healthz, /readyz)\n", olis.Addr())
		go func() {
			if err := srv.ServeOps(ctx, olis); err != nil {
				log.Error("agent metrics listener stopped", "err", err)
			}
		}()
	}
	return srv.Serve(ctx, lis)
}

// addrFree reports an error when nothing can listen on addr now.
func addrFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// logHandler is the slog handler of --log-format: text (key=value lines)
// or json (one JSON object a line, for log collectors).
func logHandler(format string, w io.Writer) (slog.Handler, error) {
	switch format {
	case "text":
		return slog.NewTextHandler(w, nil), nil
	case "json":
		return slog.NewJSONHandler(w, nil), nil
	}
	return nil, usageErr("--log-format must be text or json, got %q", format)
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
