// Command conformance runs the cugar-metrics client conformance scenarios of
// clients/CONFORMANCE.md through the Go client:
//
//	conformance --target HOST:PORT --profile P [--scenario NAME] [--attempt-deadline S]
//	    [--retry-info-cap S] [--buffer-size N] [--close-timeout S] [--api-key KEY]
//
// The basic scenario (the default) checks each answer of the server. The fault scenarios
// (late-server, restart, retry-info-over-cap, short-deadline, two-replicas, overflow) go
// through the Recorder, or direct calls where the contract says so; the models scenario
// records model calls through ExecutionTimer.ModelCall. Each ends with one JSON
// line on stdout: the client's own account of the run. It exits 0 when the scenario ran as
// specified, 1 with a message on stderr otherwise, 2 on a usage error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/conformance"
)

type options struct {
	target, profile, scenario, apiKey string
	attemptDeadline, retryInfoCap     float64
	closeTimeout                      float64
	bufferSize                        int
}

// account is the program's last line: the client's own account of the run.
type account struct {
	Scenario      string  `json:"scenario"`
	Recorded      int     `json:"recorded"`
	Delivered     uint64  `json:"delivered"`
	Dropped       uint64  `json:"dropped"`
	Rejected      uint64  `json:"rejected"`
	RateLimited   int     `json:"rate_limited"`
	WaitedSeconds float64 `json:"waited_seconds"`
}

