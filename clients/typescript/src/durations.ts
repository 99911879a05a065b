import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";

const NANOS_PER_SECOND = 1_000_000_000;

/**
 * A `google.protobuf.Duration` of `ms` milliseconds, rounded to whole nanoseconds.
 *
 * `durationFromMs` of the Protobuf-ES runtime keeps fractional nanoseconds, which do not
 * serialize as the int32 `nanos` field; measured times from `performance.now()` are
 * fractional, hence this helper.
 */
export function millis(ms: number): Duration {
  if (!Number.isFinite(ms)) throw new RangeError(`duration must be finite, got ${ms}`);
  let seconds = Math.trunc(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1_000_000);
  if (nanos >= NANOS_PER_SECOND) {
    seconds += 1;
    nanos -= NANOS_PER_SECOND;
  } else if (nanos <= -NANOS_PER_SECOND) {
    seconds -= 1;
    nanos += NANOS_PER_SECOND;
  }
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: nanos === 0 ? 0 : nanos });
}

/** A `google.protobuf.Duration` of `s` seconds, e.g. `seconds(1.5)`. */
export function seconds(s: number): Duration {
  if (!Number.isFinite(s)) throw new RangeError(`duration must be finite, got ${s}`);
  return millis(s * 1000);
}

/** The length of a `google.protobuf.Duration` in seconds. */
export function toSeconds(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  return Number(duration.seconds) + duration.nanos / NANOS_PER_SECOND;
}
