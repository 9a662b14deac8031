package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/workflow"
)

// --- applications ---

var applicationSubs = []adminSub{
	{name: "submit", synopsis: "applications submit --dataset DEPT.DS --columns A,B [--clamp A=LO:HI] [--dataset … --columns …] --purpose P --justification TEXT --from DATE --until DATE --mode rows|aggregate [--k N] [--row-filter COL=V1,V2] [--epsilon E --epsilon-per-query Q] [--for-department] [--print-id]",
		about: "apply for access to one provider's conditional datasets", run: applicationsSubmit},
	{name: "list", synopsis: "applications list [--status S1,S2] [--provider D]", about: "applications you may see", run: applicationsList},
	{name: "show", synopsis: "applications show ID", about: "one application with its history (a refusal with its basis)", run: applicationsShow},
	{name: "forward", synopsis: "applications forward ID [--note TEXT]", about: "platform first review: pass it to the provider (platform admin)", run: reviewStep("forward")},
	{name: "approve", synopsis: "applications approve ID [--note TEXT] [--k N] [--mode aggregate] [--until DATE] [--row-filter COL=V1,V2] [--row-cap N] [--epsilon E] [--epsilon-per-query Q] [--clamp DEPT.DS.COL=LO:HI]",
		about: "approve, possibly tightening the release (the provider's dept admin)", run: reviewStep("approve")},
	{name: "refuse", synopsis: "applications refuse ID --basis TEXT [--reason TEXT]", about: "refuse, citing the legal or policy basis", run: reviewStep("refuse")},
	{name: "withdraw", synopsis: "applications withdraw ID [--note TEXT]", about: "withdraw your open application", run: reviewStep("withdraw")},
	{name: "overdue", synopsis: "applications overdue", about: "open applications past their deadline and who they wait on", run: applicationsOverdue},
}

// itemsFlag collects --dataset/--columns pairs in command-line order.
type itemsFlag struct{ items []sluice.ApplicationItem }

type datasetFlag struct{ *itemsFlag }

func (f datasetFlag) String() string { return "" }
func (f datasetFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	if err := checkDataset("dataset", v); err != nil {
		return errors.New("write department.dataset, e.g. civil.residents")
	}
	f.items = append(f.items, sluice.ApplicationItem{Dataset: v})
	return nil
}

type columnsFlag struct{ *itemsFlag }

func (f columnsFlag) String() string { return "" }
func (f columnsFlag) Set(v string) error {
	n := len(f.items)
	if n == 0 {
		return errors.New("give its --dataset first: --dataset dept.ds --columns a,b")
	}
	if len(f.items[n-1].Columns) > 0 {
		return fmt.Errorf("--dataset %s already has --columns; give each --dataset one --columns", f.items[n-1].Dataset)
	}
	cols := splitList(v)
	if len(cols) == 0 {
		return errors.New("name at least one column")
	}
	f.items[n-1].Columns = cols
	return nil
}

type clampFlag struct{ *itemsFlag }

func (f clampFlag) String() string { return "" }

// Set reads COL=LO:HI[,COL=LO:HI] for the --dataset before it.
func (f clampFlag) Set(v string) error {
	n := len(f.items)
	if n == 0 {
		return errors.New("give its --dataset first: --dataset dept.ds --columns a,b --clamp a=0:5000")
	}
	it := &f.items[n-1]
	if it.Clamp != nil {
		return fmt.Errorf("--dataset %s already has --clamp; give all its bounds in one: --clamp a=0:5000,b=0:30", it.Dataset)
	}
	c, err := parseBounds(v, "COLUMN", "annual_claims")
	if err != nil {
		return err
	}
	it.Clamp = c
	return nil
}

// parseBounds reads NAME=LO:HI[,NAME=LO:HI].
func parseBounds(v, what, example string) (map[string]sluice.Bounds, error) {
	out := map[string]sluice.Bounds{}
	for _, part := range splitList(v) {
		name, rng, ok := strings.Cut(part, "=")
		lo, hi, ok2 := strings.Cut(rng, ":")
		l, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		h, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if !ok || !ok2 || err1 != nil || err2 != nil || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("write %s=LO:HI, e.g. %s=0:5000; got %q", what, example, part)
		}
		out[strings.TrimSpace(name)] = sluice.Bounds{l, h}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("give at least one %s=LO:HI", what)
	}
	return out, nil
}

