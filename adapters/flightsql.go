package adapters

// A source read over Arrow Flight SQL (driver flightsql): the department's
// data lives in an engine that speaks Flight SQL, and the agent sends it
// the fragment's SQL, rendered by the planner in the dialect the server
// declares, and streams the Arrow record batches it answers with. Columns
// the server already sends in the promised Arrow type pass through
// without copying; others are rebuilt with the same conversions as the SQL
// sources (convert.go).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// flightMaxRecvBytes bounds one gRPC message from a Flight SQL server (one
// record batch); analytical engines send batches well over gRPC's 4 MiB
// default.
const flightMaxRecvBytes = 256 << 20

// flightCloseTimeout bounds closing a prepared statement after a scan.
const flightCloseTimeout = 5 * time.Second

// flightSource is the Flight SQL connection of a DB opened with driver
// flightsql.
type flightSource struct {
	name string
	cl   *flightsql.Client
	mem  memory.Allocator
	cfg  sluice.FlightSQLSource
	// md is the metadata sent on every call: the configured headers and
	// the configured token's authorization header.
	md []string
	// bearer is the authorization header from the last basic-auth
	// handshake, renewed when the server stops accepting it.
	mu     sync.Mutex
	bearer string
	// dialect is the SQL dialect fragments are rendered in (sqlite or
	// postgres), or DriverFlightSQL when the server declares none the
	// planner can render.
	dialect sluice.Driver
	// server is the server's name and version as it declares them.
	server string
	// secrets are scrubbed from every message repeated from the server.
	secrets []string
}

// FlightSQLServer describes a Flight SQL source's server as it declared
// itself (GetSqlInfo), or "" for other sources.
func (db *DB) FlightSQLServer() string {
	if db.fl == nil {
		return ""
	}
	return db.fl.server
}

// openFlightSQL connects to the Flight SQL server of src, authenticates,
// and reads the server's SQL info to choose the dialect. The DB's driver
// becomes that dialect (what the planner renders for) or DriverFlightSQL
// when the server's dialect is unknown: fragments are then refused by the
// planner as not supported yet, while describe still works.
func openFlightSQL(ctx context.Context, src sluice.Source, db *DB) error {
	name := quote(src.Name) + " (flightsql)"
	if src.FlightSQL == nil || strings.TrimSpace(src.FlightSQL.Address) == "" {
		return sluice.Errorf(sluice.EInvalid, "source %s: flightsql.address is required (host:port of the Flight SQL server)", name)
	}
	cfg := *src.FlightSQL
	fs := &flightSource{name: src.Name, mem: db.mem, cfg: cfg}
	for _, s := range []string{cfg.Token, cfg.Password} {
		if len(s) >= 3 {
			fs.secrets = append(fs.secrets, s)
		}
	}

	var creds credentials.TransportCredentials
	if cfg.Plaintext {
		creds = insecure.NewCredentials()
	} else {
		tc, err := flightTLSConfig(src.Name, cfg.TLS)
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(tc)
	}
	cl, err := flightsql.NewClient(cfg.Address, nil, nil,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(flightMaxRecvBytes)),
		grpc.WithUserAgent("sluice-agent"),
	)
	if err != nil {
		return &sluice.Error{Code: sluice.EInvalid, Message: "source " + name + ": cannot connect to " + quote(cfg.Address) + ": " + err.Error(), Err: err}
	}
	fs.cl = cl
	for k, v := range cfg.Headers {
		fs.md = append(fs.md, strings.ToLower(k), v)
	}
	if cfg.Token != "" {
		fs.md = append(fs.md, "authorization", "Bearer "+cfg.Token)
	}

	pctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, pingTimeout)
		defer cancel()
	}
	fail := func(err error) error {
		cl.Close()
		if ctx.Err() != nil {
			return &sluice.Error{Code: sluice.EUnavailable, Message: "opening source " + quote(src.Name) + " was cancelled", Err: ctx.Err()}
		}
		return err
	}
	if cfg.Username != "" {
		if err := fs.handshake(pctx); err != nil {
			return fail(err)
		}
	}
	info, err := fs.sqlInfo(pctx)
	if err != nil {
		return fail(fs.reachError(err))
	}
	fs.server = strings.TrimSpace(info.name + " " + info.version)
	dialect, err := chooseDialect(src.Name, cfg.Dialect, info)
	if err != nil {
		return fail(err)
	}
	fs.dialect = dialect
	db.fl = fs
	db.driver = dialect
	return nil
}

