package cugarmetrics

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

func TestModelCallMeasuresDurationAndFirstTokenOnItsClock(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	run := startExecution("demo", clock.now, nil)

	call := run.ModelCall("openai", "gpt-4o")
	clock.advance(120 * time.Millisecond)
	call.FirstToken()
	clock.advance(30 * time.Millisecond)
	call.FirstToken() // the first mark counts
	clock.advance(850 * time.Millisecond)
	call.SetUsage(1200, 300)
	call.SetCachedInputTokens(200)
	call.SetCost(0.012)
	call.SetResponseModel("gpt-4o-2024-08-06")
	call.End(nil)
	clock.advance(time.Second)
	call.End(errors.New("late")) // only the first end counts
	call.SetUsage(1, 1)          // ignored after the end

	embed := run.ModelCall("openai", "text-embedding-3", WithOperation(metricsv1.ModelOperation_MODEL_OPERATION_EMBEDDINGS))
	clock.advance(40 * time.Millisecond)
	embed.SetUsage(500, 0)
	embed.End(nil)

	failed := run.ModelCall("openai", "gpt-4o")
	failed.SetUsage(50, 0)
	clock.advance(2 * time.Second)
	failed.End(WithErrorType(errors.New("no answer"), "Timeout"))

	limited := run.ModelCall("anthropic", "claude-sonnet")
	clock.advance(15 * time.Millisecond)
	limited.RateLimited("")
	custom := run.ModelCall("anthropic", "claude-sonnet")
	custom.RateLimited("http_429")

	got := run.End(nil).GetModelCalls()
	want := []*metricsv1.ModelCall{
		{Provider: "openai", Model: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06",
			Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_SUCCESS,
			Duration: durationpb.New(time.Second), TimeToFirstToken: durationpb.New(120 * time.Millisecond),
			InputTokens: 1200, OutputTokens: 300, CachedInputTokens: proto.Uint64(200), Cost: proto.Float64(0.012)},
		{Provider: "openai", Model: "text-embedding-3",
			Operation: metricsv1.ModelOperation_MODEL_OPERATION_EMBEDDINGS, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_SUCCESS,
			Duration: durationpb.New(40 * time.Millisecond), InputTokens: 500},
		{Provider: "openai", Model: "gpt-4o",
			Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_ERROR,
			ErrorType: "Timeout", Duration: durationpb.New(2 * time.Second), InputTokens: 50},
		{Provider: "anthropic", Model: "claude-sonnet",
			Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_RATE_LIMITED,
			ErrorType: "RateLimitError", Duration: durationpb.New(15 * time.Millisecond)},
		{Provider: "anthropic", Model: "claude-sonnet",
			Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT, Status: metricsv1.ModelCallStatus_MODEL_CALL_STATUS_RATE_LIMITED,
			ErrorType: "http_429", Duration: durationpb.New(0)},
	}
	if len(got) != len(want) {
		t.Fatalf("model calls = %v, want %d", got, len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("model call %d =\n%v\nwant\n%v", i, got[i], want[i])
		}
	}
}

func TestModelCallIsSafeForConcurrentUse(t *testing.T) {
	run := StartExecution("demo")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := run.ModelCall("openai", "gpt-4o")
			var inner sync.WaitGroup
			inner.Add(2)
			go func() { defer inner.Done(); call.FirstToken() }()
			go func() { defer inner.Done(); call.SetUsage(10, 5) }()
			inner.Wait()
			call.End(nil)
		}()
	}
	wg.Wait()
	calls := run.End(nil).GetModelCalls()
	if len(calls) != 8 {
		t.Fatalf("%d model calls, want 8", len(calls))
	}
	for _, c := range calls {
		if c.GetInputTokens() != 10 || c.GetTimeToFirstToken().AsDuration() > c.GetDuration().AsDuration() {
			t.Errorf("model call %v: want 10 input tokens and TTFT within the duration", c)
		}
	}
}

func TestModelCallMeasuresRealElapsedTime(t *testing.T) {
	run := StartExecution("demo")
	call := run.ModelCall("openai", "gpt-4o")
	time.Sleep(20 * time.Millisecond)
	call.FirstToken()
	time.Sleep(20 * time.Millisecond)
	call.End(nil)
	m := run.End(nil).GetModelCalls()[0]
	d, ttft := m.GetDuration().AsDuration(), m.GetTimeToFirstToken().AsDuration()
	if d < 40*time.Millisecond || ttft < 20*time.Millisecond || ttft > d {
		t.Errorf("duration %s, TTFT %s: want at least the 40ms and 20ms slept, TTFT within the duration", d, ttft)
	}
}
