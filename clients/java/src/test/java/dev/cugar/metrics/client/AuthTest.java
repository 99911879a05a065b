package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** API keys against the real server started with {@code --auth-keys-file}. */
class AuthTest {
  private static ServerProcess server;
  private static String recorderKey;
  private static String readerKey;

  @BeforeAll
  static void startServer() throws Exception {
    Path keys = Files.createTempDirectory("cugar-metrics-java-keys-").resolve("keys.json");
    recorderKey = ServerProcess.createKey(keys, "java-recorder", "recorder");
    readerKey = ServerProcess.createKey(keys, "java-reader", "reader");
    server = ServerProcess.start("--auth-keys-file", keys.toString());
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (server != null) {
      assertEquals(0, server.stop());
    }
  }

  private static MetricsClient client(String key) {
    MetricsClient.Builder b = MetricsClient.newBuilder(server.target());
    return (key == null ? b : b.apiKey(key)).build();
  }

  @Test
  void noKeyIsUnauthenticatedWithAReadableReason() {
    try (MetricsClient client = client(null)) {
      AuthException e =
          assertThrows(AuthException.class, () -> client.record(success("auth_none", 1)));
      assertEquals(Status.Code.UNAUTHENTICATED, e.code());
      assertEquals("MISSING_CREDENTIALS", e.reason());
      assertFalse(e.isPermissionDenied());
      assertTrue(e.getMessage().startsWith("UNAUTHENTICATED (MISSING_CREDENTIALS): "), e.getMessage());
    }
  }

  @Test
  void unknownKeyIsUnauthenticated() {
    try (MetricsClient client = client("cgm_not_a_key_of_this_server")) {
      AuthException e =
          assertThrows(AuthException.class, () -> client.getDashboard("auth_unknown"));
      assertEquals(Status.Code.UNAUTHENTICATED, e.code());
      assertEquals("UNKNOWN_KEY", e.reason());
    }
  }

  @Test
  void recorderKeyRecordsAndReaderKeyReads() {
    String profile = uniqueProfile("auth_ok");
    try (MetricsClient recorder = client(recorderKey);
        MetricsClient reader = client(readerKey)) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, recorder.record(success(profile, 1)));
      assertEquals(1, reader.getDashboard(profile).getExecutions().getTotal());
    }
  }

  @Test
  void aReaderKeyWatchesAndNoKeyEndsTheWatchUnauthenticated() {
    String profile = uniqueProfile("auth_watch");
    GetDashboardRequest request = GetDashboardRequest.newBuilder().setProfile(profile).build();
    try (MetricsClient recorder = client(recorderKey);
        MetricsClient reader = client(readerKey);
        MetricsClient anonymous = client(null)) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, recorder.record(success(profile, 1)));
      try (DashboardWatch watch = reader.watchDashboard(request)) {
        assertEquals(1, watch.next().getExecutions().getTotal());
      }
      try (DashboardWatch watch = anonymous.watchDashboard(request)) {
        AuthException e = assertThrows(AuthException.class, watch::hasNext);
        assertEquals(Status.Code.UNAUTHENTICATED, e.code());
        assertEquals("MISSING_CREDENTIALS", e.reason());
        assertFalse(watch.hasNext());
      }
    }
  }

  @Test
  void readerKeyIsPermissionDeniedOnRecord() {
    try (MetricsClient reader = client(readerKey)) {
      AuthException e =
          assertThrows(AuthException.class, () -> reader.record(success("auth_reader", 1)));
      assertEquals(Status.Code.PERMISSION_DENIED, e.code());
      assertTrue(e.isPermissionDenied());
      assertEquals("ROLE_NOT_ALLOWED", e.reason());
      assertEquals("reader", e.metadata().get("role"));
    }
  }

  @Test
  void apiKeyIsCheckedAndNeverPrinted() {
    assertThrows(IllegalArgumentException.class, () -> ApiKeyCredentials.of(""));
    assertThrows(IllegalArgumentException.class, () -> ApiKeyCredentials.of("cgm_a b"));
    assertThrows(IllegalArgumentException.class, () -> MetricsClient.newBuilder("x:1").apiKey("k\n"));
    assertEquals("ApiKeyCredentials[Bearer ***]", ApiKeyCredentials.of(recorderKey).toString());
  }
}