// flightTLSConfig builds the client TLS configuration of a source; a file
// that cannot be read or holds no certificate is EInvalid naming the field.
func flightTLSConfig(source string, t sluice.FlightSQLTLS) (*tls.Config, error) {
	bad := func(field, format string, args ...any) error {
		return sluice.Errorf(sluice.EInvalid, "source %s (flightsql): flightsql.tls.%s: %s", quote(source), field, fmt.Sprintf(format, args...))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, bad("ca_file", "cannot read %s: %v", quote(t.CAFile), errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad("ca_file", "%s holds no PEM certificate", quote(t.CAFile))
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, bad("cert_file", "cannot load the client certificate %s with key %s: %v", quote(t.CertFile), quote(t.KeyFile), err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// serverInfo is what a server declares of itself through GetSqlInfo.
type serverInfo struct {
	name, version, quoteChar string
}

// chooseDialect picks the dialect fragments are rendered in: the
// configured one, else SQLite when the server names itself SQLite,
// PostgreSQL when it names itself PostgreSQL; otherwise DriverFlightSQL
// (not renderable yet). Both dialects quote identifiers with '"': a server
// that declares another quote character cannot take their SQL.
func chooseDialect(source, forced string, info serverInfo) (sluice.Driver, error) {
	q := strings.TrimSpace(info.quoteChar)
	if forced != "" {
		if q != "" && q != `"` {
			return "", sluice.Errorf(sluice.EInvalid, "source %s (flightsql): flightsql.dialect is %s, which quotes identifiers with '\"', but the server %s declares the identifier quote %s",
				quote(source), forced, quote(strings.TrimSpace(info.name+" "+info.version)), quote(q))
		}
		return sluice.Driver(forced), nil
	}
	if q != "" && q != `"` {
		return sluice.DriverFlightSQL, nil
	}
	who := strings.ToLower(info.name + " " + info.version)
	switch {
	case strings.Contains(who, "sqlite"):
		return sluice.DriverSQLite, nil
	case strings.Contains(who, "postgres"):
		return sluice.DriverPostgres, nil
	}
	return sluice.DriverFlightSQL, nil
}

// handshake runs Flight's basic-auth handshake and keeps the bearer token
// the server answers with for later calls.
func (fs *flightSource) handshake(ctx context.Context) error {
	actx := metadata.AppendToOutgoingContext(ctx, fs.headersOnly()...)
	authed, err := fs.cl.Client.AuthenticateBasicToken(actx, fs.cfg.Username, fs.cfg.Password)
	if err != nil {
		return fs.reachError(err)
	}
	md, _ := metadata.FromOutgoingContext(authed)
	tok := md.Get("authorization")
	if len(tok) == 0 || tok[len(tok)-1] == "" {
		return sluice.Errorf(sluice.EUnavailable, "source %s (flightsql): the server's basic-auth handshake returned no bearer token", quote(fs.name))
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.bearer = tok[len(tok)-1]
	if _, t, ok := strings.Cut(fs.bearer, " "); ok && len(t) >= 3 {
		fs.secrets = append(fs.secrets, t)
	}
	return nil
}

// reauthenticated reports whether err says the server no longer accepts
// the handshake's bearer token and a new handshake got another one: the
// caller then retries its call once.
func (fs *flightSource) reauthenticated(ctx context.Context, err error) bool {
	if fs.cfg.Username == "" || status.Code(err) != codes.Unauthenticated || ctx.Err() != nil {
		return false
	}
	return fs.handshake(ctx) == nil
}

// headersOnly is the configured headers without authorization.
func (fs *flightSource) headersOnly() []string {
	out := make([]string, 0, 2*len(fs.cfg.Headers))
	for k, v := range fs.cfg.Headers {
		out = append(out, strings.ToLower(k), v)
	}
	return out
}

func (fs *flightSource) callCtx(ctx context.Context) context.Context {
	fs.mu.Lock()
	bearer := fs.bearer
	fs.mu.Unlock()
	md := fs.md
	if bearer != "" {
		md = append(slices.Clip(md), "authorization", bearer)
	}
	if len(md) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, md...)
}

// sqlInfo reads the server's name, version and identifier quote.
func (fs *flightSource) sqlInfo(ctx context.Context) (serverInfo, error) {
	var out serverInfo
	cctx := fs.callCtx(ctx)
	fi, err := fs.cl.GetSqlInfo(cctx, []flightsql.SqlInfo{
		flightsql.SqlInfoFlightSqlServerName, flightsql.SqlInfoFlightSqlServerVersion, flightsql.SqlInfoIdentifierQuoteChar,
	})
	if err != nil {
		return out, err
	}
	err = fs.readAll(cctx, fi, func(rec arrow.RecordBatch) error {
		if rec.NumCols() < 2 {
			return nil
		}
		ids, ok := rec.Column(0).(*array.Uint32)
		if !ok {
			return nil
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			v, _ := arrowValue(rec.Column(1), i).(string)
			switch flightsql.SqlInfo(ids.Value(i)) {
			case flightsql.SqlInfoFlightSqlServerName:
				out.name = v
			case flightsql.SqlInfoFlightSqlServerVersion:
				out.version = v
			case flightsql.SqlInfoIdentifierQuoteChar:
				out.quoteChar = v
			}
		}
		return nil
	})
	return out, err
}

// readAll reads every endpoint of fi in order and calls fn with each
// record batch (owned by the reader: fn must Retain what it keeps).
func (fs *flightSource) readAll(ctx context.Context, fi *flight.FlightInfo, fn func(arrow.RecordBatch) error) error {
	for _, ep := range fi.GetEndpoint() {
		if err := checkLocations(ep); err != nil {
			return err
		}
		rdr, err := fs.cl.DoGet(ctx, ep.GetTicket())
		if err != nil {
			return err
		}
		for rdr.Next() {
			if err := fn(rdr.RecordBatch()); err != nil {
				rdr.Release()
				return err
			}
		}
		err = rdr.Err()
		rdr.Release()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// checkLocations refuses an endpoint served elsewhere: the agent reads
// only from the server it was configured with (and its credentials).
func checkLocations(ep *flight.FlightEndpoint) error {
	for _, l := range ep.GetLocation() {
		if u := l.GetUri(); u != "" && !strings.HasPrefix(u, "arrow-flight-reuse-connection:") {
			return sluice.Errorf(sluice.ENotSupported, "the Flight SQL server sent part of the result from another location (%s); reading from other locations is not supported yet", quote(u))
		}
	}
	return nil
}

func (fs *flightSource) close() error {
	return fs.cl.Close()
}

func (fs *flightSource) ping(ctx context.Context) error {
	if _, err := fs.sqlInfo(ctx); err != nil {
		return fs.queryError(ctx, err)
	}
	return nil
}

// scan runs sqlText on the server and streams its batches to emit in the
// schema of fields (see DB.Scan). With arguments the statement is
// prepared and the arguments bound as one row of parameters.
func (fs *flightSource) scan(ctx context.Context, sqlText string, args []any, fields []planner.Field, batchRows int, emit func(arrow.Record) error) (rows int64, err error) {
	cctx := fs.callCtx(ctx)
	fi, closeStmt, err := fs.start(cctx, sqlText, args)
	if err != nil && fs.reauthenticated(ctx, err) {
		cctx = fs.callCtx(ctx)
		fi, closeStmt, err = fs.start(cctx, sqlText, args)
	}
	if err != nil {
		return 0, fs.queryError(ctx, err)
	}
	defer closeStmt()

	schema := Schema(fields)
	err = fs.readAll(cctx, fi, func(rec arrow.RecordBatch) error {
		if int(rec.NumCols()) != len(fields) {
			return sluice.Errorf(sluice.EInternal, "source %q returned %d columns, but %d fields were declared", fs.name, rec.NumCols(), len(fields))
		}
		if rec.NumRows() == 0 {
			return nil
		}
		out, err := conform(fs.mem, rec, schema, fields)
		if err != nil {
			var ce *convError
			if errors.As(err, &ce) {
				return &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("source %q: %s", fs.name, ce.Error()), Err: ce}
			}
			return err
		}
		defer out.Release()
		n := out.NumRows()
		for off := int64(0); off < n; off += int64(batchRows) {
			part := out
			if off > 0 || n > int64(batchRows) {
				part = out.NewSlice(off, min(n, off+int64(batchRows)))
			}
			err := emit(part)
			if part != out {
				part.Release()
			}
			if err != nil {
				return &emitError{err}
			}
			rows += part.NumRows()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		var ee *emitError
		if errors.As(err, &ee) {
			return rows, ee.err
		}
		var se *sluice.Error
		if errors.As(err, &se) && ctx.Err() == nil {
			return rows, err
		}
		return rows, fs.queryError(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return rows, fs.ctxError(err)
	}
	return rows, nil
}

// start runs sqlText: plainly without arguments, else as a prepared
// statement with the arguments bound as one row of parameters. The
// returned function closes the statement.
func (fs *flightSource) start(cctx context.Context, sqlText string, args []any) (*flight.FlightInfo, func(), error) {
	if len(args) == 0 {
		fi, err := fs.cl.Execute(cctx, sqlText)
		return fi, func() {}, err
	}
	stmt, err := fs.cl.Prepare(cctx, sqlText)
	if err != nil {
		return nil, nil, err
	}
	closeStmt := func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(cctx), flightCloseTimeout)
		defer cancel()
		_ = stmt.Close(c)
	}
	params, err := fs.params(args)
	if err != nil {
		closeStmt()
		return nil, nil, err
	}
	stmt.SetParameters(params)
	params.Release()
	fi, err := stmt.Execute(cctx)
	if err != nil {
		closeStmt()
		return nil, nil, err
	}
	return fi, closeStmt, nil
}

// emitError carries an error from the caller's emit out of readAll
// unchanged.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }

// params builds the one-row record of bind parameters. SQLite has no
// boolean type, so booleans are bound as 1 and 0 for a SQLite dialect.
func (fs *flightSource) params(args []any) (arrow.RecordBatch, error) {
	fields := make([]arrow.Field, len(args))
	cols := make([]arrow.Array, len(args))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, a := range args {
		name := fmt.Sprintf("p%d", i+1)
		switch v := a.(type) {
		case nil:
			fields[i] = arrow.Field{Name: name, Type: arrow.Null, Nullable: true}
			cols[i] = array.NewNull(1)
		case int64:
			b := array.NewInt64Builder(fs.mem)
			b.Append(v)
			cols[i] = b.NewArray()
			b.Release()
			fields[i] = arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true}
		case float64:
			b := array.NewFloat64Builder(fs.mem)
			b.Append(v)
			cols[i] = b.NewArray()
			b.Release()
			fields[i] = arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
		case bool:
			if fs.dialect == sluice.DriverSQLite {
				b := array.NewInt64Builder(fs.mem)
				if v {
					b.Append(1)
				} else {
					b.Append(0)
				}
				cols[i] = b.NewArray()
				b.Release()
				fields[i] = arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true}
				continue
			}
			b := array.NewBooleanBuilder(fs.mem)
			b.Append(v)
			cols[i] = b.NewArray()
			b.Release()
			fields[i] = arrow.Field{Name: name, Type: arrow.FixedWidthTypes.Boolean, Nullable: true}
		case string:
			b := array.NewStringBuilder(fs.mem)
			b.Append(v)
			cols[i] = b.NewArray()
			b.Release()
			fields[i] = arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
		default:
			return nil, sluice.Errorf(sluice.EInternal, "source %q: cannot bind a parameter of type %T", fs.name, a)
		}
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, 1), nil
}

// conform returns rec under schema: each column the server sent in the
// promised Arrow type is reused as is (no copy), any other is rebuilt
// value by value with the conversions of the SQL sources.
func conform(mem memory.Allocator, rec arrow.RecordBatch, schema *arrow.Schema, fields []planner.Field) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, len(fields))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, f := range fields {
		in := rec.Column(i)
		if arrow.TypeEqual(in.DataType(), schema.Field(i).Type) {
			in.Retain()
			cols[i] = in
			continue
		}
		c, err := rebuild(mem, in, f)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows()), nil
}

// rebuild converts one column to the Arrow type of f.
func rebuild(mem memory.Allocator, in arrow.Array, f planner.Field) (arrow.Array, error) {
	n := in.Len()
	if in.DataType().ID() == arrow.NULL {
		return array.MakeArrayOfNull(mem, ArrowType(f.Type), n), nil
	}
	b := array.NewBuilder(mem, ArrowType(f.Type))
	defer b.Release()
	b.Reserve(n)
	w, err := newWriter(f.Name, f.Type, b)
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if err := w.Scan(arrowValue(in, i)); err != nil {
			return nil, err
		}
	}
	return b.NewArray(), nil
}

// arrowValue is the i-th value of a as one of the Go types the writers of
// convert.go take: nil, int64, uint64, float64, bool, string, []byte or
// time.Time (decimals and other types as their text).
func arrowValue(a arrow.Array, i int) any {
	switch c := a.(type) {
	case *array.DenseUnion:
		return arrowValue(c.Field(c.ChildID(i)), int(c.ValueOffset(i)))
	case *array.SparseUnion:
		return arrowValue(c.Field(c.ChildID(i)), i)
	case *array.Dictionary:
		if c.IsNull(i) {
			return nil
		}
		return arrowValue(c.Dictionary(), c.GetValueIndex(i))
	}
	if a.IsNull(i) {
		return nil
	}
	switch c := a.(type) {
	case *array.Int8:
		return int64(c.Value(i))
	case *array.Int16:
		return int64(c.Value(i))
	case *array.Int32:
		return int64(c.Value(i))
	case *array.Int64:
		return c.Value(i)
	case *array.Uint8:
		return uint64(c.Value(i))
	case *array.Uint16:
		return uint64(c.Value(i))
	case *array.Uint32:
		return uint64(c.Value(i))
	case *array.Uint64:
		return c.Value(i)
	case *array.Float16:
		return float64(c.Value(i).Float32())
	case *array.Float32:
		return float64(c.Value(i))
	case *array.Float64:
		return c.Value(i)
	case *array.Boolean:
		return c.Value(i)
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.StringView:
		return c.Value(i)
	case *array.Binary:
		return c.Value(i)
	case *array.LargeBinary:
		return c.Value(i)
	case *array.Date32:
		return c.Value(i).ToTime()
	case *array.Date64:
		return c.Value(i).ToTime()
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit)
	}
	return a.ValueStr(i)
}

