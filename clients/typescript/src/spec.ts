// The client's defaults, one per entry of clients/spec.yaml (the file the four clients
// share). test/spec.test.ts reads that file and fails when a value here, or a default the
// client actually uses, differs from it: change a default there and here together.

/** `call`: one direct RPC. */
export const CALL = Object.freeze({
  /** Deadline of one call, all retries included. */
  deadlineMs: 10_000,
  /** Deadline of one attempt inside it; the last attempt gets what is left. */
  attemptDeadlineMs: 5_000,
  /** Attempts in all, the first one included, while the server answers UNAVAILABLE. */
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 2_000,
  backoffMultiplier: 2,
  /** Status codes a direct call retries (spec names). */
  retryableCodes: Object.freeze(["UNAVAILABLE"] as const),
});

/** `connection`: the HTTP/2 connections. */
export const CONNECTION = Object.freeze({
  /** How long an address whose connection failed is skipped, doubling up to the maximum. */
  initialReconnectBackoffMs: 100,
  maxReconnectBackoffMs: 5_000,
  /** Per-call balancing over every address the target's name resolves to. */
  loadBalancingPolicy: "round_robin" as const,
});

/** `rate_limit`: google.rpc.RetryInfo. */
export const RATE_LIMIT = Object.freeze({
  /** The longest RetryInfo delay waited for; a server asking for more is waited this long. */
  retryInfoCapMs: 30_000,
  /** Rate-limited retries of a direct call, after its first attempt. */
  rateLimitRetries: 3,
});

/** `recorder`: the batching `Recorder`. */
export const RECORDER = Object.freeze({
  bufferSize: 10_000,
  batchSize: 500,
  flushIntervalMs: 1_000,
  closeTimeoutMs: 10_000,
  retryInitialBackoffMs: 200,
  retryMaxBackoffMs: 2_000,
  retryBackoffMultiplier: 2,
  /** Codes whose batch is kept and retried (spec names). */
  retryableCodes: Object.freeze(["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"] as const),
});

/** `watch`: `watchDashboard`, the WatchDashboard stream. */
export const WATCH = Object.freeze({
  /** A dashboard pushed every interval (the server accepts 1 s to 1 h). */
  intervalMs: 5_000,
  /** Codes that end a stream which is then opened again (spec names). */
  reconnectCodes: Object.freeze(["UNAVAILABLE"] as const),
  /** The wait before reopening, growing while reopening fails, reset by a response. */
  reconnectInitialBackoffMs: 200,
  reconnectMaxBackoffMs: 5_000,
  reconnectBackoffMultiplier: 2,
});
