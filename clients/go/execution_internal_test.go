package cugarmetrics

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// fakeClock returns the instants it is set to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestExecutionTimerMeasuresEveryDurationOnItsClock(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	run := startExecution("sales_rep", clock.now, nil)
	run.SetTraceID("4bf92f3577b34da6a3ce929d0e0e4736")

	call := run.StartToolCall("territory", "search_accounts")
	clock.advance(200 * time.Millisecond)
	call.End(nil)
	call = run.StartToolCall("qualification", "score_lead")
	clock.advance(100 * time.Millisecond)
	call.End(context.DeadlineExceeded)
	run.SkipToolCall("engagement", "send_email", "budget_exhausted")
	approval := run.StartApproval(metricsv1.ApprovalOperation_APPROVAL_OPERATION_EXECUTE)
	clock.advance(30 * time.Second)
	approval.End(metricsv1.ApprovalDecision_APPROVAL_DECISION_APPROVED)
	run.AddSteps(2)
	run.AddSteps(1)
	run.SetBudget(2, 10, false)
	clock.advance(700 * time.Millisecond)
	got := run.End(nil)

	want := &metricsv1.Execution{
		ExecutionId: run.ID(),
		TraceId:     "4bf92f3577b34da6a3ce929d0e0e4736",
		Profile:     "sales_rep",
		Outcome:     metricsv1.Outcome_OUTCOME_SUCCESS,
		StartTime:   timestamppb.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)),
		Duration:    durationpb.New(31 * time.Second),
		Steps:       3,
		Budget:      &metricsv1.Budget{Spent: 2, Limit: 10},
		Approvals: []*metricsv1.Approval{{
			Decision:  metricsv1.ApprovalDecision_APPROVAL_DECISION_APPROVED,
			Operation: metricsv1.ApprovalOperation_APPROVAL_OPERATION_EXECUTE,
			Wait:      durationpb.New(30 * time.Second),
		}},
		ToolCalls: []*metricsv1.ToolCall{
			{Tool: "search_accounts", Domain: "territory", Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SUCCESS,
				Duration: durationpb.New(200 * time.Millisecond)},
			{Tool: "score_lead", Domain: "qualification", Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_ERROR,
				Duration: durationpb.New(100 * time.Millisecond), ErrorType: "timeout"},
			{Tool: "send_email", Domain: "engagement", Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SKIPPED,
				Duration: durationpb.New(0), ErrorType: "budget_exhausted"},
		},
	}
	if !proto.Equal(got, want) {
		t.Errorf("End() =\n%v\nwant\n%v", got, want)
	}
}

func TestEndRecordsFailureOnceAndIgnoresLaterChanges(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var sunk []*metricsv1.Execution
	run := startExecution("demo", clock.now, func(e *metricsv1.Execution) bool {
		sunk = append(sunk, e)
		return true
	})
	clock.advance(2 * time.Second)
	first := run.End(WithErrorType(errors.New("boom"), "ToolError"))
	clock.advance(time.Second)
	run.AddSteps(5)
	run.StartToolCall("territory", "late").End(nil)
	second := run.End(nil)

	if first != second || len(sunk) != 1 || sunk[0] != first {
		t.Fatalf("End twice: %p %p, sink got %d executions; want the same one, sunk once", first, second, len(sunk))
	}
	if first.GetOutcome() != metricsv1.Outcome_OUTCOME_FAILURE || first.GetErrorType() != "ToolError" {
		t.Errorf("outcome %v error_type %q, want FAILURE ToolError", first.GetOutcome(), first.GetErrorType())
	}
	if d := first.GetDuration().AsDuration(); d != 2*time.Second {
		t.Errorf("duration %s, want 2s", d)
	}
	if first.GetSteps() != 0 || len(first.GetToolCalls()) != 0 {
		t.Errorf("changes after End were kept: steps %d, tool calls %d", first.GetSteps(), len(first.GetToolCalls()))
	}
}

