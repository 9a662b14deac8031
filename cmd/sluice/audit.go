package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

const auditUsage = `usage: sluice audit <command> [--config broker.yaml | --store FILE] [flags]
  verify     check the hash chain, checkpoint signatures and archives [--agent-log dept=FILE]
  tail       the most recent entries                         [-n N] [--json]
  search     entries by time, principal, department, dataset, column, purpose, decision, kind
  show SEQ   one entry in full, with the other entries of its query
  export     matching entries as JSON Lines (the canonical, hash-verifiable bodies)
  reconcile  compare the broker's record of each fragment with each agent's own log
  archive    move entries older than --older-than into compressed archives in --dir
  alerts     the alerts raised by the review rules`

// auditFlags are the flags every audit command shares.
type auditFlags struct {
	config, store string
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.config, "config", defaultBrokerConfig, "broker configuration naming the store and keys")
	fs.StringVar(&a.store, "store", "", "the audit store file (overrides --config)")
}

// resolve returns the store path and, when a configuration is readable, it.
func (a *auditFlags) resolve() (string, *broker.Config, error) {
	if a.store != "" {
		cfg, _ := broker.LoadConfig(a.config)
		return a.store, cfg, nil
	}
	cfg, err := broker.LoadConfig(a.config)
	if err != nil {
		return "", nil, err
	}
	return cfg.Store, cfg, nil
}

// filterFlags are the search filters.
type filterFlags struct {
	principal, department, dataset, column, purpose, decision, kind, query, since, until string
	limit                                                                                int
}

func (f *filterFlags) register(fs *flag.FlagSet, defLimit int) {
	fs.StringVar(&f.principal, "principal", "", "only this principal")
	fs.StringVar(&f.department, "department", "", "only principals of this department")
	fs.StringVar(&f.dataset, "dataset", "", "only entries that used this department.dataset")
	fs.StringVar(&f.column, "column", "", "only entries that used this column (name or department.dataset.column)")
	fs.StringVar(&f.purpose, "purpose", "", "only this declared purpose")
	fs.StringVar(&f.decision, "decision", "", "allow, deny, error or alert")
	fs.StringVar(&f.kind, "kind", "", "query, result, metadata, auth, alert")
	fs.StringVar(&f.query, "query-id", "", "only this query")
	fs.StringVar(&f.since, "since", "", "from this time (RFC 3339, YYYY-MM-DD, or a duration ago such as 24h)")
	fs.StringVar(&f.until, "until", "", "before this time (same forms)")
	fs.IntVar(&f.limit, "n", defLimit, "at most this many entries (the most recent)")
}

func (f *filterFlags) filter(now time.Time) (audit.Filter, error) {
	out := audit.Filter{Principal: f.principal, Department: f.department, Dataset: f.dataset, Column: f.column,
		Purpose: f.purpose, Decision: f.decision, Kind: f.kind, QueryID: f.query, Limit: f.limit}
	var err error
	if out.Since, err = parseWhen(f.since, now); err != nil {
		return out, usageErr("--since: %v", err)
	}
	if out.Until, err = parseWhen(f.until, now); err != nil {
		return out, usageErr("--until: %v", err)
	}
	return out, nil
}

// parseWhen reads an absolute time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("a duration ago must be positive, got %s", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2006-01-02, 2006-01-02T15:04, RFC 3339) nor a duration (24h)", s)
}

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("%s", auditUsage)
	}
	if isHelp(args[0]) {
		fmt.Fprintf(stdout, "%s\n\nRun 'sluice audit <command> -h' for the flags of a command.\n", auditUsage)
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("audit "+sub, "audit "+sub+" [flags]", stderr)
	var af auditFlags
	af.register(fs)
	switch sub {
	case "verify":
		var keys, archives, agentLogs multiFlag
		fs.Var(&keys, "key", "trusted public key file for checkpoint signatures (repeatable; default: the configured signing keys' .pub)")
		fs.Var(&agentLogs, "agent-log", "department=FILE: a copy of that agent's own log (agent.audit_log); detects either log cut back below what the other holds (repeatable)")
		fs.Var(&archives, "archive", "archive file, in order (repeatable)")
		archiveDir := fs.String("archive-dir", "", "verify every archive in this folder, in sequence order (default: archive_dir of the configuration)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		return auditVerify(ctx, stdout, &af, keys, archives, *archiveDir, agentLogs)
	case "tail", "search", "alerts", "export":
		var ff filterFlags
		def := 20
		if sub == "export" {
			def = 0
		}
		ff.register(fs, def)
		asJSON := fs.Bool("json", false, "print full entries as JSON lines")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if sub == "alerts" {
			ff.kind = audit.KindAlert
		}
		return auditList(ctx, stdout, sub, &af, &ff, *asJSON)
	case "show":
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageErr("audit show takes one entry number (see 'sluice audit tail')")
		}
		seq, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || seq < 1 {
			return usageErr("audit show: %q is not an entry number", fs.Arg(0))
		}
		return auditShow(ctx, stdout, &af, seq)
	case "reconcile":
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		return auditReconcile(ctx, stdout, &af)
	case "archive":
		olderThan := fs.Duration("older-than", 0, "archive entries older than this (e.g. 2160h for 90 days); required")
		dir := fs.String("dir", "", "folder for the archive files (default: archive_dir of the configuration)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		return auditArchive(ctx, stdout, &af, *olderThan, *dir)
	}
	return usageErr("unknown audit command %q\n%s", sub, auditUsage)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func openLog(ctx context.Context, af *auditFlags) (*audit.Log, *broker.Config, error) {
	store, cfg, err := af.resolve()
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(store); err != nil && !broker.IsPostgresURL(store) {
		return nil, nil, usageErr("no audit store at %s: %v", store, err)
	}
	l, err := audit.Open(ctx, store)
	return l, cfg, err
}

var archiveName = regexp.MustCompile(`^audit-(\d+)-(\d+)\.jsonl\.gz$`)

func archivesIn(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, usageErr("archive folder %s: %v", dir, err)
	}
	type af struct {
		path  string
		first int64
	}
	var list []af
	for _, e := range ents {
		if m := archiveName.FindStringSubmatch(e.Name()); m != nil {
			first, _ := strconv.ParseInt(m[1], 10, 64)
			list = append(list, af{filepath.Join(dir, e.Name()), first})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].first < list[j].first })
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.path
	}
	return out, nil
}

