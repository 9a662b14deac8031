package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/budget"
)

// cmdBudget shows a principal's differential-privacy budgets: per purpose,
// the limit granted, what was spent, what remains.
func cmdBudget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("budget", "budget --principal NAME [--config broker.yaml | --store FILE]", stderr)
	var af auditFlags
	af.register(fs)
	principal := fs.String("principal", "", "the grantee: a user name or dept:<department> (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *principal == "" {
		return usageErr("--principal is required: whose budgets to show (e.g. alice or dept:civil)")
	}
	store, _, err := af.resolve()
	if err != nil {
		return err
	}
	if _, err := os.Stat(store); err != nil && !broker.IsPostgresURL(store) {
		return usageErr("no broker store at %s: %v", store, err)
	}
	b, err := budget.Open(ctx, store)
	if err != nil {
		return err
	}
	defer b.Close()
	list, err := b.List(ctx, *principal)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "%s has no differential-privacy budget\n", *principal)
		return nil
	}
	rows := make([][]string, 0, len(list))
	for _, x := range list {
		rows = append(rows, []string{x.Purpose, ftoa(x.Limit), ftoa(x.Spent), ftoa(x.Remaining), strconv.FormatInt(x.Queries, 10), strings.Join(x.Grants, ", ")})
	}
	printTable(stdout, []string{"purpose", "ε granted", "ε spent", "ε remaining", "queries", "grants"}, rows)
	return nil
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
