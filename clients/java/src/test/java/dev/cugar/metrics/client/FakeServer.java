package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceGrpc;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionsRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionsResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

/**
 * A small gRPC server on a real socket (port 0) whose RecordExecutions answers each attempt as a
 * test says, and keeps the execution ids of every attempt. The real server cannot fail on demand.
 */
final class FakeServer implements AutoCloseable {
  /** The execution ids of each RecordExecutions attempt, in order. */
  final List<List<String>> attempts = new CopyOnWriteArrayList<>();

  private final Server server;

  /** {@code failureOfAttempt}: the failure of the n-th attempt (from 1), or null to accept it. */
  FakeServer(IntFunction<StatusRuntimeException> failureOfAttempt) throws Exception {
    server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(
                new MetricsServiceGrpc.MetricsServiceImplBase() {
                  @Override
                  public void recordExecutions(
                      RecordExecutionsRequest request,
                      StreamObserver<RecordExecutionsResponse> response) {
                    attempts.add(
                        request.getExecutionsList().stream()
                            .map(Execution::getExecutionId)
                            .toList());
                    StatusRuntimeException failure = failureOfAttempt.apply(attempts.size());
                    if (failure != null) {
                      response.onError(failure);
                      return;
                    }
                    RecordExecutionsResponse.Builder ok = RecordExecutionsResponse.newBuilder();
                    for (int i = 0; i < request.getExecutionsCount(); i++) {
                      ok.addResults(RecordResult.RECORD_RESULT_ACCEPTED);
                    }
                    response.onNext(ok.setAcceptedCount(request.getExecutionsCount()).build());
                    response.onCompleted();
                  }
                })
            .build()
            .start();
  }

  String target() {
    return "127.0.0.1:" + server.getPort();
  }

  @Override
  public void close() throws InterruptedException {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }
}
