//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/arrowmapping"
	"github.com/duckdb/duckdb-go/v2/mapping"

	sluice "github.com/sluice-gov/sluice"
)

// database is one locked-down in-memory DuckDB database of the engine's
// pool. It serves one session at a time, through a connection of the
// session's own; between sessions it is checked (see check) and kept for
// the next one, or closed.
type database struct {
	e   *Engine
	dir string // its spill directory, 0700, inside the engine's
	db  mapping.Database
	// conv is the database's own connection, never a session's: it
	// registers __sluice_scan, gives the scans DuckDB's Arrow conversion
	// settings, and checks the database between sessions.
	conv mapping.Connection
	reg  *scanRegistry
	base string // what check reads from a clean database
	uses int    // sessions served
	// names are the names of the catalog's tables and views (lower-cased):
	// an input of such a name is a temporary view, which comes first in
	// DuckDB's search path, rather than a name resolved by the
	// replacement scan, which comes after the catalog.
	names map[string]bool
	// checked is the error of the last check (for the tests).
	checked error
}

// openDB creates a database with its spill directory, locked down and
// checked. ctx is consulted before and after (opening is one C call).
func (e *Engine) openDB(ctx context.Context) (*database, error) {
	if err := ctx.Err(); err != nil {
		return nil, cancelled(err)
	}
	dir, err := os.MkdirTemp(e.dir, "s-")
	if err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: cannot create a spill directory: %v", err)
	}
	d := &database{e: e, dir: dir, reg: newScanRegistry()}
	if err := d.open(); err != nil {
		d.close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		d.close()
		return nil, cancelled(err)
	}
	return d, nil
}

func (d *database) open() error {
	var cfg mapping.Config
	if mapping.CreateConfig(&cfg) == mapping.StateError {
		mapping.DestroyConfig(&cfg)
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot create a DuckDB configuration")
	}
	defer mapping.DestroyConfig(&cfg)
	for _, kv := range d.e.startupSettings() {
		if mapping.SetConfig(cfg, kv[0], kv[1]) == mapping.StateError {
			return sluice.Errorf(sluice.EInternal, "sandbox: this DuckDB does not accept the setting %s = %s", kv[0], kv[1])
		}
	}
	var msg string
	if mapping.OpenExt("", &d.db, cfg, &msg) == mapping.StateError {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot open DuckDB with the sandbox settings: %s", firstLine(msg))
	}
	if mapping.Connect(d.db, &d.conv) == mapping.StateError {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot connect to DuckDB")
	}
	if !registerScan(d.conv, d.reg) {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot register the input scan with DuckDB")
	}
	addReplacementScan(d.db, d.reg)
	if err := execRaw(d.conv, d.e.lockdown(d.dir)); err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot lock DuckDB down: %v", err)
	}
	if err := d.verifyLockdown(); err != nil {
		return err
	}
	base, err := d.state()
	if err != nil {
		return err
	}
	d.base = base
	rows, err := queryStrings(d.conv, "SELECT lower(table_name) FROM duckdb_tables() UNION SELECT lower(view_name) FROM duckdb_views()")
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot read DuckDB's catalog: %v", err)
	}
	d.names = map[string]bool{}
	for _, r := range rows {
		d.names[r[0]] = true
	}
	return nil
}

// close closes the database and removes its spill directory.
func (d *database) close() {
	if d.conv.Ptr != nil {
		mapping.Disconnect(&d.conv)
	}
	if d.db.Ptr != nil {
		mapping.Close(&d.db)
	}
	d.reg.close()
	_ = os.RemoveAll(d.dir)
}

// connect opens a session's connection: everything the session creates
// (its temporary views and tables) belongs to it and goes when it is
// closed.
func (d *database) connect() (mapping.Connection, error) {
	var c mapping.Connection
	if mapping.Connect(d.db, &c) == mapping.StateError {
		return mapping.Connection{}, sluice.Errorf(sluice.EInternal, "sandbox: cannot connect to DuckDB")
	}
	return c, nil
}

