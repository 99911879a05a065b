package cugarmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

func success(id, profile string, d time.Duration) *metricsv1.Execution {
	return &metricsv1.Execution{
		ExecutionId: id,
		Profile:     profile,
		Outcome:     metricsv1.Outcome_OUTCOME_SUCCESS,
		Duration:    durationpb.New(d),
	}
}

func TestRecordAcceptsNewExecutionAndCountsRepeatOnce(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	before := ingest(t, c)
	e := success(profile+"-1", profile, 1500*time.Millisecond)

	got, err := c.Record(context.Background(), e)
	if err != nil || got != cugarmetrics.ResultAccepted {
		t.Fatalf("first Record = %v, %v; want %v, nil", got, err, cugarmetrics.ResultAccepted)
	}
	got, err = c.Record(context.Background(), e)
	if err != nil || got != cugarmetrics.ResultDuplicate {
		t.Fatalf("second Record = %v, %v; want %v, nil", got, err, cugarmetrics.ResultDuplicate)
	}
	assertCounts(t, c, profile, 1, 1, 0)
	assertIngestDelta(t, c, before, 1, 1, 0)
}

func TestRecordRejectsEpochDurationWithReadableFieldViolation(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	before := ingest(t, c)
	e := success(profile+"-epoch", profile, 0)
	e.Duration = &durationpb.Duration{Seconds: 1700000000}

	got, err := c.Record(context.Background(), e)
	if got != metricsv1.RecordResult_RECORD_RESULT_UNSPECIFIED {
		t.Errorf("Record result = %v, want UNSPECIFIED on error", got)
	}
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		t.Fatalf("Record error = %v (%T), want *InvalidArgumentError", err, err)
	}
	if code := status.Code(err); code != codes.InvalidArgument {
		t.Errorf("status.Code = %v, want InvalidArgument", code)
	}
	if len(invalid.Violations) != 1 {
		t.Fatalf("violations = %+v, want exactly one", invalid.Violations)
	}
	v, ok := invalid.Violation("execution.duration")
	if !ok {
		t.Fatalf("no violation on execution.duration in %+v", invalid.Violations)
	}
	if v.Reason != "OUT_OF_RANGE" || v.Description == "" {
		t.Errorf("violation = %+v, want reason OUT_OF_RANGE and a description", v)
	}
	assertCounts(t, c, profile, 0, 0, 0)
	assertIngestDelta(t, c, before, 0, 0, 1)
}

func TestRecordNamesEveryInvalidField(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	e := &metricsv1.Execution{
		ExecutionId: profile + "-fields",
		Profile:     "9starts_with_a_digit",
		Outcome:     metricsv1.Outcome_OUTCOME_FAILURE, // without error_type
		// no duration
		ToolCalls: []*metricsv1.ToolCall{{
			Tool: "search_accounts", Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SUCCESS,
			Duration: durationpb.New(time.Second), // no domain
		}},
	}
	_, err := c.Record(context.Background(), e)
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		t.Fatalf("Record error = %v, want *InvalidArgumentError", err)
	}
	var got []string
	for _, v := range invalid.Violations {
		got = append(got, v.Field+" "+v.Reason)
	}
	slices.Sort(got)
	want := []string{
		"execution.duration REQUIRED",
		"execution.error_type REQUIRED",
		"execution.profile INVALID_NAME",
		"execution.tool_calls[0].domain REQUIRED",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations = %q, want %q", got, want)
	}
	for _, field := range []string{"execution.duration", "execution.tool_calls[0].domain"} {
		if _, ok := invalid.Violation(field); !ok {
			t.Errorf("Violation(%q) not found", field)
		}
	}
}

func TestRecordBatchReportsEachItem(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	before := ingest(t, c)
	failed := success(profile+"-f", profile, 2*time.Second)
	failed.Outcome, failed.ErrorType = metricsv1.Outcome_OUTCOME_FAILURE, "ToolError"
	noProfile := success(profile+"-np", "", time.Second)
	batch := []*metricsv1.Execution{
		success(profile+"-s", profile, time.Second),
		noProfile,
		failed,
		success(profile+"-s", profile, time.Second), // same id as item 0
	}

	res, err := c.RecordBatch(context.Background(), batch)
	if err != nil {
		t.Fatalf("RecordBatch: %v", err)
	}
	if res.Accepted != 2 || res.Duplicate != 1 || res.Rejected != 1 {
		t.Errorf("counts = %d accepted, %d duplicate, %d rejected; want 2, 1, 1", res.Accepted, res.Duplicate, res.Rejected)
	}
	wantResults := []cugarmetrics.Result{
		cugarmetrics.ResultAccepted, cugarmetrics.ResultRejected, cugarmetrics.ResultAccepted, cugarmetrics.ResultDuplicate,
	}
	if !slices.Equal(res.Results, wantResults) {
		t.Errorf("results = %v, want %v", res.Results, wantResults)
	}
	if len(res.RejectedExecutions) != 1 {
		t.Fatalf("rejected = %+v, want one item", res.RejectedExecutions)
	}
	rej := res.RejectedExecutions[0]
	if rej.Index != 1 || rej.ExecutionID != profile+"-np" {
		t.Errorf("rejected item = index %d id %q, want 1 %q", rej.Index, rej.ExecutionID, profile+"-np")
	}
	wantViolations := []cugarmetrics.FieldViolation{{Field: "executions[1].profile", Reason: "REQUIRED"}}
	for i := range rej.Violations {
		rej.Violations[i].Description = "" // free text
	}
	if !slices.Equal(rej.Violations, wantViolations) {
		t.Errorf("violations = %+v, want %+v", rej.Violations, wantViolations)
	}
	assertCounts(t, c, profile, 2, 1, 1)
	assertIngestDelta(t, c, before, 2, 1, 1)
}

