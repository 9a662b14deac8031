package main

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"golang.org/x/text/width"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// clientFlags are the connection flags shared by the client commands.
// Their defaults point at a demo started in the current folder.
type clientFlags struct {
	addr, token, user, users, ca, purpose string
	insecure                              bool
	timeout                               time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", envOr("SLUICE_ADDR", "127.0.0.1:47470"), "broker address ($SLUICE_ADDR)")
	fs.StringVar(&c.token, "token", os.Getenv("SLUICE_TOKEN"), "bearer token ($SLUICE_TOKEN)")
	fs.StringVar(&c.user, "user", "", "take the token of this user from --users (demo convenience)")
	fs.StringVar(&c.users, "users", envOr("SLUICE_USERS", ".sluice-demo/users.json"), "users file with tokens, as written by 'sluice demo' ($SLUICE_USERS)")
	fs.StringVar(&c.ca, "ca", envOr("SLUICE_CA", ".sluice-demo/tls/broker.crt"), "the broker's certificate to pin ($SLUICE_CA)")
	fs.BoolVar(&c.insecure, "insecure-skip-verify", false, "do not verify the broker's certificate (testing only)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up after this long")
}

func (c *clientFlags) resolveToken() (string, error) {
	if c.user != "" {
		raw, err := os.ReadFile(c.users)
		if err != nil {
			return "", usageErr("--user %s: cannot read the users file %s: %v (start 'sluice demo' first, or pass --token)", c.user, c.users, err)
		}
		var us []struct{ Name, Token string }
		if err := json.Unmarshal(raw, &us); err != nil {
			return "", usageErr("--users %s is not a JSON list of {name, token}: %v", c.users, err)
		}
		for _, u := range us {
			if u.Name == c.user {
				return u.Token, nil
			}
		}
		return "", usageErr("--user %s is not in %s", c.user, c.users)
	}
	if c.token == "" {
		return "", usageErr("no credentials: pass --token (or set SLUICE_TOKEN), or --user NAME with a demo users file")
	}
	return c.token, nil
}

func (c *clientFlags) tlsConfig() (*tls.Config, error) {
	if c.insecure {
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil
	}
	pin, err := tlsutil.FingerprintFile(c.ca)
	if err != nil {
		return nil, usageErr("--ca %s: %v (pass the broker's certificate, or --insecure-skip-verify for testing)", c.ca, err)
	}
	return tlsutil.PinnedClientConfig(pin, nil), nil
}

// bearer sends the token and the purpose with every call.
type bearer struct{ token, purpose string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	md := map[string]string{"authorization": "Bearer " + b.token}
	if b.purpose != "" {
		md[broker.PurposeHeader] = b.purpose
	}
	return md, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

func (c *clientFlags) dial(ctx context.Context) (*flightsql.Client, error) {
	token, err := c.resolveToken()
	if err != nil {
		return nil, err
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	return flightsql.NewClientCtx(ctx, c.addr, nil, nil,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithPerRPCCredentials(bearer{token: token, purpose: c.purpose}))
}

// brokerError is rpcError for a call to the broker at c.addr: when the
// call never reached a broker, it says what to check instead of passing on
// gRPC's transport message.
func (c *clientFlags) brokerError(err error) error {
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := s.Message()
	switch {
	case s.Code() == codes.Unavailable && (strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "Error while dialing") || strings.Contains(msg, "connect:") || strings.Contains(msg, "i/o timeout")):
		return &exitError{code: 1, err: fmt.Errorf("Unavailable: cannot reach a broker at %s (%s). Check that the broker is running — 'sluice demo' in another terminal, or 'sluice broker --config broker.yaml' — and that --addr (or $SLUICE_ADDR) names its Flight SQL address", c.addr, dialCause(msg))}
	case s.Code() == codes.Unavailable && (strings.Contains(msg, "authentication handshake failed") || strings.Contains(msg, "certificate")):
		return &exitError{code: 1, err: fmt.Errorf("Unavailable: the server at %s is not the broker whose certificate --ca names (%s): %s. Pass the broker's certificate with --ca (or $SLUICE_CA); a demo's is .sluice-demo/tls/broker.crt of the folder it runs in", c.addr, c.ca, msg)}
	case s.Code() == codes.DeadlineExceeded && strings.Contains(msg, "connect"):
		return &exitError{code: 1, err: fmt.Errorf("DeadlineExceeded: no connection to a broker at %s within %v. Check that the broker is running there and that --addr (or $SLUICE_ADDR) is right", c.addr, c.timeout)}
	}
	return rpcError(err)
}

// dialCause is the last, most specific part of a gRPC transport message,
// e.g. "connect: connection refused".
func dialCause(msg string) string {
	msg = strings.TrimRight(msg, `"`)
	for _, marker := range []string{"connect: ", "dial tcp "} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			if marker == "connect: " {
				return msg[i:]
			}
			return "dial tcp " + msg[i+len(marker):]
		}
	}
	return msg
}