// stateSQL lists what a session could leave behind in a database's
// catalog and memory: tables and views beyond the system's, and memory
// held by the buffer manager (also for temporary storage), by tag. A clean
// database has none of these but some memory of DuckDB's allocator (what
// it keeps for reuse varies by some hundred KiB, also in a database
// nothing used), which must stay under maxAllocatorBytes. (The list is
// made without aggregating, which would take memory of its own.) A
// session's temporary objects go with its connection, and Query runs
// nothing but SELECT statements, so this checks what cannot happen; the
// tests read every catalog entry and setting.
const stateSQL = `SELECT 'table', database_name || '.' || schema_name || '.' || table_name FROM duckdb_tables()
UNION ALL SELECT 'view', database_name || '.' || schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal
UNION ALL SELECT 'memory ' || tag, (memory_usage_bytes + temporary_storage_bytes)::VARCHAR FROM duckdb_memory()
	WHERE memory_usage_bytes + temporary_storage_bytes > 0`

// maxAllocatorBytes bounds the memory DuckDB's allocator may hold in a
// database between sessions.
const maxAllocatorBytes = 4 * MiB

// stateSettings are the settings of the lockdown and the limits, which
// check reads (through the C API: no statement) and compares.
var stateSettings = []string{
	"memory_limit", "threads", "max_temp_directory_size", "temp_directory",
	"enable_external_access", "lock_configuration", "allowed_configs", "allowed_directories", "allowed_paths",
	"autoinstall_known_extensions", "autoload_known_extensions", "allow_community_extensions",
	"allow_unsigned_extensions", "allow_extension_repositories", "allow_persistent_secrets",
	"preserve_insertion_order",
}

// state reads stateSQL and stateSettings: an error (errDirty) if the
// database holds anything of a session, else the settings, which check
// compares with those of the database as it was opened.
func (d *database) state() (string, error) {
	rows, err := queryStrings(d.conv, stateSQL)
	if err != nil {
		return "", sluice.Errorf(sluice.EInternal, "sandbox: cannot read the state of DuckDB: %v", err)
	}
	for _, r := range rows {
		if r[0] == "memory ALLOCATOR" {
			if n, err := strconv.ParseInt(r[1], 10, 64); err == nil && n <= maxAllocatorBytes {
				continue
			}
		}
		return "", fmt.Errorf("%w: %s %s", errDirty, r[0], r[1])
	}
	var b strings.Builder
	for _, name := range stateSettings {
		v, ok := setting(d.conv, name)
		if !ok {
			return "", sluice.Errorf(sluice.EInternal, "sandbox: this DuckDB has no setting %s", name)
		}
		b.WriteString(name + "=" + v + "; ")
	}
	return b.String(), nil
}

// errDirty is check's error for a database that shows what a session did.
var errDirty = errors.New("the database is not as it was opened")

// check tells whether the database is as it was opened, now that the
// session that used it has closed its connection: nothing in its spill
// directory but DuckDB's empty marker of the directory's owner, and the
// same state (stateSQL).
func (d *database) check() error {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if !ownerMarker(en) {
			return fmt.Errorf("%w: %s in the spill directory", errDirty, en.Name())
		}
	}
	st, err := d.state()
	if err != nil {
		return err
	}
	if st != d.base {
		return fmt.Errorf("%w: %s, was %s", errDirty, st, d.base)
	}
	return nil
}

// startupSettings are given to DuckDB as the configuration of the new
// database: they are in force before it exists. Every name must be known
// to this DuckDB, or opening fails (fail closed). DuckDB applies them in no
// fixed order, so only settings independent of each other are here.
func (e *Engine) startupSettings() [][2]string {
	return [][2]string{
		{"memory_limit", strconv.FormatInt(e.lim.Memory, 10) + "B"},
		{"threads", strconv.Itoa(e.lim.Threads)},
		// A streamed result keeps the order of ORDER BY only with
		// insertion order preserved; the engine's copies of inputs turn it
		// off for their connection (see copyStatement).
		{"preserve_insertion_order", "true"},
		{"autoinstall_known_extensions", "false"},
		{"autoload_known_extensions", "false"},
		{"allow_community_extensions", "false"},
		{"allow_unsigned_extensions", "false"},
		{"allow_extension_repositories", "forbidden"},
		{"allow_persistent_secrets", "false"},
	}
}

