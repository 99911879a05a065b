// The cross-language conformance scenario, run through @cugar-metrics/client.
//
//   node dist/examples/conformance.js --target HOST:PORT --profile P
//
// Exits 0 when every step matches, non-zero with a message naming the mismatch otherwise.
import { parseArgs } from "node:util";
import {
  ApprovalDecision,
  ApprovalOperation,
  InvalidExecutionError,
  MetricsClient,
  Outcome,
  ToolCallStatus,
  seconds,
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

async function main(): Promise<number> {
  let target: string | undefined;
  let profile: string | undefined;
  try {
    ({
      values: { target, profile },
    } = parseArgs({
      options: { target: { type: "string" }, profile: { type: "string" } },
      strict: true,
    }));
  } catch (error) {
    console.error(`usage: conformance --target HOST:PORT --profile P (${String(error)})`);
    return 2;
  }
  if (!target || !profile) {
    console.error("usage: conformance --target HOST:PORT --profile P");
    return 2;
  }
  const client = new MetricsClient({ target });
  try {
    await scenario(client, profile);
    console.log("conformance: all steps passed");
    return 0;
  } catch (error) {
    console.error(`conformance FAILED: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    client.close();
  }
}

process.exitCode = await main();
