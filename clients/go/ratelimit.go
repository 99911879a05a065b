package cugarmetrics

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultRateLimitRetries is how many times a call refused by a rate limit is tried again,
// after the delay the server asks for (spec: rate_limit.rate_limit_retries).
const DefaultRateLimitRetries = 3

// MaxRetryDelay is the default longest wait honoured before a retry: a server asking for
// more is waited for this long (spec: rate_limit.retry_info_cap_seconds; WithRetryInfoCap
// changes it).
const MaxRetryDelay = 30 * time.Second

// ReasonRateLimited is the ErrorInfo reason of a call refused by a rate limit.
const ReasonRateLimited = "RATE_LIMITED"

// WithRateLimitRetries sets how many times a call the server refuses with RESOURCE_EXHAUSTED
// and a google.rpc.RetryInfo (a rate limit) is tried again, each time after the delay it
// asks for, capped by WithRetryInfoCap (default DefaultRateLimitRetries; 0 disables it). The
// wait never passes the call's deadline: a delay that would returns the *RateLimitError at
// once. Safe for every method: the Record RPCs are idempotent by execution_id.
func WithRateLimitRetries(n int) Option {
	return func(o *clientOptions) { o.rateLimitRetries = n }
}

// WithRetryInfoCap sets the longest RetryInfo delay waited for before a retry (default
// MaxRetryDelay): a server asking for more is waited for this long, by direct calls and by
// a Recorder's rate-limited batches.
func WithRetryInfoCap(d time.Duration) Option {
	return func(o *clientOptions) { o.retryInfoCap = d }
}

// RateLimitError is the error of a call refused by a rate limit (RESOURCE_EXHAUSTED with a
// google.rpc.RetryInfo) that the client stopped retrying: its retries were used up or the
// delay would have passed the call's deadline. Read it with errors.As.
type RateLimitError struct {
	// How long the server asked the caller to wait before the next call (not capped).
	RetryDelay time.Duration
	// The google.rpc.ErrorInfo reason, ReasonRateLimited.
	Reason string
	// The ErrorInfo metadata, e.g. "key_id" and "limit".
	Metadata map[string]string
	// The status message.
	Message string

	status *status.Status
}

// Error names the delay and the server's message.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("cugarmetrics: rate limited (retry in %s): %s", e.RetryDelay, e.Message)
}

// GRPCStatus returns the server's status.
func (e *RateLimitError) GRPCStatus() *status.Status {
	return e.status
}

// retryDelay returns the RetryInfo delay of a RESOURCE_EXHAUSTED status, and whether it has
// one.
func retryDelay(st *status.Status) (time.Duration, bool) {
	if st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok && info.GetRetryDelay().IsValid() {
			return max(info.GetRetryDelay().AsDuration(), 0), true
		}
	}
	return 0, false
}

// retryRateLimited tries a unary call again, up to retries times, after each
// RESOURCE_EXHAUSTED answer that carries a RetryInfo, waiting the delay it gives (at most
// limit) unless that wait would pass the call's deadline.
func retryRateLimited(retries int, limit time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for attempt := 0; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || attempt >= retries {
				return err
			}
			st, _ := status.FromError(err)
			delay, ok := retryDelay(st)
			if !ok {
				return err
			}
			delay = min(delay, limit)
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= delay {
				return err
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return err
			}
		}
	}
}