func TestStartExecutionMeasuresRealElapsedTime(t *testing.T) {
	run := StartExecution("demo")
	time.Sleep(20 * time.Millisecond)
	d := run.End(nil).GetDuration().AsDuration()
	if d < 20*time.Millisecond || d > 5*time.Second {
		t.Errorf("duration %s, want at least the 20ms slept", d)
	}
}

func TestExecutionIDsAreUniqueAndValid(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	seen := make(map[string]bool)
	for range 10000 {
		id := StartExecution("demo").ID()
		if !valid.MatchString(id) || len(id) != 36 {
			t.Fatalf("execution id %q is not a 36-character id of [A-Za-z0-9._:-]", id)
		}
		if seen[id] {
			t.Fatalf("execution id %q generated twice", id)
		}
		seen[id] = true
	}
}

type quotaError struct{}

func (quotaError) Error() string     { return "quota" }
func (quotaError) ErrorType() string { return "QuotaExceeded" }

type badNameError struct{}

func (badNameError) Error() string     { return "bad" }
func (badNameError) ErrorType() string { return "has spaces" }

func TestErrorTypeClassifiesErrors(t *testing.T) {
	_, pathErr := os.Open("/nonexistent/cugar-metrics")
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{quotaError{}, "QuotaExceeded"},
		{fmt.Errorf("step 3: %w", quotaError{}), "QuotaExceeded"},
		{WithErrorType(errors.New("x"), "ToolError"), "ToolError"},
		{badNameError{}, "error"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("call: %w", context.Canceled), "cancelled"},
		{status.Error(codes.Unavailable, "down"), "Unavailable"},
		{fmt.Errorf("rpc: %w", status.Error(codes.PermissionDenied, "no")), "PermissionDenied"},
		{pathErr, "PathError"},
		{fmt.Errorf("open: %w", &fs.PathError{Op: "open", Path: "x", Err: errors.New("y")}), "PathError"},
		{errors.New("plain"), "error"},
		{errors.Join(errors.New("a"), errors.New("b")), "error"},
	}
	for _, tc := range cases {
		if got := ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if WithErrorType(nil, "x") != nil {
		t.Error("WithErrorType(nil) != nil")
	}
}

func TestRejectedErrorUsesSingleExecutionPaths(t *testing.T) {
	err := rejectedError(RejectedExecution{Index: 7, ExecutionID: "e-7", Violations: []FieldViolation{
		{Field: "executions[7].tool_calls[0].domain", Description: "d", Reason: "INVALID_NAME"},
		{Field: "executions[7]", Description: "e", Reason: "REQUIRED"},
	}})
	want := []FieldViolation{
		{Field: "execution.tool_calls[0].domain", Description: "d", Reason: "INVALID_NAME"},
		{Field: "execution", Description: "e", Reason: "REQUIRED"},
	}
	if len(err.Violations) != 2 || err.Violations[0] != want[0] || err.Violations[1] != want[1] {
		t.Errorf("violations = %+v, want %+v", err.Violations, want)
	}
	if err.ExecutionID != "e-7" || status.Code(err) != codes.InvalidArgument {
		t.Errorf("execution id %q, code %v", err.ExecutionID, status.Code(err))
	}
}

func TestRecorderBackoffDoublesUpToMaximum(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, recorderBackoff(n))
	}
	want := []time.Duration{200, 400, 800, 1600, 2000, 2000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Errorf("recorderBackoff(%d) = %s, want %s", i+1, got[i], want[i]*time.Millisecond)
		}
	}
}

func TestCallBackoffDoublesUpToMaximum(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, retryBackoff(n))
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Errorf("retryBackoff(%d) = %s, want %s", i+1, got[i], want[i]*time.Millisecond)
		}
	}
	if _, err := NewClient("127.0.0.1:1", WithMaxAttempts(0)); err == nil {
		t.Error("NewClient with 0 attempts: no error")
	}
}
