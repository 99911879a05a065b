package cugarmetrics_test

// These tests check the client's own retry and deadline behaviour, which needs a server that
// fails on purpose: a small in-process gRPC server stands in for cugar-metrics here (every
// other test talks to the real server process).

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// faultyServer answers RecordExecution with handle, counting the calls it receives.
type faultyServer struct {
	metricsv1.UnimplementedMetricsServiceServer
	calls  atomic.Int32
	handle func(ctx context.Context, call int32) (*metricsv1.RecordExecutionResponse, error)
}

func (s *faultyServer) RecordExecution(ctx context.Context, _ *metricsv1.RecordExecutionRequest) (*metricsv1.RecordExecutionResponse, error) {
	return s.handle(ctx, s.calls.Add(1))
}

func startFaulty(t *testing.T, handle func(context.Context, int32) (*metricsv1.RecordExecutionResponse, error)) (*faultyServer, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &faultyServer{handle: handle}
	gs := grpc.NewServer()
	metricsv1.RegisterMetricsServiceServer(gs, fs)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	return fs, l.Addr().String()
}

var accepted = &metricsv1.RecordExecutionResponse{Result: metricsv1.RecordResult_RECORD_RESULT_ACCEPTED}

func TestClientRetriesUnavailableUntilAccepted(t *testing.T) {
	fs, addr := startFaulty(t, func(_ context.Context, call int32) (*metricsv1.RecordExecutionResponse, error) {
		if call <= 2 {
			return nil, status.Error(codes.Unavailable, "draining")
		}
		return accepted, nil
	})
	c, err := cugarmetrics.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	got, err := c.Record(context.Background(), success("retry-1", "p", time.Second))
	if err != nil || got != cugarmetrics.ResultAccepted {
		t.Fatalf("Record = %v, %v; want accepted", got, err)
	}
	if n := fs.calls.Load(); n != 3 {
		t.Errorf("server saw %d calls, want 3 (two UNAVAILABLE, then accepted)", n)
	}
}

func TestClientStopsAfterMaxAttempts(t *testing.T) {
	fs, addr := startFaulty(t, func(context.Context, int32) (*metricsv1.RecordExecutionResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	})
	c, err := cugarmetrics.NewClient(addr, cugarmetrics.WithMaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	_, err = c.Record(context.Background(), success("retry-2", "p", time.Second))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Record error = %v, want Unavailable", err)
	}
	if n := fs.calls.Load(); n != 2 {
		t.Errorf("server saw %d calls, want 2", n)
	}
}

func TestClientDoesNotRetryInvalidArgumentAndParsesBadRequest(t *testing.T) {
	fs, addr := startFaulty(t, func(context.Context, int32) (*metricsv1.RecordExecutionResponse, error) {
		st, err := status.New(codes.InvalidArgument, "invalid execution").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "execution.profile", Description: "required", Reason: "REQUIRED"},
				{Field: "execution.steps", Description: "at most 100000", Reason: "OUT_OF_RANGE"},
			},
		})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	})
	c, err := cugarmetrics.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	_, err = c.Record(context.Background(), success("retry-3", "p", time.Second))
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		t.Fatalf("Record error = %v, want *InvalidArgumentError", err)
	}
	want := []cugarmetrics.FieldViolation{
		{Field: "execution.profile", Description: "required", Reason: "REQUIRED"},
		{Field: "execution.steps", Description: "at most 100000", Reason: "OUT_OF_RANGE"},
	}
	if len(invalid.Violations) != 2 || invalid.Violations[0] != want[0] || invalid.Violations[1] != want[1] {
		t.Errorf("violations = %+v, want %+v", invalid.Violations, want)
	}
	if invalid.Message != "invalid execution" {
		t.Errorf("message = %q", invalid.Message)
	}
	const wantText = "cugarmetrics: invalid argument: invalid execution (execution.profile: required; execution.steps: at most 100000)"
	if invalid.Error() != wantText {
		t.Errorf("Error() = %q, want %q", invalid.Error(), wantText)
	}
	if n := fs.calls.Load(); n != 1 {
		t.Errorf("server saw %d calls, want 1", n)
	}
}

func TestClientGivesCallsWithoutDeadlineTheDefaultOne(t *testing.T) {
	remaining := make(chan time.Duration, 1) // the time left to the deadline the server saw; 0: none
	_, addr := startFaulty(t, func(ctx context.Context, _ int32) (*metricsv1.RecordExecutionResponse, error) {
		var left time.Duration
		if deadline, ok := ctx.Deadline(); ok {
			left = time.Until(deadline)
		}
		remaining <- left
		<-ctx.Done() // a server that hangs
		return nil, ctx.Err()
	})
	const timeout = 200 * time.Millisecond
	c, err := cugarmetrics.NewClient(addr, cugarmetrics.WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	start := time.Now()
	_, err = c.Record(context.Background(), success("deadline-1", "p", time.Second))
	elapsed := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Record error = %v, want DeadlineExceeded", err)
	}
	// The deadline came from the client's default: the server saw one at most 200 ms away
	// (not the 5 s per attempt), and the call did not end before it.
	if left := <-remaining; left <= 0 || left > timeout {
		t.Errorf("the server saw %s left to the deadline, want a deadline within %s", left, timeout)
	}
	if elapsed < timeout {
		t.Errorf("Record returned after %s, before its %s deadline", elapsed, timeout)
	}
}