// clampText renders bounds as col [lo, hi], sorted by column.
func clampText(c map[string]sluice.Bounds) string {
	cols := make([]string, 0, len(c))
	for k := range c {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	for i, k := range cols {
		cols[i] = k + " " + c[k].String()
	}
	return strings.Join(cols, ", ")
}

// applicationRequest is the body of POST /v1/applications.
type applicationRequest struct {
	Items           []sluice.ApplicationItem `json:"items"`
	ForDepartment   bool                     `json:"for_department,omitempty"`
	Purpose         string                   `json:"purpose"`
	Justification   string                   `json:"justification"`
	ValidFrom       time.Time                `json:"valid_from"`
	ValidUntil      time.Time                `json:"valid_until"`
	Mode            string                   `json:"mode"`
	K               int                      `json:"k,omitempty"`
	Epsilon         float64                  `json:"epsilon,omitempty"`
	EpsilonPerQuery float64                  `json:"epsilon_per_query,omitempty"`
	RowCap          int64                    `json:"row_cap,omitempty"`
	RowFilter       *sluice.RowFilter        `json:"row_filter,omitempty"`
}

func applicationsSubmit(ctx context.Context, c *adminCmd, args []string) error {
	var items itemsFlag
	c.fs.Var(datasetFlag{&items}, "dataset", "a dataset applied for, department.dataset (repeat with its --columns for each)")
	c.fs.Var(columnsFlag{&items}, "columns", "the columns needed of the --dataset before it, comma-separated")
	c.fs.Var(clampFlag{&items}, "clamp", "bounds for noisy SUMs of the --dataset before it: COLUMN=LO:HI[,COLUMN=LO:HI] (with --epsilon)")
	purpose := c.fs.String("purpose", "", "the registered purpose of the use (required)")
	justification := c.fs.String("justification", "", "why the data is needed for the purpose, at least 10 characters (required)")
	from := c.fs.String("from", "", "first day of access, YYYY-MM-DD (required)")
	until := c.fs.String("until", "", "last day of access, YYYY-MM-DD, included (required)")
	mode := c.fs.String("mode", "", "rows (with masks) or aggregate (only groups of at least k) (required)")
	k := c.fs.Int("k", 0, "aggregate: the minimum group size asked for")
	rowFilter := c.fs.String("row-filter", "", "only rows whose column holds one of the values: COLUMN=V1,V2")
	rowCap := c.fs.Int64("row-cap", 0, "at most this many rows per result")
	printID := c.fs.Bool("print-id", false, "print only the new application's id on stdout, the summary on stderr: APP=$(sluice applications submit … --print-id)")
	eps := c.fs.Float64("epsilon", 0, "differential-privacy budget of the grant (0: no noise)")
	epsQ := c.fs.Float64("epsilon-per-query", 0, "budget spent by each query")
	forDept := c.fs.Bool("for-department", false, "grant to your whole department rather than to you")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if len(items.items) == 0 {
		return usageErr("--dataset and --columns are required: name each dataset and the columns you need")
	}
	for _, it := range items.items {
		if len(it.Columns) == 0 {
			return usageErr("--dataset %s has no --columns: name the columns you need (necessary and minimum sufficient)", it.Dataset)
		}
	}
	if strings.TrimSpace(*purpose) == "" {
		return usageErr("--purpose is required: the registered purpose (see 'sluice purposes list')")
	}
	if len([]rune(strings.TrimSpace(*justification))) < 10 {
		return usageErr("--justification is required: say why the data is needed for the purpose (at least 10 characters)")
	}
	if *from == "" || *until == "" {
		return usageErr("--from and --until are required: access is time-limited")
	}
	req := applicationRequest{Items: items.items, ForDepartment: *forDept, Purpose: strings.TrimSpace(*purpose),
		Justification: strings.TrimSpace(*justification), Mode: *mode, K: *k, RowCap: *rowCap, Epsilon: *eps, EpsilonPerQuery: *epsQ}
	var err error
	if req.ValidFrom, err = parseDay("from", *from, false); err != nil {
		return err
	}
	if req.ValidUntil, err = parseDay("until", *until, true); err != nil {
		return err
	}
	if !req.ValidUntil.After(req.ValidFrom) {
		return usageErr("--until %s must not be before --from %s", *until, *from)
	}
	if *mode == "" {
		return usageErr("--mode is required: rows (rows with masks) or aggregate (only groups of at least k)")
	}
	if err := oneOf("mode", *mode, "rows", "aggregate"); err != nil {
		return err
	}
	if *k < 0 || *rowCap < 0 || *eps < 0 || *epsQ < 0 {
		return usageErr("--k, --row-cap, --epsilon and --epsilon-per-query must not be negative")
	}
	if *rowFilter != "" {
		if req.RowFilter, err = parseRowFilter("row-filter", *rowFilter); err != nil {
			return err
		}
	}
	if *printID && c.json {
		return usageErr("--print-id and --json exclude each other")
	}
	var a sluice.Application
	if done, err := c.call(ctx, "POST", "/v1/applications", nil, req, &a); done || err != nil {
		return err
	}
	summary := c.stdout
	if *printID {
		// The id alone on stdout, for a shell variable; the summary still
		// reaches the terminal.
		summary = c.stderr
		fmt.Fprintln(c.stdout, a.ID)
	}
	fmt.Fprintf(summary, "submitted application %s to %s: %s\n", a.ID, a.Provider, itemsText(a.Items))
	fmt.Fprintf(summary, "status %s; the platform's first review is due %s\n", a.Status, fmtDate(a.PlatformDue))
	return nil
}

func itemsText(items []sluice.ApplicationItem) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = it.Dataset + " (" + strings.Join(it.Columns, ", ") + ")"
	}
	return strings.Join(parts, "; ")
}

