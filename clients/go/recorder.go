package cugarmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// The Recorder's defaults, as clients/spec.yaml gives them for every client
// (spec_internal_test.go checks each one against that file).
const (
	// DefaultBatchSize is the most executions one RecordExecutions call carries (spec:
	// recorder.batch_size).
	DefaultBatchSize = 500
	// DefaultFlushInterval is the longest an execution waits before it is sent (spec:
	// recorder.flush_interval_seconds).
	DefaultFlushInterval = time.Second
	// DefaultBufferSize is the most executions held, waiting or in flight (spec:
	// recorder.buffer_size).
	DefaultBufferSize = 10000
	// DefaultCloseTimeout is how long Close keeps retrying what is undelivered (spec:
	// recorder.close_timeout_seconds).
	DefaultCloseTimeout = 10 * time.Second
	// DefaultRecorderInitialBackoff, DefaultRecorderMaxBackoff and
	// DefaultRecorderBackoffMultiplier give the wait before a failed batch is sent again:
	// the initial backoff after the first failure in a row, times the multiplier after each
	// further one, at most the maximum (spec: recorder.retry_*). A rate-limited batch waits
	// the RetryInfo delay instead.
	DefaultRecorderInitialBackoff    = 200 * time.Millisecond
	DefaultRecorderMaxBackoff        = 2 * time.Second
	DefaultRecorderBackoffMultiplier = 2.0
)

// recorderRetryableCodes are the codes whose batch is kept and sent again (spec:
// recorder.retryable_codes); RESOURCE_EXHAUSTED only with a RetryInfo (a rate limit).
var recorderRetryableCodes = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted}

// ErrRecorderClosed is returned by Recorder.Flush after Close.
var ErrRecorderClosed = errors.New("cugarmetrics: recorder closed")

// RecorderOption configures a Recorder.
type RecorderOption func(*recorderOptions)

type recorderOptions struct {
	batchSize     int
	flushInterval time.Duration
	bufferSize    int
	closeTimeout  time.Duration
	onError       func(error)
	logger        *slog.Logger
}

// WithBatchSize sets how many executions one RecordBatch call carries at most; a full batch
// is sent at once (default DefaultBatchSize, at most MaxBatchSize).
func WithBatchSize(n int) RecorderOption {
	return func(o *recorderOptions) { o.batchSize = n }
}

// WithFlushInterval sets how long an execution waits at most before it is sent, when fewer
// than a batch are queued (default DefaultFlushInterval).
func WithFlushInterval(d time.Duration) RecorderOption {
	return func(o *recorderOptions) { o.flushInterval = d }
}

// WithBufferSize sets how many executions are held at most, waiting or being sent. When
// the buffer is full (the server is down or slow), Record drops the oldest waiting
// execution and counts it instead of waiting (default DefaultBufferSize).
func WithBufferSize(n int) RecorderOption {
	return func(o *recorderOptions) { o.bufferSize = n }
}

// WithCloseTimeout sets how long Close keeps sending, and retrying, what is still held
// before it drops it (default DefaultCloseTimeout; zero or less means the default).
func WithCloseTimeout(d time.Duration) RecorderOption {
	return func(o *recorderOptions) { o.closeTimeout = d }
}

// WithLogger sets the logger of the Recorder's log line at Close, a WARN naming how many
// executions were dropped (default slog.Default()).
func WithLogger(l *slog.Logger) RecorderOption {
	return func(o *recorderOptions) { o.logger = l }
}

// WithErrorHandler sets a function called, from the Recorder's goroutine, with each failed
// send and with an *InvalidArgumentError for each execution the server rejected (its
// violation paths in the single-execution form, e.g. "execution.duration"). It must not
// block.
func WithErrorHandler(f func(error)) RecorderOption {
	return func(o *recorderOptions) { o.onError = f }
}