func auditVerify(ctx context.Context, w io.Writer, af *auditFlags, keyFiles, archives []string, archiveDir string, agentLogSpecs []string) error {
	store, cfg, err := af.resolve()
	if err != nil {
		return err
	}
	agentLogs, err := parseAgentLogs(agentLogSpecs)
	if err != nil {
		return err
	}
	var opts []audit.VerifyOption
	var keys []audit.PublicKey
	for _, f := range keyFiles {
		k, err := audit.LoadPublicKey(f)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	if len(keyFiles) == 0 && cfg != nil {
		if keys, err = cfg.AuditPublicKeys(); err != nil {
			return err
		}
	}
	if len(keys) > 0 {
		// A live broker signs every N entries or T seconds: the newest
		// entries may not be signed yet, but nothing older than T may be.
		grace := audit.DefaultCheckpointInterval
		if cfg != nil && cfg.CheckpointInterval > 0 {
			grace = cfg.CheckpointInterval
		}
		opts = append(opts, audit.WithTrustedKeys(keys...), audit.WithUnsignedGrace(grace+time.Minute))
	}
	if archiveDir == "" && len(archives) == 0 && cfg != nil && cfg.ArchiveDir != "" {
		archiveDir = cfg.ArchiveDir
	}
	if archiveDir != "" {
		found, err := archivesIn(archiveDir)
		if err != nil {
			return err
		}
		archives = append(archives, found...)
	}
	if len(archives) > 0 {
		opts = append(opts, audit.WithArchives(archives...))
	}
	rep, err := audit.VerifyFile(ctx, store, opts...)
	if err != nil {
		return err
	}
	if !rep.OK {
		fmt.Fprintf(w, "audit chain BROKEN at entry %d: %s (%d entries checked)\n", rep.FirstBad, rep.Problem, rep.Entries)
		return &exitError{code: 1, err: fmt.Errorf("the audit log does not verify")}
	}
	sig := "signatures not checked (no public key given)"
	if rep.SignaturesChecked {
		sig = fmt.Sprintf("%d signed checkpoints verified, signed through entry %d", rep.Checkpoints, rep.SignedThrough)
		if rep.SignedThrough < rep.Entries {
			sig += " (newer entries are signed at the next checkpoint)"
		}
	}
	arch := ""
	if rep.Archives > 0 {
		arch = fmt.Sprintf(", %d archives", rep.Archives)
	}
	fmt.Fprintf(w, "audit chain OK: %d entries%s, head %s; %s\n", rep.Entries, arch, rep.Head, sig)
	if len(agentLogs) > 0 {
		// A chain and its own checkpoints cannot show that the log was not
		// cut back; what the agents hold of it can.
		n, err := verifyAgainstAgentLogs(ctx, w, store, keys, agentLogs)
		if err != nil {
			return err
		}
		if n > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%d problems between the broker's and the agents' logs", n)}
		}
	}
	return nil
}

