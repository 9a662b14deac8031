//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// classify turns an error of a statement run under ctx into a
// *sluice.Error. Errors of the sandbox's limits are EResource naming the
// limit; a done context gives an error that unwraps to its cause
// (context.Canceled or context.DeadlineExceeded); DuckDB's errors about the
// SQL are EInvalid with DuckDB's first line; DuckDB's errors about a value
// (conversion, overflow, division by zero, constraint, invalid input) are
// EInvalid without DuckDB's message, which quotes the value; anything else
// is EInternal.
func (s *Session) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var se *sluice.Error
	if errors.As(err, &se) {
		return err
	}
	if ctx.Err() != nil {
		return s.contextErr(context.Cause(ctx))
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return s.contextErr(err)
		}
		return &sluice.Error{Code: sluice.EInternal, Message: "sandbox: " + firstLine(err.Error()), Err: err}
	}
	return s.duckErr(de)
}

func (s *Session) duckErr(de *duckdb.Error) error {
	if planner.IsDuckDBRendererError(de) {
		// The renderer's own checks (a one-to-one join met a row twice,
		// a malformed pseudonym): their text names no value.
		return planner.DuckDBRuntimeError(de)
	}
	lim := s.e.lim
	msg := firstLine(de.Msg)
	switch de.Type {
	case duckdb.ErrorTypeOutOfMemory:
		if strings.Contains(de.Msg, "max_temp_directory_size") {
			return &sluice.Error{Code: sluice.EResource, Err: de,
				Message: "the query needs more than " + formatBytes(lim.MaxSpill) + " of spill space in the sandbox (spill limit); add filters or aggregate at the source"}
		}
		return &sluice.Error{Code: sluice.EResource, Err: de,
			Message: "the query needs more than " + formatBytes(lim.Memory) + " in the sandbox (memory limit); add filters or aggregate at the source"}
	case duckdb.ErrorTypeIO:
		if strings.Contains(de.Msg, "No space left on device") {
			return &sluice.Error{Code: sluice.EResource, Err: de,
				Message: "the sandbox ran out of disk space for spilling; add filters or aggregate at the source"}
		}
		return &sluice.Error{Code: sluice.EInternal, Message: "sandbox: " + msg, Err: de}
	case duckdb.ErrorTypeInterrupt:
		return s.contextErr(context.Canceled)
	case duckdb.ErrorTypePermission:
		return &sluice.Error{Code: sluice.EInvalid, Message: "the sandbox does not allow this: " + msg, Err: de}
	case duckdb.ErrorTypeParser, duckdb.ErrorTypeSyntax, duckdb.ErrorTypeBinder, duckdb.ErrorTypeCatalog,
		duckdb.ErrorTypeParameterNotResolved, duckdb.ErrorTypeParameterNotAllowed, duckdb.ErrorTypeNotImplemented,
		duckdb.ErrorTypeMismatchType, duckdb.ErrorTypeInvalidType, duckdb.ErrorTypeDependency,
		duckdb.ErrorTypeMissingExtension, duckdb.ErrorTypeAutoLoad, duckdb.ErrorTypeSettings:
		return &sluice.Error{Code: sluice.EInvalid, Message: "the sandbox cannot run the query: " + msg, Err: de}
	case duckdb.ErrorTypeInvalidInput:
		if strings.Contains(de.Msg, "the configuration has been locked") {
			return &sluice.Error{Code: sluice.EInvalid, Message: "the sandbox does not allow this: its configuration is locked", Err: de}
		}
		return valueErr("invalid input")
	case duckdb.ErrorTypeConversion:
		return valueErr("a value could not be converted")
	case duckdb.ErrorTypeOutOfRange, duckdb.ErrorTypeDecimal:
		return valueErr("a value is out of range (overflow)")
	case duckdb.ErrorTypeDivideByZero:
		return valueErr("division by zero")
	case duckdb.ErrorTypeConstraint:
		return valueErr("a constraint was violated")
	case duckdb.ErrorTypeInvalid, duckdb.ErrorTypeUnknownType:
		// No known prefix: the message may be anything.
		return valueErr("DuckDB reported an unclassified error")
	}
	return &sluice.Error{Code: sluice.EInternal, Message: "sandbox: " + msg, Err: de}
}

// valueErr is the error for DuckDB errors whose message quotes data
// values: the message is dropped, not wrapped, so no caller or log can
// show it.
func valueErr(what string) error {
	return sluice.Errorf(sluice.EInvalid, "the query failed in the sandbox: %s (DuckDB's message is withheld because it can quote protected values)", what)
}

// contextErr is the error of a statement whose context is done with cause.
func (s *Session) contextErr(cause error) error {
	switch {
	case errors.Is(cause, errTimeLimit):
		return &sluice.Error{Code: sluice.EResource, Err: cause,
			Message: "the query ran longer than " + s.e.lim.QueryTime.String() + " in the sandbox (time limit); add filters or aggregate at the source"}
	case errors.Is(cause, context.DeadlineExceeded):
		return &sluice.Error{Code: sluice.EResource, Err: cause,
			Message: "the query ran past its deadline in the sandbox (time limit); add filters or aggregate at the source"}
	case errors.Is(cause, errEngineClosed):
		return &sluice.Error{Code: sluice.EUnavailable, Message: "the sandbox is shutting down", Err: cause}
	case errors.Is(cause, errSessionClosed):
		return &sluice.Error{Code: sluice.EUnavailable, Message: "the sandbox session was closed", Err: cause}
	}
	if cause == nil || !errors.Is(cause, context.Canceled) {
		cause = errors.Join(context.Canceled, cause)
	}
	return &sluice.Error{Code: sluice.EUnavailable, Message: "the query was cancelled", Err: cause}
}

// cancelled is the error for a context already done before anything ran.
func cancelled(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &sluice.Error{Code: sluice.EResource, Err: err,
			Message: "the query ran past its deadline in the sandbox (time limit); add filters or aggregate at the source"}
	}
	return &sluice.Error{Code: sluice.EUnavailable, Message: "the query was cancelled", Err: err}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
