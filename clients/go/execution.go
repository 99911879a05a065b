package cugarmetrics

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// ExecutionTimer measures one agent execution while it runs and builds the Execution to
// record when it ends. Create one with StartExecution (or Recorder.Start), add tool calls,
// approvals, steps and budget as they happen, and call End once. It is safe for concurrent
// use; whatever is added after End is ignored.
type ExecutionTimer struct {
	now   func() time.Time
	start time.Time
	sink  func(*metricsv1.Execution) bool

	mu    sync.Mutex
	exec  *metricsv1.Execution
	ended bool
}

// StartExecution starts timing an execution of the given profile, with a fresh random
// execution_id (a version 4 UUID).
func StartExecution(profile string) *ExecutionTimer {
	return startExecution(profile, time.Now, nil)
}

func startExecution(profile string, now func() time.Time, sink func(*metricsv1.Execution) bool) *ExecutionTimer {
	start := now()
	return &ExecutionTimer{
		now:   now,
		start: start,
		sink:  sink,
		exec: &metricsv1.Execution{
			ExecutionId: uuid.NewString(),
			Profile:     profile,
			StartTime:   timestamppb.New(start),
		},
	}
}

// ID returns the execution_id.
func (t *ExecutionTimer) ID() string {
	return t.exec.GetExecutionId()
}

// update runs f on the execution unless it has ended.
func (t *ExecutionTimer) update(f func(e *metricsv1.Execution)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended {
		f(t.exec)
	}
}

// SetTraceID sets the trace the execution belongs to (for example a W3C trace id).
func (t *ExecutionTimer) SetTraceID(traceID string) {
	t.update(func(e *metricsv1.Execution) { e.TraceId = traceID })
}

// AddSteps adds n to the number of steps the agent took.
func (t *ExecutionTimer) AddSteps(n uint32) {
	t.update(func(e *metricsv1.Execution) { e.Steps += n })
}

// SetBudget sets the cost the execution spent against its limit, in the agent's units.
func (t *ExecutionTimer) SetBudget(spent, limit float64, exceeded bool) {
	t.update(func(e *metricsv1.Execution) {
		e.Budget = &metricsv1.Budget{Spent: spent, Limit: limit, Exceeded: exceeded}
	})
}

// AddToolCall adds a tool call measured elsewhere. errorType is empty on success.
func (t *ExecutionTimer) AddToolCall(domain, tool string, st metricsv1.ToolCallStatus, d time.Duration, errorType string) {
	t.update(func(e *metricsv1.Execution) {
		e.ToolCalls = append(e.ToolCalls, &metricsv1.ToolCall{
			Tool: tool, Domain: domain, Status: st, Duration: durationpb.New(d), ErrorType: errorType,
		})
	})
}

// SkipToolCall adds a tool call that was not run, with the reason (a short class such as
// "budget_exhausted" or "approval_denied"; may be empty).
func (t *ExecutionTimer) SkipToolCall(domain, tool, reason string) {
	t.AddToolCall(domain, tool, metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SKIPPED, 0, reason)
}

// StartToolCall starts timing one tool call; call End on the result when the tool returns.
func (t *ExecutionTimer) StartToolCall(domain, tool string) *ToolCallTimer {
	return &ToolCallTimer{exec: t, domain: domain, tool: tool, start: t.now()}
}

// AddApproval adds a human sign-off measured elsewhere.
func (t *ExecutionTimer) AddApproval(decision metricsv1.ApprovalDecision, op metricsv1.ApprovalOperation, wait time.Duration) {
	t.update(func(e *metricsv1.Execution) {
		e.Approvals = append(e.Approvals, &metricsv1.Approval{
			Decision: decision, Operation: op, Wait: durationpb.New(wait),
		})
	})
}

// StartApproval starts timing the wait for a human sign-off on an operation; call End with
// the decision when it comes.
func (t *ExecutionTimer) StartApproval(op metricsv1.ApprovalOperation) *ApprovalTimer {
	return &ApprovalTimer{exec: t, op: op, start: t.now()}
}