// RecorderStats count what a Recorder did. At any time,
// Submitted == Accepted + Duplicate + Rejected + Dropped + Pending.
type RecorderStats struct {
	// Executions given to Record.
	Submitted uint64
	// Executions the server recorded.
	Accepted uint64
	// Executions the server acknowledged as duplicates (for example a retried send).
	Duplicate uint64
	// Executions the server rejected as invalid.
	Rejected uint64
	// Executions never delivered: the buffer was full, the Recorder was closed, Close gave
	// up on them, or the server refused the whole batch for good.
	Dropped uint64
	// Of Dropped, the executions dropped because the buffer was full.
	Overflowed uint64
	// Executions waiting in the buffer or being sent.
	Pending int
	// Of Pending, the executions of the batch being sent.
	InFlight int
	// Failed RecordBatch calls (a batch failing with a retryable code is sent again).
	SendErrors uint64
	// The error of the last failed RecordBatch call, nil if none failed.
	LastError error
}

// Recorder sends executions in the background, in batches: when a batch is full, when the
// flush interval has passed, and on Flush and Close. It keeps the delivery contract of every
// cugar-metrics client (clients/README.md):
//
//   - Record never blocks on the network, and the Recorder holds at most the buffer size;
//     when the buffer is full, the oldest waiting execution is dropped and counted.
//   - A batch that fails with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED with a
//     RetryInfo is kept and sent again, after a backoff (DefaultRecorderInitialBackoff
//     doubling up to DefaultRecorderMaxBackoff) or the RetryInfo delay, until it is
//     delivered, overflows, or Close gives up. Other failures drop the batch and count it.
//   - Close keeps retrying up to the close timeout, then drops what is left and reports
//     the dropped count: its *DroppedError, Stats().Dropped and a WARN log line.
//   - A retry sends the same executions, with the same execution ids: the server counts
//     each once.
type Recorder struct {
	client *Client
	opts   recorderOptions

	runCtx    context.Context // cancelled when Close gives up
	cancelRun context.CancelFunc
	stop      chan struct{} // closed by Close: send what is left, then return
	done      chan struct{} // closed when the goroutine has returned
	wake      chan struct{} // cap 1: a full batch or a flush is waiting
	closeOnce sync.Once
	closed    chan struct{} // closed when the first Close has set closeErr
	closeErr  error

	mu       sync.Mutex
	queue    []*metricsv1.Execution // held executions, oldest first; the first inflight are being sent
	inflight int
	stats    RecorderStats
	stopped  bool         // Close was called: Record takes nothing more
	flushing []chan error // Flush calls waiting for the queue to empty
}

// NewRecorder starts a Recorder that sends through client. Close it to send what is left.
func NewRecorder(client *Client, opts ...RecorderOption) *Recorder {
	o := recorderOptions{
		batchSize:     DefaultBatchSize,
		flushInterval: DefaultFlushInterval,
		bufferSize:    DefaultBufferSize,
		closeTimeout:  DefaultCloseTimeout,
		logger:        slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	o.batchSize = min(max(o.batchSize, 1), MaxBatchSize)
	o.bufferSize = max(o.bufferSize, 1)
	if o.flushInterval <= 0 {
		o.flushInterval = DefaultFlushInterval
	}
	if o.closeTimeout <= 0 {
		o.closeTimeout = DefaultCloseTimeout
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		client:    client,
		opts:      o,
		runCtx:    ctx,
		cancelRun: cancel,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	go r.run()
	return r
}

// Start starts timing an execution whose End queues it on this Recorder.
func (r *Recorder) Start(profile string) *ExecutionTimer {
	return startExecution(profile, time.Now, r.Record)
}

// Record queues an execution to send and reports whether it was queued. It never blocks on
// the network. When the buffer is full, the oldest execution waiting to be sent is dropped
// (counted in Stats().Dropped and Stats().Overflowed) to make room; if every held execution
// is being sent, or the Recorder is closed, this one is dropped and counted and Record
// returns false. The execution must not be changed afterwards.
func (r *Recorder) Record(e *metricsv1.Execution) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Submitted++
	if r.stopped {
		r.stats.Dropped++
		return false
	}
	if len(r.queue) >= r.opts.bufferSize {
		r.stats.Dropped++
		r.stats.Overflowed++
		if r.inflight >= len(r.queue) {
			return false
		}
		// The batch in flight is r.queue[:r.inflight]: only what follows it moves.
		r.queue = slices.Delete(r.queue, r.inflight, r.inflight+1)
	}
	r.queue = append(r.queue, e)
	if len(r.queue)-r.inflight >= r.opts.batchSize {
		r.signal()
	}
	return true
}

// signal wakes the goroutine without blocking.
func (r *Recorder) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the Recorder's counts.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Pending = len(r.queue)
	s.InFlight = r.inflight
	return s
}

