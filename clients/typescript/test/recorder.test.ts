// The batching Recorder: flush by size, interval and close; bounded, non-blocking when down.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { Interceptor } from "@connectrpc/connect";
import {
  Code,
  ConnectError,
  type ExecutionInit,
  MetricsClient,
  Outcome,
  type RecordExecutionsRequest,
  Recorder,
  type RejectedExecution,
  seconds,
} from "../src/index.js";
import { type RunningServer, freshProfile, startServer, unusedPort } from "./server.js";

function execution(id: string, profile: string): ExecutionInit {
  return { executionId: id, profile, outcome: Outcome.SUCCESS, duration: seconds(0.25) };
}

/** Records the size of every RecordExecutions call; fails the first `failFirst` with UNAVAILABLE. */
function batches(failFirst = 0): { interceptor: Interceptor; sizes: number[] } {
  const sizes: number[] = [];
  let failures = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    if (req.method.name === "RecordExecutions" && !req.stream) {
      sizes.push((req.message as RecordExecutionsRequest).executions.length);
      if (failures < failFirst) {
        failures += 1;
        throw new ConnectError("injected: draining", Code.Unavailable);
      }
    }
    return next(req);
  };
  return { interceptor, sizes };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}

describe("Recorder with the real server", () => {
  let server: RunningServer;
  let reader: MetricsClient;

  before(async () => {
    server = await startServer();
    reader = new MetricsClient({ target: server.target });
  });

  after(async () => {
    reader.close();
    assert.equal(await server.stop(), 0);
  });

  it("sends full batches at once and the rest on close", async () => {
    const spy = batches();
    const client = new MetricsClient({ target: server.target, interceptors: [spy.interceptor] });
    const recorder = new Recorder(client, { maxBatchSize: 100, flushIntervalMs: 60_000 });
    const profile = freshProfile();
    for (let i = 0; i < 250; i++) assert.equal(recorder.record(execution(`${profile}-${i}`, profile)), true);
    await until(() => recorder.stats().accepted === 200);
    assert.deepEqual(spy.sizes, [100, 100]);
    assert.equal(recorder.stats().buffered, 50);
    await recorder.close();
    client.close();
    assert.deepEqual(spy.sizes, [100, 100, 50]);
    assert.deepEqual(recorder.stats(), {
      buffered: 0,
      inFlight: 0,
      accepted: 250,
      duplicate: 0,
      rejected: 0,
      dropped: 0,
      failedSends: 0,
    });
    assert.equal((await reader.dashboard({ profile })).executions?.total, 250n);
  });

  it("flushes on the interval", async () => {
    const spy = batches();
    const client = new MetricsClient({ target: server.target, interceptors: [spy.interceptor] });
    const recorder = new Recorder(client, { maxBatchSize: 100, flushIntervalMs: 50 });
    const profile = freshProfile();
    for (let i = 0; i < 3; i++) recorder.record(execution(`${profile}-${i}`, profile));
    await until(() => recorder.stats().accepted === 3);
    assert.deepEqual(spy.sizes, [3]);
    await recorder.close();
    client.close();
    assert.deepEqual(spy.sizes, [3], "nothing left to send on close");
    assert.equal((await reader.dashboard({ profile })).executions?.total, 3n);
  });

  it("counts duplicates and rejections and reports the rejected items", async () => {
    const client = new MetricsClient({ target: server.target });
    const rejected: RejectedExecution[] = [];
    const recorder = new Recorder(client, {
      flushIntervalMs: 60_000,
      onRejected: (items) => rejected.push(...items),
    });
    const profile = freshProfile();
    recorder.record(execution(`${profile}-1`, profile));
    recorder.record(execution(`${profile}-1`, profile));
    recorder.record(execution(`${profile}-2`, ""));
    await recorder.flush();
    const stats = recorder.stats();
    assert.deepEqual(
      [stats.accepted, stats.duplicate, stats.rejected, stats.dropped, stats.failedSends],
      [1, 1, 1, 0, 0],
    );
    assert.deepEqual(
      rejected.map((r) => [r.index, r.executionId, r.fieldViolations.map((v) => v.field)]),
      [[2, `${profile}-2`, ["executions[2].profile"]]],
    );
    await recorder.close();
    client.close();
  });

  it("keeps a batch that failed with UNAVAILABLE and delivers it on the next flush", async () => {
    const spy = batches(1);
    const client = new MetricsClient({
      target: server.target,
      retry: { maxAttempts: 1 },
      interceptors: [spy.interceptor],
    });
    const errors: unknown[] = [];
    const recorder = new Recorder(client, { flushIntervalMs: 60_000, onError: (e) => errors.push(e) });
    const profile = freshProfile();
    for (let i = 0; i < 5; i++) recorder.record(execution(`${profile}-${i}`, profile));
    await recorder.flush();
    assert.deepEqual(
      [recorder.stats().buffered, recorder.stats().failedSends, recorder.stats().accepted],
      [5, 1, 0],
    );
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as ConnectError).code, Code.Unavailable);
    await recorder.flush();
    assert.deepEqual(spy.sizes, [5, 5]);
    await recorder.close();
    client.close();
    assert.equal(recorder.stats().accepted, 5);
    assert.equal(recorder.stats().dropped, 0);
    assert.equal((await reader.dashboard({ profile })).executions?.total, 5n);
  });

  it("queues runs that end through startRun", async () => {
    const client = new MetricsClient({ target: server.target });
    const recorder = new Recorder(client, { flushIntervalMs: 60_000 });
    const profile = freshProfile();
    const run = recorder.startRun(profile);
    run.addToolCall({ tool: "draft_email", domain: "engagement", durationMs: 12 });
    run.end(new Error("boom"));
    assert.equal(recorder.stats().buffered, 1);
    await recorder.close();
    client.close();
    const dashboard = await reader.dashboard({ profile });
    assert.equal(dashboard.executions?.failed, 1n);
    assert.deepEqual(
      dashboard.errorTypes.map((e) => [e.errorType, e.count]),
      [["Error", 1n]],
    );
  });
});