// tables lists the tables and views the server reports (in the configured
// catalog and schema), sorted, without SQLite's internal tables.
func (fs *flightSource) tables(ctx context.Context) ([]string, error) {
	recs, err := fs.getTables(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range recs {
		if seen[t.name] {
			continue
		}
		seen[t.name] = true
		out = append(out, t.name)
	}
	return out, nil
}

type flightTable struct {
	name   string
	schema *arrow.Schema
}

// getTables runs GetTables; pattern narrows by table name (a LIKE pattern
// for the server: the caller compares names exactly).
func (fs *flightSource) getTables(ctx context.Context, pattern *string, withSchema bool) ([]flightTable, error) {
	opts := &flightsql.GetTablesOpts{TableNameFilterPattern: pattern, IncludeSchema: withSchema}
	if fs.cfg.Catalog != "" {
		opts.Catalog = &fs.cfg.Catalog
	}
	if fs.cfg.Schema != "" {
		opts.DbSchemaFilterPattern = &fs.cfg.Schema
	}
	cctx := fs.callCtx(ctx)
	fi, err := fs.cl.GetTables(cctx, opts)
	if err != nil && fs.reauthenticated(ctx, err) {
		cctx = fs.callCtx(ctx)
		fi, err = fs.cl.GetTables(cctx, opts)
	}
	if err != nil {
		return nil, fs.queryError(ctx, err)
	}
	var out []flightTable
	err = fs.readAll(cctx, fi, func(rec arrow.RecordBatch) error {
		idx := func(name string) int {
			if ix := rec.Schema().FieldIndices(name); len(ix) > 0 {
				return ix[0]
			}
			return -1
		}
		iName, iType, iSchema := idx("table_name"), idx("table_type"), idx("table_schema")
		if iName < 0 {
			return sluice.Errorf(sluice.EInternal, "source %q: the server's table list has no table_name column", fs.name)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			name, _ := arrowValue(rec.Column(iName), i).(string)
			typ := ""
			if iType >= 0 {
				typ, _ = arrowValue(rec.Column(iType), i).(string)
			}
			if name == "" || !tableLike(typ) {
				continue
			}
			if fs.dialect == sluice.DriverSQLite && strings.HasPrefix(strings.ToLower(name), "sqlite_") {
				continue
			}
			t := flightTable{name: name}
			if withSchema && iSchema >= 0 {
				if raw, ok := arrowValue(rec.Column(iSchema), i).([]byte); ok && len(raw) > 0 {
					s, err := flight.DeserializeSchema(raw, fs.mem)
					if err != nil {
						return sluice.Errorf(sluice.EInternal, "source %q: the server sent a schema of table %q that cannot be read: %v", fs.name, name, err)
					}
					t.schema = s
				}
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		var se *sluice.Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fs.queryError(ctx, err)
	}
	sortTables(out)
	return out, nil
}

func sortTables(ts []flightTable) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].name < ts[j-1].name; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// tableLike reports whether a server's table type names something rows
// can be read from (tables and views, not indexes, triggers or system
// tables).
func tableLike(typ string) bool {
	t := strings.ToLower(strings.TrimSpace(typ))
	switch t {
	case "", "table", "view", "base table", "materialized view", "external table", "foreign table", "local temporary", "temporary table":
		return true
	}
	return false
}

// columns describes table with GetTables(include_schema). The column's
// database type is the Flight SQL type name the server attaches
// (ARROW:FLIGHT:SQL:TYPE_NAME) or else the Arrow type; the catalog type
// follows the dialect's rules for the type name, or the Arrow type.
func (fs *flightSource) columns(ctx context.Context, table string) ([]ColumnInfo, error) {
	ts, err := fs.getTables(ctx, &table, true)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.name != table {
			continue
		}
		if t.schema == nil {
			return nil, sluice.Errorf(sluice.ENotSupported, "source %q: the Flight SQL server sends no schema for table %q (GetTables with include_schema); describing its tables is not supported yet", fs.name, table)
		}
		out := make([]ColumnInfo, 0, t.schema.NumFields())
		for _, f := range t.schema.Fields() {
			c := ColumnInfo{Name: f.Name, DBType: f.Type.String(), Type: arrowCatalogType(f.Type)}
			if tn, ok := f.Metadata.GetValue(flightsql.TypeNameKey); ok && tn != "" {
				c.DBType = tn
				if fs.dialect != sluice.DriverFlightSQL {
					c.Type = CatalogType(fs.dialect, tn)
				}
			}
			out = append(out, c)
		}
		return out, nil
	}
	return nil, sluice.Errorf(sluice.ENotFound, "source %s has no table or view %s", quote(fs.name), quote(table))
}

// arrowCatalogType is the catalog type an Arrow type is best read as.
func arrowCatalogType(t arrow.DataType) sluice.ColumnType {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return sluice.TypeInteger
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return sluice.TypeFloat
	case arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		return sluice.TypeDecimal
	case arrow.BOOL:
		return sluice.TypeBoolean
	case arrow.DATE32, arrow.DATE64:
		return sluice.TypeDate
	case arrow.TIMESTAMP:
		return sluice.TypeTimestamp
	case arrow.DICTIONARY:
		return arrowCatalogType(t.(*arrow.DictionaryType).ValueType)
	}
	return sluice.TypeText
}

// probe runs a query that returns no row over the columns (see DB.Probe).
func (fs *flightSource) probe(ctx context.Context, sqlText string) error {
	cctx := fs.callCtx(ctx)
	fi, err := fs.cl.Execute(cctx, sqlText)
	if err != nil {
		return fs.queryError(ctx, err)
	}
	if err := fs.readAll(cctx, fi, func(arrow.RecordBatch) error { return nil }); err != nil {
		return fs.queryError(ctx, err)
	}
	return nil
}

func (fs *flightSource) scrub(msg string) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, s := range fs.secrets {
		msg = strings.ReplaceAll(msg, s, "********")
	}
	return msg
}

