package cugarmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// modelRows returns the dashboard's model rows for the given models (rows cover every
// profile, so each test uses models of its own).
func modelRows(t *testing.T, c *cugarmetrics.Client, models ...string) map[string]*metricsv1.ModelStats {
	t.Helper()
	rows := map[string]*metricsv1.ModelStats{}
	for _, m := range dashboard(t, c, nil).GetModels() {
		if slices.Contains(models, m.GetModel()) {
			rows[m.GetProvider()+"/"+m.GetModel()] = m
		}
	}
	return rows
}

func TestModelCallsAreRecordedWithExactTokensAndCost(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	gpt, claude := name(t, "gpt"), name(t, "claude")

	run := cugarmetrics.StartExecution(profile)
	call := run.ModelCall("openai", gpt)
	time.Sleep(5 * time.Millisecond)
	call.FirstToken()
	call.SetUsage(1200, 300)
	call.SetCachedInputTokens(200)
	call.SetCost(0.012)
	call.End(nil)
	call = run.ModelCall("openai", gpt)
	call.SetUsage(50, 0)
	call.End(context.DeadlineExceeded)
	run.ModelCall("anthropic", claude).RateLimited("")
	call = run.ModelCall("anthropic", claude)
	call.FirstToken()
	call.SetUsage(800, 150)
	call.SetReasoningTokens(40)
	call.SetCost(0.009)
	call.End(nil)
	e := run.End(nil)

	var statuses []string
	for _, m := range e.GetModelCalls() {
		if m.GetTimeToFirstToken().AsDuration() > m.GetDuration().AsDuration() {
			t.Errorf("model call %v: TTFT over the duration", m)
		}
		statuses = append(statuses, m.GetStatus().String()+" "+m.GetErrorType())
	}
	wantStatuses := []string{
		"MODEL_CALL_STATUS_SUCCESS ", "MODEL_CALL_STATUS_ERROR timeout",
		"MODEL_CALL_STATUS_RATE_LIMITED RateLimitError", "MODEL_CALL_STATUS_SUCCESS ",
	}
	if !slices.Equal(statuses, wantStatuses) {
		t.Errorf("statuses = %q, want %q", statuses, wantStatuses)
	}
	if got, err := c.Record(context.Background(), e); err != nil || got != cugarmetrics.ResultAccepted {
		t.Fatalf("Record = %v, %v; want accepted", got, err)
	}

	rows := modelRows(t, c, gpt, claude)
	g, a := rows["openai/"+gpt], rows["anthropic/"+claude]
	if g == nil || a == nil {
		t.Fatalf("model rows = %v, want openai/%s and anthropic/%s", rows, gpt, claude)
	}
	got := fmt.Sprint(g.GetCalls(), g.GetErrors(), g.GetRateLimited(), g.GetInputTokens(), g.GetOutputTokens(), g.GetCachedInputTokens(), g.GetReasoningTokens())
	if want := "2 1 0 1250 300 200 0"; got != want {
		t.Errorf("%s (calls errors rate_limited in out cached reasoning) = %s, want %s", gpt, got, want)
	}
	got = fmt.Sprint(a.GetCalls(), a.GetErrors(), a.GetRateLimited(), a.GetInputTokens(), a.GetOutputTokens(), a.GetCachedInputTokens(), a.GetReasoningTokens())
	if want := "2 0 1 800 150 0 40"; got != want {
		t.Errorf("%s (calls errors rate_limited in out cached reasoning) = %s, want %s", claude, got, want)
	}
	if math.Abs(g.GetCost()-0.012) > 1e-12 || math.Abs(a.GetCost()-0.009) > 1e-12 {
		t.Errorf("costs %v, %v; want 0.012, 0.009", g.GetCost(), a.GetCost())
	}
	if ttft := g.GetTimeToFirstTokenP95().AsDuration(); ttft < 5*time.Millisecond {
		t.Errorf("%s TTFT p95 %s, want at least the 5ms slept before the first token", gpt, ttft)
	}
}

func TestModelCallsBuiltDirectlyAreRecorded(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	model := name(t, "mini")
	e := success(profile+"-direct", profile, 2*time.Second)
	e.ModelCalls = []*metricsv1.ModelCall{{
		Provider: "openai", Model: model,
		Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_SUCCESS,
		Duration: durationpb.New(1500 * time.Millisecond), TimeToFirstToken: durationpb.New(200 * time.Millisecond),
		InputTokens: 100, OutputTokens: 20, Cost: proto.Float64(0.0003),
	}}
	run := cugarmetrics.StartExecution(profile)
	run.AddModelCall(&metricsv1.ModelCall{
		Provider: "openai", Model: model,
		Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_ERROR,
		ErrorType: "Timeout", Duration: durationpb.New(30 * time.Second), InputTokens: 7,
	})
	for _, x := range []*metricsv1.Execution{e, run.End(nil)} {
		if got, err := c.Record(context.Background(), x); err != nil || got != cugarmetrics.ResultAccepted {
			t.Fatalf("Record = %v, %v; want accepted", got, err)
		}
	}
	row := modelRows(t, c, model)["openai/"+model]
	if got, want := fmt.Sprint(row.GetCalls(), row.GetErrors(), row.GetInputTokens(), row.GetOutputTokens()), "2 1 107 20"; got != want {
		t.Errorf("row (calls errors in out) = %s, want %s", got, want)
	}
	if math.Abs(row.GetCost()-0.0003) > 1e-12 {
		t.Errorf("cost %v, want 0.0003", row.GetCost())
	}
}

func TestInvalidModelCallIsRejectedWithItsFieldPath(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	before := ingest(t, c)
	e := success(profile+"-bad", profile, 2*time.Second)
	ok := &metricsv1.ModelCall{
		Provider: "openai", Model: "gpt-4o",
		Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_SUCCESS,
		Duration: durationpb.New(time.Second),
	}
	bad := proto.Clone(ok).(*metricsv1.ModelCall)
	bad.Duration = nil
	bad.InputTokens, bad.CachedInputTokens = 10, proto.Uint64(11)
	e.ModelCalls = []*metricsv1.ModelCall{ok, bad}

	_, err := c.Record(context.Background(), e)
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		t.Fatalf("Record error = %v (%T), want *InvalidArgumentError", err, err)
	}
	var fields []string
	for _, v := range invalid.Violations {
		fields = append(fields, v.Field)
	}
	slices.Sort(fields)
	want := []string{"execution.model_calls[1].cached_input_tokens", "execution.model_calls[1].duration"}
	if !slices.Equal(fields, want) {
		t.Errorf("violations on %q, want %q", fields, want)
	}
	if v, found := invalid.Violation("execution.model_calls[1].cached_input_tokens"); !found || v.Reason != "INCONSISTENT" {
		t.Errorf("violation = %+v, want reason INCONSISTENT", v)
	}
	assertCounts(t, c, profile, 0, 0, 0)
	assertIngestDelta(t, c, before, 0, 0, 1)
}