describe("Recorder with the server unreachable", () => {
  it("never blocks or throws, and counts every execution it could not deliver as dropped", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const client = new MetricsClient({
      target: `127.0.0.1:${await unusedPort()}`,
      timeoutMs: 1000,
      retry: { maxAttempts: 2, initialBackoffMs: 5, maxBackoffMs: 10 },
    });
    const errors: unknown[] = [];
    const recorder = new Recorder(client, {
      maxBatchSize: 5,
      maxBufferSize: 10,
      flushIntervalMs: 20,
      onError: (e) => errors.push(e),
    });
    try {
      const accepted: boolean[] = [];
      const started = performance.now();
      for (let i = 0; i < 25; i++) accepted.push(recorder.record(execution(`down-${i}`, "demo")));
      const elapsedMs = performance.now() - started;
      assert.ok(elapsedMs < 100, `25 record() calls took ${elapsedMs} ms`);
      assert.deepEqual(accepted, [...Array(10).fill(true), ...Array(15).fill(false)]);
      assert.deepEqual(recorder.stats(), {
        buffered: 10,
        inFlight: 0,
        accepted: 0,
        duplicate: 0,
        rejected: 0,
        dropped: 15,
        failedSends: 0,
      });

      // Sends keep failing in the background; the agent's calls stay instant.
      await until(() => recorder.stats().failedSends >= 2);
      const again = performance.now();
      assert.equal(recorder.record(execution("down-late", "demo")), false);
      assert.ok(performance.now() - again < 50, "a dropped record() returns at once");

      await recorder.close();
      const stats = recorder.stats();
      assert.equal(stats.accepted, 0);
      assert.equal(stats.buffered, 0);
      assert.equal(stats.inFlight, 0);
      assert.equal(stats.dropped, 26, "15 + 1 over the bound, 10 undelivered at close");
      assert.equal(errors.length, stats.failedSends);
      for (const e of errors) assert.equal((e as ConnectError).code, Code.Unavailable);
      assert.equal(recorder.record(execution("after-close", "demo")), false);
      assert.equal(recorder.stats().dropped, 27);
      await sleep(10);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      client.close();
    }
  });
});
