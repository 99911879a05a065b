import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
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
 * Returns the field violations carried by an error's `google.rpc.BadRequest` details
 * (the `grpc-status-details-bin` trailer), or an empty list when there are none.
 * A malformed detail is ignored rather than hiding the original error.
 */
export function violationsOf(error: ConnectError): Violation[] {
  const violations: Violation[] = [];
  for (const detail of error.details) {
    if (!("type" in detail) || detail.type !== BAD_REQUEST_TYPE) continue;
    try {
      violations.push(...decodeBadRequest(detail.value));
    } catch {
      // A detail that does not decode is skipped; the status code and message remain.
    }
  }
  return violations;
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
 * Turns an INVALID_ARGUMENT `ConnectError` into the given error class; returns any other
 * error unchanged.
 */
export function translateError(
  error: unknown,
  kind: new (cause: ConnectError) => InvalidArgumentError,
): unknown {
  if (error instanceof ConnectError && error.code === Code.InvalidArgument) {
    return new kind(error);
  }
  return error;
}
