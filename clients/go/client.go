package cugarmetrics

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// The defaults of a call and of the connection, as clients/spec.yaml gives them for every
// client (spec_internal_test.go checks each one against that file).
const (
	// DefaultTimeout is the deadline given to a call whose context has none; it covers every
	// attempt and every wait between them (spec: call.deadline_seconds).
	DefaultTimeout = 10 * time.Second
	// DefaultAttemptTimeout is the deadline of one attempt inside a call; the last attempt
	// gets what is left of the call's deadline (spec: call.attempt_deadline_seconds).
	DefaultAttemptTimeout = 5 * time.Second
	// DefaultMaxAttempts is how many times a call is tried in all (the first try and its
	// retries) while the server answers UNAVAILABLE (spec: call.max_attempts).
	DefaultMaxAttempts = 5
	// DefaultInitialBackoff, DefaultMaxBackoff and DefaultBackoffMultiplier bound the wait
	// before each retry of a call: the n-th retry waits a random time up to
	// min(DefaultInitialBackoff × DefaultBackoffMultiplier^(n-1), DefaultMaxBackoff), as
	// gRPC's own retry policy does (spec: call.*_backoff_*).
	DefaultInitialBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff        = 2 * time.Second
	DefaultBackoffMultiplier = 2.0
	// DefaultInitialReconnectBackoff and DefaultMaxReconnectBackoff bound the wait of the
	// connection before it tries again to reach a server that refused it or went away
	// (spec: connection.*_reconnect_backoff_seconds).
	DefaultInitialReconnectBackoff = 100 * time.Millisecond
	DefaultMaxReconnectBackoff     = 5 * time.Second
	// LoadBalancingPolicy spreads calls over every address the target resolves to, such as
	// the pods behind a headless Service (spec: connection.load_balancing_policy).
	LoadBalancingPolicy = "round_robin"
)

// retryableCodes are the status codes a direct call retries (spec: call.retryable_codes).
// The Record RPCs are idempotent by execution_id and GetDashboard only reads.
var retryableCodes = []codes.Code{codes.Unavailable}

// MaxBatchSize is the largest number of executions the server takes in one RecordBatch.
const MaxBatchSize = 1000

// Result is what the server did with one execution.
type Result = metricsv1.RecordResult

// The results of a Record call or of one item of a batch.
const (
	// ResultAccepted: the execution was new and is now recorded.
	ResultAccepted = metricsv1.RecordResult_RECORD_RESULT_ACCEPTED
	// ResultDuplicate: an execution with the same execution_id was already recorded; this
	// one was acknowledged and not counted again.
	ResultDuplicate = metricsv1.RecordResult_RECORD_RESULT_DUPLICATE
	// ResultRejected: the execution failed validation (batches only).
	ResultRejected = metricsv1.RecordResult_RECORD_RESULT_REJECTED
)

const serviceName = "cugar.metrics.v1.MetricsService"

// Option configures a Client.
type Option func(*clientOptions)

type clientOptions struct {
	timeout        time.Duration
	attemptTimeout time.Duration
	maxAttempts    int
	creds          credentials.TransportCredentials
	tls            *TLSConfig
	apiKey         *string
	dialOptions    []grpc.DialOption
	// rateLimitRetries: see WithRateLimitRetries.
	rateLimitRetries int
	// retryInfoCap: see WithRetryInfoCap.
	retryInfoCap time.Duration
}

// WithTimeout sets the deadline given to each call whose context has none (default
// DefaultTimeout). The deadline covers every retry of the call. Zero or less disables it.
func WithTimeout(d time.Duration) Option {
	return func(o *clientOptions) { o.timeout = d }
}

// WithAttemptTimeout sets the deadline of each attempt of a call (default
// DefaultAttemptTimeout); an attempt never outlives the call's own deadline. Zero or less
// leaves attempts bounded by the call's deadline only.
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *clientOptions) { o.attemptTimeout = d }
}

// WithMaxAttempts sets how many times a call is tried in all while the server answers
// UNAVAILABLE (default DefaultMaxAttempts). 1 disables retries.
func WithMaxAttempts(n int) Option {
	return func(o *clientOptions) { o.maxAttempts = n }
}

