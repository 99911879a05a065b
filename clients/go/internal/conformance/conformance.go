// Package conformance runs the scenario every cugar-metrics client implements: it records a
// fixed set of executions through the Go client and checks each answer of the server.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// Run runs the scenario for profile against the server behind c, printing its progress to
// out. It returns an error naming the first answer that differs from the expected one.
func Run(ctx context.Context, c *cugarmetrics.Client, profile string, out io.Writer) error {
	// 1. A new execution is accepted.
	a := &metricsv1.Execution{
		ExecutionId: profile + "-a",
		Profile:     profile,
		Outcome:     metricsv1.Outcome_OUTCOME_SUCCESS,
		Duration:    durationpb.New(1500 * time.Millisecond),
		Steps:       3,
		Budget:      &metricsv1.Budget{Spent: 2, Limit: 10},
		ToolCalls: []*metricsv1.ToolCall{
			{Tool: "search_accounts", Domain: "territory",
				Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SUCCESS, Duration: durationpb.New(200 * time.Millisecond)},
			{Tool: "score_lead", Domain: "qualification",
				Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_ERROR, Duration: durationpb.New(100 * time.Millisecond),
				ErrorType: "timeout"},
		},
		Approvals: []*metricsv1.Approval{
			{Decision: metricsv1.ApprovalDecision_APPROVAL_DECISION_APPROVED, Wait: durationpb.New(30 * time.Second),
				Operation: metricsv1.ApprovalOperation_APPROVAL_OPERATION_EXECUTE},
		},
	}
	res, err := c.Record(ctx, a)
	if err != nil {
		return fmt.Errorf("step 1: RecordExecution %s: %w", a.GetExecutionId(), err)
	}
	if res != cugarmetrics.ResultAccepted {
		return fmt.Errorf("step 1: RecordExecution %s: got %s, want %s", a.GetExecutionId(), res, cugarmetrics.ResultAccepted)
	}
	fmt.Fprintf(out, "step 1: %s %s\n", a.GetExecutionId(), res)

	// 2. The same execution again is a duplicate.
	res, err = c.Record(ctx, a)
	if err != nil {
		return fmt.Errorf("step 2: RecordExecution %s again: %w", a.GetExecutionId(), err)
	}
	if res != cugarmetrics.ResultDuplicate {
		return fmt.Errorf("step 2: RecordExecution %s again: got %s, want %s", a.GetExecutionId(), res, cugarmetrics.ResultDuplicate)
	}
	fmt.Fprintf(out, "step 2: %s %s\n", a.GetExecutionId(), res)

	// 3. An epoch timestamp sent as a duration is rejected, with a violation on the field.
	bad := &metricsv1.Execution{
		ExecutionId: profile + "-bad",
		Profile:     profile,
		Outcome:     metricsv1.Outcome_OUTCOME_SUCCESS,
		Duration:    &durationpb.Duration{Seconds: 1700000000},
	}
	_, err = c.Record(ctx, bad)
	if err == nil {
		return fmt.Errorf("step 3: RecordExecution %s: accepted, want INVALID_ARGUMENT", bad.GetExecutionId())
	}
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		return fmt.Errorf("step 3: RecordExecution %s: got %v (code %s), want INVALID_ARGUMENT", bad.GetExecutionId(), err, status.Code(err))
	}
	if status.Code(err) != codes.InvalidArgument {
		return fmt.Errorf("step 3: RecordExecution %s: status code %s, want InvalidArgument", bad.GetExecutionId(), status.Code(err))
	}
	v, ok := invalid.Violation("execution.duration")
	if !ok {
		return fmt.Errorf("step 3: RecordExecution %s: no violation on execution.duration in %+v", bad.GetExecutionId(), invalid.Violations)
	}
	fmt.Fprintf(out, "field violation: %s: %s\n", v.Field, v.Description)

	// 4. A batch records its valid items and reports the invalid one.
	batch := []*metricsv1.Execution{
		{ExecutionId: profile + "-b1", Profile: profile, Outcome: metricsv1.Outcome_OUTCOME_FAILURE, ErrorType: "ToolError",
			Duration: durationpb.New(2 * time.Second),
			ToolCalls: []*metricsv1.ToolCall{
				{Tool: "send_email", Domain: "engagement",
					Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SUCCESS, Duration: durationpb.New(300 * time.Millisecond)},
			}},
		{ExecutionId: profile + "-b2", Profile: "", Outcome: metricsv1.Outcome_OUTCOME_SUCCESS,
			Duration: durationpb.New(time.Second)},
		{ExecutionId: profile + "-b3", Profile: profile, Outcome: metricsv1.Outcome_OUTCOME_SUCCESS,
			Duration: durationpb.New(500 * time.Millisecond)},
	}
	br, err := c.RecordBatch(ctx, batch)
	if err != nil {
		return fmt.Errorf("step 4: RecordExecutions: %w", err)
	}
	if br.Accepted != 2 || br.Duplicate != 0 || br.Rejected != 1 {
		return fmt.Errorf("step 4: RecordExecutions: accepted %d, duplicate %d, rejected %d; want 2, 0, 1",
			br.Accepted, br.Duplicate, br.Rejected)
	}
	wantResults := []cugarmetrics.Result{cugarmetrics.ResultAccepted, cugarmetrics.ResultRejected, cugarmetrics.ResultAccepted}
	if !slices.Equal(br.Results, wantResults) {
		return fmt.Errorf("step 4: RecordExecutions: results %v, want %v", br.Results, wantResults)
	}
	if len(br.RejectedExecutions) != 1 {
		return fmt.Errorf("step 4: RecordExecutions: %d rejected items, want 1", len(br.RejectedExecutions))
	}
	rej := br.RejectedExecutions[0]
	if rej.Index != 1 || rej.ExecutionID != profile+"-b2" {
		return fmt.Errorf("step 4: RecordExecutions: rejected index %d id %q, want 1 %q", rej.Index, rej.ExecutionID, profile+"-b2")
	}
	if !slices.ContainsFunc(rej.Violations, func(v cugarmetrics.FieldViolation) bool { return v.Field == "executions[1].profile" }) {
		return fmt.Errorf("step 4: RecordExecutions: no violation on executions[1].profile in %+v", rej.Violations)
	}
	fmt.Fprintf(out, "step 4: accepted %d, duplicate %d, rejected %d (index %d %s: %s)\n",
		br.Accepted, br.Duplicate, br.Rejected, rej.Index, rej.ExecutionID, rej.Violations[0].Field)

	// 5. The dashboard of the profile counts what was recorded.
	d, err := c.Dashboard(ctx, &metricsv1.GetDashboardRequest{Profile: profile})
	if err != nil {
		return fmt.Errorf("step 5: GetDashboard: %w", err)
	}
	ex := d.GetExecutions()
	if ex.GetTotal() != 3 || ex.GetSucceeded() != 2 || ex.GetFailed() != 1 {
		return fmt.Errorf("step 5: GetDashboard: total %d, succeeded %d, failed %d; want 3, 2, 1",
			ex.GetTotal(), ex.GetSucceeded(), ex.GetFailed())
	}
	gs := d.GetGoldenSignals()
	summary := fmt.Sprintf("dashboard %s: executions %d (succeeded %d, failed %d)", profile, ex.GetTotal(), ex.GetSucceeded(), ex.GetFailed())
	if gs.SuccessRate != nil {
		summary += fmt.Sprintf(", success rate %.3f", gs.GetSuccessRate())
	}
	if gs.GetLatencyP95() != nil {
		summary += fmt.Sprintf(", latency p95 %s", gs.GetLatencyP95().AsDuration())
	}
	fmt.Fprintf(out, "%s, replica %s\n", summary, d.GetReplica())
	return nil
}
