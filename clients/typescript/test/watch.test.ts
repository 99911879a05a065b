// MetricsClient.watchDashboard against real server processes: ticks, the reconnect after a
// drain (a new server on the same port), errors that end the watch, cancelling, API keys.
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import {
  Code,
  ConnectError,
  DashboardScope,
  type GetDashboardResponse,
  InvalidArgumentError,
  MetricsClient,
  ModelOperation,
  ModelCallStatus,
  Outcome,
  PermissionDeniedError,
  UnauthenticatedError,
  seconds,
} from "../src/index.js";
import { type RunningServer, createKey, freshProfile, sample, startServer, tempDir } from "./server.js";

function execution(id: string, profile: string) {
  return { executionId: id, profile, outcome: Outcome.SUCCESS, duration: seconds(1) };
}

/** Waits until `condition` holds, polling; fails after `timeoutMs`. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The next dashboard of a watch; fails if the watch ends instead. */
async function next(watch: AsyncIterator<GetDashboardResponse>): Promise<GetDashboardResponse> {
  const result = await watch.next();
  assert.equal(result.done, false, "the watch ended");
  return result.value as GetDashboardResponse;
}

/** The rejection of `promise`, failing the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => assert.fail(`the watch must fail, got ${JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v))}`),
    (error: unknown) => error,
  );
}

/** Open WatchDashboard streams on the server (`cugar_dashboard_watchers`). */
async function watchers(server: RunningServer): Promise<number | undefined> {
  return sample(await server.scrape(), "cugar_dashboard_watchers", {});
}

