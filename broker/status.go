package broker

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/admission"
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
	// A busy broker says when to come back, in the standard detail
	// clients and proxies read (google.rpc.RetryInfo), besides the text.
	var busy *admission.Busy
	if errors.As(err, &busy) {
		st, derr := status.New(code, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(busy.RetryAfter)})
		if derr == nil {
			return st.Err()
		}
	}
	return status.Error(code, msg)
}
