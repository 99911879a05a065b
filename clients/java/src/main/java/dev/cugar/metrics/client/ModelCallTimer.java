package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceOuterClass.ModelCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelCallStatus;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelOperation;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Times one call to a model and adds it, as a {@code ModelCall}, to the execution of the {@link
 * ExecutionTimer} that started it ({@link ExecutionTimer#modelCall(String, String)}).
 *
 * <p>The duration runs from {@code modelCall(...)} to the end, on the timer's monotonic clock
 * (never the wall clock); {@link #firstToken()} marks the time to first token of a streamed
 * answer. Set the usage the provider reported ({@link #usage}, and optionally {@link
 * #cachedInputTokens}, {@link #reasoningTokens}, {@link #cost} and {@link #responseModel}), then
 * end the call:
 *
 * <ul>
 *   <li>{@link #success()}, {@link #error(String)} or {@link #rateLimited(String)} (a 429-class
 *       refusal, counted apart from errors);
 *   <li>{@link #end(Throwable)}: a success when {@code null}, else an error whose {@code
 *       error_type} is the exception's simple class name ({@link ExecutionTimer#errorType});
 *   <li>{@link #close()}, for try-with-resources, ends a call nothing ended before as an error of
 *       type {@value ExecutionTimer#INCOMPLETE}: a call left by an exception is never counted as a
 *       success. {@link ExecutionTimer#modelCall(String, String, ModelBody)} runs a body instead
 *       and records the exception that escapes it by its class name, or a success.
 * </ul>
 *
 * <p>Only the first end counts. A call ended after its execution ended is not recorded. The
 * server validates what is sent (names, token and cost bounds, time to first token at most the
 * duration); the setters reject only negative numbers. Thread-safe.
 */
public final class ModelCallTimer implements AutoCloseable {
  private final Consumer<ModelCall> sink;
  private final LongSupplier nanoTime;
  private final long startNanos;
  private final ModelCall.Builder call;
  private long firstTokenNanos = -1;
  private ModelCall finished;

  ModelCallTimer(
      String provider,
      String model,
      ModelOperation operation,
      Consumer<ModelCall> sink,
      LongSupplier nanoTime) {
    this.sink = Objects.requireNonNull(sink, "sink");
    this.nanoTime = nanoTime;
    this.call =
        ModelCall.newBuilder()
            .setProvider(Objects.requireNonNull(provider, "provider"))
            .setModel(Objects.requireNonNull(model, "model"))
            .setOperation(Objects.requireNonNull(operation, "operation"));
    this.startNanos = nanoTime.getAsLong();
  }

  /** Sets the kind of call (chat unless set). */
  public synchronized ModelCallTimer operation(ModelOperation operation) {
    call.setOperation(Objects.requireNonNull(operation, "operation"));
    return this;
  }

  /** Sets the model that answered, as the provider named it ({@code gen_ai.response.model}). */
  public synchronized ModelCallTimer responseModel(String responseModel) {
    call.setResponseModel(Objects.requireNonNull(responseModel, "responseModel"));
    return this;
  }

  /** Sets the tokens of the prompt and of the answer. */
  public synchronized ModelCallTimer usage(long inputTokens, long outputTokens) {
    call.setInputTokens(nonNegative("inputTokens", inputTokens));
    call.setOutputTokens(nonNegative("outputTokens", outputTokens));
    return this;
  }

  /** Sets the part of the input tokens served from the provider's cache. */
  public synchronized ModelCallTimer cachedInputTokens(long tokens) {
    call.setCachedInputTokens(nonNegative("cachedInputTokens", tokens));
    return this;
  }

  /** Sets the part of the output tokens spent on reasoning. */
  public synchronized ModelCallTimer reasoningTokens(long tokens) {
    call.setReasoningTokens(nonNegative("reasoningTokens", tokens));
    return this;
  }

  /** Sets what the call cost, in the deployment's currency (no cost is sent unless set). */
  public synchronized ModelCallTimer cost(double cost) {
    if (!(cost >= 0) || Double.isInfinite(cost)) {
      throw new IllegalArgumentException("cost must be a finite number >= 0, got " + cost);
    }
    call.setCost(cost);
    return this;
  }

  /** Marks the first token of the answer now; only the first mark counts. */
  public synchronized ModelCallTimer firstToken() {
    if (firstTokenNanos < 0) {
      firstTokenNanos = Math.max(0, nanoTime.getAsLong() - startNanos);
    }
    return this;
  }

  /** Ends the call as a success. */
  public ModelCall success() {
    return finish(ModelCallStatus.MODEL_CALL_STATUS_SUCCESS, "");
  }

  /** Ends the call as an error of {@code errorType} (a short, low-cardinality name). */
  public ModelCall error(String errorType) {
    return finish(ModelCallStatus.MODEL_CALL_STATUS_ERROR, errorType);
  }

  /** Ends the call as refused for a rate or quota limit, with an error type (may be empty). */
  public ModelCall rateLimited(String errorType) {
    return finish(ModelCallStatus.MODEL_CALL_STATUS_RATE_LIMITED, errorType);
  }

  /**
   * Ends the call: a success when {@code error} is null, else an error with the error's simple
   * class name as error type.
   */
  public ModelCall end(Throwable error) {
    return error == null ? success() : error(ExecutionTimer.errorType(error));
  }

  /** True once the call has ended. */
  public synchronized boolean ended() {
    return finished != null;
  }

  /** Ends the call as an error of type {@value ExecutionTimer#INCOMPLETE} unless it ended. */
  @Override
  public void close() {
    error(ExecutionTimer.INCOMPLETE);
  }

  private ModelCall finish(ModelCallStatus status, String errorType) {
    ModelCall done;
    synchronized (this) {
      if (finished != null) {
        return finished;
      }
      long elapsed = Math.max(0, nanoTime.getAsLong() - startNanos);
      call.setStatus(status)
          .setErrorType(Objects.requireNonNull(errorType, "errorType"))
          .setDuration(ProtoTime.nanos(elapsed));
      if (firstTokenNanos >= 0) {
        call.setTimeToFirstToken(ProtoTime.nanos(Math.min(firstTokenNanos, elapsed)));
      }
      done = call.build();
      finished = done;
    }
    sink.accept(done);
    return done;
  }

  private static long nonNegative(String what, long value) {
    if (value < 0) {
      throw new IllegalArgumentException(what + " must be >= 0, got " + value);
    }
    return value;
  }

  /** A model call body for {@link ExecutionTimer#modelCall(String, String, ModelBody)}. */
  @FunctionalInterface
  public interface ModelBody<T, E extends Exception> {
    /** Calls the model; sets the usage on {@code call}, and may end it itself. */
    T call(ModelCallTimer call) throws E;
  }
}
