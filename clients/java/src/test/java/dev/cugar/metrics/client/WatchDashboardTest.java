package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.DashboardScope;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link MetricsClient#watchDashboard} against real server processes: the first dashboard at
 * once and new executions in later ticks, the reconnect after a drain to a new server on the same
 * port, the server's refusals, reconnecting off, and close() cancelling the stream. The timeout
 * only guards against a hang; nothing here asserts a speed.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class WatchDashboardTest {
  private static final String WATCHERS = "cugar_dashboard_watchers";

  private final List<ServerProcess> servers = new ArrayList<>();

  @AfterEach
  void stopServers() throws Exception {
    for (ServerProcess s : servers) {
      s.stop();
    }
  }

  private ServerProcess start(int port, String replica, String... args) throws Exception {
    List<String> all = new ArrayList<>(List.of("--replica", replica));
    all.addAll(List.of(args));
    ServerProcess s = ServerProcess.startOn("127.0.0.1", port, all.toArray(String[]::new));
    servers.add(s);
    return s;
  }

  private static WatchOptions every(Duration interval) {
    return WatchOptions.newBuilder().interval(interval).build();
  }

  /** Reads dashboards until one counts {@code total} executions; every one before counts less. */
  private static GetDashboardResponse readUntilTotal(DashboardWatch watch, long total) {
    for (int tick = 0; tick < 30; tick++) {
      GetDashboardResponse d = watch.next();
      if (d.getExecutions().getTotal() == total) {
        return d;
      }
      assertTrue(d.getExecutions().getTotal() < total, "a tick counted " + d.getExecutions());
    }
    throw new AssertionError("no dashboard counted " + total + " executions in 30 ticks");
  }

  /**
   * The first dashboard comes at once (with an interval of an hour it could come no other way),
   * and the dashboard of a request with a profile, a window and the replica scope follows the
   * executions recorded meanwhile, exactly, with the interval of the request.
   */
  @Test
  void theFirstDashboardComesAtOnceAndLaterTicksCountNewExecutions() throws Exception {
    ServerProcess server = start(0, "watch-ticks");
    String profile = uniqueProfile("watch");
    GetDashboardRequest request =
        GetDashboardRequest.newBuilder()
            .setProfile(profile)
            .setWindow(ProtoTime.duration(Duration.ofMinutes(5)))
            .setScope(DashboardScope.DASHBOARD_SCOPE_REPLICA)
            .build();
    try (MetricsClient client = MetricsClient.create(server.target())) {
      try (DashboardWatch hourly = client.watchDashboard(request, every(Duration.ofHours(1)))) {
        assertEquals(3600, hourly.request().getInterval().getSeconds());
        GetDashboardResponse first = hourly.next();
        assertEquals("watch-ticks", first.getReplica());
        assertEquals(0, first.getExecutions().getTotal());
      }

      try (DashboardWatch watch = client.watchDashboard(request, every(Duration.ofSeconds(1)))) {
        GetDashboardResponse first = watch.next();
        assertEquals(0, first.getExecutions().getTotal());
        assertEquals(DashboardScope.DASHBOARD_SCOPE_REPLICA, first.getScope());
        assertEquals(List.of("watch-ticks"), first.getReplicasList());

        // Another profile's execution is not in this dashboard; this profile's is.
        assertEquals(
            RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(uniqueProfile("other"), 1)));
        assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 1.5)));
        GetDashboardResponse later = readUntilTotal(watch, 1);
        assertEquals(1, later.getExecutions().getSucceeded());
        assertEquals(1, later.getProfilesCount());
        assertEquals(profile, later.getProfiles(0).getProfile());

        // The ticks go on, each a whole dashboard.
        assertEquals(1, watch.next().getExecutions().getTotal());
      }
    }
    assertEquals(0, server.stop());
  }

  /**
   * The server drains (SIGTERM) while a watch is open, and a new server with another replica
   * name starts on the same port: the same watch goes on with the new replica's dashboards. The
   * listener was told of each reconnect with the UNAVAILABLE that ended the stream (the drain's
   * "draining, reconnect" first), and the waits were the spec's backoff. Twice: after the second
   * server delivered dashboards, the waits start over at 0.2 s.
   */
  @Test
  void aDrainedServerIsFollowedByTheNewOneOnTheSamePort() throws Exception {
    int port = ServerProcess.freePort("127.0.0.1");
    ServerProcess first = start(port, "first");
    String profile = uniqueProfile("drain");
    List<StatusRuntimeException> errors = new CopyOnWriteArrayList<>();
    List<Duration> waits = new CopyOnWriteArrayList<>();
    WatchOptions options =
        WatchOptions.newBuilder()
            .interval(Duration.ofSeconds(1))
            .onReconnect(
                (error, backoff) -> {
                  errors.add(error);
                  waits.add(backoff);
                })
            .build();
    GetDashboardRequest request = GetDashboardRequest.newBuilder().setProfile(profile).build();

    try (MetricsClient client = MetricsClient.create(first.target());
        DashboardWatch watch = client.watchDashboard(request, options)) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 1)));
      GetDashboardResponse before = readUntilTotal(watch, 1);
      assertEquals("first", before.getReplica());
      assertEquals(List.of(), errors);

      ServerProcess previous = first;
      for (String replica : List.of("second", "third")) {
        int from = errors.size();
        assertEquals(0, previous.stop(), "the server drains and exits 0");
        ServerProcess next = start(port, replica);

        GetDashboardResponse after = watch.next();
        assertEquals(replica, after.getReplica());
        assertEquals(0, after.getExecutions().getTotal(), "a new server, without the old state");

        // One notification at least, the drain's first, each UNAVAILABLE, with waits of 0.2 s,
        // 0.4 s, ... counted from this drain.
        List<StatusRuntimeException> told = errors.subList(from, errors.size());
        assertFalse(told.isEmpty(), "the listener was told of the reconnect to " + replica);
        assertEquals(Status.Code.UNAVAILABLE, told.get(0).getStatus().getCode());
        assertEquals("draining, reconnect", told.get(0).getStatus().getDescription());
        List<Duration> expected = new ArrayList<>();
        for (StatusRuntimeException e : told) {
          assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
          expected.add(DashboardWatch.backoff(expected.size()));
        }
        assertEquals(expected, waits.subList(from, waits.size()));
        assertEquals(Duration.ofMillis(200), waits.get(from));

        // And it follows the new server's executions, without reconnecting meanwhile.
        int reconnects = errors.size();
        assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success(profile, 2)));
        assertEquals(replica, readUntilTotal(watch, 1).getReplica());
        assertEquals(reconnects, errors.size(), "no reconnect while the server serves");
        assertEquals("1.0", next.sample(WATCHERS));
        previous = next;
      }
    }
  }

  /** An interval under a second is refused by the server, naming {@code interval}; no retry. */
  @Test
  void anIntervalUnderOneSecondIsRefusedNamingInterval() throws Exception {
    ServerProcess server = start(0, "watch-refused");
    List<StatusRuntimeException> reconnects = new CopyOnWriteArrayList<>();
    WatchOptions options =
        WatchOptions.newBuilder()
            .interval(Duration.ofMillis(500))
            .onReconnect((error, backoff) -> reconnects.add(error))
            .build();
    try (MetricsClient client = MetricsClient.create(server.target());
        DashboardWatch watch =
            client.watchDashboard(GetDashboardRequest.getDefaultInstance(), options)) {
      InvalidExecutionException e = assertThrows(InvalidExecutionException.class, watch::hasNext);

      assertEquals(Status.Code.INVALID_ARGUMENT, e.status().getCode());
      assertEquals("INVALID_WATCH_REQUEST", e.reason());
      assertEquals(
          List.of("interval"), e.fieldViolations().stream().map(FieldViolation::getField).toList());
      assertEquals("OUT_OF_RANGE", e.violation("interval").orElseThrow().getReason());
      // The watch has ended: nothing more, and it was not reopened.
      assertFalse(watch.hasNext());
      assertThrows(NoSuchElementException.class, watch::next);
      assertEquals(List.of(), reconnects);
    }
    assertEquals("0.0", server.sample(WATCHERS));
  }

  /** A filter the dashboard call would refuse is refused by the watch, on its path. */
  @Test
  void anInvalidDashboardIsRefusedNamingItsField() throws Exception {
    ServerProcess server = start(0, "watch-window");
    GetDashboardRequest tooShort =
        GetDashboardRequest.newBuilder().setWindow(ProtoTime.duration(Duration.ofSeconds(10))).build();
    try (MetricsClient client = MetricsClient.create(server.target());
        DashboardWatch watch = client.watchDashboard(tooShort)) {
      InvalidExecutionException e = assertThrows(InvalidExecutionException.class, watch::next);
      assertEquals(
          List.of("dashboard.window"),
          e.fieldViolations().stream().map(FieldViolation::getField).toList());
      assertEquals(Defaults.WATCH_INTERVAL.getSeconds(), watch.request().getInterval().getSeconds());
    }
  }

  /** Reconnecting off: the drain ends the watch with its UNAVAILABLE, and nothing is reopened. */
  @Test
  void withoutReconnectTheDrainEndsTheWatchWithUnavailable() throws Exception {
    ServerProcess server = start(0, "watch-once");
    List<StatusRuntimeException> reconnects = new CopyOnWriteArrayList<>();
    WatchOptions options =
        WatchOptions.newBuilder()
            .interval(Duration.ofSeconds(1))
            .reconnect(false)
            .onReconnect((error, backoff) -> reconnects.add(error))
            .build();
    try (MetricsClient client = MetricsClient.create(server.target());
        DashboardWatch watch =
            client.watchDashboard(GetDashboardRequest.getDefaultInstance(), options)) {
      assertEquals("watch-once", watch.next().getReplica());

      assertEquals(0, server.stop());

      StatusRuntimeException e = null;
      for (int tick = 0; tick < 30 && e == null; tick++) {
        try {
          // Dashboards sent before the drain may still be read; then the drain's error.
          assertEquals("watch-once", watch.next().getReplica());
        } catch (StatusRuntimeException ended) {
          e = ended;
        }
      }
      assertTrue(e != null, "the drain did not end the watch");
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertEquals("draining, reconnect", e.getStatus().getDescription());
      assertFalse(watch.hasNext());
      assertEquals(List.of(), reconnects);
    }
  }

  /**
   * close() from another thread wakes a reader blocked until the next tick (an hour away) and
   * cancels the stream: the server counts one watcher, then none.
   */
  @Test
  void closeCancelsTheStreamAndWakesTheReader() throws Exception {
    ServerProcess server = start(0, "watch-close");
    try (MetricsClient client = MetricsClient.create(server.target())) {
      DashboardWatch watch =
          client.watchDashboard(
              GetDashboardRequest.getDefaultInstance(), every(Duration.ofHours(1)));
      assertEquals("watch-close", watch.next().getReplica());
      assertEquals("1.0", server.sample(WATCHERS));

      CompletableFuture<Boolean> reader = CompletableFuture.supplyAsync(watch::hasNext);
      watch.close();
      assertEquals(false, reader.get(30, TimeUnit.SECONDS));
      assertFalse(watch.hasNext());
      watch.close(); // idempotent

      assertEquals("0.0", awaitSample(server, WATCHERS, "0.0"));
    }
  }

  /**
   * RESOURCE_EXHAUSTED (the server's watcher limit) ends the watch with that error: it is not a
   * code the watch reconnects on.
   */
  @Test
  void theWatcherLimitEndsTheWatchWithResourceExhausted() throws Exception {
    ServerProcess server = start(0, "watch-limit", "--max-watchers", "1");
    List<StatusRuntimeException> reconnects = new CopyOnWriteArrayList<>();
    WatchOptions options =
        WatchOptions.newBuilder().onReconnect((error, backoff) -> reconnects.add(error)).build();
    try (MetricsClient client = MetricsClient.create(server.target());
        DashboardWatch one = client.watchDashboard(GetDashboardRequest.getDefaultInstance());
        DashboardWatch two =
            client.watchDashboard(GetDashboardRequest.getDefaultInstance(), options)) {
      assertEquals("watch-limit", one.next().getReplica());
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, two::hasNext);
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
      assertTrue(
          e.getStatus().getDescription().startsWith("too many dashboard watchers: 1 open"),
          e.getStatus().getDescription());
      assertFalse(two.hasNext());
      assertEquals(List.of(), reconnects);
      assertEquals("1.0", server.sample(WATCHERS));
    }
  }

  /** The sample's value once it is {@code want}, or the last one seen after 10 s. */
  private static String awaitSample(ServerProcess server, String series, String want)
      throws Exception {
    String value = server.sample(series);
    for (int i = 0; i < 100 && !want.equals(value); i++) {
      Thread.sleep(100);
      value = server.sample(series);
    }
    return value;
  }
}
