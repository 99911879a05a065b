package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCallStatus;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Recorder against the real server process (the delivery contract: RecorderDeliveryTest). */
class RecorderTest {
  private static final Duration NEVER = Duration.ofHours(1);

  private static ServerProcess server;
  private static MetricsClient client;

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
      server.stop();
    }
  }

  @Test
  void aFullBatchIsSentWithoutWaitingForTheInterval() throws Exception {
    String profile = uniqueProfile("sizeflush");
    try (Recorder recorder =
        Recorder.newBuilder(client).maxBatchSize(3).flushInterval(NEVER).build()) {
      for (int i = 0; i < 3; i++) {
        assertTrue(recorder.submit(success(profile, 1)));
      }

      waitFor(() -> recorder.stats().accepted() == 3);

      assertEquals(new Recorder.Stats(3, 3, 0, 0, 0, 0, 0), recorder.stats());
    }
    assertEquals(3, client.getDashboard(profile).getExecutions().getTotal());
  }

  @Test
  void theIntervalSendsAPartialBatch() throws Exception {
    String profile = uniqueProfile("intervalflush");
    try (Recorder recorder =
        Recorder.newBuilder(client)
            .maxBatchSize(100)
            .flushInterval(Duration.ofMillis(200))
            .build()) {
      recorder.submit(success(profile, 1));
      recorder.submit(success(profile, 2));

      waitFor(() -> recorder.stats().accepted() == 2);

      assertEquals(new Recorder.Stats(2, 2, 0, 0, 0, 0, 0), recorder.stats());
    }
    assertEquals(2, client.getDashboard(profile).getExecutions().getTotal());
  }

  @Test
  void closeSendsWhatIsBuffered() {
    String profile = uniqueProfile("closeflush");
    Recorder recorder = Recorder.newBuilder(client).maxBatchSize(100).flushInterval(NEVER).build();
    for (int i = 0; i < 5; i++) {
      recorder.submit(success(profile, 1));
    }
    assertEquals(5, recorder.stats().pending());

    recorder.close();

    assertEquals(new Recorder.Stats(5, 5, 0, 0, 0, 0, 0), recorder.stats());
    assertEquals(5, client.getDashboard(profile).getExecutions().getTotal());
    assertFalse(recorder.submit(success(profile, 1)), "a closed recorder takes nothing");
    assertEquals(1, recorder.stats().dropped());
  }

  @Test
  void flushCountsAcceptedDuplicateAndRejectedItems() {
    String profile = uniqueProfile("flushcounts");
    try (Recorder recorder =
        Recorder.newBuilder(client).maxBatchSize(100).flushInterval(NEVER).build()) {
      var valid = success(profile, 1);
      recorder.submit(valid);
      recorder.submit(valid);
      recorder.submit(success(profile, 1_700_000_000));

      assertTrue(recorder.flush());

      assertEquals(new Recorder.Stats(3, 1, 1, 1, 0, 0, 0), recorder.stats());
    }
    assertEquals(1, client.getDashboard(profile).getExecutions().getTotal());
  }

  @Test
  void timeRecordsTheOutcomeOfTheBodyAndRethrowsItsException() {
    String profile = uniqueProfile("timed");
    try (Recorder recorder =
        Recorder.newBuilder(client).maxBatchSize(100).flushInterval(NEVER).build()) {
      String answer =
          recorder.time(
              profile,
              run -> {
                run.toolCall(
                    "search_accounts",
                    "territory",
                    ToolCallStatus.TOOL_CALL_STATUS_SUCCESS,
                    Duration.ofMillis(5));
                return "done";
              });
      IllegalStateException thrown =
          assertThrows(
              IllegalStateException.class,
              () ->
                  recorder.time(
                      profile,
                      run -> {
                        throw new IllegalStateException("no lead");
                      }));
      try (ExecutionTimer run = recorder.start(profile)) {
        run.step();
      }

      assertEquals("done", answer);
      assertEquals("no lead", thrown.getMessage());
      assertTrue(recorder.flush());
      assertEquals(new Recorder.Stats(3, 3, 0, 0, 0, 0, 0), recorder.stats());
    }

    GetDashboardResponse dashboard = client.getDashboard(profile);
    assertEquals(3, dashboard.getExecutions().getTotal());
    assertEquals(1, dashboard.getExecutions().getSucceeded());
    assertEquals(2, dashboard.getExecutions().getFailed());
    assertEquals(2, dashboard.getErrorTypesCount());
    List<String> types = new ArrayList<>();
    dashboard.getErrorTypesList().forEach(t -> types.add(t.getErrorType() + "=" + t.getCount()));
    types.sort(null);
    assertEquals(List.of("IllegalStateException=1", "Incomplete=1"), types);
  }

  private static void waitFor(BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not met within 10 s");
      }
      Thread.sleep(10);
    }
  }
}
