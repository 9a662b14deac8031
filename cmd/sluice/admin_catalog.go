package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// datasetView is a catalog entry as the API shows it (state.DatasetView).
type datasetView struct {
	sluice.Dataset
	DepartmentName string `json:"department_name"`
}

var catalogSubs = []adminSub{
	{name: "search", synopsis: "catalog search [--q KEYWORD] [--department D] [--share-class C] [--grade G]",
		about: "search the catalog by keyword, department, share class and column grade", run: catalogSearch},
	{name: "export", synopsis: "catalog export [--format json|csv] [-o FILE] [search flags]",
		about: "export the catalog as JSON, or CSV with one row per column", run: catalogExport},
	{name: "changes", synopsis: "catalog changes [--department D] [--limit N]",
		about: "versioned catalog changes, newest first", run: catalogChanges},
	{name: "register-agent", synopsis: "catalog register-agent DEPT --address HOST:PORT --fingerprint F [--name NAME]",
		about: "register or move a department's agent (the broker pings it first)", run: catalogRegisterAgent},
	{name: "tables", synopsis: "catalog tables DEPT [--source S]",
		about: "tables and views the department's agent could register", run: catalogTables},
	{name: "propose", synopsis: "catalog propose DEPT TABLE [--source S] [-o FILE]",
		about: "read a table's schema and write a proposed classification to edit", run: catalogPropose},
	{name: "classify", synopsis: "catalog classify DEPT FILE",
		about: "register or reclassify a dataset from an edited proposal file", run: catalogClassify},
	{name: "remove", synopsis: "catalog remove DEPT NAME",
		about: "remove a dataset from the catalog and its agent", run: catalogRemove},
}

// searchFlags are the catalog filters shared by search and export.
type searchFlags struct{ q, dept, shareClass, grade string }

func (s *searchFlags) register(c *adminCmd) {
	c.fs.StringVar(&s.q, "q", "", "keyword in names, titles, descriptions and columns")
	c.fs.StringVar(&s.dept, "department", "", "only this department's datasets")
	c.fs.StringVar(&s.shareClass, "share-class", "", "only this share class: unconditional, conditional or none")
	c.fs.StringVar(&s.grade, "grade", "", "only datasets with a column of this grade: L1, L2, L3 or L4")
}

func (s *searchFlags) query() (url.Values, error) {
	if s.shareClass != "" {
		if err := oneOf("share-class", s.shareClass, "unconditional", "conditional", "none"); err != nil {
			return nil, err
		}
	}
	s.grade = strings.ToUpper(s.grade)
	if s.grade != "" {
		if err := oneOf("grade", s.grade, "L1", "L2", "L3", "L4"); err != nil {
			return nil, err
		}
	}
	return url.Values{"q": {s.q}, "department": {s.dept}, "share_class": {s.shareClass}, "grade": {s.grade}}, nil
}

func catalogSearch(ctx context.Context, c *adminCmd, args []string) error {
	var sf searchFlags
	sf.register(c)
	if _, err := c.parse(args); err != nil {
		return err
	}
	q, err := sf.query()
	if err != nil {
		return err
	}
	var out struct {
		CatalogVersion string        `json:"catalog_version"`
		Datasets       []datasetView `json:"datasets"`
	}
	if done, err := c.call(ctx, "GET", "/v1/catalog/datasets", q, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Datasets))
	for _, d := range out.Datasets {
		top := ""
		for _, col := range d.Columns {
			if string(col.Grade) > top {
				top = string(col.Grade)
			}
		}
		rows = append(rows, []string{d.Department + "." + d.Name, orDash(d.DepartmentName), string(d.ShareClass), orDash(d.Title), strconv.Itoa(len(d.Columns)), orDash(top)})
	}
	printTable(c.stdout, []string{"dataset", "department", "share class", "title", "columns", "top grade"}, rows)
	fmt.Fprintf(c.stdout, "(%s; catalog version %s)\n", plural(len(rows), "dataset", "datasets"), short(out.CatalogVersion))
	return nil
}

// short abbreviates a hash for tables.
func short(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return orDash(h)
}

