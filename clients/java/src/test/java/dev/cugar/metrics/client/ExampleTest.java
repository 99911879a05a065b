package dev.cugar.metrics.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.cugar.metrics.examples.RecordExample;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The example program, run against the real server: its output is what the README shows. */
class ExampleTest {
  private static ServerProcess server;

  @BeforeAll
  static void startServer() throws Exception {
    server = ServerProcess.start();
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (server != null) {
      server.stop();
    }
  }

  @Test
  void exampleRecordsThreeRunsAndPrintsTheDashboard() throws Exception {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);

    int exitCode = RecordExample.run(new String[] {"--target", server.target()}, out);

    assertEquals(0, exitCode);
    assertEquals(
        String.join(
            "\n",
            "acme: contact acme in emea",
            "globex: contact globex in emea",
            "initech: failed (score_lead timed out for initech)",
            "recorder: Stats[submitted=3, accepted=3, duplicate=0, rejected=0, dropped=0,"
                + " pending=0, failedSends=0]",
            "dashboard: executions=3 succeeded=2 failed=1 tool calls=4",
            ""),
        bytes.toString(StandardCharsets.UTF_8));
  }
}
