// A small agent loop that reports its executions to cugar-metrics.
//
//   node dist/examples/basic.js [--target HOST:PORT]   (default 127.0.0.1:50051)
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { MetricsClient, Recorder, toSeconds } from "../src/index.js";

class ToolError extends Error {}

async function searchAccounts(): Promise<string[]> {
  await sleep(20);
  return ["acme", "globex"];
}

async function scoreLead(account: string): Promise<number> {
  await sleep(10);
  if (account === "globex") throw new ToolError("scoring model unavailable");
  return 0.8;
}

const { values } = parseArgs({ options: { target: { type: "string", default: "127.0.0.1:50051" } } });
const client = new MetricsClient({ target: values.target ?? "127.0.0.1:50051" });
// Executions are queued and sent in the background; recording never blocks the agent.
const recorder = new Recorder(client, { onError: (e) => console.warn(`metrics: ${String(e)}`) });

for (let i = 0; i < 3; i++) {
  const run = recorder.startRun("sales_rep");
  try {
    const accounts = await run.timeToolCall("search_accounts", "territory", searchAccounts);
    for (const account of accounts.slice(0, i + 1)) {
      await run.timeToolCall("score_lead", "qualification", () => scoreLead(account));
    }
    run.addApproval({ decision: "approved", operation: "execute", waitMs: 1200 });
    run.setBudget(2 + i, 10);
    run.end(); // success
  } catch (error) {
    run.end(error); // failure, error_type "ToolError"
  }
}

await recorder.close(); // sends what is left
console.log("recorder:", recorder.stats());
const dashboard = await client.dashboard({ profile: "sales_rep" });
console.log(
  `sales_rep: ${dashboard.executions?.total} executions, ` +
    `success rate ${dashboard.goldenSignals?.successRate?.toFixed(2) ?? "n/a"}, ` +
    `mean latency ${toSeconds(dashboard.goldenSignals?.latencyMean).toFixed(3)} s`,
);
client.close();
