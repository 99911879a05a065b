// clients/spec.yaml holds the defaults the four clients share: every value there must be
// this client's constant, and the default the client really uses.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { DEFAULT_RETRY, MetricsClient, Recorder, toSeconds, watchBackoffMs } from "../src/index.js";
import { WATCH_RECONNECT_CODES, watchRequest } from "../src/client.js";
import { RECORDER_RETRYABLE_CODES } from "../src/recorder.js";
import { CALL_RETRYABLE_CODES, nameOfCode } from "../src/retry.js";
import { CALL, CONNECTION, RATE_LIMIT, RECORDER, WATCH } from "../src/spec.js";

/** This file runs as clients/typescript/dist/test/spec.test.js. */
const SPEC_FILE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "spec.yaml");

type Spec = Record<string, Record<string, unknown>>;
const spec = parse(readFileSync(SPEC_FILE, "utf8")) as Spec & { version: number };

const ms = (seconds: number) => Math.round(seconds * 1000);

/** Each spec entry, `section.key`, and the TypeScript value it must equal (in the spec's unit). */
const CONSTANTS: Record<string, unknown> = {
  "call.deadline_seconds": CALL.deadlineMs / 1000,
  "call.attempt_deadline_seconds": CALL.attemptDeadlineMs / 1000,
  "call.max_attempts": CALL.maxAttempts,
  "call.initial_backoff_seconds": CALL.initialBackoffMs / 1000,
  "call.max_backoff_seconds": CALL.maxBackoffMs / 1000,
  "call.backoff_multiplier": CALL.backoffMultiplier,
  "call.retryable_codes": [...CALL.retryableCodes],
  "connection.initial_reconnect_backoff_seconds": CONNECTION.initialReconnectBackoffMs / 1000,
  "connection.max_reconnect_backoff_seconds": CONNECTION.maxReconnectBackoffMs / 1000,
  "connection.load_balancing_policy": CONNECTION.loadBalancingPolicy,
  "rate_limit.retry_info_cap_seconds": RATE_LIMIT.retryInfoCapMs / 1000,
  "rate_limit.rate_limit_retries": RATE_LIMIT.rateLimitRetries,
  "recorder.buffer_size": RECORDER.bufferSize,
  "recorder.batch_size": RECORDER.batchSize,
  "recorder.flush_interval_seconds": RECORDER.flushIntervalMs / 1000,
  "recorder.close_timeout_seconds": RECORDER.closeTimeoutMs / 1000,
  "recorder.retry_initial_backoff_seconds": RECORDER.retryInitialBackoffMs / 1000,
  "recorder.retry_max_backoff_seconds": RECORDER.retryMaxBackoffMs / 1000,
  "recorder.retry_backoff_multiplier": RECORDER.retryBackoffMultiplier,
  "recorder.retryable_codes": [...RECORDER.retryableCodes],
  "watch.interval_seconds": WATCH.intervalMs / 1000,
  "watch.reconnect_codes": [...WATCH.reconnectCodes],
  "watch.reconnect_initial_backoff_seconds": WATCH.reconnectInitialBackoffMs / 1000,
  "watch.reconnect_max_backoff_seconds": WATCH.reconnectMaxBackoffMs / 1000,
  "watch.reconnect_backoff_multiplier": WATCH.reconnectBackoffMultiplier,
};

describe("clients/spec.yaml", () => {
  it("is version 1", () => {
    assert.equal(spec.version, 1);
  });

  it("has a TypeScript constant for every entry, and nothing more", () => {
    const entries = Object.entries(spec)
      .filter(([section]) => section !== "version")
      .flatMap(([section, values]) => Object.keys(values).map((key) => `${section}.${key}`));
    assert.deepEqual(entries.sort(), Object.keys(CONSTANTS).sort());
  });

  for (const [entry, value] of Object.entries(CONSTANTS)) {
    it(`${entry} is the client's constant`, () => {
      const [section, key] = entry.split(".") as [string, string];
      assert.deepEqual(value, spec[section]?.[key], `${entry}: spec.yaml says ${JSON.stringify(spec[section]?.[key])}, src/spec.ts ${JSON.stringify(value)}`);
    });
  }

  it("drives the defaults MetricsClient really uses", () => {
    const client = new MetricsClient({ target: "127.0.0.1:1" });
    try {
      const call = spec["call"] as Record<string, number>;
      const limit = spec["rate_limit"] as Record<string, number>;
      assert.deepEqual(
        { ...client.retry },
        {
          maxAttempts: call["max_attempts"],
          initialBackoffMs: ms(call["initial_backoff_seconds"] as number),
          maxBackoffMs: ms(call["max_backoff_seconds"] as number),
          multiplier: call["backoff_multiplier"],
          maxRetryDelayMs: ms(limit["retry_info_cap_seconds"] as number),
          rateLimitRetries: limit["rate_limit_retries"],
        },
      );
      assert.deepEqual(
        [client.timeoutMs, client.attemptTimeoutMs],
        [ms(call["deadline_seconds"] as number), ms(call["attempt_deadline_seconds"] as number)],
      );
      assert.deepEqual({ ...client.retry }, { ...DEFAULT_RETRY });
      assert.deepEqual([...CALL_RETRYABLE_CODES].map(nameOfCode), call["retryable_codes"]);
    } finally {
      client.close();
    }
  });

  it("drives the defaults a Recorder really uses", async () => {
    const recorder = new Recorder({ recordBatch: () => Promise.reject(new Error("not sent")) });
    try {
      const r = spec["recorder"] as Record<string, number>;
      assert.deepEqual(
        [recorder.maxBufferSize, recorder.maxBatchSize, recorder.flushIntervalMs],
        [r["buffer_size"], r["batch_size"], ms(r["flush_interval_seconds"] as number)],
      );
      assert.equal(recorder.closeTimeoutMs, ms(r["close_timeout_seconds"] as number));
      assert.deepEqual(recorder.retry, {
        initialBackoffMs: ms(r["retry_initial_backoff_seconds"] as number),
        maxBackoffMs: ms(r["retry_max_backoff_seconds"] as number),
        multiplier: r["retry_backoff_multiplier"],
      });
      assert.deepEqual([...RECORDER_RETRYABLE_CODES].map(nameOfCode), r["retryable_codes"]);
    } finally {
      await recorder.close();
    }
  });

  it("drives the defaults watchDashboard really uses", () => {
    const w = spec["watch"] as Record<string, number>;
    // The interval a watch asks for when the caller gives none.
    const request = watchRequest({ profile: "sales_rep" });
    assert.equal(toSeconds(request.interval as Parameters<typeof toSeconds>[0]), w["interval_seconds"]);
    // The waits before reopening, after 0, 1, 2, ... failures in a row, and far beyond.
    const initial = w["reconnect_initial_backoff_seconds"] as number;
    const multiplier = w["reconnect_backoff_multiplier"] as number;
    const max = w["reconnect_max_backoff_seconds"] as number;
    const failures = [0, 1, 2, 3, 4, 5, 6, 100];
    assert.deepEqual(
      failures.map(watchBackoffMs),
      failures.map((n) => ms(Math.min(initial * multiplier ** n, max))),
    );
    assert.deepEqual([...WATCH_RECONNECT_CODES].map(nameOfCode), w["reconnect_codes"]);
  });

  it("names status codes as the spec does", () => {
    assert.deepEqual([14, 4, 8].map(nameOfCode), ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"]);
  });
});
