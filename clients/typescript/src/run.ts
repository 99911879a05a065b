import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { millis } from "./durations.js";
import {
  ApprovalDecision,
  ApprovalOperation,
  type ApprovalSchema,
  type BudgetSchema,
  type Execution,
  ExecutionSchema,
  ModelCallStatus,
  type ModelCallSchema,
  ModelOperation,
  Outcome,
  ToolCallStatus,
  type ToolCallSchema,
} from "./gen/cugar/metrics/v1/metrics_service_pb.js";

/** How a tool call ended. */
export type ToolStatus = "success" | "error" | "skipped";
/** What a human decided on an approval. */
export type Decision = "approved" | "denied" | "timeout" | "cancelled";
/** The kind of action that needed the approval. */
export type Operation = "propose" | "execute";

const TOOL_STATUS: Record<ToolStatus, ToolCallStatus> = {
  success: ToolCallStatus.SUCCESS,
  error: ToolCallStatus.ERROR,
  skipped: ToolCallStatus.SKIPPED,
};
const DECISION: Record<Decision, ApprovalDecision> = {
  approved: ApprovalDecision.APPROVED,
  denied: ApprovalDecision.DENIED,
  timeout: ApprovalDecision.TIMEOUT,
  cancelled: ApprovalDecision.CANCELLED,
};
const OPERATION: Record<Operation, ApprovalOperation> = {
  propose: ApprovalOperation.PROPOSE,
  execute: ApprovalOperation.EXECUTE,
};

/** The kind of model call, as in `gen_ai.operation.name`. */
export type ModelCallOperation =
  | "chat"
  | "text_completion"
  | "embeddings"
  | "generate_content"
  | "other";
/** How a model call ended: `rate_limited` is a 429-class refusal, counted apart from errors. */
export type ModelStatus = "success" | "error" | "rate_limited";

const MODEL_OPERATION: Record<ModelCallOperation, ModelOperation> = {
  chat: ModelOperation.CHAT,
  text_completion: ModelOperation.TEXT_COMPLETION,
  embeddings: ModelOperation.EMBEDDINGS,
  generate_content: ModelOperation.GENERATE_CONTENT,
  other: ModelOperation.OTHER,
};
const MODEL_STATUS: Record<ModelStatus, ModelCallStatus> = {
  success: ModelCallStatus.SUCCESS,
  error: ModelCallStatus.ERROR,
  rate_limited: ModelCallStatus.RATE_LIMITED,
};

const LABEL_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/**
 * A label-safe error type for an error: a string is used as given, an `Error` gives its
 * `name` (or its class name when `name` is the generic `Error`). Characters the server
 * does not accept in a label are replaced by `_`, and the result is cut to 64 characters,
 * so a thrown error never makes the execution invalid.
 */
export function errorTypeOf(error: unknown): string {
  let raw = "Error";
  if (typeof error === "string") {
    raw = error;
  } else if (error instanceof Error) {
    const className = error.constructor?.name;
    raw = error.name && error.name !== "Error" ? error.name : className || "Error";
  }
  if (LABEL_NAME.test(raw)) return raw;
  let safe = raw.replace(/[^A-Za-z0-9_.:-]/g, "_");
  if (!/^[A-Za-z]/.test(safe)) safe = `E${safe}`;
  return safe.slice(0, 64);
}

export interface ToolCallInit {
  readonly tool: string;
  readonly domain: string;
  /** Default `"success"`. */
  readonly status?: ToolStatus;
  /** How long the call took, in milliseconds (0 for a skipped call). */
  readonly durationMs: number;
  /** Optional; a short class of error or skip reason. */
  readonly errorType?: string;
}

export interface ApprovalInit {
  readonly decision: Decision;
  readonly operation: Operation;
  /** The wait from the request until the decision, in milliseconds. */
  readonly waitMs: number;
}

