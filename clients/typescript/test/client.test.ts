// MetricsClient against the real server process: results, errors, retries, deadlines.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Interceptor } from "@connectrpc/connect";
import {
  ApprovalDecision,
  ApprovalOperation,
  Code,
  ConnectError,
  type Execution,
  type ExecutionInit,
  InvalidArgumentError,
  InvalidExecutionError,
  MetricsClient,
  Outcome,
  RecordResult,
  ToolCallStatus,
  seconds,
  toSeconds,
} from "../src/index.js";
import { type RunningServer, freshProfile, sample, startServer, unusedPort } from "./server.js";

type ExecutionFields = Partial<Exclude<ExecutionInit, Execution>>;

function execution(id: string, profile: string, fields: ExecutionFields = {}): ExecutionInit {
  return { executionId: id, profile, outcome: Outcome.SUCCESS, duration: seconds(1), ...fields };
}

/** Counts attempts per RPC method name and optionally fails the first ones with UNAVAILABLE. */
function attempts(failFirst = 0): { interceptor: Interceptor; count: Map<string, number>; headers: Headers[] } {
  const count = new Map<string, number>();
  const headers: Headers[] = [];
  let failures = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    count.set(req.method.name, (count.get(req.method.name) ?? 0) + 1);
    headers.push(new Headers(req.header));
    if (failures < failFirst) {
      failures += 1;
      throw new ConnectError("injected: server starting", Code.Unavailable);
    }
    return next(req);
  };
  return { interceptor, count, headers };
}

