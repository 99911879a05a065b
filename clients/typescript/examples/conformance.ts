// The cross-language conformance scenarios (clients/CONFORMANCE.md), run through
// @cugar-metrics/client.
//
//   node dist/examples/conformance.js --target HOST:PORT --profile P [--scenario NAME]
//     [--attempt-deadline S] [--retry-info-cap S] [--buffer-size N] [--close-timeout S]
//     [--api-key KEY]
//
// Scenarios: basic (the default), late-server, restart, retry-info-over-cap,
// short-deadline, two-replicas, overflow, models. Exits 0 when the scenario ran as specified (even
// when it is meant to drop), non-zero with a message naming the mismatch otherwise; the
// last line on stdout is one JSON object, the client's own account of the run.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  ApprovalDecision,
  ApprovalOperation,
  Code,
  ConnectError,
  type ExecutionInit,
  InvalidExecutionError,
  MetricsClient,
  type MetricsClientOptions,
  Outcome,
  Recorder,
  type RecorderOptions,
  ToolCallStatus,
  seconds,
  startRun,
  toSeconds,
} from "../src/index.js";

class Mismatch extends Error {}

function expect(step: string, what: string, got: unknown, want: unknown): void {
  if (got !== want) {
    throw new Mismatch(`step ${step}: ${what}: got ${String(got)}, want ${String(want)}`);
  }
  console.log(`ok   step ${step}: ${what} = ${String(want)}`);
}

async function scenario(client: MetricsClient, p: string): Promise<void> {
  // 1. A fully described execution is accepted.
  const a = {
    executionId: `${p}-a`,
    profile: p,
    outcome: Outcome.SUCCESS,
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
      { decision: ApprovalDecision.APPROVED, wait: seconds(30), operation: ApprovalOperation.EXECUTE },
    ],
  };
  expect("1", "RecordExecution A", await client.record(a), "accepted");

  // 2. The same execution again is a duplicate, counted once.
  expect("2", "RecordExecution A again", await client.record(a), "duplicate");

  // 3. An epoch timestamp sent as a duration is rejected on execution.duration.
  try {
    await client.record({
      executionId: `${p}-bad`,
      profile: p,
      outcome: Outcome.SUCCESS,
      duration: seconds(1_700_000_000),
    });
    throw new Mismatch("step 3: RecordExecution with an epoch duration succeeded; want INVALID_ARGUMENT");
  } catch (error) {
    if (!(error instanceof InvalidExecutionError)) throw error;
    const violation = error.violation("execution.duration");
    if (violation === undefined) {
      const fields = error.violations.map((v) => v.field).join(", ") || "none";
      throw new Mismatch(`step 3: no violation on execution.duration (violations: ${fields})`);
    }
    console.log(`field violation: ${violation.field}: ${violation.description}`);
    console.log("ok   step 3: INVALID_ARGUMENT with a violation on execution.duration");
  }

  // 4. A batch records its valid items and reports the invalid one.
  const batch = await client.recordBatch([
    {
      executionId: `${p}-b1`,
      profile: p,
      outcome: Outcome.FAILURE,
      errorType: "ToolError",
      duration: seconds(2),
      toolCalls: [
        { tool: "send_email", domain: "engagement", status: ToolCallStatus.SUCCESS, duration: seconds(0.3) },
      ],
    },
    { executionId: `${p}-b2`, profile: "", outcome: Outcome.SUCCESS, duration: seconds(1) },
    { executionId: `${p}-b3`, profile: p, outcome: Outcome.SUCCESS, duration: seconds(0.5) },
  ]);
  expect("4", "accepted", batch.acceptedCount, 2);
  expect("4", "duplicate", batch.duplicateCount, 0);
  expect("4", "rejected", batch.rejectedCount, 1);
  expect("4", "rejected items", batch.rejectedExecutions.length, 1);
  const rejected = batch.rejectedExecutions[0];
  expect("4", "rejected index", rejected?.index, 1);
  expect("4", "rejected execution_id", rejected?.executionId, `${p}-b2`);
  expect(
    "4",
    "violation on executions[1].profile",
    rejected?.fieldViolations.some((v) => v.field === "executions[1].profile"),
    true,
  );

  // 5. The dashboard of profile P counts what was recorded.
  const dashboard = await client.dashboard({ profile: p });
  const counts = dashboard.executions;
  expect("5", "executions total", counts?.total, 3n);
  expect("5", "executions succeeded", counts?.succeeded, 2n);
  expect("5", "executions failed", counts?.failed, 1n);
  const rate = dashboard.goldenSignals?.successRate;
  console.log(
    `dashboard: profile=${p} total=${counts?.total} succeeded=${counts?.succeeded} ` +
      `failed=${counts?.failed} success_rate=${rate === undefined ? "n/a" : rate.toFixed(3)} ` +
      `latency_mean=${toSeconds(dashboard.goldenSignals?.latencyMean).toFixed(3)}s ` +
      `replica=${dashboard.replica}`,
  );
}