func datasetsText(items []sluice.ApplicationItem) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = it.Dataset
	}
	return strings.Join(parts, ", ")
}

var appStatuses = []string{"submitted", "forwarded", "approved", "refused", "withdrawn"}

func applicationsList(ctx context.Context, c *adminCmd, args []string) error {
	status := c.fs.String("status", "", "only these statuses, comma-separated: "+strings.Join(appStatuses, ", "))
	provider := c.fs.String("provider", "", "only applications to this provider department")
	applicant := c.fs.String("applicant", "", "only this applicant's")
	dept := c.fs.String("department", "", "only applications from this department")
	limit := c.fs.Int("limit", 0, "at most this many (default: the broker's, 1000)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	sts := splitList(*status)
	for _, s := range sts {
		if err := oneOf("status", s, appStatuses...); err != nil {
			return err
		}
	}
	q := url.Values{"status": {strings.Join(sts, ",")}, "provider": {*provider}, "applicant": {*applicant}, "department": {*dept}}
	if err := c.setLimit(q, *limit); err != nil {
		return err
	}
	var out struct {
		Applications []sluice.Application `json:"applications"`
	}
	if done, err := c.call(ctx, "GET", "/v1/applications", q, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Applications))
	for i := range out.Applications {
		a := &out.Applications[i]
		who, due := a.WaitingOn()
		dueText := "-"
		if who != "" {
			dueText = fmtDate(due)
		}
		rows = append(rows, []string{a.ID, string(a.Status), a.Applicant + " (" + a.Department + ")", a.Provider, datasetsText(a.Items), a.Purpose, orDash(who), dueText})
	}
	printTable(c.stdout, []string{"id", "status", "applicant", "provider", "datasets", "purpose", "waiting on", "due"}, rows)
	fmt.Fprintf(c.stdout, "(%s)\n", plural(len(rows), "application", "applications"))
	return nil
}

func applicationsShow(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "ID")
	if err != nil {
		return err
	}
	var a sluice.Application
	if done, err := c.call(ctx, "GET", pathOf("applications", pos[0]), nil, nil, &a); done || err != nil {
		return err
	}
	printApplication(c.stdout, &a)
	return nil
}

func releaseText(mode sluice.ReleaseMode, k int, rowCap int64) string {
	s := string(mode)
	if k > 0 {
		s += fmt.Sprintf(", k = %d", k)
	}
	if rowCap > 0 {
		s += fmt.Sprintf(", at most %d rows per result", rowCap)
	}
	return s
}

