package dev.cugar.metrics.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalDecision;
import cugar.metrics.v1.MetricsServiceOuterClass.ApprovalOperation;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.Outcome;
import cugar.metrics.v1.MetricsServiceOuterClass.ToolCallStatus;
import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** ExecutionTimer with a fake monotonic clock and a sink that keeps what it receives. */
class ExecutionTimerTest {
  private static final Instant START = Instant.parse("2026-01-02T03:04:05.5Z");

  private final List<Execution> sent = new ArrayList<>();
  private final AtomicLong nanos = new AtomicLong(1_000_000L);

  private ExecutionTimer start(String profile) {
    return new ExecutionTimer(
        profile, sent::add, nanos::get, Clock.fixed(START, ZoneOffset.UTC));
  }

  @Test
  void succeedRecordsTheMeasuredDurationToolCallsAndApprovals() {
    ExecutionTimer timer = start("sales_rep");
    timer.toolCall(
        "search_accounts", "territory", ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, Duration.ofMillis(200));
    timer.toolCall(
        "score_lead",
        "qualification",
        ToolCallStatus.TOOL_CALL_STATUS_ERROR,
        Duration.ofMillis(100),
        "timeout");
    timer.approval(
        ApprovalDecision.APPROVAL_DECISION_APPROVED,
        ApprovalOperation.APPROVAL_OPERATION_EXECUTE,
        Duration.ofSeconds(30));
    timer.budget(2, 10, false);
    nanos.addAndGet(1_500_000_000L);

    Execution e = timer.succeed();

    assertEquals(List.of(e), sent);
    assertEquals(timer.executionId(), e.getExecutionId());
    assertEquals(e.getExecutionId(), UUID.fromString(e.getExecutionId()).toString());
    assertEquals("sales_rep", e.getProfile());
    assertEquals(Outcome.OUTCOME_SUCCESS, e.getOutcome());
    assertEquals("", e.getErrorType());
    assertEquals(ProtoTime.seconds(1.5), e.getDuration());
    assertEquals(ProtoTime.timestamp(START), e.getStartTime());
    assertEquals(2, e.getSteps(), "steps default to the number of tool calls");
    assertEquals(2, e.getToolCallsCount());
    assertEquals("search_accounts", e.getToolCalls(0).getTool());
    assertEquals(ProtoTime.seconds(0.2), e.getToolCalls(0).getDuration());
    assertEquals("timeout", e.getToolCalls(1).getErrorType());
    assertEquals(ProtoTime.seconds(30), e.getApprovals(0).getWait());
    assertEquals(10.0, e.getBudget().getLimit());
  }

  @Test
  void endWithAnErrorRecordsAFailureNamedAfterItsClass() {
    ExecutionTimer timer = start("demo").steps(7);

    Execution e = timer.end(new TimeoutException("slow"));

    assertEquals(Outcome.OUTCOME_FAILURE, e.getOutcome());
    assertEquals("TimeoutException", e.getErrorType());
    assertEquals(7, e.getSteps());
  }

  @Test
  void endWithoutAnErrorRecordsASuccess() {
    assertEquals(Outcome.OUTCOME_SUCCESS, start("demo").end(null).getOutcome());
  }

  @Test
  void closeWithoutAnEndRecordsAnIncompleteFailureNeverASuccess() {
    try (ExecutionTimer timer = start("demo")) {
      timer.step();
    }

    assertEquals(1, sent.size());
    assertEquals(Outcome.OUTCOME_FAILURE, sent.get(0).getOutcome());
    assertEquals(ExecutionTimer.INCOMPLETE, sent.get(0).getErrorType());
  }

  @Test
  void onlyTheFirstEndIsRecorded() {
    ExecutionTimer timer = start("demo");
    Execution first = timer.fail("ToolError");

    assertSame(first, timer.succeed());
    timer.close();

    assertEquals(List.of(first), sent);
    assertEquals("ToolError", sent.get(0).getErrorType());
  }

