import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, type Client, ConnectError, type Interceptor, createClient } from "@connectrpc/connect";
import type { SecureClientSessionOptions } from "node:http2";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { RoundRobinTransport } from "./balancer.js";
import { millis } from "./durations.js";
import {
  InvalidArgumentError,
  InvalidExecutionError,
  translateError,
} from "./errors.js";
import {
  DashboardScope,
  type ExecutionSchema,
  type GetDashboardRequestSchema,
  type GetDashboardResponse,
  MetricsService,
  RecordResult,
  type RecordExecutionsResponse,
  type WatchDashboardRequestSchema,
} from "./gen/cugar/metrics/v1/metrics_service_pb.js";
import { type RetryOptions, type RetryPolicy, codeOfName, retryPolicy, withRetries } from "./retry.js";
import { CALL, WATCH } from "./spec.js";

/** The fields of an execution to record (plain object or `Execution` message). */
export type ExecutionInit = MessageInitShape<typeof ExecutionSchema>;

/** What the server did with one recorded execution. */
export type RecordOutcome = "accepted" | "duplicate";

/** The most executions one RecordExecutions call may carry. */
export const MAX_BATCH_SIZE = 1000;

/** The default deadline of a whole call, retries included, in milliseconds (spec `call.deadline_seconds`). */
export const DEFAULT_TIMEOUT_MS = CALL.deadlineMs;

/** The default deadline of each attempt inside a call, in milliseconds (spec `call.attempt_deadline_seconds`). */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = CALL.attemptDeadlineMs;

export interface MetricsClientOptions {
  /**
   * The server: `host:port` for plaintext gRPC (HTTP/2 without TLS), or a base URL such as
   * `http://host:port` or `https://host:port`.
   */
  readonly target: string;
  /**
   * The deadline of each call, all its retries and waits included, in milliseconds.
   * Default 10000.
   */
  readonly timeoutMs?: number;
  /**
   * The deadline of each attempt inside a call, in milliseconds; the last attempt gets
   * what is left of `timeoutMs`. Default 5000.
   */
  readonly attemptTimeoutMs?: number;
  /** Retries on UNAVAILABLE and after a RetryInfo delay; see `RetryOptions`. */
  readonly retry?: RetryOptions;
  /**
   * An API key (`cgm_...`, from `cugar-metrics keys create`), sent as
   * `authorization: Bearer <key>` on every call. Use TLS with it, so the key is not sent in
   * clear text.
   */
  readonly apiKey?: string;
  /**
   * Connect over TLS (and mutual TLS with `cert` and `key`). A `host:port` target then
   * means `https://host:port`. An `https://` target without `tls` uses Node's trusted roots.
   */
  readonly tls?: TlsOptions;
  /** Connect interceptors applied to every attempt (e.g. to add headers). */
  readonly interceptors?: Interceptor[];
}

/**
 * TLS settings: PEM contents (a string or a Buffer, e.g. `readFileSync("ca.crt")`), as
 * Node's `tls.connect` takes them.
 */
export interface TlsOptions {
  /** The CA certificates that signed the server's certificate; default Node's trusted roots. */
  readonly ca?: string | Buffer;
  /** This client's certificate chain, for a server started with `--tls-client-ca`. */
  readonly cert?: string | Buffer;
  /** The private key of `cert`. Give `cert` and `key` together. */
  readonly key?: string | Buffer;
  /**
   * The name to check the server's certificate against, when it differs from the target's
   * host (connecting by IP address to a certificate for a DNS name).
   */
  readonly serverName?: string;
}

/** Per-call overrides. */
export interface CallOptions {
  /** The deadline of this call, retries included, in milliseconds. */
  readonly timeoutMs?: number;
  /** The deadline of each attempt of this call, in milliseconds. */
  readonly attemptTimeoutMs?: number;
  /** Cancels the call, including any pending retry. */
  readonly signal?: AbortSignal;
}