func catalogExport(ctx context.Context, c *adminCmd, args []string) error {
	var sf searchFlags
	sf.register(c)
	format := c.fs.String("format", "json", "json or csv (one row per column, the layout of a catalog register)")
	output := c.fs.String("o", "", "write to this file instead of standard output")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if err := oneOf("format", *format, "json", "csv"); err != nil {
		return err
	}
	if c.json && *format != "json" {
		return usageErr("--json and --format %s contradict each other", *format)
	}
	q, err := sf.query()
	if err != nil {
		return err
	}
	q.Set("format", *format)
	raw, err := c.fetch(ctx, "GET", "/v1/catalog/export", q, nil)
	if err != nil {
		return err
	}
	if *format == "json" {
		var buf bytes.Buffer
		if err := writeJSON(&buf, raw); err != nil {
			return err
		}
		raw = buf.Bytes()
	}
	if *output == "" {
		_, err := c.stdout.Write(raw)
		return err
	}
	if err := os.WriteFile(*output, raw, 0o644); err != nil {
		return fmt.Errorf("write %s: %v", *output, err)
	}
	fmt.Fprintf(c.stdout, "wrote the catalog (%s, %d bytes) to %s\n", *format, len(raw), *output)
	return nil
}

func catalogChanges(ctx context.Context, c *adminCmd, args []string) error {
	dept := c.fs.String("department", "", "only this department's changes")
	limit := c.fs.Int("limit", 100, "at most this many changes")
	if _, err := c.parse(args); err != nil {
		return err
	}
	var out struct {
		Changes []sluice.CatalogChange `json:"changes"`
	}
	q := url.Values{"department": {*dept}}
	if err := c.setLimit(q, *limit); err != nil {
		return err
	}
	if done, err := c.call(ctx, "GET", "/v1/catalog/changes", q, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Changes))
	for _, ch := range out.Changes {
		rows = append(rows, []string{strconv.FormatInt(ch.Version, 10), fmtTime(ch.Time), ch.Actor, ch.Department, orDash(ch.Dataset), ch.Action, ch.Summary})
	}
	printTable(c.stdout, []string{"version", "time", "actor", "department", "dataset", "action", "summary"}, rows)
	fmt.Fprintf(c.stdout, "(%s)\n", plural(len(rows), "change", "changes"))
	return nil
}

// printChange reports a catalog change.
func printChange(w io.Writer, ch *sluice.CatalogChange) {
	what := ch.Department
	if ch.Dataset != "" {
		what = ch.Dataset
		if !strings.Contains(what, ".") {
			what = ch.Department + "." + ch.Dataset
		}
	}
	fmt.Fprintf(w, "%s %s: %s\n", ch.Action, what, ch.Summary)
	fmt.Fprintf(w, "catalog change %d by %s at %s; catalog version %s\n", ch.Version, ch.Actor, fmtTime(ch.Time), short(ch.CatalogVersion))
}

var hexFingerprint = regexp.MustCompile(`^(sha256:)?[0-9a-f]{64}$`)

// readFingerprint takes sha256:<hex> (with or without the prefix), or the
// path of a PEM certificate whose fingerprint it computes.
func readFingerprint(flagName, v string) (string, error) {
	norm := strings.ToLower(strings.TrimSpace(v))
	if hexFingerprint.MatchString(norm) {
		if !strings.HasPrefix(norm, "sha256:") {
			norm = "sha256:" + norm
		}
		return norm, nil
	}
	if _, err := os.Stat(v); err == nil {
		fp, err := tlsutil.FingerprintFile(v)
		if err != nil {
			return "", usageErr("--%s: %v", flagName, err)
		}
		return fp, nil
	}
	return "", usageErr("--%s %q: give sha256:<64 hex> of the certificate, or the certificate's PEM file", flagName, v)
}

func catalogRegisterAgent(ctx context.Context, c *adminCmd, args []string) error {
	addr := c.fs.String("address", "", "host:port of the agent's Flight service (required)")
	fp := c.fs.String("fingerprint", "", "sha256:<hex> of the agent's certificate, or its PEM file (required)")
	name := c.fs.String("name", "", "the department's name (required for a new department)")
	pos, err := c.parse(args, "DEPT")
	if err != nil {
		return err
	}
	if !sluice.ValidIdentifier(pos[0]) {
		return usageErr("DEPT %q must be a department id (letters, digits, underscore)", pos[0])
	}
	if *addr == "" {
		return usageErr("--address is required: host:port of the agent's Flight service")
	}
	if !strings.Contains(*addr, ":") {
		return usageErr("--address %q is not host:port", *addr)
	}
	if *fp == "" {
		return usageErr("--fingerprint is required: sha256:<hex> of the agent's certificate, or its PEM file")
	}
	pin, err := readFingerprint("fingerprint", *fp)
	if err != nil {
		return err
	}
	body := struct {
		Name        string `json:"name,omitempty"`
		Address     string `json:"address"`
		Fingerprint string `json:"fingerprint"`
	}{strings.TrimSpace(*name), strings.TrimSpace(*addr), pin}
	var ch sluice.CatalogChange
	if done, err := c.call(ctx, "PUT", pathOf("departments", pos[0], "agent"), nil, body, &ch); done || err != nil {
		return err
	}
	printChange(c.stdout, &ch)
	return nil
}