// Flush sends everything queued and waits until the buffer is empty, the Recorder is
// closed (ErrRecorderClosed) or ctx is done.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return ErrRecorderClosed
	}
	if len(r.queue) == 0 {
		r.mu.Unlock()
		return nil
	}
	ch := make(chan error, 1)
	r.flushing = append(r.flushing, ch)
	r.mu.Unlock()
	r.signal()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("cugarmetrics: flush: %d executions pending: %w", r.Stats().Pending, ctx.Err())
	}
}

// DroppedError is what Close returns when executions were never delivered. Read it with
// errors.As; errors.Is and errors.As also see the last send error through it.
type DroppedError struct {
	// Executions dropped over the Recorder's life: Stats().Dropped after Close.
	Dropped uint64
	// Of Dropped, those the buffer overflowed with.
	Overflowed uint64
	// Of Dropped, those still held when Close gave up on them.
	Undelivered int
	// The error of the last failed send, nil if none failed.
	LastError error
}

// Error names the counts and the last send error.
func (e *DroppedError) Error() string {
	msg := fmt.Sprintf("cugarmetrics: recorder dropped %d executions (%d on overflow, %d undelivered at close)",
		e.Dropped, e.Overflowed, e.Undelivered)
	if e.LastError != nil {
		msg += ": last send error: " + e.LastError.Error()
	}
	return msg
}

// Unwrap returns the last send error.
func (e *DroppedError) Unwrap() error {
	return e.LastError
}

// Close stops taking executions and sends what is held, retrying failed batches as usual,
// until everything is delivered, the close timeout (WithCloseTimeout) has passed or ctx is
// done. What is still held then is dropped. When any execution was dropped over the
// Recorder's life, Close logs a WARN line with the counts and returns a *DroppedError
// saying how many; otherwise it returns nil. Later calls wait for the first one and return
// the same.
func (r *Recorder) Close(ctx context.Context) error {
	first := false
	r.closeOnce.Do(func() {
		first = true
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		close(r.stop)
	})
	if !first {
		<-r.closed
		return r.closeErr
	}
	giveUp := time.NewTimer(r.opts.closeTimeout)
	defer giveUp.Stop()
	select {
	case <-r.done:
	case <-giveUp.C:
	case <-ctx.Done():
	}
	r.cancelRun()
	<-r.done

	r.mu.Lock()
	n := len(r.queue)
	clear(r.queue)
	r.queue = nil
	r.stats.Dropped += uint64(n)
	s := r.stats
	r.mu.Unlock()

	if s.Dropped > 0 {
		r.closeErr = &DroppedError{Dropped: s.Dropped, Overflowed: s.Overflowed, Undelivered: n, LastError: s.LastError}
		attrs := []any{
			slog.Uint64("dropped", s.Dropped), slog.Uint64("overflowed", s.Overflowed),
			slog.Int("undelivered_at_close", n), slog.Uint64("submitted", s.Submitted),
			slog.Uint64("accepted", s.Accepted), slog.Uint64("duplicate", s.Duplicate),
			slog.Uint64("rejected", s.Rejected),
		}
		if s.LastError != nil {
			attrs = append(attrs, slog.String("last_error", s.LastError.Error()))
		}
		r.opts.logger.Warn("cugar-metrics recorder closed with executions dropped", attrs...)
	}
	close(r.closed)
	return r.closeErr
}