var scenarios = map[string]func(options) (*account, error){
	"basic":               basic,
	"late-server":         lateServer,
	"restart":             restart,
	"retry-info-over-cap": retryInfoOverCap,
	"short-deadline":      shortDeadline,
	"two-replicas":        twoReplicas,
	"overflow":            overflow,
	"models":              models,
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "", "the server's gRPC address, HOST:PORT")
	flag.StringVar(&o.profile, "profile", "", "the profile to record under, also the execution_id prefix")
	flag.StringVar(&o.scenario, "scenario", "basic", "the scenario to run")
	flag.Float64Var(&o.attemptDeadline, "attempt-deadline", 0, "seconds per attempt (default: the client's)")
	flag.Float64Var(&o.retryInfoCap, "retry-info-cap", 0, "longest RetryInfo wait in seconds (default: the client's)")
	flag.IntVar(&o.bufferSize, "buffer-size", 0, "the recorder's buffer size (default: the client's)")
	flag.Float64Var(&o.closeTimeout, "close-timeout", 0, "seconds Close keeps retrying (default: the client's)")
	flag.StringVar(&o.apiKey, "api-key", "", "sent as authorization: Bearer KEY on every call")
	flag.Parse()
	run, known := scenarios[o.scenario]
	if o.target == "" || o.profile == "" || flag.NArg() > 0 || !known {
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintf(os.Stderr, "usage: conformance --target HOST:PORT --profile P [--scenario %s] [options]\n",
			strings.Join(names, "|"))
		os.Exit(2)
	}
	result, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: FAILED: %v\n", err)
		os.Exit(1)
	}
	if result != nil {
		line, err := json.Marshal(result)
		if err != nil {
			fmt.Fprintf(os.Stderr, "conformance: FAILED: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(string(line))
	}
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

func newClient(o options) (*cugarmetrics.Client, error) {
	var opts []cugarmetrics.Option
	if o.apiKey != "" {
		opts = append(opts, cugarmetrics.WithAPIKey(o.apiKey))
	}
	if o.attemptDeadline > 0 {
		opts = append(opts, cugarmetrics.WithAttemptTimeout(seconds(o.attemptDeadline)))
	}
	if o.retryInfoCap > 0 {
		opts = append(opts, cugarmetrics.WithRetryInfoCap(seconds(o.retryInfoCap)))
	}
	return cugarmetrics.NewClient(o.target, opts...)
}

// numbered is execution <profile>-<n>; every retry re-sends it with the same id.
func numbered(profile string, n int, failed bool) *metricsv1.Execution {
	e := &metricsv1.Execution{
		ExecutionId: fmt.Sprintf("%s-%d", profile, n),
		Profile:     profile,
		Outcome:     metricsv1.Outcome_OUTCOME_SUCCESS,
		Duration:    durationpb.New(500 * time.Millisecond),
		Steps:       1,
	}
	if failed {
		e.Outcome, e.ErrorType = metricsv1.Outcome_OUTCOME_FAILURE, "ToolError"
	}
	return e
}

func basic(o options) (*account, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := conformance.Run(ctx, c, o.profile, os.Stdout); err != nil {
		return nil, err
	}
	fmt.Println("conformance: OK")
	return nil, nil
}

// throughRecorder records executions on a Recorder (pace apart), closes it and accounts
// for them. It checks that Close, the stats and the log line (written to logOut) agree.
func throughRecorder(o options, executions []*metricsv1.Execution, pace time.Duration, ready bool, logOut io.Writer) (*account, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ropts := []cugarmetrics.RecorderOption{cugarmetrics.WithLogger(slog.New(slog.NewJSONHandler(logOut, nil)))}
	if o.bufferSize > 0 {
		ropts = append(ropts, cugarmetrics.WithBufferSize(o.bufferSize))
	}
	if o.closeTimeout > 0 {
		ropts = append(ropts, cugarmetrics.WithCloseTimeout(seconds(o.closeTimeout)))
	}
	r := cugarmetrics.NewRecorder(c, ropts...)
	if ready {
		fmt.Println("ready")
	}
	for i, e := range executions {
		if i > 0 && pace > 0 {
			time.Sleep(pace)
		}
		r.Record(e)
	}
	closeErr := r.Close(context.Background())
	s := r.Stats()
	var dropped uint64
	var de *cugarmetrics.DroppedError
	switch {
	case errors.As(closeErr, &de):
		dropped = de.Dropped
	case closeErr != nil:
		return nil, fmt.Errorf("Close: %w", closeErr)
	}
	if s.Dropped != dropped {
		return nil, fmt.Errorf("Close reported %d dropped, Stats() %d", dropped, s.Dropped)
	}
	return &account{
		Scenario: o.scenario, Recorded: len(executions),
		Delivered: s.Accepted + s.Duplicate, Dropped: dropped, Rejected: s.Rejected,
	}, nil
}

func lateServer(o options) (*account, error) {
	var executions []*metricsv1.Execution
	for n := 1; n <= 11; n++ {
		executions = append(executions, numbered(o.profile, n, n > 7))
	}
	return throughRecorder(o, executions, 0, false, os.Stderr)
}

func restart(o options) (*account, error) {
	var executions []*metricsv1.Execution
	for n := 1; n <= 40; n++ {
		executions = append(executions, numbered(o.profile, n, false))
	}
	return throughRecorder(o, executions, 50*time.Millisecond, false, os.Stderr)
}

func shortDeadline(o options) (*account, error) {
	var executions []*metricsv1.Execution
	for n := 1; n <= 20; n++ {
		executions = append(executions, numbered(o.profile, n, false))
	}
	return throughRecorder(o, executions, 0, true, os.Stderr)
}

// overflow also checks that the Recorder's log line says the dropped count it returned.
func overflow(o options) (*account, error) {
	var executions []*metricsv1.Execution
	for n := 1; n <= 8; n++ {
		executions = append(executions, numbered(o.profile, n, false))
	}
	var logged bytes.Buffer
	result, err := throughRecorder(o, executions, 0, false, io.MultiWriter(&logged, os.Stderr))
	if err != nil {
		return nil, err
	}
	var lines []map[string]any
	for line := range strings.Lines(logged.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("log line %q: %w", line, err)
		}
		if _, ok := rec["dropped"]; ok {
			lines = append(lines, rec)
		}
	}
	if len(lines) != 1 {
		return nil, fmt.Errorf("%d log lines with a dropped count, want 1:\n%s", len(lines), logged.String())
	}
	if got, ok := lines[0]["dropped"].(float64); !ok || uint64(got) != result.Dropped {
		return nil, fmt.Errorf("the log line says dropped=%v, Close %d", lines[0]["dropped"], result.Dropped)
	}
	fmt.Printf("log line: %s dropped=%d\n", lines[0]["msg"], result.Dropped)
	return result, nil
}

func retryInfoOverCap(o options) (*account, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx := context.Background()
	got, err := c.Record(ctx, numbered(o.profile, 1, false))
	if err != nil || got != cugarmetrics.ResultAccepted {
		return nil, fmt.Errorf("first call: %v, %v; want accepted", got, err)
	}
	start := time.Now()
	got, err = c.Record(ctx, numbered(o.profile, 2, false))
	waited := time.Since(start)
	var limited *cugarmetrics.RateLimitError
	if !errors.As(err, &limited) {
		return nil, fmt.Errorf("second call: %v, %v; want the rate-limit error", got, err)
	}
	fmt.Printf("second call: %v after %.2f s (RetryInfo %s)\n", limited.Reason, waited.Seconds(), limited.RetryDelay)
	return &account{Scenario: o.scenario, Recorded: 2, Delivered: 1, RateLimited: 1, WaitedSeconds: waited.Seconds()}, nil
}

func twoReplicas(o options) (*account, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var delivered uint64
	for n := 1; n <= 20; n++ {
		got, err := c.Record(context.Background(), numbered(o.profile, n, false))
		if err != nil || got != cugarmetrics.ResultAccepted {
			return nil, fmt.Errorf("call %d: %v, %v; want accepted", n, got, err)
		}
		delivered++
	}
	return &account{Scenario: o.scenario, Recorded: 20, Delivered: delivered}, nil
}

// timeoutError is the error of a model call that did not answer in time.
type timeoutError struct{}

func (timeoutError) Error() string     { return "the model did not answer in time" }
func (timeoutError) ErrorType() string { return "Timeout" }

func models(o options) (*account, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	p := o.profile

	// <profile>-1: two successful chat calls.
	run := cugarmetrics.StartExecution(p)
	call := run.ModelCall("openai", "gpt-4o")
	call.FirstToken()
	call.SetUsage(1200, 300)
	call.SetCachedInputTokens(200)
	call.SetCost(0.012)
	call.End(nil)
	call = run.ModelCall("openai", "gpt-4o-mini")
	call.FirstToken()
	call.SetUsage(100, 20)
	call.End(nil)
	first := run.End(nil)

	// <profile>-2: a rate-limited call, then its successful retry.
	run = cugarmetrics.StartExecution(p)
	run.ModelCall("anthropic", "claude-sonnet").RateLimited("RateLimitError")
	call = run.ModelCall("anthropic", "claude-sonnet")
	call.FirstToken()
	call.SetUsage(800, 150)
	call.SetReasoningTokens(40)
	call.SetCost(0.009)
	call.End(nil)
	second := run.End(nil)

	// <profile>-3: embeddings, then a chat call that times out; the execution fails.
	run = cugarmetrics.StartExecution(p)
	call = run.ModelCall("openai", "gpt-4o", cugarmetrics.WithOperation(metricsv1.ModelOperation_MODEL_OPERATION_EMBEDDINGS))
	call.SetUsage(500, 0)
	call.SetCost(0.0001)
	call.End(nil)
	call = run.ModelCall("openai", "gpt-4o")
	call.SetUsage(50, 0)
	call.End(timeoutError{})
	third := run.End(cugarmetrics.WithErrorType(errors.New("the model failed"), "ModelError"))

	for i, e := range []*metricsv1.Execution{first, second, third} {
		e.ExecutionId = fmt.Sprintf("%s-%d", p, i+1)
		for _, m := range e.GetModelCalls() {
			if m.GetTimeToFirstToken().AsDuration() > m.GetDuration().AsDuration() {
				return nil, fmt.Errorf("%s: time to first token over the duration", e.GetExecutionId())
			}
		}
		got, err := c.Record(context.Background(), e)
		if err != nil || got != cugarmetrics.ResultAccepted {
			return nil, fmt.Errorf("RecordExecution %s: %v, %v; want accepted", e.GetExecutionId(), got, err)
		}
		fmt.Printf("ok   RecordExecution %s = accepted\n", e.GetExecutionId())
	}
	got, err := c.Record(context.Background(), first)
	if err != nil || got != cugarmetrics.ResultDuplicate {
		return nil, fmt.Errorf("RecordExecution %s again: %v, %v; want duplicate", first.GetExecutionId(), got, err)
	}
	fmt.Printf("ok   RecordExecution %s again = duplicate\n", first.GetExecutionId())
	return &account{Scenario: o.scenario, Recorded: 4, Delivered: 4}, nil
}
