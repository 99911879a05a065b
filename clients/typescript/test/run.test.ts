// The timing helper: measured durations, unique ids, error types, and a real round trip.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import {
  ApprovalDecision,
  ApprovalOperation,
  MetricsClient,
  Outcome,
  ToolCallStatus,
  backoffMs,
  DEFAULT_RETRY,
  decodeBadRequest,
  errorTypeOf,
  millis,
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

class ToolError extends Error {}

describe("startRun", () => {
  it("measures the duration and tool calls with the monotonic clock", async () => {
    const clock = manualClock();
    const run = startRun("sales_rep", { clock: clock.now, executionId: "run-1", traceId: "trace-1" });
    clock.advance(100);
    const search = run.startToolCall("search_accounts", "territory");
    clock.advance(250);
    search.end();
    const scored = await run
      .timeToolCall("score_lead", "qualification", () => {
        clock.advance(40);
        throw new ToolError("model timed out");
      })
      .then(() => assert.fail("the tool's error is rethrown"), (e: unknown) => e);
    assert.ok(scored instanceof ToolError);
    run.skipToolCall("send_email", "engagement", "BudgetExhausted");
    run.addApproval({ decision: "approved", operation: "execute", waitMs: 30_000 });
    run.setBudget(2, 10);
    clock.advance(1110);
    const execution = run.end();

    assert.equal(execution.executionId, "run-1");
    assert.equal(execution.traceId, "trace-1");
    assert.equal(execution.profile, "sales_rep");
    assert.equal(execution.outcome, Outcome.SUCCESS);
    assert.equal(execution.errorType, "");
    assert.equal(toSeconds(execution.duration), 1.5);
    assert.equal(execution.steps, 3, "one step per tool call when step() is never called");
    assert.deepEqual(
      execution.toolCalls.map((c) => [c.tool, c.domain, c.status, toSeconds(c.duration), c.errorType]),
      [
        ["search_accounts", "territory", ToolCallStatus.SUCCESS, 0.25, ""],
        ["score_lead", "qualification", ToolCallStatus.ERROR, 0.04, "ToolError"],
        ["send_email", "engagement", ToolCallStatus.SKIPPED, 0, "BudgetExhausted"],
      ],
    );
    assert.deepEqual(
      execution.approvals.map((a) => [a.decision, a.operation, toSeconds(a.wait)]),
      [[ApprovalDecision.APPROVED, ApprovalOperation.EXECUTE, 30]],
    );
    assert.deepEqual([execution.budget?.spent, execution.budget?.limit, execution.budget?.exceeded], [2, 10, false]);
    assert.ok(execution.startTime !== undefined);
  });

  it("ends as a failure typed by the error", () => {
    const clock = manualClock();
    const run = startRun("demo", { clock: clock.now }).step(7);
    clock.advance(2000);
    const execution = run.end(new ToolError("boom"));
    assert.equal(execution.outcome, Outcome.FAILURE);
    assert.equal(execution.errorType, "ToolError");
    assert.equal(execution.steps, 7);
    assert.equal(toSeconds(execution.duration), 2);
    assert.throws(() => run.end(), /already ended/);
    assert.throws(() => run.step(), /already ended/);
  });

  it("gives every run its own UUID execution id", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => startRun("demo").executionId));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("measures real elapsed time with performance.now, not the wall clock", async () => {
    // The wall clock jumps an hour ahead while the run is open (an NTP step, a VM resume):
    // the duration must still be the interval a monotonic clock measured around it.
    const realNow = Date.now;
    const outer = performance.now();
    const run = startRun("demo");
    const wallAtStart = Date.now();
    let execution;
    try {
      Date.now = () => realNow() + 3_600_000;
      await new Promise((done) => setTimeout(done, 30));
      execution = run.end();
    } finally {
      Date.now = realNow;
    }
    const around = (performance.now() - outer) / 1000;
    const measured = toSeconds(execution.duration);
    assert.ok(measured > 0 && measured <= around, `duration ${measured} s within the ${around} s measured around the run`);
    assert.ok(Math.abs(Number(execution.startTime?.seconds) * 1000 - wallAtStart) < 1000, "startTime is the wall clock at the start");
  });
});