/** The token usage and cost of one model call. */
export interface ModelUsage {
  /** The tokens of the prompt. */
  readonly inputTokens?: number;
  /** The tokens of the answer. */
  readonly outputTokens?: number;
  /** Optional; the part of `inputTokens` served from the provider's cache. */
  readonly cachedInputTokens?: number;
  /** Optional; the part of `outputTokens` spent on reasoning. */
  readonly reasoningTokens?: number;
  /** Optional; what the call cost, in the deployment's currency. */
  readonly cost?: number;
  /** Optional; the model that answered (`gen_ai.response.model`). */
  readonly responseModel?: string;
}

/** A model call whose duration you measured yourself (for `Run.addModelCall`). */
export interface ModelCallInit extends ModelUsage {
  readonly provider: string;
  readonly model: string;
  /** Default `"chat"`. */
  readonly operation?: ModelCallOperation;
  /** Default `"success"`. */
  readonly status?: ModelStatus;
  /** Optional; a short class of error (for `error` and `rate_limited`). */
  readonly errorType?: string;
  /** How long the call took, in milliseconds. */
  readonly durationMs: number;
  /** Optional; the time until the first token, in milliseconds (at most `durationMs`). */
  readonly timeToFirstTokenMs?: number;
}

export interface ModelCallOptions {
  /** Default `"chat"`. */
  readonly operation?: ModelCallOperation;
}

/**
 * Times one model call; made by `Run.modelCall(provider, model)`. Report the usage with
 * `usage(...)`, mark the first token with `firstToken()`, then end it with `end()` (success),
 * `end(error)` (an error typed by `errorTypeOf`) or `rateLimited(errorType?)`. Ending adds a
 * `ModelCall` with the duration measured by the run's monotonic clock.
 */
export class ModelCallTimer {
  private done = false;
  private firstTokenAt: number | undefined;
  private reported: ModelUsage = {};

  constructor(
    private readonly run: Run,
    readonly provider: string,
    readonly model: string,
    readonly operation: ModelCallOperation,
    private readonly startedAt: number,
    private readonly clock: () => number,
  ) {}

  /** Whether the call was ended. */
  get ended(): boolean {
    return this.done;
  }

  /** Reports the call's token usage, cost and answering model; later values replace earlier ones. */
  usage(usage: ModelUsage): this {
    this.reported = { ...this.reported, ...usage };
    return this;
  }

  /** Marks the first token of the answer now (the first mark counts). */
  firstToken(): this {
    if (this.firstTokenAt === undefined) this.firstTokenAt = this.clock();
    return this;
  }

  /** Ends the call: a success without `error`, an error (typed by `errorTypeOf`) with. */
  end(error?: unknown): void {
    if (error === undefined || error === null) this.finish("success");
    else this.finish("error", errorTypeOf(error));
  }

  /** Ends the call as refused for a rate or quota limit (default error type `RateLimitError`). */
  rateLimited(errorType: string = "RateLimitError"): void {
    this.finish("rate_limited", errorTypeOf(errorType));
  }

  private finish(status: ModelStatus, errorType?: string): void {
    if (this.done) throw new Error(`model call ${this.provider}/${this.model} already ended`);
    this.done = true;
    const endedAt = this.clock();
    const durationMs = Math.max(0, endedAt - this.startedAt);
    const ttft =
      this.firstTokenAt === undefined
        ? undefined
        : Math.min(durationMs, Math.max(0, this.firstTokenAt - this.startedAt));
    this.run.addModelCall({
      ...this.reported,
      provider: this.provider,
      model: this.model,
      operation: this.operation,
      status,
      durationMs,
      ...(errorType === undefined ? {} : { errorType }),
      ...(ttft === undefined ? {} : { timeToFirstTokenMs: ttft }),
    });
  }
}

export interface RunOptions {
  /** The idempotency key; default a fresh `crypto.randomUUID()`. */
  readonly executionId?: string;
  /** The trace the execution belongs to, e.g. a W3C trace id. */
  readonly traceId?: string;
  /** A monotonic clock in milliseconds; default `performance.now`. */
  readonly clock?: () => number;
}

/** Times one tool call; made by `Run.startToolCall`. */
export class ToolCallTimer {
  private done = false;

  constructor(
    private readonly run: Run,
    private readonly tool: string,
    private readonly domain: string,
    private readonly startedAt: number,
    private readonly clock: () => number,
  ) {}