interface Options {
  readonly target: string;
  readonly profile: string;
  readonly scenario: string;
  readonly attemptDeadline?: number;
  readonly retryInfoCap?: number;
  readonly bufferSize?: number;
  readonly closeTimeout?: number;
  readonly apiKey?: string;
}

/** The client's own account of a run: the program's last line. */
interface Account {
  scenario: string;
  recorded: number;
  delivered: number;
  dropped: number;
  rejected: number;
  rate_limited: number;
  waited_seconds: number;
}

function account(scenario: string, fields: Partial<Omit<Account, "scenario">> = {}): Account {
  return {
    scenario,
    recorded: 0,
    delivered: 0,
    dropped: 0,
    rejected: 0,
    rate_limited: 0,
    waited_seconds: 0,
    ...fields,
  };
}

/** Execution `<profile>-<n>`: every retry re-sends the same id. */
function numbered(profile: string, n: number, failed = false): ExecutionInit {
  return {
    executionId: `${profile}-${n}`,
    profile,
    outcome: failed ? Outcome.FAILURE : Outcome.SUCCESS,
    errorType: failed ? "ToolError" : "",
    duration: seconds(0.5),
    steps: 1,
  };
}

function client(options: Options): MetricsClient {
  const settings: MetricsClientOptions = {
    target: options.target,
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(options.attemptDeadline === undefined ? {} : { attemptTimeoutMs: options.attemptDeadline * 1000 }),
    ...(options.retryInfoCap === undefined ? {} : { retry: { maxRetryDelayMs: options.retryInfoCap * 1000 } }),
  };
  return new MetricsClient(settings);
}

