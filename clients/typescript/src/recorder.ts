import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { type Code, ConnectError } from "@connectrpc/connect";
import type { CallOptions, ExecutionInit, MetricsClient } from "./client.js";
import { MAX_BATCH_SIZE } from "./client.js";
import { retryDelayOf } from "./errors.js";
import type {
  RecordExecutionsResponse,
  RejectedExecution,
} from "./gen/cugar/metrics/v1/metrics_service_pb.js";
import { codeOfName } from "./retry.js";
import { Run, type RunOptions } from "./run.js";
import { RATE_LIMIT, RECORDER } from "./spec.js";

/** Where a `Recorder` writes its warnings: `console` by default. */
export interface RecorderLogger {
  warn(message: string): void;
}

/** The backoff between retries of a batch that failed with a retryable code. */
export interface RecorderRetryOptions {
  /** The wait after the first failure, in milliseconds. Default 200. */
  readonly initialBackoffMs?: number;
  /** The longest wait, in milliseconds. Default 2000. */
  readonly maxBackoffMs?: number;
  /** The factor the wait grows by after each failure in a row. Default 2. */
  readonly multiplier?: number;
}

export interface RecorderOptions {
  /**
   * Executions per RecordExecutions call; a full batch is sent at once. 1..1000, at most
   * `maxBufferSize`; default 500 (or `maxBufferSize` when smaller).
   */
  readonly maxBatchSize?: number;
  /** How often buffered executions are sent, in milliseconds. Default 1000. */
  readonly flushIntervalMs?: number;
  /**
   * The most executions held at once (buffered plus in flight). When full, the oldest one
   * not in flight is dropped and counted to make room. Default 10000.
   */
  readonly maxBufferSize?: number;
  /** How long `close()` keeps retrying what is undelivered, in milliseconds. Default 10000. */
  readonly closeTimeoutMs?: number;
  /** The backoff between retries of a failed batch; defaults from `clients/spec.yaml`. */
  readonly retry?: RecorderRetryOptions;
  /** Where drops are reported (a line at close, and at most one per interval before). */
  readonly logger?: RecorderLogger;
  /** Told about every failed send. Exceptions it throws are ignored. */
  readonly onError?: (error: unknown) => void;
  /** Told about executions the server rejected as invalid. Exceptions it throws are ignored. */
  readonly onRejected?: (rejected: readonly RejectedExecution[]) => void;
}

/**
 * What a `Recorder` did so far. Every recorded execution ends up in exactly one of
 * accepted, duplicate, rejected or dropped, or is still buffered or in flight.
 */
export interface RecorderStats {
  /** Executions waiting to be sent. */
  readonly buffered: number;
  /** Executions in the batch being sent. */
  readonly inFlight: number;
  /** Executions the server recorded. */
  readonly accepted: number;
  /** Executions the server acknowledged as already recorded. */
  readonly duplicate: number;
  /** Executions the server rejected as invalid. */
  readonly rejected: number;
  /** Executions never delivered: `droppedFull + droppedFailed + droppedClosed`. */
  readonly dropped: number;
  /** Dropped because the buffer was full (the oldest make room for the newest). */
  readonly droppedFull: number;
  /** Dropped because the server refused their batch with a code that is not retried. */
  readonly droppedFailed: number;
  /** Dropped by `close()`: still undelivered at its timeout, or recorded after it. */
  readonly droppedClosed: number;
  /** RecordExecutions calls that failed (after the client's own retries). */
  readonly failedSends: number;
}

/** The part of `MetricsClient` a recorder uses. */
export type BatchSender = Pick<MetricsClient, "recordBatch">;

/** Send failures whose batch is kept and retried (spec `recorder.retryable_codes`). */
export const RECORDER_RETRYABLE_CODES: ReadonlySet<Code> = new Set(
  RECORDER.retryableCodes.map((name) => codeOfName(name)),
);

