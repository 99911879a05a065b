package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.Outcome;
import java.util.UUID;

/** Builders of valid executions for the tests. */
final class TestExecutions {
  private TestExecutions() {}

  static String newId() {
    return UUID.randomUUID().toString();
  }

  static Execution success(String profile, double seconds) {
    return Execution.newBuilder()
        .setExecutionId(newId())
        .setProfile(profile)
        .setOutcome(Outcome.OUTCOME_SUCCESS)
        .setDuration(ProtoTime.seconds(seconds))
        .build();
  }

  static Execution failure(String profile, String errorType, double seconds) {
    return success(profile, seconds).toBuilder()
        .setOutcome(Outcome.OUTCOME_FAILURE)
        .setErrorType(errorType)
        .build();
  }

  /** A profile name no other test uses, so that dashboard counts of a shared server are exact. */
  static String uniqueProfile(String prefix) {
    return prefix + "_" + UUID.randomUUID().toString().substring(0, 8);
  }
}
