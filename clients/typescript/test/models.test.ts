// The model-call helper: measured durations and time to first token, usage, statuses, and
// the real server's dashboard rows and validation errors.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import {
  InvalidExecutionError,
  MetricsClient,
  ModelCallStatus,
  ModelOperation,
  Outcome,
  seconds,
  startRun,
  toSeconds,
} from "../src/index.js";
import { type RunningServer, freshProfile, startServer } from "./server.js";

/** A clock the test moves by hand, in milliseconds. */
function manualClock(start = 1000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

class RateLimitError extends Error {
  override name = "RateLimitError";
}
class Timeout extends Error {
  override name = "Timeout";
}

describe("run.modelCall", () => {
  it("times the call and its first token with the run's monotonic clock", () => {
    const clock = manualClock();
    const run = startRun("demo", { clock: clock.now });
    const call = run.modelCall("openai", "gpt-4o");
    clock.advance(120);
    call.firstToken();
    clock.advance(30);
    call.firstToken(); // the first mark counts
    clock.advance(850);
    call.usage({ inputTokens: 1200, outputTokens: 300, cachedInputTokens: 200, cost: 0.012 });
    call.usage({ responseModel: "gpt-4o-2024-08-06" });
    call.end();
    assert.throws(() => call.end(), /already ended/);
    const [recorded] = run.end().modelCalls;
    assert.ok(recorded);
    assert.equal(recorded.provider, "openai");
    assert.equal(recorded.model, "gpt-4o");
    assert.equal(recorded.responseModel, "gpt-4o-2024-08-06");
    assert.equal(recorded.operation, ModelOperation.CHAT, "the operation defaults to chat");
    assert.equal(recorded.status, ModelCallStatus.SUCCESS);
    assert.equal(recorded.errorType, "");
    assert.equal(toSeconds(recorded.duration), 1);
    assert.equal(toSeconds(recorded.timeToFirstToken), 0.12);
    assert.equal(recorded.inputTokens, 1200n);
    assert.equal(recorded.outputTokens, 300n);
    assert.equal(recorded.cachedInputTokens, 200n);
    assert.equal(recorded.reasoningTokens, undefined, "unreported stays unset");
    assert.equal(recorded.cost, 0.012);
  });

  it("wraps a function: an error thrown inside marks the call as an error and is rethrown", async () => {
    const clock = manualClock();
    const run = startRun("demo", { clock: clock.now });
    const answer = await run.modelCall(
      "openai",
      "text-embedding-3",
      (call) => {
        clock.advance(40);
        call.usage({ inputTokens: 500, cost: 0.0001 });
        return "vector";
      },
      { operation: "embeddings" },
    );
    assert.equal(answer, "vector");
    const thrown = await run
      .modelCall("openai", "gpt-4o", async (call) => {
        call.usage({ inputTokens: 50 });
        clock.advance(2000);
        throw new Timeout("no answer");
      })
      .then(() => assert.fail("the error is rethrown"), (e: unknown) => e);
    assert.ok(thrown instanceof Timeout);
    const calls = run.end().modelCalls;
    assert.deepEqual(
      calls.map((c) => [c.model, c.operation, c.status, c.errorType, toSeconds(c.duration), c.inputTokens, c.cost]),
      [
        ["text-embedding-3", ModelOperation.EMBEDDINGS, ModelCallStatus.SUCCESS, "", 0.04, 500n, 0.0001],
        ["gpt-4o", ModelOperation.CHAT, ModelCallStatus.ERROR, "Timeout", 2, 50n, undefined],
      ],
    );
    assert.equal(calls[1]?.timeToFirstToken, undefined, "no first token, no TTFT");
  });

  it("ends rate-limited, inside a wrapped function too, without being overwritten by the rethrow", async () => {
    const clock = manualClock();
    const run = startRun("demo", { clock: clock.now });
    const direct = run.modelCall("anthropic", "claude-sonnet");
    clock.advance(15);
    direct.rateLimited();
    await run
      .modelCall("anthropic", "claude-sonnet", (call) => {
        clock.advance(5);
        call.rateLimited("http_429");
        throw new RateLimitError("429");
      })
      .catch((e: unknown) => assert.ok(e instanceof RateLimitError));
    const calls = run.end().modelCalls;
    assert.deepEqual(
      calls.map((c) => [c.status, c.errorType, toSeconds(c.duration)]),
      [
        [ModelCallStatus.RATE_LIMITED, "RateLimitError", 0.015],
        [ModelCallStatus.RATE_LIMITED, "http_429", 0.005],
      ],
    );
  });

  it("adds model calls measured elsewhere, and refuses them once the run ended", () => {
    const run = startRun("demo");
    run.addModelCall({
      provider: "openai",
      model: "gpt-4o-mini",
      durationMs: 800,
      timeToFirstTokenMs: 200,
      inputTokens: 100,
      outputTokens: 20,
      reasoningTokens: 5,
    });
    run.addModelCall({ provider: "openai", model: "gpt-4o", status: "error", errorType: "Timeout", durationMs: 30_000 });
    const execution = run.end();
    assert.deepEqual(
      execution.modelCalls.map((c) => [c.model, c.status, toSeconds(c.duration), toSeconds(c.timeToFirstToken), c.reasoningTokens]),
      [
        ["gpt-4o-mini", ModelCallStatus.SUCCESS, 0.8, 0.2, 5n],
        ["gpt-4o", ModelCallStatus.ERROR, 30, 0, undefined],
      ],
    );
    assert.throws(() => run.modelCall("openai", "gpt-4o"), /already ended/);
    assert.throws(() => run.addModelCall({ provider: "openai", model: "gpt-4o", durationMs: 1 }), /already ended/);
  });

  it("measures real elapsed time with performance.now, not the wall clock", async () => {
    const realNow = Date.now;
    const run = startRun("demo");
    const outer = performance.now();
    const call = run.modelCall("openai", "gpt-4o");
    try {
      Date.now = () => realNow() + 3_600_000;
      await new Promise((done) => setTimeout(done, 20));
      call.firstToken();
      await new Promise((done) => setTimeout(done, 20));
      call.end();
    } finally {
      Date.now = realNow;
    }
    const around = (performance.now() - outer) / 1000;
    const [recorded] = run.end().modelCalls;
    const duration = toSeconds(recorded?.duration);
    const ttft = toSeconds(recorded?.timeToFirstToken);
    assert.ok(duration > 0 && duration <= around, `duration ${duration} s within the ${around} s around the call`);
    assert.ok(ttft > 0 && ttft <= duration, `time to first token ${ttft} s within the duration ${duration} s`);
  });
});

describe("model calls recorded by the real server", () => {
  let server: RunningServer;
  let client: MetricsClient;

  before(async () => {
    server = await startServer();
    client = new MetricsClient({ target: server.target });
  });

  after(async () => {
    client.close();
    assert.equal(await server.stop(), 0);
  });

  it("shows the helper's exact tokens, cost and statuses in the dashboard's model rows", async () => {
    // The first test on this server: the model rows hold only what it records.
    const profile = freshProfile();
    const clock = manualClock();
    const run = startRun(profile, { clock: clock.now });
    await run.modelCall("openai", "gpt-4o", (call) => {
      clock.advance(300);
      call.firstToken();
      clock.advance(900);
      call.usage({ inputTokens: 1200, outputTokens: 300, cachedInputTokens: 200, cost: 0.012 });
    });
    await run
      .modelCall("openai", "gpt-4o", (call) => {
        clock.advance(100);
        call.usage({ inputTokens: 50 });
        throw new Timeout("no answer");
      })
      .catch(() => undefined);
    run.modelCall("anthropic", "claude-sonnet").rateLimited();
    await run.modelCall("anthropic", "claude-sonnet", (call) => {
      clock.advance(500);
      call.firstToken();
      clock.advance(500);
      call.usage({ inputTokens: 800, outputTokens: 150, reasoningTokens: 40, cost: 0.009 });
    });
    const execution = run.end();
    for (const call of execution.modelCalls) {
      assert.ok(toSeconds(call.timeToFirstToken) <= toSeconds(call.duration), "TTFT within the duration");
    }
    assert.equal(await client.record(execution), "accepted");

    const dashboard = await client.dashboard({ profile });
    const rows = new Map(dashboard.models.map((m) => [`${m.provider}/${m.model}`, m]));
    assert.deepEqual([...rows.keys()].sort(), ["anthropic/claude-sonnet", "openai/gpt-4o"]);
    const gpt = rows.get("openai/gpt-4o");
    assert.ok(gpt);
    assert.deepEqual(
      [gpt.calls, gpt.errors, gpt.rateLimited, gpt.inputTokens, gpt.outputTokens, gpt.cachedInputTokens, gpt.reasoningTokens],
      [2n, 1n, 0n, 1250n, 300n, 200n, 0n],
    );
    assert.ok(Math.abs(gpt.cost - 0.012) < 1e-12, `cost ${gpt.cost}`);
    assert.ok(Math.abs(toSeconds(gpt.timeToFirstTokenP95) - 0.3) <= 0.003, "TTFT p95 within 1 % of 0.3 s");
    const claude = rows.get("anthropic/claude-sonnet");
    assert.ok(claude);
    assert.deepEqual(
      [claude.calls, claude.errors, claude.rateLimited, claude.inputTokens, claude.outputTokens, claude.reasoningTokens],
      [2n, 0n, 1n, 800n, 150n, 40n],
    );
    assert.ok(Math.abs(claude.cost - 0.009) < 1e-12, `cost ${claude.cost}`);
  });

  it("records model calls built directly on an execution, without the timer", async () => {
    const profile = freshProfile();
    const outcome = await client.record({
      executionId: `${profile}-direct`,
      profile,
      outcome: Outcome.SUCCESS,
      duration: seconds(2),
      modelCalls: [
        {
          provider: "openai",
          model: "gpt-4o-mini",
          operation: ModelOperation.CHAT,
          status: ModelCallStatus.SUCCESS,
          duration: seconds(1.5),
          inputTokens: 100n,
          outputTokens: 20n,
          cost: 0.0003,
        },
      ],
    });
    assert.equal(outcome, "accepted");
    // Model rows are per provider and model across profiles: this model is this test's alone.
    const row = (await client.dashboard({ profile })).models.find((m) => m.model === "gpt-4o-mini");
    assert.ok(row);
    assert.deepEqual([row.model, row.calls, row.inputTokens, row.outputTokens], ["gpt-4o-mini", 1n, 100n, 20n]);
    assert.ok(Math.abs(row.cost - 0.0003) < 1e-12);
  });

  it("rejects an invalid model call with its field path", async () => {
    const profile = freshProfile();
    const error = await client
      .record({
        executionId: `${profile}-bad`,
        profile,
        outcome: Outcome.SUCCESS,
        duration: seconds(2),
        modelCalls: [
          { provider: "openai", model: "gpt-4o", operation: ModelOperation.CHAT, status: ModelCallStatus.SUCCESS, duration: seconds(1) },
          {
            provider: "openai",
            model: "gpt-4o",
            operation: ModelOperation.CHAT,
            status: ModelCallStatus.SUCCESS,
            duration: seconds(1),
            timeToFirstToken: seconds(2),
            inputTokens: 10n,
            cachedInputTokens: 11n,
          },
        ],
      })
      .then(() => assert.fail("must be rejected"), (e: unknown) => e);
    assert.ok(error instanceof InvalidExecutionError, `got ${String(error)}`);
    assert.deepEqual(
      error.violations.map((v) => v.field).sort(),
      ["execution.model_calls[1].cached_input_tokens", "execution.model_calls[1].time_to_first_token"],
    );
    assert.equal(error.violation("execution.model_calls[1].time_to_first_token")?.reason, "INCONSISTENT");
    assert.equal((await client.dashboard({ profile })).executions?.total, 0n, "nothing recorded");
  });
});