/**
 * Buffers finished executions and sends them in batches, in the background: when a batch
 * is full, every `flushIntervalMs`, on `flush()` and on `close()`. The delivery contract
 * (`clients/README.md`), with the defaults of `clients/spec.yaml`:
 *
 * - `record()` never blocks and never throws; at most `maxBufferSize` executions are held,
 *   and when full the oldest one not in flight is dropped and counted.
 * - A batch that fails with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED is kept and
 *   retried, with the same execution ids (the server counts each once), after a backoff of
 *   200 ms doubling to 2 s, or after the server's RetryInfo delay (capped at the client's
 *   `retry.maxRetryDelayMs`, 30 s by default) when that is longer, until it is delivered, the buffer overflows, or `close()` times out.
 * - `close()` keeps retrying for up to `closeTimeoutMs`, then resolves to how many
 *   executions were dropped in all, as `stats().dropped` says and a warning line reports.
 */
export class Recorder {
  readonly maxBatchSize: number;
  readonly flushIntervalMs: number;
  readonly maxBufferSize: number;
  readonly closeTimeoutMs: number;
  /** The backoff between retries of a failed batch. */
  readonly retry: Required<RecorderRetryOptions>;
  private readonly sender: BatchSender;
  /** The longest RetryInfo delay waited: the client's `retry.maxRetryDelayMs`, else the spec's. */
  private readonly retryInfoCapMs: number;
  private readonly logger: RecorderLogger;
  private readonly onError: ((error: unknown) => void) | undefined;
  private readonly onRejected: ((rejected: readonly RejectedExecution[]) => void) | undefined;
  private buffer: ExecutionInit[] = [];
  private inFlight = 0;
  private counts = {
    accepted: 0,
    duplicate: 0,
    rejected: 0,
    droppedFull: 0,
    droppedFailed: 0,
    droppedClosed: 0,
    failedSends: 0,
  };
  /** Drains run one after another on this chain; none ever rejects. */
  private chain: Promise<void> = Promise.resolve();
  /** Drains queued or running. */
  private pending = 0;
  private kickScheduled = false;
  /** Failed sends in a row (the backoff grows with it); 0 after a success. */
  private failures = 0;
  /** `performance.now()` before which no batch is sent (backoff or RetryInfo); 0: none. */
  private notBefore = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Aborts the send in flight when `close()` reaches its timeout. */
  private readonly abort = new AbortController();
  private droppedLogged = 0;
  private closed = false;
  private closing: Promise<number> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(sender: BatchSender, options: RecorderOptions = {}) {
    this.sender = sender;
    this.retryInfoCapMs =
      (sender as Partial<Pick<MetricsClient, "retry">>).retry?.maxRetryDelayMs ?? RATE_LIMIT.retryInfoCapMs;
    this.maxBufferSize = options.maxBufferSize ?? RECORDER.bufferSize;
    if (!Number.isInteger(this.maxBufferSize) || this.maxBufferSize < 1) {
      throw new RangeError(`maxBufferSize must be an integer >= 1, got ${this.maxBufferSize}`);
    }
    this.maxBatchSize = options.maxBatchSize ?? Math.min(RECORDER.batchSize, this.maxBufferSize);
    if (
      !Number.isInteger(this.maxBatchSize) ||
      this.maxBatchSize < 1 ||
      this.maxBatchSize > Math.min(MAX_BATCH_SIZE, this.maxBufferSize)
    ) {
      throw new RangeError(
        `maxBatchSize must be an integer in 1..${MAX_BATCH_SIZE} and at most maxBufferSize, got ${this.maxBatchSize}`,
      );
    }
    this.flushIntervalMs = options.flushIntervalMs ?? RECORDER.flushIntervalMs;
    if (!(this.flushIntervalMs > 0)) {
      throw new RangeError(`flushIntervalMs must be > 0, got ${this.flushIntervalMs}`);
    }
    this.closeTimeoutMs = options.closeTimeoutMs ?? RECORDER.closeTimeoutMs;
    if (!(this.closeTimeoutMs >= 0)) {
      throw new RangeError(`closeTimeoutMs must be >= 0, got ${this.closeTimeoutMs}`);
    }
    this.retry = {
      initialBackoffMs: options.retry?.initialBackoffMs ?? RECORDER.retryInitialBackoffMs,
      maxBackoffMs: options.retry?.maxBackoffMs ?? RECORDER.retryMaxBackoffMs,
      multiplier: options.retry?.multiplier ?? RECORDER.retryBackoffMultiplier,
    };
    const b = this.retry;
    if (!(b.initialBackoffMs >= 0 && b.maxBackoffMs >= b.initialBackoffMs && b.multiplier >= 1)) {
      throw new RangeError(`retry: need 0 <= initialBackoffMs <= maxBackoffMs and multiplier >= 1`);
    }
    this.logger = options.logger ?? console;
    this.onError = options.onError;
    this.onRejected = options.onRejected;
    // unref: a pending flush never keeps the process alive; call close() to deliver the rest.
    this.timer = setInterval(() => this.tick(), this.flushIntervalMs).unref();
  }