/** Selects what `dashboard()` and `watchDashboard()` cover. */
export interface DashboardQuery {
  /** The most recent window, 1 minute to 1 hour, in milliseconds; unset: since start. */
  readonly windowMs?: number;
  /** Only this profile's execution figures. */
  readonly profile?: string;
  /** Only this domain's tool figures. */
  readonly domain?: string;
  /** Only this model's rows and model golden signals (`ModelCall.model`, `_overflow` allowed). */
  readonly model?: string;
  /**
   * `"replica"`: the answering replica's numbers only; `"cluster"`: it and its peers
   * (`replicas`, `missingReplicas` and `partial` say who answered). Unset: the server's
   * default, cluster when it is configured with peers.
   */
  readonly scope?: DashboardScopeName;
}

/** The scope of a dashboard, as `DashboardQuery.scope` names it. */
export type DashboardScopeName = "replica" | "cluster";

const SCOPES: Readonly<Record<DashboardScopeName, DashboardScope>> = Object.freeze({
  replica: DashboardScope.REPLICA,
  cluster: DashboardScope.CLUSTER,
});

/**
 * The GetDashboard request of a query.
 *
 * @throws RangeError when `scope` is neither `"replica"` nor `"cluster"`.
 */
export function dashboardRequest(query: DashboardQuery = {}): MessageInitShape<typeof GetDashboardRequestSchema> {
  let scope = DashboardScope.UNSPECIFIED;
  if (query.scope !== undefined) {
    if (!Object.hasOwn(SCOPES, query.scope)) {
      throw new RangeError(`scope must be "replica" or "cluster", got ${JSON.stringify(query.scope)}`);
    }
    scope = SCOPES[query.scope];
  }
  return {
    profile: query.profile ?? "",
    domain: query.domain ?? "",
    model: query.model ?? "",
    scope,
    ...(query.windowMs === undefined ? {} : { window: millis(query.windowMs) }),
  };
}

/** How `watchDashboard()` watches. */
export interface WatchOptions {
  /**
   * The time between two dashboards, in milliseconds (the server accepts 1 s to 1 h and
   * answers INVALID_ARGUMENT naming `interval` otherwise). Default 5000 (spec `watch`).
   */
  readonly intervalMs?: number;
  /**
   * Open the stream again when it ends with UNAVAILABLE (the server drains, or the
   * connection is lost). Default true; false ends the watch with that error.
   */
  readonly reconnect?: boolean;
  /** Told of each reconnect, before its wait, with the error that ended the stream. */
  readonly onReconnect?: (error: ConnectError) => void;
  /** Stops the watch at any time, a wait before reconnecting included: the iteration ends. */
  readonly signal?: AbortSignal;
}

/** Codes that end a watch's stream which is then opened again (spec `watch.reconnect_codes`). */
export const WATCH_RECONNECT_CODES: ReadonlySet<Code> = new Set(
  WATCH.reconnectCodes.map((name) => codeOfName(name)),
);

/**
 * The wait, in milliseconds, before reopening a watch whose stream failed `failures` times
 * in a row since its last response (0 for the first failure): 200 ms doubling up to 5 s
 * (spec `watch`).
 */
export function watchBackoffMs(failures: number): number {
  return Math.min(
    WATCH.reconnectInitialBackoffMs * WATCH.reconnectBackoffMultiplier ** failures,
    WATCH.reconnectMaxBackoffMs,
  );
}

/** The WatchDashboard request of a query and watch options. */
export function watchRequest(
  query: DashboardQuery = {},
  options: Pick<WatchOptions, "intervalMs"> = {},
): MessageInitShape<typeof WatchDashboardRequestSchema> {
  return {
    dashboard: dashboardRequest(query),
    interval: millis(options.intervalMs ?? WATCH.intervalMs),
  };
}

/**
 * Turns a `host:port` target or a URL into a base URL: `host:port` becomes
 * `http://host:port`, or `https://host:port` with `tls`.
 */
export function baseUrlOf(target: string, tls = false): string {
  if (target.trim() === "") throw new TypeError("target must not be empty");
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return `${tls ? "https" : "http"}://${target}`;
  if (tls && !/^https:/i.test(target)) {
    throw new TypeError(`tls needs an https:// target or host:port, got ${target}`);
  }
  return target;
}

