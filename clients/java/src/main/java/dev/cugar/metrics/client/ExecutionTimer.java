package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceOuterClass.Approval;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalDecision;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.Budget;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.Outcome;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCallStatus;
import java.time.Clock;
import java.time.Duration;
import java.util.Objects;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.regex.Pattern;

/**
 * Measures one agent execution and hands the finished {@link Execution} to a sink (usually a
 * {@link Recorder}) exactly once.
 *
 * <p>It picks a unique {@code execution_id} (a random UUID), notes the start time and measures
 * the duration with {@link System#nanoTime()} (never the wall clock, so a clock change cannot
 * produce a bogus duration). Add tool calls, model calls ({@link #modelCall(String, String)}),
 * approvals, steps and budget while the execution runs, then end it:
 *
 * <ul>
 *   <li>{@link #end(Throwable)} with {@code null} records a success; with an error records a
 *       failure whose {@code error_type} is the error's simple class name (for example {@code
 *       TimeoutException});
 *   <li>{@link #succeed()} and {@link #fail(String)} say so explicitly;
 *   <li>{@link #close()}, for try-with-resources, records a failure with error type {@value
 *       #INCOMPLETE} when nothing ended the execution before: an execution left by an exception
 *       is never counted as a success.
 * </ul>
 *
 * <pre>{@code
 * try (ExecutionTimer run = recorder.start("sales_rep")) {
 *   run.toolCall("search_accounts", "territory", ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, took);
 *   run.succeed();
 * }
 * }</pre>
 *
 * <p>{@link Recorder#time} wraps a body and records the exception that escapes it, if any.
 *
 * <p>Unless {@link #steps(int)} is called, {@code steps} is the number of tool calls added. Only
 * the first end counts; later calls return the execution already recorded. Thread-safe.
 */
public final class ExecutionTimer implements AutoCloseable {
  /** The error type recorded when an execution is closed without having been ended. */
  public static final String INCOMPLETE = "Incomplete";

  private static final Pattern LABEL_CHARS = Pattern.compile("[^A-Za-z0-9_.:-]");
  private static final int MAX_LABEL_LENGTH = 64;

  private final Consumer<Execution> sink;
  private final LongSupplier nanoTime;
  private final long startNanos;
  private final Execution.Builder execution;
  private boolean stepsSet;
  private Execution finished;

  ExecutionTimer(String profile, Consumer<Execution> sink, LongSupplier nanoTime, Clock clock) {
    this.sink = Objects.requireNonNull(sink, "sink");
    this.nanoTime = nanoTime;
    this.execution =
        Execution.newBuilder()
            .setExecutionId(UUID.randomUUID().toString())
            .setProfile(Objects.requireNonNull(profile, "profile"))
            .setStartTime(ProtoTime.timestamp(clock.instant()));
    this.startNanos = nanoTime.getAsLong();
  }

  /** Starts timing an execution of {@code profile}; {@code sink} receives it when it ends. */
  public static ExecutionTimer start(String profile, Consumer<Execution> sink) {
    return new ExecutionTimer(profile, sink, System::nanoTime, Clock.systemUTC());
  }

  /** The execution's id: a random UUID. */
  public synchronized String executionId() {
    return execution.getExecutionId();
  }

  /** Sets the trace the execution belongs to (for example a W3C trace id). */
  public synchronized ExecutionTimer traceId(String traceId) {
    execution.setTraceId(traceId);
    return this;
  }

  /** Sets the number of steps the agent took (by default: the number of tool calls). */
  public synchronized ExecutionTimer steps(int steps) {
    if (steps < 0) {
      throw new IllegalArgumentException("steps must be >= 0, got " + steps);
    }
    execution.setSteps(steps);
    stepsSet = true;
    return this;
  }

  /** Counts one more step (from 0 when this is the first; then tool calls no longer count). */
  public synchronized ExecutionTimer step() {
    execution.setSteps(stepsSet ? execution.getSteps() + 1 : 1);
    stepsSet = true;
    return this;
  }

  /** Sets the budget the execution spent against its limit, in the agent's cost units. */
  public synchronized ExecutionTimer budget(double spent, double limit, boolean exceeded) {
    execution.setBudget(
        Budget.newBuilder().setSpent(spent).setLimit(limit).setExceeded(exceeded).build());
    return this;
  }

  /** Adds a tool call that ended with {@code status} after {@code duration}. */
  public ExecutionTimer toolCall(
      String tool, String domain, ToolCallStatus status, Duration duration) {
    return toolCall(tool, domain, status, duration, "");
  }

  /** Adds a tool call with an error type (for an ERROR or SKIPPED status). */
  public synchronized ExecutionTimer toolCall(
      String tool, String domain, ToolCallStatus status, Duration duration, String errorType) {
    execution.addToolCalls(
        ToolCall.newBuilder()
            .setTool(tool)
            .setDomain(domain)
            .setStatus(status)
            .setDuration(ProtoTime.duration(duration))
            .setErrorType(errorType)
            .build());
    return this;
  }

