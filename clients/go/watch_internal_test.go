package cugarmetrics

// The reconnect backoff is a matter of time, which the tests against the real server do not
// measure: here the watch records each wait instead of sleeping, against a small in-process
// gRPC server that refuses and ends streams on purpose (as faults_test.go does for calls).

import (
	"context"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// flakyWatchServer answers the n-th WatchDashboard stream (from 1) as script[n-1] says: the
// number of dashboards to send, then UNAVAILABLE.
type flakyWatchServer struct {
	metricsv1.UnimplementedMetricsServiceServer
	script []int
	opens  atomic.Int32
}

func (s *flakyWatchServer) WatchDashboard(_ *metricsv1.WatchDashboardRequest,
	stream grpc.ServerStreamingServer[metricsv1.GetDashboardResponse]) error {
	n := int(s.opens.Add(1))
	if n > len(s.script) {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	for i := range s.script[n-1] {
		if err := stream.Send(&metricsv1.GetDashboardResponse{Replica: "flaky", Executions: &metricsv1.ExecutionCounts{Total: uint64(n*10 + i)}}); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "draining, reconnect")
}

// Each failed reopen in a row waits twice as long (0.2 s, 0.4 s, 0.8 s, ...) and a
// dashboard starts the backoff again at 0.2 s.
func TestWatchBackoffGrowsAndResetsAfterADashboard(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Streams 1 to 3 fail at once, 4 sends a dashboard and fails, 5 fails, 6 sends one.
	fs := &flakyWatchServer{script: []int{0, 0, 0, 1, 0, 1}}
	gs := grpc.NewServer()
	metricsv1.RegisterMetricsServiceServer(gs, fs)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	c, err := NewClient(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var waits []time.Duration
	var reconnects int
	w := c.WatchDashboard(t.Context(), nil, OnReconnect(func(err error) {
		reconnects++
		if status.Code(err) != codes.Unavailable {
			t.Errorf("reconnect %d error: %v, want UNAVAILABLE", reconnects, err)
		}
	}))
	defer w.Close()
	w.wait = func(_ context.Context, d time.Duration) bool {
		waits = append(waits, d)
		return true
	}
	var totals []uint64
	for range 2 {
		d, err := w.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		totals = append(totals, d.GetExecutions().GetTotal())
	}
	if want := []uint64{40, 60}; !slices.Equal(totals, want) {
		t.Errorf("dashboards from streams %v, want %v (streams 4 and 6)", totals, want)
	}
	ms := time.Millisecond
	if want := []time.Duration{200 * ms, 400 * ms, 800 * ms, 200 * ms, 400 * ms}; !slices.Equal(waits, want) {
		t.Errorf("waits before the reopens %v, want %v", waits, want)
	}
	if reconnects != 5 || fs.opens.Load() != 6 {
		t.Errorf("%d reconnects and %d streams, want 5 and 6", reconnects, fs.opens.Load())
	}
}