func printApplication(w io.Writer, a *sluice.Application) {
	fmt.Fprintf(w, "application %s — %s\n", a.ID, a.Status)
	grantee := a.Applicant
	if a.ForDepartment {
		grantee = "department " + a.Department + " (dept:" + a.Department + ")"
	}
	kv := [][2]string{
		{"applicant", a.Applicant + " (" + a.Department + ")"},
		{"grantee", grantee},
		{"provider", a.Provider},
		{"purpose", a.Purpose},
		{"justification", a.Justification},
		{"period", fmtTime(a.ValidFrom) + " to " + fmtTime(a.ValidUntil)},
		{"release", releaseText(a.Mode, a.K, a.RowCap)},
	}
	if a.RowFilter != nil {
		kv = append(kv, [2]string{"row filter", fmtRowFilter(a.RowFilter)})
	}
	if a.Epsilon > 0 {
		kv = append(kv, [2]string{"privacy budget", fmt.Sprintf("ε %g, %g per query", a.Epsilon, a.EpsilonPerQuery)})
	}
	kv = append(kv, [2]string{"submitted", fmtTime(a.SubmittedAt)}, [2]string{"platform due", fmtDate(a.PlatformDue)})
	if a.ForwardedAt != nil {
		kv = append(kv, [2]string{"forwarded", fmtTime(*a.ForwardedAt)})
	}
	if a.ProviderDue != nil {
		kv = append(kv, [2]string{"provider due", fmtDate(*a.ProviderDue)})
	}
	if who, due := a.WaitingOn(); who != "" {
		kv = append(kv, [2]string{"waiting on", who + " until " + fmtDate(due)})
	}
	if a.DecidedAt != nil {
		kv = append(kv, [2]string{"decided", fmtTime(*a.DecidedAt)})
	}
	if a.Status == sluice.AppRefused {
		kv = append(kv, [2]string{"refusal basis", orDash(a.RefusalBasis)}, [2]string{"refusal reason", a.RefusalReason})
	}
	if len(a.GrantIDs) > 0 {
		kv = append(kv, [2]string{"grants", strings.Join(a.GrantIDs, ", ")})
	}
	fields(w, kv)
	fmt.Fprintln(w)
	rows := make([][]string, len(a.Items))
	clamped := false
	for i, it := range a.Items {
		rows[i] = []string{it.Dataset, strings.Join(it.Columns, ", "), orDash(clampText(it.Clamp))}
		clamped = clamped || len(it.Clamp) > 0
	}
	if clamped {
		printTable(w, []string{"dataset", "columns", "SUM clamped to"}, rows)
	} else {
		for i := range rows {
			rows[i] = rows[i][:2]
		}
		printTable(w, []string{"dataset", "columns"}, rows)
	}
	if len(a.History) > 0 {
		fmt.Fprintln(w)
		rows = make([][]string, len(a.History))
		for i, e := range a.History {
			rows[i] = []string{fmtTime(e.Time), e.Actor + " (" + string(e.Role) + ")", e.Action, string(e.Status), orDash(e.Note)}
		}
		printTable(w, []string{"time", "actor", "action", "status", "note"}, rows)
	}
}

