// @cugar-metrics/client: record finished agent executions with cugar-metrics over gRPC.
export {
  type CallOptions,
  type DashboardQuery,
  type DashboardScopeName,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  type ExecutionInit,
  MAX_BATCH_SIZE,
  MetricsClient,
  type MetricsClientOptions,
  type RecordOutcome,
  type TlsOptions,
  type WatchOptions,
  baseUrlOf,
  bearerAuth,
  watchBackoffMs,
} from "./client.js";
export { millis, seconds, toSeconds } from "./durations.js";
export {
  AccessDeniedError,
  type ErrorInfo,
  InvalidArgumentError,
  InvalidExecutionError,
  PermissionDeniedError,
  UnauthenticatedError,
  type Violation,
  decodeBadRequest,
  decodeErrorInfo,
  decodeRetryInfo,
  errorInfoOf,
  retryDelayOf,
  violationsOf,
} from "./errors.js";
export {
  type BatchSender,
  Recorder,
  type RecorderLogger,
  type RecorderOptions,
  type RecorderRetryOptions,
  type RecorderStats,
} from "./recorder.js";
export { CALL, CONNECTION, RATE_LIMIT, RECORDER, WATCH } from "./spec.js";
export { DEFAULT_RETRY, type RetryOptions, type RetryPolicy, backoffMs } from "./retry.js";
export {
  type ApprovalInit,
  type Decision,
  type ModelCallInit,
  type ModelCallOperation,
  type ModelCallOptions,
  ModelCallTimer,
  type ModelStatus,
  type ModelUsage,
  type Operation,
  Run,
  type RunOptions,
  type ToolCallInit,
  ToolCallTimer,
  type ToolStatus,
  errorTypeOf,
  startRun,
} from "./run.js";
// The generated messages, enums and service descriptor (Protobuf-ES v2).
export * from "./gen/cugar/metrics/v1/metrics_service_pb.js";
// Connect's error type and status codes, for errors other than invalid input.
export { Code, ConnectError } from "@connectrpc/connect";