describe("MetricsClient.watchDashboard", () => {
  it("delivers the first dashboard at once, then a newly recorded execution in a later tick", async () => {
    const server = await startServer({ args: ["--replica", "ticks"] });
    const client = new MetricsClient({ target: server.target });
    const profile = freshProfile("watched");
    const watch = client.watchDashboard({ profile, scope: "replica" }, { intervalMs: 1000 });
    try {
      const first = await next(watch);
      assert.equal(first.replica, "ticks");
      assert.equal(first.scope, DashboardScope.REPLICA);
      assert.equal(first.executions?.total, 0n);
      // One execution of the watched profile, one of another: the watch counts only its own.
      const batch = await client.recordBatch([
        execution(`${profile}-1`, profile),
        execution(`${profile}-other`, freshProfile("other")),
      ]);
      assert.equal(batch.acceptedCount, 2);
      let d = first;
      let ticks = 0;
      while (d.executions?.total === 0n) {
        d = await next(watch);
        ticks += 1;
      }
      assert.ok(ticks >= 1);
      assert.equal(d.replica, "ticks");
      assert.equal(d.executions?.total, 1n);
      assert.equal(d.executions?.succeeded, 1n);
      assert.deepEqual(d.profiles.map((p) => p.profile), [profile]);
      // And the next tick is a whole dashboard again, with the same count.
      assert.equal((await next(watch)).executions?.total, 1n);
    } finally {
      await watch.return();
      client.close();
      assert.equal(await server.stop(), 0);
    }
  });

  it("reconnects after a drain: a new server on the same port takes over, onReconnect told UNAVAILABLE", async () => {
    let first: RunningServer | undefined = await startServer({ args: ["--replica", "first"] });
    const port = first.grpcPort;
    let second: RunningServer | undefined;
    const client = new MetricsClient({ target: first.target });
    const reconnects: ConnectError[] = [];
    const seen: GetDashboardResponse[] = [];
    const controller = new AbortController();
    // A live view: iterates on its own while the servers change under it.
    const view = (async () => {
      for await (const d of client.watchDashboard(
        {},
        { intervalMs: 1000, onReconnect: (error) => reconnects.push(error), signal: controller.signal },
      )) {
        seen.push(d);
      }
    })();
    try {
      await client.record(execution("drained-1", "sales_rep"));
      await until(() => seen.some((d) => d.executions?.total === 1n));
      assert.equal(reconnects.length, 0);
      assert.equal(await first.stop(), 0, "the first server drains and exits 0");
      first = undefined;
      await until(() => reconnects.length >= 1);
      second = await startServer({ grpcPort: port, args: ["--replica", "second"] });
      await until(() => seen.some((d) => d.replica === "second"));
      const fromSecond = seen.find((d) => d.replica === "second") as GetDashboardResponse;
      assert.equal(fromSecond.executions?.total, 0n, "the new replica's own dashboard");
      assert.deepEqual(
        [...new Set(seen.map((d) => d.replica))],
        ["first", "second"],
        "the iteration went on from the first replica to the second",
      );
      // The drain first; then, maybe, reopenings refused while no server listened: each
      // one reported with UNAVAILABLE, none ending the watch.
      assert.ok(reconnects[0] instanceof ConnectError);
      assert.equal(reconnects[0].code, Code.Unavailable);
      assert.equal(reconnects[0].rawMessage, "draining, reconnect");
      assert.deepEqual(
        reconnects.map((e) => e.code),
        reconnects.map(() => Code.Unavailable),
      );
      const before = reconnects.length;
      const count = seen.length;
      await until(() => seen.length >= count + 1); // and it keeps ticking without reconnecting
      assert.equal(reconnects.length, before);
      controller.abort();
      await view; // the aborted watch ends without an error
      await until(async () => (await watchers(second as RunningServer)) === 0);
    } finally {
      controller.abort();
      await view.catch(() => undefined);
      client.close();
      if (first) await first.stop();
      if (second) assert.equal(await second.stop(), 0);
    }
  });

  it("ends with UNAVAILABLE on a drain when reconnecting is off", async () => {
    const server = await startServer({ args: ["--replica", "only"] });
    const client = new MetricsClient({ target: server.target });
    const reconnects: ConnectError[] = [];
    const watch = client.watchDashboard(
      {},
      { intervalMs: 1000, reconnect: false, onReconnect: (error) => reconnects.push(error) },
    );
    let stopped = false;
    try {
      assert.equal((await next(watch)).replica, "only");
      const ending = rejection(
        (async () => {
          while (true) await next(watch);
        })(),
      );
      assert.equal(await server.stop(), 0);
      stopped = true;
      const error = await ending;
      assert.ok(error instanceof ConnectError, `a ConnectError, got ${String(error)}`);
      assert.equal(error.code, Code.Unavailable);
      assert.equal(error.rawMessage, "draining, reconnect");
      assert.equal(reconnects.length, 0);
      assert.deepEqual(await watch.next(), { done: true, value: undefined }, "the watch is over");
    } finally {
      await watch.return();
      client.close();
      if (!stopped) await server.stop();
    }
  });

  it("refuses an invalid interval or window with InvalidArgumentError naming the field, and a bad scope", async () => {
    const server = await startServer();
    const client = new MetricsClient({ target: server.target });
    try {
      const interval = await rejection(client.watchDashboard({}, { intervalMs: 500 }).next());
      assert.ok(interval instanceof InvalidArgumentError, `InvalidArgumentError, got ${String(interval)}`);
      assert.deepEqual(
        interval.violations.map((v) => [v.field, v.reason]),
        [["interval", "OUT_OF_RANGE"]],
      );
      const window = await rejection(client.watchDashboard({ windowMs: 1000 }).next());
      assert.ok(window instanceof InvalidArgumentError, `InvalidArgumentError, got ${String(window)}`);
      assert.deepEqual(window.violations.map((v) => v.field), ["dashboard.window"]);
      const scope = { scope: "everything" } as unknown as { scope: "cluster" };
      await assert.rejects(client.watchDashboard(scope).next(), RangeError);
      await assert.rejects(client.dashboard(scope), RangeError);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
  });

  it("break cancels the stream on the server; a watcher over the limit ends with RESOURCE_EXHAUSTED", async () => {
    const server = await startServer({ args: ["--max-watchers", "1", "--replica", "capped"] });
    const client = new MetricsClient({ target: server.target });
    try {
      for await (const d of client.watchDashboard({}, { intervalMs: 1000 })) {
        assert.equal(d.replica, "capped");
        assert.equal(await watchers(server), 1);
        const reconnects: ConnectError[] = [];
        const refused = await rejection(
          client.watchDashboard({}, { onReconnect: (e) => reconnects.push(e) }).next(),
        );
        assert.ok(refused instanceof ConnectError, `a ConnectError, got ${String(refused)}`);
        assert.equal(refused.code, Code.ResourceExhausted);
        assert.equal(reconnects.length, 0, "RESOURCE_EXHAUSTED is not reconnected");
        break;
      }
      await until(async () => (await watchers(server)) === 0);
      // The slot is free again: a new watch gets its first dashboard.
      const again = client.watchDashboard({}, { intervalMs: 1000 });
      assert.equal((await next(again)).replica, "capped");
      await again.return();
      await until(async () => (await watchers(server)) === 0);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
  });

  it("a signal ends the iteration without an error, also while waiting to reconnect", async () => {
    const server = await startServer();
    const client = new MetricsClient({ target: server.target });
    try {
      const controller = new AbortController();
      let count = 0;
      for await (const _ of client.watchDashboard({}, { intervalMs: 1000, signal: controller.signal })) {
        count += 1;
        controller.abort();
      }
      assert.equal(count, 1);
      await until(async () => (await watchers(server)) === 0);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
    // Nothing listens: every reopening fails with UNAVAILABLE, until the signal ends it.
    const gone = new MetricsClient({ target: server.target });
    try {
      const controller = new AbortController();
      const reconnects: ConnectError[] = [];
      const watching = (async () => {
        let count = 0;
        for await (const _ of gone.watchDashboard(
          {},
          { signal: controller.signal, onReconnect: (e) => reconnects.push(e) },
        )) {
          count += 1;
        }
        return count;
      })();
      await until(() => reconnects.length >= 2);
      controller.abort();
      assert.equal(await watching, 0);
      assert.deepEqual(
        reconnects.map((e) => e.code),
        reconnects.map(() => Code.Unavailable),
      );
    } finally {
      gone.close();
    }
  });

  it("carries the API key: a reader watches, a recorder key and no key are refused", async () => {
    const dir = await tempDir();
    const keys = join(dir, "keys.json");
    const readerKey = await createKey(keys, "board", "reader");
    const recorderKey = await createKey(keys, "agent", "recorder");
    const server = await startServer({ args: ["--auth-keys-file", keys, "--replica", "guarded"] });
    const reader = new MetricsClient({ target: server.target, apiKey: readerKey });
    const recorder = new MetricsClient({ target: server.target, apiKey: recorderKey });
    const anonymous = new MetricsClient({ target: server.target });
    try {
      const watch = reader.watchDashboard({}, { intervalMs: 1000 });
      assert.equal((await next(watch)).replica, "guarded");
      await watch.return();
      const denied = await rejection(recorder.watchDashboard().next());
      assert.ok(denied instanceof PermissionDeniedError, `PermissionDeniedError, got ${String(denied)}`);
      assert.equal(denied.reason, "ROLE_NOT_ALLOWED");
      const missing = await rejection(anonymous.watchDashboard().next());
      assert.ok(missing instanceof UnauthenticatedError, `UnauthenticatedError, got ${String(missing)}`);
      assert.equal(missing.reason, "MISSING_CREDENTIALS");
    } finally {
      reader.close();
      recorder.close();
      anonymous.close();
      assert.equal(await server.stop(), 0);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("MetricsClient.dashboard: model and scope", () => {
  it("limits the model rows to one model, and answers for the cluster or the replica", async () => {
    const server = await startServer({ args: ["--replica", "solo"] });
    const client = new MetricsClient({ target: server.target });
    const profile = freshProfile();
    const call = (model: string) => ({
      provider: "openai",
      model,
      operation: ModelOperation.CHAT,
      status: ModelCallStatus.SUCCESS,
      duration: seconds(0.5),
      inputTokens: 100n,
      outputTokens: 10n,
    });
    try {
      await client.record({ ...execution(`${profile}-m`, profile), modelCalls: [call("gpt-4o"), call("gpt-4o-mini")] });
      const all = await client.dashboard();
      assert.deepEqual(all.models.map((m) => m.model).sort(), ["gpt-4o", "gpt-4o-mini"]);
      const one = await client.dashboard({ model: "gpt-4o-mini" });
      assert.deepEqual(one.models.map((m) => [m.model, m.calls]), [["gpt-4o-mini", 1n]]);
      const replica = await client.dashboard({ scope: "replica" });
      assert.equal(replica.scope, DashboardScope.REPLICA);
      // Asked for the cluster, a replica without peers answers for itself alone.
      const cluster = await client.dashboard({ scope: "cluster" });
      assert.equal(cluster.scope, DashboardScope.CLUSTER);
      assert.deepEqual([cluster.replicas, cluster.missingReplicas, cluster.partial], [["solo"], [], false]);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
  });
});
