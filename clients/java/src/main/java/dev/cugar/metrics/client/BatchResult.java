package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionsResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import cugar.metrics.v1.MetricsServiceOuterClass.RejectedExecution;
import java.util.List;

/**
 * What the server did with a batch: {@link MetricsClient#recordBatch}'s result.
 *
 * <p>Short names for the counts and items of the response; {@link #response()} is the message
 * itself.
 *
 * @param response the server's response
 */
public record BatchResult(RecordExecutionsResponse response) {
  /** How many items were new and are now recorded. */
  public int accepted() {
    return response.getAcceptedCount();
  }

  /** How many items were duplicates of already recorded executions. */
  public int duplicate() {
    return response.getDuplicateCount();
  }

  /** How many items failed validation and were not recorded. */
  public int rejected() {
    return response.getRejectedCount();
  }

  /** The result of each item, in request order. */
  public List<RecordResult> results() {
    return response.getResultsList();
  }

  /** The rejected items, in request order, with their index, id and field violations. */
  public List<RejectedExecution> rejections() {
    return response.getRejectedExecutionsList();
  }
}
