package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.success;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.net.ssl.SSLException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * TLS and mutual TLS against the real server, with certificates made by {@code openssl} for this
 * run: a server on TLS that also requires API keys, and a server on mutual TLS.
 */
class TlsTest {
  private static TestCertificates certs;
  private static ServerProcess tlsServer;
  private static ServerProcess mtlsServer;
  private static String key;

  @BeforeAll
  static void startServers() throws Exception {
    Path dir = Files.createTempDirectory("cugar-metrics-java-tls-");
    certs = new TestCertificates(dir);
    certs.ca("server-ca");
    certs.ca("other-ca");
    certs.ca("client-ca");
    certs.server("server", "server-ca");
    certs.client("agent", "client-ca");
    certs.client("stranger", "other-ca");
    Path keys = dir.resolve("keys.json");
    key = ServerProcess.createKey(keys, "java-tls", "recorder");
    String cert = certs.crt("server").toString();
    String pkey = certs.key("server").toString();
    tlsServer =
        ServerProcess.start(
            "--tls-cert", cert, "--tls-key", pkey, "--auth-keys-file", keys.toString());
    mtlsServer =
        ServerProcess.start(
            "--tls-cert", cert, "--tls-key", pkey,
            "--tls-client-ca", certs.crt("client-ca").toString());
  }

  @AfterAll
  static void stopServers() throws Exception {
    for (ServerProcess s : new ServerProcess[] {tlsServer, mtlsServer}) {
      if (s != null) {
        assertEquals(0, s.stop());
      }
    }
  }

  private static MetricsClient.Builder to(ServerProcess server, String ca) {
    return MetricsClient.newBuilder(server.target()).rootCertificates(certs.crt(ca)).maxAttempts(1);
  }

  /**
   * UNAVAILABLE, and the server logged why it refused the handshake. (With TLS 1.3 the server
   * checks the client's certificate after the client has finished its side of the handshake, so
   * the client only sees the connection close.)
   */
  private static void assertServerRefused(StatusRuntimeException e, String why) throws Exception {
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    long deadline = System.nanoTime() + 5_000_000_000L;
    while (!mtlsServer.log().contains(why) && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertTrue(mtlsServer.log().contains(why), "the server log names " + why);
  }

  /** UNAVAILABLE, caused by the TLS handshake (an {@link SSLException} in the causes). */
  private static void assertHandshakeFailed(StatusRuntimeException e) {
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof SSLException) {
        return;
      }
    }
    throw new AssertionError("no SSLException in the causes of " + e, e);
  }

  @Test
  void apiKeyOverTlsWithTheServersCa() {
    try (MetricsClient client = to(tlsServer, "server-ca").apiKey(key).build()) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success("tls_ok", 1)));
    }
  }

  @Test
  void handshakeFailsWithAnotherCa() {
    try (MetricsClient client = to(tlsServer, "other-ca").apiKey(key).build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("tls_bad", 1)));
      assertHandshakeFailed(e);
    }
  }

  @Test
  void mutualTlsWithACertificateFromTheClientCa() {
    try (MetricsClient client =
        to(mtlsServer, "server-ca").clientCertificate(certs.crt("agent"), certs.key("agent")).build()) {
      assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(success("mtls_ok", 1)));
    }
  }

  @Test
  void mutualTlsFailsWithoutAClientCertificate() throws Exception {
    try (MetricsClient client = to(mtlsServer, "server-ca").build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("mtls_none", 1)));
      assertServerRefused(e, "PEER_DID_NOT_RETURN_A_CERTIFICATE");
    }
  }

  @Test
  void mutualTlsFailsWithACertificateFromAnotherCa() throws Exception {
    try (MetricsClient client =
        to(mtlsServer, "server-ca")
            .clientCertificate(certs.crt("stranger"), certs.key("stranger"))
            .build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.record(success("mtls_bad", 1)));
      assertServerRefused(e, "CERTIFICATE_VERIFY_FAILED");
    }
  }

  @Test
  void anUnreadableCertificateFailsAtBuild() {
    MetricsClient.Builder b =
        MetricsClient.newBuilder(tlsServer.target()).rootCertificates(Path.of("/nonexistent.crt"));
    assertThrows(UncheckedIOException.class, b::build);
  }
}
