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
