// TLS and mutual TLS against the real server (--tls-cert/--tls-key, --tls-client-ca), with
// certificates made by the tests with the openssl CLI.
import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, MetricsClient, Outcome, baseUrlOf, seconds } from "../src/index.js";
import { type Pem, makeCa, makeLeaf, readPem } from "./certs.js";
import { type RunningServer, createKey, freshProfile, startServer, tempDir } from "./server.js";

function execution(profile: string) {
  return { executionId: `${profile}-a`, profile, outcome: Outcome.SUCCESS, duration: seconds(1) };
}

/** The ConnectError a refused handshake gives (no retries, so it is the first attempt's). */
async function handshakeFailure(client: MetricsClient): Promise<ConnectError> {
  const error = await client.record(execution(freshProfile())).then(
    () => assert.fail("the handshake must fail"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConnectError, `got ${String(error)}`);
  return error;
}

describe("TLS options", () => {
  it("host:port means https with tls; an http:// target or a lone cert is refused", () => {
    assert.equal(baseUrlOf("127.0.0.1:443", true), "https://127.0.0.1:443");
    assert.equal(baseUrlOf("https://metrics.example:443", true), "https://metrics.example:443");
    assert.throws(() => new MetricsClient({ target: "http://127.0.0.1:1", tls: {} }), TypeError);
    assert.throws(() => new MetricsClient({ target: "127.0.0.1:1", tls: { cert: "x" } }), /cert and key together/);
  });
});

describe("MetricsClient over TLS and mutual TLS", () => {
  let dir: string;
  let serverCa: Buffer;
  let wrongCa: Buffer;
  let client: { cert: Buffer; key: Buffer };
  let tlsServer: RunningServer;
  let mtlsServer: RunningServer;
  let apiKey: string;

  before(async () => {
    dir = await tempDir();
    const ca = await makeCa(dir, "server-ca");
    const server: Pem = await makeLeaf(dir, ca, "server", "serverAuth");
    const clientCa = await makeCa(dir, "client-ca");
    client = await readPem(await makeLeaf(dir, clientCa, "agent", "clientAuth"));
    serverCa = await readFile(ca.cert);
    wrongCa = await readFile((await makeCa(dir, "other-ca")).cert);
    const keys = join(dir, "keys.json");
    apiKey = await createKey(keys, "sales-agent", "recorder");
    const tlsArgs = ["--tls-cert", server.cert, "--tls-key", server.key];
    [tlsServer, mtlsServer] = await Promise.all([
      startServer({ args: tlsArgs }),
      startServer({ args: [...tlsArgs, "--tls-client-ca", clientCa.cert, "--auth-keys-file", keys] }),
    ]);
  });

  after(async () => {
    assert.deepEqual(await Promise.all([tlsServer.stop(), mtlsServer.stop()]), [0, 0]);
    await rm(dir, { recursive: true, force: true });
  });

  it("TLS: records when the server's CA is trusted", async () => {
    const metrics = new MetricsClient({ target: tlsServer.target, tls: { ca: serverCa } });
    try {
      assert.equal(await metrics.record(execution(freshProfile())), "accepted");
    } finally {
      metrics.close();
    }
  });

  it("TLS: the handshake fails with another CA", async () => {
    const metrics = new MetricsClient({
      target: tlsServer.target,
      tls: { ca: wrongCa },
      retry: { maxAttempts: 1 },
    });
    try {
      const error = await handshakeFailure(metrics);
      // Node's certificate check fails; Connect reports it as INTERNAL with Node's error.
      assert.equal(error.code, Code.Internal);
      assert.equal((error.cause as { code?: string } | undefined)?.code, "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    } finally {
      metrics.close();
    }
  });

  it("mutual TLS: records with a client certificate from the client CA and an API key", async () => {
    const metrics = new MetricsClient({
      target: mtlsServer.target,
      tls: { ca: serverCa, cert: client.cert, key: client.key },
      apiKey,
    });
    try {
      assert.equal(await metrics.record(execution(freshProfile())), "accepted");
    } finally {
      metrics.close();
    }
  });

  it("mutual TLS: the handshake fails without a client certificate", async () => {
    const metrics = new MetricsClient({
      target: mtlsServer.target,
      tls: { ca: serverCa },
      apiKey,
      retry: { maxAttempts: 1 },
    });
    try {
      // With TLS 1.3 the server checks the client certificate after the client finished its
      // handshake: its alert closes the connection under the call, which Connect reports as
      // the stream closed with CANCEL.
      const error = await handshakeFailure(metrics);
      assert.equal(error.code, Code.Canceled);
      assert.equal(error.rawMessage, "http/2 stream closed with error code CANCEL (0x8)");
    } finally {
      metrics.close();
    }
  });
});