// rpcError turns a gRPC error into a one-line message with its code.
func rpcError(err error) error {
	if s, ok := status.FromError(err); ok {
		return &exitError{code: 1, err: fmt.Errorf("%s: %s", s.Code(), s.Message())}
	}
	return err
}

// fetch runs a FlightInfo's endpoints and hands each record to emit.
func fetch(ctx context.Context, cl *flightsql.Client, info *flight.FlightInfo, emit func(*arrow.Schema, arrow.Record) error) (*arrow.Schema, error) {
	schema, _, err := fetchReport(ctx, cl, info, emit)
	return schema, err
}

// fetchReport is fetch that also returns the broker's release report (the
// last batch's app metadata: suppressed groups, noise), when it sent one.
func fetchReport(ctx context.Context, cl *flightsql.Client, info *flight.FlightInfo, emit func(*arrow.Schema, arrow.Record) error) (*arrow.Schema, map[string]any, error) {
	var report map[string]any
	var schema *arrow.Schema
	if s, err := flight.DeserializeSchema(info.Schema, nil); err == nil {
		schema = s
	}
	for _, ep := range info.Endpoint {
		rd, err := cl.DoGet(ctx, ep.Ticket)
		if err != nil {
			return schema, nil, rpcError(err)
		}
		schema = rd.Schema()
		for rd.Next() {
			if meta := rd.LatestAppMetadata(); len(meta) > 0 {
				var r map[string]any
				if json.Unmarshal(meta, &r) == nil {
					report = r
				}
			}
			if err := emit(schema, rd.Record()); err != nil {
				rd.Release()
				return schema, nil, err
			}
		}
		err = rd.Err()
		rd.Release()
		if err != nil && !errors.Is(err, io.EOF) {
			return schema, nil, rpcError(err)
		}
	}
	return schema, report, nil
}

func cmdQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query", `query --purpose P [--format table|csv|json] [connection flags] "SQL"`, stderr)
	var cf clientFlags
	cf.register(fs)
	fs.StringVar(&cf.purpose, "purpose", os.Getenv("SLUICE_PURPOSE"), "declared purpose of this use ($SLUICE_PURPOSE)")
	format := fs.String("format", "table", "output format: table, csv or json")
	maxRows := fs.Int("max-rows", 1000, "table format: print at most this many rows (0 = all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr(`query takes exactly one SQL statement in quotes, got %d arguments`, fs.NArg())
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return usageErr("--format must be table, csv or json, got %q", *format)
	}
	if cf.purpose == "" {
		return usageErr("--purpose is required: the registered purpose of this use (e.g. subsidy-review)")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	cl, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	info, err := cl.Execute(ctx, fs.Arg(0))
	if err != nil {
		return cf.brokerError(err)
	}
	out := newPrinter(*format, stdout, *maxRows)
	schema, report, err := fetchReport(ctx, cl, info, out.add)
	if err != nil {
		return err
	}
	if err := out.finish(schema); err != nil {
		return err
	}
	// On stderr, so CSV and JSON output stay data only.
	if n, ok := report["suppressed_groups"].(float64); ok && n > 0 {
		fmt.Fprintf(stderr, "note: %s suppressed: fewer persons than the release's minimum group size k\n", plural(int(n), "group", "groups"))
	}
	return nil
}

