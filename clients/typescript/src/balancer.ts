// Per-call round robin over every address a target's name resolves to (a headless Service):
// one HTTP/2 connection per address, addresses whose connection failed skipped for a
// backoff, the name resolved again every few seconds and after a failed connection.
import { lookup as dnsLookup } from "node:dns/promises";
import type { SecureClientSessionOptions } from "node:http2";
import { connect as netConnect, isIP } from "node:net";
import { performance } from "node:perf_hooks";
import { connect as tlsConnect } from "node:tls";
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { CONNECTION } from "./spec.js";

/** How often the name is resolved again while calls are made, in milliseconds. */
export const RESOLVE_INTERVAL_MS = 5_000;

/** Resolves a host name to its addresses, as `dns.promises.lookup(host, { all: true })`. */
export type Resolver = (host: string) => Promise<readonly string[]>;

const defaultResolver: Resolver = async (host) =>
  (await dnsLookup(host, { all: true })).map((entry) => entry.address);

export interface RoundRobinOptions {
  /** `http://host:port` or `https://host:port`: the name calls are made to. */
  readonly baseUrl: string;
  /** TLS settings of `http2.connect` (`ca`, `cert`, `key`, `servername`); https only. */
  readonly tls?: SecureClientSessionOptions;
  readonly interceptors?: Interceptor[];
  readonly resolve?: Resolver;
  readonly resolveIntervalMs?: number;
}

interface Endpoint {
  readonly address: string;
  readonly sessions: Http2SessionManager;
  readonly transport: Transport;
  /** Connection failures in a row. */
  failures: number;
  /** `performance.now()` until which the address is skipped. */
  skipUntil: number;
}

/**
 * A Connect `Transport` that spreads calls over the addresses of its target's name, one
 * call to the next address. The `:authority` of every request and the TLS server name stay
 * the target's host name (each connection is opened to one address through
 * `createConnection`), so certificates and virtual hosts see the name, not the address.
 */
export class RoundRobinTransport implements Transport {
  readonly host: string;
  readonly port: number;
  private readonly options: RoundRobinOptions;
  private readonly secure: boolean;
  private readonly resolver: Resolver;
  private readonly resolveIntervalMs: number;
  private endpoints: Endpoint[] = [];
  private next = 0;
  private resolvedAt = Number.NEGATIVE_INFINITY;
  private resolving: Promise<void> | undefined;

  constructor(options: RoundRobinOptions) {
    const url = new URL(options.baseUrl);
    this.options = options;
    this.secure = url.protocol === "https:";
    this.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    this.port = Number(url.port || (this.secure ? 443 : 80));
    this.resolver = options.resolve ?? defaultResolver;
    this.resolveIntervalMs = options.resolveIntervalMs ?? RESOLVE_INTERVAL_MS;
    if (isIP(this.host) !== 0) this.update([this.host]); // an address: nothing to resolve
  }

  /** The addresses calls currently go to, in round-robin order. */
  addresses(): string[] {
    return this.endpoints.map((e) => e.address);
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: Parameters<Transport["unary"]>[3],
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const endpoint = await this.pick(timeoutMs);
    try {
      return await endpoint.transport.unary(method, signal, timeoutMs, header, input, contextValues);
    } catch (error) {
      this.failed(endpoint, error);
      throw error;
    }
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: Parameters<Transport["unary"]>[3],
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const endpoint = await this.pick(timeoutMs);
    try {
      return await endpoint.transport.stream(method, signal, timeoutMs, header, input, contextValues);
    } catch (error) {
      this.failed(endpoint, error);
      throw error;
    }
  }

  /** Closes every connection; later calls open new ones. */
  close(): void {
    for (const endpoint of this.endpoints) endpoint.sessions.abort();
  }