/** Records `executions` through a Recorder (`paceMs` apart), closes it, and accounts for them. */
async function throughRecorder(
  options: Options,
  executions: readonly ExecutionInit[],
  { paceMs = 0, ready = false, logger }: { paceMs?: number; ready?: boolean; logger?: RecorderOptions["logger"] } = {},
): Promise<Account> {
  const direct = client(options);
  const recorder = new Recorder(direct, {
    ...(options.bufferSize === undefined ? {} : { maxBufferSize: options.bufferSize }),
    ...(options.closeTimeout === undefined ? {} : { closeTimeoutMs: options.closeTimeout * 1000 }),
    ...(logger === undefined ? {} : { logger }),
  });
  try {
    if (ready) console.log("ready");
    for (const execution of executions) {
      recorder.record(execution);
      if (paceMs > 0) await sleep(paceMs);
    }
    const dropped = await recorder.close();
    const stats = recorder.stats();
    if (stats.dropped !== dropped) {
      throw new Mismatch(`close() reported ${dropped} dropped, stats() ${stats.dropped}`);
    }
    return account(options.scenario, {
      recorded: executions.length,
      delivered: stats.accepted + stats.duplicate,
      dropped,
      rejected: stats.rejected,
    });
  } finally {
    direct.close();
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

const SCENARIOS: Record<string, (options: Options) => Promise<Account | undefined>> = {
  async basic(options) {
    const direct = client(options);
    try {
      await scenario(direct, options.profile);
    } finally {
      direct.close();
    }
    console.log("conformance: all steps passed");
    return account(options.scenario, { recorded: 6, delivered: 4, rejected: 2 });
  },

  "late-server": (options) =>
    throughRecorder(options, range(1, 11).map((n) => numbered(options.profile, n, n > 7))),

  restart: (options) =>
    throughRecorder(options, range(1, 40).map((n) => numbered(options.profile, n)), { paceMs: 50 }),

  "short-deadline": (options) =>
    throughRecorder(options, range(1, 20).map((n) => numbered(options.profile, n)), { ready: true }),

  async overflow(options) {
    const lines: string[] = [];
    const logger = { warn: (line: string) => (lines.push(line), console.error(line)) };
    const result = await throughRecorder(options, range(1, 8).map((n) => numbered(options.profile, n)), { logger });
    const closing = lines.filter((line) => line.includes("recorder closed"));
    const logged = Number(/recorder closed: (\d+) executions dropped/.exec(closing.at(-1) ?? "")?.[1]);
    if (logged !== result.dropped) {
      throw new Mismatch(`the log line says ${closing.at(-1) ?? "nothing"}, close() ${result.dropped} dropped`);
    }
    console.log(`log line: ${closing.at(-1)}`);
    return result;
  },

  async "retry-info-over-cap"(options) {
    const direct = client(options);
    try {
      expect("1", "first RecordExecution", await direct.record(numbered(options.profile, 1)), "accepted");
      const started = performance.now();
      try {
        const result = await direct.record(numbered(options.profile, 2));
        throw new Mismatch(`second RecordExecution answered ${result}, want the rate-limit error`);
      } catch (error) {
        if (!(error instanceof ConnectError) || error.code !== Code.ResourceExhausted) throw error;
        const waited = (performance.now() - started) / 1000;
        console.log(`second call: RESOURCE_EXHAUSTED after ${waited.toFixed(2)} s`);
        return account(options.scenario, { recorded: 2, delivered: 1, rate_limited: 1, waited_seconds: waited });
      }
    } finally {
      direct.close();
    }
  },

  async "two-replicas"(options) {
    const direct = client(options);
    let delivered = 0;
    try {
      for (const n of range(1, 20)) {
        expect(String(n), `RecordExecution ${n}`, await direct.record(numbered(options.profile, n)), "accepted");
        delivered += 1;
      }
    } finally {
      direct.close();
    }
    return account(options.scenario, { recorded: 20, delivered });
  },

  async models(options) {
    const p = options.profile;
    const direct = client(options);
    try {
      // <profile>-1: two successful chat calls.
      const run1 = startRun(p, { executionId: `${p}-1` });
      await run1.modelCall("openai", "gpt-4o", async (call) => {
        call.firstToken();
        call.usage({ inputTokens: 1200, outputTokens: 300, cachedInputTokens: 200, cost: 0.012 });
      });
      await run1.modelCall("openai", "gpt-4o-mini", async (call) => {
        call.firstToken();
        call.usage({ inputTokens: 100, outputTokens: 20 });
      });
      const first = run1.end();
      // <profile>-2: a rate-limited call, then its successful retry.
      const run2 = startRun(p, { executionId: `${p}-2` });
      run2.modelCall("anthropic", "claude-sonnet").rateLimited("RateLimitError");
      await run2.modelCall("anthropic", "claude-sonnet", async (call) => {
        call.firstToken();
        call.usage({ inputTokens: 800, outputTokens: 150, reasoningTokens: 40, cost: 0.009 });
      });
      const second = run2.end();
      // <profile>-3: embeddings, then a chat call that times out; the execution fails.
      const run3 = startRun(p, { executionId: `${p}-3` });
      await run3.modelCall(
        "openai",
        "gpt-4o",
        (call) => void call.usage({ inputTokens: 500, cost: 0.0001 }),
        { operation: "embeddings" },
      );
      class Timeout extends Error {
        override name = "Timeout";
      }
      try {
        await run3.modelCall("openai", "gpt-4o", (call) => {
          call.usage({ inputTokens: 50 });
          throw new Timeout("the model did not answer in time");
        });
        throw new Mismatch("the failing model call did not rethrow");
      } catch (error) {
        if (!(error instanceof Timeout)) throw error;
      }
      const third = run3.end("ModelError");
      for (const [i, execution] of [first, second, third].entries()) {
        for (const call of execution.modelCalls) {
          const ttft = call.timeToFirstToken === undefined ? 0 : toSeconds(call.timeToFirstToken);
          if (ttft > toSeconds(call.duration)) {
            throw new Mismatch(`${execution.executionId}: time to first token over the duration`);
          }
        }
        expect(String(i + 1), `RecordExecution ${execution.executionId}`, await direct.record(execution), "accepted");
      }
      expect("4", `RecordExecution ${p}-1 again`, await direct.record(first), "duplicate");
    } finally {
      direct.close();
    }
    return account(options.scenario, { recorded: 4, delivered: 4 });
  },
};

const USAGE =
  "usage: conformance --target HOST:PORT --profile P [--scenario NAME] [--attempt-deadline S] " +
  "[--retry-info-cap S] [--buffer-size N] [--close-timeout S] [--api-key KEY]";

function parseOptions(): Options | string {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        target: { type: "string" },
        profile: { type: "string" },
        scenario: { type: "string", default: "basic" },
        "attempt-deadline": { type: "string" },
        "retry-info-cap": { type: "string" },
        "buffer-size": { type: "string" },
        "close-timeout": { type: "string" },
        "api-key": { type: "string" },
      },
      strict: true,
    }));
  } catch (error) {
    return String(error);
  }
  if (!values.target || !values.profile) return "--target and --profile are required";
  const scenarioName = values.scenario ?? "basic";
  if (!(scenarioName in SCENARIOS)) {
    return `unknown scenario ${scenarioName} (one of ${Object.keys(SCENARIOS).join(", ")})`;
  }
  const number = (name: string, text: string | undefined, integer = false): number | undefined => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!(value > 0) || (integer && !Number.isInteger(value))) throw new RangeError(`--${name} ${text}`);
    return value;
  };
  try {
    const optional = {
      attemptDeadline: number("attempt-deadline", values["attempt-deadline"]),
      retryInfoCap: number("retry-info-cap", values["retry-info-cap"]),
      bufferSize: number("buffer-size", values["buffer-size"], true),
      closeTimeout: number("close-timeout", values["close-timeout"]),
      apiKey: values["api-key"],
    };
    return {
      target: values.target,
      profile: values.profile,
      scenario: scenarioName,
      ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
    };
  } catch (error) {
    return `invalid value: ${(error as Error).message}`;
  }
}

async function main(): Promise<number> {
  const options = parseOptions();
  if (typeof options === "string") {
    console.error(`${USAGE} (${options})`);
    return 2;
  }
  try {
    const result = await SCENARIOS[options.scenario]?.(options);
    if (result !== undefined) console.log(JSON.stringify(result));
    return 0;
  } catch (error) {
    console.error(`conformance FAILED: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = await main();