func TestRecordBatchOverMaximumRecordsNothing(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	batch := make([]*metricsv1.Execution, cugarmetrics.MaxBatchSize+1)
	for i := range batch {
		batch[i] = success(fmt.Sprintf("%s-%d", profile, i), profile, time.Second)
	}
	before := ingest(t, c)

	res, err := c.RecordBatch(context.Background(), batch)
	var invalid *cugarmetrics.InvalidArgumentError
	if res != nil || !errors.As(err, &invalid) {
		t.Fatalf("RecordBatch(1001) = %v, %v; want nil, *InvalidArgumentError", res, err)
	}
	if v, ok := invalid.Violation("executions"); !ok || v.Reason != "BATCH_SIZE" || len(invalid.Violations) != 1 {
		t.Errorf("violations = %+v, want one on executions with reason BATCH_SIZE", invalid.Violations)
	}
	// Nothing is recorded; the server counts every item of the refused batch as rejected.
	assertCounts(t, c, profile, 0, 0, 0)
	assertIngestDelta(t, c, before, 0, 0, cugarmetrics.MaxBatchSize+1)
}

func TestDashboardRejectsInvalidFilterByField(t *testing.T) {
	c := newClient(t)
	_, err := c.Dashboard(context.Background(), &metricsv1.GetDashboardRequest{Profile: "not a name"})
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		t.Fatalf("Dashboard error = %v, want *InvalidArgumentError", err)
	}
	if v, ok := invalid.Violation("profile"); !ok || v.Reason != "INVALID_NAME" {
		t.Errorf("violations = %+v, want profile INVALID_NAME", invalid.Violations)
	}
}

func TestTimedExecutionIsRecordedWithToolCallsAndApprovals(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	domain := name(t, "dom")

	run := cugarmetrics.StartExecution(profile)
	run.StartToolCall(domain, "lookup").End(nil)
	run.StartToolCall(domain, "lookup").End(errors.New("lookup failed"))
	run.SkipToolCall(domain, "send", "approval_denied")
	run.StartApproval(metricsv1.ApprovalOperation_APPROVAL_OPERATION_EXECUTE).End(metricsv1.ApprovalDecision_APPROVAL_DECISION_DENIED)
	run.AddSteps(4)
	run.SetBudget(3, 4, false)
	e := run.End(cugarmetrics.WithErrorType(errors.New("no approval"), "ApprovalDenied"))

	if got, err := c.Record(context.Background(), e); err != nil || got != cugarmetrics.ResultAccepted {
		t.Fatalf("Record = %v, %v; want accepted", got, err)
	}
	d := dashboard(t, c, &metricsv1.GetDashboardRequest{Profile: profile, Domain: domain})
	ex := d.GetExecutions()
	if ex.GetTotal() != 1 || ex.GetFailed() != 1 || ex.GetTotalSteps() != 4 {
		t.Errorf("executions = %v, want total 1, failed 1, total_steps 4", ex)
	}
	if et := d.GetErrorTypes(); len(et) != 1 || et[0].GetErrorType() != "ApprovalDenied" || et[0].GetCount() != 1 {
		t.Errorf("error types = %v, want [ApprovalDenied: 1]", et)
	}
	var tools []string
	for _, tr := range d.GetTools() {
		tools = append(tools, fmt.Sprintf("%s/%s calls=%d errors=%d skipped=%d", tr.GetDomain(), tr.GetTool(), tr.GetCalls(), tr.GetErrors(), tr.GetSkipped()))
	}
	wantTools := []string{domain + "/lookup calls=2 errors=1 skipped=0", domain + "/send calls=1 errors=0 skipped=1"}
	if !slices.Equal(tools, wantTools) {
		t.Errorf("tools = %q, want %q", tools, wantTools)
	}
	if b := d.GetBudget(); b.GetSpent() != 3 || b.GetExecutionsWithBudget() != 1 {
		t.Errorf("budget = %v, want spent 3 over 1 execution", b)
	}
	if got := d.GetGoldenSignals().GetBudgetUtilization(); got != 0.75 {
		t.Errorf("budget utilization = %v, want 0.75", got)
	}
	if a := d.GetApprovals(); a.GetTotal() != 1 {
		t.Errorf("approvals total = %d, want 1", a.GetTotal())
	}
}
