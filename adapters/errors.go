package adapters

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	sluice "github.com/sluice-gov/sluice"
)

func quote(s string) string { return strconv.Quote(s) }

// ctxError wraps a context error so errors.Is(err, context.Canceled) and
// errors.Is(err, context.DeadlineExceeded) still hold for the caller.
func (db *DB) ctxError(err error) error {
	what := "was cancelled"
	if errors.Is(err, context.DeadlineExceeded) {
		what = "ran out of time"
	}
	return &sluice.Error{Code: sluice.EUnavailable, Message: "query on source " + quote(db.name) + " " + what, Err: err}
}

// queryError classifies a driver error. Database messages are repeated only
// for error classes whose messages name SQL and identifiers; classes whose
// messages may quote a stored value (data exceptions, constraint and
// conversion failures) are reported by code alone, because an error message
// must never carry a protected value.
func (db *DB) queryError(err error) error {
	src := "source " + quote(db.name)

	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		class := pg.Code
		if len(class) >= 2 {
			class = class[:2]
		}
		switch class {
		case "42": // syntax error or access rule violation
			return &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("%s rejected the query: %s (SQLSTATE %s)", src, pg.Message, pg.Code), Err: err}
		case "22", "23": // data exception, integrity constraint
			return sluice.Errorf(sluice.EInvalid, "%s rejected a value while running the query (SQLSTATE %s)", src, pg.Code)
		case "08", "53", "57": // connection, resources, operator intervention
			return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s is not available: %s (SQLSTATE %s)", src, pg.Message, pg.Code), Err: err}
		}
		return sluice.Errorf(sluice.EInternal, "%s failed to run the query (SQLSTATE %s)", src, pg.Code)
	}

	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1044, 1045, 1142, 1143: // access denied
			return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s refused access: %s (MySQL error %d)", src, db.scrub(my.Message), my.Number), Err: err}
		case 1040, 1053, 1152, 1153, 1205, 1213, 2002, 2003, 2006, 2013: // connection, timeouts, shutdown
			return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s is not available: %s (MySQL error %d)", src, my.Message, my.Number), Err: err}
		case 1049, 1052, 1054, 1055, 1056, 1060, 1064, 1066, 1109, 1111, 1140, 1146, 1222, 1241, 1248, 1305, 1630:
			// Parse and name-resolution errors: the message quotes SQL text,
			// whose literals are bind parameters, and identifiers.
			return &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("%s rejected the query: %s (MySQL error %d)", src, my.Message, my.Number), Err: err}
		}
		return sluice.Errorf(sluice.EInternal, "%s failed to run the query (MySQL error %d)", src, my.Number)
	}

	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff { // the primary result code
		case 1: // SQLITE_ERROR: syntax, no such table or column
			return &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("%s rejected the query: %s", src, lite.Error()), Err: err}
		case 8, 18, 19, 20, 25: // read-only, too big, constraint, mismatch, range
			return sluice.Errorf(sluice.EInvalid, "%s rejected the query (SQLite error %d)", src, lite.Code())
		case 5, 6, 10, 11, 13, 14, 26: // busy, locked, I/O, corrupt, full, cannot open, not a database
			return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s is not available: %s", src, lite.Error()), Err: err}
		}
		return sluice.Errorf(sluice.EInternal, "%s failed to run the query (SQLite error %d)", src, lite.Code())
	}

	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "conn closed") {
		return &sluice.Error{Code: sluice.EUnavailable, Message: src + " is not available: " + db.scrub(err.Error()), Err: err}
	}
	// An unclassified driver error may come from decoding a stored value, so
	// only its type is reported.
	return sluice.Errorf(sluice.EInternal, "%s failed to run the query (%s driver error %T)", src, db.driver, err)
}