// lockdown runs, in this order, on the database's own connection right
// after it is opened. The order matters: temp_directory before
// max_temp_directory_size (with both in the start-up configuration, where
// the order is random, the size limit was sometimes not enforced), both
// before enable_external_access (DuckDB refuses a new temp_directory once
// external access is off), and lock_configuration last.
// preserve_insertion_order stays changeable: it only trades speed for
// order, and the engine sets it for a connection only (SET SESSION), so
// that it goes with the session.
func (e *Engine) lockdown(dir string) string {
	return strings.Join([]string{
		"SET temp_directory = " + quoteString(dir),
		"SET max_temp_directory_size = '" + strconv.FormatInt(e.lim.MaxSpill, 10) + "B'",
		"SET allowed_configs = ['preserve_insertion_order']",
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	}, "; ")
}

// lockdownChecks are the settings verified after the lockdown, with the
// value each must have in a database spilling to dir; a mismatch fails
// the database (fail closed).
func lockdownChecks(dir string) map[string]string {
	return map[string]string{
		"enable_external_access":       "false",
		"lock_configuration":           "true",
		"autoinstall_known_extensions": "false",
		"autoload_known_extensions":    "false",
		"allow_community_extensions":   "false",
		"allow_unsigned_extensions":    "false",
		"allow_persistent_secrets":     "false",
		"allowed_paths":                "[]",
		"allowed_configs":              "[preserve_insertion_order]",
		"preserve_insertion_order":     "true",
		"temp_directory":               dir,
		// DuckDB adds the temporary directory itself, so that it can
		// spill with external access disabled. A query can therefore list
		// and read the files there: that is one reason why every database
		// has its own directory, and why a database is used again only if
		// its directory is empty.
		"allowed_directories": "[" + dir + "/]",
	}
}

// ownerMarker tells whether en is the empty file DuckDB leaves in its
// temporary directory once it has used it (duckdb_temp_<pid>_<n>_owner),
// which holds no data.
func ownerMarker(en os.DirEntry) bool {
	name := en.Name()
	if !en.Type().IsRegular() || !strings.HasPrefix(name, "duckdb_temp_") || !strings.HasSuffix(name, "_owner") {
		return false
	}
	fi, err := en.Info()
	return err == nil && fi.Size() == 0
}

func (d *database) verifyLockdown() error {
	checks := lockdownChecks(d.dir)
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, quoteString(name))
	}
	sort.Strings(names)
	rows, err := queryStrings(d.conv, "SELECT name, value FROM duckdb_settings() WHERE name IN ("+strings.Join(names, ", ")+")")
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "sandbox: cannot read DuckDB's settings: %v", err)
	}
	got := map[string]string{}
	for _, r := range rows {
		if len(r) == 2 {
			got[r[0]] = r[1]
		}
	}
	for name, want := range checks {
		v, ok := got[name]
		if !ok {
			return sluice.Errorf(sluice.EInternal, "sandbox: this DuckDB has no setting %s; the lockdown cannot be verified", name)
		}
		if v != want {
			return sluice.Errorf(sluice.EInternal, "sandbox: DuckDB setting %s is %q after the lockdown, want %q", name, v, want)
		}
	}
	return nil
}

func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// execRaw runs sql (one or more statements) on conn, for the engine's
// own statements; the error is a *duckdb.Error.
func execRaw(conn mapping.Connection, sql string) error {
	var res mapping.Result
	st := mapping.Query(conn, sql, &res)
	defer mapping.DestroyResult(&res)
	if st == mapping.StateError {
		return resultError(&res)
	}
	return nil
}

// queryStrings runs sql on conn and returns its rows as text (NULL as
// "NULL"), for the engine's own small queries.
func queryStrings(conn mapping.Connection, sql string) ([][]string, error) {
	var res mapping.Result
	st := mapping.Query(conn, sql, &res)
	defer mapping.DestroyResult(&res)
	if st == mapping.StateError {
		return nil, resultError(&res)
	}
	opts := arrowmapping.ResultGetArrowOptions(&res)
	defer arrowmapping.DestroyArrowOptions(&opts)
	schema, err := resultSchema(&res, opts)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for {
		chunk := mapping.FetchChunk(res)
		if chunk.Ptr == nil {
			break
		}
		rec, ed := arrowmapping.DataChunkToArrowArray(opts, schema, chunk)
		mapping.DestroyDataChunk(&chunk)
		if msg, failed := errorData(ed); failed {
			return nil, errors.New(msg)
		}
		for i := range int(rec.NumRows()) {
			row := make([]string, rec.NumCols())
			for j, col := range rec.Columns() {
				switch c := col.(type) {
				case *array.String:
					if c.IsNull(i) {
						row[j] = "NULL"
					} else {
						row[j] = strings.Clone(c.Value(i))
					}
				default:
					row[j] = c.ValueStr(i)
				}
			}
			out = append(out, row)
		}
		rec.Release()
	}
	if msg := mapping.ResultError(&res); msg != "" {
		return nil, resultError(&res)
	}
	return out, nil
}

