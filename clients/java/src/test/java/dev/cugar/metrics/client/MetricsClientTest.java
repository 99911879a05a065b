package dev.cugar.metrics.client;

import static dev.cugar.metrics.client.TestExecutions.failure;
import static dev.cugar.metrics.client.TestExecutions.success;
import static dev.cugar.metrics.client.TestExecutions.uniqueProfile;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.DashboardScope;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import cugar.metrics.v1.MetricsServiceOuterClass.RejectedExecution;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCallStatus;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolStats;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** MetricsClient against the real server process. */
class MetricsClientTest {
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
      assertEquals(0, server.stop(), "the server drains and exits 0 on SIGTERM");
    }
  }

  @Test
  void recordReturnsAcceptedThenDuplicateForTheSameExecutionId() {
    String profile = uniqueProfile("dup");
    Execution execution = success(profile, 1.5);

    assertEquals(RecordResult.RECORD_RESULT_ACCEPTED, client.record(execution));
    assertEquals(RecordResult.RECORD_RESULT_DUPLICATE, client.record(execution));

    assertEquals(1, client.getDashboard(profile).getExecutions().getTotal());
  }

  @Test
  void epochTimestampSentAsDurationIsRejectedOnExecutionDuration() {
    String profile = uniqueProfile("epoch");
    Execution epoch = success(profile, 1_700_000_000);

    InvalidExecutionException e =
        assertThrows(InvalidExecutionException.class, () -> client.record(epoch));

    assertEquals(Status.Code.INVALID_ARGUMENT, e.status().getCode());
    assertEquals("INVALID_EXECUTION", e.reason());
    assertEquals(1, e.fieldViolations().size());
    FieldViolation v = e.violation("execution.duration").orElseThrow();
    assertEquals("OUT_OF_RANGE", v.getReason());
    assertTrue(v.getDescription().contains("epoch timestamp"), v.getDescription());
    assertEquals(0, client.getDashboard(profile).getExecutions().getTotal(), "nothing recorded");
  }

  @Test
  void everyInvalidFieldIsNamedByItsPathFromTheRequestRoot() {
    Execution bad =
        success("x", 1).toBuilder()
            .setProfile("")
            .addToolCalls(
                ToolCall.newBuilder()
                    .setTool("search_accounts")
                    .setDomain("bad domain")
                    .setStatus(ToolCallStatus.TOOL_CALL_STATUS_SUCCESS)
                    .setDuration(ProtoTime.seconds(0.2)))
            .build();

    InvalidExecutionException e =
        assertThrows(InvalidExecutionException.class, () -> client.record(bad));

    assertEquals(
        List.of("execution.profile", "execution.tool_calls[0].domain"), fields(e.fieldViolations()));
    assertEquals(
        List.of("REQUIRED", "INVALID_NAME"),
        e.fieldViolations().stream().map(FieldViolation::getReason).toList());
  }

  @Test
  void batchRecordsTheValidItemsAndListsTheRejectedOnes() {
    String profile = uniqueProfile("batch");
    Execution b2 = success("", 1);

    BatchResult result =
        client.recordBatch(List.of(success(profile, 2), b2, failure(profile, "ToolError", 0.5)));

    assertEquals(2, result.accepted());
    assertEquals(0, result.duplicate());
    assertEquals(1, result.rejected());
    assertEquals(
        List.of(
            RecordResult.RECORD_RESULT_ACCEPTED,
            RecordResult.RECORD_RESULT_REJECTED,
            RecordResult.RECORD_RESULT_ACCEPTED),
        result.results());
    assertEquals(1, result.rejections().size());
    RejectedExecution rejected = result.rejections().get(0);
    assertEquals(1, rejected.getIndex());
    assertEquals(b2.getExecutionId(), rejected.getExecutionId());
    assertEquals(List.of("executions[1].profile"), fields(rejected.getFieldViolationsList()));

    GetDashboardResponse dashboard = client.getDashboard(profile);
    assertEquals(2, dashboard.getExecutions().getTotal());
    assertEquals(1, dashboard.getExecutions().getSucceeded());
    assertEquals(1, dashboard.getExecutions().getFailed());
  }

  @Test
  void batchRepeatingAnExecutionIdCountsItOnce() {
    String profile = uniqueProfile("batchdup");
    Execution once = success(profile, 1);

    BatchResult result = client.recordBatch(List.of(once, once));

    assertEquals(1, result.accepted());
    assertEquals(1, result.duplicate());
    assertEquals(
        List.of(RecordResult.RECORD_RESULT_ACCEPTED, RecordResult.RECORD_RESULT_DUPLICATE),
        result.results());
    assertEquals(1, client.getDashboard(profile).getExecutions().getTotal());
  }

  @Test
  void batchOverTheMaximumIsRefusedAsAWholeAndRecordsNothing() {
    String profile = uniqueProfile("toobig");
    List<Execution> tooMany = new ArrayList<>();
    for (int i = 0; i < MetricsClient.MAX_BATCH_SIZE + 1; i++) {
      tooMany.add(success(profile, 1));
    }

    InvalidExecutionException e =
        assertThrows(InvalidExecutionException.class, () -> client.recordBatch(tooMany));

    assertEquals("INVALID_BATCH", e.reason());
    assertEquals(List.of("executions"), fields(e.fieldViolations()));
    assertEquals("BATCH_SIZE", e.fieldViolations().get(0).getReason());
    assertEquals(0, client.getDashboard(profile).getExecutions().getTotal());
  }

  @Test
  void dashboardCountsTheExecutionsAndToolCallsOfAProfile() {
    String profile = uniqueProfile("dash");
    String domain = uniqueProfile("domain");
    ToolCall ok =
        ToolCall.newBuilder()
            .setTool("lookup")
            .setDomain(domain)
            .setStatus(ToolCallStatus.TOOL_CALL_STATUS_SUCCESS)
            .setDuration(ProtoTime.seconds(0.25))
            .build();
    ToolCall failed =
        ok.toBuilder().setStatus(ToolCallStatus.TOOL_CALL_STATUS_ERROR).setErrorType("timeout").build();
    client.record(success(profile, 1).toBuilder().setSteps(2).addToolCalls(ok).build());
    client.record(success(profile, 3).toBuilder().setSteps(4).addToolCalls(ok).build());
    client.record(failure(profile, "ToolError", 2).toBuilder().setSteps(6).addToolCalls(failed).build());

    GetDashboardResponse dashboard =
        client.getDashboard(
            GetDashboardRequest.newBuilder().setProfile(profile).setDomain(domain).build());

    assertEquals(DashboardScope.DASHBOARD_SCOPE_REPLICA, dashboard.getScope());
    assertEquals(3, dashboard.getExecutions().getTotal());
    assertEquals(2, dashboard.getExecutions().getSucceeded());
    assertEquals(1, dashboard.getExecutions().getFailed());
    assertEquals(12, dashboard.getExecutions().getTotalSteps());
    assertEquals(2.0 / 3.0, dashboard.getGoldenSignals().getSuccessRate(), 1e-12);
    assertEquals(1.0 / 3.0, dashboard.getGoldenSignals().getErrorRate(), 1e-12);
    assertEquals(4.0, dashboard.getGoldenSignals().getMeanSteps(), 1e-12);
    assertEquals(
        Duration.ofSeconds(2), ProtoTime.toJava(dashboard.getGoldenSignals().getLatencyMean()));
    assertEquals(1, dashboard.getErrorTypesCount());
    assertEquals("ToolError", dashboard.getErrorTypes(0).getErrorType());
    assertEquals(1, dashboard.getErrorTypes(0).getCount());
    assertEquals(1, dashboard.getToolsCount());
    ToolStats tool = dashboard.getTools(0);
    assertEquals(domain, tool.getDomain());
    assertEquals("lookup", tool.getTool());
    assertEquals(3, tool.getCalls());
    assertEquals(1, tool.getErrors());
    assertEquals(1.0 / 3.0, tool.getErrorRate(), 1e-12);
  }

  @Test
  void idleProfileHasNoRatesRatherThanZero() {
    GetDashboardResponse dashboard = client.getDashboard(uniqueProfile("idle"));

    assertEquals(0, dashboard.getExecutions().getTotal());
    assertFalse(dashboard.getGoldenSignals().hasSuccessRate());
    assertFalse(dashboard.getGoldenSignals().hasErrorRate());
  }

  private static List<String> fields(List<FieldViolation> violations) {
    return violations.stream().map(FieldViolation::getField).toList();
  }
}
