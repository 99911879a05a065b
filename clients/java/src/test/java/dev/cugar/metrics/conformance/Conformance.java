package dev.cugar.metrics.conformance;

import cugar.metrics.v1.MetricsServiceOuterClass.Approval;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalDecision;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.Budget;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.ExecutionCounts;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.Outcome;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import cugar.metrics.v1.MetricsServiceOuterClass.RejectedExecution;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCallStatus;
import dev.cugar.metrics.client.BatchResult;
import dev.cugar.metrics.client.InvalidExecutionException;
import dev.cugar.metrics.client.MetricsClient;
import dev.cugar.metrics.client.ProtoTime;
import io.grpc.StatusRuntimeException;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;

/**
 * The cross-language conformance scenario, run against a live server:
 *
 * <pre>
 * Conformance --target HOST:PORT --profile P
 * </pre>
 *
 * <p>Each step checks its own result; the program exits 0 when all match, 1 with a message naming
 * the step on the first mismatch or error, 2 on bad arguments.
 */
public final class Conformance {
  private final MetricsClient client;
  private final String profile;
  private final PrintStream out;

  private Conformance(MetricsClient client, String profile, PrintStream out) {
    this.client = client;
    this.profile = profile;
    this.out = out;
  }

  /** Runs the scenario and exits with its result. */
  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  /** Runs the scenario; returns the exit code. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    String target = null;
    String profile = null;
    for (int i = 0; i < args.length; i++) {
      String value = i + 1 < args.length ? args[i + 1] : null;
      switch (args[i]) {
        case "--target" -> target = value;
        case "--profile" -> profile = value;
        default -> {
          err.println("unknown argument: " + args[i]);
          return usage(err);
        }
      }
      i++;
    }
    if (target == null || target.isEmpty() || profile == null || profile.isEmpty()) {
      return usage(err);
    }
    String step = "connect";
    try (MetricsClient client = MetricsClient.create(target)) {
      Conformance scenario = new Conformance(client, profile, out);
      step = "1 (record A)";
      Execution a = scenario.stepOneRecordA();
      step = "2 (re-send A)";
      scenario.stepTwoResendA(a);
      step = "3 (epoch duration)";
      scenario.stepThreeEpochDuration();
      step = "4 (batch)";
      scenario.stepFourBatch();
      step = "5 (dashboard)";
      scenario.stepFiveDashboard();
    } catch (Mismatch m) {
      err.println("conformance FAILED at step " + step + ": " + m.getMessage());
      return 1;
    } catch (InvalidExecutionException | StatusRuntimeException e) {
      err.println("conformance FAILED at step " + step + ": unexpected error: " + e.getMessage());
      return 1;
    }
    out.println("conformance OK: all 5 steps match");
    return 0;
  }

  private Execution stepOneRecordA() {
    Execution a =
        Execution.newBuilder()
            .setExecutionId(profile + "-a")
            .setProfile(profile)
            .setOutcome(Outcome.OUTCOME_SUCCESS)
            .setDuration(ProtoTime.seconds(1.5))
            .setSteps(3)
            .setBudget(Budget.newBuilder().setSpent(2).setLimit(10))
            .addToolCalls(
                tool("search_accounts", "territory", ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, 0.2))
            .addToolCalls(
                tool("score_lead", "qualification", ToolCallStatus.TOOL_CALL_STATUS_ERROR, 0.1)
                    .toBuilder()
                    .setErrorType("timeout"))
            .addApprovals(
                Approval.newBuilder()
                    .setDecision(ApprovalDecision.APPROVAL_DECISION_APPROVED)
                    .setWait(ProtoTime.seconds(30))
                    .setOperation(ApprovalOperation.APPROVAL_OPERATION_EXECUTE))
            .build();
    expect("result of A", RecordResult.RECORD_RESULT_ACCEPTED, client.record(a));
    out.println("step 1: " + a.getExecutionId() + " RECORD_RESULT_ACCEPTED");
    return a;
  }

  private void stepTwoResendA(Execution a) {
    expect("result of A re-sent", RecordResult.RECORD_RESULT_DUPLICATE, client.record(a));
    out.println("step 2: " + a.getExecutionId() + " RECORD_RESULT_DUPLICATE");
  }

  private void stepThreeEpochDuration() {
    Execution bad =
        Execution.newBuilder()
            .setExecutionId(profile + "-bad")
            .setProfile(profile)
            .setOutcome(Outcome.OUTCOME_SUCCESS)
            .setDuration(ProtoTime.seconds(1_700_000_000))
            .build();
    try {
      RecordResult result = client.record(bad);
      throw new Mismatch("expected INVALID_ARGUMENT, got " + result);
    } catch (InvalidExecutionException e) {
      FieldViolation v =
          e.violation("execution.duration")
              .orElseThrow(
                  () ->
                      new Mismatch(
                          "no violation on execution.duration, got " + fields(e.fieldViolations())));
      out.println("step 3: INVALID_ARGUMENT");
      out.println("field violation: " + v.getField() + ": " + v.getDescription());
    }
  }

  private void stepFourBatch() {
    Execution b1 =
        Execution.newBuilder()
            .setExecutionId(profile + "-b1")
            .setProfile(profile)
            .setOutcome(Outcome.OUTCOME_FAILURE)
            .setErrorType("ToolError")
            .setDuration(ProtoTime.seconds(2))
            .addToolCalls(
                tool("send_email", "engagement", ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, 0.3))
            .build();
    Execution b2 =
        Execution.newBuilder()
            .setExecutionId(profile + "-b2")
            .setProfile("")
            .setOutcome(Outcome.OUTCOME_SUCCESS)
            .setDuration(ProtoTime.seconds(1))
            .build();
    Execution b3 =
        Execution.newBuilder()
            .setExecutionId(profile + "-b3")
            .setProfile(profile)
            .setOutcome(Outcome.OUTCOME_SUCCESS)
            .setDuration(ProtoTime.seconds(0.5))
            .build();
    BatchResult result = client.recordBatch(List.of(b1, b2, b3));
    expect("accepted", 2, result.accepted());
    expect("duplicate", 0, result.duplicate());
    expect("rejected", 1, result.rejected());
    expect("rejected items", 1, result.rejections().size());
    RejectedExecution rejected = result.rejections().get(0);
    expect("rejected index", 1, rejected.getIndex());
    expect("rejected execution_id", profile + "-b2", rejected.getExecutionId());
    List<String> fields = fields(rejected.getFieldViolationsList());
    if (!fields.contains("executions[1].profile")) {
      throw new Mismatch("no violation on executions[1].profile, got " + fields);
    }
    out.println(
        "step 4: accepted 2, duplicate 0, rejected 1 (index 1, "
            + rejected.getExecutionId()
            + ", "
            + String.join(", ", fields)
            + ")");
  }

  private void stepFiveDashboard() {
    GetDashboardResponse dashboard = client.getDashboard(profile);
    ExecutionCounts counts = dashboard.getExecutions();
    expect("executions total", 3L, counts.getTotal());
    expect("executions succeeded", 2L, counts.getSucceeded());
    expect("executions failed", 1L, counts.getFailed());
    out.println(
        String.format(
            Locale.ROOT,
            "step 5: dashboard profile=%s executions=%d succeeded=%d failed=%d"
                + " success_rate=%.3f replica=%s",
            profile,
            counts.getTotal(),
            counts.getSucceeded(),
            counts.getFailed(),
            dashboard.getGoldenSignals().getSuccessRate(),
            dashboard.getReplica()));
  }

  private static ToolCall tool(String tool, String domain, ToolCallStatus status, double seconds) {
    return ToolCall.newBuilder()
        .setTool(tool)
        .setDomain(domain)
        .setStatus(status)
        .setDuration(ProtoTime.seconds(seconds))
        .build();
  }

  private static List<String> fields(List<FieldViolation> violations) {
    return violations.stream().map(FieldViolation::getField).toList();
  }

  private static void expect(String what, Object expected, Object actual) {
    if (!expected.equals(actual)) {
      throw new Mismatch(what + ": expected " + expected + ", got " + actual);
    }
  }

  private static int usage(PrintStream err) {
    err.println("usage: conformance --target HOST:PORT --profile PROFILE");
    return 2;
  }

  /** A result that differs from the scenario's expectation. */
  private static final class Mismatch extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Mismatch(String message) {
      super(message);
    }
  }
}