// WithTransportCredentials sets the transport security (default: plaintext). WithTLS
// covers the usual case of PEM files.
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *clientOptions) { o.creds = c }
}

// WithDialOptions adds gRPC dial options, applied after the client's own.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *clientOptions) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Client records executions and reads dashboards. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	stub metricsv1.MetricsServiceClient
	// retryInfoCap: see WithRetryInfoCap; a Recorder waits at most this long too.
	retryInfoCap time.Duration
}

// NewClient creates a client of the server at target ("host:port", or any gRPC target such
// as "dns:///metrics.example:50051"). It does not connect until the first call.
func NewClient(target string, opts ...Option) (*Client, error) {
	o := clientOptions{
		timeout:          DefaultTimeout,
		attemptTimeout:   DefaultAttemptTimeout,
		maxAttempts:      DefaultMaxAttempts,
		rateLimitRetries: DefaultRateLimitRetries,
		retryInfoCap:     MaxRetryDelay,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxAttempts < 1 {
		return nil, fmt.Errorf("cugarmetrics: max attempts must be at least 1, got %d", o.maxAttempts)
	}
	if o.rateLimitRetries < 0 {
		return nil, fmt.Errorf("cugarmetrics: rate limit retries must be at least 0, got %d", o.rateLimitRetries)
	}
	if o.retryInfoCap < 0 {
		return nil, fmt.Errorf("cugarmetrics: RetryInfo cap must be at least 0, got %s", o.retryInfoCap)
	}
	switch {
	case o.tls != nil && o.creds != nil:
		return nil, errors.New("cugarmetrics: give WithTLS or WithTransportCredentials, not both")
	case o.tls != nil:
		creds, err := o.tls.transportCredentials()
		if err != nil {
			return nil, err
		}
		o.creds = creds
	case o.creds == nil:
		o.creds = insecure.NewCredentials()
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(o.creds),
		grpc.WithDefaultServiceConfig(serviceConfig()),
		grpc.WithConnectParams(connectParams()),
	}
	if o.apiKey != nil {
		private := o.creds.Info().SecurityProtocol == "tls"
		callCreds, err := newAPIKeyCredentials(*o.apiKey, private)
		if err != nil {
			return nil, err
		}
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(callCreds))
	}
	// The default deadline is outermost: it covers every rate-limited retry, and each of
	// those covers the retries on UNAVAILABLE, each attempt with its own deadline.
	if o.timeout > 0 {
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(defaultDeadline(o.timeout)))
	}
	if o.rateLimitRetries > 0 {
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(retryRateLimited(o.rateLimitRetries, o.retryInfoCap)))
	}
	dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(retryUnavailable(o.maxAttempts, o.attemptTimeout)))
	dialOpts = append(dialOpts, o.dialOptions...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("cugarmetrics: %w", err)
	}
	return &Client{conn: conn, stub: metricsv1.NewMetricsServiceClient(conn), retryInfoCap: o.retryInfoCap}, nil
}

// serviceConfig balances calls over every address the target resolves to. Retries are the
// client's own (retryUnavailable), since gRPC's retry policy cannot bound each attempt.
func serviceConfig() string {
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, LoadBalancingPolicy)
}

// connectParams is the reconnect backoff of the spec; the multiplier, jitter and connect
// timeout are gRPC's defaults.
func connectParams() grpc.ConnectParams {
	b := backoff.DefaultConfig
	b.BaseDelay = DefaultInitialReconnectBackoff
	b.MaxDelay = DefaultMaxReconnectBackoff
	return grpc.ConnectParams{Backoff: b, MinConnectTimeout: 20 * time.Second}
}

// retryBackoff is the longest wait before the n-th retry (n from 1) of a call.
func retryBackoff(n int) time.Duration {
	d := float64(DefaultInitialBackoff)
	for i := 1; i < n && d < float64(DefaultMaxBackoff); i++ {
		d *= DefaultBackoffMultiplier
	}
	return min(time.Duration(d), DefaultMaxBackoff)
}

