package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceGrpc;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionsRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import cugar.metrics.v1.MetricsServiceOuterClass.WatchDashboardRequest;
import io.grpc.Attributes;
import io.grpc.CallCredentials;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientStreamTracer;
import io.grpc.CompositeChannelCredentials;
import io.grpc.ConnectivityState;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;

/**
 * A blocking client of {@code cugar.metrics.v1.MetricsService}.
 *
 * <p>Every call has a deadline ({@link Builder#deadline}, {@link Defaults#CALL_DEADLINE} by
 * default) that covers all its attempts, and each attempt one of its own ({@link
 * Builder#attemptDeadline}, {@link Defaults#ATTEMPT_DEADLINE}). The client retries, itself:
 *
 * <ul>
 *   <li>while the server cannot be reached (connection refused or lost, server restarting), it
 *       reconnects with the spec's reconnect backoff ({@link Defaults#INITIAL_RECONNECT_BACKOFF}
 *       growing to {@link Defaults#MAX_RECONNECT_BACKOFF}) and sends the call as soon as the
 *       channel is ready, until the call's deadline; grpc-java's own reconnect backoff (1 s, then
 *       1.6 times longer, and the channel failing every call at once meanwhile) no longer decides
 *       when the call gives up;
 *   <li>when a server answers {@code UNAVAILABLE} (draining, overloaded), up to {@link
 *       Builder#maxAttempts} attempts in all, {@link Defaults#INITIAL_BACKOFF} apart, doubling up
 *       to {@link Defaults#MAX_BACKOFF}, never past the deadline.
 * </ul>
 *
 * <p>That is safe: the Record RPCs are idempotent by {@code execution_id} and {@code GetDashboard}
 * only reads. The channel balances calls over every address of the target's name ({@code
 * round_robin}), so a headless Service's replicas all get traffic.
 *
 * <p>A call refused by the server's rate limit ({@code RESOURCE_EXHAUSTED} with a {@code
 * google.rpc.RetryInfo}) is retried after the delay the server asks for (at most {@link
 * Builder#retryInfoCap}), up to {@link Builder#rateLimitRetries} times and never past the
 * deadline.
 *
 * <p>An invalid request raises {@link InvalidExecutionException} with the server's field
 * violations; refused credentials raise {@link AuthException}, a rate limit that outlasts the
 * retries {@link RateLimitedException} (both are {@link StatusRuntimeException}s); any other
 * failure raises the {@link StatusRuntimeException} of the call.
 *
 * <p>{@link #watchDashboard} follows a live dashboard through the server-streaming {@code
 * WatchDashboard} RPC and reconnects when the server drains (see {@link DashboardWatch}).
 *
 * <p>Thread-safe; create one per process and {@link #close()} it on shutdown.
 */
public final class MetricsClient implements AutoCloseable {
  /** The fully qualified service name. */
  public static final String SERVICE_NAME = MetricsServiceGrpc.SERVICE_NAME;

  /** The largest batch {@link #recordBatch} accepts (the server's limit). */
  public static final int MAX_BATCH_SIZE = 1000;

  /** The default RetryInfo cap: a server asking for more is waited for this long. */
  public static final Duration MAX_RETRY_DELAY = Defaults.RETRY_INFO_CAP;

  private final ManagedChannel channel;
  private final boolean ownsChannel;
  private final MetricsServiceGrpc.MetricsServiceBlockingStub stub;
  private final MetricsServiceGrpc.MetricsServiceStub asyncStub;
  private final Duration deadline;
  private final Duration attemptDeadline;
  private final int maxAttempts;
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final int rateLimitRetries;
  private final Duration retryInfoCap;

  private MetricsClient(ManagedChannel channel, boolean ownsChannel, Builder b) {
    this.channel = channel;
    this.ownsChannel = ownsChannel;
    this.stub = MetricsServiceGrpc.newBlockingStub(channel);
    this.asyncStub = MetricsServiceGrpc.newStub(channel);
    this.deadline = b.deadline;
    this.attemptDeadline = b.attemptDeadline;
    this.maxAttempts = b.maxAttempts;
    this.initialBackoff = b.initialBackoff;
    this.maxBackoff = b.maxBackoff;
    this.rateLimitRetries = b.rateLimitRetries;
    this.retryInfoCap = b.retryInfoCap;
  }

  /** A client of {@code target} ({@code host:port}) with every default of {@link Defaults}. */
  public static MetricsClient create(String target) {
    return newBuilder(target).build();
  }

