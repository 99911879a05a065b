// RetryInfo: a call refused by a rate limit (RESOURCE_EXHAUSTED with google.rpc.RetryInfo)
// is retried after the server's delay, by MetricsClient and by the Recorder; against the
// real server started with --rate-limit-recorder 2/s:1 (one call, then one every 0.5 s).
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import type { Interceptor } from "@connectrpc/connect";
import {
  Code,
  ConnectError,
  MetricsClient,
  Outcome,
  Recorder,
  decodeRetryInfo,
  retryDelayOf,
  seconds,
} from "../src/index.js";
import { DEFAULT_RETRY, retryDelayMs, retryPolicy } from "../src/retry.js";
import { type RunningServer, createKey, freshProfile, sample, startServer, tempDir } from "./server.js";

/** A timer may fire up to about a millisecond before performance.now() says it is due. */
const TIMER_SLACK_MS = 2;

function retryInfo(secondsPart: bigint, nanos: number): Uint8Array {
  const delay = toBinary(DurationSchema, create(DurationSchema, { seconds: secondsPart, nanos }));
  return new BinaryWriter().uint32((1 << 3) | 2).bytes(delay).finish();
}

function rateLimited(delay: Uint8Array): ConnectError {
  const error = new ConnectError("rate limited", Code.ResourceExhausted);
  error.details.push({ type: "google.rpc.RetryInfo", value: delay });
  return error;
}

function execution(id: string, profile: string) {
  return { executionId: id, profile, outcome: Outcome.SUCCESS, duration: seconds(1) };
}

async function rateLimitedCount(server: RunningServer): Promise<number | undefined> {
  return sample(await server.scrape(), "cugar_rate_limited_total", { role: "recorder" });
}

describe("RetryInfo decoding and the retry decision", () => {
  it("decodes the delay in milliseconds", () => {
    assert.equal(decodeRetryInfo(retryInfo(1n, 500_000_000)), 1500);
    assert.equal(retryDelayOf(rateLimited(retryInfo(0n, 2_000_000))), 2);
    assert.equal(decodeRetryInfo(new Uint8Array()), undefined);
  });

  it("waits the server's delay, capped at maxRetryDelayMs", () => {
    assert.equal(retryDelayMs(DEFAULT_RETRY, rateLimited(retryInfo(0n, 400_000_000)), 1), 400);
    assert.equal(retryDelayMs(DEFAULT_RETRY, rateLimited(retryInfo(31n, 0)), 1), 30_000);
    assert.equal(retryDelayMs(DEFAULT_RETRY, rateLimited(retryInfo(3600n, 0)), 1), 30_000);
    assert.equal(retryDelayMs(retryPolicy({ maxRetryDelayMs: 60_000 }), rateLimited(retryInfo(31n, 0)), 1), 31_000);
    assert.equal(
      retryDelayMs(DEFAULT_RETRY, new ConnectError("too many RPCs", Code.ResourceExhausted), 1),
      undefined,
      "RESOURCE_EXHAUSTED without RetryInfo is not retried",
    );
  });
});