// printer renders records as a table, CSV or JSON.
type printer struct {
	format  string
	w       io.Writer
	maxRows int
	header  []string
	rows    [][]string
	objects []map[string]any
	csv     *csv.Writer
	total   int
}

func newPrinter(format string, w io.Writer, maxRows int) *printer {
	p := &printer{format: format, w: w, maxRows: maxRows}
	if format == "csv" {
		p.csv = csv.NewWriter(w)
	}
	return p
}

func (p *printer) setHeader(schema *arrow.Schema) {
	if p.header != nil || schema == nil {
		return
	}
	p.header = make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		p.header[i] = f.Name
	}
	if p.csv != nil {
		p.csv.Write(p.header)
	}
}

func (p *printer) add(schema *arrow.Schema, rec arrow.Record) error {
	p.setHeader(schema)
	for r := 0; r < int(rec.NumRows()); r++ {
		p.total++
		switch p.format {
		case "json":
			obj := make(map[string]any, rec.NumCols())
			for c := 0; c < int(rec.NumCols()); c++ {
				obj[p.header[c]] = jsonValue(rec.Column(c), r)
			}
			p.objects = append(p.objects, obj)
		case "csv":
			row := make([]string, rec.NumCols())
			for c := range row {
				row[c] = textValue(rec.Column(c), r, "")
			}
			if err := p.csv.Write(row); err != nil {
				return err
			}
		default:
			if p.maxRows > 0 && len(p.rows) >= p.maxRows {
				continue
			}
			row := make([]string, rec.NumCols())
			for c := range row {
				row[c] = textValue(rec.Column(c), r, "NULL")
			}
			p.rows = append(p.rows, row)
		}
	}
	return nil
}

func (p *printer) finish(schema *arrow.Schema) error {
	p.setHeader(schema)
	switch p.format {
	case "json":
		if p.objects == nil {
			p.objects = []map[string]any{}
		}
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(p.objects)
	case "csv":
		p.csv.Flush()
		return p.csv.Error()
	}
	printTable(p.w, p.header, p.rows)
	suffix := "s"
	if p.total == 1 {
		suffix = ""
	}
	if p.maxRows > 0 && p.total > len(p.rows) {
		fmt.Fprintf(p.w, "(%d row%s, %d shown; use --max-rows 0 or --format csv for all)\n", p.total, suffix, len(p.rows))
	} else {
		fmt.Fprintf(p.w, "(%d row%s)\n", p.total, suffix)
	}
	return nil
}

func textValue(a arrow.Array, i int, null string) string {
	if a.IsNull(i) {
		return null
	}
	switch c := a.(type) {
	case *array.Date32:
		return c.Value(i).FormattedString()
	case *array.Date64:
		return c.Value(i).FormattedString()
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit).UTC().Format("2006-01-02 15:04:05")
	case *array.Decimal128:
		return c.ValueStr(i)
	case *array.Float64:
		return formatFloat(c.Value(i))
	}
	return a.ValueStr(i)
}

func jsonValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch c := a.(type) {
	case *array.Int64:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.Boolean:
		return c.Value(i)
	case *array.String:
		return c.Value(i)
	case *array.Decimal128:
		return json.Number(c.ValueStr(i))
	}
	return textValue(a, i, "")
}

// formatFloat prints averages and ratios readably: fixed notation, at most
// six decimals, no trailing zeros.
func formatFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) >= 1e15 {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// displayWidth counts East Asian wide characters as two columns, so tables
// of Chinese names line up in a terminal.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

func printTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = displayWidth(h)
	}
	for _, r := range rows {
		for i, v := range r {
			if d := displayWidth(v); i < len(widths) && d > widths[i] {
				widths[i] = d
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, v := range cells {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(v)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(v)))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = strings.Repeat("-", widths[i])
	}
	fmt.Fprintln(w, strings.Join(seps, "-+-"))
	for _, r := range rows {
		line(r)
	}
}

func cmdCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && adminCatalogCommand(args[0]) {
		return cmdCatalogAdmin(ctx, args, stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		return usageErr("usage: sluice catalog list [--department D] | sluice catalog show department.dataset | sluice catalog search|export|changes|register-agent|tables|propose|classify|remove (see 'sluice catalog help')")
	}
	sub := args[0]
	fs := newFlags("catalog "+sub, "catalog list|show [connection flags] [department.dataset]", stderr)
	var cf clientFlags
	cf.register(fs)
	dept := fs.String("department", "", "list: only this department's datasets")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var want string
	if sub == "show" {
		if fs.NArg() != 1 || !strings.Contains(fs.Arg(0), ".") {
			return usageErr("catalog show takes one department.dataset, e.g. civil.residents")
		}
		want = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageErr("catalog list takes no arguments (use --department to filter)")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	cl, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	opts := &flightsql.GetTablesOpts{IncludeSchema: true}
	if *dept != "" {
		opts.DbSchemaFilterPattern = dept
	}
	if want != "" {
		d, n, _ := strings.Cut(want, ".")
		opts.DbSchemaFilterPattern, opts.TableNameFilterPattern = &d, &n
	}
	info, err := cl.GetTables(ctx, opts)
	if err != nil {
		return cf.brokerError(err)
	}
	type entry struct {
		dept, name string
		schema     *arrow.Schema
	}
	var entries []entry
	_, err = fetch(ctx, cl, info, func(_ *arrow.Schema, rec arrow.Record) error {
		for r := 0; r < int(rec.NumRows()); r++ {
			s, err := flight.DeserializeSchema(rec.Column(4).(*array.Binary).Value(r), nil)
			if err != nil {
				return fmt.Errorf("the broker sent an unreadable schema: %v", err)
			}
			entries = append(entries, entry{rec.Column(1).ValueStr(r), rec.Column(2).ValueStr(r), s})
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].dept+"."+entries[i].name < entries[j].dept+"."+entries[j].name })
	meta := func(md arrow.Metadata, key string) string {
		if i := md.FindKey(key); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	if sub == "list" {
		rows := make([][]string, 0, len(entries))
		for _, e := range entries {
			md := e.schema.Metadata()
			rows = append(rows, []string{e.dept + "." + e.name, meta(md, broker.MetaShareClass), meta(md, broker.MetaTitle), meta(md, broker.MetaUpdateFrequency)})
		}
		printTable(stdout, []string{"dataset", "share class", "title", "updated"}, rows)
		fmt.Fprintf(stdout, "(%d datasets)\n", len(entries))
		return nil
	}
	if len(entries) == 0 {
		return &exitError{code: 1, err: fmt.Errorf("no dataset %s in the catalog; see 'sluice catalog list'", want)}
	}
	e := entries[0]
	md := e.schema.Metadata()
	fmt.Fprintf(stdout, "%s.%s — %s\n", e.dept, e.name, meta(md, broker.MetaTitle))
	for _, kv := range [][2]string{{"description", broker.MetaDescription}, {"share class", broker.MetaShareClass}, {"legal basis", broker.MetaLegalBasis}, {"share conditions", broker.MetaShareConditions}, {"update frequency", broker.MetaUpdateFrequency}} {
		if v := meta(md, kv[1]); v != "" {
			fmt.Fprintf(stdout, "  %-17s %s\n", kv[0]+":", v)
		}
	}
	rows := make([][]string, 0, e.schema.NumFields())
	for _, f := range e.schema.Fields() {
		rel := meta(f.Metadata, broker.MetaRelease)
		if m := meta(f.Metadata, broker.MetaMask); m != "" {
			rel += " (" + m + ")"
		}
		if k := meta(f.Metadata, broker.MetaKeyDomain); k != "" {
			rel += " [" + k + "]"
		}
		if meta(f.Metadata, broker.MetaUnique) == "true" {
			rel += ", unique"
		}
		if meta(f.Metadata, broker.MetaDPRequired) == "true" {
			rel += ", DP only"
		}
		typ := meta(f.Metadata, adapters.MetaType)
		if typ == "" {
			typ = f.Type.String()
		}
		rows = append(rows, []string{f.Name, typ, meta(f.Metadata, broker.MetaGrade), rel, meta(f.Metadata, broker.MetaColumnDesc)})
	}
	fmt.Fprintln(stdout)
	printTable(stdout, []string{"column", "type", "grade", "release", "description"}, rows)
	return nil
}