  /** Ends the call: a success without `error`, an error (typed by `errorTypeOf`) with. */
  end(error?: unknown): void {
    if (this.done) throw new Error(`tool call ${this.tool} already ended`);
    this.done = true;
    const durationMs = Math.max(0, this.clock() - this.startedAt);
    this.run.addToolCall(
      error === undefined || error === null
        ? { tool: this.tool, domain: this.domain, durationMs }
        : {
            tool: this.tool,
            domain: this.domain,
            status: "error",
            durationMs,
            errorType: errorTypeOf(error),
          },
    );
  }
}

/**
 * One agent execution being timed. Made by `startRun(profile)` (or `Recorder.startRun`):
 * add tool calls, approvals, steps and budget as the run goes, then `end()` it, passing the
 * error if it failed. The duration is measured with a monotonic clock, so wall-clock jumps
 * never distort it, and every run gets its own `executionId`.
 */
export class Run {
  readonly profile: string;
  readonly executionId: string;
  readonly traceId: string;
  private readonly clock: () => number;
  private readonly startedAt: number;
  private readonly startedAtWallMs: number;
  private readonly toolCalls: MessageInitShape<typeof ToolCallSchema>[] = [];
  private readonly approvals: MessageInitShape<typeof ApprovalSchema>[] = [];
  private readonly modelCalls: MessageInitShape<typeof ModelCallSchema>[] = [];
  private budget: MessageInitShape<typeof BudgetSchema> | undefined;
  private steps: number | undefined;
  private execution: Execution | undefined;

  constructor(
    profile: string,
    options: RunOptions = {},
    private readonly onEnd?: (execution: Execution) => void,
  ) {
    this.profile = profile;
    this.executionId = options.executionId ?? randomUUID();
    this.traceId = options.traceId ?? "";
    this.clock = options.clock ?? (() => performance.now());
    this.startedAt = this.clock();
    this.startedAtWallMs = Date.now();
  }

  /** Milliseconds since the run started. */
  elapsedMs(): number {
    return this.clock() - this.startedAt;
  }

  /** Whether `end()` was called. */
  get ended(): boolean {
    return this.execution !== undefined;
  }

  /** Adds a tool call whose duration you measured yourself. */
  addToolCall(call: ToolCallInit): this {
    this.assertOpen();
    this.toolCalls.push({
      tool: call.tool,
      domain: call.domain,
      status: TOOL_STATUS[call.status ?? "success"],
      duration: millis(call.durationMs),
      errorType: call.errorType ?? "",
    });
    return this;
  }

  /** Starts timing a tool call; `end(error?)` on the returned timer adds it. */
  startToolCall(tool: string, domain: string): ToolCallTimer {
    this.assertOpen();
    return new ToolCallTimer(this, tool, domain, this.clock(), this.clock);
  }

  /**
   * Runs `fn` as a tool call: adds it as a success with its duration, or, when `fn`
   * throws, as an error typed by `errorTypeOf` and rethrows.
   */
  async timeToolCall<T>(tool: string, domain: string, fn: () => T | Promise<T>): Promise<T> {
    const timer = this.startToolCall(tool, domain);
    try {
      const result = await fn();
      timer.end();
      return result;
    } catch (error) {
      timer.end(error ?? "Error");
      throw error;
    }
  }

  /** Adds a model call whose duration and usage you measured yourself. */
  addModelCall(call: ModelCallInit): this {
    this.assertOpen();
    this.modelCalls.push({
      provider: call.provider,
      model: call.model,
      responseModel: call.responseModel ?? "",
      operation: MODEL_OPERATION[call.operation ?? "chat"],
      status: MODEL_STATUS[call.status ?? "success"],
      errorType: call.errorType ?? "",
      duration: millis(call.durationMs),
      ...(call.timeToFirstTokenMs === undefined
        ? {}
        : { timeToFirstToken: millis(call.timeToFirstTokenMs) }),
      inputTokens: BigInt(call.inputTokens ?? 0),
      outputTokens: BigInt(call.outputTokens ?? 0),
      ...(call.cachedInputTokens === undefined
        ? {}
        : { cachedInputTokens: BigInt(call.cachedInputTokens) }),
      ...(call.reasoningTokens === undefined
        ? {}
        : { reasoningTokens: BigInt(call.reasoningTokens) }),
      ...(call.cost === undefined ? {} : { cost: call.cost }),
    });
    return this;
  }

