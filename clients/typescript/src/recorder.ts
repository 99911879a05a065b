import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ExecutionInit, MetricsClient } from "./client.js";
import { MAX_BATCH_SIZE } from "./client.js";
import { retryDelayOf } from "./errors.js";
import { codeOfName } from "./retry.js";
import { RATE_LIMIT, RECORDER } from "./spec.js";
import type {
  RecordExecutionsResponse,
  RejectedExecution,
} from "./gen/cugar/metrics/v1/metrics_service_pb.js";
import { Run, type RunOptions } from "./run.js";

export interface RecorderOptions {
  /** Executions per RecordExecutions call; a full batch is sent at once. 1..1000, default 500. */
  readonly maxBatchSize?: number;
  /** How often buffered executions are sent, in milliseconds. Default 1000. */
  readonly flushIntervalMs?: number;
  /**
   * The most executions held at once (buffered plus in flight). When full, new executions
   * are dropped and counted. Default 10000; at least `maxBatchSize`.
   */
  readonly maxBufferSize?: number;
  /** Told about every failed send. Exceptions it throws are ignored. */
  readonly onError?: (error: unknown) => void;
  /** Told about executions the server rejected as invalid. Exceptions it throws are ignored. */
  readonly onRejected?: (rejected: readonly RejectedExecution[]) => void;
}

/** What a `Recorder` did so far. */
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
  /**
   * Executions never delivered: the buffer was full, the server refused the batch with a
   * permanent error, or they were still unsent when the recorder closed.
   */
  readonly dropped: number;
  /** RecordExecutions calls that failed (after the client's own retries). */
  readonly failedSends: number;
}

/** The part of `MetricsClient` a recorder uses. */
export type BatchSender = Pick<MetricsClient, "recordBatch">;

/** Send failures worth trying again later: the batch stays queued. */
const TRANSIENT = new Set<Code>(RECORDER.retryableCodes.map(codeOfName));

/** The longest RetryInfo delay a recorder honours before its next send, in milliseconds. */
const MAX_RETRY_DELAY_MS = RATE_LIMIT.retryInfoCapMs;

/**
 * Buffers finished executions and sends them in batches, in the background: when a batch
 * is full, every `flushIntervalMs`, on `flush()` and on `close()`.
 *
 * `record()` never blocks and never throws: when the server is slow or down, executions
 * wait in a bounded buffer (a failed batch is kept and sent again later, which is safe
 * because the server deduplicates by `execution_id`); once the buffer is full, new
 * executions are dropped and counted in `stats().dropped`. When a rate limit refuses a
 * batch (RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo`), the batch is kept and the next
 * send waits the delay the server asked for (at most 30 s).
 */
export class Recorder {
  readonly maxBatchSize: number;
  readonly flushIntervalMs: number;
  readonly maxBufferSize: number;
  private readonly sender: BatchSender;
  private readonly onError: ((error: unknown) => void) | undefined;
  private readonly onRejected: ((rejected: readonly RejectedExecution[]) => void) | undefined;
  private buffer: ExecutionInit[] = [];
  private inFlight = 0;
  private counts = { accepted: 0, duplicate: 0, rejected: 0, dropped: 0, failedSends: 0 };
  /** Drains run one after another on this chain; none ever rejects. */
  private chain: Promise<void> = Promise.resolve();
  /** Drains queued or running. */
  private pending = 0;
  /** A send failed: size-triggered sends wait for the next interval (explicit flushes don't). */
  private suspended = false;
  private kickScheduled = false;
  /** `performance.now()` before which no batch is sent (a RetryInfo delay); 0: none. */
  private notBefore = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(sender: BatchSender, options: RecorderOptions = {}) {
    this.sender = sender;
    this.maxBatchSize = options.maxBatchSize ?? RECORDER.batchSize;
    this.flushIntervalMs = options.flushIntervalMs ?? RECORDER.flushIntervalMs;
    this.maxBufferSize = options.maxBufferSize ?? RECORDER.bufferSize;
    if (!Number.isInteger(this.maxBatchSize) || this.maxBatchSize < 1 || this.maxBatchSize > MAX_BATCH_SIZE) {
      throw new RangeError(`maxBatchSize must be an integer in 1..${MAX_BATCH_SIZE}, got ${this.maxBatchSize}`);
    }
    if (!Number.isInteger(this.maxBufferSize) || this.maxBufferSize < this.maxBatchSize) {
      throw new RangeError(`maxBufferSize must be an integer >= maxBatchSize, got ${this.maxBufferSize}`);
    }
    if (!(this.flushIntervalMs > 0)) {
      throw new RangeError(`flushIntervalMs must be > 0, got ${this.flushIntervalMs}`);
    }
    this.onError = options.onError;
    this.onRejected = options.onRejected;
    // unref: a pending flush never keeps the process alive; call close() to deliver the rest.
    this.timer = setInterval(() => this.tick(), this.flushIntervalMs).unref();
  }

