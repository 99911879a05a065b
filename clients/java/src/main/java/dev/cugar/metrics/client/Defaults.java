package dev.cugar.metrics.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.Set;

/**
 * Every default the four cugar-metrics clients share, as {@code clients/spec.yaml} says. {@code
 * SpecTest} reads that file and fails when one of these differs from it, so a change of default
 * is one line there, one line here.
 */
public final class Defaults {
  private Defaults() {}

  // call

  /** Deadline of one call, all retries included. */
  public static final Duration CALL_DEADLINE = Duration.ofSeconds(10);

  /** Deadline of one attempt inside a call; the last attempt gets what is left of the call's. */
  public static final Duration ATTEMPT_DEADLINE = Duration.ofSeconds(5);

  /** Attempts in all, the first one included, while the server answers UNAVAILABLE. */
  public static final int MAX_ATTEMPTS = 5;

  /** Backoff before the first retry of a call. */
  public static final Duration INITIAL_BACKOFF = Duration.ofMillis(100);

  /** The longest backoff between two attempts of a call. */
  public static final Duration MAX_BACKOFF = Duration.ofSeconds(2);

  /** Each backoff of a call is the previous one times this, at most {@link #MAX_BACKOFF}. */
  public static final double BACKOFF_MULTIPLIER = 2;

  /** Status codes a direct call retries (the Record RPCs are idempotent by execution_id). */
  public static final Set<Status.Code> RETRYABLE_CODES = Set.of(Status.Code.UNAVAILABLE);

  // connection

  /** The first wait before reconnecting after a lost or refused connection. */
  public static final Duration INITIAL_RECONNECT_BACKOFF = Duration.ofMillis(100);

  /** The longest wait between two reconnection attempts. */
  public static final Duration MAX_RECONNECT_BACKOFF = Duration.ofSeconds(5);

  /**
   * Each reconnect wait is the previous one times this, at most {@link #MAX_RECONNECT_BACKOFF}
   * (gRPC's connection-backoff multiplier; the spec leaves it to gRPC).
   */
  public static final double RECONNECT_BACKOFF_MULTIPLIER = 1.6;

  /** Per-call balancing over every address the target's name resolves to. */
  public static final String LOAD_BALANCING_POLICY = "round_robin";

  // rate_limit

  /** The longest RetryInfo delay honoured: a server asking for more is waited for this long. */
  public static final Duration RETRY_INFO_CAP = Duration.ofSeconds(30);

  /** Retries of a call refused by the server's rate limit. */
  public static final int RATE_LIMIT_RETRIES = 3;

  // recorder

  /** Executions a recorder holds at most, buffered and in flight. */
  public static final int RECORDER_BUFFER_SIZE = 10_000;

  /** Executions per RecordExecutions call, at most. */
  public static final int RECORDER_BATCH_SIZE = 500;

  /** An execution waits at most this long in the recorder before it is sent. */
  public static final Duration RECORDER_FLUSH_INTERVAL = Duration.ofSeconds(1);

  /** How long close() keeps retrying undelivered batches before it reports what it dropped. */
  public static final Duration RECORDER_CLOSE_TIMEOUT = Duration.ofSeconds(10);

  /** Backoff before the first retry of a batch that failed with a retryable code. */
  public static final Duration RECORDER_RETRY_INITIAL_BACKOFF = Duration.ofMillis(200);

  /** The longest backoff between two retries of a batch. */
  public static final Duration RECORDER_RETRY_MAX_BACKOFF = Duration.ofSeconds(2);

  /** Each backoff of a batch is the previous one times this. */
  public static final double RECORDER_RETRY_BACKOFF_MULTIPLIER = 2;

  /** Codes whose batch the recorder keeps and retries. */
  public static final Set<Status.Code> RECORDER_RETRYABLE_CODES =
      Set.of(
          Status.Code.UNAVAILABLE, Status.Code.DEADLINE_EXCEEDED, Status.Code.RESOURCE_EXHAUSTED);

  // watch

  /** The time between two dashboards of a watch (the server accepts 1 s to 1 h). */
  public static final Duration WATCH_INTERVAL = Duration.ofSeconds(5);

  /** Codes that end a watch's stream without ending the watch: the stream is opened again. */
  public static final Set<Status.Code> WATCH_RECONNECT_CODES = Set.of(Status.Code.UNAVAILABLE);

  /** The wait before reopening a watch's stream after a response (the first failure). */
  public static final Duration WATCH_RECONNECT_INITIAL_BACKOFF = Duration.ofMillis(200);

  /** The longest wait before reopening a watch's stream. */
  public static final Duration WATCH_RECONNECT_MAX_BACKOFF = Duration.ofSeconds(5);

  /**
   * Each wait before reopening is the previous one times this, while reopening fails, at most
   * {@link #WATCH_RECONNECT_MAX_BACKOFF}.
   */
  public static final double WATCH_RECONNECT_BACKOFF_MULTIPLIER = 2;
}