// reviewStep is a move of an application: forward, approve, refuse or
// withdraw.
func reviewStep(step string) func(ctx context.Context, c *adminCmd, args []string) error {
	return func(ctx context.Context, c *adminCmd, args []string) error {
		var d workflow.ReviewDecision // the body of forward, approve, refuse and withdraw
		var note, basis, reason, mode, until, rowFilter *string
		var k *int
		var rowCap *int64
		var eps, epsQ *float64
		var clamp *string
		switch step {
		case "refuse":
			basis = c.fs.String("basis", "", "the legal or policy basis of the refusal (required)")
			reason = c.fs.String("reason", "", "why, for the applicant")
		default:
			note = c.fs.String("note", "", "a note for the record")
		}
		if step == "approve" {
			k = c.fs.Int("k", 0, "raise the minimum group size")
			mode = c.fs.String("mode", "", "aggregate: release only aggregates (approval can tighten, never widen)")
			until = c.fs.String("until", "", "end access earlier: last day, YYYY-MM-DD, included")
			rowFilter = c.fs.String("row-filter", "", "only rows whose column holds one of the values: COLUMN=V1,V2")
			rowCap = c.fs.Int64("row-cap", 0, "at most this many rows per result")
			eps = c.fs.Float64("epsilon", 0, "lower the differential-privacy budget")
			epsQ = c.fs.Float64("epsilon-per-query", 0, "lower what each query spends of the budget")
			clamp = c.fs.String("clamp", "", "narrow the clamp bounds applied for: DEPT.DATASET.COLUMN=LO:HI[,…]")
		}
		pos, err := c.parse(args, "ID")
		if err != nil {
			return err
		}
		if note != nil {
			d.Note = strings.TrimSpace(*note)
		}
		if step == "refuse" {
			if d.Basis = strings.TrimSpace(*basis); d.Basis == "" {
				return usageErr("--basis is required: a refusal cites its legal or policy basis")
			}
			d.Reason = strings.TrimSpace(*reason)
		}
		if step == "approve" {
			if *mode != "" {
				if err := oneOf("mode", *mode, "rows", "aggregate"); err != nil {
					return err
				}
				d.Mode = sluice.ReleaseMode(*mode)
			}
			if c.set("k") && *k < 1 {
				return usageErr("--k must be at least 1, got %d", *k)
			}
			if c.set("row-cap") && *rowCap < 1 {
				return usageErr("--row-cap must be at least 1, got %d", *rowCap)
			}
			d.K, d.RowCap = *k, *rowCap
			if *until != "" {
				t, err := parseDay("until", *until, true)
				if err != nil {
					return err
				}
				d.ValidUntil = &t
			}
			if *rowFilter != "" {
				if d.RowFilter, err = parseRowFilter("row-filter", *rowFilter); err != nil {
					return err
				}
			}
			if *eps < 0 || *epsQ < 0 {
				return usageErr("--epsilon and --epsilon-per-query must not be negative")
			}
			d.Epsilon, d.EpsilonPerQuery = *eps, *epsQ
			if *clamp != "" {
				bounds, err := parseBounds(*clamp, "DEPT.DATASET.COLUMN", "health.insured.annual_claims")
				if err != nil {
					return usageErr("--clamp: %v", err)
				}
				d.Clamp = map[string]map[string]sluice.Bounds{}
				for name, b := range bounds {
					i := strings.LastIndex(name, ".")
					if i < 0 || checkDataset("clamp", name[:i]) != nil || name[i+1:] == "" {
						return usageErr("--clamp: name a column as DEPT.DATASET.COLUMN, e.g. health.insured.annual_claims=0:3000; got %q", name)
					}
					ds, col := name[:i], name[i+1:]
					if d.Clamp[ds] == nil {
						d.Clamp[ds] = map[string]sluice.Bounds{}
					}
					d.Clamp[ds][col] = b
				}
			}
		}
		var a sluice.Application
		if done, err := c.call(ctx, "POST", pathOf("applications", pos[0], step), nil, d, &a); done || err != nil {
			return err
		}
		switch a.Status {
		case sluice.AppForwarded:
			due := "-"
			if a.ProviderDue != nil {
				due = fmtDate(*a.ProviderDue)
			}
			fmt.Fprintf(c.stdout, "forwarded application %s to %s; the provider's answer is due %s\n", a.ID, a.Provider, due)
		case sluice.AppApproved:
			rf := ""
			if a.RowFilter != nil {
				rf = fmtRowFilter(a.RowFilter)
			}
			fmt.Fprintf(c.stdout, "approved application %s: %s\n", a.ID, plural(len(a.GrantIDs), "grant", "grants"))
			kv := [][2]string{{"grants", strings.Join(a.GrantIDs, ", ")}, {"release", releaseText(a.Mode, a.K, a.RowCap)},
				{"row filter", rf}, {"valid until", fmtTime(a.ValidUntil)}}
			if a.Epsilon > 0 {
				kv = append(kv, [2]string{"privacy budget", fmt.Sprintf("ε %g, %g per query", a.Epsilon, a.EpsilonPerQuery)})
				for _, it := range a.Items {
					if len(it.Clamp) > 0 {
						kv = append(kv, [2]string{"SUM clamped", it.Dataset + ": " + clampText(it.Clamp)})
					}
				}
			}
			fields(c.stdout, kv)
			fmt.Fprintln(c.stdout, "the grants take effect on the next query")
		case sluice.AppRefused:
			fmt.Fprintf(c.stdout, "refused application %s; basis: %s\n", a.ID, a.RefusalBasis)
		default:
			fmt.Fprintf(c.stdout, "application %s is now %s\n", a.ID, a.Status)
		}
		return nil
	}
}