// run is the Recorder's goroutine.
func (r *Recorder) run() {
	defer close(r.done)
	defer r.releaseFlushes(ErrRecorderClosed)
	ticker := time.NewTicker(r.opts.flushInterval)
	defer ticker.Stop()
	stop := r.stop // nil once received: a closed channel would always be ready
	stopping := false
	failures := 0
	var retry <-chan time.Time // fires when a failed batch may be sent again; nil otherwise
	for {
		select {
		case <-r.wake:
		case <-ticker.C:
		case <-retry:
			retry = nil
		case <-stop:
			stop, stopping = nil, true
		case <-r.runCtx.Done():
			return
		}
		if retry != nil {
			continue // backing off: only the retry timer, or Close giving up, ends the wait
		}
		if err := r.sendAll(); err != nil {
			if r.runCtx.Err() != nil {
				return
			}
			failures++
			wait := recorderBackoff(failures)
			var limited *RateLimitError
			if errors.As(err, &limited) {
				wait = min(limited.RetryDelay, r.client.retryInfoCap)
			}
			retry = time.After(wait)
			continue
		}
		failures = 0
		if stopping {
			return
		}
	}
}

// recorderBackoff is the wait after the n-th failed send in a row.
func recorderBackoff(n int) time.Duration {
	d := float64(DefaultRecorderInitialBackoff)
	for i := 1; i < n && d < float64(DefaultRecorderMaxBackoff); i++ {
		d *= DefaultRecorderBackoffMultiplier
	}
	return min(time.Duration(d), DefaultRecorderMaxBackoff)
}

// sendAll sends the queue in batches until it is empty, and returns the error of a batch
// that failed with a retryable code (the batch stays queued, first in line).
func (r *Recorder) sendAll() error {
	for {
		r.mu.Lock()
		n := min(len(r.queue), r.opts.batchSize)
		if n == 0 {
			waiting := r.flushing
			r.flushing = nil
			r.mu.Unlock()
			for _, ch := range waiting {
				ch <- nil
			}
			return nil
		}
		batch := r.queue[:n:n]
		r.inflight = n
		r.mu.Unlock()

		res, err := r.client.RecordBatch(r.runCtx, batch)

		r.mu.Lock()
		r.inflight = 0
		if err != nil {
			r.stats.SendErrors++
			r.stats.LastError = err
			if r.runCtx.Err() != nil || retryable(err) {
				r.mu.Unlock()
				r.report(err)
				return err
			}
			r.stats.Dropped += uint64(n)
		} else {
			r.stats.Accepted += uint64(res.Accepted)
			r.stats.Duplicate += uint64(res.Duplicate)
			r.stats.Rejected += uint64(res.Rejected)
		}
		clear(r.queue[:n])
		r.queue = r.queue[n:]
		r.mu.Unlock()

		if err != nil {
			r.report(err)
			continue
		}
		for _, rej := range res.RejectedExecutions {
			r.report(rejectedError(rej))
		}
	}
}

// releaseFlushes answers every waiting Flush.
func (r *Recorder) releaseFlushes(err error) {
	r.mu.Lock()
	waiting := r.flushing
	r.flushing = nil
	r.mu.Unlock()
	for _, ch := range waiting {
		ch <- err
	}
}

func (r *Recorder) report(err error) {
	if r.opts.onError != nil {
		r.opts.onError(err)
	}
}

// retryable says whether a failed batch is kept and sent again: one of the spec's codes,
// and for RESOURCE_EXHAUSTED only a rate limit (a RetryInfo says when to come back).
func retryable(err error) bool {
	code := status.Code(err)
	if !slices.Contains(recorderRetryableCodes, code) {
		return false
	}
	var limited *RateLimitError
	return code != codes.ResourceExhausted || errors.As(err, &limited)
}

// rejectedError describes one rejected item of a batch as the single-execution RPC would,
// paths included ("executions[3].profile" becomes "execution.profile").
func rejectedError(rej RejectedExecution) *InvalidArgumentError {
	msg := fmt.Sprintf("execution %q rejected", rej.ExecutionID)
	e := &InvalidArgumentError{
		Message:     msg,
		ExecutionID: rej.ExecutionID,
		status:      status.New(codes.InvalidArgument, msg),
	}
	for _, v := range rej.Violations {
		if rest, ok := strings.CutPrefix(v.Field, "executions["); ok {
			if _, after, found := strings.Cut(rest, "]"); found {
				v.Field = "execution" + after
			}
		}
		e.Violations = append(e.Violations, v)
	}
	return e
}
