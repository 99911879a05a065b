package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import cugar.metrics.v1.MetricsServiceGrpc;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The client's retries and deadlines. The real server cannot be made to fail on demand, so
 * these tests run a small gRPC server, on a real socket on port 0, that answers each attempt as
 * the test says and counts the attempts.
 */
class RetryPolicyTest {
  private Server server;
  private final AtomicInteger attempts = new AtomicInteger();
  private final List<Long> serverDeadlines = new java.util.concurrent.CopyOnWriteArrayList<>();

  @AfterEach
  void stopServer() throws InterruptedException {
    if (server != null) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Starts a server whose n-th RecordExecution attempt (from 1) fails with the status given. */
  private String serve(IntFunction<StatusRuntimeException> failureOfAttempt) throws Exception {
    server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(
                new MetricsServiceGrpc.MetricsServiceImplBase() {
                  @Override
                  public void recordExecution(
                      RecordExecutionRequest request,
                      StreamObserver<RecordExecutionResponse> response) {
                    io.grpc.Deadline deadline = io.grpc.Context.current().getDeadline();
                    serverDeadlines.add(
                        deadline == null ? -1 : deadline.timeRemaining(TimeUnit.MILLISECONDS));
                    StatusRuntimeException failure =
                        failureOfAttempt.apply(attempts.incrementAndGet());
                    if (failure != null) {
                      response.onError(failure);
                      return;
                    }
                    response.onNext(
                        RecordExecutionResponse.newBuilder()
                            .setResult(RecordResult.RECORD_RESULT_ACCEPTED)
                            .build());
                    response.onCompleted();
                  }
                })
            .build()
            .start();
    return "127.0.0.1:" + server.getPort();
  }

  @Test
  void unavailableIsRetriedUntilTheServerAnswers() throws Exception {
    String target = serve(n -> n <= 2 ? Status.UNAVAILABLE.asRuntimeException() : null);

    try (MetricsClient client = MetricsClient.create(target)) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success("demo", 1)));
    }

    assertEquals(3, attempts.get());
  }

  @Test
  void retriesStopAtMaxAttempts() throws Exception {
    String target = serve(n -> Status.UNAVAILABLE.withDescription("draining").asRuntimeException());

    try (MetricsClient client = MetricsClient.newBuilder(target).maxAttempts(3).build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("demo", 1)));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }

    assertEquals(3, attempts.get());
  }

  @Test
  void maxAttemptsOfOneDisablesRetries() throws Exception {
    String target = serve(n -> Status.UNAVAILABLE.asRuntimeException());

    try (MetricsClient client = MetricsClient.newBuilder(target).maxAttempts(1).build()) {
      assertThrows(StatusRuntimeException.class, () -> client.record(success("demo", 1)));
    }

    assertEquals(1, attempts.get());
  }

  @Test
  void invalidArgumentIsNeitherRetriedNorLeftUnparsed() throws Exception {
    com.google.rpc.Status status =
        com.google.rpc.Status.newBuilder()
            .setCode(Code.INVALID_ARGUMENT_VALUE)
            .setMessage("invalid execution")
            .addDetails(
                Any.pack(
                    BadRequest.newBuilder()
                        .addFieldViolations(
                            BadRequest.FieldViolation.newBuilder()
                                .setField("execution.steps")
                                .setDescription("is more than 100000")
                                .setReason("OUT_OF_RANGE"))
                        .build()))
            .build();
    String target = serve(n -> StatusProto.toStatusRuntimeException(status));

    try (MetricsClient client = MetricsClient.create(target)) {
      InvalidExecutionException e =
          assertThrows(InvalidExecutionException.class, () -> client.record(success("demo", 1)));
      assertEquals(1, e.fieldViolations().size());
      assertEquals("execution.steps", e.fieldViolations().get(0).getField());
      assertEquals("is more than 100000", e.fieldViolations().get(0).getDescription());
      assertEquals("OUT_OF_RANGE", e.fieldViolations().get(0).getReason());
      assertEquals("", e.reason());
    }

    assertEquals(1, attempts.get());
  }

  @Test
  void theDefaultIsFiveAttempts() throws Exception {
    String target = serve(n -> Status.UNAVAILABLE.withDescription("draining").asRuntimeException());

    try (MetricsClient client = MetricsClient.create(target)) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("demo", 1)));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }

    assertEquals(Defaults.MAX_ATTEMPTS, attempts.get());
    assertEquals(5, attempts.get());
  }

  @Test
  void everyCallGetsTheClientDeadline() throws Exception {
    String target = serve(n -> sleepThenAnswer());

    try (MetricsClient client =
        MetricsClient.newBuilder(target).deadline(Duration.ofMillis(300)).build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("demo", 1)));

      assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    }

    assertEquals(1, attempts.get(), "a deadline is not retried");
    // The server received the call with the client's deadline (grpc-timeout), not a longer one.
    long seen = serverDeadlines.get(0);
    assertTrue(seen > 0 && seen <= 300, "the server saw " + seen + " ms left");
  }

  @Test
  void eachAttemptGetsTheAttemptDeadlineWithinTheCallDeadline() throws Exception {
    String target = serve(n -> sleepThenAnswer());

    try (MetricsClient client =
        MetricsClient.newBuilder(target)
            .deadline(Duration.ofSeconds(20))
            .attemptDeadline(Duration.ofMillis(400))
            .build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("demo", 1)));
      assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    }

    assertEquals(1, attempts.get());
    long seen = serverDeadlines.get(0);
    assertTrue(seen > 0 && seen <= 400, "the attempt reached the server with " + seen + " ms left");
  }

  private static StatusRuntimeException sleepThenAnswer() {
    try {
      Thread.sleep(3_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return null;
  }

  @Test
  void aClientOverTheCallersChannelLeavesItOpen() throws Exception {
    String target = serve(n -> null);
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    try {
      MetricsClient client = MetricsClient.forChannel(channel, Duration.ofSeconds(5));
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success("demo", 1)));

      client.close();

      assertFalse(channel.isShutdown());
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