// End ends the execution: its duration is the time since the start on the monotonic clock;
// it succeeded when err is nil and failed otherwise, with the error type ErrorType(err).
// It returns the execution to record (a Recorder's timer has already queued it). Only the
// first call counts: later ones return the same execution.
func (t *ExecutionTimer) End(err error) *metricsv1.Execution {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return t.exec
	}
	t.ended = true
	d := t.now().Sub(t.start)
	if d < 0 {
		d = 0
	}
	e := t.exec
	e.Duration = durationpb.New(d)
	if err == nil {
		e.Outcome = metricsv1.Outcome_OUTCOME_SUCCESS
	} else {
		e.Outcome = metricsv1.Outcome_OUTCOME_FAILURE
		e.ErrorType = ErrorType(err)
	}
	t.mu.Unlock()
	if t.sink != nil {
		t.sink(e)
	}
	return e
}

// ToolCallTimer times one tool call of an execution.
type ToolCallTimer struct {
	exec   *ExecutionTimer
	domain string
	tool   string
	start  time.Time
	once   sync.Once
}

// End adds the call to its execution: SUCCESS when err is nil, otherwise ERROR with the
// error type ErrorType(err). Only the first call counts.
func (c *ToolCallTimer) End(err error) {
	c.once.Do(func() {
		d := c.exec.now().Sub(c.start)
		if d < 0 {
			d = 0
		}
		st, errorType := metricsv1.ToolCallStatus_TOOL_CALL_STATUS_SUCCESS, ""
		if err != nil {
			st, errorType = metricsv1.ToolCallStatus_TOOL_CALL_STATUS_ERROR, ErrorType(err)
		}
		c.exec.AddToolCall(c.domain, c.tool, st, d, errorType)
	})
}

// ApprovalTimer times the wait for one human sign-off.
type ApprovalTimer struct {
	exec  *ExecutionTimer
	op    metricsv1.ApprovalOperation
	start time.Time
	once  sync.Once
}

// End adds the approval with its decision and the wait since StartApproval. Only the first
// call counts.
func (a *ApprovalTimer) End(decision metricsv1.ApprovalDecision) {
	a.once.Do(func() {
		d := a.exec.now().Sub(a.start)
		if d < 0 {
			d = 0
		}
		a.exec.AddApproval(decision, a.op, d)
	})
}

// ErrorTyper is implemented by errors that name their own error type.
type ErrorTyper interface {
	ErrorType() string
}

type typedError struct {
	err       error
	errorType string
}

func (e *typedError) Error() string     { return e.err.Error() }
func (e *typedError) Unwrap() error     { return e.err }
func (e *typedError) ErrorType() string { return e.errorType }

// WithErrorType wraps err so that ErrorType reports errorType for it. It returns nil when
// err is nil.
func WithErrorType(err error, errorType string) error {
	if err == nil {
		return nil
	}
	return &typedError{err: err, errorType: errorType}
}

