package dev.cugar.metrics.client;

import com.google.protobuf.Duration;
import com.google.protobuf.Timestamp;
import java.time.Instant;

/** Conversions from {@code java.time} values to the protobuf {@code Duration} and {@code Timestamp}. */
public final class ProtoTime {
  private static final int NANOS_PER_SECOND = 1_000_000_000;

  private ProtoTime() {}

  /** The protobuf form of {@code d} (seconds and nanos carry the same sign, as protobuf requires). */
  public static Duration duration(java.time.Duration d) {
    long seconds = d.getSeconds();
    int nanos = d.getNano();
    if (seconds < 0 && nanos > 0) {
      seconds += 1;
      nanos -= NANOS_PER_SECOND;
    }
    return Duration.newBuilder().setSeconds(seconds).setNanos(nanos).build();
  }

  /** A duration of {@code seconds} seconds, for example {@code seconds(1.5)}; rounded to the nanosecond. */
  public static Duration seconds(double seconds) {
    if (!Double.isFinite(seconds)) {
      throw new IllegalArgumentException("duration must be finite, got " + seconds);
    }
    long whole = (long) seconds;
    long nanos = Math.round((seconds - whole) * NANOS_PER_SECOND);
    if (Math.abs(nanos) >= NANOS_PER_SECOND) {
      whole += nanos / NANOS_PER_SECOND;
      nanos %= NANOS_PER_SECOND;
    }
    return Duration.newBuilder().setSeconds(whole).setNanos((int) nanos).build();
  }

  /** A duration of {@code nanos} nanoseconds, as measured with {@link System#nanoTime()}. */
  public static Duration nanos(long nanos) {
    return Duration.newBuilder()
        .setSeconds(nanos / NANOS_PER_SECOND)
        .setNanos((int) (nanos % NANOS_PER_SECOND))
        .build();
  }

  /** The protobuf form of {@code instant}. */
  public static Timestamp timestamp(Instant instant) {
    return Timestamp.newBuilder()
        .setSeconds(instant.getEpochSecond())
        .setNanos(instant.getNano())
        .build();
  }

  /** {@code d} as a {@code java.time.Duration}. */
  public static java.time.Duration toJava(Duration d) {
    return java.time.Duration.ofSeconds(d.getSeconds(), d.getNanos());
  }
}
