// Command basic records a few agent executions with the Go client and prints the dashboard:
//
//	go run ./examples/basic --target 127.0.0.1:50051
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

func main() {
	target := flag.String("target", "localhost:50051", "the server's gRPC address")
	profile := flag.String("profile", "demo", "the agent's permission profile")
	flag.Parse()

	client, err := cugarmetrics.NewClient(*target)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()

	// One execution, timed and recorded synchronously.
	run := cugarmetrics.StartExecution(*profile)
	call := run.StartToolCall("territory", "search_accounts")
	time.Sleep(20 * time.Millisecond) // the tool's work
	call.End(nil)
	approval := run.StartApproval(metricsv1.ApprovalOperation_APPROVAL_OPERATION_EXECUTE)
	approval.End(metricsv1.ApprovalDecision_APPROVAL_DECISION_APPROVED)
	run.AddSteps(2)
	run.SetBudget(1.5, 10, false)
	result, err := client.Record(ctx, run.End(nil))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("recorded %s: %s\n", run.ID(), result)

	// More executions through a background Recorder, which never blocks the agent.
	recorder := cugarmetrics.NewRecorder(client, cugarmetrics.WithFlushInterval(200*time.Millisecond))
	for i := range 5 {
		run := recorder.Start(*profile)
		call := run.StartToolCall("qualification", "score_lead")
		var toolErr error
		if i == 4 {
			toolErr = cugarmetrics.WithErrorType(errors.New("scoring service timed out"), "timeout")
		}
		call.End(toolErr)
		run.AddSteps(1)
		run.End(toolErr) // queued on the recorder
	}
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := recorder.Close(closeCtx); err != nil {
		log.Fatal(err)
	}
	s := recorder.Stats()
	fmt.Printf("recorder: accepted %d, duplicate %d, rejected %d, dropped %d\n", s.Accepted, s.Duplicate, s.Rejected, s.Dropped)

	// A rejected execution names the offending fields.
	_, err = client.Record(ctx, &metricsv1.Execution{ExecutionId: "example-invalid", Profile: *profile})
	var invalid *cugarmetrics.InvalidArgumentError
	if errors.As(err, &invalid) {
		for _, v := range invalid.Violations {
			fmt.Printf("field violation: %s: %s (%s)\n", v.Field, v.Description, v.Reason)
		}
	}

	dash, err := client.Dashboard(ctx, &metricsv1.GetDashboardRequest{Profile: *profile})
	if err != nil {
		log.Fatal(err)
	}
	ex := dash.GetExecutions()
	fmt.Printf("dashboard %s: %d executions, %d succeeded, %d failed\n", *profile, ex.GetTotal(), ex.GetSucceeded(), ex.GetFailed())
}