  /** A builder for a client of {@code target}, for example {@code localhost:50051}. */
  public static Builder newBuilder(String target) {
    return new Builder(Objects.requireNonNull(target, "target"));
  }

  /**
   * A client over a channel the caller built and owns ({@link #close()} leaves it open), with
   * {@code deadline} per call and every other default. Its balancing policy and credentials are
   * the channel's.
   */
  public static MetricsClient forChannel(ManagedChannel channel, Duration deadline) {
    Builder b = new Builder("(caller's channel)").deadline(deadline);
    return new MetricsClient(Objects.requireNonNull(channel, "channel"), false, b);
  }

  /**
   * Records one finished execution.
   *
   * @return {@link RecordResult#RECORD_RESULT_ACCEPTED} when it was new, {@link
   *     RecordResult#RECORD_RESULT_DUPLICATE} when its {@code execution_id} was already recorded
   * @throws InvalidExecutionException when the server rejects the execution
   * @throws StatusRuntimeException on any other failure, after the retries
   */
  public RecordResult record(Execution execution) {
    RecordExecutionRequest request =
        RecordExecutionRequest.newBuilder().setExecution(execution).build();
    return call(s -> s.recordExecution(request), newDeadline()).getResult();
  }

  /**
   * Records a batch of 1 to {@value #MAX_BATCH_SIZE} executions, each on its own: invalid items
   * are listed in {@link BatchResult#rejections()} and never prevent the valid ones from being
   * recorded.
   *
   * @throws InvalidExecutionException when the batch as a whole is invalid (empty or too large)
   * @throws StatusRuntimeException on any other failure, after the retries
   */
  public BatchResult recordBatch(List<Execution> executions) {
    return recordBatch(executions, newDeadline());
  }

  /** {@link #recordBatch(List)} within {@code callDeadline} instead of the client's deadline. */
  BatchResult recordBatch(List<Execution> executions, Deadline callDeadline) {
    RecordExecutionsRequest request =
        RecordExecutionsRequest.newBuilder().addAllExecutions(executions).build();
    return new BatchResult(call(s -> s.recordExecutions(request), callDeadline));
  }

  /**
   * The golden signals and breakdowns of the replica that answers.
   *
   * @throws InvalidExecutionException when the window or a filter is invalid
   */
  public GetDashboardResponse getDashboard(GetDashboardRequest request) {
    return call(s -> s.getDashboard(request), newDeadline());
  }

  /** The dashboard over everything since the replica started, for one profile. */
  public GetDashboardResponse getDashboard(String profile) {
    return getDashboard(GetDashboardRequest.newBuilder().setProfile(profile).build());
  }

  /**
   * Follows the dashboard {@code dashboard} asks for (window, profile, domain, model, scope, as
   * for {@link #getDashboard(GetDashboardRequest)}): the server pushes a whole {@code
   * GetDashboardResponse} every {@link Defaults#WATCH_INTERVAL} (5 s), the first one at once, and
   * the watch reopens the stream when it ends with {@code UNAVAILABLE}. See {@link
   * DashboardWatch}; close it when done.
   */
  public DashboardWatch watchDashboard(GetDashboardRequest dashboard) {
    return watchDashboard(dashboard, WatchOptions.defaults());
  }

  /**
   * {@link #watchDashboard(GetDashboardRequest)} with another interval (the server accepts 1 s to
   * 1 h), reconnecting turned off, or a listener told of each reconnect.
   *
   * <p>The stream is opened at once; the first {@link DashboardWatch#hasNext()} waits for the
   * first dashboard, or throws when the server refuses the request ({@link
   * InvalidExecutionException} naming {@code interval}, {@link AuthException}, ...). It has no
   * deadline: it lasts until {@link DashboardWatch#close()}, an error, or {@link #close()}.
   */
  public DashboardWatch watchDashboard(GetDashboardRequest dashboard, WatchOptions options) {
    Objects.requireNonNull(options, "options");
    WatchDashboardRequest request =
        WatchDashboardRequest.newBuilder()
            .setDashboard(Objects.requireNonNull(dashboard, "dashboard"))
            .setInterval(ProtoTime.duration(options.interval()))
            .build();
    return new DashboardWatch(asyncStub, channel, request, options);
  }

  /** The generated blocking stub on this client's channel, without a deadline or retries. */
  public MetricsServiceGrpc.MetricsServiceBlockingStub stub() {
    return stub;
  }

