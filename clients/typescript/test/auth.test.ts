// API keys against the real server started with --auth-keys-file: the Bearer header, and
// UNAUTHENTICATED / PERMISSION_DENIED as readable errors carrying the ErrorInfo reason.
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  AccessDeniedError,
  Code,
  ConnectError,
  MetricsClient,
  Outcome,
  PermissionDeniedError,
  UnauthenticatedError,
  bearerAuth,
  decodeErrorInfo,
  seconds,
} from "../src/index.js";
import { type RunningServer, createKey, freshProfile, sample, startServer, tempDir } from "./server.js";

function execution(profile: string) {
  return { executionId: `${profile}-a`, profile, outcome: Outcome.SUCCESS, duration: seconds(1) };
}

/** The rejection of `promise`, failing the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => assert.fail("the call must be refused"),
    (error: unknown) => error,
  );
}

describe("decodeErrorInfo", () => {
  it("reads reason, domain and metadata and skips unknown fields", () => {
    const entry = new BinaryWriter().uint32((1 << 3) | 2).string("role").uint32((2 << 3) | 2).string("reader");
    const bytes = new BinaryWriter()
      .uint32((1 << 3) | 2)
      .string("ROLE_NOT_ALLOWED")
      .uint32((2 << 3) | 2)
      .string("cugar.metrics.v1")
      .uint32((3 << 3) | 2)
      .bytes(entry.finish())
      .uint32((9 << 3) | 0)
      .int32(7)
      .finish();
    assert.deepEqual(decodeErrorInfo(bytes), {
      reason: "ROLE_NOT_ALLOWED",
      domain: "cugar.metrics.v1",
      metadata: { role: "reader" },
    });
  });
});

describe("bearerAuth", () => {
  it("refuses an empty key or one with whitespace", () => {
    assert.throws(() => bearerAuth(""), TypeError);
    assert.throws(() => bearerAuth("cgm_abc\n"), TypeError);
    assert.throws(() => new MetricsClient({ target: "127.0.0.1:1", apiKey: "a b" }), TypeError);
  });
});

describe("MetricsClient with an API key (server with --auth-keys-file)", () => {
  let dir: string;
  let server: RunningServer;
  let recorderKey: string;
  let readerKey: string;

  before(async () => {
    dir = await tempDir();
    const keys = join(dir, "keys.json");
    recorderKey = await createKey(keys, "sales-agent", "recorder");
    readerKey = await createKey(keys, "dashboard", "reader");
    server = await startServer({ args: ["--auth-keys-file", keys] });
  });

  after(async () => {
    assert.equal(await server.stop(), 0);
    await rm(dir, { recursive: true, force: true });
  });

  it("without a key: UnauthenticatedError with reason MISSING_CREDENTIALS", async () => {
    const client = new MetricsClient({ target: server.target });
    try {
      const error = await rejection(client.record(execution(freshProfile())));
      assert.ok(error instanceof UnauthenticatedError, `got ${String(error)}`);
      assert.ok(error instanceof AccessDeniedError);
      assert.equal(error.code, Code.Unauthenticated);
      assert.equal(error.reason, "MISSING_CREDENTIALS");
      assert.equal(error.domain, "cugar.metrics.v1");
      assert.match(error.message, /^UNAUTHENTICATED \(MISSING_CREDENTIALS\): /);
      assert.ok(error.cause instanceof ConnectError);
    } finally {
      client.close();
    }
  });

  it("with an unknown key: reason UNKNOWN_KEY, counted by the server", async () => {
    const client = new MetricsClient({ target: server.target, apiKey: "cgm_not_a_key_of_this_server" });
    try {
      const error = await rejection(client.dashboard());
      assert.ok(error instanceof UnauthenticatedError, `got ${String(error)}`);
      assert.equal(error.reason, "UNKNOWN_KEY");
      assert.equal(sample(await server.scrape(), "cugar_auth_failures_total", { reason: "unknown_key" }), 1);
    } finally {
      client.close();
    }
  });

  it("a recorder key records; a reader key reads", async () => {
    const profile = freshProfile();
    const recorder = new MetricsClient({ target: server.target, apiKey: recorderKey });
    const reader = new MetricsClient({ target: server.target, apiKey: readerKey });
    try {
      assert.equal(await recorder.record(execution(profile)), "accepted");
      assert.equal((await reader.dashboard({ profile })).executions?.total, 1n);
    } finally {
      recorder.close();
      reader.close();
    }
  });

  it("a reader key on Record: PermissionDeniedError with reason ROLE_NOT_ALLOWED", async () => {
    const client = new MetricsClient({ target: server.target, apiKey: readerKey });
    try {
      const error = await rejection(client.record(execution(freshProfile())));
      assert.ok(error instanceof PermissionDeniedError, `got ${String(error)}`);
      assert.equal(error.code, Code.PermissionDenied);
      assert.equal(error.reason, "ROLE_NOT_ALLOWED");
      assert.match(error.message, /^PERMISSION_DENIED \(ROLE_NOT_ALLOWED\): /);
    } finally {
      client.close();
    }
  });
});
