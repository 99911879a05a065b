package dev.cugar.metrics.examples;

import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalDecision;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import dev.cugar.metrics.client.ExecutionTimer;
import dev.cugar.metrics.client.MetricsClient;
import dev.cugar.metrics.client.Recorder;
import java.io.PrintStream;
import java.time.Duration;
import java.util.concurrent.TimeoutException;

/**
 * An agent that records its executions: three runs of a toy sales agent, sent in the background
 * by a {@link Recorder}, then the dashboard of its profile.
 *
 * <pre>
 * RecordExample [--target HOST:PORT] [--profile P]     (defaults: localhost:50051, example)
 * </pre>
 */
public final class RecordExample {
  private RecordExample() {}

  public static void main(String[] args) throws Exception {
    System.exit(run(args, System.out));
  }

  /** Runs the example; returns the exit code. */
  public static int run(String[] args, PrintStream out) throws Exception {
    String target = "localhost:50051";
    String profile = "example";
    for (int i = 0; i + 1 < args.length; i += 2) {
      switch (args[i]) {
        case "--target" -> target = args[i + 1];
        case "--profile" -> profile = args[i + 1];
        default -> throw new IllegalArgumentException("unknown argument: " + args[i]);
      }
    }

    try (MetricsClient client = MetricsClient.create(target);
        Recorder recorder = Recorder.create(client)) {
      for (String account : new String[] {"acme", "globex", "initech"}) {
        try {
          String plan = recorder.time(profile, run -> qualify(run, account));
          out.println(account + ": " + plan);
        } catch (TimeoutException e) {
          out.println(account + ": failed (" + e.getMessage() + ")");
        }
      }
      recorder.flush();
      out.println("recorder: " + recorder.stats());

      GetDashboardResponse dashboard = client.getDashboard(profile);
      out.printf(
          "dashboard: executions=%d succeeded=%d failed=%d tool calls=%d%n",
          dashboard.getExecutions().getTotal(),
          dashboard.getExecutions().getSucceeded(),
          dashboard.getExecutions().getFailed(),
          dashboard.getToolsList().stream().mapToLong(t -> t.getCalls()).sum());
    }
    return 0;
  }

  /** One run of the toy agent: two tool calls, and a human approval for the outreach. */
  private static String qualify(ExecutionTimer run, String account) throws TimeoutException {
    String region = run.tool("search_accounts", "territory", () -> "emea");
    if (account.equals("initech")) {
      run.tool(
          "score_lead",
          "qualification",
          () -> {
            throw new TimeoutException("score_lead timed out for " + account);
          });
    }
    run.budget(1.5, 10, false);
    run.approval(
        ApprovalDecision.APPROVAL_DECISION_APPROVED,
        ApprovalOperation.APPROVAL_OPERATION_EXECUTE,
        Duration.ofSeconds(12));
    return "contact " + account + " in " + region;
  }
}
