// Starts the real cugar-metrics server process on free ports for the tests.
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository root: this file runs as clients/typescript/dist/test/server.js. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** The server executable: $CUGAR_METRICS_BIN, else the repository's virtualenv. */
export const SERVER_BIN =
  process.env["CUGAR_METRICS_BIN"] ?? join(REPO_ROOT, ".venv", "bin", "cugar-metrics");

export interface RunningServer {
  readonly grpcPort: number;
  readonly metricsPort: number;
  /** `<host>:<grpc port>`. */
  readonly target: string;
  /** GET /metrics as text. */
  scrape(): Promise<string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

interface ReadyFile {
  grpc_port: number;
  metrics_port: number;
  pid: number;
}

export interface ServerOptions {
  /** More `serve` flags, e.g. `["--auth-keys-file", path]`. */
  readonly args?: readonly string[];
  readonly timeoutMs?: number;
  /** The address to listen on; default 127.0.0.1. */
  readonly host?: string;
  /** The gRPC port; default 0 (any free port). */
  readonly grpcPort?: number;
}

/** Starts `cugar-metrics serve` on ports 0 (plus `args`) and waits for its ready file. */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`server executable not found: ${SERVER_BIN} (run scripts/install-tools.sh)`);
  }
  const dir = await mkdtemp(join(tmpdir(), "cugar-ts-"));
  const readyFile = join(dir, "ready.json");
  const child = spawn(
    SERVER_BIN,
    [
      "serve",
      "--host",
      options.host ?? "127.0.0.1",
      "--grpc-port",
      String(options.grpcPort ?? 0),
      "--metrics-port",
      "0",
      "--ready-file",
      readyFile,
      // An explicit authentication choice (without one the server is in protected mode).
      ...((options.args ?? []).includes("--auth-keys-file") ? [] : ["--no-auth"]),
      // With API keys, /metrics must be guarded too or left open explicitly.
      ...((options.args ?? []).includes("--auth-keys-file") &&
      !(options.args ?? []).includes("--metrics-basic-auth-file")
        ? ["--metrics-open"]
        : []),
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));

  const deadline = Date.now() + timeoutMs;
  let ready: ReadyFile | undefined;
  while (ready === undefined) {
    if (exitCode !== undefined) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`server exited with ${exitCode} before it was ready:\n${output}`);
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`server not ready after ${timeoutMs} ms:\n${output}`);
    }
    try {
      ready = JSON.parse(await readFile(readyFile, "utf8")) as ReadyFile;
    } catch {
      await sleep(50); // not written yet (or half written)
    }
  }
  const { grpc_port: grpcPort, metrics_port: metricsPort } = ready;
  return {
    grpcPort,
    metricsPort,
    target: `${options.host ?? "127.0.0.1"}:${grpcPort}`,
    async scrape() {
      const response = await fetch(`http://${options.host ?? "127.0.0.1"}:${metricsPort}/metrics`);
      if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
      return response.text();
    },
    async stop() {
      if (exitCode === undefined) child.kill("SIGTERM");
      const code = await exited;
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * Adds a key to a keys file with `cugar-metrics keys create` (creating the file if needed)
 * and returns the key, which the command prints once on stdout.
 */
export async function createKey(
  keysFile: string,
  name: string,
  role: "recorder" | "reader" | "admin",
): Promise<string> {
  const { stdout } = await run(SERVER_BIN, [
    "keys",
    "create",
    "--file",
    keysFile,
    "--name",
    name,
    "--role",
    role,
  ]);
  const key = stdout.trim();
  if (!key.startsWith("cgm_")) throw new Error(`keys create printed ${JSON.stringify(stdout)}`);
  return key;
}

/** A fresh temporary directory; `rm(dir, { recursive: true })` it when done. */
export function tempDir(prefix = "cugar-ts-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A port nothing listens on: bound by the OS, then released. */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** A fresh, valid profile name, so tests sharing a server do not see each other's runs. */
export function freshProfile(prefix = "p"): string {
  return `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** The value of one sample of a Prometheus text exposition, or undefined. */
export function sample(exposition: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const m of (match[2] ?? "").matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found[m[1] as string] = m[2] as string;
    }
    const wanted = Object.entries(labels);
    if (wanted.length === Object.keys(found).length && wanted.every(([k, v]) => found[k] === v)) {
      return Number(match[3]);
    }
  }
  return undefined;
}
