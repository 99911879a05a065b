package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelCallStatus;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelStats;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The model-call helper ({@link ExecutionTimer#modelCall}) with an injected monotonic and wall
 * clock, its executions recorded on the real server and read back through GetDashboard.
 */
class ModelCallTest {
  private static ServerProcess server;
  private static MetricsClient client;

  private final List<Execution> sent = new ArrayList<>();
  private final AtomicLong nanos = new AtomicLong(5_000_000L);
  private final AtomicReference<Instant> wall = new AtomicReference<>(Instant.now());

  @BeforeAll
  static void startServer() throws Exception {
    server = ServerProcess.start();
    client = MetricsClient.create(server.target());
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (client != null) {
      client.close();
    }
    if (server != null) {
      assertEquals(0, server.stop(), "the server drains and exits 0 on SIGTERM");
    }
  }

  private ExecutionTimer start(String profile) {
    Clock clock =
        new Clock() {
          @Override
          public Instant instant() {
            return wall.get();
          }

          @Override
          public ZoneId getZone() {
            return ZoneOffset.UTC;
          }

          @Override
          public Clock withZone(ZoneId zone) {
            return this;
          }
        };
    return new ExecutionTimer(profile, sent::add, nanos::get, clock);
  }

  /** A model name of its own for each test: the dashboard's model rows cover every profile. */
  private static String uniqueModel(String prefix) {
    return uniqueProfile(prefix);
  }

  private static double seconds(com.google.protobuf.Duration d) {
    return d.getSeconds() + d.getNanos() / 1e9;
  }

  private static ModelStats row(GetDashboardResponse d, String provider, String model) {
    return d.getModelsList().stream()
        .filter(m -> m.getProvider().equals(provider) && m.getModel().equals(model))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no models row for " + provider + "/" + model));
  }

  @Test
  void exactTokensAndCostComeBackThroughTheDashboard() {
    String model = uniqueModel("gpt");
    ExecutionTimer run = start(uniqueProfile("models_tokens"));
    try (ModelCallTimer call = run.modelCall("openai", model)) {
      nanos.addAndGet(300_000_000L);
      call.firstToken();
      nanos.addAndGet(900_000_000L);
      call.usage(1200, 300).cachedInputTokens(200).cost(0.012).responseModel(model + "-0613");
      call.success();
    }
    try (ModelCallTimer call = run.modelCall("openai", model)) {
      nanos.addAndGet(100_000_000L);
      call.usage(800, 150).reasoningTokens(40).cost(0.009);
      call.success();
    }
    Execution e = run.succeed();

    assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(e));

    ModelCall first = e.getModelCalls(0);
    assertEquals(ModelOperation.MODEL_OPERATION_CHAT, first.getOperation());
    assertEquals(ProtoTime.seconds(1.2), first.getDuration());
    assertEquals(ProtoTime.seconds(0.3), first.getTimeToFirstToken());
    assertTrue(
        seconds(first.getTimeToFirstToken()) <= seconds(first.getDuration()),
        "time to first token <= duration");
    assertEquals(model + "-0613", first.getResponseModel());
    assertFalse(e.getModelCalls(1).hasTimeToFirstToken(), "no first token marked, none sent");
    assertFalse(e.getModelCalls(1).hasCachedInputTokens());
    ModelStats row = row(client.getDashboard(e.getProfile()), "openai", model);
    assertEquals(2, row.getCalls());
    assertEquals(0, row.getErrors());
    assertEquals(0, row.getRateLimited());
    assertEquals(2000, row.getInputTokens());
    assertEquals(450, row.getOutputTokens());
    assertEquals(200, row.getCachedInputTokens());
    assertEquals(40, row.getReasoningTokens());
    assertEquals(0.021, row.getCost(), 1e-12);
    double ttftP95 = seconds(row.getTimeToFirstTokenP95());
    assertEquals(0.3, ttftP95, 0.3 * 0.01, "time to first token p95 within 1 %");
  }

  @Test
  void errorAndRateLimitedStatusesAreCountedApart() throws Exception {
    String model = uniqueModel("claude");
    ExecutionTimer run = start(uniqueProfile("models_status"));
    try (ModelCallTimer call = run.modelCall("anthropic", model)) {
      call.rateLimited("RateLimitError");
    }
    try (ModelCallTimer call = run.modelCall("anthropic", model)) {
      call.usage(50, 0).error("Timeout");
    }
    // The body form: an exception ends the call as an error named after its class.
    assertThrows(
        TimeoutException.class,
        () ->
            run.modelCall(
                "anthropic",
                model,
                call -> {
                  call.usage(10, 0);
                  throw new TimeoutException("slow");
                }));
    // A call closed without an end is an error, never a success.
    try (ModelCallTimer call = run.modelCall("anthropic", model)) {
      call.usage(5, 0);
    }
    String answer =
        run.modelCall(
            "anthropic",
            model,
            call -> {
              call.usage(800, 150);
              return "hello";
            });
    Execution e = run.fail("ModelError");

    assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(e));

    assertEquals("hello", answer);
    assertEquals(
        List.of(
            ModelCallStatus.MODEL_CALL_STATUS_RATE_LIMITED,
            ModelCallStatus.MODEL_CALL_STATUS_ERROR,
            ModelCallStatus.MODEL_CALL_STATUS_ERROR,
            ModelCallStatus.MODEL_CALL_STATUS_ERROR,
            ModelCallStatus.MODEL_CALL_STATUS_SUCCESS),
        e.getModelCallsList().stream().map(ModelCall::getStatus).toList());
    assertEquals(
        List.of("RateLimitError", "Timeout", "TimeoutException", ExecutionTimer.INCOMPLETE, ""),
        e.getModelCallsList().stream().map(ModelCall::getErrorType).toList());
    ModelStats row = row(client.getDashboard(e.getProfile()), "anthropic", model);
    assertEquals(5, row.getCalls());
    assertEquals(3, row.getErrors());
    assertEquals(1, row.getRateLimited());
    assertEquals(865, row.getInputTokens());
    assertEquals(150, row.getOutputTokens());
    assertEquals(0.0, row.getCost(), "no call reported a cost");
  }

  @Test
  void durationComesFromTheMonotonicClockNotTheWallClock() {
    String model = uniqueModel("mono");
    ExecutionTimer run = start(uniqueProfile("models_mono"));
    ModelCallTimer call = run.modelCall("openai", model, ModelOperation.MODEL_OPERATION_EMBEDDINGS);
    wall.set(wall.get().minus(Duration.ofHours(2)));
    nanos.addAndGet(1_500_000_000L);
    call.usage(500, 0).cost(0.0001);
    ModelCall done = call.success();
    Execution e = run.succeed();

    assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(e));

    assertEquals(ProtoTime.seconds(1.5), done.getDuration());
    assertEquals(ModelOperation.MODEL_OPERATION_EMBEDDINGS, done.getOperation());
    ModelStats row = row(client.getDashboard(e.getProfile()), "openai", model);
    double p50 = seconds(row.getLatencyP50());
    assertEquals(1.5, p50, 1.5 * 0.01, "latency p50 within the sketch's 1 %");
    assertEquals(0.0001, row.getCost(), 1e-15);
  }

  @Test
  void invalidModelCallIsRejectedNamingItsFieldThroughTheClientError() {
    String profile = uniqueProfile("models_bad");
    ExecutionTimer run = start(profile);
    try (ModelCallTimer call = run.modelCall("open ai", "gpt-4o")) {
      call.usage(100, 20).cachedInputTokens(150).success();
    }
    Execution e = run.succeed();

    InvalidExecutionException thrown =
        assertThrows(InvalidExecutionException.class, () -> client.record(e));

    FieldViolation provider = thrown.violation("execution.model_calls[0].provider").orElseThrow();
    assertEquals("INVALID_NAME", provider.getReason());
    FieldViolation cached =
        thrown.violation("execution.model_calls[0].cached_input_tokens").orElseThrow();
    assertEquals("INCONSISTENT", cached.getReason());
    assertEquals(0, client.getDashboard(profile).getExecutions().getTotal(), "nothing recorded");
  }

  @Test
  void onlyTheFirstEndCountsAndFirstTokenKeepsItsFirstMark() {
    ExecutionTimer run = start("demo");
    ModelCallTimer call = run.modelCall("openai", "gpt-4o");
    nanos.addAndGet(100_000_000L);
    call.firstToken();
    nanos.addAndGet(100_000_000L);
    call.firstToken();
    ModelCall first = call.rateLimited("http_429");

    assertSame(first, call.success());
    call.close();
    Execution e = run.succeed();

    assertEquals(List.of(first), e.getModelCallsList());
    assertEquals(ProtoTime.seconds(0.1), first.getTimeToFirstToken());
    assertEquals(ProtoTime.seconds(0.2), first.getDuration());
    assertTrue(call.ended());
  }

  @Test
  void endWithAnExceptionNamesItsClassAndNegativeUsageIsRefused() {
    ExecutionTimer run = start("demo");
    ModelCallTimer call = run.modelCall("openai", "gpt-4o");

    assertThrows(IllegalArgumentException.class, () -> call.usage(-1, 0));
    assertThrows(IllegalArgumentException.class, () -> call.cost(Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> call.cost(-0.5));
    ModelCall done = call.end(new IOException("reset"));

    assertEquals(ModelCallStatus.MODEL_CALL_STATUS_ERROR, done.getStatus());
    assertEquals("IOException", done.getErrorType());
    assertFalse(done.hasCost());
    assertEquals(
        ModelCallStatus.MODEL_CALL_STATUS_SUCCESS, run.modelCall("a", "b").end(null).getStatus());
  }
}
