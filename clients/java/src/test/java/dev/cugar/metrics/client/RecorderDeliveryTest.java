package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import io.grpc.Status;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The recorder's delivery contract (clients/README.md): it never blocks, holds at most its
 * buffer size and drops the oldest, keeps and retries failed batches with the same ids, and
 * close() keeps retrying up to its timeout, then reports exactly what it dropped.
 */
class RecorderDeliveryTest {
  private static final Duration NEVER = Duration.ofHours(1);
  private static final Logger RECORDER_LOG = Logger.getLogger(Recorder.class.getName());

  private final List<LogRecord> logged = new CopyOnWriteArrayList<>();
  private final Handler capture =
      new Handler() {
        @Override
        public void publish(LogRecord r) {
          logged.add(r);
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
      };

  @BeforeEach
  void captureLog() {
    RECORDER_LOG.addHandler(capture);
  }

  @AfterEach
  void releaseLog() {
    RECORDER_LOG.removeHandler(capture);
  }

  private List<String> warnings() {
    return logged.stream()
        .filter(r -> r.getLevel() == Level.WARNING)
        .map(LogRecord::getMessage)
        .toList();
  }

  /**
   * The server starts 3 s after the agent recorded 11 executions and called close(): close keeps
   * retrying (the default close timeout is 10 s) and all 11 arrive, exactly once.
   */
  @Test
  void aLateServerGetsEverythingBeforeTheCloseTimeout() throws Exception {
    int port = ServerProcess.freePort("127.0.0.1");
    String profile = uniqueProfile("late");
    CompletableFuture<ServerProcess> server =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                Thread.sleep(3_000);
                return ServerProcess.startOn("127.0.0.1", port);
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            });
    try (MetricsClient client = MetricsClient.create("127.0.0.1:" + port)) {
      Recorder recorder = Recorder.create(client);
      for (int i = 0; i < 11; i++) {
        assertTrue(recorder.submit(success(profile, 1)));
      }

      recorder.close();

      assertEquals(new Recorder.Stats(11, 11, 0, 0, 0, 0, recorder.stats().failedSends()),
          recorder.stats());
      assertEquals(List.of(), warnings());
    } finally {
      ServerProcess s = server.get(60, TimeUnit.SECONDS);
      assertEquals("11.0", s.sample("cugar_ingest_executions_total{result=\"accepted\"}"));
      s.stop();
    }
  }

  /** A batch refused with UNAVAILABLE is kept and re-sent with the same execution ids. */
  @Test
  void retriesResendTheSameExecutionIds() throws Exception {
    try (FakeServer server =
            new FakeServer(n -> n <= 3 ? Status.UNAVAILABLE.asRuntimeException() : null);
        MetricsClient client = MetricsClient.newBuilder(server.target()).maxAttempts(1).build()) {
      Recorder recorder = Recorder.newBuilder(client).flushInterval(NEVER).build();
      List<String> ids = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        Execution e = success("demo", 1);
        ids.add(e.getExecutionId());
        recorder.submit(e);
      }

      assertEquals(0, recorder.shutdown());

      assertEquals(List.of(ids, ids, ids, ids), server.attempts);
      assertEquals(new Recorder.Stats(3, 3, 0, 0, 0, 0, 3), recorder.stats());
    }
  }

  /**
   * Nothing answers: close() keeps retrying for its whole timeout (a lower bound only the retries
   * produce), then reports the exact number dropped: return value, stats and one log line.
   */
  @Test
  void closeRetriesUntilItsTimeoutThenReportsWhatItDropped() throws Exception {
    try (FakeServer server =
            new FakeServer(n -> Status.UNAVAILABLE.withDescription("down").asRuntimeException());
        MetricsClient client = MetricsClient.newBuilder(server.target()).maxAttempts(1).build()) {
      Recorder recorder =
          Recorder.newBuilder(client).flushInterval(NEVER).closeTimeout(Duration.ofSeconds(2)).build();
      for (int i = 0; i < 4; i++) {
        recorder.submit(success("demo", 1));
      }

      long started = System.nanoTime();
      long dropped = recorder.shutdown();
      long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);

      assertEquals(4, dropped);
      assertEquals(4, recorder.stats().dropped());
      assertEquals(0, recorder.stats().pending());
      assertTrue(tookMillis >= 2_000, "close gave up after " + tookMillis + " ms");
      // Sent at once, then after 0.2, 0.4 and 0.8 s of backoff (1.4 s < 2 s): at least 4 tries.
      assertTrue(server.attempts.size() >= 4, server.attempts.size() + " attempts");
      assertEquals(
          List.of(
              "cugar-metrics recorder closed: 4 executions dropped (0 on a full buffer, 0 refused"
                  + " by the server, 4 undelivered within the close timeout of 2.0 s)"),
          warnings());
      assertEquals(4, recorder.shutdown(), "a second close reports the same");
    }
  }

  /**
   * A buffer of 5 takes 8 with no server: the 3 oldest are dropped to make room, the 5 newest
   * are the ones sent, and close() counts 8 in all.
   */
  @Test
  void aFullBufferDropsTheOldest() throws Exception {
    try (FakeServer server = new FakeServer(n -> null);
        MetricsClient client = MetricsClient.create(server.target())) {
      Recorder recorder =
          Recorder.newBuilder(client).bufferCapacity(5).flushInterval(NEVER).build();
      List<String> ids = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        Execution e = success("demo", 1);
        ids.add(e.getExecutionId());
        assertTrue(recorder.submit(e), "the newest is always taken");
      }
      assertEquals(new Recorder.Stats(8, 0, 0, 0, 3, 5, 0), recorder.stats());

      assertTrue(recorder.flush());

      assertEquals(List.of(ids.subList(3, 8)), server.attempts);
      assertEquals(3, recorder.shutdown());
      assertEquals(2, warnings().size(), warnings().toString());
      assertTrue(warnings().get(0).startsWith("cugar-metrics recorder full (5 executions)"));
      assertEquals(
          "cugar-metrics recorder closed: 3 executions dropped (3 on a full buffer, 0 refused"
              + " by the server, 0 undelivered within the close timeout of 10.0 s)",
          warnings().get(1));
    }
  }

  /**
   * A server that accepts the connection and never answers: while the first batch hangs on the
   * network, 2000 more submits all return (none waits for that send: it has not failed yet), the
   * recorder holds exactly its buffer size, and every other execution is counted as dropped.
   */
  @Test
  @Timeout(120) // only a guard: a submit that waited for this send would wait forever
  void submitNeverWaitsForTheNetwork() throws Exception {
    try (Silent silent = new Silent();
        MetricsClient client =
            MetricsClient.newBuilder(silent.target()).deadline(NEVER).attemptDeadline(NEVER).build()) {
      Recorder recorder =
          Recorder.newBuilder(client)
              .bufferCapacity(50)
              .maxBatchSize(10)
              .flushInterval(NEVER)
              .closeTimeout(Duration.ofMillis(500))
              .build();
      for (int i = 0; i < 10; i++) {
        recorder.submit(success("demo", 1));
      }
      waitFor(() -> recorder.inFlight() == 10);

      for (int i = 0; i < 2_000; i++) {
        recorder.submit(success("demo", 1));
      }

      assertEquals(10, recorder.inFlight(), "the first batch is still on the network");
      assertEquals(new Recorder.Stats(2_010, 0, 0, 0, 1_960, 50, 0), recorder.stats());
      assertEquals(2_010, recorder.shutdown());
      assertEquals(new Recorder.Stats(2_010, 0, 0, 0, 2_010, 0, 1), recorder.stats());
    }
  }

  /** A TCP listener that accepts connections and never sends a byte. */
  private static final class Silent implements AutoCloseable {
    private final ServerSocket socket;
    private final List<Socket> accepted = new CopyOnWriteArrayList<>();

    Silent() throws IOException {
      socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
      Thread t =
          new Thread(
              () -> {
                try {
                  while (true) {
                    accepted.add(socket.accept());
                  }
                } catch (IOException closed) {
                  // closed
                }
              });
      t.setDaemon(true);
      t.start();
    }

    String target() {
      return "127.0.0.1:" + socket.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      socket.close();
      for (Socket s : accepted) {
        s.close();
      }
    }
  }

  private static void waitFor(BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not met within 30 s");
      }
      Thread.sleep(10);
    }
  }
}