describe("rate limits of the real server (--rate-limit-recorder 2/s:1)", () => {
  let dir: string;
  let server: RunningServer;
  // Each key has its own bucket, which starts with its burst of 1: one key per test.
  let clientKey: string;
  let recorderKey: string;

  before(async () => {
    dir = await tempDir();
    const keys = join(dir, "keys.json");
    clientKey = await createKey(keys, "client-agent", "recorder");
    recorderKey = await createKey(keys, "recorder-agent", "recorder");
    server = await startServer({ args: ["--auth-keys-file", keys, "--rate-limit-recorder", "2/s:1"] });
  });

  after(async () => {
    assert.equal(await server.stop(), 0);
    await rm(dir, { recursive: true, force: true });
  });

  it("MetricsClient: two immediate records both succeed because the second waited", async (t) => {
    // The delays the server asked for, read from each refusal on its way to the retry logic.
    const asked: number[] = [];
    const spy: Interceptor = (next) => async (req) => {
      try {
        return await next(req);
      } catch (error) {
        if (error instanceof ConnectError) asked.push(retryDelayOf(error) ?? Number.NaN);
        throw error;
      }
    };
    const client = new MetricsClient({ target: server.target, apiKey: clientKey, interceptors: [spy] });
    const profile = freshProfile();
    const before = await rateLimitedCount(server);
    try {
      assert.equal(await client.record(execution(`${profile}-1`, profile)), "accepted"); // empties the bucket
      const started = performance.now();
      assert.equal(await client.record(execution(`${profile}-2`, profile)), "accepted");
      const waitedMs = performance.now() - started;
      t.diagnostic(`the second record took ${waitedMs.toFixed(0)} ms; the server asked for ${asked.join(", ")} ms`);
      assert.equal(asked.length, 1);
      const delay = asked[0] as number;
      assert.ok(delay > 0 && delay <= 500, `RetryInfo delay ${delay} ms`);
      assert.ok(waitedMs >= delay - TIMER_SLACK_MS, `the second record waited ${waitedMs.toFixed(0)} ms, not the ${delay} ms asked`);
      assert.equal(before, 0);
      assert.equal(await rateLimitedCount(server), 1, "refused exactly once");
    } finally {
      client.close();
    }
  });

  it("Recorder: keeps the refused batch and sends it after the delay", async (t) => {
    // No retries in the client: the recorder itself must honour the delay.
    const client = new MetricsClient({ target: server.target, apiKey: recorderKey, retry: { maxAttempts: 1, rateLimitRetries: 0 } });
    const errors: unknown[] = [];
    const recorder = new Recorder(client, {
      maxBatchSize: 1,
      flushIntervalMs: 60_000,
      onError: (error) => errors.push(error),
    });
    const profile = freshProfile();
    const before = await rateLimitedCount(server);
    try {
      recorder.record(execution(`${profile}-1`, profile));
      recorder.record(execution(`${profile}-2`, profile));
      await recorder.flush(); // sends -1 (the bucket's one token); -2 is refused and kept
      assert.deepEqual(
        { ...recorder.stats() },
        { buffered: 1, inFlight: 0, accepted: 1, duplicate: 0, rejected: 0, dropped: 0, droppedFull: 0, droppedFailed: 0, droppedClosed: 0, failedSends: 1 },
      );
      const refused = errors[0];
      assert.ok(refused instanceof ConnectError && refused.code === Code.ResourceExhausted, String(refused));
      const delay = retryDelayOf(refused);
      assert.ok(delay !== undefined && delay > 0 && delay <= 500, `RetryInfo delay ${delay} ms`);

      const started = performance.now();
      await recorder.flush(); // waits the delay, then sends -2
      const waitedMs = performance.now() - started;
      t.diagnostic(`RetryInfo delay ${delay} ms; the second flush took ${waitedMs.toFixed(0)} ms`);
      assert.ok(waitedMs >= (delay as number) - TIMER_SLACK_MS, `the recorder waited ${waitedMs.toFixed(0)} ms, not the ${delay} ms asked`);
      await recorder.close();
      assert.deepEqual(
        { ...recorder.stats() },
        { buffered: 0, inFlight: 0, accepted: 2, duplicate: 0, rejected: 0, dropped: 0, droppedFull: 0, droppedFailed: 0, droppedClosed: 0, failedSends: 1 },
      );
      assert.equal(errors.length, 1);
      assert.equal(typeof before, "number");
      assert.equal(await rateLimitedCount(server), (before ?? Number.NaN) + 1, "refused exactly once");
    } finally {
      await recorder.close();
      client.close();
    }
  });
});