describe("errorTypeOf", () => {
  it("derives label-safe error types", () => {
    assert.equal(errorTypeOf(new ToolError("x")), "ToolError");
    assert.equal(errorTypeOf(new TypeError("x")), "TypeError");
    assert.equal(errorTypeOf(new Error("x")), "Error");
    assert.equal(errorTypeOf("timeout"), "timeout");
    assert.equal(errorTypeOf("rate limited!"), "rate_limited_");
    assert.equal(errorTypeOf("429"), "E429");
    assert.equal(errorTypeOf(42), "Error");
    assert.equal(errorTypeOf("x".repeat(100)), "x".repeat(64));
    assert.equal(errorTypeOf(`a${"é".repeat(80)}`).length, 64);
  });
});

describe("durations", () => {
  it("rounds measured milliseconds to whole nanoseconds", () => {
    const d = millis(123.4567891);
    assert.equal(d.seconds, 0n);
    assert.equal(d.nanos, 123_456_789);
    const epoch = seconds(1_700_000_000);
    assert.equal(epoch.seconds, 1_700_000_000n);
    assert.equal(epoch.nanos, 0);
    assert.deepEqual([seconds(1.5).seconds, seconds(1.5).nanos], [1n, 500_000_000]);
    assert.deepEqual([millis(999.9999999).seconds, millis(999.9999999).nanos], [1n, 0]);
    assert.throws(() => seconds(Number.NaN), RangeError);
  });
});

describe("backoff", () => {
  it("grows exponentially up to the cap, with full jitter", () => {
    const top = () => 0.999999;
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => Math.round(backoffMs(DEFAULT_RETRY, n, top))),
      [100, 200, 400, 800, 1600, 2000],
    );
    assert.equal(backoffMs(DEFAULT_RETRY, 3, () => 0), 0);
    assert.equal(backoffMs(DEFAULT_RETRY, 3, () => 0.5), 200);
  });
});

describe("decodeBadRequest", () => {
  it("reads field violations and skips unknown fields", () => {
    // BadRequest{field_violations: [{field: "a.b", description: "d", reason: "R", localized_message: {}}]}
    const violation = [0x0a, 3, ...Buffer.from("a.b"), 0x12, 1, 0x64, 0x1a, 1, 0x52, 0x22, 0];
    const bytes = Uint8Array.from([0x0a, violation.length, ...violation, 0x10, 7]);
    assert.deepEqual(decodeBadRequest(bytes), [{ field: "a.b", description: "d", reason: "R" }]);
    assert.throws(() => decodeBadRequest(Uint8Array.from([0x0a, 9, 1])));
  });
});

describe("a timed run recorded by the real server", () => {
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

  it("is accepted and shows in the dashboard's tool rows", async () => {
    const profile = freshProfile();
    const clock = manualClock();
    const run = startRun(profile, { clock: clock.now });
    const call = run.startToolCall("lookup_kb", "knowledge");
    clock.advance(300);
    call.end();
    run.addToolCall({ tool: "lookup_kb", domain: "knowledge", status: "error", durationMs: 20, errorType: "NotFound" });
    clock.advance(700);
    assert.equal(await client.record(run.end()), "accepted");

    const dashboard = await client.dashboard({ profile, domain: "knowledge" });
    assert.equal(dashboard.executions?.total, 1n);
    assert.equal(dashboard.executions?.succeeded, 1n);
    assert.equal(toSeconds(dashboard.goldenSignals?.latencyMean), 1);
    assert.equal(dashboard.executions?.totalSteps, 2n);
    const row = dashboard.tools.find((t) => t.domain === "knowledge" && t.tool === "lookup_kb");
    assert.ok(row, "a lookup_kb row");
    assert.equal(row.calls, 2n);
    assert.equal(row.errors, 1n);
    assert.equal(row.skipped, 0n);
  });
});
