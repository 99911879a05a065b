package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.RejectedExecution;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Sends executions to the server in batches, in the background, so that recording never slows
 * the agent down or blocks it, even while the server is down.
 *
 * <p>{@link #submit} puts the execution in a bounded buffer and returns at once. One background
 * thread sends the buffer with {@code RecordExecutions}: as soon as it holds {@code maxBatchSize}
 * executions, every {@code flushInterval}, on {@link #flush()} and on {@link #close()}. When the
 * buffer is full, new executions are dropped (never waited for) and counted in {@link
 * Stats#dropped()}. A batch that fails with a transient status (UNAVAILABLE, DEADLINE_EXCEEDED,
 * RESOURCE_EXHAUSTED, ABORTED), after the client's own retries, goes back to the buffer and is
 * sent again at the next interval (safe: executions are idempotent by id); any other failure
 * drops it. A batch refused by the server's rate limit ({@link RateLimitedException}) is kept
 * too, and nothing is sent until the delay of its {@code google.rpc.RetryInfo} (capped at {@link
 * MetricsClient#MAX_RETRY_DELAY}) has passed. Items the server rejects as invalid are counted in
 * {@link Stats#rejected()} and logged.
 *
 * <p>Close the recorder before the client: close sends what is buffered, waiting at most {@code
 * closeTimeout}, and counts what could not be sent as dropped. Thread-safe.
 */
public final class Recorder implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Recorder.class.getName());
  private static final Set<Status.Code> TRANSIENT =
      EnumSet.of(
          Status.Code.UNAVAILABLE,
          Status.Code.DEADLINE_EXCEEDED,
          Status.Code.RESOURCE_EXHAUSTED,
          Status.Code.ABORTED);

  private final MetricsClient client;
  private final int maxBatchSize;
  private final long flushIntervalNanos;
  private final Duration closeTimeout;
  private final LinkedBlockingDeque<Execution> buffer;
  private final ScheduledExecutorService sender;
  private final ScheduledFuture<?> periodicFlush;
  private final AtomicBoolean sizeFlushQueued = new AtomicBoolean();
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile long sizeFlushPausedUntil = System.nanoTime();
  private volatile long sendPausedUntil = System.nanoTime();

  private final AtomicLong submitted = new AtomicLong();
  private final AtomicLong accepted = new AtomicLong();
  private final AtomicLong duplicate = new AtomicLong();
  private final AtomicLong rejected = new AtomicLong();
  private final AtomicLong dropped = new AtomicLong();
  private final AtomicLong failedSends = new AtomicLong();

  private Recorder(Builder b) {
    this.client = b.client;
    this.maxBatchSize = b.maxBatchSize;
    this.flushIntervalNanos = b.flushInterval.toNanos();
    this.closeTimeout = b.closeTimeout;
    this.buffer = new LinkedBlockingDeque<>(b.bufferCapacity);
    this.sender =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "cugar-metrics-recorder");
              t.setDaemon(true);
              return t;
            });
    this.periodicFlush =
        sender.scheduleWithFixedDelay(
            this::flushAll, flushIntervalNanos, flushIntervalNanos, TimeUnit.NANOSECONDS);
  }

  /** A builder of a recorder that sends through {@code client}. */
  public static Builder newBuilder(MetricsClient client) {
    return new Builder(Objects.requireNonNull(client, "client"));
  }

  /** A recorder with every default: batches of 100, every second, buffer of 10000. */
  public static Recorder create(MetricsClient client) {
    return newBuilder(client).build();
  }

  /**
   * Buffers {@code execution} for sending; never blocks.
   *
   * @return true when buffered, false when dropped because the buffer is full or the recorder is
   *     closed (counted in {@link Stats#dropped()})
   */
  public boolean submit(Execution execution) {
    Objects.requireNonNull(execution, "execution");
    submitted.incrementAndGet();
    if (closed.get() || !buffer.offer(execution)) {
      dropped.incrementAndGet();
      return false;
    }
    if (closed.get() && buffer.remove(execution)) {
      // Lost a race with close(): it may already have drained the buffer for the last time.
      dropped.incrementAndGet();
      return false;
    }
    if (buffer.size() >= maxBatchSize
        && System.nanoTime() - sizeFlushPausedUntil >= 0
        && sizeFlushQueued.compareAndSet(false, true)) {
      try {
        sender.execute(
            () -> {
              sizeFlushQueued.set(false);
              flushAll();
            });
      } catch (RejectedExecutionException shuttingDown) {
        sizeFlushQueued.set(false);
      }
    }
    return true;
  }

  /** Starts timing an execution of {@code profile}; it is submitted here when it ends. */
  public ExecutionTimer start(String profile) {
    return ExecutionTimer.start(profile, this::submit);
  }

  /**
   * Runs {@code body} as one execution of {@code profile}: a success when it returns, a failure
   * with the exception's class name as error type when it throws (the exception is rethrown).
   */
  public <T, E extends Exception> T time(String profile, TimedBody<T, E> body) throws E {
    ExecutionTimer timer = start(profile);
    T result;
    try {
      result = body.run(timer);
    } catch (Throwable e) {
      timer.end(e);
      throw e;
    }
    timer.succeed();
    return result;
  }

  /**
   * Sends everything buffered now and waits for it, at most {@code closeTimeout}.
   *
   * @return true when the buffer was emptied, false when a send failed or the wait timed out
   */
  public boolean flush() {
    Future<?> done;
    try {
      done = sender.submit(() -> flushAll(true));
    } catch (RejectedExecutionException closedAlready) {
      return buffer.isEmpty();
    }
    if (!await(done)) {
      return false;
    }
    return buffer.isEmpty();
  }

  /** The counters so far. */
  public Stats stats() {
    long acceptedNow = accepted.get();
    long duplicateNow = duplicate.get();
    long rejectedNow = rejected.get();
    long droppedNow = dropped.get();
    long failedNow = failedSends.get();
    // Read last, so that pending is never negative while other threads submit.
    long submittedNow = submitted.get();
    long pending = submittedNow - acceptedNow - duplicateNow - rejectedNow - droppedNow;
    return new Stats(
        submittedNow, acceptedNow, duplicateNow, rejectedNow, droppedNow, pending, failedNow);
  }

  /**
   * Stops accepting executions, sends what is buffered (one attempt per batch, at most {@code
   * closeTimeout} in all) and stops the background thread. What could not be sent is counted as
   * dropped. Does not close the client.
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    periodicFlush.cancel(false);
    try {
      sender.execute(() -> flushAll(true));
    } catch (RejectedExecutionException alreadyStopped) {
      // Nothing more can be sent.
    }
    sender.shutdown();
    boolean interrupted = false;
    try {
      if (!sender.awaitTermination(closeTimeout.toNanos(), TimeUnit.NANOSECONDS)) {
        sender.shutdownNow();
        sender.awaitTermination(1, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      sender.shutdownNow();
      interrupted = true;
    }
    List<Execution> unsent = new ArrayList<>();
    buffer.drainTo(unsent);
    if (!unsent.isEmpty()) {
      dropped.addAndGet(unsent.size());
      LOG.warning(
          () -> "cugar-metrics recorder closed with " + unsent.size() + " executions unsent");
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  /** Sends batches until the buffer is empty or a send fails. Runs on the sender thread only. */
  private void flushAll() {
    flushAll(false);
  }

  /**
   * Like {@link #flushAll()}; while a rate limit's delay runs, sends nothing, or, for {@code
   * flush()} and {@code close()} ({@code waitOutPause}), waits for the delay to pass first.
   */
  private void flushAll(boolean waitOutPause) {
    long pause = sendPausedUntil - System.nanoTime();
    if (pause > 0) {
      if (!waitOutPause) {
        return;
      }
      try {
        TimeUnit.NANOSECONDS.sleep(pause);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
    while (!buffer.isEmpty()) {
      if (!sendOneBatch()) {
        return;
      }
    }
  }

  private boolean sendOneBatch() {
    List<Execution> batch = new ArrayList<>(maxBatchSize);
    buffer.drainTo(batch, maxBatchSize);
    if (batch.isEmpty()) {
      return true;
    }
    try {
      BatchResult response = client.recordBatch(batch);
      accepted.addAndGet(response.accepted());
      duplicate.addAndGet(response.duplicate());
      rejected.addAndGet(response.rejected());
      if (response.rejected() > 0) {
        logRejected(response);
      }
      return true;
    } catch (InvalidExecutionException e) {
      // The batch as a whole was refused (never expected: batches are 1..1000 items).
      failedSends.incrementAndGet();
      dropped.addAndGet(batch.size());
      LOG.log(Level.WARNING, "cugar-metrics refused a batch of " + batch.size(), e);
      return true;
    } catch (StatusRuntimeException e) {
      failedSends.incrementAndGet();
      long now = System.nanoTime();
      sizeFlushPausedUntil = now + flushIntervalNanos;
      if (e instanceof RateLimitedException limited) {
        Duration delay = limited.retryDelay();
        if (delay.compareTo(MetricsClient.MAX_RETRY_DELAY) > 0) {
          delay = MetricsClient.MAX_RETRY_DELAY;
        }
        sendPausedUntil = now + delay.toNanos();
        sizeFlushPausedUntil = Math.max(sizeFlushPausedUntil - now, delay.toNanos()) + now;
      }
      if (TRANSIENT.contains(e.getStatus().getCode())) {
        // Kept for the next flush; close() counts what is still buffered as dropped.
        requeue(batch);
        LOG.log(Level.FINE, "cugar-metrics unreachable; batch kept for the next flush", e);
      } else {
        dropped.addAndGet(batch.size());
        LOG.log(Level.WARNING, "cugar-metrics batch of " + batch.size() + " dropped", e);
      }
      return false;
    } catch (RuntimeException e) {
      failedSends.incrementAndGet();
      dropped.addAndGet(batch.size());
      LOG.log(Level.WARNING, "cugar-metrics batch of " + batch.size() + " dropped", e);
      return false;
    }
  }

  /** Puts a failed batch back at the head of the buffer, in order; what does not fit is dropped. */
  private void requeue(List<Execution> batch) {
    for (int i = batch.size() - 1; i >= 0; i--) {
      if (!buffer.offerFirst(batch.get(i))) {
        dropped.incrementAndGet();
      }
    }
  }

  private static void logRejected(BatchResult response) {
    if (!LOG.isLoggable(Level.WARNING)) {
      return;
    }
    StringBuilder sb =
        new StringBuilder("cugar-metrics rejected ")
            .append(response.rejected())
            .append(" invalid executions");
    for (RejectedExecution r : response.rejections()) {
      sb.append("\n  [").append(r.getIndex()).append("] ").append(r.getExecutionId());
      for (FieldViolation v : r.getFieldViolationsList()) {
        sb.append("\n    ").append(v.getField()).append(": ").append(v.getDescription());
      }
    }
    LOG.warning(sb.toString());
  }

  private boolean await(Future<?> done) {
    try {
      done.get(closeTimeout.toNanos(), TimeUnit.NANOSECONDS);
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } catch (ExecutionException | TimeoutException e) {
      return false;
    }
  }

  /**
   * The recorder's counters: {@code submitted = accepted + duplicate + rejected + dropped +
   * pending}.
   *
   * @param submitted calls to {@link #submit}
   * @param accepted executions the server recorded as new
   * @param duplicate executions the server acknowledged as already recorded
   * @param rejected executions the server rejected as invalid
   * @param dropped executions given up: buffer full, recorder closed, or a non-transient failure
   * @param pending executions not settled yet: buffered or being sent
   * @param failedSends batch calls that failed (their executions were kept or dropped)
   */
  public record Stats(
      long submitted,
      long accepted,
      long duplicate,
      long rejected,
      long dropped,
      long pending,
      long failedSends) {}

  /** A body timed by {@link #time}. */
  @FunctionalInterface
  public interface TimedBody<T, E extends Exception> {
    /** Runs the execution; add tool calls and approvals to {@code timer}. */
    T run(ExecutionTimer timer) throws E;
  }

  /** Options of a {@link Recorder}. */
  public static final class Builder {
    private final MetricsClient client;
    private int maxBatchSize = 100;
    private Duration flushInterval = Duration.ofSeconds(1);
    private int bufferCapacity = 10_000;
    private Duration closeTimeout = Duration.ofSeconds(10);

    private Builder(MetricsClient client) {
      this.client = client;
    }

    /** Executions per RecordExecutions call, 1 to 1000 (default 100); a full batch is sent at once. */
    public Builder maxBatchSize(int maxBatchSize) {
      if (maxBatchSize < 1 || maxBatchSize > MetricsClient.MAX_BATCH_SIZE) {
        throw new IllegalArgumentException(
            "maxBatchSize must be 1 to " + MetricsClient.MAX_BATCH_SIZE + ", got " + maxBatchSize);
      }
      this.maxBatchSize = maxBatchSize;
      return this;
    }

    /** How often the buffer is sent, whatever its size (default 1 s). */
    public Builder flushInterval(Duration flushInterval) {
      Objects.requireNonNull(flushInterval, "flushInterval");
      if (flushInterval.isNegative() || flushInterval.isZero()) {
        throw new IllegalArgumentException("flushInterval must be positive, got " + flushInterval);
      }
      this.flushInterval = flushInterval;
      return this;
    }

    /** The most executions held while the server cannot take them (default 10000). */
    public Builder bufferCapacity(int bufferCapacity) {
      if (bufferCapacity < 1) {
        throw new IllegalArgumentException("bufferCapacity must be >= 1, got " + bufferCapacity);
      }
      this.bufferCapacity = bufferCapacity;
      return this;
    }

    /** How long {@link #close()} and {@link #flush()} wait for sending (default 10 s). */
    public Builder closeTimeout(Duration closeTimeout) {
      Objects.requireNonNull(closeTimeout, "closeTimeout");
      if (closeTimeout.isNegative()) {
        throw new IllegalArgumentException("closeTimeout must be >= 0, got " + closeTimeout);
      }
      this.closeTimeout = closeTimeout;
      return this;
    }

    /** Builds the recorder and starts its background thread. */
    public Recorder build() {
      return new Recorder(this);
    }
  }
}
