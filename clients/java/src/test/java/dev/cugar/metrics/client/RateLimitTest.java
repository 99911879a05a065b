package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * RetryInfo against the real server started with {@code --rate-limit-recorder 30/m:1}: each
 * recorder key may make one call at once, then one every 2 s. Each test uses its own key, so its
 * bucket starts full; the shared {@code cugar_rate_limited_total} is compared before and after.
 * No assertion bounds how fast anything is: only lower bounds that the waiting itself produces,
 * and the server's count of refused calls.
 */
class RateLimitTest {
  private static final String LIMITED = "cugar_rate_limited_total{role=\"recorder\"}";

  private static ServerProcess server;
  private static final Map<String, String> KEYS = new HashMap<>();

  @BeforeAll
  static void startServer() throws Exception {
    Path keys = Files.createTempDirectory("cugar-metrics-java-keys-").resolve("keys.json");
    for (String name : new String[] {"waits", "deadline", "recorder"}) {
      KEYS.put(name, ServerProcess.createKey(keys, "java-" + name, "recorder"));
    }
    server =
        ServerProcess.start(
            "--auth-keys-file", keys.toString(), "--rate-limit-recorder", "30/m:1");
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (server != null) {
      assertEquals(0, server.stop());
    }
  }

  private static double limited() throws Exception {
    return Double.parseDouble(server.sample(LIMITED));
  }

  @Test
  void twoImmediateRecordsBothSucceedBecauseTheClientWaited() throws Exception {
    double before = limited();
    String profile = uniqueProfile("rl_wait");
    try (MetricsClient client = MetricsClient.newBuilder(server.target()).apiKey(KEYS.get("waits")).build()) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 1)));
      long start = System.nanoTime();
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 1)));
      long waitedMillis = (System.nanoTime() - start) / 1_000_000;
      // One token every 2 s: the refused call waited for the next one, about 2 s (less by however
      // long the first call took), so at least 1 s unless it did not wait at all.
      assertTrue(waitedMillis >= 1000, "waited " + waitedMillis + " ms");
      System.out.println("RateLimitTest: the second record waited " + waitedMillis + " ms");
    }
    assertEquals(1.0, limited() - before);
  }

  @Test
  void aDelayPastTheDeadlineIsNotWaitedFor() throws Exception {
    double before = limited();
    try (MetricsClient client =
        MetricsClient.newBuilder(server.target())
            .apiKey(KEYS.get("deadline"))
            .deadline(Duration.ofMillis(250))
            .build()) {
      client.record(success("rl_deadline", 1));
      RateLimitedException e =
          assertThrows(RateLimitedException.class, () -> client.record(success("rl_deadline", 1)));
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
      assertEquals("RATE_LIMITED", e.reason());
      // The next token of 30/m comes within 2 s, more than the 250 ms deadline allows.
      assertTrue(e.retryDelay().toMillis() > 250 && e.retryDelay().toMillis() <= 2000, e.getMessage());
    }
    // It gave up instead of waiting a delay past its deadline: the server refused exactly one
    // call, so no retry was sent.
    assertEquals(1.0, limited() - before);
  }

  @Test
  void recorderKeepsTheBatchAndSendsItAfterTheDelay() throws Exception {
    double before = limited();
    String profile = uniqueProfile("rl_recorder");
    try (MetricsClient client =
            MetricsClient.newBuilder(server.target()).apiKey(KEYS.get("recorder")).rateLimitRetries(0).build();
        Recorder recorder =
            Recorder.newBuilder(client)
                .maxBatchSize(1)
                .flushInterval(Duration.ofMillis(50))
                .build()) {
      long start = System.nanoTime();
      assertTrue(recorder.submit(success(profile, 1)));
      assertTrue(recorder.submit(success(profile, 1)));
      // Waits for the event (both accepted); the bound only ends a test that would hang.
      while (recorder.stats().accepted() < 2 && System.nanoTime() - start < 60_000_000_000L) {
        Thread.sleep(10);
      }
      long sentMillis = (System.nanoTime() - start) / 1_000_000;
      Recorder.Stats stats = recorder.stats();
      assertEquals(2, stats.accepted());
      assertEquals(0, stats.dropped());
      assertEquals(1, stats.failedSends(), "one refusal, then nothing sent until the delay passed");
      // The second batch waited for the next token (about 2 s after the first call).
      assertTrue(sentMillis >= 1000, "second batch sent after " + sentMillis + " ms");
    }
    assertEquals(1.0, limited() - before);
  }
}