func (fs *flightSource) ctxError(err error) error {
	what := "was cancelled"
	if errors.Is(err, context.DeadlineExceeded) {
		what = "ran out of time"
	}
	return &sluice.Error{Code: sluice.EUnavailable, Message: "query on source " + quote(fs.name) + " " + what, Err: err}
}

// reachError classifies a failure to reach or authenticate at Open.
func (fs *flightSource) reachError(err error) error {
	src := "source " + quote(fs.name) + " (flightsql)"
	st, _ := status.FromError(err)
	msg := fs.scrub(st.Message())
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied:
		return &sluice.Error{Code: sluice.EUnavailable, Message: src + " refused the agent's credentials: " + msg, Err: err}
	}
	return &sluice.Error{Code: sluice.EUnavailable, Message: src + " is not reachable at " + quote(fs.cfg.Address) + ": " + msg, Err: err}
}

// queryError classifies an error of a call to the server. The server's
// message is repeated only where it names SQL and identifiers (the query
// was refused as written); otherwise only the gRPC code, because a
// server's message may quote a stored value.
func (fs *flightSource) queryError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fs.ctxError(cerr)
	}
	var se *sluice.Error
	if errors.As(err, &se) {
		return err
	}
	src := "source " + quote(fs.name)
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &sluice.Error{Code: sluice.EUnavailable, Message: src + " is not available: " + fs.scrub(err.Error()), Err: err}
		}
		return sluice.Errorf(sluice.EInternal, "%s failed to run the query (%T)", src, err)
	}
	msg := fs.scrub(st.Message())
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s is not available: %s (gRPC %s)", src, msg, st.Code()), Err: err}
	case codes.Unauthenticated, codes.PermissionDenied:
		return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s refused access: %s (gRPC %s)", src, msg, st.Code()), Err: err}
	case codes.InvalidArgument, codes.NotFound:
		return &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("%s rejected the query: %s (gRPC %s)", src, msg, st.Code()), Err: err}
	case codes.Unimplemented:
		return &sluice.Error{Code: sluice.ENotSupported, Message: fmt.Sprintf("%s does not support a call the agent made: %s (gRPC %s)", src, msg, st.Code()), Err: err}
	}
	return sluice.Errorf(sluice.EInternal, "%s failed to run the query (gRPC %s)", src, st.Code())
}

// Ping checks that the source answers: a database ping, or GetSqlInfo on
// a Flight SQL server.
func (db *DB) Ping(ctx context.Context) error {
	if db.fl != nil {
		return db.fl.ping(ctx)
	}
	return db.x.PingContext(ctx)
}