  /**
   * Queues a finished execution. Returns false, counting a drop, when the buffer is full
   * or the recorder is closed. Never throws and never waits for the network.
   */
  record(execution: ExecutionInit): boolean {
    if (this.closed || this.buffer.length + this.inFlight >= this.maxBufferSize) {
      this.counts.dropped += 1;
      return false;
    }
    this.buffer.push(execution);
    if (this.buffer.length >= this.maxBatchSize && !this.kickScheduled && !this.suspended) {
      // Sent from a later macrotask, never from inside the agent's call.
      this.kickScheduled = true;
      setImmediate(() => {
        this.kickScheduled = false;
        if (this.pending === 0 && !this.suspended) void this.enqueueDrain(true);
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
   * Sends everything buffered now, batch by batch, after any send already under way;
   * stops at the first failed send (a transient failure leaves the batch queued).
   * Never rejects.
   */
  flush(): Promise<void> {
    return this.enqueueDrain(false);
  }

  /**
   * Stops the timer, sends what is buffered, and counts whatever could not be sent as
   * dropped. Later `record()` calls are dropped. Never rejects; safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.timer);
      await this.enqueueDrain(false);
      this.counts.dropped += this.buffer.length;
      this.buffer = [];
    })();
    return this.closing;
  }

  /** A snapshot of the counters. */
  stats(): RecorderStats {
    return { buffered: this.buffer.length, inFlight: this.inFlight, ...this.counts };
  }

  private tick(): void {
    if (performance.now() < this.notBefore) return; // still inside a RetryInfo delay
    this.suspended = false;
    if (this.pending === 0) void this.enqueueDrain(false);
  }

  private enqueueDrain(fullBatchesOnly: boolean): Promise<void> {
    this.pending += 1;
    const next = this.chain
      .then(() => this.drain(fullBatchesOnly))
      .finally(() => {
        this.pending -= 1;
      });
    this.chain = next;
    return next;
  }

  /** Sends batches while the buffer holds any (or, with `fullBatchesOnly`, a full one). */
  private async drain(fullBatchesOnly: boolean): Promise<void> {
    const threshold = fullBatchesOnly ? this.maxBatchSize : 1;
    while (this.buffer.length >= threshold) {
      // flush() and close() wait out a RetryInfo delay (timer sends skip the tick instead).
      const wait = this.notBefore - performance.now();
      if (wait > 0) await sleep(wait);
      const batch = this.buffer.splice(0, this.maxBatchSize);
      this.inFlight = batch.length;
      let response: RecordExecutionsResponse;
      try {
        response = await this.sender.recordBatch(batch);
      } catch (error) {
        this.inFlight = 0;
        this.counts.failedSends += 1;
        this.suspended = true;
        if (error instanceof ConnectError && TRANSIENT.has(error.code)) {
          this.buffer = batch.concat(this.buffer); // fits: the bound counts in-flight items
          const delay = retryDelayOf(error);
          if (delay !== undefined) {
            this.notBefore = performance.now() + Math.min(delay, MAX_RETRY_DELAY_MS);
          }
        } else {
          this.counts.dropped += batch.length;
        }
        this.notify(this.onError, error);
        return;
      }
      this.inFlight = 0;
      this.counts.accepted += response.acceptedCount;
      this.counts.duplicate += response.duplicateCount;
      this.counts.rejected += response.rejectedCount;
      if (response.rejectedExecutions.length > 0) {
        this.notify(this.onRejected, response.rejectedExecutions);
      }
    }
  }

  private notify<T>(callback: ((value: T) => void) | undefined, value: T): void {
    try {
      callback?.(value);
    } catch {
      // A failing callback must not break delivery.
    }
  }
}
