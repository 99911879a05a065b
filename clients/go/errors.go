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

// fromStatus turns an INVALID_ARGUMENT status error into an *InvalidArgumentError and
// returns every other error unchanged.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
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
