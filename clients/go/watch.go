package cugarmetrics

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// The defaults of a dashboard watch, as clients/spec.yaml gives them for every client
// (spec_internal_test.go checks each one against that file).
const (
	// DefaultWatchInterval is the time between two dashboards of a watch whose request sets
	// no interval; the server accepts 1 s to 1 h (spec: watch.interval_seconds).
	DefaultWatchInterval = 5 * time.Second
	// DefaultWatchReconnectInitialBackoff, DefaultWatchReconnectMaxBackoff and
	// DefaultWatchReconnectBackoffMultiplier bound the wait before a watch opens its stream
	// again: the first reopen after a stream that delivered something waits
	// DefaultWatchReconnectInitialBackoff, each reopen that fails in a row waits
	// DefaultWatchReconnectBackoffMultiplier times longer, at most
	// DefaultWatchReconnectMaxBackoff (spec: watch.reconnect_*).
	DefaultWatchReconnectInitialBackoff    = 200 * time.Millisecond
	DefaultWatchReconnectMaxBackoff        = 5 * time.Second
	DefaultWatchReconnectBackoffMultiplier = 2.0
)

// watchReconnectCodes are the codes that end a watch's stream and make it open the stream
// again (spec: watch.reconnect_codes): the server drains ("draining, reconnect") or the
// connection is lost.
var watchReconnectCodes = []codes.Code{codes.Unavailable}

// watchBackoff is the wait before reopening a watch whose stream has failed failures times
// in a row (0 after a stream that delivered a dashboard).
func watchBackoff(failures int) time.Duration {
	d := float64(DefaultWatchReconnectInitialBackoff)
	for i := 0; i < failures && d < float64(DefaultWatchReconnectMaxBackoff); i++ {
		d *= DefaultWatchReconnectBackoffMultiplier
	}
	return min(time.Duration(d), DefaultWatchReconnectMaxBackoff)
}

// WatchOption configures a DashboardWatch.
type WatchOption func(*watchOptions)

type watchOptions struct {
	reconnect   bool
	onReconnect func(error)
}

// WithoutReconnect makes the first error end the watch, UNAVAILABLE included (the server
// drains, the connection is lost): Recv returns it instead of opening the stream again.
func WithoutReconnect() WatchOption {
	return func(o *watchOptions) { o.reconnect = false }
}

// OnReconnect calls f with the error that ended the stream (a gRPC status error with code
// UNAVAILABLE, e.g. "draining, reconnect") each time the watch opens its stream again,
// before it waits; a live view can say that it reconnects. f runs in the goroutine that
// calls Recv.
func OnReconnect(f func(err error)) WatchOption {
	return func(o *watchOptions) { o.onReconnect = f }
}

// DashboardWatch follows a dashboard the server pushes every interval: read it with Recv,
// stop it with Close or by cancelling the context given to WatchDashboard. Recv must not be
// called from two goroutines at once; Close may be called from any goroutine.
type DashboardWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	stub   metricsv1.MetricsServiceClient
	req    *metricsv1.WatchDashboardRequest
	opts   watchOptions

	stream       grpc.ServerStreamingClient[metricsv1.GetDashboardResponse]
	streamCancel context.CancelFunc
	failures     int   // reopens that failed in a row
	err          error // the error that ended the watch, returned by every later Recv
	// wait waits d before a reopen and returns false if ctx ends first (sleep; the tests
	// record the waits instead).
	wait func(ctx context.Context, d time.Duration) bool
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// WatchDashboard follows the dashboard req.Dashboard asks for (nil: everything since the
// replica started, unfiltered) through the server-streaming WatchDashboard RPC. The server
// sends one every req.Interval (nil: DefaultWatchInterval, 5 s; the server accepts 1 s to
// 1 h), the first one at once. req is not modified.
//
// The stream is opened by the first Recv. When it ends with UNAVAILABLE (the server drains,
// or the connection is lost), the watch opens it again, after a wait of 0.2 s that doubles
// while reopening fails, up to 5 s, and starts at 0.2 s again once a dashboard arrives;
// OnReconnect is told of each reconnect, and WithoutReconnect turns reconnecting off. Any
// other error ends the watch: Recv returns it as the client's other calls do (an
// *InvalidArgumentError whose violations name e.g. "interval", an *AuthError, a
// RESOURCE_EXHAUSTED status error when the server's watcher limits are reached).
//
// The API key of WithAPIKey is sent with every stream. Close the watch, or cancel ctx, when
// done: the stream is cancelled and Recv returns a CANCELED status error. The client's
// default deadline (WithTimeout) does not apply to a watch; a deadline of ctx does.
func (c *Client) WatchDashboard(ctx context.Context, req *metricsv1.WatchDashboardRequest, opts ...WatchOption) *DashboardWatch {
	r := &metricsv1.WatchDashboardRequest{}
	if req != nil {
		r = proto.Clone(req).(*metricsv1.WatchDashboardRequest)
	}
	if r.Dashboard == nil {
		r.Dashboard = &metricsv1.GetDashboardRequest{}
	}
	if r.Interval == nil {
		r.Interval = durationpb.New(DefaultWatchInterval)
	}
	o := watchOptions{reconnect: true}
	for _, opt := range opts {
		opt(&o)
	}
	wctx, cancel := context.WithCancel(ctx)
	return &DashboardWatch{ctx: wctx, cancel: cancel, stub: c.stub, req: r, opts: o, wait: sleep}
}

// Recv returns the next dashboard, waiting for it; it reconnects as WatchDashboard says.
// After an error that ends the watch, every call returns that error. io.EOF means the
// server ended the stream without an error.
func (w *DashboardWatch) Recv() (*metricsv1.GetDashboardResponse, error) {
	for w.err == nil {
		if w.stream == nil {
			sctx, cancel := context.WithCancel(w.ctx)
			stream, err := w.stub.WatchDashboard(sctx, w.req)
			if err != nil {
				cancel()
				w.ended(err)
				continue
			}
			w.stream, w.streamCancel = stream, cancel
		}
		d, err := w.stream.Recv()
		if err == nil {
			w.failures = 0
			return d, nil
		}
		w.streamCancel()
		w.stream, w.streamCancel = nil, nil
		w.ended(err)
	}
	return nil, w.err
}

// ended handles the error that ended a stream (or its opening): it either waits before
// the stream is opened again, or ends the watch with it.
func (w *DashboardWatch) ended(err error) {
	if errors.Is(err, io.EOF) {
		w.finish(io.EOF)
		return
	}
	if w.ctx.Err() != nil {
		w.finish(status.FromContextError(w.ctx.Err()).Err())
		return
	}
	if !w.opts.reconnect || !slices.Contains(watchReconnectCodes, status.Code(err)) {
		w.finish(fromStatus(err))
		return
	}
	if w.opts.onReconnect != nil {
		w.opts.onReconnect(fromStatus(err))
	}
	if !w.wait(w.ctx, watchBackoff(w.failures)) {
		w.finish(status.FromContextError(w.ctx.Err()).Err())
		return
	}
	w.failures++
}

func (w *DashboardWatch) finish(err error) {
	w.err = err
	w.cancel()
}

// Close stops the watch and cancels its stream; a Recv waiting in another goroutine returns
// a CANCELED status error. It always returns nil (DashboardWatch is an io.Closer).
func (w *DashboardWatch) Close() error {
	w.cancel()
	return nil
}