func catalogTables(ctx context.Context, c *adminCmd, args []string) error {
	source := c.fs.String("source", "", "the agent's source (when it has several)")
	pos, err := c.parse(args, "DEPT")
	if err != nil {
		return err
	}
	var out struct {
		Tables []string `json:"tables"`
	}
	if done, err := c.call(ctx, "GET", pathOf("departments", pos[0], "tables"), url.Values{"source": {*source}}, nil, &out); done || err != nil {
		return err
	}
	for _, t := range out.Tables {
		fmt.Fprintln(c.stdout, t)
	}
	fmt.Fprintf(c.stdout, "(%s; propose a classification with 'sluice catalog propose %s TABLE -o TABLE.json')\n", plural(len(out.Tables), "table", "tables"), pos[0])
	return nil
}

// proposalHead is what the CLI reads of a DatasetRegistration file; the
// file itself is sent as written.
type proposalHead struct {
	Source  string `json:"source"`
	Table   string `json:"table"`
	Dataset struct {
		Department string `json:"department"`
		Name       string `json:"name"`
		ShareClass string `json:"share_class"`
		Columns    []any  `json:"columns"`
	} `json:"dataset"`
}

func catalogPropose(ctx context.Context, c *adminCmd, args []string) error {
	source := c.fs.String("source", "", "the agent's source (when it has several)")
	output := c.fs.String("o", "", "write the proposal to this file (to edit, then 'sluice catalog classify')")
	force := c.fs.Bool("force", false, "with -o: overwrite an existing file")
	pos, err := c.parse(args, "DEPT", "TABLE")
	if err != nil {
		return err
	}
	if *output != "" && !*force {
		if _, err := os.Stat(*output); err == nil {
			return usageErr("-o %s exists (an edited classification?); pass --force to overwrite it", *output)
		}
	}
	raw, err := c.fetch(ctx, "GET", pathOf("departments", pos[0], "tables", pos[1], "proposal"), url.Values{"source": {*source}}, nil)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, raw); err != nil {
		return err
	}
	if *output == "" {
		_, err := c.stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(*output, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %v", *output, err)
	}
	var head proposalHead
	json.Unmarshal(raw, &head)
	fmt.Fprintf(c.stdout, "wrote the proposed classification of %s.%s (%s) to %s\n", pos[0], orDash(head.Dataset.Name), plural(len(head.Dataset.Columns), "column", "columns"), *output)
	fmt.Fprintf(c.stdout, "review it: share class and legal basis, title, each column's grade, release and mask; then run\n  sluice catalog classify %s %s\n", pos[0], *output)
	return nil
}

func catalogClassify(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "DEPT", "FILE")
	if err != nil {
		return err
	}
	dept, file := pos[0], pos[1]
	raw, err := os.ReadFile(file)
	if err != nil {
		return usageErr("cannot read %s: %v", file, err)
	}
	var head proposalHead
	if err := json.Unmarshal(raw, &head); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return usageErr("%s is not valid JSON (at byte %d): %v", file, se.Offset, err)
		}
		return usageErr("%s is not a dataset registration ({source, table, dataset}): %v", file, err)
	}
	name := strings.TrimSpace(head.Dataset.Name)
	switch {
	case name == "":
		return usageErr("%s has no dataset.name: name the dataset as analysts will write it", file)
	case strings.TrimSpace(head.Table) == "":
		return usageErr("%s has no table: the source table or view the dataset reads", file)
	case head.Dataset.Department != "" && head.Dataset.Department != dept:
		return usageErr("%s is a dataset of department %s, not %s", file, head.Dataset.Department, dept)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return usageErr("%s is not valid JSON: %v", file, err)
	}
	var ch sluice.CatalogChange
	if done, err := c.call(ctx, "PUT", pathOf("departments", dept, "datasets", name), nil, json.RawMessage(compact.Bytes()), &ch); done || err != nil {
		return err
	}
	printChange(c.stdout, &ch)
	return nil
}

func catalogRemove(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "DEPT", "NAME")
	if err != nil {
		return err
	}
	dept, name := pos[0], strings.TrimPrefix(pos[1], pos[0]+".")
	var ch sluice.CatalogChange
	if done, err := c.call(ctx, "DELETE", pathOf("departments", dept, "datasets", name), nil, nil, &ch); done || err != nil {
		return err
	}
	printChange(c.stdout, &ch)
	return nil
}