  /** The channel this client calls through. */
  public ManagedChannel channel() {
    return channel;
  }

  /** The deadline of each call, all its attempts included. */
  public Duration deadline() {
    return deadline;
  }

  /** The deadline of each attempt inside a call. */
  public Duration attemptDeadline() {
    return attemptDeadline;
  }

  /** Attempts per call, the first included, while the server answers UNAVAILABLE. */
  public int maxAttempts() {
    return maxAttempts;
  }

  /** Retries of a rate-limited call. */
  public int rateLimitRetries() {
    return rateLimitRetries;
  }

  /** The longest RetryInfo delay this client waits. */
  public Duration retryInfoCap() {
    return retryInfoCap;
  }

  /**
   * Shuts the channel down (when this client built it), waiting up to 5 s for calls in flight.
   */
  @Override
  public void close() {
    if (!ownsChannel) {
      return;
    }
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private Deadline newDeadline() {
    return Deadline.after(deadline.toNanos(), TimeUnit.NANOSECONDS);
  }

  /**
   * Runs {@code rpc} until it succeeds, fails for good or {@code callDeadline} passes: reconnects
   * while the server cannot be reached, retries UNAVAILABLE answers with backoff, waits out the
   * server's RetryInfo delay while rate limited; then translates a failure into the client's
   * exceptions.
   */
  private <T> T call(
      Function<MetricsServiceGrpc.MetricsServiceBlockingStub, T> rpc, Deadline callDeadline) {
    int attempts = 0;
    int rateLimited = 0;
    long backoff = initialBackoff.toNanos();
    long reconnectWait = Defaults.INITIAL_RECONNECT_BACKOFF.toNanos();
    StatusRuntimeException unreachable = null;
    while (true) {
      Deadline attempt =
          Deadline.after(attemptDeadline.toNanos(), TimeUnit.NANOSECONDS).minimum(callDeadline);
      ReachedServer reached = new ReachedServer();
      try {
        return rpc.apply(stub.withDeadline(attempt).withInterceptors(reached));
      } catch (StatusRuntimeException e) {
        Status.Code code = e.getStatus().getCode();
        if (code == Status.Code.DEADLINE_EXCEEDED && !reached.get() && unreachable != null) {
          // The deadline passed while still waiting for a connection: say why there was none.
          throw StatusDetails.translate(unreachable);
        }
        if (code == Status.Code.RESOURCE_EXHAUSTED) {
          Optional<Duration> wait =
              rateLimited < rateLimitRetries
                  ? waitBeforeRetry(e, callDeadline, retryInfoCap)
                  : Optional.empty();
          if (wait.isEmpty()) {
            throw StatusDetails.translate(e);
          }
          rateLimited++;
          sleep(wait.get().toNanos(), e);
        } else if (!Defaults.RETRYABLE_CODES.contains(code)) {
          throw StatusDetails.translate(e);
        } else if (!reached.get()) {
          // No connection: the attempt never reached a server. Reconnect now, then wait for the
          // channel to be ready (at most the reconnect backoff) and try again, within the deadline.
          unreachable = e;
          if (callDeadline.isExpired()) {
            throw StatusDetails.translate(e);
          }
          awaitReconnect(reconnectWait, callDeadline);
          reconnectWait =
              Math.min(
                  (long) (reconnectWait * Defaults.RECONNECT_BACKOFF_MULTIPLIER),
                  Defaults.MAX_RECONNECT_BACKOFF.toNanos());
        } else {
          // A server answered UNAVAILABLE (or the connection broke during the call).
          attempts++;
          if (attempts >= maxAttempts
              || backoff >= callDeadline.timeRemaining(TimeUnit.NANOSECONDS)) {
            throw StatusDetails.translate(e);
          }
          sleep(backoff, e);
          backoff = Math.min((long) (backoff * Defaults.BACKOFF_MULTIPLIER), maxBackoff.toNanos());
        }
      }
    }
  }

  /**
   * Short-circuits the channel's reconnect backoff (so it connects now, not after grpc-java's
   * longer one), then waits until the channel is ready, {@code waitNanos} passed or the deadline.
   */
  private void awaitReconnect(long waitNanos, Deadline callDeadline) {
    channel.resetConnectBackoff();
    long bound = Math.min(waitNanos, callDeadline.timeRemaining(TimeUnit.NANOSECONDS));
    if (bound <= 0) {
      return;
    }
    CountDownLatch ready = new CountDownLatch(1);
    AtomicBoolean done = new AtomicBoolean();
    watchUntilReady(channel.getState(true), ready, done);
    try {
      ready.await(bound, TimeUnit.NANOSECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      done.set(true);
    }
  }

  private void watchUntilReady(ConnectivityState state, CountDownLatch ready, AtomicBoolean done) {
    if (state == ConnectivityState.READY) {
      ready.countDown();
      return;
    }
    if (state == ConnectivityState.SHUTDOWN || done.get()) {
      return;
    }
    channel.notifyWhenStateChanged(
        state, () -> watchUntilReady(channel.getState(false), ready, done));
  }

  private static void sleep(long nanos, StatusRuntimeException cause) {
    try {
      TimeUnit.NANOSECONDS.sleep(nanos);
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      throw StatusDetails.translate(cause);
    }
  }

  /**
   * The wait before retrying a call that failed with {@code e}: its RetryInfo delay, capped at
   * {@code cap}, when it is RESOURCE_EXHAUSTED and the wait ends before the deadline.
   */
  static Optional<Duration> waitBeforeRetry(
      StatusRuntimeException e, Deadline callDeadline, Duration cap) {
    if (e.getStatus().getCode() != Status.Code.RESOURCE_EXHAUSTED) {
      return Optional.empty();
    }
    return StatusDetails.retryDelay(e)
        .map(d -> d.compareTo(cap) > 0 ? cap : d)
        .filter(d -> d.toNanos() < callDeadline.timeRemaining(TimeUnit.NANOSECONDS));
  }

  /**
   * Knows whether an attempt reached a server: its stream was created on a connected transport
   * (a call failed by a channel without a connection never gets one).
   */
  private static final class ReachedServer extends ClientStreamTracer.Factory
      implements ClientInterceptor {
    private final AtomicBoolean reached = new AtomicBoolean();

    boolean get() {
      return reached.get();
    }

    @Override
    public ClientStreamTracer newClientStreamTracer(
        ClientStreamTracer.StreamInfo info, Metadata headers) {
      return new ClientStreamTracer() {
        @Override
        public void streamCreated(Attributes transportAttrs, Metadata headers) {
          reached.set(true);
        }
      };
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
        MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      return next.newCall(method, options.withStreamTracerFactory(this));
    }
  }

  private static Duration checkDeadline(Duration deadline) {
    Objects.requireNonNull(deadline, "deadline");
    if (deadline.isNegative() || deadline.isZero()) {
      throw new IllegalArgumentException("deadline must be positive, got " + deadline);
    }
    return deadline;
  }

  /** Options of a {@link MetricsClient}. */
  public static final class Builder {
    private final String target;
    private Duration deadline = Defaults.CALL_DEADLINE;
    private Duration attemptDeadline = Defaults.ATTEMPT_DEADLINE;
    private int maxAttempts = Defaults.MAX_ATTEMPTS;
    private Duration initialBackoff = Defaults.INITIAL_BACKOFF;
    private Duration maxBackoff = Defaults.MAX_BACKOFF;
    private boolean plaintext = true;
    private int rateLimitRetries = Defaults.RATE_LIMIT_RETRIES;
    private Duration retryInfoCap = Defaults.RETRY_INFO_CAP;
    private String apiKey;
    private Path rootCertificates;
    private Path clientCertificate;
    private Path clientKey;
    private String authority;

    private Builder(String target) {
      this.target = target;
    }

    /** The deadline of every call, all its attempts and waits included (default 10 s). */
    public Builder deadline(Duration deadline) {
      this.deadline = checkDeadline(deadline);
      return this;
    }

    /**
     * The deadline of each attempt inside a call (default 5 s); the last attempt gets what is
     * left of the call's deadline.
     */
    public Builder attemptDeadline(Duration attemptDeadline) {
      this.attemptDeadline = checkDeadline(attemptDeadline);
      return this;
    }

    /**
     * Attempts per call while a server answers UNAVAILABLE, the first included (default 5; 1
     * disables those retries). Waiting for a connection is bounded by the deadline only.
     */
    public Builder maxAttempts(int maxAttempts) {
      if (maxAttempts < 1) {
        throw new IllegalArgumentException("maxAttempts must be >= 1, got " + maxAttempts);
      }
      this.maxAttempts = maxAttempts;
      return this;
    }

    /** The backoff before the first retry (default 100 ms), doubled at each retry up to maxBackoff. */
    public Builder initialBackoff(Duration initialBackoff) {
      this.initialBackoff = positive(initialBackoff, "initialBackoff");
      return this;
    }

    /** The longest backoff between two attempts (default 2 s). */
    public Builder maxBackoff(Duration maxBackoff) {
      this.maxBackoff = positive(maxBackoff, "maxBackoff");
      return this;
    }

    /**
     * Retries of a call refused by the server's rate limit, each after the delay of its {@code
     * google.rpc.RetryInfo} (capped at {@link #retryInfoCap}, and only when it ends before the
     * deadline); 0 gives up at once with a {@link RateLimitedException}. Default 3.
     */
    public Builder rateLimitRetries(int rateLimitRetries) {
      if (rateLimitRetries < 0) {
        throw new IllegalArgumentException(
            "rateLimitRetries must be >= 0, got " + rateLimitRetries);
      }
      this.rateLimitRetries = rateLimitRetries;
      return this;
    }

    /** The longest RetryInfo delay waited for (default 30 s): a longer one is waited this long. */
    public Builder retryInfoCap(Duration retryInfoCap) {
      this.retryInfoCap = positive(retryInfoCap, "retryInfoCap");
      return this;
    }

    /**
     * Sends {@code apiKey} (from {@code cugar-metrics keys create}) as {@code authorization:
     * Bearer <key>} on every call, as the channel's call credentials. Use it with TLS unless the
     * server is on the loopback interface.
     */
    public Builder apiKey(String apiKey) {
      ApiKeyCredentials.of(apiKey);
      this.apiKey = apiKey;
      return this;
    }

    /** Use TLS with the JVM's trust store instead of plaintext (the default). */
    public Builder useTransportSecurity() {
      this.plaintext = false;
      return this;
    }

    /**
     * Use TLS and trust only the CA certificates in this PEM file (the server's certificate must
     * be signed by one of them and name the target's host in its subject alternative names).
     */
    public Builder rootCertificates(Path caPem) {
      this.rootCertificates = Objects.requireNonNull(caPem, "caPem");
      this.plaintext = false;
      return this;
    }

    /**
     * Use mutual TLS: present this certificate chain and its private key (PEM files; the key in
     * PKCS#8, {@code -----BEGIN PRIVATE KEY-----}) to a server started with {@code
     * --tls-client-ca}.
     */
    public Builder clientCertificate(Path certChainPem, Path privateKeyPem) {
      this.clientCertificate = Objects.requireNonNull(certChainPem, "certChainPem");
      this.clientKey = Objects.requireNonNull(privateKeyPem, "privateKeyPem");
      this.plaintext = false;
      return this;
    }

    /**
     * The name the server's certificate is checked against instead of the target's host (for
     * example when connecting by an address the certificate does not list).
     */
    public Builder overrideAuthority(String authority) {
      this.authority = Objects.requireNonNull(authority, "authority");
      return this;
    }

    /**
     * Builds the client and its channel.
     *
     * @throws UncheckedIOException when a certificate or key file cannot be read or parsed
     */
    public MetricsClient build() {
      ChannelCredentials credentials = plaintext ? InsecureChannelCredentials.create() : tls();
      if (apiKey != null) {
        CallCredentials key = ApiKeyCredentials.of(apiKey);
        credentials = CompositeChannelCredentials.create(credentials, key);
      }
      ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target, credentials);
      if (authority != null) {
        builder.overrideAuthority(authority);
      }
      // The client retries itself (see the class comment): grpc-java's retries would stop after
      // its own backoff, shorter than its reconnect delay.
      builder.defaultLoadBalancingPolicy(Defaults.LOAD_BALANCING_POLICY).disableRetry();
      ManagedChannel channel = builder.build();
      // Connect now, in the background, so that the first call does not wait for the handshake.
      channel.getState(true);
      return new MetricsClient(channel, true, this);
    }

    private ChannelCredentials tls() {
      TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder();
      try {
        if (rootCertificates != null) {
          tls.trustManager(rootCertificates.toFile());
        }
        if (clientCertificate != null) {
          tls.keyManager(clientCertificate.toFile(), clientKey.toFile());
        }
      } catch (IOException | RuntimeException e) {
        throw new UncheckedIOException(
            new IOException("cannot load the TLS certificates or key: " + e.getMessage(), e));
      }
      return tls.build();
    }

    private static Duration positive(Duration d, String name) {
      Objects.requireNonNull(d, name);
      if (d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(name + " must be positive, got " + d);
      }
      return d;
    }
  }
}