var labelName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]{0,63}$`)

// ErrorType returns the short, low-cardinality class recorded for err: "" for nil; the
// ErrorType() of the first error in the chain that has one; "timeout" and "cancelled" for
// context deadlines and cancellations; the code of a gRPC status (e.g. "Unavailable");
// otherwise the Go type name of the first error in the chain that is not made by fmt.Errorf,
// errors.New or errors.Join (e.g. "PathError"), or "error" when there is none or its name
// is not a valid label value.
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	var typer ErrorTyper
	if errors.As(err, &typer) {
		if name := typer.ErrorType(); labelName.MatchString(name) {
			return name
		}
		return "error"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.OK {
		return st.Code().String()
	}
	// The first error in the chain that is not a generic wrapper or message from the fmt
	// and errors packages names the type.
	for e := err; e != nil; {
		typ := reflect.TypeOf(e)
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if pkg := typ.PkgPath(); pkg != "fmt" && pkg != "errors" {
			if name := typ.Name(); labelName.MatchString(name) {
				return name
			}
			return "error"
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			if list := u.Unwrap(); len(list) > 0 {
				e = list[0]
			} else {
				e = nil
			}
		default:
			e = nil
		}
	}
	return "error"
}

// ModelCallOption configures a model call started by ExecutionTimer.ModelCall.
type ModelCallOption func(*ModelCallTimer)

// WithOperation sets the kind of model call (default MODEL_OPERATION_CHAT).
func WithOperation(op metricsv1.ModelOperation) ModelCallOption {
	return func(c *ModelCallTimer) { c.call.Operation = op }
}

// ModelCall starts timing one call to the model of a provider (for example "openai",
// "gpt-4o"), by default a chat call (WithOperation for another kind). Report its usage with
// SetUsage and the other setters, mark the first token of a streamed answer with FirstToken,
// and end it with End(err) or RateLimited: ending adds the call, with its duration on the
// monotonic clock, to the execution.
func (t *ExecutionTimer) ModelCall(provider, model string, opts ...ModelCallOption) *ModelCallTimer {
	c := &ModelCallTimer{
		exec:  t,
		start: t.now(),
		call: &metricsv1.ModelCall{
			Provider:  provider,
			Model:     model,
			Operation: metricsv1.ModelOperation_MODEL_OPERATION_CHAT,
		},
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// AddModelCall adds a model call measured elsewhere (its duration, status and usage set by
// the caller).
func (t *ExecutionTimer) AddModelCall(call *metricsv1.ModelCall) {
	t.update(func(e *metricsv1.Execution) { e.ModelCalls = append(e.ModelCalls, call) })
}

// ModelCallTimer times one model call of an execution. It is safe for concurrent use
// (FirstToken from a stream reader, SetUsage when the answer ends); only the first End or
// RateLimited counts, and setters after it are ignored.
type ModelCallTimer struct {
	exec  *ExecutionTimer
	start time.Time

	mu         sync.Mutex
	call       *metricsv1.ModelCall
	firstToken time.Time
	ended      bool
}

func (c *ModelCallTimer) set(f func(m *metricsv1.ModelCall)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		f(c.call)
	}
}

// SetUsage sets the tokens of the prompt and of the answer.
func (c *ModelCallTimer) SetUsage(inputTokens, outputTokens uint64) {
	c.set(func(m *metricsv1.ModelCall) { m.InputTokens, m.OutputTokens = inputTokens, outputTokens })
}

// SetCachedInputTokens sets the part of the input tokens served from the provider's cache.
func (c *ModelCallTimer) SetCachedInputTokens(n uint64) {
	c.set(func(m *metricsv1.ModelCall) { m.CachedInputTokens = &n })
}

// SetReasoningTokens sets the part of the output tokens spent on reasoning.
func (c *ModelCallTimer) SetReasoningTokens(n uint64) {
	c.set(func(m *metricsv1.ModelCall) { m.ReasoningTokens = &n })
}

// SetCost sets what the call cost, in the deployment's currency.
func (c *ModelCallTimer) SetCost(cost float64) {
	c.set(func(m *metricsv1.ModelCall) { m.Cost = &cost })
}

// SetResponseModel sets the model that answered (gen_ai.response.model).
func (c *ModelCallTimer) SetResponseModel(model string) {
	c.set(func(m *metricsv1.ModelCall) { m.ResponseModel = model })
}

// FirstToken marks the first token of the answer now; only the first mark counts.
func (c *ModelCallTimer) FirstToken() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended && c.firstToken.IsZero() {
		c.firstToken = c.exec.now()
	}
}

// End ends the call and adds it to its execution: SUCCESS when err is nil, otherwise ERROR
// with the error type ErrorType(err). Only the first End or RateLimited counts.
func (c *ModelCallTimer) End(err error) {
	if err == nil {
		c.finish(metricsv1.ModelCallStatus_MODEL_CALL_STATUS_SUCCESS, "")
	} else {
		c.finish(metricsv1.ModelCallStatus_MODEL_CALL_STATUS_ERROR, ErrorType(err))
	}
}

// RateLimited ends the call as refused for a rate or quota limit (an HTTP 429-class answer),
// with errorType ("RateLimitError" when empty). Only the first End or RateLimited counts.
func (c *ModelCallTimer) RateLimited(errorType string) {
	if errorType == "" {
		errorType = "RateLimitError"
	}
	c.finish(metricsv1.ModelCallStatus_MODEL_CALL_STATUS_RATE_LIMITED, ErrorType(WithErrorType(errors.New(errorType), errorType)))
}

func (c *ModelCallTimer) finish(st metricsv1.ModelCallStatus, errorType string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	end := c.exec.now()
	d := end.Sub(c.start)
	if d < 0 {
		d = 0
	}
	m := c.call
	m.Status, m.ErrorType, m.Duration = st, errorType, durationpb.New(d)
	if !c.firstToken.IsZero() {
		ttft := min(max(c.firstToken.Sub(c.start), 0), d)
		m.TimeToFirstToken = durationpb.New(ttft)
	}
	c.mu.Unlock()
	c.exec.AddModelCall(m)
}