  /**
   * Runs {@code call}, timing it, and adds it as a tool call: SUCCESS when it returns, ERROR with
   * the exception's class name as error type when it throws (the exception is rethrown).
   */
  public <T, E extends Exception> T tool(String tool, String domain, ToolBody<T, E> call)
      throws E {
    long started = nanoTime.getAsLong();
    T result;
    try {
      result = call.call();
    } catch (Throwable e) {
      toolCall(tool, domain, ToolCallStatus.TOOL_CALL_STATUS_ERROR, since(started), errorType(e));
      throw e;
    }
    toolCall(tool, domain, ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, since(started));
    return result;
  }

  /** Adds a human approval: what was decided, on what kind of action, after what wait. */
  public synchronized ExecutionTimer approval(
      ApprovalDecision decision, ApprovalOperation operation, Duration wait) {
    execution.addApprovals(
        Approval.newBuilder()
            .setDecision(decision)
            .setOperation(operation)
            .setWait(ProtoTime.duration(wait))
            .build());
    return this;
  }

  /**
   * Starts timing a chat call to {@code model} of {@code provider}; ending it adds a {@code
   * ModelCall} to this execution (see {@link ModelCallTimer}).
   */
  public ModelCallTimer modelCall(String provider, String model) {
    return modelCall(provider, model, ModelOperation.MODEL_OPERATION_CHAT);
  }

  /** Starts timing a call of {@code operation} to {@code model} of {@code provider}. */
  public ModelCallTimer modelCall(String provider, String model, ModelOperation operation) {
    return new ModelCallTimer(provider, model, operation, this::addModelCall, nanoTime);
  }

  /**
   * Runs {@code body} as a chat call to {@code model}, timing it: unless the body ended the call
   * itself, a SUCCESS when it returns, an ERROR with the exception's class name as error type
   * when it throws (the exception is rethrown).
   */
  public <T, E extends Exception> T modelCall(
      String provider, String model, ModelCallTimer.ModelBody<T, E> body) throws E {
    ModelCallTimer call = modelCall(provider, model);
    T result;
    try {
      result = body.call(call);
    } catch (Throwable e) {
      call.end(e);
      throw e;
    }
    call.success();
    return result;
  }

  /** Adds a model call measured elsewhere (the helpers above add theirs when they end). */
  public synchronized ExecutionTimer addModelCall(ModelCall call) {
    execution.addModelCalls(call);
    return this;
  }

  /**
   * Ends the execution: a success when {@code error} is null, else a failure with the error's
   * simple class name as error type. Returns the execution handed to the sink.
   */
  public Execution end(Throwable error) {
    return error == null ? finish(Outcome.OUTCOME_SUCCESS, "") : fail(errorType(error));
  }

  /** Ends the execution as a success. */
  public Execution succeed() {
    return finish(Outcome.OUTCOME_SUCCESS, "");
  }

  /** Ends the execution as a failure of {@code errorType} (a short, low-cardinality name). */
  public Execution fail(String errorType) {
    return finish(Outcome.OUTCOME_FAILURE, errorType);
  }

  /** True once the execution has ended and been handed to the sink. */
  public synchronized boolean ended() {
    return finished != null;
  }

  /** Ends the execution as a failure of type {@value #INCOMPLETE} unless it already ended. */
  @Override
  public void close() {
    finish(Outcome.OUTCOME_FAILURE, INCOMPLETE);
  }

  private Execution finish(Outcome outcome, String errorType) {
    Execution done;
    synchronized (this) {
      if (finished != null) {
        return finished;
      }
      long elapsed = Math.max(0, nanoTime.getAsLong() - startNanos);
      if (!stepsSet) {
        execution.setSteps(execution.getToolCallsCount());
      }
      done =
          execution
              .setOutcome(outcome)
              .setErrorType(errorType)
              .setDuration(ProtoTime.nanos(elapsed))
              .build();
      finished = done;
    }
    sink.accept(done);
    return done;
  }

  private Duration since(long startedNanos) {
    return Duration.ofNanos(Math.max(0, nanoTime.getAsLong() - startedNanos));
  }

  /**
   * A label-safe error type for {@code error}: its simple class name (the nearest named
   * superclass for anonymous classes), with characters outside {@code [A-Za-z0-9_.:-]} replaced
   * by {@code _}, at most 64 characters, starting with a letter.
   */
  public static String errorType(Throwable error) {
    Class<?> type = error.getClass();
    while (type.getSimpleName().isEmpty() && type.getSuperclass() != null) {
      type = type.getSuperclass();
    }
    String name = LABEL_CHARS.matcher(type.getSimpleName()).replaceAll("_");
    if (name.isEmpty() || !isAsciiLetter(name.charAt(0))) {
      name = "E" + name;
    }
    return name.length() > MAX_LABEL_LENGTH ? name.substring(0, MAX_LABEL_LENGTH) : name;
  }

  private static boolean isAsciiLetter(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  }

  /** A tool call body for {@link #tool}. */
  @FunctionalInterface
  public interface ToolBody<T, E extends Exception> {
    /** Calls the tool. */
    T call() throws E;
  }
}
