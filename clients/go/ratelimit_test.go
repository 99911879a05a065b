package cugarmetrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/testserver"
)

const rateLimitedSeries = `cugar_rate_limited_total{role="recorder"}`

func assertMetric(t *testing.T, srv *testserver.Server, series string, want float64) {
	t.Helper()
	got, ok, err := srv.Metric(series)
	if err != nil || !ok || got != want {
		t.Errorf("%s = %v (present %v, error %v), want %v", series, got, ok, err, want)
	}
}

// With --rate-limit-recorder 2/s:1 the second of two immediate calls is refused with a
// RetryInfo of about 0.5 s: the client waits it and tries again, the batching recorder keeps
// the batch and sends it after the delay; each refusal is counted once by the server.
func TestRateLimitRetryInfoIsHonoured(t *testing.T) {
	t.Parallel()
	keys := filepath.Join(t.TempDir(), "keys.json")
	clientKey := createKey(t, keys, "go-client", "recorder")
	recorderKey := createKey(t, keys, "go-recorder", "recorder")
	readerKey := createKey(t, keys, "go-reader", "reader")
	srv := startServer(t, "--auth-keys-file", keys, "--rate-limit-recorder", "2/s:1")
	ctx := context.Background()

	t.Run("ClientWaitsAndRetries", func(t *testing.T) {
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey(clientKey))
		start := time.Now()
		for i, id := range []string{"go-rl-1", "go-rl-2"} {
			got, err := c.Record(ctx, success(id, "go_rate_limit", time.Second))
			if err != nil || got != cugarmetrics.ResultAccepted {
				t.Fatalf("Record %d = %v, %v; want %v, nil", i+1, got, err, cugarmetrics.ResultAccepted)
			}
		}
		// The first call took the key's only token; at 2/s the next comes 0.5 s later. The
		// second call was refused once (the metric) and then accepted: the client waited
		// for the token, which only the RetryInfo wait produces.
		if waited := time.Since(start); waited < 500*time.Millisecond {
			t.Errorf("two calls accepted within %s, less than the 0.5 s the server's bucket refills in", waited)
		}
		assertMetric(t, srv, rateLimitedSeries, 1)
	})
	t.Run("RecorderKeepsBatchAndWaits", func(t *testing.T) {
		c := dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey(recorderKey), cugarmetrics.WithRateLimitRetries(0))
		var mu sync.Mutex
		var reported []error
		r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBatchSize(1), cugarmetrics.WithErrorHandler(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, err)
		}))
		defer closeRecorder(t, r)
		start := time.Now()
		if !r.Record(success("go-rl-3", "go_rate_limit", time.Second)) || !r.Record(success("go-rl-4", "go_rate_limit", time.Second)) {
			t.Fatal("Record refused an execution")
		}
		flushCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.Flush(flushCtx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		// As above, the second token comes 0.5 s after the first: delivering both took at
		// least that, and with one failed send only (below), the batch was not sent again
		// before the server's RetryInfo delay.
		if waited := time.Since(start); waited < 500*time.Millisecond {
			t.Errorf("two executions delivered within %s, less than the 0.5 s the server's bucket refills in", waited)
		}
		s := r.Stats()
		if s.Accepted != 2 || s.Dropped != 0 || s.SendErrors != 1 || s.Pending != 0 {
			t.Errorf("stats = %+v, want 2 accepted, 0 dropped, 1 send error, 0 pending", s)
		}
		mu.Lock()
		defer mu.Unlock()
		var limited *cugarmetrics.RateLimitError
		if len(reported) != 1 || !errors.As(reported[0], &limited) || limited.Reason != cugarmetrics.ReasonRateLimited {
			t.Fatalf("reported errors = %v, want one *RateLimitError with reason RATE_LIMITED", reported)
		}
		if limited.RetryDelay <= 0 || limited.RetryDelay > 500*time.Millisecond {
			t.Errorf("RetryDelay = %s, want in (0, 500ms]", limited.RetryDelay)
		}
		assertMetric(t, srv, rateLimitedSeries, 2)
	})
	assertCounts(t, dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey(readerKey)), "go_rate_limit", 4, 4, 0)
}

// rateLimited answers RESOURCE_EXHAUSTED with a RetryInfo of delay.
func rateLimited(delay time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, "rate limit exceeded").WithDetails(
		&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)},
		&errdetails.ErrorInfo{Reason: "RATE_LIMITED", Domain: "cugar.metrics.v1"},
	)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// The client stops after its rate-limit retries and returns a *RateLimitError.
func TestRateLimitRetriesAreBounded(t *testing.T) {
	fs, addr := startFaulty(t, func(context.Context, int32) (*metricsv1.RecordExecutionResponse, error) {
		return nil, rateLimited(10 * time.Millisecond)
	})
	c := dial(t, addr, cugarmetrics.WithRateLimitRetries(2))
	_, err := c.Record(context.Background(), success("x", "p", time.Second))
	var limited *cugarmetrics.RateLimitError
	if !errors.As(err, &limited) || limited.RetryDelay != 10*time.Millisecond || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Record error = %v (%T), want *RateLimitError with a 10ms delay", err, err)
	}
	if n := fs.calls.Load(); n != 3 {
		t.Errorf("server received %d calls, want 3 (one and two retries)", n)
	}
}

// A delay that would pass the call's deadline is not waited for: the call returns the
// *RateLimitError before its deadline, not when the deadline expires.
func TestRateLimitDelayBeyondDeadlineFailsAtOnce(t *testing.T) {
	fs, addr := startFaulty(t, func(context.Context, int32) (*metricsv1.RecordExecutionResponse, error) {
		return nil, rateLimited(time.Minute) // waited at most MaxRetryDelay, 30 s: still past the deadline
	})
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Record(ctx, success("x", "p", time.Second))
	var limited *cugarmetrics.RateLimitError
	if !errors.As(err, &limited) || limited.RetryDelay != time.Minute {
		t.Fatalf("Record error = %v (%T), want *RateLimitError with a 1m delay", err, err)
	}
	if ctx.Err() != nil {
		t.Errorf("Record returned when its deadline expired (%v), want at once, without waiting", ctx.Err())
	}
	if n := fs.calls.Load(); n != 1 {
		t.Errorf("server received %d calls, want 1", n)
	}
}
