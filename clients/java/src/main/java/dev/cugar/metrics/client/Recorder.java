package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.RejectedExecution;
import io.grpc.Deadline;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Sends executions to the server in batches, in the background, so that recording never slows
 * the agent down or blocks it, even while the server is down. It follows the delivery contract of
 * {@code clients/README.md}:
 *
 * <ul>
 *   <li>{@link #submit} only puts the execution in a buffer and returns: it never waits for the
 *       network, the server or a full buffer.
 *   <li>The recorder holds at most {@code bufferCapacity} executions, buffered and in flight. When
 *       it is full, the oldest buffered execution is dropped to make room, and counted in {@link
 *       Stats#dropped()}.
 *   <li>One background thread sends batches of up to {@code maxBatchSize} with {@code
 *       RecordExecutions} (through the client, with its own retries): as soon as a batch is full,
 *       when the oldest buffered execution has waited {@code flushInterval}, on {@link #flush()}
 *       and on {@link #close()}.
 *   <li>A batch that fails with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED ({@link
 *       Defaults#RECORDER_RETRYABLE_CODES}) goes back to the head of the buffer, in order, and is
 *       sent again after a backoff ({@link Defaults#RECORDER_RETRY_INITIAL_BACKOFF}, doubling up to
 *       {@link Defaults#RECORDER_RETRY_MAX_BACKOFF}), or after the server's RetryInfo delay when
 *       that is longer, until it is delivered, pushed out by newer executions, or close() gives
 *       up. Retries send the same executions, so the same execution ids: the server counts each
 *       once.
 *   <li>Any other failure drops the batch, counted and logged. Items the server rejects as invalid
 *       are counted in {@link Stats#rejected()} and logged.
 *   <li>{@link #close()} (or {@link #shutdown()}, which returns the count) keeps sending and
 *       retrying for up to {@code closeTimeout}, then counts what is left as dropped and logs one
 *       WARNING line with the exact number dropped over the recorder's life.
 * </ul>
 *
 * <p>Close the recorder before the client. Thread-safe.
 */
public final class Recorder implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Recorder.class.getName());

  private final MetricsClient client;
  private final int maxBatchSize;
  private final long flushIntervalNanos;
  private final Duration closeTimeout;
  private final int capacity;
  private final Thread sender;

  private final ReentrantLock lock = new ReentrantLock();
  /** Signalled when the sender may have something to do. */
  private final Condition work = lock.newCondition();
  /** Signalled when a send settles (for flush()). */
  private final Condition settled = lock.newCondition();
  // Guarded by lock:
  private final ArrayDeque<Execution> buffer = new ArrayDeque<>();
  private int inFlight;
  private long oldestBufferedAt;
  private long nextSendAt = System.nanoTime();
  private long backoffNanos = Defaults.RECORDER_RETRY_INITIAL_BACKOFF.toNanos();
  private int flushWaiters;
  private boolean closed;
  private long closeDeadline;
  private boolean overflowing;
  private Long droppedReport;

  private final AtomicLong submitted = new AtomicLong();
  private final AtomicLong accepted = new AtomicLong();
  private final AtomicLong duplicate = new AtomicLong();
  private final AtomicLong rejected = new AtomicLong();
  private final AtomicLong dropped = new AtomicLong();
  private final AtomicLong droppedOnOverflow = new AtomicLong();
  private final AtomicLong droppedOnFailure = new AtomicLong();
  private final AtomicLong droppedAtClose = new AtomicLong();
  private final AtomicLong failedSends = new AtomicLong();

  private Recorder(Builder b) {
    this.client = b.client;
    this.maxBatchSize = b.maxBatchSize;
    this.flushIntervalNanos = b.flushInterval.toNanos();
    this.closeTimeout = b.closeTimeout;
    this.capacity = b.bufferCapacity;
    this.sender = new Thread(this::sendLoop, "cugar-metrics-recorder");
    this.sender.setDaemon(true);
    this.sender.start();
  }

  /** A builder of a recorder that sends through {@code client}. */
  public static Builder newBuilder(MetricsClient client) {
    return new Builder(Objects.requireNonNull(client, "client"));
  }

  /** A recorder with every default of {@link Defaults}. */
  public static Recorder create(MetricsClient client) {
    return newBuilder(client).build();
  }

  /**
   * Buffers {@code execution} for sending; never blocks. When the recorder is full, the oldest
   * buffered execution is dropped to make room (counted in {@link Stats#dropped()}).
   *
   * @return true when buffered, false when dropped itself: the recorder is closed, or every
   *     execution it holds is in flight
   */
  public boolean submit(Execution execution) {
    Objects.requireNonNull(execution, "execution");
    submitted.incrementAndGet();
    lock.lock();
    try {
      if (closed) {
        dropped.incrementAndGet();
        droppedAtClose.incrementAndGet();
        return false;
      }
      if (buffer.size() + inFlight >= capacity) {
        dropped.incrementAndGet();
        droppedOnOverflow.incrementAndGet();
        if (!overflowing) {
          overflowing = true;
          LOG.warning(
              () ->
                  "cugar-metrics recorder full ("
                      + capacity
                      + " executions): dropping the oldest until the server takes them");
        }
        if (buffer.isEmpty()) {
          return false;
        }
        buffer.pollFirst();
      }
      boolean wasEmpty = buffer.isEmpty();
      if (wasEmpty) {
        oldestBufferedAt = System.nanoTime();
      }
      buffer.addLast(execution);
      if (wasEmpty || buffer.size() >= maxBatchSize) {
        work.signal(); // the flush interval starts now, or a batch is full
      }
      return true;
    } finally {
      lock.unlock();
    }
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
   * Sends everything buffered now and waits for it, at most {@code closeTimeout} (a retry backoff
   * or a rate limit's delay is waited out within it).
   *
   * @return true when everything was delivered, false when a send failed or the wait timed out
   *     (what failed with a retryable code is still kept)
   */
  public boolean flush() {
    long deadline = System.nanoTime() + closeTimeout.toNanos();
    long failuresBefore = failedSends.get();
    lock.lock();
    try {
      flushWaiters++;
      work.signal();
      try {
        while (!buffer.isEmpty() || inFlight > 0) {
          long left = deadline - System.nanoTime();
          if (closed || left <= 0 || failedSends.get() > failuresBefore) {
            return false;
          }
          settled.awaitNanos(left);
        }
        return failedSends.get() == failuresBefore;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      } finally {
        flushWaiters--;
      }
    } finally {
      lock.unlock();
    }
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

  /** Executions in the batch being sent now (0 between sends). */
  int inFlight() {
    lock.lock();
    try {
      return inFlight;
    } finally {
      lock.unlock();
    }
  }

  /** {@link #shutdown()}, for try-with-resources. */
  @Override
  public void close() {
    shutdown();
  }

  /**
   * Stops accepting executions, keeps sending and retrying what is held for up to {@code
   * closeTimeout}, counts what is left as dropped, logs the exact number dropped (one WARNING line
   * when it is not 0) and stops the background thread. Does not close the client. Calling it again
   * returns the same number.
   *
   * @return the executions dropped over the recorder's life (full buffer, failures, close)
   */
  public long shutdown() {
    lock.lock();
    try {
      if (droppedReport != null) {
        return droppedReport;
      }
      if (!closed) {
        closed = true;
        closeDeadline = System.nanoTime() + closeTimeout.toNanos();
        work.signalAll();
        settled.signalAll();
      }
    } finally {
      lock.unlock();
    }
    boolean interrupted = false;
    try {
      long left = closeDeadline - System.nanoTime();
      sender.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)) + 1);
      if (sender.isAlive()) {
        // A send (or a wait inside the client) outlives the close timeout: interrupting the
        // sender cancels it, and the batch goes back to the buffer.
        sender.interrupt();
        sender.join(TimeUnit.SECONDS.toMillis(5));
      }
    } catch (InterruptedException e) {
      interrupted = true;
      sender.interrupt();
    }
    long report;
    Duration timeout = closeTimeout;
    lock.lock();
    try {
      if (droppedReport != null) {
        return droppedReport;
      }
      int unsent = buffer.size() + (sender.isAlive() ? inFlight : 0);
      buffer.clear();
      dropped.addAndGet(unsent);
      droppedAtClose.addAndGet(unsent);
      report = dropped.get();
      droppedReport = report;
    } finally {
      lock.unlock();
    }
    if (report > 0) {
      LOG.warning(
          "cugar-metrics recorder closed: "
              + report
              + " executions dropped ("
              + droppedOnOverflow.get()
              + " on a full buffer, "
              + droppedOnFailure.get()
              + " refused by the server, "
              + droppedAtClose.get()
              + " undelivered within the close timeout of "
              + timeout.toMillis() / 1000.0
              + " s)");
    } else {
      LOG.fine("cugar-metrics recorder closed: every execution delivered");
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    return report;
  }

  /** The background thread: waits for a batch to send, sends it, settles it; until closed. */
  private void sendLoop() {
    while (true) {
      List<Execution> batch = new ArrayList<>(maxBatchSize);
      Deadline deadline;
      lock.lock();
      try {
        if (!awaitBatch()) {
          return;
        }
        for (int i = 0; i < maxBatchSize && !buffer.isEmpty(); i++) {
          batch.add(buffer.pollFirst());
        }
        inFlight = batch.size();
        oldestBufferedAt = System.nanoTime();
        deadline = Deadline.after(client.deadline().toNanos(), TimeUnit.NANOSECONDS);
        if (closed) {
          deadline =
              deadline.minimum(
                  Deadline.after(closeDeadline - System.nanoTime(), TimeUnit.NANOSECONDS));
        }
      } finally {
        lock.unlock();
      }
      send(batch, deadline);
    }
  }

  /**
   * Waits, holding the lock, until a batch is due: the buffer holds a full batch, its oldest has
   * waited the flush interval, or flush() or close() asks, and no backoff runs. False when the
   * recorder is closed and empty, or its close timeout has passed.
   */
  private boolean awaitBatch() {
    while (true) {
      long now = System.nanoTime();
      if (closed && (buffer.isEmpty() || now - closeDeadline >= 0)) {
        return false;
      }
      long wakeAt;
      if (buffer.isEmpty()) {
        wakeAt = now + TimeUnit.HOURS.toNanos(1);
      } else {
        boolean due =
            buffer.size() >= maxBatchSize
                || flushWaiters > 0
                || closed
                || now - oldestBufferedAt >= flushIntervalNanos;
        if (due && now - nextSendAt >= 0) {
          return true;
        }
        wakeAt = due ? nextSendAt : Math.max(nextSendAt, oldestBufferedAt + flushIntervalNanos);
      }
      if (closed && wakeAt - closeDeadline > 0) {
        wakeAt = closeDeadline;
      }
      try {
        work.awaitNanos(Math.max(1, wakeAt - now));
      } catch (InterruptedException e) {
        // Only shutdown() interrupts the sender, after the close timeout.
        return false;
      }
    }
  }

  /** Sends one batch and settles it: counted, kept for a retry, or dropped. */
  private void send(List<Execution> batch, Deadline deadline) {
    BatchResult response = null;
    RuntimeException failure = null;
    try {
      response = client.recordBatch(batch, deadline);
    } catch (RuntimeException e) {
      failure = e;
    }
    lock.lock();
    try {
      inFlight = 0;
      long now = System.nanoTime();
      if (response != null) {
        accepted.addAndGet(response.accepted());
        duplicate.addAndGet(response.duplicate());
        rejected.addAndGet(response.rejected());
        if (response.rejected() > 0) {
          logRejected(response);
        }
        backoffNanos = Defaults.RECORDER_RETRY_INITIAL_BACKOFF.toNanos();
        nextSendAt = now;
        overflowing = false;
      } else {
        failedSends.incrementAndGet();
        if (keeps(failure)) {
          // Back to the head, in order; it fits: it was counted in the capacity while in flight.
          for (int i = batch.size() - 1; i >= 0; i--) {
            buffer.addFirst(batch.get(i));
          }
          long wait = backoffNanos;
          if (failure instanceof RateLimitedException limited) {
            Duration delay = limited.retryDelay();
            if (delay.compareTo(client.retryInfoCap()) > 0) {
              delay = client.retryInfoCap();
            }
            wait = Math.max(wait, delay.toNanos());
          }
          nextSendAt = now + wait;
          backoffNanos =
              Math.min(
                  (long) (backoffNanos * Defaults.RECORDER_RETRY_BACKOFF_MULTIPLIER),
                  Defaults.RECORDER_RETRY_MAX_BACKOFF.toNanos());
          LOG.log(
              Level.FINE,
              "cugar-metrics batch of " + batch.size() + " kept for a retry",
              failure);
        } else {
          dropped.addAndGet(batch.size());
          droppedOnFailure.addAndGet(batch.size());
          LOG.log(Level.WARNING, "cugar-metrics batch of " + batch.size() + " dropped", failure);
        }
      }
      settled.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /** True when a batch that failed with {@code failure} is kept for a retry. */
  private boolean keeps(RuntimeException failure) {
    if (failure instanceof InvalidExecutionException) {
      return false; // the batch as a whole was refused (never expected: 1..1000 items)
    }
    if (failure instanceof StatusRuntimeException e) {
      if (Defaults.RECORDER_RETRYABLE_CODES.contains(e.getStatus().getCode())) {
        return true;
      }
      // Cancelled by shutdown() after the close timeout: kept, then counted as dropped at close.
      return closed && Thread.currentThread().isInterrupted();
    }
    return false;
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
    private int maxBatchSize = Defaults.RECORDER_BATCH_SIZE;
    private Duration flushInterval = Defaults.RECORDER_FLUSH_INTERVAL;
    private int bufferCapacity = Defaults.RECORDER_BUFFER_SIZE;
    private Duration closeTimeout = Defaults.RECORDER_CLOSE_TIMEOUT;

    private Builder(MetricsClient client) {
      this.client = client;
    }

    /** The batch size set so far. */
    public int maxBatchSize() {
      return maxBatchSize;
    }

    /** The flush interval set so far. */
    public Duration flushInterval() {
      return flushInterval;
    }

    /** The buffer capacity set so far. */
    public int bufferCapacity() {
      return bufferCapacity;
    }

    /** The close timeout set so far. */
    public Duration closeTimeout() {
      return closeTimeout;
    }

    /** Executions per RecordExecutions call, 1 to 1000 (default 500); a full batch is sent at once. */
    public Builder maxBatchSize(int maxBatchSize) {
      if (maxBatchSize < 1 || maxBatchSize > MetricsClient.MAX_BATCH_SIZE) {
        throw new IllegalArgumentException(
            "maxBatchSize must be 1 to " + MetricsClient.MAX_BATCH_SIZE + ", got " + maxBatchSize);
      }
      this.maxBatchSize = maxBatchSize;
      return this;
    }

    /** The longest an execution waits in the buffer before it is sent (default 1 s). */
    public Builder flushInterval(Duration flushInterval) {
      Objects.requireNonNull(flushInterval, "flushInterval");
      if (flushInterval.isNegative() || flushInterval.isZero()) {
        throw new IllegalArgumentException("flushInterval must be positive, got " + flushInterval);
      }
      this.flushInterval = flushInterval;
      return this;
    }

    /**
     * The most executions held, buffered and in flight (default 10000); when full, the oldest
     * buffered one is dropped to make room.
     */
    public Builder bufferCapacity(int bufferCapacity) {
      if (bufferCapacity < 1) {
        throw new IllegalArgumentException("bufferCapacity must be >= 1, got " + bufferCapacity);
      }
      this.bufferCapacity = bufferCapacity;
      return this;
    }

    /**
     * How long {@link #close()} keeps sending and retrying before it counts the rest as dropped,
     * and the longest {@link #flush()} waits (default 10 s).
     */
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
