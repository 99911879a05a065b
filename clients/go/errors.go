package cugarmetrics

import (
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation says which field of a request is invalid and why.
type FieldViolation struct {
	// The path of the field from the request's root, e.g. "execution.duration" or
	// "execution.tool_calls[0].domain".
	Field string
	// What is wrong and what a valid value looks like.
	Description string
	// A stable UPPER_SNAKE code such as "REQUIRED", "OUT_OF_RANGE" or "INVALID_NAME".
	Reason string
}

// InvalidArgumentError is the error of a call the server rejected with INVALID_ARGUMENT.
// Read it with errors.As:
//
//	var invalid *cugarmetrics.InvalidArgumentError
//	if errors.As(err, &invalid) {
//		for _, v := range invalid.Violations { ... }
//	}
//
// status.Code(err) and status.FromError(err) still see the original gRPC status.
type InvalidArgumentError struct {
	// The status message.
	Message string
	// The field violations of the google.rpc.BadRequest detail, in the server's order.
	Violations []FieldViolation
	// The execution_id of the rejected execution, set only in the errors a Recorder
	// reports for the items of a batch the server rejected.
	ExecutionID string

	status *status.Status
}

// Error describes the status and every violation.
func (e *InvalidArgumentError) Error() string {
	var b strings.Builder
	b.WriteString("cugarmetrics: invalid argument")
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, v := range e.Violations {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
		if i == len(e.Violations)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
}

// GRPCStatus returns the server's status, so that the grpc status package reads this
// error as the status it came from.
func (e *InvalidArgumentError) GRPCStatus() *status.Status {
	return e.status
}

// Violation returns the first violation on field, if there is one.
func (e *InvalidArgumentError) Violation(field string) (FieldViolation, bool) {
	for _, v := range e.Violations {
		if v.Field == field {
			return v, true
		}
	}
	return FieldViolation{}, false
}

// AuthError is the error of a call the server refused with UNAUTHENTICATED (no API key, or
// a malformed, unknown or revoked one) or PERMISSION_DENIED (the key's role may not call the
// method). Read it with errors.As:
//
//	var denied *cugarmetrics.AuthError
//	if errors.As(err, &denied) && denied.Reason == cugarmetrics.ReasonRevokedKey { ... }
//
// status.Code(err) still sees the original gRPC status.
type AuthError struct {
	// codes.Unauthenticated or codes.PermissionDenied.
	Code codes.Code
	// The google.rpc.ErrorInfo reason: ReasonMissingCredentials, ReasonMalformedCredentials,
	// ReasonUnknownKey, ReasonRevokedKey or ReasonRoleNotAllowed ("" without an ErrorInfo).
	Reason string
	// The ErrorInfo metadata, e.g. "role" and "method" for ReasonRoleNotAllowed.
	Metadata map[string]string
	// The status message.
	Message string

	status *status.Status
}

// Error names the code, the reason and the server's message.
func (e *AuthError) Error() string {
	var b strings.Builder
	b.WriteString("cugarmetrics: ")
	if e.Code == codes.PermissionDenied {
		b.WriteString("permission denied")
	} else {
		b.WriteString("unauthenticated")
	}
	if e.Reason != "" {
		b.WriteString(" (")
		b.WriteString(e.Reason)
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// GRPCStatus returns the server's status.
func (e *AuthError) GRPCStatus() *status.Status {
	return e.status
}

// errorInfo returns the status's google.rpc.ErrorInfo detail, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// fromStatus turns the status errors the client describes (INVALID_ARGUMENT,
// UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED with a RetryInfo) into its error
// types and returns every other error unchanged.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return invalidArgument(st)
	case codes.Unauthenticated, codes.PermissionDenied:
		info := errorInfo(st)
		return &AuthError{
			Code: st.Code(), Reason: info.GetReason(), Metadata: info.GetMetadata(),
			Message: st.Message(), status: st,
		}
	case codes.ResourceExhausted:
		if delay, ok := retryDelay(st); ok {
			info := errorInfo(st)
			return &RateLimitError{
				RetryDelay: delay, Reason: info.GetReason(), Metadata: info.GetMetadata(),
				Message: st.Message(), status: st,
			}
		}
	}
	return err
}

func invalidArgument(st *status.Status) *InvalidArgumentError {
	e := &InvalidArgumentError{Message: st.Message(), status: st}
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			e.Violations = append(e.Violations, FieldViolation{
				Field: v.GetField(), Description: v.GetDescription(), Reason: v.GetReason(),
			})
		}
	}
	return e
}