func applicationsOverdue(ctx context.Context, c *adminCmd, args []string) error {
	if _, err := c.parse(args); err != nil {
		return err
	}
	var out struct {
		Now     time.Time `json:"now"`
		Overdue []struct {
			Application     sluice.Application `json:"application"`
			WaitingOn       string             `json:"waiting_on"`
			Due             time.Time          `json:"due"`
			WorkingDaysLate int                `json:"working_days_late"`
		} `json:"overdue"`
	}
	if done, err := c.call(ctx, "GET", "/v1/applications/overdue", nil, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Overdue))
	for _, o := range out.Overdue {
		rows = append(rows, []string{o.Application.ID, o.WaitingOn, fmtDate(o.Due), strconv.Itoa(o.WorkingDaysLate)})
	}
	printTable(c.stdout, []string{"id", "waiting on", "due", "working days late"}, rows)
	fmt.Fprintf(c.stdout, "(%s overdue)\n", plural(len(rows), "application", "applications"))
	return nil
}

// --- grants ---

var grantSubs = []adminSub{
	{name: "list", synopsis: "grants list", about: "grants you may see", run: grantsList},
	{name: "revoke", synopsis: "grants revoke ID [--reason TEXT]", about: "revoke a grant at once (the provider's dept admin or the platform admin)", run: grantsRevoke},
}

func grantState(g *sluice.Grant, now time.Time) string {
	switch {
	case g.Revoked:
		if g.RevokedAt != nil {
			return "revoked " + fmtDate(*g.RevokedAt)
		}
		return "revoked"
	case now.Before(g.ValidFrom):
		return "not yet valid"
	case !now.Before(g.ValidUntil):
		return "expired"
	}
	return "in force"
}

func grantsList(ctx context.Context, c *adminCmd, args []string) error {
	if _, err := c.parse(args); err != nil {
		return err
	}
	var out struct {
		Grants []sluice.Grant `json:"grants"`
	}
	if done, err := c.call(ctx, "GET", "/v1/grants", nil, nil, &out); done || err != nil {
		return err
	}
	now := time.Now()
	rows := make([][]string, 0, len(out.Grants))
	for i := range out.Grants {
		g := &out.Grants[i]
		rel := releaseText(g.Mode, g.K, g.RowCap)
		if g.RowFilter != nil {
			rel += "; " + fmtRowFilter(g.RowFilter)
		}
		if g.Epsilon > 0 {
			rel += fmt.Sprintf("; ε %g, %g per query", g.Epsilon, g.EpsilonPerQuery)
			if len(g.Clamp) > 0 {
				rel += "; SUM clamped: " + clampText(g.Clamp)
			}
		}
		rows = append(rows, []string{g.ID, g.Grantee, g.Dataset, strings.Join(g.Columns, ","), g.Purpose, rel, fmtDate(g.ValidUntil), grantState(g, now)})
	}
	printTable(c.stdout, []string{"id", "grantee", "dataset", "columns", "purpose", "release", "until", "state"}, rows)
	fmt.Fprintf(c.stdout, "(%s)\n", plural(len(rows), "grant", "grants"))
	return nil
}

func grantsRevoke(ctx context.Context, c *adminCmd, args []string) error {
	reason := c.fs.String("reason", "", "why, for the record")
	pos, err := c.parse(args, "ID")
	if err != nil {
		return err
	}
	body := struct {
		Reason string `json:"reason,omitempty"`
	}{strings.TrimSpace(*reason)}
	var g sluice.Grant
	if done, err := c.call(ctx, "POST", pathOf("grants", pos[0], "revoke"), nil, body, &g); done || err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked grant %s (%s on %s for %s); the next query is decided without it\n", g.ID, g.Grantee, g.Dataset, g.Purpose)
	return nil
}

// --- usage ---

var usageSub = adminSub{name: "usage", synopsis: "usage [--dataset DEPT.DS] [--department D] [--purpose P] [--since DATE] [--until DATE]",
	about: "usage statistics from the audit log, per day, dataset and requesting department", run: usageStats}

