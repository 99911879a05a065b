import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

/** One invalid field of a request, as reported by the server. */
export interface Violation {
  /** The path of the field from the request's root, e.g. `execution.duration`. */
  readonly field: string;
  /** What is wrong and what a valid value looks like. */
  readonly description: string;
  /** A stable UPPER_SNAKE reason code, e.g. `REQUIRED`, `OUT_OF_RANGE`. */
  readonly reason: string;
}

const BAD_REQUEST_TYPE = "google.rpc.BadRequest";
const ERROR_INFO_TYPE = "google.rpc.ErrorInfo";
const RETRY_INFO_TYPE = "google.rpc.RetryInfo";

/** Why the server refused a call: a `google.rpc.ErrorInfo` detail. */
export interface ErrorInfo {
  /** A stable UPPER_SNAKE reason, e.g. `MISSING_CREDENTIALS`, `ROLE_NOT_ALLOWED`, `RATE_LIMITED`. */
  readonly reason: string;
  /** The domain of the reason: `cugar.metrics.v1` for this server. */
  readonly domain: string;
  /** More context, e.g. the key's role on PERMISSION_DENIED. */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Decodes the field violations of a serialized `google.rpc.BadRequest` message.
 *
 * Why by hand: the `google.rpc` error-detail types are not published on npm for the
 * Protobuf-ES v2 runtime (only on a separate generated-SDK registry this project does not
 * depend on), and the project copies no third-party .proto file. The two messages needed
 * are small and their wire format is stable, so they are read with the runtime's own
 * `BinaryReader`:
 *
 *   BadRequest     { repeated FieldViolation field_violations = 1; }
 *   FieldViolation { string field = 1; string description = 2; string reason = 3; ... }
 *
 * Unknown fields (such as `localized_message`) are skipped, so newer servers stay readable.
 * Throws if the bytes are not a well-formed message.
 */
export function decodeBadRequest(bytes: Uint8Array): Violation[] {
  const reader = new BinaryReader(bytes);
  const violations: Violation[] = [];
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      violations.push(decodeFieldViolation(reader.bytes()));
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return violations;
}

function decodeFieldViolation(bytes: Uint8Array): Violation {
  const reader = new BinaryReader(bytes);
  let field = "";
  let description = "";
  let reason = "";
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType !== WireType.LengthDelimited || fieldNo > 3) {
      reader.skip(wireType, fieldNo);
      continue;
    }
    switch (fieldNo) {
      case 1:
        field = reader.string();
        break;
      case 2:
        description = reader.string();
        break;
      case 3:
        reason = reader.string();
        break;
      default:
        reader.skip(wireType, fieldNo);
    }
  }
  return { field, description, reason };
}

/**
 * Decodes a serialized `google.rpc.ErrorInfo`, by hand for the same reason as
 * `decodeBadRequest`:
 *
 *   ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
 *
 * (a map field is a repeated entry message `{ string key = 1; string value = 2; }`).
 */
export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const reader = new BinaryReader(bytes);
  let reason = "";
  let domain = "";
  const metadata: Record<string, string> = {};
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, fieldNo);
    } else if (fieldNo === 1) {
      reason = reader.string();
    } else if (fieldNo === 2) {
      domain = reader.string();
    } else if (fieldNo === 3) {
      const [key, value] = decodeMapEntry(reader.bytes());
      metadata[key] = value;
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return { reason, domain, metadata };
}

function decodeMapEntry(bytes: Uint8Array): [string, string] {
  const reader = new BinaryReader(bytes);
  let key = "";
  let value = "";
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited && fieldNo === 1) key = reader.string();
    else if (wireType === WireType.LengthDelimited && fieldNo === 2) value = reader.string();
    else reader.skip(wireType, fieldNo);
  }
  return [key, value];
}

/**
 * Decodes a serialized `google.rpc.RetryInfo` into its delay in milliseconds (undefined
 * when it carries none):
 *
 *   RetryInfo { google.protobuf.Duration retry_delay = 1; }
 *
 * The wrapper is read by hand like `decodeBadRequest`; the `Duration` inside is a
 * well-known type that the Protobuf-ES runtime ships, so it is parsed with `DurationSchema`.
 */
export function decodeRetryInfo(bytes: Uint8Array): number | undefined {
  const reader = new BinaryReader(bytes);
  let delayMs: number | undefined;
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      const duration = fromBinary(DurationSchema, reader.bytes());
      delayMs = Number(duration.seconds) * 1000 + duration.nanos / 1e6;
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return delayMs;
}

/** The values of an error's details of one type that decode; malformed ones are skipped. */
function detailsOf<T>(error: ConnectError, type: string, decode: (bytes: Uint8Array) => T): T[] {
  const found: T[] = [];
  for (const detail of error.details) {
    if (!("type" in detail) || detail.type !== type) continue;
    try {
      found.push(decode(detail.value));
    } catch {
      // A detail that does not decode is skipped; the status code and message remain.
    }
  }
  return found;
}

