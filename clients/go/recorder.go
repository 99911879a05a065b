package cugarmetrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	metricsv1 "github.com/cugar-metrics/cugar-metrics/clients/go/gen/cugar/metrics/v1"
)

// Recorder defaults.
const (
	DefaultBatchSize     = 100
	DefaultFlushInterval = time.Second
	DefaultBufferSize    = 10000
	// maxRetryDelay bounds the wait between two sends after a send failed.
	maxRetryDelay = MaxRetryDelay
)

// ErrRecorderClosed is returned by Recorder.Flush after Close.
var ErrRecorderClosed = errors.New("cugarmetrics: recorder closed")

// RecorderOption configures a Recorder.
type RecorderOption func(*recorderOptions)

type recorderOptions struct {
	batchSize     int
	flushInterval time.Duration
	bufferSize    int
	onError       func(error)
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

// WithBufferSize sets how many executions wait at most, including those being sent. When
// the buffer is full (the server is down or slow), Record drops the execution and counts it
// instead of waiting (default DefaultBufferSize).
func WithBufferSize(n int) RecorderOption {
	return func(o *recorderOptions) { o.bufferSize = n }
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
	// Executions waiting in the buffer or being sent.
	Pending int
	// Failed RecordBatch calls (each is retried while the error is transient).
	SendErrors uint64
	// The error of the last failed RecordBatch call, nil if none failed.
	LastError error
}

// Recorder sends executions in the background, in batches: when a batch is full, when the
// flush interval has passed, and on Flush and Close. Record never blocks: when the server is
// down, executions wait in a bounded buffer, and those that do not fit are dropped and
// counted. Batches that fail with a transient error (UNAVAILABLE, DEADLINE_EXCEEDED, ...)
// are sent again later; the server deduplicates by execution_id, so nothing counts twice. A
// batch refused by a rate limit stays queued and is sent again after the delay of its
// google.rpc.RetryInfo (at most MaxRetryDelay).
type Recorder struct {
	client *Client
	opts   recorderOptions

	runCtx    context.Context // cancelled when Close gives up
	cancelRun context.CancelFunc
	stop      chan struct{} // closed by Close: send what is left, then return
	done      chan struct{} // closed when the goroutine has returned
	wake      chan struct{} // cap 1: a full batch or a flush is waiting
	closeOnce sync.Once

	mu       sync.Mutex
	queue    []*metricsv1.Execution // its front batch may be in flight
	stats    RecorderStats
	closed   bool
	flushing []chan error // Flush calls waiting for the queue to empty
}

// NewRecorder starts a Recorder that sends through client. Close it to send what is left.
func NewRecorder(client *Client, opts ...RecorderOption) *Recorder {
	o := recorderOptions{
		batchSize:     DefaultBatchSize,
		flushInterval: DefaultFlushInterval,
		bufferSize:    DefaultBufferSize,
	}
	for _, opt := range opts {
		opt(&o)
	}
	o.batchSize = min(max(o.batchSize, 1), MaxBatchSize)
	o.bufferSize = max(o.bufferSize, 1)
	if o.flushInterval <= 0 {
		o.flushInterval = DefaultFlushInterval
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
	}
	go r.run()
	return r
}

// Start starts timing an execution whose End queues it on this Recorder.
func (r *Recorder) Start(profile string) *ExecutionTimer {
	return startExecution(profile, time.Now, r.Record)
}

// Record queues an execution to send and reports whether it was queued. It never blocks:
// when the buffer is full or the Recorder is closed, it drops the execution, counts it in
// Stats().Dropped and returns false. The execution must not be changed afterwards.
func (r *Recorder) Record(e *metricsv1.Execution) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Submitted++
	if r.closed || len(r.queue) >= r.opts.bufferSize {
		r.stats.Dropped++
		return false
	}
	r.queue = append(r.queue, e)
	if len(r.queue) >= r.opts.batchSize {
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
	return s
}

// Flush sends everything queued and waits until the buffer is empty, the Recorder is
// closed (ErrRecorderClosed) or ctx is done.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
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

// Close stops taking executions and sends what is queued, until the buffer is empty or ctx
// is done. What is still queued then is dropped and counted, and Close returns an error
// saying how many. Later calls wait for the first one and return nil.
func (r *Recorder) Close(ctx context.Context) error {
	first := false
	r.closeOnce.Do(func() {
		first = true
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
	})
	if !first {
		<-r.done
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancelRun()
		<-r.done
	}
	r.cancelRun()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.queue)
	if n == 0 {
		return nil
	}
	clear(r.queue)
	r.queue = nil
	r.stats.Dropped += uint64(n)
	err := fmt.Errorf("cugarmetrics: recorder closed with %d executions not delivered", n)
	if r.stats.LastError != nil {
		err = fmt.Errorf("%w (last send error: %w)", err, r.stats.LastError)
	}
	return err
}

// run is the Recorder's goroutine.
func (r *Recorder) run() {
	defer close(r.done)
	defer r.releaseFlushes(ErrRecorderClosed)
	ticker := time.NewTicker(r.opts.flushInterval)
	defer ticker.Stop()
	stopping := false
	failures := 0
	var retryAt time.Time
	var retry <-chan time.Time // fires at retryAt; nil when no send failed
	for {
		if !stopping {
			select {
			case <-r.wake:
			case <-ticker.C:
			case <-retry:
			case <-r.stop:
				stopping = true
			}
		}
		if wait := time.Until(retryAt); wait > 0 {
			if !stopping {
				continue
			}
			select {
			case <-time.After(wait):
			case <-r.runCtx.Done():
				return
			}
		}
		if err := r.sendAll(); err != nil {
			if r.runCtx.Err() != nil {
				return
			}
			failures++
			wait := backoff(r.opts.flushInterval, failures)
			var limited *RateLimitError
			if errors.As(err, &limited) {
				wait = min(limited.RetryDelay, maxRetryDelay)
			}
			retryAt = time.Now().Add(wait)
			retry = time.After(wait)
			continue
		}
		failures, retryAt, retry = 0, time.Time{}, nil
		if stopping {
			return
		}
	}
}

// backoff is the wait after the n-th failed send in a row: the flush interval doubled each
// time, at most maxRetryDelay. A send refused by a rate limit waits the RetryInfo delay
// instead.
func backoff(interval time.Duration, n int) time.Duration {
	d := interval
	for i := 1; i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// sendAll sends the queue in batches until it is empty, and returns the error of a batch
// that failed for a transient reason (the batch stays queued).
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
		r.mu.Unlock()

		res, err := r.client.RecordBatch(r.runCtx, batch)

		r.mu.Lock()
		if err != nil {
			r.stats.SendErrors++
			r.stats.LastError = err
			if transient(err) {
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

// transient says whether a failed batch is worth sending again.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Internal, codes.Unknown, codes.Canceled:
		return true
	}
	return false
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