  /**
   * Queues a finished execution. When the buffer is full, the oldest execution not in
   * flight is dropped (and counted) to make room. Returns false, counting a drop, only when
   * the new one cannot be held: after `close()`, or when everything held is in flight.
   * Never throws and never waits for the network.
   */
  record(execution: ExecutionInit): boolean {
    if (this.closed) {
      this.counts.droppedClosed += 1;
      return false;
    }
    if (this.buffer.length + this.inFlight >= this.maxBufferSize) {
      this.counts.droppedFull += 1;
      if (this.buffer.length === 0) return false;
      this.buffer.shift();
    }
    this.buffer.push(execution);
    if (this.buffer.length >= this.maxBatchSize && !this.kickScheduled) {
      // Sent from a later macrotask, never from inside the agent's call.
      this.kickScheduled = true;
      setImmediate(() => {
        this.kickScheduled = false;
        if (this.pending === 0 && performance.now() >= this.notBefore) void this.enqueueDrain("full");
      });
    }
    return true;
  }

  /** Starts timing an execution that is queued here when it ends. */
  startRun(profile: string, options: RunOptions = {}): Run {
    return new Run(profile, options, (execution) => {
      this.record(execution);
    });
  }

  /**
   * Sends everything buffered now, batch by batch, after any send already under way and
   * after any backoff or RetryInfo delay still running; stops at the first failed send (a
   * retryable failure leaves the batch queued, and the recorder retries it in the
   * background). Never rejects.
   */
  flush(): Promise<void> {
    return this.enqueueDrain("all");
  }

