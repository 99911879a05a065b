// round_robin: calls spread over every address a name resolves to (a headless Service),
// one HTTP/2 connection per address, failed addresses skipped. Against real servers on
// 127.0.0.2 and 127.0.0.3 behind cugar-replicas.test (an /etc/hosts entry that
// scripts/install-tools.sh adds).
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { MetricsClient, MetricsService, Outcome, seconds } from "../src/index.js";
import { RoundRobinTransport } from "../src/balancer.js";
import { type RunningServer, freshProfile, sample, startServer } from "./server.js";

const NAME = "cugar-replicas.test";
const ADDRESSES = ["127.0.0.2", "127.0.0.3"];

function execution(id: string, profile: string) {
  return { executionId: id, profile, outcome: Outcome.SUCCESS, duration: seconds(1) };
}

async function accepted(server: RunningServer): Promise<number> {
  return sample(await server.scrape(), "cugar_ingest_executions_total", { result: "accepted" }) ?? Number.NaN;
}

describe("round robin over the addresses of one name", () => {
  const replicas: RunningServer[] = [];

  before(async () => {
    const resolved = (await lookup(NAME, { all: true }).catch(() => [])).map((a) => a.address);
    assert.ok(
      ADDRESSES.every((a) => resolved.includes(a)),
      `${NAME} resolves to [${resolved.join(", ")}], not to both ${ADDRESSES.join(" and ")}: run scripts/install-tools.sh as root (it adds the /etc/hosts entries)`,
    );
    const first = await startServer({ host: ADDRESSES[0] as string });
    replicas.push(first, await startServer({ host: ADDRESSES[1] as string, grpcPort: first.grpcPort }));
  });

  after(async () => {
    for (const replica of replicas) assert.equal(await replica.stop(), 0);
  });

  it("spreads the calls of one client over every replica", async () => {
    const port = replicas[0]?.grpcPort as number;
    const before = await Promise.all(replicas.map(accepted));
    const authorities: string[] = [];
    const spy: Interceptor = (next) => async (req) => {
      authorities.push(new URL(req.url).host);
      return next(req);
    };
    const client = new MetricsClient({ target: `${NAME}:${port}`, interceptors: [spy] });
    const profile = freshProfile();
    try {
      for (let i = 1; i <= 20; i++) assert.equal(await client.record(execution(`${profile}-${i}`, profile)), "accepted");
    } finally {
      client.close();
    }
    const after = await Promise.all(replicas.map(accepted));
    const delta = after.map((n, i) => n - (before[i] as number));
    assert.deepEqual(delta, [10, 10], `accepted per replica: ${delta.join(", ")}`);
    assert.ok(authorities.every((a) => a === `${NAME}:${port}`), "requests name the target, not an address");
  });

  it("skips an address whose connection fails, within the same call", async () => {
    const port = replicas[0]?.grpcPort as number;
    // 127.0.0.4: nothing listens there. Each call that meets it goes on to the next address.
    const transport = new RoundRobinTransport({
      baseUrl: `http://${NAME}:${port}`,
      resolve: async () => ["127.0.0.4", ...ADDRESSES],
    });
    const rpc = createClient(MetricsService, transport);
    const profile = freshProfile();
    const before = await Promise.all(replicas.map(accepted));
    try {
      for (let i = 1; i <= 9; i++) {
        await rpc.recordExecution({ execution: execution(`${profile}-${i}`, profile) }, { timeoutMs: 5000 });
      }
      assert.deepEqual(transport.addresses(), ["127.0.0.4", ...ADDRESSES]);
    } finally {
      transport.close();
    }
    const after = await Promise.all(replicas.map(accepted));
    const delta = after.map((n, i) => n - (before[i] as number));
    assert.equal(delta[0]! + delta[1]!, 9, `accepted per replica: ${delta.join(", ")}`);
    assert.ok(delta[0]! >= 1 && delta[1]! >= 1, `accepted per replica: ${delta.join(", ")}`);
  });

  it("resolves the name again and follows its new addresses", async () => {
    const port = replicas[0]?.grpcPort as number;
    let answer = [ADDRESSES[0] as string];
    const transport = new RoundRobinTransport({
      baseUrl: `http://${NAME}:${port}`,
      resolve: async () => answer,
      resolveIntervalMs: 0,
    });
    const rpc = createClient(MetricsService, transport);
    const profile = freshProfile();
    try {
      await rpc.recordExecution({ execution: execution(`${profile}-1`, profile) });
      assert.deepEqual(transport.addresses(), [ADDRESSES[0]]);
      answer = [ADDRESSES[1] as string];
      const before = await accepted(replicas[1] as RunningServer);
      // The answer is read in the background: a call or two later every call goes to the new one.
      for (let i = 2; transport.addresses()[0] !== ADDRESSES[1]; i++) {
        await rpc.recordExecution({ execution: execution(`${profile}-${i}`, profile) });
      }
      await rpc.recordExecution({ execution: execution(`${profile}-last`, profile) });
      assert.deepEqual(transport.addresses(), [ADDRESSES[1]]);
      assert.ok((await accepted(replicas[1] as RunningServer)) > before, "the new address got the last call");
    } finally {
      transport.close();
    }
  });
});
