// The batching Recorder: flush by size, interval and close; bounded, non-blocking when down.
import assert from "node:assert/strict";
import { type AddressInfo, type Socket, createServer } from "node:net";
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
import { type RunningServer, freshProfile, sample, startServer, unusedPort } from "./server.js";

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
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
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
      droppedFull: 0,
      droppedFailed: 0,
      droppedClosed: 0,
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

/** Execution ids of every RecordExecutions call; fails the first `failFirst` with UNAVAILABLE. */
function sentIds(failFirst = 0): { interceptor: Interceptor; calls: string[][] } {
  const calls: string[][] = [];
  let failures = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    if (req.method.name === "RecordExecutions" && !req.stream) {
      calls.push((req.message as RecordExecutionsRequest).executions.map((e) => e.executionId));
      if (failures < failFirst) {
        failures += 1;
        throw new ConnectError("injected: draining", Code.Unavailable);
      }
    }
    return next(req);
  };
  return { interceptor, calls };
}

/** A logger that keeps its lines. */
function captured(): { warn: (message: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { warn: (message) => lines.push(message), lines };
}

describe("Recorder: the delivery contract", () => {
  it("close() keeps retrying until the server comes up, and delivers everything once", async () => {
    const port = await unusedPort();
    const client = new MetricsClient({ target: `127.0.0.1:${port}` });
    const logger = captured();
    const recorder = new Recorder(client, { closeTimeoutMs: 60_000, logger });
    const profile = freshProfile();
    let server: RunningServer | undefined;
    try {
      for (let i = 1; i <= 11; i++) {
        recorder.record({ ...execution(`${profile}-${i}`, profile), ...(i > 7 ? { outcome: Outcome.FAILURE, errorType: "ToolError" } : {}) });
      }
      const closing = recorder.close();
      await until(() => recorder.stats().failedSends >= 1); // it tried, and nothing listens
      server = await startServer({ grpcPort: port });
      const dropped = await closing;
      const stats = recorder.stats();
      assert.deepEqual([stats.accepted, stats.duplicate, stats.dropped, stats.buffered], [11, 0, 0, 0]);
      assert.equal(dropped, 0, "close() reports no drop");
      assert.deepEqual(logger.lines, []);
      const text = await server.scrape();
      assert.equal(sample(text, "cugar_ingest_executions_total", { result: "accepted" }), 11);
      assert.equal(sample(text, "cugar_executions_total", { profile, outcome: "success", error_type: "" }), 7);
      assert.equal(sample(text, "cugar_executions_total", { profile, outcome: "failure", error_type: "ToolError" }), 4);
    } finally {
      client.close();
      if (server) assert.equal(await server.stop(), 0);
    }
  });

  it("close() gives up at its timeout and reports exactly what it dropped: return value, stats, log line", async () => {
    // No retries in the client: each of the recorder's own retries is one failed send.
    const client = new MetricsClient({ target: `127.0.0.1:${await unusedPort()}`, retry: { maxAttempts: 1 } });
    const logger = captured();
    const errors: unknown[] = [];
    const recorder = new Recorder(client, {
      maxBufferSize: 5,
      closeTimeoutMs: 1000,
      logger,
      onError: (e) => errors.push(e),
    });
    try {
      for (let i = 1; i <= 8; i++) assert.equal(recorder.record(execution(`over-${i}`, "demo")), true);
      assert.deepEqual(
        [recorder.stats().buffered, recorder.stats().dropped, recorder.stats().droppedFull],
        [5, 3, 3],
        "the 3 oldest made room",
      );
      const started = performance.now();
      const dropped = await recorder.close();
      const tookMs = performance.now() - started;
      assert.equal(dropped, 8);
      assert.ok(tookMs >= 1000 - 2, `close() gave up after ${tookMs.toFixed(0)} ms, before its 1 s timeout`);
      const stats = recorder.stats();
      assert.deepEqual(
        [stats.dropped, stats.droppedFull, stats.droppedFailed, stats.droppedClosed, stats.buffered, stats.inFlight],
        [8, 3, 0, 5, 0, 0],
      );
      assert.ok(stats.failedSends >= 2, `close() retried: ${stats.failedSends} failed sends`);
      assert.equal(errors.length, stats.failedSends);
      // Connection refused each time; the send under way at the timeout is cancelled.
      const codes = errors.map((e) => (e as ConnectError).code);
      assert.ok(
        codes.slice(0, -1).every((c) => c === Code.Unavailable) && [Code.Unavailable, Code.Canceled].includes(codes.at(-1) as Code),
        `codes ${codes.join(",")}`,
      );
      assert.equal(logger.lines.length, 1, logger.lines.join("\n"));
      assert.match(logger.lines[0] ?? "", /recorder closed: 8 executions dropped \(buffer full 3, refused 0, undelivered at close 5\)/);
      // After close: dropped at once, counted, and close() answers the same again.
      assert.equal(recorder.record(execution("after-close", "demo")), false);
      assert.equal(recorder.stats().dropped, 9);
      assert.equal(await recorder.close(), 8, "the first close()'s report");
    } finally {
      client.close();
    }
  });

  it("close() ends a flush() that waits out a long backoff at its own timeout", { timeout: 60_000 }, async () => {
    // A one-hour backoff after the first failure: the flush() below would wait it out.
    const client = new MetricsClient({ target: `127.0.0.1:${await unusedPort()}`, retry: { maxAttempts: 1 } });
    const recorder = new Recorder(client, {
      closeTimeoutMs: 200,
      retry: { initialBackoffMs: 3_600_000, maxBackoffMs: 3_600_000 },
      logger: captured(),
    });
    try {
      recorder.record(execution("backoff-1", "demo"));
      await recorder.flush();
      assert.deepEqual([recorder.stats().failedSends, recorder.stats().buffered], [1, 1]);
      const flushing = recorder.flush();
      assert.equal(await recorder.close(), 1);
      await flushing;
      assert.deepEqual(
        [recorder.stats().failedSends, recorder.stats().droppedClosed, recorder.stats().buffered],
        [1, 1, 0],
        "nothing sent during the backoff; the execution dropped at close",
      );
    } finally {
      client.close();
    }
  });

  it("close() sends nothing at its timeout when the next retry is due only after it", async () => {
    // Twenty recorders, each with one failed send and an hour of backoff ahead, closed with
    // a 50 ms timeout: the wait for the retry ends at close's timeout, and none of them may
    // then send the batch anyway (the timer ending the wait can fire a hair before the
    // deadline by performance.now(), which made about a third of them send once more).
    const runs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const client = new MetricsClient({ target: `127.0.0.1:${await unusedPort()}`, retry: { maxAttempts: 1 } });
        const recorder = new Recorder(client, {
          retry: { initialBackoffMs: 3_600_000, maxBackoffMs: 3_600_000 },
          logger: captured(),
        });
        try {
          recorder.record(execution(`due-later-${i}`, "demo"));
          await recorder.flush();
          const before = recorder.stats().failedSends;
          const dropped = await recorder.close(50);
          return [before, recorder.stats().failedSends, dropped];
        } finally {
          client.close();
        }
      }),
    );
    assert.deepEqual(runs, runs.map(() => [1, 1, 1]), "[failed sends before close, after close, dropped] per recorder");
  });

  it("drops the oldest when the buffer is full, and sends the newest", async () => {
    const server = await startServer();
    const spy = sentIds();
    const client = new MetricsClient({ target: server.target, interceptors: [spy.interceptor] });
    const recorder = new Recorder(client, { maxBufferSize: 5, flushIntervalMs: 60_000 });
    const profile = freshProfile();
    try {
      for (let i = 1; i <= 8; i++) recorder.record(execution(`${profile}-${i}`, profile));
      assert.equal(await recorder.close(), 3);
      assert.deepEqual(spy.calls, [[4, 5, 6, 7, 8].map((i) => `${profile}-${i}`)]);
      assert.equal(recorder.stats().accepted, 5);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
  });

  it("re-sends the same execution ids after a failure, so the server counts each once", async () => {
    const server = await startServer();
    const spy = sentIds(2);
    // No retries in the client: the recorder's own retries are under test.
    const client = new MetricsClient({ target: server.target, retry: { maxAttempts: 1 }, interceptors: [spy.interceptor] });
    const recorder = new Recorder(client, { flushIntervalMs: 60_000 });
    const profile = freshProfile();
    try {
      for (let i = 1; i <= 5; i++) recorder.record(execution(`${profile}-${i}`, profile));
      recorder.flush();
      await until(() => recorder.stats().accepted === 5); // the recorder's backoff, not a flush
      const ids = [1, 2, 3, 4, 5].map((i) => `${profile}-${i}`);
      assert.deepEqual(spy.calls, [ids, ids, ids]);
      assert.equal(await recorder.close(), 0);
      assert.deepEqual([recorder.stats().failedSends, recorder.stats().duplicate], [2, 0]);
      const text = await server.scrape();
      assert.equal(sample(text, "cugar_ingest_executions_total", { result: "accepted" }), 5);
      assert.equal(sample(text, "cugar_ingest_executions_total", { result: "duplicate" }), 0);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
  });

  it("never blocks the agent: record() returns while a send hangs on a server that never answers", async () => {
    // A TCP server that accepts connections and never says a word: every send hangs.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((done) => silent.listen(0, "127.0.0.1", done));
    const { port } = silent.address() as AddressInfo;
    const client = new MetricsClient({ target: `127.0.0.1:${port}`, timeoutMs: 600_000, attemptTimeoutMs: 600_000 });
    const recorder = new Recorder(client, { maxBatchSize: 10, maxBufferSize: 100, flushIntervalMs: 60_000, closeTimeoutMs: 100 });
    try {
      for (let i = 0; i < 10; i++) assert.equal(recorder.record(execution(`hang-${i}`, "demo")), true);
      await until(() => recorder.stats().inFlight === 10 && sockets.length > 0); // the batch is on the wire
      for (let i = 10; i < 200; i++) recorder.record(execution(`hang-${i}`, "demo"));
      const stats = recorder.stats();
      // Every record() returned while the send was still waiting for an answer.
      assert.deepEqual(
        [stats.inFlight, stats.buffered, stats.accepted, stats.failedSends, stats.droppedFull],
        [10, 90, 0, 0, 100],
      );
    } finally {
      client.close();
      for (const socket of sockets) socket.destroy();
      silent.close();
      await recorder.close();
    }
  });
});