/** The `google.rpc.ErrorInfo` detail of an error, if it carries one. */
export function errorInfoOf(error: ConnectError): ErrorInfo | undefined {
  return detailsOf(error, ERROR_INFO_TYPE, decodeErrorInfo)[0];
}

/**
 * The delay, in milliseconds, that a `google.rpc.RetryInfo` detail of the error asks for
 * before a retry (the server sends one with RESOURCE_EXHAUSTED when a rate limit refuses a
 * call), or undefined when there is none or it is negative.
 */
export function retryDelayOf(error: ConnectError): number | undefined {
  return detailsOf(error, RETRY_INFO_TYPE, decodeRetryInfo).find(
    (delay) => delay !== undefined && delay >= 0,
  );
}

/**
 * Returns the field violations carried by an error's `google.rpc.BadRequest` details
 * (the `grpc-status-details-bin` trailer), or an empty list when there are none.
 * A malformed detail is ignored rather than hiding the original error.
 */
export function violationsOf(error: ConnectError): Violation[] {
  return detailsOf(error, BAD_REQUEST_TYPE, decodeBadRequest).flat();
}

/**
 * The server rejected a request as invalid (status INVALID_ARGUMENT). `violations` lists
 * every offending field with its path from the request root.
 */
export class InvalidArgumentError extends Error {
  /** Always `Code.InvalidArgument`. */
  readonly code = Code.InvalidArgument;
  /** The field violations from the `google.rpc.BadRequest` detail. */
  readonly violations: readonly Violation[];

  constructor(cause: ConnectError) {
    const violations = violationsOf(cause);
    const summary = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
    super(summary ? `${cause.rawMessage} (${summary})` : cause.rawMessage, { cause });
    this.name = new.target.name;
    this.violations = violations;
  }

  /** The violation on `field`, if any. */
  violation(field: string): Violation | undefined {
    return this.violations.find((v) => v.field === field);
  }
}

/**
 * An execution (or a batch) sent to RecordExecution / RecordExecutions failed validation.
 * Nothing of it was recorded. For example an epoch timestamp sent as a duration yields a
 * violation on `execution.duration` with reason `OUT_OF_RANGE`.
 */
export class InvalidExecutionError extends InvalidArgumentError {}

/**
 * The server refused the caller (UNAUTHENTICATED or PERMISSION_DENIED). `reason` is the
 * `google.rpc.ErrorInfo` reason: `MISSING_CREDENTIALS`, `MALFORMED_CREDENTIALS`,
 * `UNKNOWN_KEY`, `REVOKED_KEY` or `ROLE_NOT_ALLOWED` (empty if the server sent none).
 * Retrying does not help: fix the API key or its role.
 */
export class AccessDeniedError extends Error {
  readonly code: Code;
  /** The ErrorInfo reason, e.g. `UNKNOWN_KEY`. */
  readonly reason: string;
  /** The ErrorInfo domain, `cugar.metrics.v1`. */
  readonly domain: string;
  /** The ErrorInfo metadata, e.g. the key's `role` on PERMISSION_DENIED. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(cause: ConnectError) {
    const info = errorInfoOf(cause);
    const reason = info?.reason ?? "";
    // Code.PermissionDenied -> "PERMISSION_DENIED", the gRPC spelling.
    const label = (Code[cause.code] ?? String(cause.code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    super(`${label}${reason ? ` (${reason})` : ""}: ${cause.rawMessage}`, { cause });
    this.name = new.target.name;
    this.code = cause.code;
    this.reason = reason;
    this.domain = info?.domain ?? "";
    this.metadata = info?.metadata ?? {};
  }
}

/** No usable API key: missing, malformed, unknown or revoked (status UNAUTHENTICATED). */
export class UnauthenticatedError extends AccessDeniedError {}

/** The API key's role may not call this method (status PERMISSION_DENIED). */
export class PermissionDeniedError extends AccessDeniedError {}

/**
 * Turns an INVALID_ARGUMENT `ConnectError` into the given error class, UNAUTHENTICATED and
 * PERMISSION_DENIED into `UnauthenticatedError` and `PermissionDeniedError`; returns any
 * other error unchanged.
 */
export function translateError(
  error: unknown,
  kind: new (cause: ConnectError) => InvalidArgumentError,
): unknown {
  if (!(error instanceof ConnectError)) return error;
  switch (error.code) {
    case Code.InvalidArgument:
      return new kind(error);
    case Code.Unauthenticated:
      return new UnauthenticatedError(error);
    case Code.PermissionDenied:
      return new PermissionDeniedError(error);
    default:
      return error;
  }
}
