package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceGrpc;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.WatchDashboardRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A live dashboard: every {@code GetDashboardResponse} the server pushes through {@code
 * WatchDashboard}, the first one at once, then one per interval, read with a blocking {@link
 * #hasNext()}/{@link #next()} (from {@link MetricsClient#watchDashboard}).
 *
 * <pre>{@code
 * try (DashboardWatch watch = client.watchDashboard(request)) {
 *   while (watch.hasNext()) {
 *     show(watch.next());
 *   }
 * }
 * }</pre>
 *
 * <p>When the stream ends with {@code UNAVAILABLE} (the server drains and says "reconnect", or
 * the connection is lost) the watch opens it again — on another replica when the target's name
 * resolves to several — after a wait of {@link Defaults#WATCH_RECONNECT_INITIAL_BACKOFF} that
 * doubles, up to {@link Defaults#WATCH_RECONNECT_MAX_BACKOFF}, while reopening fails, and starts
 * over once a response arrives. The {@link ReconnectListener} of the {@link WatchOptions} is told
 * of each reconnect first. Reading simply blocks meanwhile.
 *
 * <p>Any other status ends the watch: {@link #hasNext()} throws the client's usual exception for
 * it ({@link InvalidExecutionException} with the field violations for {@code INVALID_ARGUMENT},
 * {@link AuthException}, {@link RateLimitedException}, else the {@link StatusRuntimeException}),
 * once; afterwards it returns false. So does {@code UNAVAILABLE} when reconnecting is off.
 *
 * <p>{@link #close()} cancels the stream, from any thread: a reader blocked in {@link #hasNext()}
 * returns false. A reader interrupted while blocked gets a {@code CANCELLED} {@link
 * StatusRuntimeException}, the watch closed and the interrupt flag set again. Read it from one
 * thread at a time. The watch asks for one dashboard at a time (gRPC flow control): a slow reader
 * piles up no more than the transport's flow-control window, and the server skips the ticks it
 * missed.
 */
public final class DashboardWatch implements Iterator<GetDashboardResponse>, AutoCloseable {
  /** Told of each reconnect of a {@link DashboardWatch}. */
  @FunctionalInterface
  public interface ReconnectListener {
    /**
     * The stream ended with {@code error} (its status is one of {@link
     * Defaults#WATCH_RECONNECT_CODES}) and is opened again after {@code backoff}. Called on the
     * thread that reads the watch; an exception thrown here closes the watch and propagates.
     */
    void onReconnect(StatusRuntimeException error, Duration backoff);
  }

  /** Put in a stream's queue by {@link #close()} to wake a blocked reader. */
  private static final Object CLOSED = new Object();

  /** Put in a stream's queue when the server ended the stream with OK. */
  private static final Object COMPLETED = new Object();

  private final MetricsServiceGrpc.MetricsServiceStub stub;
  private final ManagedChannel channel;
  private final WatchDashboardRequest request;
  private final WatchOptions options;
  private final CountDownLatch closed = new CountDownLatch(1);
  private final Object lock = new Object();

  /** The stream open now (guarded by {@link #lock}). */
  private Stream current;

  // The reader's state (one reader at a time).
  private GetDashboardResponse next;
  private boolean ended;
  private int failures;

  DashboardWatch(
      MetricsServiceGrpc.MetricsServiceStub stub,
      ManagedChannel channel,
      WatchDashboardRequest request,
      WatchOptions options) {
    this.stub = stub;
    this.channel = channel;
    this.request = request;
    this.options = options;
    open();
  }

  /**
   * The wait before reopening a stream that failed {@code failures} times in a row (0 after a
   * stream that delivered a dashboard): 0.2 s, doubling, at most 5 s.
   */
  static Duration backoff(int failures) {
    double nanos =
        Defaults.WATCH_RECONNECT_INITIAL_BACKOFF.toNanos()
            * Math.pow(Defaults.WATCH_RECONNECT_BACKOFF_MULTIPLIER, failures);
    return Duration.ofNanos((long) Math.min(nanos, Defaults.WATCH_RECONNECT_MAX_BACKOFF.toNanos()));
  }

  /** The request sent on every (re)opened stream. */
  public WatchDashboardRequest request() {
    return request;
  }

  /**
   * Waits for the next dashboard; true when there is one, false once the watch was closed or the
   * server ended the stream with OK.
   *
   * @throws InvalidExecutionException when the server refuses the request (the violations name
   *     {@code interval}, {@code dashboard.window}, ...)
   * @throws AuthException when the key is missing, unknown or may not watch
   * @throws StatusRuntimeException for any other status that ends the watch ({@code
   *     RESOURCE_EXHAUSTED} at the server's watcher limits, {@code UNAVAILABLE} when reconnecting
   *     is off), or {@code CANCELLED} when the reading thread is interrupted
   */
  @Override
  public boolean hasNext() {
    if (next != null) {
      return true;
    }
    while (!ended) {
      Stream stream;
      synchronized (lock) {
        stream = current;
      }
      if (stream == null || isClosed()) {
        ended = true;
        break;
      }
      Object event = take(stream);
      if (event instanceof GetDashboardResponse response) {
        failures = 0;
        stream.requestNext();
        next = response;
        return true;
      }
      if (event == CLOSED || isClosed()) {
        ended = true;
      } else if (event == COMPLETED) {
        end();
      } else {
        reopenAfter((StatusRuntimeException) event);
      }
    }
    return false;
  }

  /**
   * The next dashboard, waiting for it.
   *
   * @throws NoSuchElementException when the watch has ended (see {@link #hasNext()})
   */
  @Override
  public GetDashboardResponse next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the dashboard watch has ended");
    }
    GetDashboardResponse response = next;
    next = null;
    return response;
  }

  /** Cancels the stream and ends the watch; idempotent, from any thread. */
  @Override
  public void close() {
    closed.countDown();
    synchronized (lock) {
      if (current != null) {
        current.cancel();
      }
    }
  }

  private boolean isClosed() {
    return closed.getCount() == 0;
  }

  /** Opens a stream unless the watch was closed meanwhile. */
  private void open() {
    synchronized (lock) {
      if (isClosed()) {
        current = null;
        return;
      }
      current = new Stream();
      stub.watchDashboard(request, current);
    }
  }

  /** Ends the watch, cancelling its stream, after an error or the end of the stream. */
  private void end() {
    ended = true;
    close();
  }

  /**
   * The stream ended with {@code error}: opens it again after the backoff when the code allows
   * it, else ends the watch with the client's exception for it.
   */
  private void reopenAfter(StatusRuntimeException error) {
    Status.Code code = error.getStatus().getCode();
    if (!options.reconnect() || !Defaults.WATCH_RECONNECT_CODES.contains(code)) {
      end();
      throw StatusDetails.translate(error);
    }
    Duration wait = backoff(failures);
    failures++;
    try {
      options.onReconnect().onReconnect(error, wait);
    } catch (RuntimeException | Error listenerFailed) {
      end();
      throw listenerFailed;
    }
    // The channel may be backing off from a refused connection (grpc-java waits 1 s and longer):
    // connect again now, so the stream reopened after the wait finds a connection if there is one.
    channel.resetConnectBackoff();
    try {
      if (closed.await(wait.toNanos(), TimeUnit.NANOSECONDS)) {
        ended = true;
        return;
      }
    } catch (InterruptedException e) {
      throw interrupted(e);
    }
    open();
  }

  private Object take(Stream stream) {
    try {
      return stream.events.take();
    } catch (InterruptedException e) {
      throw interrupted(e);
    }
  }

  private StatusRuntimeException interrupted(InterruptedException e) {
    end();
    Thread.currentThread().interrupt();
    return Status.CANCELLED
        .withDescription("interrupted while watching the dashboard")
        .withCause(e)
        .asRuntimeException();
  }

  /** One WatchDashboard call: what it delivers, in order, for the reader to take. */
  private static final class Stream
      implements ClientResponseObserver<WatchDashboardRequest, GetDashboardResponse> {
    final BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    private volatile ClientCallStreamObserver<WatchDashboardRequest> call;

    @Override
    public void beforeStart(ClientCallStreamObserver<WatchDashboardRequest> call) {
      this.call = call;
      // One dashboard at a time: the next one is asked for once the reader took this one.
      call.disableAutoRequestWithInitial(1);
    }

    void requestNext() {
      call.request(1);
    }

    void cancel() {
      call.cancel("the dashboard watch was closed", null);
      events.add(CLOSED);
    }

    @Override
    public void onNext(GetDashboardResponse response) {
      events.add(response);
    }

    @Override
    public void onError(Throwable t) {
      events.add(
          t instanceof StatusRuntimeException e
              ? e
              : Status.fromThrowable(t).asRuntimeException(Status.trailersFromThrowable(t)));
    }

    @Override
    public void onCompleted() {
      events.add(COMPLETED);
    }
  }
}
