package dev.cugar.metrics.conformance;

import cugar.metrics.v1.MetricsServiceOuterClass.Approval;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalDecision;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.Budget;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.ExecutionCounts;
import cugar.metrics.v1.MetricsServiceOuterClass.FieldViolation;
import cugar.metrics.v1.MetricsServiceOuterClass.ModelOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.Outcome;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import cugar.metrics.v1.MetricsServiceOuterClass.RejectedExecution;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCall;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCallStatus;
import dev.cugar.metrics.client.BatchResult;
import dev.cugar.metrics.client.ExecutionTimer;
import dev.cugar.metrics.client.ModelCallTimer;
import dev.cugar.metrics.client.InvalidExecutionException;
import dev.cugar.metrics.client.MetricsClient;
import dev.cugar.metrics.client.ProtoTime;
import dev.cugar.metrics.client.RateLimitedException;
import dev.cugar.metrics.client.Recorder;
import io.grpc.StatusRuntimeException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The cross-language conformance scenarios of {@code clients/CONFORMANCE.md}, run against a live
 * server:
 *
 * <pre>
 * Conformance --target HOST:PORT --profile P [--scenario NAME] [--attempt-deadline S]
 *             [--retry-info-cap S] [--buffer-size N] [--close-timeout S] [--api-key KEY]
 * </pre>
 *
 * <p>Scenarios: {@code basic} (the default: each step checks its own result), {@code
 * late-server}, {@code restart}, {@code short-deadline} and {@code overflow} (through the
 * {@link Recorder}), {@code retry-info-over-cap} and {@code two-replicas} (direct calls), {@code
 * models} (model calls through {@link ExecutionTimer#modelCall}, recorded directly). The
 * last line on stdout is the run's account as one JSON object. Exit 0 when the scenario ran as
 * specified, 1 with a message on stderr otherwise, 2 on bad arguments.
 */
public final class Conformance {
  static final Set<String> SCENARIOS =
      Set.of(
          "basic",
          "late-server",
          "restart",
          "retry-info-over-cap",
          "short-deadline",
          "two-replicas",
          "overflow",
          "models");
  private static final String USAGE =
      "usage: conformance --target HOST:PORT --profile PROFILE [--scenario NAME]"
          + " [--attempt-deadline SECONDS] [--retry-info-cap SECONDS] [--buffer-size N]"
          + " [--close-timeout SECONDS] [--api-key KEY]";
  private static final Pattern CLOSE_LINE =
      Pattern.compile("^cugar-metrics recorder closed: (\\d+) executions dropped");

  private final Options options;
  private final PrintStream out;

  private Conformance(Options options, PrintStream out) {
    this.options = options;
    this.out = out;
  }

  /** Runs the scenario and exits with its result. */
  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  /** Runs the scenario; returns the exit code. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      err.println(e.getMessage());
      err.println(USAGE);
      return 2;
    }
    Conformance c = new Conformance(options, out);
    Account account;
    try {
      account =
          switch (options.scenario) {
            case "basic" -> c.basic(err);
            case "late-server" -> c.throughRecorder(c.numbered(11, 7), 0, false);
            case "restart" -> c.throughRecorder(c.numbered(40, 40), 50, false);
            case "short-deadline" -> c.throughRecorder(c.numbered(20, 20), 0, true);
            case "overflow" -> c.overflow();
            case "retry-info-over-cap" -> c.retryInfoOverCap();
            case "two-replicas" -> c.twoReplicas();
            case "models" -> c.models();
            default -> throw new IllegalStateException(options.scenario);
          };
    } catch (Failed f) {
      err.println("conformance FAILED " + f.getMessage());
      return 1;
    } catch (Mismatch m) {
      err.println("conformance FAILED: " + m.getMessage());
      return 1;
    } catch (RuntimeException | InterruptedException e) {
      err.println("conformance FAILED: unexpected error: " + e);
      return 1;
    }
    out.println(account.json(options.scenario));
    return 0;
  }

  // The fault scenarios.

  /** {@code <profile>-1 .. <profile>-<count>}: the first {@code successes} succeed. */
  private List<Execution> numbered(int count, int successes) {
    List<Execution> executions = new ArrayList<>();
    for (int n = 1; n <= count; n++) {
      Execution.Builder e =
          Execution.newBuilder()
              .setExecutionId(options.profile + "-" + n)
              .setProfile(options.profile)
              .setDuration(ProtoTime.seconds(0.5))
              .setSteps(1);
      if (n <= successes) {
        e.setOutcome(Outcome.OUTCOME_SUCCESS);
      } else {
        e.setOutcome(Outcome.OUTCOME_FAILURE).setErrorType("ToolError");
      }
      executions.add(e.build());
    }
    return executions;
  }

  private MetricsClient client() {
    MetricsClient.Builder b = MetricsClient.newBuilder(options.target);
    if (options.apiKey != null) {
      b.apiKey(options.apiKey);
    }
    if (options.attemptDeadline != null) {
      b.attemptDeadline(options.attemptDeadline);
    }
    if (options.retryInfoCap != null) {
      b.retryInfoCap(options.retryInfoCap);
    }
    return b.build();
  }

  private Recorder recorder(MetricsClient client) {
    Recorder.Builder b = Recorder.newBuilder(client);
    if (options.bufferSize != null) {
      b.bufferCapacity(options.bufferSize);
      b.maxBatchSize(Math.min(options.bufferSize, b.maxBatchSize()));
    }
    if (options.closeTimeout != null) {
      b.closeTimeout(options.closeTimeout);
    }
    return b.build();
  }

  /** Records {@code executions} ({@code paceMillis} apart), closes, and accounts for them. */
  private Account throughRecorder(List<Execution> executions, long paceMillis, boolean ready)
      throws InterruptedException {
    try (MetricsClient client = client()) {
      Recorder recorder = recorder(client);
      if (ready) {
        out.println("ready");
        out.flush();
      }
      for (Execution e : executions) {
        recorder.submit(e);
        if (paceMillis > 0) {
          Thread.sleep(paceMillis);
        }
      }
      long dropped = recorder.shutdown();
      Recorder.Stats stats = recorder.stats();
      expect("dropped in the stats (close() returned " + dropped + ")", dropped, stats.dropped());
      out.println("recorder: " + stats);
      return new Account(
          executions.size(),
          stats.accepted() + stats.duplicate(),
          dropped,
          stats.rejected(),
          0,
          0);
    }
  }

  /** No server: a buffer of 5 takes 8; the return value, stats and log line must all agree. */
  private Account overflow() throws InterruptedException {
    List<String> lines = new CopyOnWriteArrayList<>();
    Handler capture =
        new Handler() {
          @Override
          public void publish(LogRecord r) {
            if (r.getLevel().intValue() >= Level.WARNING.intValue()) {
              lines.add(r.getMessage());
            }
          }

          @Override
          public void flush() {}

          @Override
          public void close() {}
        };
    Logger log = Logger.getLogger(Recorder.class.getName());
    log.addHandler(capture);
    try {
      Account account = throughRecorder(numbered(8, 8), 0, false);
      Long logged = null;
      for (String line : lines) {
        Matcher m = CLOSE_LINE.matcher(line);
        if (m.find()) {
          logged = Long.parseLong(m.group(1));
          out.println("log: " + line);
        }
      }
      if (logged == null) {
        throw new Mismatch("close() logged no line with the dropped count: " + lines);
      }
      expect("dropped in the log line", account.dropped, logged);
      return account;
    } finally {
      log.removeHandler(capture);
    }
  }

  /** A direct call, then a second one the rate limit refuses: it waits the cap each retry. */
  private Account retryInfoOverCap() {
    List<Execution> executions = numbered(2, 2);
    try (MetricsClient client = client()) {
      expect("first call", RecordResult.RECORD_RESULT_ACCEPTED, client.record(executions.get(0)));
      long started = System.nanoTime();
      try {
        RecordResult second = client.record(executions.get(1));
        throw new Mismatch("second call answered " + second + ", want RateLimitedException");
      } catch (RateLimitedException e) {
        double waited = (System.nanoTime() - started) / 1e9;
        out.printf(Locale.ROOT, "second call: %s after %.2f s%n", e.getStatus().getCode(), waited);
        return new Account(2, 1, 0, 0, 1, waited);
      }
    }
  }

  /** 20 direct calls, one after another, through the name of two replicas. */
  private Account twoReplicas() {
    int delivered = 0;
    try (MetricsClient client = client()) {
      for (Execution e : numbered(20, 20)) {
        expect("call " + e.getExecutionId(), RecordResult.RECORD_RESULT_ACCEPTED, client.record(e));
        delivered++;
      }
    }
    return new Account(20, delivered, 0, 0, 0, 0);
  }

  // The models scenario: the table of clients/CONFORMANCE.md, through the model-call helper.

  /** Three executions with model calls recorded directly, then the first one again. */
  private Account models() {
    List<Execution> executions = new ArrayList<>();
    try (MetricsClient client = client()) {
      // The helper picks a random execution id; the scenario names them <profile>-N.
      ExecutionTimer one = timer(executions, 1);
      try (ModelCallTimer call = one.modelCall("openai", "gpt-4o")) {
        call.firstToken();
        call.usage(1200, 300).cachedInputTokens(200).cost(0.012);
        call.success();
      }
      try (ModelCallTimer call = one.modelCall("openai", "gpt-4o-mini")) {
        call.firstToken();
        call.usage(100, 20);
        call.success();
      }
      one.succeed();

      ExecutionTimer two = timer(executions, 2);
      try (ModelCallTimer call = two.modelCall("anthropic", "claude-sonnet")) {
        call.usage(0, 0);
        call.rateLimited("RateLimitError");
      }
      try (ModelCallTimer call = two.modelCall("anthropic", "claude-sonnet")) {
        call.firstToken();
        call.usage(800, 150).reasoningTokens(40).cost(0.009);
        call.success();
      }
      two.succeed();

      ExecutionTimer three = timer(executions, 3);
      try (ModelCallTimer call =
          three.modelCall("openai", "gpt-4o", ModelOperation.MODEL_OPERATION_EMBEDDINGS)) {
        call.usage(500, 0).cost(0.0001);
        call.success();
      }
      try (ModelCallTimer call = three.modelCall("openai", "gpt-4o")) {
        call.usage(50, 0);
        call.error("Timeout");
      }
      three.fail("ModelError");

      for (Execution e : executions) {
        expect(e.getExecutionId(), RecordResult.RECORD_RESULT_ACCEPTED, client.record(e));
        out.println(
            e.getExecutionId()
                + " RECORD_RESULT_ACCEPTED ("
                + e.getModelCallsCount()
                + " model calls)");
      }
      Execution first = executions.get(0);
      expect(
          first.getExecutionId() + " again",
          RecordResult.RECORD_RESULT_DUPLICATE,
          client.record(first));
      out.println(first.getExecutionId() + " RECORD_RESULT_DUPLICATE");
    }
    return new Account(4, 4, 0, 0, 0, 0);
  }

  /** A timer whose execution, renamed {@code <profile>-n}, is added to {@code executions}. */
  private ExecutionTimer timer(List<Execution> executions, int n) {
    String id = options.profile + "-" + n;
    return ExecutionTimer.start(
        options.profile, e -> executions.add(e.toBuilder().setExecutionId(id).build()));
  }

  // The basic scenario: each step checks its own result.

  private Account basic(PrintStream err) {
    String step = "connect";
    try (MetricsClient client = client()) {
      Basic b = new Basic(client, options.profile, out);
      step = "1 (record A)";
      Execution a = b.stepOneRecordA();
      step = "2 (re-send A)";
      b.stepTwoResendA(a);
      step = "3 (epoch duration)";
      b.stepThreeEpochDuration();
      step = "4 (batch)";
      b.stepFourBatch();
      step = "5 (dashboard)";
      b.stepFiveDashboard();
    } catch (Mismatch m) {
      throw new Failed("at step " + step + ": " + m.getMessage());
    } catch (InvalidExecutionException | StatusRuntimeException e) {
      throw new Failed("at step " + step + ": unexpected error: " + e.getMessage());
    }
    out.println("conformance OK: all 5 steps match");
    // A, its duplicate, the epoch duration, and the batch of three (one invalid).
    return new Account(6, 4, 0, 2, 0, 0);
  }

  private static final class Basic {
    private final MetricsClient client;
    private final String profile;
    private final PrintStream out;

    Basic(MetricsClient client, String profile, PrintStream out) {
      this.client = client;
      this.profile = profile;
      this.out = out;
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
                  tool(
                      "search_accounts", "territory", ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, 0.2))
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
                            "no violation on execution.duration, got "
                                + fields(e.fieldViolations())));
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

  /** The options of a run. */
  private static final class Options {
    String target;
    String profile;
    String scenario = "basic";
    Duration attemptDeadline;
    Duration retryInfoCap;
    Integer bufferSize;
    Duration closeTimeout;
    String apiKey;

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i += 2) {
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException("missing value for " + args[i]);
        }
        String value = args[i + 1];
        try {
          switch (args[i]) {
            case "--target" -> o.target = value;
            case "--profile" -> o.profile = value;
            case "--scenario" -> o.scenario = value;
            case "--attempt-deadline" -> o.attemptDeadline = seconds(value);
            case "--retry-info-cap" -> o.retryInfoCap = seconds(value);
            case "--buffer-size" -> o.bufferSize = Integer.parseInt(value);
            case "--close-timeout" -> o.closeTimeout = seconds(value);
            case "--api-key" -> o.apiKey = value;
            default -> throw new IllegalArgumentException("unknown argument: " + args[i]);
          }
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("not a number for " + args[i] + ": " + value);
        }
      }
      if (o.target == null || o.target.isEmpty() || o.profile == null || o.profile.isEmpty()) {
        throw new IllegalArgumentException("--target and --profile are required");
      }
      if (!SCENARIOS.contains(o.scenario)) {
        throw new IllegalArgumentException(
            "unknown scenario: " + o.scenario + " (one of " + new java.util.TreeSet<>(SCENARIOS) + ")");
      }
      return o;
    }

    private static Duration seconds(String value) {
      return Duration.ofNanos(Math.round(Double.parseDouble(value) * 1e9));
    }
  }

  /** The program's account of a run: the JSON of its last line. */
  private record Account(
      long recorded,
      long delivered,
      long dropped,
      long rejected,
      long rateLimited,
      double waitedSeconds) {
    String json(String scenario) {
      return String.format(
          Locale.ROOT,
          "{\"scenario\": \"%s\", \"recorded\": %d, \"delivered\": %d, \"dropped\": %d,"
              + " \"rejected\": %d, \"rate_limited\": %d, \"waited_seconds\": %.3f}",
          scenario,
          recorded,
          delivered,
          dropped,
          rejected,
          rateLimited,
          waitedSeconds);
    }
  }

  /** A step that failed: the message names it. */
  private static final class Failed extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Failed(String message) {
      super(message);
    }
  }

  /** A result that differs from the scenario's expectation. */
  private static final class Mismatch extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Mismatch(String message) {
      super(message);
    }
  }
}
