package dev.cugar.metrics.client;

import java.time.Duration;
import java.util.Objects;

/**
 * How {@link MetricsClient#watchDashboard(
 * cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest, WatchOptions)} follows a
 * dashboard: the interval between two dashboards, whether a stream that ends with {@code
 * UNAVAILABLE} is opened again, and who is told when it is. Immutable; {@link #defaults()} or
 * {@link #newBuilder()}.
 */
public final class WatchOptions {
  private static final WatchOptions DEFAULTS = newBuilder().build();

  private final Duration interval;
  private final boolean reconnect;
  private final DashboardWatch.ReconnectListener onReconnect;

  private WatchOptions(Builder b) {
    this.interval = b.interval;
    this.reconnect = b.reconnect;
    this.onReconnect = b.onReconnect;
  }

  /** Every default: {@link Defaults#WATCH_INTERVAL}, reconnecting, nobody told. */
  public static WatchOptions defaults() {
    return DEFAULTS;
  }

  /** A builder that starts from the defaults. */
  public static Builder newBuilder() {
    return new Builder();
  }

  /** The time between two dashboards (default {@link Defaults#WATCH_INTERVAL}, 5 s). */
  public Duration interval() {
    return interval;
  }

  /** Whether a stream that ends with {@link Defaults#WATCH_RECONNECT_CODES} is opened again. */
  public boolean reconnect() {
    return reconnect;
  }

  /** The listener told of each reconnect; a no-op unless one was set. */
  public DashboardWatch.ReconnectListener onReconnect() {
    return onReconnect;
  }

  /** Options of a watch. */
  public static final class Builder {
    private Duration interval = Defaults.WATCH_INTERVAL;
    private boolean reconnect = true;
    private DashboardWatch.ReconnectListener onReconnect = (error, backoff) -> {};

    private Builder() {}

    /**
     * The time between two dashboards (default 5 s). The server accepts 1 s to 1 h and ends the
     * watch with {@code INVALID_ARGUMENT} naming {@code interval} otherwise; the client sends it
     * as given.
     */
    public Builder interval(Duration interval) {
      this.interval = Objects.requireNonNull(interval, "interval");
      return this;
    }

    /**
     * Whether a stream that ends with {@code UNAVAILABLE} (the server drains, the connection is
     * lost) is opened again (default true). False: it ends the watch with that error.
     */
    public Builder reconnect(boolean reconnect) {
      this.reconnect = reconnect;
      return this;
    }

    /**
     * Told of each reconnect, on the thread that reads the watch, before the wait: with the error
     * that ended the stream and the wait before it is opened again.
     */
    public Builder onReconnect(DashboardWatch.ReconnectListener onReconnect) {
      this.onReconnect = Objects.requireNonNull(onReconnect, "onReconnect");
      return this;
    }

    /** The options. */
    public WatchOptions build() {
      return new WatchOptions(this);
    }
  }
}