describe("MetricsClient", () => {
  let server: RunningServer;
  let client: MetricsClient;

  before(async () => {
    server = await startServer();
    client = new MetricsClient({ target: server.target });
  });

  after(async () => {
    client.close();
    assert.equal(await server.stop(), 0, "the server drains and exits 0 on SIGTERM");
  });

  it("records an execution once: accepted, then duplicate, counted once", async () => {
    const profile = freshProfile();
    const a = execution(`${profile}-a`, profile, {
      duration: seconds(1.5),
      steps: 3,
      budget: { spent: 2, limit: 10 },
      toolCalls: [
        { tool: "search_accounts", domain: "territory", status: ToolCallStatus.SUCCESS, duration: seconds(0.2) },
        {
          tool: "score_lead",
          domain: "qualification",
          status: ToolCallStatus.ERROR,
          duration: seconds(0.1),
          errorType: "timeout",
        },
      ],
      approvals: [
        { decision: ApprovalDecision.APPROVED, operation: ApprovalOperation.EXECUTE, wait: seconds(30) },
      ],
    });
    assert.equal(await client.record(a), "accepted");
    assert.equal(await client.record(a), "duplicate");

    const dashboard = await client.dashboard({ profile });
    assert.equal(dashboard.executions?.total, 1n);
    assert.equal(dashboard.executions?.succeeded, 1n);
    assert.equal(dashboard.executions?.failed, 0n);
    assert.equal(dashboard.executions?.totalSteps, 3n);
    assert.equal(dashboard.budget?.spent, 2);
    assert.equal(dashboard.approvals?.total, 1n);
    assert.equal(toSeconds(dashboard.goldenSignals?.latencyMean), 1.5);
  });

  it("reports an epoch timestamp sent as a duration as a violation on execution.duration", async () => {
    const profile = freshProfile();
    const error = await client
      .record(execution(`${profile}-bad`, profile, { duration: seconds(1_700_000_000) }))
      .then(() => assert.fail("an epoch duration must be rejected"), (e: unknown) => e);
    assert.ok(error instanceof InvalidExecutionError, `got ${String(error)}`);
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.deepEqual(
      error.violations.map((v) => v.field),
      ["execution.duration"],
    );
    assert.equal(error.violation("execution.duration")?.reason, "OUT_OF_RANGE");
    assert.ok(error.violation("execution.duration")?.description);
    assert.ok(error.cause instanceof ConnectError);
    assert.equal((await client.dashboard({ profile })).executions?.total, 0n, "nothing recorded");
  });

  it("lists every violation of an invalid execution with its path", async () => {
    const error = await client
      .record({
        executionId: "has space",
        profile: "",
        outcome: Outcome.UNSPECIFIED,
        toolCalls: [{ tool: "t", domain: "", status: ToolCallStatus.SUCCESS, duration: seconds(0.1) }],
      })
      .then(() => assert.fail("must be rejected"), (e: unknown) => e);
    assert.ok(error instanceof InvalidExecutionError);
    assert.deepEqual(
      error.violations.map((v) => v.field).sort(),
      [
        "execution.duration",
        "execution.execution_id",
        "execution.outcome",
        "execution.profile",
        "execution.tool_calls[0].domain",
      ],
    );
    assert.equal(error.violation("execution.profile")?.reason, "REQUIRED");
    assert.equal(error.violation("execution.duration")?.reason, "REQUIRED");
    for (const v of error.violations) assert.match(v.reason, /^[A-Z][A-Z_]*$/);
  });

  it("records a batch item by item and reports rejected items with their index", async () => {
    const profile = freshProfile();
    const before = (await client.dashboard()).ingest;
    const response = await client.recordBatch([
      execution(`${profile}-b1`, profile, { outcome: Outcome.FAILURE, errorType: "ToolError", duration: seconds(2) }),
      execution(`${profile}-b2`, ""),
      execution(`${profile}-b3`, profile, { duration: seconds(0.5) }),
      execution(`${profile}-b1`, profile, { outcome: Outcome.FAILURE, errorType: "ToolError", duration: seconds(2) }),
    ]);
    assert.equal(response.acceptedCount, 2);
    assert.equal(response.duplicateCount, 1);
    assert.equal(response.rejectedCount, 1);
    assert.deepEqual(response.results, [
      RecordResult.ACCEPTED,
      RecordResult.REJECTED,
      RecordResult.ACCEPTED,
      RecordResult.DUPLICATE,
    ]);
    assert.equal(response.rejectedExecutions.length, 1);
    assert.equal(response.rejectedExecutions[0]?.index, 1);
    assert.equal(response.rejectedExecutions[0]?.executionId, `${profile}-b2`);
    assert.deepEqual(
      response.rejectedExecutions[0]?.fieldViolations.map((v) => [v.field, v.reason]),
      [["executions[1].profile", "REQUIRED"]],
    );

    const dashboard = await client.dashboard({ profile });
    assert.equal(dashboard.executions?.total, 2n);
    assert.equal(dashboard.executions?.failed, 1n);
    assert.deepEqual(
      dashboard.errorTypes.map((e) => [e.errorType, e.count]),
      [["ToolError", 1n]],
    );
    const ingest = dashboard.ingest;
    assert.equal((ingest?.accepted ?? 0n) - (before?.accepted ?? 0n), 2n);
    assert.equal((ingest?.duplicate ?? 0n) - (before?.duplicate ?? 0n), 1n);
    assert.equal((ingest?.rejected ?? 0n) - (before?.rejected ?? 0n), 1n);
  });

  it("rejects a batch over 1000 executions as a whole", async () => {
    const profile = freshProfile();
    const batch = Array.from({ length: 1001 }, (_, i) => execution(`${profile}-${i}`, profile));
    const error = await client.recordBatch(batch).then(
      () => assert.fail("must be rejected"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof InvalidExecutionError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal((await client.dashboard({ profile })).executions?.total, 0n);
  });

  it("reports an invalid dashboard filter as InvalidArgumentError on its field", async () => {
    const error = await client.dashboard({ profile: "1-not-a-name" }).then(
      () => assert.fail("must be rejected"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof InvalidArgumentError);
    assert.ok(!(error instanceof InvalidExecutionError));
    assert.deepEqual(error.violations.map((v) => v.field), ["profile"]);
  });

  it("agrees with /metrics on what it recorded", async () => {
    const profile = freshProfile();
    await client.record(execution(`${profile}-m1`, profile));
    await client.record(execution(`${profile}-m2`, profile, { outcome: Outcome.FAILURE, errorType: "Boom" }));
    const text = await server.scrape();
    assert.equal(
      sample(text, "cugar_executions_total", { profile, outcome: "success", error_type: "" }),
      1,
    );
    assert.equal(
      sample(text, "cugar_executions_total", { profile, outcome: "failure", error_type: "Boom" }),
      1,
    );
  });

  it("retries UNAVAILABLE with backoff until the call goes through", async () => {
    const spy = attempts(2);
    const retrying = new MetricsClient({
      target: server.target,
      retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 },
      interceptors: [spy.interceptor],
    });
    try {
      const profile = freshProfile();
      assert.equal(await retrying.record(execution(`${profile}-r`, profile)), "accepted");
      assert.equal(spy.count.get("RecordExecution"), 3);
      assert.equal((await client.dashboard({ profile })).executions?.total, 1n);
    } finally {
      retrying.close();
    }
  });

  it("gives up after maxAttempts when the server is unreachable", async () => {
    const spy = attempts();
    const unreachable = new MetricsClient({
      target: `127.0.0.1:${await unusedPort()}`,
      retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 },
      interceptors: [spy.interceptor],
    });
    try {
      const error = await unreachable.record(execution("x-1", "demo")).then(
        () => assert.fail("must fail"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.Unavailable);
      assert.equal(spy.count.get("RecordExecution"), 3);
    } finally {
      unreachable.close();
    }
  });

  it("never retries an invalid execution", async () => {
    const spy = attempts();
    const retrying = new MetricsClient({
      target: server.target,
      retry: { maxAttempts: 5, initialBackoffMs: 5 },
      interceptors: [spy.interceptor],
    });
    try {
      await assert.rejects(retrying.record(execution("y-1", "")), InvalidExecutionError);
      assert.equal(spy.count.get("RecordExecution"), 1);
    } finally {
      retrying.close();
    }
  });

  it("sends the attempt deadline on every call and a per-call override when given", async () => {
    const spy = attempts();
    const timed = new MetricsClient({
      target: server.target,
      timeoutMs: 60_000,
      attemptTimeoutMs: 2500,
      interceptors: [spy.interceptor],
    });
    try {
      const profile = freshProfile();
      await timed.record(execution(`${profile}-t1`, profile));
      await timed.record(execution(`${profile}-t2`, profile), { attemptTimeoutMs: 1234 });
      await timed.dashboard({ profile });
      assert.deepEqual(
        spy.headers.map((h) => h.get("grpc-timeout")),
        ["2500m", "1234m", "2500m"],
      );
    } finally {
      timed.close();
    }
  });

  it("bounds the whole call, retries included, by its deadline", async () => {
    // Every attempt fails with UNAVAILABLE; 100 attempts would be allowed, but the 800 ms
    // call deadline ends the retries long before, and no attempt may outlive it.
    const spy = attempts(Number.MAX_SAFE_INTEGER);
    const bounded = new MetricsClient({
      target: server.target,
      timeoutMs: 800,
      attemptTimeoutMs: 5000,
      retry: { maxAttempts: 100, initialBackoffMs: 100, maxBackoffMs: 100 },
      interceptors: [spy.interceptor],
    });
    try {
      const error = await bounded.record(execution("deadline-1", "demo")).then(
        () => assert.fail("must fail"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ConnectError && error.code === Code.Unavailable, String(error));
      const made = spy.count.get("RecordExecution") ?? 0;
      assert.ok(made >= 2 && made < 100, `${made} attempts: the call deadline stopped the retries`);
      const timeouts = spy.headers.map((h) => Number(/^(\d+)m$/.exec(h.get("grpc-timeout") ?? "")?.[1]));
      assert.ok(timeouts.every((t) => t > 0 && t <= 800), `attempt deadlines ${timeouts.join(", ")} within the call's`);
      assert.ok((timeouts.at(-1) as number) < (timeouts[0] as number), "later attempts get what is left");
    } finally {
      bounded.close();
    }
  });
});