/** The `http2.connect` options of `tls`. */
function tlsSessionOptions(tls: TlsOptions): SecureClientSessionOptions {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TypeError("tls: give cert and key together (mutual TLS)");
  }
  return {
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
  };
}

/**
 * An interceptor that sends `authorization: Bearer <apiKey>` with every call.
 *
 * @throws TypeError when the key is empty or holds whitespace or control characters.
 */
export function bearerAuth(apiKey: string): Interceptor {
  if (!/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new TypeError("apiKey must be a non-empty string of printable ASCII without spaces");
  }
  const value = `Bearer ${apiKey}`;
  return (next) => async (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}

/**
 * A client of the cugar-metrics `MetricsService` over standard gRPC (HTTP/2).
 *
 * Every call has a deadline (`timeoutMs`, 10 s) that bounds it whole, retries included, and
 * each attempt its own (`attemptTimeoutMs`, 5 s). A call is retried with exponential backoff
 * when the server answers UNAVAILABLE, and after the server's RetryInfo delay (capped) when
 * a rate limit refuses it. Invalid input is reported as `InvalidExecutionError` (Record
 * RPCs) or `InvalidArgumentError` (GetDashboard), carrying the server's field violations;
 * a refused API key as `UnauthenticatedError` or `PermissionDeniedError`, carrying the
 * server's reason; any other failure is the `ConnectError` of the last attempt.
 *
 * Calls go round robin over every address the target's name resolves to (a headless
 * Service), one HTTP/2 connection per address; an address whose connection fails is
 * skipped for a while, and the name is resolved again every 5 s and after such a failure.
 *
 * Call `close()` when done to release the HTTP/2 connections.
 */
export class MetricsClient {
  /** The generated Connect client, for anything the helpers do not cover. */
  readonly rpc: Client<typeof MetricsService>;
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly retry: RetryPolicy;
  private readonly transport: RoundRobinTransport;

  constructor(options: MetricsClientOptions) {
    const baseUrl = baseUrlOf(options.target, options.tls !== undefined);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) {
      throw new RangeError(`timeoutMs must be > 0, got ${this.timeoutMs}`);
    }
    if (!(this.attemptTimeoutMs > 0)) {
      throw new RangeError(`attemptTimeoutMs must be > 0, got ${this.attemptTimeoutMs}`);
    }
    this.retry = retryPolicy(options.retry);
    // Round robin over every address the target's name resolves to (spec
    // `connection.load_balancing_policy`), one HTTP/2 connection per address.
    this.transport = new RoundRobinTransport({
      baseUrl,
      ...(options.tls === undefined ? {} : { tls: tlsSessionOptions(options.tls) }),
      interceptors: [
        ...(options.apiKey === undefined ? [] : [bearerAuth(options.apiKey)]),
        ...(options.interceptors ?? []),
      ],
    });
    this.rpc = createClient(MetricsService, this.transport);
  }

  /**
   * Records one finished execution. Resolves to `"accepted"`, or to `"duplicate"` when an
   * execution with the same `executionId` was already recorded (it counts once).
   *
   * @throws InvalidExecutionError when the execution fails validation.
   */
  async record(execution: ExecutionInit, options: CallOptions = {}): Promise<RecordOutcome> {
    const response = await this.call(
      options,
      (call) => this.rpc.recordExecution({ execution }, call),
      InvalidExecutionError,
    );
    switch (response.result) {
      case RecordResult.ACCEPTED:
        return "accepted";
      case RecordResult.DUPLICATE:
        return "duplicate";
      default:
        throw new Error(`unexpected RecordExecution result ${RecordResult[response.result]}`);
    }
  }

  /**
   * Records a batch of 1 to 1000 executions, each on its own: invalid items are listed in
   * `rejectedExecutions` (with violation paths such as `executions[1].profile`) and do not prevent
   * the valid ones from being recorded.
   *
   * @throws InvalidExecutionError when the batch is empty or larger than 1000.
   */
  async recordBatch(
    executions: readonly ExecutionInit[],
    options: CallOptions = {},
  ): Promise<RecordExecutionsResponse> {
    return this.call(
      options,
      (call) => this.rpc.recordExecutions({ executions: [...executions] }, call),
      InvalidExecutionError,
    );
  }

  /**
   * Reads the golden signals and breakdowns of the replica that answers.
   *
   * @throws InvalidArgumentError when the window or a filter is invalid.
   */
  async dashboard(
    query: DashboardQuery = {},
    options: CallOptions = {},
  ): Promise<GetDashboardResponse> {
    const request = dashboardRequest(query);
    return this.call(
      options,
      (call) => this.rpc.getDashboard(request, call),
      InvalidArgumentError,
    );
  }

  /**
   * Follows a live dashboard: the server pushes a whole `GetDashboardResponse` every
   * `intervalMs` (default 5 s), the first one at once, for as long as the caller iterates:
   *
   *     for await (const d of client.watchDashboard({ profile: "sales_rep" })) { ... }
   *
   * When the stream ends with UNAVAILABLE (the server drains and says "reconnect", or the
   * connection is lost) it is opened again, on the next address when the name resolves to
   * several, after a wait of 200 ms that doubles up to 5 s while reopening fails and is
   * reset by a response; `onReconnect` is told of each with the error. `break` (or
   * `return()`) cancels the stream, and so does `signal`, which also ends a wait; the
   * iteration then ends without an error. The stream has no deadline.
   *
   * @throws InvalidArgumentError when the interval, the window or a filter is invalid
   *   (violations on `interval`, `dashboard.window`, ...).
   * @throws UnauthenticatedError, PermissionDeniedError when the API key is refused.
   * @throws ConnectError with any other code (RESOURCE_EXHAUSTED when the server's watcher
   *   limits are reached), and with UNAVAILABLE when `reconnect` is false.
   * @throws RangeError when `scope` is neither `"replica"` nor `"cluster"`.
   */
  async *watchDashboard(
    query: DashboardQuery = {},
    options: WatchOptions = {},
  ): AsyncGenerator<GetDashboardResponse, void, undefined> {
    const request = watchRequest(query, options);
    const reconnect = options.reconnect ?? true;
    const { signal } = options;
    let failures = 0; // failed streams in a row since the last response
    while (!signal?.aborted) {
      // One stream, cancelled when the caller aborts or stops iterating (finally).
      const stream = new AbortController();
      const cancel = () => stream.abort(signal?.reason);
      signal?.addEventListener("abort", cancel, { once: true });
      try {
        for await (const response of this.rpc.watchDashboard(request, { signal: stream.signal })) {
          failures = 0;
          yield response;
        }
        return; // the server ended the stream without an error
      } catch (error) {
        if (signal?.aborted) return;
        if (
          !reconnect ||
          !(error instanceof ConnectError) ||
          !WATCH_RECONNECT_CODES.has(error.code)
        ) {
          throw translateError(error, InvalidArgumentError);
        }
        options.onReconnect?.(error);
      } finally {
        signal?.removeEventListener("abort", cancel);
        stream.abort();
      }
      try {
        await sleep(watchBackoffMs(failures), undefined, signal ? { signal } : {});
      } catch {
        return; // aborted while waiting
      }
      failures += 1;
    }
  }

  /** Closes the HTTP/2 connections. Calls made afterwards open new ones. */
  close(): void {
    this.transport.close();
  }

  private async call<T>(
    options: CallOptions,
    attempt: (call: { timeoutMs: number; signal?: AbortSignal }) => Promise<T>,
    invalid: new (...args: ConstructorParameters<typeof InvalidArgumentError>) => InvalidArgumentError,
  ): Promise<T> {
    const deadline = {
      deadline: performance.now() + (options.timeoutMs ?? this.timeoutMs),
      attemptTimeoutMs: options.attemptTimeoutMs ?? this.attemptTimeoutMs,
    };
    const signal = options.signal ? { signal: options.signal } : {};
    try {
      return await withRetries(
        this.retry,
        (timeoutMs) => attempt({ timeoutMs, ...signal }),
        deadline,
        options.signal,
      );
    } catch (error) {
      throw translateError(error, invalid);
    }
  }
}
