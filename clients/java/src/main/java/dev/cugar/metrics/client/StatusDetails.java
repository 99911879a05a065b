package dev.cugar.metrics.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/** Reads the {@code google.rpc} details of a failed call (the grpc-status-details-bin trailer). */
final class StatusDetails {
  private StatusDetails() {}

  /** The first detail of type {@code type} in {@code e}'s status, if any parses. */
  static <T extends Message> Optional<T> find(Throwable e, Class<T> type) {
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    if (status == null) {
      return Optional.empty();
    }
    for (Any detail : status.getDetailsList()) {
      if (detail.is(type)) {
        try {
          return Optional.of(detail.unpack(type));
        } catch (InvalidProtocolBufferException malformed) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }

  /** The {@code ErrorInfo} of {@code e}, or an empty one. */
  static ErrorInfo errorInfo(Throwable e) {
    return find(e, ErrorInfo.class).orElse(ErrorInfo.getDefaultInstance());
  }

  /** The {@code RetryInfo.retry_delay} of {@code e}, when it has one. */
  static Optional<Duration> retryDelay(Throwable e) {
    return find(e, RetryInfo.class)
        .filter(RetryInfo::hasRetryDelay)
        .map(r -> Duration.ofSeconds(r.getRetryDelay().getSeconds(), r.getRetryDelay().getNanos()))
        .filter(d -> !d.isNegative());
  }

  /**
   * The client's exception for a failed call: {@link InvalidExecutionException} for
   * INVALID_ARGUMENT, {@link AuthException} for UNAUTHENTICATED and PERMISSION_DENIED, {@link
   * RateLimitedException} for RESOURCE_EXHAUSTED with a RetryInfo, else {@code e} itself.
   */
  static RuntimeException translate(StatusRuntimeException e) {
    Status.Code code = e.getStatus().getCode();
    switch (code) {
      case INVALID_ARGUMENT:
        return InvalidExecutionException.translate(e);
      case UNAUTHENTICATED:
      case PERMISSION_DENIED:
        return new AuthException(e, errorInfo(e));
      case RESOURCE_EXHAUSTED:
        Optional<Duration> delay = retryDelay(e);
        return delay.isPresent()
            ? new RateLimitedException(e, errorInfo(e), delay.get())
            : e;
      default:
        return e;
    }
  }

  static String describe(Status status, ErrorInfo info) {
    StringBuilder sb = new StringBuilder(status.getCode().name());
    if (!info.getReason().isEmpty()) {
      sb.append(" (").append(info.getReason()).append(')');
    }
    if (status.getDescription() != null) {
      sb.append(": ").append(status.getDescription());
    }
    return sb.toString();
  }

  static Map<String, String> metadata(ErrorInfo info) {
    return Map.copyOf(info.getMetadataMap());
  }
}
