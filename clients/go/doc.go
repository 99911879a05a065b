// Package cugarmetrics is the Go client of cugar-metrics, the service that records every
// finished agent execution and turns them into golden signals.
//
// It wraps the generated gRPC stubs (package metricsv1, under gen/) with:
//
//   - [NewClient]: a connection with a default deadline per call and per attempt, retries on
//     UNAVAILABLE (the Record RPCs are idempotent by execution_id, so a retry is never
//     counted twice) and round_robin balancing over every address the target resolves to;
//   - [Client.Record], [Client.RecordBatch] and [Client.Dashboard];
//   - [Client.WatchDashboard]: a live dashboard from the server stream, reopened after a
//     drain or a lost connection ([OnReconnect], [WithoutReconnect]);
//   - [InvalidArgumentError]: the field violations of a rejected request, read with errors.As;
//   - [StartExecution]: a timer that picks a unique execution_id, measures the duration on the
//     monotonic clock, collects tool calls and approvals, and fills in the outcome at End;
//   - [Recorder]: a background batcher that never blocks its caller, keeps and retries what
//     fails for a transient reason, and reports what it drops ([DroppedError]);
//   - [WithAPIKey], [WithTLS] and [AuthError] for a server with API keys and (mutual) TLS,
//     and [RateLimitError]: calls refused by a rate limit wait the server's RetryInfo delay
//     and are tried again ([WithRateLimitRetries]).
//
// The module's import path ends in "go"; import it under the package's own name:
//
//	import cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
package cugarmetrics