  @Test
  void toolTimesTheCallAndRecordsItsErrorBeforeRethrowing() {
    ExecutionTimer timer = start("demo");

    String found =
        timer.tool(
            "search_accounts",
            "territory",
            () -> {
              nanos.addAndGet(250_000_000L);
              return "acme";
            });
    IOException thrown =
        assertThrows(
            IOException.class,
            () ->
                timer.tool(
                    "send_email",
                    "engagement",
                    () -> {
                      nanos.addAndGet(50_000_000L);
                      throw new IOException("smtp down");
                    }));
    Execution e = timer.succeed();

    assertEquals("acme", found);
    assertEquals("smtp down", thrown.getMessage());
    assertEquals(ToolCallStatus.TOOL_CALL_STATUS_SUCCESS, e.getToolCalls(0).getStatus());
    assertEquals(ProtoTime.seconds(0.25), e.getToolCalls(0).getDuration());
    assertEquals(ToolCallStatus.TOOL_CALL_STATUS_ERROR, e.getToolCalls(1).getStatus());
    assertEquals("IOException", e.getToolCalls(1).getErrorType());
    assertEquals(ProtoTime.seconds(0.05), e.getToolCalls(1).getDuration());
  }

  @Test
  void everyExecutionGetsItsOwnId() {
    assertNotEquals(start("demo").executionId(), start("demo").executionId());
  }

  @Test
  void errorTypeIsALabelSafeName() {
    assertEquals("IllegalStateException", ExecutionTimer.errorType(new IllegalStateException()));
    assertEquals("RuntimeException", ExecutionTimer.errorType(new RuntimeException() {}));
    assertEquals("Nested", ExecutionTimer.errorType(new Nested()));
    assertEquals("E_Leading", ExecutionTimer.errorType(new _Leading()));
    assertTrue(ExecutionTimer.errorType(new Nested()).matches("^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"));
  }

  /**
   * The wall clock jumps back an hour (an NTP step, a manual change) while the execution runs:
   * the duration is still the 1.5 s the monotonic clock measured, and the start time is the wall
   * clock's reading at the start. A timer that subtracted wall-clock readings would record a
   * negative duration (or 0 after clamping).
   */
  @Test
  void durationIsMeasuredWithTheMonotonicClockWhileTheWallClockJumps() {
    JumpingClock wall = new JumpingClock(START);
    ExecutionTimer timer = new ExecutionTimer("demo", sent::add, nanos::get, wall);

    wall.jump(Duration.ofHours(-1));
    nanos.addAndGet(1_500_000_000L);
    Execution e = timer.succeed();

    assertEquals(ProtoTime.seconds(1.5), e.getDuration());
    assertEquals(ProtoTime.timestamp(START), e.getStartTime());
  }

  /** The same forward: a jump of a day does not become the duration. */
  @Test
  void aForwardJumpOfTheWallClockIsNotTheDuration() {
    JumpingClock wall = new JumpingClock(START);
    ExecutionTimer timer = new ExecutionTimer("demo", sent::add, nanos::get, wall);

    wall.jump(Duration.ofDays(1));
    nanos.addAndGet(250_000_000L);

    assertEquals(ProtoTime.seconds(0.25), timer.succeed().getDuration());
  }

  @Test
  void theRealClocksGiveAPlausibleDuration() throws Exception {
    List<Execution> real = new ArrayList<>();
    ExecutionTimer timer = ExecutionTimer.start("demo", real::add);
    Thread.sleep(20);

    Duration took = ProtoTime.toJava(timer.succeed().getDuration());

    assertTrue(took.compareTo(Duration.ofMillis(20)) >= 0, took.toString());
    assertTrue(took.compareTo(Duration.ofMinutes(1)) < 0, "a duration, not a timestamp: " + took);
  }

  /** A wall clock the test moves. */
  private static final class JumpingClock extends Clock {
    private Instant now;

    JumpingClock(Instant now) {
      this.now = now;
    }

    void jump(Duration by) {
      now = now.plus(by);
    }

    @Override
    public Instant instant() {
      return now;
    }

    @Override
    public ZoneId getZone() {
      return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(ZoneId zone) {
      throw new UnsupportedOperationException();
    }
  }

  private static final class Nested extends Exception {
    private static final long serialVersionUID = 1L;
  }

  private static final class _Leading extends RuntimeException {
    private static final long serialVersionUID = 1L;
  }
}
