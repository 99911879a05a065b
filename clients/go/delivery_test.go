package cugarmetrics_test

// The Recorder's delivery contract (clients/README.md), against real server processes that
// start late, stop answering (SIGSTOP) or are not there at all.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cugarmetrics "github.com/cugar-metrics/cugar-metrics/clients/go"
	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// freeAddr returns a loopback address nothing listens on (connections are refused).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine and the test's.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A server that starts after the agent has recorded and called Close: Close keeps retrying,
// and every execution is delivered exactly once, nothing dropped.
func TestRecorderDeliversToServerStartedLate(t *testing.T) {
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	c := dial(t, addr, cugarmetrics.WithMaxAttempts(cugarmetrics.DefaultMaxAttempts))
	profile := name(t, "go")
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithCloseTimeout(time.Minute))
	for i := range 11 {
		e := success(fmt.Sprintf("%s-%d", profile, i+1), profile, time.Second)
		if i >= 7 {
			e.Outcome, e.ErrorType = metricsv1.Outcome_OUTCOME_FAILURE, "ToolError"
		}
		if !r.Record(e) {
			t.Fatalf("Record %d dropped", i+1)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	// The server is started only once a send has failed: Close is retrying by then.
	waitFor(t, "a failed send", func() bool { return r.Stats().SendErrors >= 1 })
	if code := status.Code(r.Stats().LastError); code != codes.Unavailable {
		t.Fatalf("last error %v, want Unavailable", r.Stats().LastError)
	}
	srv := startServer(t, "--grpc-port", port)
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	if s := r.Stats(); s.Accepted != 11 || s.Duplicate != 0 || s.Dropped != 0 || s.Pending != 0 {
		t.Errorf("stats = %+v, want 11 accepted, 0 duplicate, 0 dropped, 0 pending", s)
	}
	assertCounts(t, dial(t, srv.GRPCAddr), profile, 11, 7, 4)
}

// A server that stops answering (SIGSTOP) while the agent records: Record never waits for
// the network, the buffer holds at most its size and drops the oldest waiting executions,
// the batch in flight is delivered once the server answers again, and Close delivers the
// newest ones.
func TestRecorderNeverBlocksAndDropsOldestWhenServerStopsAnswering(t *testing.T) {
	srv := startServer(t)
	// Calls that never time out: nothing completes while the server is stopped.
	c := dial(t, srv.GRPCAddr, cugarmetrics.WithTimeout(time.Hour), cugarmetrics.WithAttemptTimeout(time.Hour))
	profile := name(t, "go")
	assertRecords(t, c, profile+"-warm") // the connection is up before the server stops
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBufferSize(10), cugarmetrics.WithBatchSize(5),
		cugarmetrics.WithFlushInterval(time.Hour))
	id := func(i int) string { return fmt.Sprintf("%s-%d", profile, i) }
	for i := range 5 {
		r.Record(success(id(i), profile, time.Second))
	}
	waitFor(t, "the first batch in flight", func() bool { return r.Stats().InFlight == 5 })
	for i := 5; i < 1000; i++ {
		if !r.Record(success(id(i), profile, time.Second)) {
			t.Fatalf("Record %d returned false, want the oldest waiting execution dropped instead", i)
		}
	}
	// 1000 Record calls returned while the server answered nothing: none waited on a send.
	s := r.Stats()
	want := cugarmetrics.RecorderStats{Submitted: 1000, Dropped: 990, Overflowed: 990, Pending: 10, InFlight: 5}
	if s != want {
		t.Errorf("stats while the server is stopped = %+v, want %+v", s, want)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(context.Background()); err == nil {
		t.Error("Close = nil, want a *DroppedError for the 990 dropped")
	} else {
		var dropped *cugarmetrics.DroppedError
		if !errors.As(err, &dropped) || dropped.Dropped != 990 || dropped.Overflowed != 990 || dropped.Undelivered != 0 {
			t.Errorf("Close = %v, want a *DroppedError with 990 dropped, 990 overflowed, 0 undelivered", err)
		}
	}
	if s := r.Stats(); s.Accepted != 10 || s.Dropped != 990 || s.Pending != 0 {
		t.Errorf("stats after Close = %+v, want 10 accepted, 990 dropped", s)
	}
	assertCounts(t, c, profile, 10, 10, 0)
	// Exactly the batch that was in flight (0-4) and the newest five (995-999) arrived.
	var again []*metricsv1.Execution
	for _, i := range []int{0, 1, 2, 3, 4, 995, 996, 997, 998, 999, 5} {
		again = append(again, success(id(i), profile, time.Second))
	}
	res, err := c.RecordBatch(context.Background(), again)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate != 10 || res.Accepted != 1 || res.Results[10] != cugarmetrics.ResultAccepted {
		t.Errorf("re-sent ids 0-4, 995-999 and 5: %d duplicate, %d accepted (results %v), want 10 duplicates and 5 new",
			res.Duplicate, res.Accepted, res.Results)
	}
}

// Attempts that time out (DEADLINE_EXCEEDED, the server stopped) are retried with the same
// execution ids until the server answers: each execution is counted once.
func TestRecorderRetriesTimedOutBatchesWithSameIDs(t *testing.T) {
	srv := startServer(t)
	c := dial(t, srv.GRPCAddr, cugarmetrics.WithAttemptTimeout(200*time.Millisecond))
	profile := name(t, "go")
	assertRecords(t, c, profile+"-warm")
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithCloseTimeout(time.Minute))
	for i := range 20 {
		r.Record(success(fmt.Sprintf("%s-%d", profile, i), profile, time.Second))
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	waitFor(t, "two timed-out sends", func() bool { return r.Stats().SendErrors >= 2 })
	if code := status.Code(r.Stats().LastError); code != codes.DeadlineExceeded {
		t.Errorf("last error %v, want DeadlineExceeded", r.Stats().LastError)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	s := r.Stats()
	if s.Accepted+s.Duplicate != 20 || s.Dropped != 0 || s.Pending != 0 {
		t.Errorf("stats = %+v, want 20 accepted or duplicate (a timed-out attempt may have arrived), 0 dropped", s)
	}
	assertCounts(t, c, profile, 20, 20, 0) // each once
}

// With no server at all, Close keeps retrying for the close timeout, then drops what it
// holds and reports every dropped execution (overflow included) through its error, the
// stats and one WARN log line.
func TestRecorderCloseReportsDroppedAfterCloseTimeout(t *testing.T) {
	c := dial(t, freeAddr(t), cugarmetrics.WithMaxAttempts(cugarmetrics.DefaultMaxAttempts))
	var logged syncBuffer
	const closeTimeout = time.Second
	r := cugarmetrics.NewRecorder(c, cugarmetrics.WithBufferSize(5), cugarmetrics.WithCloseTimeout(closeTimeout),
		cugarmetrics.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	for i := range 8 {
		r.Record(success(fmt.Sprintf("overflow-%d", i), "overflow", time.Second))
	}
	start := time.Now()
	err := r.Close(context.Background())
	// A lower bound only the retrying produces: Close did not give up before its timeout.
	if took := time.Since(start); took < closeTimeout {
		t.Errorf("Close returned after %s, before its %s timeout", took, closeTimeout)
	}
	var dropped *cugarmetrics.DroppedError
	if !errors.As(err, &dropped) {
		t.Fatalf("Close = %v, want a *DroppedError", err)
	}
	if dropped.Dropped != 8 || dropped.Overflowed != 3 || dropped.Undelivered != 5 {
		t.Errorf("Close = %+v, want 8 dropped: 3 on overflow, 5 undelivered", dropped)
	}
	if status.Code(dropped.LastError) != codes.Unavailable || !errors.Is(err, dropped.LastError) {
		t.Errorf("last error %v, want Unavailable, wrapped", dropped.LastError)
	}
	s := r.Stats()
	if s.Submitted != 8 || s.Dropped != 8 || s.Overflowed != 3 || s.Pending != 0 || s.SendErrors < 1 {
		t.Errorf("stats = %+v, want 8 submitted, 8 dropped (3 overflowed), 0 pending, a failed send", s)
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
		!strings.Contains(lines[0], " dropped=8 overflowed=3 undelivered_at_close=5 ") {
		t.Errorf("log = %q, want one WARN line with dropped=8 overflowed=3 undelivered_at_close=5", logged.String())
	}
	if again := r.Close(context.Background()); again != err {
		t.Errorf("second Close = %v, want the first one's error", again)
	}
}