  /**
   * Starts timing one model call to `provider`/`model` (operation default `"chat"`).
   * With `fn`, runs it as the call and returns its result: the call ends as a success when
   * `fn` returns (after `fn` reported usage on the timer it is given), or as an error typed
   * by `errorTypeOf` when it throws, and the error is rethrown. Without `fn`, returns the
   * timer, to end yourself.
   */
  modelCall(provider: string, model: string, options?: ModelCallOptions): ModelCallTimer;
  modelCall<T>(
    provider: string,
    model: string,
    fn: (call: ModelCallTimer) => T | Promise<T>,
    options?: ModelCallOptions,
  ): Promise<T>;
  modelCall<T>(
    provider: string,
    model: string,
    fnOrOptions?: ((call: ModelCallTimer) => T | Promise<T>) | ModelCallOptions,
    options?: ModelCallOptions,
  ): ModelCallTimer | Promise<T> {
    this.assertOpen();
    const opts = typeof fnOrOptions === "function" ? options : fnOrOptions;
    const timer = new ModelCallTimer(
      this,
      provider,
      model,
      opts?.operation ?? "chat",
      this.clock(),
      this.clock,
    );
    if (typeof fnOrOptions !== "function") return timer;
    const fn = fnOrOptions;
    return (async () => {
      try {
        const result = await fn(timer);
        if (!timer.ended) timer.end();
        return result;
      } catch (error) {
        if (!timer.ended) timer.end(error ?? "Error");
        throw error;
      }
    })();
  }

  /** Adds a tool call that did not run (budget exhausted, approval denied...). */
  skipToolCall(tool: string, domain: string, reason?: string): this {
    return this.addToolCall({
      tool,
      domain,
      status: "skipped",
      durationMs: 0,
      ...(reason === undefined ? {} : { errorType: reason }),
    });
  }

  /** Adds a human approval. */
  addApproval(approval: ApprovalInit): this {
    this.assertOpen();
    this.approvals.push({
      decision: DECISION[approval.decision],
      operation: OPERATION[approval.operation],
      wait: millis(approval.waitMs),
    });
    return this;
  }

  /** Sets the budget: cost units spent against a limit; `exceeded` defaults to spent >= limit. */
  setBudget(spent: number, limit: number, exceeded: boolean = spent >= limit): this {
    this.assertOpen();
    this.budget = { spent, limit, exceeded };
    return this;
  }

  /**
   * Counts `n` steps (default 1). When `step` is never called, the execution reports one
   * step per tool call.
   */
  step(n = 1): this {
    this.assertOpen();
    this.steps = (this.steps ?? 0) + n;
    return this;
  }

  /**
   * Ends the run and returns the finished execution: a success without `error`, a failure
   * with `error_type` from `errorTypeOf(error)` with. Throws if the run already ended.
   */
  end(error?: unknown): Execution {
    this.assertOpen();
    const failed = error !== undefined && error !== null;
    const execution = create(ExecutionSchema, {
      executionId: this.executionId,
      traceId: this.traceId,
      profile: this.profile,
      outcome: failed ? Outcome.FAILURE : Outcome.SUCCESS,
      errorType: failed ? errorTypeOf(error) : "",
      startTime: timestampFromMs(this.startedAtWallMs),
      duration: millis(Math.max(0, this.clock() - this.startedAt)),
      steps: this.steps ?? this.toolCalls.length,
      ...(this.budget ? { budget: this.budget } : {}),
      approvals: this.approvals,
      toolCalls: this.toolCalls,
      modelCalls: this.modelCalls,
    });
    this.execution = execution;
    this.onEnd?.(execution);
    return execution;
  }

  private assertOpen(): void {
    if (this.execution !== undefined) {
      throw new Error(`run ${this.executionId} already ended`);
    }
  }
}

/** Starts timing an execution of `profile`. */
export function startRun(profile: string, options: RunOptions = {}): Run {
  return new Run(profile, options);
}
