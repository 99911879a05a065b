package cugarmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func closeRecorder(t *testing.T, r *cugarmetrics.Recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestRecorderSendsFullBatchWithoutWaitingForInterval(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBatchSize(3), cugarmetrics.WithFlushInterval(time.Hour))
	defer closeRecorder(t, r)

	for i := range 3 {
		if !r.Record(success(fmt.Sprintf("%s-%d", profile, i), profile, time.Second)) {
			t.Fatalf("Record %d dropped", i)
		}
	}
	waitFor(t, "3 accepted", func() bool { return r.Stats().Accepted == 3 })
	assertCounts(t, c, profile, 3, 3, 0)
}

func TestRecorderSendsPartialBatchAfterInterval(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBatchSize(100), cugarmetrics.WithFlushInterval(50*time.Millisecond))
	defer closeRecorder(t, r)

	r.Record(success(profile+"-1", profile, time.Second))
	r.Record(success(profile+"-2", profile, time.Second))
	waitFor(t, "2 accepted", func() bool { return r.Stats().Accepted == 2 })
	assertCounts(t, c, profile, 2, 2, 0)
}

func TestRecorderFlushAndCloseDeliverEverythingQueued(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBatchSize(4), cugarmetrics.WithFlushInterval(time.Hour))

	for range 6 {
		r.Start(profile).End(nil)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if s := r.Stats(); s.Accepted != 6 || s.Pending != 0 {
		t.Errorf("after Flush: %+v, want 6 accepted, 0 pending", s)
	}
	for range 3 {
		r.Start(profile).End(errors.New("failed"))
	}
	closeRecorder(t, r)
	if r.Record(success(profile+"-late", profile, time.Second)) {
		t.Error("Record after Close queued an execution")
	}
	want := cugarmetrics.RecorderStats{Submitted: 10, Accepted: 9, Dropped: 1}
	if s := r.Stats(); s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	if err := r.Flush(context.Background()); !errors.Is(err, cugarmetrics.ErrRecorderClosed) {
		t.Errorf("Flush after Close = %v, want ErrRecorderClosed", err)
	}
	assertCounts(t, c, profile, 9, 6, 3)
}

func TestRecorderTakesExecutionsFromManyGoroutines(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBatchSize(32), cugarmetrics.WithFlushInterval(20*time.Millisecond))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 50 {
				run := r.Start(profile)
				run.StartToolCall("knowledge", "lookup").End(nil)
				if i%10 == 0 {
					run.End(errors.New("failed"))
				} else {
					run.End(nil)
				}
			}
		})
	}
	wg.Wait()
	closeRecorder(t, r)
	want := cugarmetrics.RecorderStats{Submitted: 400, Accepted: 400}
	if s := r.Stats(); s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	assertCounts(t, c, profile, 400, 360, 40)
}

func TestRecorderReportsRejectedExecutionsWithSingleExecutionPaths(t *testing.T) {
	c := newClient(t)
	profile := name(t, "go")
	var (
		mu       sync.Mutex
		reported []error
	)
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithErrorHandler(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}))
	r.Record(success(profile+"-ok", profile, time.Second))
	bad := success(profile+"-bad", profile, time.Second)
	bad.ToolCalls = []*metricsv1.ToolCall{{Tool: "t", Domain: "not valid", Status: metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SUCCESS}}
	r.Record(bad)
	closeRecorder(t, r)

	if s := r.Stats(); s.Accepted != 1 || s.Rejected != 1 || s.Dropped != 0 {
		t.Errorf("stats = %+v, want 1 accepted, 1 rejected", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 {
		t.Fatalf("reported = %v, want one error", reported)
	}
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(reported[0], &invalid) || invalid.ExecutionID != profile+"-bad" {
		t.Fatalf("reported %v, want *InvalidArgumentError for %s", reported[0], profile+"-bad")
	}
	var fields []string
	for _, v := range invalid.Violations {
		fields = append(fields, v.Field+" "+v.Reason)
	}
	want := "execution.tool_calls[0].domain INVALID_NAME,execution.tool_calls[0].duration REQUIRED"
	if got := strings.Join(fields, ","); got != want {
		t.Errorf("violations = %s, want %s", got, want)
	}
}