func usageStats(ctx context.Context, c *adminCmd, args []string) error {
	dataset := c.fs.String("dataset", "", "only this dataset, department.dataset")
	dept := c.fs.String("department", "", "only requests from this department")
	purpose := c.fs.String("purpose", "", "only uses under this purpose")
	since := c.fs.String("since", "", "from this day (YYYY-MM-DD, UTC) or RFC 3339 time")
	until := c.fs.String("until", "", "to this day, included (YYYY-MM-DD, UTC), or before this RFC 3339 time")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *dataset != "" {
		if err := checkDataset("dataset", *dataset); err != nil {
			return err
		}
	}
	from, err := usageBound("since", *since, false)
	if err != nil {
		return err
	}
	to, err := usageBound("until", *until, true)
	if err != nil {
		return err
	}
	if *since != "" && *until != "" && !to.After(from) {
		return usageErr("--until %s must not be before --since %s", *until, *since)
	}
	q := url.Values{"dataset": {*dataset}, "department": {*dept}, "purpose": {*purpose}}
	if *since != "" {
		q.Set("since", from.Format(time.RFC3339))
	}
	if *until != "" {
		q.Set("until", to.Format(time.RFC3339))
	}
	var out struct {
		Usage []struct {
			Day        string   `json:"day"`
			Dataset    string   `json:"dataset"`
			Department string   `json:"department"`
			Calls      int64    `json:"calls"`
			Denied     int64    `json:"denied"`
			Rows       int64    `json:"rows"`
			Purposes   []string `json:"purposes"`
		} `json:"usage"`
	}
	if done, err := c.call(ctx, "GET", "/v1/usage", q, nil, &out); done || err != nil {
		return err
	}
	var calls, denied, released int64
	rows := make([][]string, 0, len(out.Usage))
	for _, u := range out.Usage {
		calls, denied, released = calls+u.Calls, denied+u.Denied, released+u.Rows
		rows = append(rows, []string{u.Day, u.Dataset, u.Department, strconv.FormatInt(u.Calls, 10), strconv.FormatInt(u.Denied, 10), strconv.FormatInt(u.Rows, 10), orDash(strings.Join(u.Purposes, ", "))})
	}
	printTable(c.stdout, []string{"day", "dataset", "department", "calls", "denied", "rows", "purposes"}, rows)
	fmt.Fprintf(c.stdout, "(%s; %d calls, %d denied, %d rows released)\n", plural(len(rows), "row", "rows"), calls, denied, released)
	return nil
}

// usageBound reads a usage window bound: a UTC day (the statistics count
// UTC days) or an RFC 3339 time. A day as the upper bound includes it.
func usageBound(flagName, v string, upper bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, usageErr("--%s %q is not a date: write YYYY-MM-DD (or an RFC 3339 time)", flagName, v)
	}
	if upper {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// --- error reports ---

var reportSubs = []adminSub{
	{name: "submit", synopsis: "reports submit --dataset DEPT.DS [--column C] --description TEXT [--row-ref R]", about: "report a suspected data error to its provider", run: reportsSubmit},
	{name: "list", synopsis: "reports list [--status S]", about: "reports you may see: yours, or your department's queue as provider", run: reportsList},
	{name: "show", synopsis: "reports show ID", about: "one report with its history", run: reportsShow},
	{name: "ack", synopsis: "reports ack ID [--reason TEXT]", about: "acknowledge a report (the provider's dept admin)", run: reportMove("acknowledge", false)},
	{name: "correct", synopsis: "reports correct ID [--reason TEXT]", about: "the data was corrected at the source (the provider's dept admin)", run: reportMove("correct", false)},
	{name: "reject", synopsis: "reports reject ID --reason TEXT", about: "reject a report, saying why (the provider's dept admin)", run: reportMove("reject", true)},
}

var reportStatuses = []string{"submitted", "acknowledged", "corrected", "rejected"}

func reportsSubmit(ctx context.Context, c *adminCmd, args []string) error {
	dataset := c.fs.String("dataset", "", "the dataset, department.dataset (required)")
	column := c.fs.String("column", "", "the column that seems wrong")
	desc := c.fs.String("description", "", "what is wrong, 10 to 4000 characters (required)")
	rowRef := c.fs.String("row-ref", "", "the row, by a masked key or pseudonym you saw (never a raw protected value)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *dataset == "" {
		return usageErr("--dataset is required: department.dataset")
	}
	if err := checkDataset("dataset", *dataset); err != nil {
		return err
	}
	d := strings.TrimSpace(*desc)
	if n := len([]rune(d)); n < 10 || n > 4000 {
		return usageErr("--description is required: say what is wrong in 10 to 4000 characters (got %d)", n)
	}
	if len([]rune(*rowRef)) > 200 {
		return usageErr("--row-ref is at most 200 characters")
	}
	body := struct {
		Dataset     string `json:"dataset"`
		Column      string `json:"column,omitempty"`
		Description string `json:"description"`
		RowRef      string `json:"row_ref,omitempty"`
	}{*dataset, strings.TrimSpace(*column), d, strings.TrimSpace(*rowRef)}
	var r sluice.ErrorReport
	if done, err := c.call(ctx, "POST", "/v1/reports", nil, body, &r); done || err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "submitted report %s on %s to %s; status %s\n", r.ID, r.Dataset, r.Provider, r.Status)
	return nil
}

