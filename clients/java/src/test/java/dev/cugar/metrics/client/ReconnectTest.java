package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Direct calls against real server processes that go away and come back, and against two
 * replicas behind one name.
 */
class ReconnectTest {
  private static final String REPLICAS = "cugar-replicas.test";

  private final List<ServerProcess> servers = new ArrayList<>();

  @AfterEach
  void stopServers() throws Exception {
    for (ServerProcess s : servers) {
      s.stop();
    }
  }

  private ServerProcess start(String host, int port, String... args) throws Exception {
    ServerProcess s = ServerProcess.startOn(host, port, args);
    servers.add(s);
    return s;
  }

  /**
   * The server restarts while a direct call is waiting: SIGTERM, 2 s without a server (a deploy's
   * gap), then a new process on the same port, which takes the Python server about a second more
   * to start. The call is accepted by the new server within its deadline (10 s). grpc-java's own
   * retry policy gave up after its backoff of about 0.7 s, and its reconnect delay (1 s, then 1.6
   * times longer) kept failing calls after the server was back.
   */
  @Test
  void aDirectCallSurvivesAServerRestart() throws Exception {
    Path state = Files.createTempDirectory("cugar-metrics-java-state-").resolve("state.bin");
    ServerProcess first = start("127.0.0.1", 0, "--state-file", state.toString());
    String profile = uniqueProfile("restart");
    try (MetricsClient client = MetricsClient.create(first.target())) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 1)));
      assertEquals(0, first.stop());

      CompletableFuture<RecordResult> during =
          CompletableFuture.supplyAsync(() -> client.record(success(profile, 2)));
      Thread.sleep(2_000);
      ServerProcess second =
          start("127.0.0.1", first.grpcPort(), "--state-file", state.toString());

      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, during.get(30, TimeUnit.SECONDS));
      // Right after the restart too: no call fails while the new server is serving.
      for (int i = 0; i < 5; i++) {
        assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 3)));
      }
      assertEquals(7, client.getDashboard(profile).getExecutions().getTotal());
      assertEquals("7.0", second.sample("cugar_ingest_executions_total{result=\"accepted\"}"));
    }
  }

  /** A call made while nothing listens fails, once the deadline has passed, with UNAVAILABLE. */
  @Test
  void aServerThatNeverComesBackFailsWithUnavailableAtTheDeadline() throws Exception {
    try (MetricsClient client =
        MetricsClient.newBuilder(ServerProcess.unreachableTarget())
            .deadline(java.time.Duration.ofSeconds(1))
            .build()) {
      long started = System.nanoTime();
      io.grpc.StatusRuntimeException e =
          org.junit.jupiter.api.Assertions.assertThrows(
              io.grpc.StatusRuntimeException.class, () -> client.record(success("demo", 1)));
      long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);

      assertEquals(io.grpc.Status.Code.UNAVAILABLE, e.getStatus().getCode());
      // It kept reconnecting until the deadline instead of giving up after a few fast failures.
      assertTrue(tookMillis >= 900, "gave up after " + tookMillis + " ms");
    }
  }

  /**
   * Two replicas on one port at 127.0.0.2 and 127.0.0.3, both behind {@value #REPLICAS} (an
   * /etc/hosts entry that scripts/install-tools.sh adds): round_robin spreads 20 calls over both.
   */
  @Test
  void roundRobinReachesEveryReplicaBehindOneName() throws Exception {
    Set<String> resolved = new TreeSet<>();
    for (InetAddress a : InetAddress.getAllByName(REPLICAS)) {
      resolved.add(a.getHostAddress());
    }
    assertTrue(
        resolved.containsAll(List.of("127.0.0.2", "127.0.0.3")),
        REPLICAS + " resolves to " + resolved + ": run scripts/install-tools.sh as root");
    int port = ServerProcess.freePort("127.0.0.2");
    ServerProcess a = start("127.0.0.2", port);
    ServerProcess b = start("127.0.0.3", port);
    String profile = uniqueProfile("replicas");

    try (MetricsClient client = MetricsClient.create(REPLICAS + ":" + port)) {
      for (int i = 0; i < 20; i++) {
        assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 1)));
      }
    }

    String accepted = "cugar_ingest_executions_total{result=\"accepted\"}";
    double onA = Double.parseDouble(a.sample(accepted));
    double onB = Double.parseDouble(b.sample(accepted));
    assertEquals(20.0, onA + onB);
    assertTrue(onA >= 1 && onB >= 1, "127.0.0.2 got " + onA + ", 127.0.0.3 got " + onB);
  }
}
