package cugarmetrics_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
	"github.com/cugar-metrics/cugar-metrics/clients/go/internal/testserver"
)

// watchTimeout bounds each watch test, so that a watch that never delivers fails the test
// instead of hanging it.
const watchTimeout = 60 * time.Second

// everySecond asks for the dashboard req every second, the shortest interval the server
// takes.
func everySecond(req *metricsv1.GetDashboardRequest) *metricsv1.WatchDashboardRequest {
	return &metricsv1.WatchDashboardRequest{Dashboard: req, Interval: durationpb.New(time.Second)}
}

func recv(t *testing.T, w *cugarmetrics.DashboardWatch) *metricsv1.GetDashboardResponse {
	t.Helper()
	d, err := w.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return d
}

// replicaServer is a server process named replica on a fixed gRPC port, which the test
// stops itself (and the cleanup stops if the test did not get that far).
type replicaServer struct {
	*testserver.Server
	stopped bool
}

func startReplica(t *testing.T, port int, replica string) *replicaServer {
	t.Helper()
	s, err := testserver.Start(60*time.Second, "--grpc-port", strconv.Itoa(port), "--replica", replica)
	if err != nil {
		t.Fatal(err)
	}
	r := &replicaServer{Server: s}
	t.Cleanup(func() {
		if !r.stopped {
			if err := s.Stop(15 * time.Second); err != nil {
				t.Error(err)
			}
		}
	})
	return r
}

// drain sends SIGTERM and waits until the server has drained and exited 0.
func (r *replicaServer) drain(t *testing.T) {
	t.Helper()
	r.stopped = true
	if err := r.Stop(15 * time.Second); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// The first dashboard arrives without waiting for a tick; an execution recorded meanwhile
// shows in a later one; Close ends the watch with CANCELED.
func TestWatchDashboardFollowsNewExecutions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	c := newClient(t)
	profile := "go_watch_" + strings.ToLower(rand.Text()[:8]) // new on every run, -count=N too
	w := c.WatchDashboard(ctx, everySecond(&metricsv1.GetDashboardRequest{Profile: profile}))
	defer w.Close()

	d := recv(t, w)
	if got := d.GetExecutions().GetTotal(); got != 0 {
		t.Fatalf("first dashboard: %s executions total = %d, want 0", profile, got)
	}
	if _, err := c.Record(ctx, success(profile+"-1", profile, time.Second)); err != nil {
		t.Fatal(err)
	}
	ticks := 1
	for d.GetExecutions().GetTotal() == 0 {
		d = recv(t, w)
		ticks++
	}
	ex := d.GetExecutions()
	if got := [3]uint64{ex.GetTotal(), ex.GetSucceeded(), ex.GetFailed()}; got != [3]uint64{1, 1, 0} {
		t.Errorf("dashboard %d: executions (total, succeeded, failed) = %v, want [1 1 0]", ticks, got)
	}
	if want := dashboard(t, c, nil).GetReplica(); d.GetReplica() != want {
		t.Errorf("replica %q, want %q (GetDashboard's)", d.GetReplica(), want)
	}

	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for range 2 { // the watch stays ended
		if _, err := w.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("Recv after Close: %v, want CANCELED", err)
		}
	}
}

// A server that drains ends the stream with UNAVAILABLE; the watch tells OnReconnect and
// opens the stream again, here on the new server that took over the same address.
func TestWatchDashboardReconnectsAfterADrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	port := freePort(t)
	first := startReplica(t, port, "go-first")
	c := dial(t, first.GRPCAddr)
	var reconnects []error
	w := c.WatchDashboard(ctx, everySecond(nil), cugarmetrics.OnReconnect(func(err error) {
		reconnects = append(reconnects, err)
	}))
	defer w.Close()

	d := recv(t, w)
	if got := [2]any{d.GetReplica(), d.GetExecutions().GetTotal()}; got != [2]any{"go-first", uint64(0)} {
		t.Fatalf("first dashboard (replica, total) = %v, want [go-first 0]", got)
	}
	if _, err := c.Record(ctx, success("go-watch-drain-1", "go_watch", time.Second)); err != nil {
		t.Fatal(err)
	}
	for d.GetExecutions().GetTotal() == 0 {
		d = recv(t, w)
	}
	if got := [2]any{d.GetReplica(), d.GetExecutions().GetTotal()}; got != [2]any{"go-first", uint64(1)} {
		t.Fatalf("dashboard after Record (replica, total) = %v, want [go-first 1]", got)
	}
	if len(reconnects) != 0 {
		t.Fatalf("reconnects before the drain: %v", reconnects)
	}

	first.drain(t)
	startReplica(t, port, "go-second")
	d = recv(t, w)
	if got := [2]any{d.GetReplica(), d.GetExecutions().GetTotal()}; got != [2]any{"go-second", uint64(0)} {
		t.Errorf("dashboard after the drain (replica, total) = %v, want [go-second 0]", got)
	}
	// The drain first; then, maybe, reopenings that failed while the channel had not yet
	// reached the new server: each one reported, none returned.
	if len(reconnects) == 0 {
		t.Fatal("OnReconnect was not called")
	}
	if st := status.Convert(reconnects[0]); st.Code() != codes.Unavailable || st.Message() != "draining, reconnect" {
		t.Errorf("first reconnect error: %v, want UNAVAILABLE \"draining, reconnect\"", reconnects[0])
	}
	for i, err := range reconnects {
		if status.Code(err) != codes.Unavailable {
			t.Errorf("reconnect %d error: %v, want UNAVAILABLE", i, err)
		}
	}
	// The watch still follows the new server.
	if _, err := c.Record(ctx, success("go-watch-drain-2", "go_watch", time.Second)); err != nil {
		t.Fatal(err)
	}
	for d.GetExecutions().GetTotal() == 0 {
		d = recv(t, w)
	}
	if got := [2]any{d.GetReplica(), d.GetExecutions().GetTotal()}; got != [2]any{"go-second", uint64(1)} {
		t.Errorf("dashboard after a Record on the new server (replica, total) = %v, want [go-second 1]", got)
	}
}