func reportsList(ctx context.Context, c *adminCmd, args []string) error {
	status := c.fs.String("status", "", "only these statuses, comma-separated: "+strings.Join(reportStatuses, ", "))
	dataset := c.fs.String("dataset", "", "only reports on this dataset")
	provider := c.fs.String("provider", "", "only reports to this provider department")
	limit := c.fs.Int("limit", 0, "at most this many (default: the broker's, 1000)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	sts := splitList(*status)
	for _, s := range sts {
		if err := oneOf("status", s, reportStatuses...); err != nil {
			return err
		}
	}
	q := url.Values{"status": {strings.Join(sts, ",")}, "dataset": {*dataset}, "provider": {*provider}}
	if err := c.setLimit(q, *limit); err != nil {
		return err
	}
	var out struct {
		Reports []sluice.ErrorReport `json:"reports"`
	}
	if done, err := c.call(ctx, "GET", "/v1/reports", q, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Reports))
	unseen := false
	for _, r := range out.Reports {
		st := string(r.Status)
		if !r.Seen {
			st += " *"
			unseen = true
		}
		rows = append(rows, []string{r.ID, st, r.Dataset, orDash(r.Column), r.Reporter + " (" + r.Department + ")", fmtTime(r.UpdatedAt), clip(r.Description, 48)})
	}
	printTable(c.stdout, []string{"id", "status", "dataset", "column", "reporter", "updated", "description"}, rows)
	if unseen {
		fmt.Fprintln(c.stdout, "* the reporter has not yet read this status ('sluice reports show ID' marks it read for the reporter)")
	}
	fmt.Fprintf(c.stdout, "(%s)\n", plural(len(rows), "report", "reports"))
	return nil
}

// clip shortens text for a table cell.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func reportsShow(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "ID")
	if err != nil {
		return err
	}
	var r sluice.ErrorReport
	if done, err := c.call(ctx, "GET", pathOf("reports", pos[0]), nil, nil, &r); done || err != nil {
		return err
	}
	printReport(c.stdout, &r)
	return nil
}

func printReport(w io.Writer, r *sluice.ErrorReport) {
	fmt.Fprintf(w, "report %s — %s\n", r.ID, r.Status)
	fields(w, [][2]string{
		{"dataset", r.Dataset}, {"column", r.Column}, {"provider", r.Provider},
		{"reporter", r.Reporter + " (" + r.Department + ")"}, {"row", r.RowRef},
		{"description", r.Description}, {"reason", r.Reason},
		{"created", fmtTime(r.CreatedAt)}, {"updated", fmtTime(r.UpdatedAt)},
	})
	if len(r.History) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, len(r.History))
		for i, e := range r.History {
			rows[i] = []string{fmtTime(e.Time), e.Actor, string(e.Status), orDash(e.Note)}
		}
		printTable(w, []string{"time", "actor", "status", "note"}, rows)
	}
}

// reportMove is a provider's answer to a report.
func reportMove(action string, reasonRequired bool) func(ctx context.Context, c *adminCmd, args []string) error {
	return func(ctx context.Context, c *adminCmd, args []string) error {
		help := "a note for the reporter: what was found or corrected"
		if reasonRequired {
			help = "why the report is rejected (required)"
		}
		reason := c.fs.String("reason", "", help)
		pos, err := c.parse(args, "ID")
		if err != nil {
			return err
		}
		body := struct {
			Reason string `json:"reason,omitempty"`
		}{strings.TrimSpace(*reason)}
		if reasonRequired && body.Reason == "" {
			return usageErr("--reason is required: tell the reporter why")
		}
		var r sluice.ErrorReport
		if done, err := c.call(ctx, "POST", pathOf("reports", pos[0], action), nil, body, &r); done || err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "report %s is now %s\n", r.ID, r.Status)
		return nil
	}
}