// retryUnavailable tries a unary call up to maxAttempts times in all while it fails with a
// retryable code, each attempt bounded by attemptTimeout (and by the call's deadline), with
// a random wait of up to retryBackoff(n) before the n-th retry. A wait that would pass the
// call's deadline is not started: the last error is returned at once.
func retryUnavailable(maxAttempts int, attemptTimeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for attempt := 1; ; attempt++ {
			actx, cancel := ctx, context.CancelFunc(func() {})
			if attemptTimeout > 0 {
				actx, cancel = context.WithTimeout(ctx, attemptTimeout)
			}
			err := invoker(actx, method, req, reply, cc, opts...)
			cancel()
			if err == nil || attempt >= maxAttempts || !slices.Contains(retryableCodes, status.Code(err)) {
				return err
			}
			wait := rand.N(retryBackoff(attempt) + 1)
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
				return err
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return err
			}
		}
	}
}

// defaultDeadline gives a call whose context has no deadline the client's default one.
func defaultDeadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// Close closes the connection. Calls in flight fail with CANCELED.
func (c *Client) Close() error {
	return c.conn.Close()
}

// Service returns the generated stub over the client's connection, for calls the helpers
// do not cover.
func (c *Client) Service() metricsv1.MetricsServiceClient {
	return c.stub
}

// Record records one finished execution and returns ResultAccepted or ResultDuplicate.
//
// An execution that fails validation returns an *InvalidArgumentError whose violations name
// each offending field (for example "execution.duration"); a missing, unknown or revoked API
// key or one of the wrong role returns an *AuthError; a rate limit the client stopped
// waiting for returns a *RateLimitError; other failures return the gRPC status error.
func (c *Client) Record(ctx context.Context, e *metricsv1.Execution) (Result, error) {
	resp, err := c.stub.RecordExecution(ctx, &metricsv1.RecordExecutionRequest{Execution: e})
	if err != nil {
		return metricsv1.RecordResult_RECORD_RESULT_UNSPECIFIED, fromStatus(err)
	}
	return resp.GetResult(), nil
}

// BatchResult is the result of a RecordBatch call.
type BatchResult struct {
	// How many executions were new and are now recorded.
	Accepted int
	// How many were duplicates of already recorded executions.
	Duplicate int
	// How many failed validation and were not recorded.
	Rejected int
	// The result of each execution, in the order they were given.
	Results []Result
	// The rejected executions, in the order they were given, with their violations.
	RejectedExecutions []RejectedExecution
}

// RejectedExecution is one execution of a batch that failed validation.
type RejectedExecution struct {
	// The execution's position in the batch, from 0.
	Index int
	// Its execution_id as sent.
	ExecutionID string
	// Every violation found; paths start at the request root, e.g. "executions[1].profile".
	Violations []FieldViolation
}

// RecordBatch records up to MaxBatchSize executions, each on its own: an invalid one never
// prevents the valid ones from being recorded. An empty or oversized batch returns an
// *InvalidArgumentError and records nothing.
func (c *Client) RecordBatch(ctx context.Context, executions []*metricsv1.Execution) (*BatchResult, error) {
	resp, err := c.stub.RecordExecutions(ctx, &metricsv1.RecordExecutionsRequest{Executions: executions})
	if err != nil {
		return nil, fromStatus(err)
	}
	res := &BatchResult{
		Accepted:  int(resp.GetAcceptedCount()),
		Duplicate: int(resp.GetDuplicateCount()),
		Rejected:  int(resp.GetRejectedCount()),
		Results:   resp.GetResults(),
	}
	for _, r := range resp.GetRejectedExecutions() {
		rej := RejectedExecution{Index: int(r.GetIndex()), ExecutionID: r.GetExecutionId()}
		for _, v := range r.GetFieldViolations() {
			rej.Violations = append(rej.Violations, FieldViolation{
				Field: v.GetField(), Description: v.GetDescription(), Reason: v.GetReason(),
			})
		}
		res.RejectedExecutions = append(res.RejectedExecutions, rej)
	}
	return res, nil
}

// Dashboard returns the golden signals of the replica that answers. A nil request asks for
// everything since the replica started, unfiltered.
func (c *Client) Dashboard(ctx context.Context, req *metricsv1.GetDashboardRequest) (*metricsv1.GetDashboardResponse, error) {
	if req == nil {
		req = &metricsv1.GetDashboardRequest{}
	}
	resp, err := c.stub.GetDashboard(ctx, req)
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp, nil
}