// resultError is the error of a failed result.
func resultError(res *mapping.Result) error {
	return &duckdb.Error{Type: duckdb.ErrorType(mapping.ResultErrorType(res)), Msg: mapping.ResultError(res)}
}

// messageError is the error DuckDB reports as text only (preparing a
// statement), typed by the message's prefix as duckdb-go does.
func messageError(msg string) error {
	t := duckdb.ErrorTypeInvalid
	if prefix, _, ok := strings.Cut(msg, ": "); ok {
		if pt, ok := errorPrefixes[prefix]; ok {
			t = pt
		}
	}
	return &duckdb.Error{Type: t, Msg: msg}
}

// errorPrefixes are DuckDB's names of its error types, as messages start.
var errorPrefixes = map[string]duckdb.ErrorType{
	"Invalid Error":                duckdb.ErrorTypeInvalid,
	"Out of Range Error":           duckdb.ErrorTypeOutOfRange,
	"Conversion Error":             duckdb.ErrorTypeConversion,
	"Error":                        duckdb.ErrorTypeUnknownType,
	"Decimal Error":                duckdb.ErrorTypeDecimal,
	"Mismatch Type Error":          duckdb.ErrorTypeMismatchType,
	"Divide by Zero Error":         duckdb.ErrorTypeDivideByZero,
	"Object Size Error":            duckdb.ErrorTypeObjectSize,
	"Invalid type Error":           duckdb.ErrorTypeInvalidType,
	"Serialization Error":          duckdb.ErrorTypeSerialization,
	"TransactionContext Error":     duckdb.ErrorTypeTransaction,
	"Not implemented Error":        duckdb.ErrorTypeNotImplemented,
	"Expression Error":             duckdb.ErrorTypeExpression,
	"Catalog Error":                duckdb.ErrorTypeCatalog,
	"Parser Error":                 duckdb.ErrorTypeParser,
	"Planner Error":                duckdb.ErrorTypePlanner,
	"Scheduler Error":              duckdb.ErrorTypeScheduler,
	"Executor Error":               duckdb.ErrorTypeExecutor,
	"Constraint Error":             duckdb.ErrorTypeConstraint,
	"Index Error":                  duckdb.ErrorTypeIndex,
	"Stat Error":                   duckdb.ErrorTypeStat,
	"Connection Error":             duckdb.ErrorTypeConnection,
	"Syntax Error":                 duckdb.ErrorTypeSyntax,
	"Settings Error":               duckdb.ErrorTypeSettings,
	"Binder Error":                 duckdb.ErrorTypeBinder,
	"Network Error":                duckdb.ErrorTypeNetwork,
	"Optimizer Error":              duckdb.ErrorTypeOptimizer,
	"NullPointer Error":            duckdb.ErrorTypeNullPointer,
	"IO Error":                     duckdb.ErrorTypeIO,
	"INTERRUPT Error":              duckdb.ErrorTypeInterrupt,
	"FATAL Error":                  duckdb.ErrorTypeFatal,
	"INTERNAL Error":               duckdb.ErrorTypeInternal,
	"Invalid Input Error":          duckdb.ErrorTypeInvalidInput,
	"Out of Memory Error":          duckdb.ErrorTypeOutOfMemory,
	"Permission Error":             duckdb.ErrorTypePermission,
	"Parameter Not Resolved Error": duckdb.ErrorTypeParameterNotResolved,
	"Parameter Not Allowed Error":  duckdb.ErrorTypeParameterNotAllowed,
	"Dependency Error":             duckdb.ErrorTypeDependency,
	"HTTP Error":                   duckdb.ErrorTypeHTTP,
	"Missing Extension Error":      duckdb.ErrorTypeMissingExtension,
	"Extension Autoloading Error":  duckdb.ErrorTypeAutoLoad,
	"Sequence Error":               duckdb.ErrorTypeSequence,
	"Invalid Configuration Error":  duckdb.ErrorTypeInvalidConfiguration,
}
