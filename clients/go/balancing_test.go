package cugarmetrics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// A name that resolves to two replicas (a headless Service): the client's default round_robin
// policy sends calls to both, not all to the first that answers.
func TestCallsAreSpreadOverEveryResolvedAddress(t *testing.T) {
	a, b := startServer(t), startServer(t)
	replicas := manual.NewBuilderWithScheme("cugar-test")
	replicas.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.GRPCAddr}, {Addr: b.GRPCAddr}}})
	c := dial(t, replicas.Scheme()+":///replicas", cugarmetrics.WithMaxAttempts(cugarmetrics.DefaultMaxAttempts),
		cugarmetrics.WithDialOptions(grpc.WithResolvers(replicas)))
	profile := name(t, "go")
	for i := range 20 {
		got, err := c.Record(context.Background(), success(fmt.Sprintf("%s-%d", profile, i), profile, time.Second))
		if err != nil || got != cugarmetrics.ResultAccepted {
			t.Fatalf("Record %d = %v, %v; want accepted", i, got, err)
		}
	}
	var totals []uint64
	for _, srv := range []string{a.GRPCAddr, b.GRPCAddr} {
		d := dashboard(t, dial(t, srv), &metricsv1.GetDashboardRequest{Profile: profile})
		totals = append(totals, d.GetExecutions().GetTotal())
	}
	if totals[0] < 1 || totals[1] < 1 || totals[0]+totals[1] != 20 {
		t.Errorf("executions per replica = %v, want at least 1 on each and 20 in all", totals)
	}
	t.Logf("executions per replica: %v", totals)
}
