package dev.cugar.metrics.client;

import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Map;

/**
 * The server refused the call's credentials: {@code UNAUTHENTICATED} (no API key, a malformed,
 * unknown or revoked one) or {@code PERMISSION_DENIED} (the key's role may not call this method).
 * {@link #reason()} is the {@code google.rpc.ErrorInfo} reason the server sent: {@code
 * MISSING_CREDENTIALS}, {@code MALFORMED_CREDENTIALS}, {@code UNKNOWN_KEY}, {@code REVOKED_KEY}
 * or {@code ROLE_NOT_ALLOWED}.
 *
 * <p>A {@link StatusRuntimeException}, so code that handles grpc's exception keeps working.
 * Retrying with the same key cannot succeed.
 */
public final class AuthException extends StatusRuntimeException {
  private static final long serialVersionUID = 1L;

  private final String reason;
  private final String message;
  private final transient Map<String, String> metadata;

  AuthException(StatusRuntimeException failed, ErrorInfo info) {
    super(failed.getStatus(), failed.getTrailers());
    this.reason = info.getReason();
    this.metadata = StatusDetails.metadata(info);
    this.message =
        StatusDetails.describe(getStatus(), info);
  }

  /** {@code UNAUTHENTICATED} or {@code PERMISSION_DENIED}. */
  public Status.Code code() {
    return getStatus().getCode();
  }

  /** True for {@code PERMISSION_DENIED}: the key is valid but its role may not call the method. */
  public boolean isPermissionDenied() {
    return code() == Status.Code.PERMISSION_DENIED;
  }

  /** The {@code ErrorInfo} reason, for example {@code UNKNOWN_KEY}; empty when none was sent. */
  public String reason() {
    return reason;
  }

  /** The {@code ErrorInfo} metadata (for {@code ROLE_NOT_ALLOWED}: {@code role}, {@code method}). */
  public Map<String, String> metadata() {
    return metadata;
  }

  @Override
  public String getMessage() {
    return message == null ? super.getMessage() : message;
  }
}