describe("a RetryInfo delay over the cap (--rate-limit-recorder 1/m:1: the next token in 60 s)", () => {
  let dir: string;
  let server: RunningServer;
  let key: string;

  before(async () => {
    dir = await tempDir();
    const keys = join(dir, "keys.json");
    key = await createKey(keys, "capped-agent", "recorder");
    server = await startServer({ args: ["--auth-keys-file", keys, "--rate-limit-recorder", "1/m:1"] });
  });

  after(async () => {
    assert.equal(await server.stop(), 0);
    await rm(dir, { recursive: true, force: true });
  });

  it("is waited for the cap, rateLimitRetries times, then the call fails with RESOURCE_EXHAUSTED", async (t) => {
    const client = new MetricsClient({
      target: server.target,
      apiKey: key,
      timeoutMs: 10_000,
      retry: { maxRetryDelayMs: 300, rateLimitRetries: 3 },
    });
    const profile = freshProfile();
    try {
      assert.equal(await client.record(execution(`${profile}-1`, profile)), "accepted");
      const started = performance.now();
      const error = await client.record(execution(`${profile}-2`, profile)).then(
        () => assert.fail("the bucket is empty for 60 s: the call must fail"),
        (e: unknown) => e,
      );
      const waitedMs = performance.now() - started;
      t.diagnostic(`failed after ${waitedMs.toFixed(0)} ms`);
      assert.ok(error instanceof ConnectError && error.code === Code.ResourceExhausted, String(error));
      assert.ok((retryDelayOf(error) ?? 0) > 30_000, "the server asked for more than the default cap");
      // Only waiting the capped delay three times can take this long.
      assert.ok(waitedMs >= 3 * (300 - TIMER_SLACK_MS), `waited ${waitedMs.toFixed(0)} ms, not 3 x 300 ms`);
      assert.equal(await rateLimitedCount(server), 4, "the first attempt and 3 retries, each refused");
      const text = await server.scrape();
      assert.equal(sample(text, "cugar_ingest_executions_total", { result: "accepted" }), 1);
    } finally {
      client.close();
    }
  });

  it("is waited for the client's cap by a Recorder too, which then tries again", async () => {
    const client = new MetricsClient({
      target: server.target,
      apiKey: key,
      retry: { maxRetryDelayMs: 300, rateLimitRetries: 0 },
    });
    const recorder = new Recorder(client, { flushIntervalMs: 60_000, logger: { warn: () => undefined } });
    const before = await rateLimitedCount(server);
    try {
      recorder.record(execution(`${freshProfile()}-1`, "demo"));
      await recorder.flush(); // refused: the server asks for up to 60 s
      assert.equal(recorder.stats().failedSends, 1);
      // The recorder's own retry timer sends again after the 300 ms cap, not after 30 s.
      const deadline = performance.now() + 20_000;
      while (recorder.stats().failedSends < 2) {
        assert.ok(performance.now() < deadline, "no retry after the capped delay");
        await new Promise((done) => setTimeout(done, 20));
      }
      assert.equal(await recorder.close(100), 1);
      const sends = recorder.stats().failedSends;
      assert.ok(sends >= 2);
      assert.equal(await rateLimitedCount(server), (before ?? Number.NaN) + sends, "every send reached the server and was refused");
    } finally {
      client.close();
    }
  });

  it("is never waited past the call's deadline", async () => {
    const client = new MetricsClient({
      target: server.target,
      apiKey: key,
      timeoutMs: 2000,
      retry: { maxRetryDelayMs: 5000, rateLimitRetries: 3 },
    });
    const before = await rateLimitedCount(server);
    try {
      const error = await client.record(execution(`${freshProfile()}-1`, "demo")).then(
        () => assert.fail("must fail"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ConnectError && error.code === Code.ResourceExhausted, String(error));
      assert.equal(await rateLimitedCount(server), (before ?? Number.NaN) + 1, "a 5 s wait passes the 2 s deadline: no retry");
    } finally {
      client.close();
    }
  });
});
