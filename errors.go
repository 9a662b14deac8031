package sluice

import (
	"errors"
	"fmt"
)

// Error codes of the core. The edges map them: gRPC codes for Flight,
// HTTP statuses for the admin API, exit codes for the CLI.
const (
	EInvalid         = "invalid"         // bad SQL, config, flag or request: InvalidArgument
	EUnauthenticated = "unauthenticated" // missing or bad credentials: Unauthenticated
	EDenied          = "denied"          // the policy said no: PermissionDenied
	ENotFound        = "not_found"       // unknown dataset, column, id: NotFound
	ENotSupported    = "not_supported"   // valid SQL we cannot plan yet: Unimplemented
	EUnavailable     = "unavailable"     // an agent or store is down: Unavailable
	EResource        = "resource"        // a sandbox limit was hit: ResourceExhausted
	EInternal        = "internal"        // a bug: Internal
	EConflict        = "conflict"        // the state changed meanwhile, or already exists: 409 / Aborted
)

// Error is the typed error of the core. Message is safe to show the caller:
// it never contains a protected value.
type Error struct {
	Code    string
	Message string
	// Reasons carries the policy's reasons for a denial, one line each.
	Reasons []string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return err.Error()
}