func auditList(ctx context.Context, w io.Writer, sub string, af *auditFlags, ff *filterFlags, asJSON bool) error {
	if ff.limit < 0 || ff.limit > audit.MaxReadLimit {
		return usageErr("-n must be between 1 and %d, got %d", audit.MaxReadLimit, ff.limit)
	}
	if sub != "export" && ff.limit == 0 {
		return usageErr("-n must be between 1 and %d, got 0", audit.MaxReadLimit)
	}
	l, _, err := openLog(ctx, af)
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	if sub == "export" {
		n, err := l.Export(ctx, w, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "exported %d entries\n", n)
		return nil
	}
	var entries []audit.Entry
	if sub == "tail" && f == (audit.Filter{Limit: f.Limit}) {
		entries, err = l.Tail(ctx, f.Limit)
	} else {
		entries, err = l.Search(ctx, f)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for i := range entries {
			if err := enc.Encode(&entries[i]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range entries {
		printEntryLine(w, e)
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "(no matching entries)")
	}
	return nil
}

func printEntryLine(w io.Writer, e audit.Entry) {
	what := e.SQL
	if what == "" && len(e.Reasons) > 0 {
		what = e.Reasons[0]
	}
	line := fmt.Sprintf("#%d %s %-8s %-6s %-6s %s purpose=%s rows=%d", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Decision, e.Principal, shortID(e.QueryID), e.Purpose, e.Rows)
	if e.Error != "" {
		line += " error=" + firstLine(e.Error)
	}
	fmt.Fprintf(w, "%s\n    %s\n", line, firstLine(what))
}

func auditShow(ctx context.Context, w io.Writer, af *auditFlags, seq int64) error {
	l, _, err := openLog(ctx, af)
	if err != nil {
		return err
	}
	defer l.Close()
	e, err := l.Get(ctx, seq)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(e); err != nil {
		return err
	}
	if e.QueryID == "" {
		return nil
	}
	related, err := l.Search(ctx, audit.Filter{QueryID: e.QueryID, Limit: 100})
	if err != nil {
		return err
	}
	if len(related) > 1 {
		fmt.Fprintf(w, "\nother entries of query %s:\n", e.QueryID)
		for _, r := range related {
			if r.Seq != e.Seq {
				printEntryLine(w, r)
			}
		}
	}
	if e.PolicyRevision != "" {
		fmt.Fprintf(w, "\npolicy as it stood: sluice policy show --revision %s\n", e.PolicyRevision)
	}
	return nil
}

func auditArchive(ctx context.Context, w io.Writer, af *auditFlags, olderThan time.Duration, dir string) error {
	if olderThan <= 0 {
		return usageErr("--older-than is required: how old an entry must be to move to an archive, e.g. 2160h")
	}
	l, cfg, err := openLog(ctx, af)
	if err != nil {
		return err
	}
	defer l.Close()
	if dir == "" && cfg != nil {
		dir = cfg.ArchiveDir
	}
	if dir == "" {
		return usageErr("--dir is required (or archive_dir in the broker configuration)")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return usageErr("--dir %s: %v", dir, err)
	}
	info, err := l.Archive(ctx, time.Now().Add(-olderThan), dir)
	if err != nil {
		return err
	}
	if info == nil || info.Entries == 0 {
		fmt.Fprintln(w, "no entries old enough to archive")
		return nil
	}
	fmt.Fprintf(w, "archived entries %d–%d (%d) to %s (sha256 %s)\n", info.FirstSeq, info.LastSeq, info.Entries, info.File, info.SHA256)
	return nil
}

// auditReconcile fetches each agent's own log over the broker's pinned
// connection and compares it with the broker's record of every fragment.
func auditReconcile(ctx context.Context, w io.Writer, af *auditFlags) error {
	l, cfg, err := openLog(ctx, af)
	if err != nil {
		return err
	}
	defer l.Close()
	if cfg == nil {
		return usageErr("reconcile needs the broker configuration (--config) to reach the agents")
	}
	parts, err := broker.LoadParts(ctx, cfg)
	if err != nil {
		return err
	}
	cert, err := tlsutil.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	results, err := l.Search(ctx, audit.Filter{Kind: audit.KindResult, Limit: audit.MaxReadLimit})
	if err != nil {
		return err
	}
	agentLogs := map[string][]audit.Entry{}
	for _, d := range parts.Catalog.Departments() {
		c, err := agent.Dial(ctx, d.ID, d.Agent.Address, d.Agent.Fingerprint, cert)
		if err != nil {
			return err
		}
		entries, err := c.AllAuditEntries(ctx)
		c.Close()
		if err != nil {
			return fmt.Errorf("department %s: %s", d.ID, describe(err))
		}
		agentLogs[d.ID] = entries
	}
	ds := audit.Reconcile(results, agentLogs)
	var brokerKeys []audit.PublicKey
	if brokerKeys, err = cfg.AuditPublicKeys(); err != nil {
		return err
	}
	counts := make([]string, 0, len(agentLogs))
	for d, es := range agentLogs {
		counts = append(counts, fmt.Sprintf("%s %d", d, fragmentOutcomes(es)))
	}
	sort.Strings(counts)
	fmt.Fprintf(w, "compared %d broker results with the agents' logs (%s)\n", len(results), strings.Join(counts, ", "))
	// Neither log may have been cut back below what the other side saw.
	rewound, err := checkAnchorsBothWays(ctx, w, l, results, agentLogs, brokerKeys)
	if err != nil {
		return err
	}
	serious := printReconciliation(w, ds)
	if serious == 0 && rewound == 0 {
		fmt.Fprintln(w, "reconciled: every fragment the agents served is in the broker's log with the same rows, bytes and digest")
		if len(ds) > 0 {
			fmt.Fprintf(w, "(%d fragments were interrupted mid-stream: the agent recorded them before the first batch left, and the broker recorded how far they got)\n", len(ds))
		}
		return nil
	}
	return &exitError{code: 1, err: fmt.Errorf("%d discrepancies between the broker's and the agents' logs", serious+rewound)}
}