  /**
   * Stops the timer and sends what is left, retrying failed batches with backoff for up to
   * `timeoutMs` (default `closeTimeoutMs`); then drops what is still undelivered. Resolves
   * to the number of executions dropped since the recorder was made (`stats().dropped`),
   * and writes a warning line when it is not 0. Later `record()` calls are dropped. Never
   * rejects; a second call resolves to the first one's report.
   */
  close(timeoutMs: number = this.closeTimeoutMs): Promise<number> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.timer);
      const deadline = performance.now() + timeoutMs;
      const expire = setTimeout(() => this.abort.abort(), Math.max(0, timeoutMs)).unref();
      await this.enqueueDrain("close", deadline);
      clearTimeout(expire);
      clearTimeout(this.retryTimer);
      this.counts.droppedClosed += this.buffer.length;
      this.buffer = [];
      const stats = this.stats();
      if (stats.dropped > 0) {
        this.logger.warn(
          `cugar-metrics: recorder closed: ${stats.dropped} executions dropped ` +
            `(buffer full ${stats.droppedFull}, refused ${stats.droppedFailed}, ` +
            `undelivered at close ${stats.droppedClosed})`,
        );
      }
      return stats.dropped;
    })();
    return this.closing;
  }

  /** A snapshot of the counters. */
  stats(): RecorderStats {
    const c = this.counts;
    return {
      buffered: this.buffer.length,
      inFlight: this.inFlight,
      accepted: c.accepted,
      duplicate: c.duplicate,
      rejected: c.rejected,
      dropped: c.droppedFull + c.droppedFailed + c.droppedClosed,
      droppedFull: c.droppedFull,
      droppedFailed: c.droppedFailed,
      droppedClosed: c.droppedClosed,
      failedSends: c.failedSends,
    };
  }

  private tick(): void {
    const dropped = this.counts.droppedFull + this.counts.droppedFailed;
    if (dropped > this.droppedLogged) {
      this.logger.warn(
        `cugar-metrics: recorder dropped ${dropped - this.droppedLogged} executions ` +
          `(${dropped} so far; buffer full ${this.counts.droppedFull}, refused ${this.counts.droppedFailed})`,
      );
      this.droppedLogged = dropped;
    }
    if (performance.now() < this.notBefore) return; // the retry timer sends when it is over
    if (this.pending === 0 && this.buffer.length > 0) void this.enqueueDrain("all");
  }

  private enqueueDrain(mode: "full" | "all" | "close", deadline = Infinity): Promise<void> {
    this.pending += 1;
    const next = this.chain
      .then(() => this.drain(mode, deadline))
      .finally(() => {
        this.pending -= 1;
      });
    this.chain = next;
    return next;
  }

  /**
   * Sends batches while the buffer holds any (with "full", a full one). "close" retries
   * failed batches until the buffer is empty or `deadline` passes; the others stop at the
   * first failure and leave the retry to the retry timer.
   */
  private async drain(mode: "full" | "all" | "close", deadline: number): Promise<void> {
    const threshold = mode === "full" ? this.maxBatchSize : 1;
    while (this.buffer.length >= threshold) {
      const wait = this.notBefore - performance.now();
      if (wait > 0) {
        if (mode === "full") return; // the retry timer takes over
        // A retry due only after the deadline is not made: the wait ends there and nothing
        // is sent (the timer may fire a hair before the deadline by performance.now()).
        const dueInTime = this.notBefore <= deadline;
        // close() ends this wait at its timeout (a flush() may be waiting out a long delay).
        await sleep(Math.min(wait, deadline - performance.now()), undefined, {
          signal: this.abort.signal,
        }).catch(() => undefined);
        if (this.abort.signal.aborted || !dueInTime) return;
      }
      if (performance.now() >= deadline) return;
      const batch = this.buffer.splice(0, this.maxBatchSize);
      this.inFlight = batch.length;
      const call: CallOptions = {
        signal: this.abort.signal,
        ...(deadline === Infinity ? {} : { timeoutMs: Math.max(1, deadline - performance.now()) }),
      };
      let response: RecordExecutionsResponse;
      try {
        response = await this.sender.recordBatch(batch, call);
      } catch (error) {
        this.inFlight = 0;
        this.counts.failedSends += 1;
        if (isRetryable(error) || this.abort.signal.aborted) {
          this.buffer = batch.concat(this.buffer); // fits: the bound counts in-flight items
          this.scheduleRetry(error as ConnectError);
        } else {
          this.counts.droppedFailed += batch.length;
        }
        this.notify(this.onError, error);
        if (mode !== "close") return;
        continue;
      }
      this.inFlight = 0;
      this.failures = 0;
      this.notBefore = 0;
      this.counts.accepted += response.acceptedCount;
      this.counts.duplicate += response.duplicateCount;
      this.counts.rejected += response.rejectedCount;
      if (response.rejectedExecutions.length > 0) {
        this.notify(this.onRejected, response.rejectedExecutions);
      }
    }
  }

  /** Sets the next send after the backoff (or the capped RetryInfo delay when longer). */
  private scheduleRetry(error: ConnectError): void {
    this.failures += 1;
    const b = this.retry;
    const backoff = Math.min(b.initialBackoffMs * b.multiplier ** (this.failures - 1), b.maxBackoffMs);
    const delay = Math.max(backoff, Math.min(retryDelayOf(error) ?? 0, this.retryInfoCapMs));
    this.notBefore = performance.now() + delay;
    clearTimeout(this.retryTimer);
    if (this.closed) return; // close() retries on its own
    this.retryTimer = setTimeout(() => {
      if (this.pending === 0 && this.buffer.length > 0) void this.enqueueDrain("all");
    }, delay).unref();
  }

  private notify<T>(callback: ((value: T) => void) | undefined, value: T): void {
    try {
      callback?.(value);
    } catch {
      // A failing callback must not break delivery.
    }
  }
}

/** Whether a failed send keeps its batch: the spec's retryable codes. */
function isRetryable(error: unknown): boolean {
  return error instanceof ConnectError && RECORDER_RETRYABLE_CODES.has(error.code);
}
