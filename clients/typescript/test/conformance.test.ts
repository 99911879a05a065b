// The conformance program (examples/conformance.ts, compiled) against a fresh server, with
// the harness's server-side checks on /metrics.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type RunningServer, sample, startServer, unusedPort } from "./server.js";

const PROGRAM = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "conformance.js");
const run = promisify(execFile);

async function conformance(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [PROGRAM, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("conformance program", () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  it("passes every step and leaves exactly the expected counts on the server", async () => {
    const result = await conformance("--target", server.target, "--profile", "conf_ts");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^field violation: execution\.duration: \S.*$/m);
    assert.match(result.stdout, /^dashboard: profile=conf_ts total=3 succeeded=2 failed=1 /m);
    assert.match(result.stdout, /^conformance: all steps passed$/m);
    const last = result.stdout.trim().split("\n").at(-1) ?? "";
    assert.deepEqual(JSON.parse(last), {
      scenario: "basic", recorded: 6, delivered: 4, dropped: 0, rejected: 2, rate_limited: 0, waited_seconds: 0,
    });

    const text = await server.scrape();
    const executions = (outcome: string, errorType: string) =>
      sample(text, "cugar_executions_total", { profile: "conf_ts", outcome, error_type: errorType });
    assert.equal(executions("success", ""), 2);
    assert.equal(executions("failure", "ToolError"), 1);
    const toolCalls = (domain: string, tool: string, status: string) =>
      sample(text, "cugar_tool_calls_total", { domain, tool, status });
    assert.equal(toolCalls("territory", "search_accounts", "success"), 1);
    assert.equal(toolCalls("qualification", "score_lead", "error"), 1);
    assert.equal(toolCalls("engagement", "send_email", "success"), 1);
    const ingest = (result: string) => sample(text, "cugar_ingest_executions_total", { result });
    assert.deepEqual([ingest("accepted"), ingest("duplicate"), ingest("rejected")], [3, 1, 2]);
  });

  it("exits non-zero naming the step when the server's answer does not match", async () => {
    // The same profile again: A is now a duplicate, so step 1 fails.
    const result = await conformance("--target", server.target, "--profile", "conf_ts");
    assert.equal(result.code, 1);
    assert.match(result.stderr, /conformance FAILED: step 1: RecordExecution A: got duplicate, want accepted/);
  });

  it("exits 2 with a usage line when an argument is missing", async () => {
    const result = await conformance("--target", server.target);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^usage: conformance --target HOST:PORT --profile P/);
  });

  it("overflow: with no server, reports 8 dropped in its JSON line, as its stats and log line say", async () => {
    const result = await conformance(
      "--target", `127.0.0.1:${await unusedPort()}`, "--profile", "conf_overflow",
      "--scenario", "overflow", "--buffer-size", "5", "--close-timeout", "1",
    );
    assert.equal(result.code, 0, result.stderr);
    const last = result.stdout.trim().split("\n").at(-1) ?? "";
    assert.deepEqual(JSON.parse(last), {
      scenario: "overflow", recorded: 8, delivered: 0, dropped: 8, rejected: 0, rate_limited: 0, waited_seconds: 0,
    });
    assert.match(result.stdout, /^log line: cugar-metrics: recorder closed: 8 executions dropped \(buffer full 3, refused 0, undelivered at close 5\)$/m);
  });

  it("exits 2 naming the scenarios when one is unknown", async () => {
    const result = await conformance("--target", server.target, "--profile", "p", "--scenario", "nope");
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown scenario nope \(one of basic, late-server, restart, short-deadline, overflow, retry-info-over-cap, two-replicas, models\)/);
  });
});
