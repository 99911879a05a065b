package dev.cugar.metrics.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The server rejected a request as invalid (status {@code INVALID_ARGUMENT}); nothing of it was
 * recorded. {@link #fieldViolations()} lists each offending field, read from the
 * {@code google.rpc.BadRequest} detail of the status: its path from the request root (for example
 * {@code execution.duration} or {@code execution.tool_calls[0].domain}), a description and an
 * UPPER_SNAKE reason such as {@code REQUIRED} or {@code OUT_OF_RANGE}.
 *
 * <p>Retrying the same request cannot succeed; fix the execution instead.
 */
public final class InvalidExecutionException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Status status;
  private final transient List<FieldViolation> fieldViolations;
  private final String reason;

  InvalidExecutionException(
      Status status, List<FieldViolation> fieldViolations, String reason, Throwable cause) {
    super(describe(status, fieldViolations), cause);
    this.status = status;
    this.fieldViolations = List.copyOf(fieldViolations);
    this.reason = reason;
  }

  /**
   * Returns an {@code InvalidExecutionException} for {@code e} when its status is
   * {@code INVALID_ARGUMENT}, else {@code e} itself.
   */
  static RuntimeException translate(StatusRuntimeException e) {
    if (e.getStatus().getCode() != Status.Code.INVALID_ARGUMENT) {
      return e;
    }
    return new InvalidExecutionException(e.getStatus(), violationsOf(e), reasonOf(e), e);
  }

  /** The reason of the {@code google.rpc.ErrorInfo} detail of {@code e}'s status, or "". */
  static String reasonOf(Throwable e) {
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    if (status == null) {
      return "";
    }
    for (Any detail : status.getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        try {
          return detail.unpack(ErrorInfo.class).getReason();
        } catch (InvalidProtocolBufferException malformed) {
          return "";
        }
      }
    }
    return "";
  }

  /** The field violations of the {@code google.rpc.BadRequest} details of {@code e}'s status. */
  static List<FieldViolation> violationsOf(Throwable e) {
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    List<FieldViolation> out = new ArrayList<>();
    if (status == null) {
      return out;
    }
    for (Any detail : status.getDetailsList()) {
      if (!detail.is(BadRequest.class)) {
        continue;
      }
      try {
        for (BadRequest.FieldViolation v : detail.unpack(BadRequest.class).getFieldViolationsList()) {
          out.add(
              FieldViolation.newBuilder()
                  .setField(v.getField())
                  .setDescription(v.getDescription())
                  .setReason(v.getReason())
                  .build());
        }
      } catch (InvalidProtocolBufferException malformed) {
        // A detail that claims to be a BadRequest but does not parse carries no violations.
      }
    }
    return out;
  }

  /** The gRPC status the server returned ({@code INVALID_ARGUMENT}) with its message. */
  public Status status() {
    return status;
  }

  /** Every field violation the server reported, in the server's order. */
  public List<FieldViolation> fieldViolations() {
    return fieldViolations;
  }

  /**
   * The reason of the status's {@code google.rpc.ErrorInfo} detail: {@code INVALID_EXECUTION},
   * {@code INVALID_BATCH}, ...; empty when the server sent none.
   */
  public String reason() {
    return reason;
  }

  /** The first violation on exactly {@code field} (for example {@code execution.duration}). */
  public Optional<FieldViolation> violation(String field) {
    return fieldViolations.stream().filter(v -> v.getField().equals(field)).findFirst();
  }

  private static String describe(Status status, List<FieldViolation> violations) {
    StringBuilder sb = new StringBuilder("INVALID_ARGUMENT");
    if (status.getDescription() != null) {
      sb.append(": ").append(status.getDescription());
    }
    for (FieldViolation v : violations) {
      sb.append("\n  ").append(v.getField()).append(": ").append(v.getDescription());
      if (!v.getReason().isEmpty()) {
        sb.append(" (").append(v.getReason()).append(')');
      }
    }
    return sb.toString();
  }
}