// WithoutReconnect: the drain's UNAVAILABLE ends the watch, and OnReconnect is not called.
func TestWatchDashboardWithoutReconnectEndsOnADrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	srv := startReplica(t, freePort(t), "go-only")
	reconnects := 0
	w := dial(t, srv.GRPCAddr).WatchDashboard(ctx, everySecond(nil), cugarmetrics.WithoutReconnect(),
		cugarmetrics.OnReconnect(func(error) { reconnects++ }))
	defer w.Close()

	if got := recv(t, w).GetReplica(); got != "go-only" {
		t.Fatalf("replica %q, want go-only", got)
	}
	srv.drain(t)
	for range 2 { // the watch stays ended with the same error
		_, err := w.Recv()
		if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "draining, reconnect" {
			t.Errorf("Recv after the drain: %v, want UNAVAILABLE \"draining, reconnect\"", err)
		}
	}
	if reconnects != 0 {
		t.Errorf("OnReconnect called %d times, want 0", reconnects)
	}
}

// An interval the server refuses ends the watch with an *InvalidArgumentError naming
// "interval", without a reconnect.
func TestWatchDashboardRefusesAnIntervalUnderASecond(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	reconnects := 0
	w := newClient(t).WatchDashboard(ctx, &metricsv1.WatchDashboardRequest{
		Interval: durationpb.New(500 * time.Millisecond),
	}, cugarmetrics.OnReconnect(func(error) { reconnects++ }))
	defer w.Close()

	_, err := w.Recv()
	var invalid *cugarmetrics.InvalidArgumentError
	if !errors.As(err, &invalid) {
		t.Fatalf("Recv error = %v (%T), want *InvalidArgumentError", err, err)
	}
	var fields []string
	for _, v := range invalid.Violations {
		fields = append(fields, v.Field)
	}
	if !slices.Equal(fields, []string{"interval"}) || status.Code(err) != codes.InvalidArgument {
		t.Errorf("violations on %v (code %v), want [interval] (InvalidArgument)", fields, status.Code(err))
	}
	if v, _ := invalid.Violation("interval"); v.Reason != "OUT_OF_RANGE" {
		t.Errorf("interval violation reason %q, want OUT_OF_RANGE", v.Reason)
	}
	if _, again := w.Recv(); again != err {
		t.Errorf("second Recv: %v, want the same error", again)
	}
	if reconnects != 0 {
		t.Errorf("OnReconnect called %d times, want 0", reconnects)
	}
}

// The API key is sent with the stream: a reader key may watch, and no key ends the watch
// with an *AuthError (UNAUTHENTICATED is not reconnected).
func TestWatchDashboardSendsTheAPIKey(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	keys := filepath.Join(t.TempDir(), "keys.json")
	readerKey := createKey(t, keys, "go-watcher", "reader")
	srv := startServer(t, "--auth-keys-file", keys, "--replica", "go-auth")

	w := dial(t, srv.GRPCAddr, cugarmetrics.WithAPIKey(readerKey)).WatchDashboard(ctx, everySecond(nil))
	if got := recv(t, w).GetReplica(); got != "go-auth" {
		t.Errorf("replica %q, want go-auth", got)
	}
	_ = w.Close()

	reconnects := 0
	anonymous := dial(t, srv.GRPCAddr).WatchDashboard(ctx, everySecond(nil),
		cugarmetrics.OnReconnect(func(error) { reconnects++ }))
	defer anonymous.Close()
	_, err := anonymous.Recv()
	assertAuthError(t, err, codes.Unauthenticated, cugarmetrics.ReasonMissingCredentials)
	if reconnects != 0 {
		t.Errorf("OnReconnect called %d times, want 0", reconnects)
	}
}

// Cancelling the context ends the watch, also while it waits to reconnect to a server that
// is not there; Close ends a Recv that waits for a tick; the context's deadline ends the
// watch with DEADLINE_EXCEEDED.
func TestWatchDashboardStopsWithItsContext(t *testing.T) {
	c := dial(t, "127.0.0.1:"+strconv.Itoa(freePort(t))) // nothing listens there
	ctx, cancel := context.WithCancel(context.Background())
	var reconnects []error
	w := c.WatchDashboard(ctx, nil, cugarmetrics.OnReconnect(func(err error) {
		reconnects = append(reconnects, err)
		if len(reconnects) == 3 {
			cancel()
		}
	}))
	defer w.Close()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel: %v, want CANCELED", err)
	}
	if len(reconnects) != 3 {
		t.Errorf("OnReconnect called %d times, want 3 (then cancelled)", len(reconnects))
	}
	for i, err := range reconnects {
		if status.Code(err) != codes.Unavailable {
			t.Errorf("reconnect %d error: %v, want UNAVAILABLE", i, err)
		}
	}

	// Close from another goroutine ends a Recv that waits for the next tick (an hour away).
	hourly := newClient(t).WatchDashboard(context.Background(), &metricsv1.WatchDashboardRequest{
		Interval: durationpb.New(time.Hour),
	})
	recv(t, hourly)
	go func() { _ = hourly.Close() }()
	if _, err := hourly.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv during Close: %v, want CANCELED", err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer dcancel()
	expiring := c.WatchDashboard(dctx, nil)
	defer expiring.Close()
	if _, err := expiring.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Recv past the context's deadline: %v, want DEADLINE_EXCEEDED", err)
	}
}
