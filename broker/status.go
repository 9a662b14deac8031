package broker

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
)

// grpcCodes maps the core's error codes to gRPC codes at the Flight edge.
var grpcCodes = map[string]codes.Code{
	sluice.EInvalid:         codes.InvalidArgument,
	sluice.EUnauthenticated: codes.Unauthenticated,
	sluice.EDenied:          codes.PermissionDenied,
	sluice.ENotFound:        codes.NotFound,
	sluice.ENotSupported:    codes.Unimplemented,
	sluice.EUnavailable:     codes.Unavailable,
	sluice.EResource:        codes.ResourceExhausted,
	sluice.EConflict:        codes.Aborted,
	sluice.EInternal:        codes.Internal,
}

// toStatus turns any error into a gRPC status error with a caller-safe message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !errors.As(err, new(*sluice.Error)) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the request was cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the request ran out of time")
	}
	code, ok := grpcCodes[sluice.ErrorCode(err)]
	if !ok {
		code = codes.Internal
	}
	msg := sluice.ErrorMessage(err)
	if code == codes.Internal && !errors.As(err, new(*sluice.Error)) {
		msg = "internal error: " + msg
	}
	return status.Error(code, msg)
}
