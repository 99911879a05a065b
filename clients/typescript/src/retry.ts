import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { retryDelayOf } from "./errors.js";
import { CALL, RATE_LIMIT } from "./spec.js";

/**
 * How calls are retried (defaults from `clients/spec.yaml`). Two failures are retried:
 * - UNAVAILABLE (server starting, draining, or not reachable), after an exponential backoff,
 *   while fewer than `maxAttempts` attempts were made;
 * - RESOURCE_EXHAUSTED carrying a `google.rpc.RetryInfo` (a rate limit refused the call),
 *   after the delay the server asks for, capped at `maxRetryDelayMs`, at most
 *   `rateLimitRetries` times.
 * Nothing else is retried, and no wait ever passes the call's deadline: a wait that would
 * ends the call at once with the last error. Retrying is safe: the Record RPCs are
 * idempotent by `execution_id` and GetDashboard only reads, so a repeated call never
 * counts twice.
 */
export interface RetryOptions {
  /** Attempts in total, the first one included, while the server answers UNAVAILABLE. 1 disables those retries. Default 5. */
  readonly maxAttempts?: number;
  /** The backoff ceiling before the first retry, in milliseconds. Default 100. */
  readonly initialBackoffMs?: number;
  /** The largest backoff ceiling, in milliseconds. Default 2000. */
  readonly maxBackoffMs?: number;
  /** The factor the ceiling grows by after each retry. Default 2. */
  readonly multiplier?: number;
  /**
   * The RetryInfo cap: the longest delay waited before retrying a rate-limited call, in
   * milliseconds. A server asking for more is waited for this long. Default 30000.
   */
  readonly maxRetryDelayMs?: number;
  /** Retries of a rate-limited call, after its first attempt; 0 disables them. Default 3. */
  readonly rateLimitRetries?: number;
}

/** Status codes a direct call retries with backoff (spec `call.retryable_codes`). */
export const CALL_RETRYABLE_CODES: ReadonlySet<Code> = new Set(
  CALL.retryableCodes.map((name) => codeOfName(name)),
);

/** A `RetryOptions` with every default filled in and checked. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  readonly maxRetryDelayMs: number;
  readonly rateLimitRetries: number;
}

/** The defaults of `clients/spec.yaml` (`call` and `rate_limit`). */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: CALL.maxAttempts,
  initialBackoffMs: CALL.initialBackoffMs,
  maxBackoffMs: CALL.maxBackoffMs,
  multiplier: CALL.backoffMultiplier,
  maxRetryDelayMs: RATE_LIMIT.retryInfoCapMs,
  rateLimitRetries: RATE_LIMIT.rateLimitRetries,
});

/** A status code named as `clients/spec.yaml` names it (`DEADLINE_EXCEEDED`). */
export function codeOfName(name: string): Code {
  const camel = name.toLowerCase().replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase());
  const code = (Code as unknown as Record<string, Code | undefined>)[camel];
  if (code === undefined) throw new RangeError(`unknown status code ${name}`);
  return code;
}

/** A status code as `clients/spec.yaml` names it (`Code.DeadlineExceeded`: `DEADLINE_EXCEEDED`). */
export function nameOfCode(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function retryPolicy(options: RetryOptions = {}): RetryPolicy {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...stripUndefined(options) };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`);
  }
  if (!(policy.initialBackoffMs >= 0)) {
    throw new RangeError(`retry.initialBackoffMs must be >= 0, got ${policy.initialBackoffMs}`);
  }
  if (!(policy.maxBackoffMs >= policy.initialBackoffMs)) {
    throw new RangeError(
      `retry.maxBackoffMs must be >= initialBackoffMs, got ${policy.maxBackoffMs}`,
    );
  }
  if (!(policy.multiplier >= 1)) {
    throw new RangeError(`retry.multiplier must be >= 1, got ${policy.multiplier}`);
  }
  if (!(policy.maxRetryDelayMs >= 0)) {
    throw new RangeError(`retry.maxRetryDelayMs must be >= 0, got ${policy.maxRetryDelayMs}`);
  }
  if (!Number.isInteger(policy.rateLimitRetries) || policy.rateLimitRetries < 0) {
    throw new RangeError(`retry.rateLimitRetries must be an integer >= 0, got ${policy.rateLimitRetries}`);
  }
  return Object.freeze(policy);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/**
 * The backoff before retry number `retry` (1 for the first retry): exponential with "full
 * jitter", as in gRPC's retry design: uniform in [0, min(initial * multiplier^(retry-1),
 * max)). `random` returns a number in [0, 1).
 */
export function backoffMs(
  policy: RetryPolicy,
  retry: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(
    policy.initialBackoffMs * policy.multiplier ** (retry - 1),
    policy.maxBackoffMs,
  );
  return random() * ceiling;
}

/**
 * How long to wait before retry number `retry` after `error`, in milliseconds, or undefined
 * when the error is not retried: the backoff for UNAVAILABLE, the server's RetryInfo delay
 * capped at `maxRetryDelayMs` for RESOURCE_EXHAUSTED. (Attempt counts and the deadline are
 * `withRetries`'s business.)
 */
export function retryDelayMs(
  policy: RetryPolicy,
  error: unknown,
  retry: number,
  random: () => number = Math.random,
): number | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  if (CALL_RETRYABLE_CODES.has(error.code)) return backoffMs(policy, retry, random);
  if (error.code === Code.ResourceExhausted) {
    const delay = retryDelayOf(error);
    if (delay !== undefined) return Math.min(delay, policy.maxRetryDelayMs);
  }
  return undefined;
}

/** Whether a failed attempt may be retried. */
export function isRetryable(error: unknown, policy: RetryPolicy = DEFAULT_RETRY): boolean {
  return retryDelayMs(policy, error, 1, () => 0) !== undefined;
}

/** The deadlines of one call: the whole call's, and each attempt's inside it. */
export interface CallDeadline {
  /** When the call must be over, as a `performance.now()` time. */
  readonly deadline: number;
  /** The longest one attempt may take, in milliseconds; the last one gets what is left. */
  readonly attemptTimeoutMs: number;
}

/**
 * Runs `attempt` (given its own deadline in milliseconds: the attempt deadline, or what is
 * left of the call's when that is shorter) until it succeeds, fails with an error that is
 * not retried, runs out of retries, or the next wait would pass the call's deadline; then
 * throws the last error. Stops waiting when `signal` aborts.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (timeoutMs: number) => Promise<T>,
  deadline: CallDeadline,
  signal?: AbortSignal,
): Promise<T> {
  let rateLimitRetries = 0;
  for (let n = 1; ; n++) {
    const left = Math.ceil(deadline.deadline - performance.now());
    try {
      return await attempt(Math.max(1, Math.min(deadline.attemptTimeoutMs, left)));
    } catch (error) {
      const delay = retryDelayMs(policy, error, n);
      if (delay === undefined || signal?.aborted) throw error;
      const limited = (error as ConnectError).code === Code.ResourceExhausted;
      if (limited ? rateLimitRetries >= policy.rateLimitRetries : n >= policy.maxAttempts) throw error;
      if (delay >= deadline.deadline - performance.now()) throw error; // never past the deadline
      if (limited) rateLimitRetries += 1;
      try {
        await sleep(delay, undefined, signal ? { signal } : {});
      } catch {
        throw error; // aborted while waiting: report the call's own failure
      }
    }
  }
}