  /** The next address whose connection is up or can be opened; any, when none can. */
  private async pick(timeoutMs: number | undefined): Promise<Endpoint> {
    await this.refresh();
    const tried = new Set<Endpoint>();
    while (tried.size < this.endpoints.length) {
      const endpoint = this.endpoints[this.next++ % this.endpoints.length] as Endpoint;
      if (tried.has(endpoint)) continue;
      tried.add(endpoint);
      if (endpoint.skipUntil > performance.now()) continue;
      const state = endpoint.sessions.state();
      if (state === "open" || state === "idle" || state === "verifying") return endpoint;
      if ((await connectWithin(endpoint.sessions, timeoutMs)) !== "error") {
        endpoint.failures = 0;
        return endpoint;
      }
      this.markFailed(endpoint);
    }
    // Every address failed lately: try the one whose backoff ends first; the call reports
    // UNAVAILABLE if it is still down, and the client's retries take over.
    const endpoint = [...this.endpoints].sort((a, b) => a.skipUntil - b.skipUntil)[0];
    if (endpoint === undefined) {
      throw new ConnectError(`${this.host} resolves to no address`, Code.Unavailable);
    }
    return endpoint;
  }

  private failed(endpoint: Endpoint, error: unknown): void {
    if (
      error instanceof ConnectError &&
      error.code === Code.Unavailable &&
      endpoint.sessions.state() === "error"
    ) {
      this.markFailed(endpoint);
    }
  }

  private markFailed(endpoint: Endpoint): void {
    endpoint.failures += 1;
    const backoff = Math.min(
      CONNECTION.initialReconnectBackoffMs * 2 ** (endpoint.failures - 1),
      CONNECTION.maxReconnectBackoffMs,
    );
    endpoint.skipUntil = performance.now() + backoff;
    this.resolvedAt = Number.NEGATIVE_INFINITY; // resolve again before the next call
  }

  /** Resolves the name when it is due; waits only when there is no address yet. */
  private async refresh(): Promise<void> {
    if (isIP(this.host) !== 0) return;
    if (performance.now() - this.resolvedAt < this.resolveIntervalMs) return;
    this.resolving ??= (async () => {
      try {
        const addresses = [...new Set(await this.resolver(this.host))];
        if (addresses.length > 0) this.update(addresses);
      } catch (error) {
        if (this.endpoints.length === 0) {
          throw new ConnectError(`cannot resolve ${this.host}: ${String(error)}`, Code.Unavailable, undefined, undefined, error);
        }
      } finally {
        this.resolvedAt = performance.now();
        this.resolving = undefined;
      }
    })();
    if (this.endpoints.length === 0) await this.resolving;
    else void this.resolving.catch(() => undefined);
  }

  /** Keeps the endpoints of `addresses` (new ones added, gone ones closed). */
  private update(addresses: readonly string[]): void {
    const known = new Map(this.endpoints.map((e) => [e.address, e]));
    this.endpoints = addresses.map((address) => known.get(address) ?? this.endpoint(address));
    for (const [address, endpoint] of known) {
      if (!addresses.includes(address)) endpoint.sessions.abort();
    }
  }

  private endpoint(address: string): Endpoint {
    const { port, secure } = this;
    const tls = this.options.tls ?? {};
    const servername = tls.servername ?? (isIP(this.host) === 0 ? this.host : undefined);
    const sessions = new Http2SessionManager(this.options.baseUrl, undefined, {
      ...tls,
      createConnection: () =>
        secure
          ? tlsConnect({
              ...tls,
              host: address,
              port,
              ALPNProtocols: ["h2"],
              ...(servername === undefined ? {} : { servername }),
            })
          : netConnect({ host: address, port }),
    });
    const transport = createGrpcTransport({
      baseUrl: this.options.baseUrl,
      sessionManager: sessions,
      interceptors: this.options.interceptors ?? [],
    });
    return { address, sessions, transport, failures: 0, skipUntil: 0 };
  }
}

/** `sessions.connect()`, but no longer than `timeoutMs` ("connecting" when it takes longer). */
async function connectWithin(
  sessions: Http2SessionManager,
  timeoutMs: number | undefined,
): Promise<string> {
  if (timeoutMs === undefined || timeoutMs <= 0) return sessions.connect();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((done) => {
    timer = setTimeout(() => done("connecting"), timeoutMs).unref();
  });
  try {
    return await Promise.race([sessions.connect(), late]);
  } finally {
    clearTimeout(timer);
  }
}
