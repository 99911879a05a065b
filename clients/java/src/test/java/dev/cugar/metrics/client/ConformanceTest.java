package dev.cugar.metrics.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolStats;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * conformance.sh, run as a user runs it (plain java on the built classes), against a server of
 * its own so that the server-wide ingest counts are exact.
 */
class ConformanceTest {
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
  void conformanceScenarioPassesAndLeavesExactlyTheExpectedCounts() throws Exception {
    Result run = conformance("--target", server.target(), "--profile", "javaconf");

    assertEquals(0, run.exitCode, run.toString());
    assertTrue(
        run.stdout.contains(
            "field violation: execution.duration: is 1.7e+09s, more than the maximum of 86400s."),
        run.stdout);
    assertTrue(run.stdout.contains("conformance OK: all 5 steps match"), run.stdout);

    try (MetricsClient client = MetricsClient.create(server.target())) {
      GetDashboardResponse dashboard = client.getDashboard("javaconf");
      assertEquals(3, dashboard.getExecutions().getTotal());
      assertEquals(2, dashboard.getExecutions().getSucceeded());
      assertEquals(1, dashboard.getExecutions().getFailed());
      assertEquals(1, dashboard.getErrorTypesCount());
      assertEquals("ToolError", dashboard.getErrorTypes(0).getErrorType());
      assertEquals(1, dashboard.getErrorTypes(0).getCount());
      assertEquals(3, dashboard.getIngest().getAccepted());
      assertEquals(1, dashboard.getIngest().getDuplicate());
      assertEquals(2, dashboard.getIngest().getRejected());
      assertEquals(
          List.of(
              "engagement/send_email calls=1 errors=0",
              "qualification/score_lead calls=1 errors=1",
              "territory/search_accounts calls=1 errors=0"),
          toolRows(client.getDashboard(GetDashboardRequest.getDefaultInstance())));
    }
    assertEquals(
        "1.0",
        server.sample(
            "cugar_tool_calls_total{domain=\"qualification\",status=\"error\",tool=\"score_lead\"}"));
  }

  @Test
  void conformanceFailsWithAClearMessageWhenTheServerIsUnreachable() throws Exception {
    Result run = conformance("--target", ServerProcess.unreachableTarget(), "--profile", "down");

    assertEquals(1, run.exitCode, run.toString());
    assertTrue(
        run.stderr.startsWith(
            "conformance FAILED at step 1 (record A): unexpected error: UNAVAILABLE"),
        run.stderr);
  }

  @Test
  void conformanceRejectsMissingArguments() throws Exception {
    Result run = conformance("--target", server.target());

    assertEquals(2, run.exitCode, run.toString());
    assertTrue(
        run.stderr.startsWith(
            "--target and --profile are required\nusage: conformance --target HOST:PORT"),
        run.stderr);
  }

  private static List<String> toolRows(GetDashboardResponse dashboard) {
    List<String> rows = new ArrayList<>();
    for (ToolStats t : dashboard.getToolsList()) {
      rows.add(t.getDomain() + "/" + t.getTool() + " calls=" + t.getCalls() + " errors=" + t.getErrors());
    }
    return rows;
  }

  private record Result(int exitCode, String stdout, String stderr) {}

  private static Result conformance(String... args) throws IOException, InterruptedException {
    Path dir = Files.createTempDirectory("cugar-conformance-");
    Path stdout = dir.resolve("stdout");
    Path stderr = dir.resolve("stderr");
    List<String> command = new ArrayList<>(List.of("bash", "conformance.sh"));
    command.addAll(List.of(args));
    Process p =
        new ProcessBuilder(command)
            .redirectOutput(stdout.toFile())
            .redirectError(stderr.toFile())
            .start();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("conformance.sh did not finish within 60 s");
    }
    return new Result(
        p.exitValue(),
        Files.readString(stdout, StandardCharsets.UTF_8),
        Files.readString(stderr, StandardCharsets.UTF_8));
  }
}
