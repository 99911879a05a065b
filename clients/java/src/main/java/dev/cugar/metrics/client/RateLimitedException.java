package dev.cugar.metrics.client;

import com.google.rpc.ErrorInfo;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Map;

/**
 * The server's rate limit refused the call ({@code RESOURCE_EXHAUSTED} with a {@code
 * google.rpc.RetryInfo}) and the client gave up waiting: its rate-limit retries were used up, or
 * the delay would have passed the call's deadline. {@link #retryDelay()} is how long the server
 * asked to wait. A {@link StatusRuntimeException}, so code that handles grpc's exception keeps
 * working.
 */
public final class RateLimitedException extends StatusRuntimeException {
  private static final long serialVersionUID = 1L;

  private final String reason;
  private final String message;
  private final Duration retryDelay;
  private final transient Map<String, String> metadata;

  RateLimitedException(StatusRuntimeException failed, ErrorInfo info, Duration retryDelay) {
    super(failed.getStatus(), failed.getTrailers());
    this.reason = info.getReason();
    this.retryDelay = retryDelay;
    this.metadata = StatusDetails.metadata(info);
    this.message =
        StatusDetails.describe(getStatus(), info)
            + " (retry in " + retryDelay.toMillis() + " ms)";
  }

  /** The delay the server's {@code RetryInfo} asked for, uncapped. */
  public Duration retryDelay() {
    return retryDelay;
  }

  /** The {@code ErrorInfo} reason ({@code RATE_LIMITED}); empty when none was sent. */
  public String reason() {
    return reason;
  }

  /** The {@code ErrorInfo} metadata ({@code key_id}, {@code limit}). */
  public Map<String, String> metadata() {
    return metadata;
  }

  @Override
  public String getMessage() {
    return message == null ? super.getMessage() : message;
  }
}
