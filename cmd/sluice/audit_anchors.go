package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/sluice-gov/sluice/adapters/agent/auditlog"
	"github.com/sluice-gov/sluice/broker/audit"
)

// checkAnchorsBothWays checks each side's log against what the other side
// holds of it (auditchain.CheckAnchors): the broker's log against the
// broker anchors in the agents' entries, each agent's log against the
// agent anchors in the broker's results. It prints every problem and
// returns how many there were. brokerKeys verify the broker checkpoints
// the agents hold (none: seqs and hashes only).
func checkAnchorsBothWays(ctx context.Context, w io.Writer, l *audit.Log, results []audit.Entry, agentLogs map[string][]audit.Entry, brokerKeys []audit.PublicKey) (int, error) {
	depts := make([]string, 0, len(agentLogs))
	for d := range agentLogs {
		depts = append(depts, d)
	}
	sort.Strings(depts)
	var held []audit.HeldAnchor
	for _, d := range depts {
		held = append(held, audit.AnchorsForBroker(d, agentLogs[d])...)
	}
	problems := 0
	bp, err := l.CheckAnchors(ctx, held, brokerKeys...)
	if err != nil {
		return 0, err
	}
	for _, p := range bp {
		fmt.Fprintf(w, "%-18s entry %d: %s\n", "broker_rewound", p.Seq, p.Detail)
	}
	problems += len(bp)
	checked := []string{fmt.Sprintf("broker: %d anchors held by the agents", len(held))}
	for _, d := range depts {
		ap, err := audit.CheckAgentLog(d, agentLogs[d], results)
		if err != nil {
			return 0, err
		}
		for _, p := range ap {
			fmt.Fprintf(w, "%-18s %s entry %d: %s\n", "agent_rewound", d, p.Seq, p.Detail)
		}
		problems += len(ap)
		checked = append(checked, fmt.Sprintf("%s: %d anchors held by the broker", d, len(audit.AnchorsForAgent(d, results))))
	}
	if problems == 0 {
		fmt.Fprintf(w, "anchors: no log was cut back below what the other side saw (%s)\n", strings.Join(checked, ", "))
	}
	return problems, nil
}

// printReconciliation prints the discrepancies (interrupted fragments apart)
// and returns how many are serious.
func printReconciliation(w io.Writer, ds []audit.Discrepancy) int {
	serious := 0
	for _, d := range ds {
		fmt.Fprintf(w, "%-18s query %s %s: %s\n", d.Kind, d.QueryID, d.Dataset, d.Detail)
		if d.Serious() {
			serious++
		}
	}
	return serious
}

// agentLogFlag is one --agent-log department=FILE.
func parseAgentLogs(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		dept, file, ok := strings.Cut(s, "=")
		if !ok || dept == "" || file == "" {
			return nil, usageErr("--agent-log takes department=FILE (an agent's agent.audit_log), got %q", s)
		}
		out[dept] = file
	}
	return out, nil
}

// verifyAgainstAgentLogs is `sluice audit verify --agent-log dept=FILE`:
// each agent's own log (a copy of its agent.audit_log file) is verified,
// then the broker's log and each agent's are checked against what the
// other holds of it, and the fragments are reconciled. It returns how many
// problems it printed.
func verifyAgainstAgentLogs(ctx context.Context, w io.Writer, store string, brokerKeys []audit.PublicKey, files map[string]string) (int, error) {
	l, err := audit.Open(ctx, store)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	agentLogs := map[string][]audit.Entry{}
	problems := 0
	depts := make([]string, 0, len(files))
	for d := range files {
		depts = append(depts, d)
	}
	sort.Strings(depts)
	for _, d := range depts {
		al, err := auditlog.Open(ctx, files[d])
		if err != nil {
			return 0, fmt.Errorf("department %s: %s", d, describe(err))
		}
		rep, err := al.Verify(ctx)
		if err == nil && !rep.OK {
			fmt.Fprintf(w, "agent log of %s BROKEN at entry %d: %s\n", d, rep.FirstBad, rep.Problem)
			problems++
		}
		var es []audit.Entry
		for since := int64(0); err == nil; {
			var page []audit.Entry
			if page, err = al.Entries(ctx, since, 10000); err == nil {
				es = append(es, page...)
				if len(page) == 0 {
					break
				}
				since = page[len(page)-1].Seq
			}
		}
		al.Close()
		if err != nil {
			return 0, fmt.Errorf("department %s: %s", d, describe(err))
		}
		agentLogs[d] = es
	}
	results, err := l.Search(ctx, audit.Filter{Kind: audit.KindResult, Limit: audit.MaxReadLimit})
	if err != nil {
		return 0, err
	}
	n, err := checkAnchorsBothWays(ctx, w, l, results, agentLogs, brokerKeys)
	if err != nil {
		return 0, err
	}
	problems += n
	problems += printReconciliation(w, audit.Reconcile(results, agentLogs))
	return problems, nil
}

// fragmentOutcomes counts an agent's fragment entries that record how a
// fragment ended (served, refused or failed), leaving out the write-ahead
// entries written before each began.
func fragmentOutcomes(es []audit.Entry) int {
	n := 0
	for _, e := range es {
		if e.Phase == "" {
			n++
		}
	}
	return n
}
