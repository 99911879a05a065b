package dev.cugar.metrics.client;

import cugar.metrics.v1.MetricsServiceGrpc;
import cugar.metrics.v1.MetricsServiceOuterClass.Execution;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.GetDashboardResponse;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordExecutionsRequest;
import cugar.metrics.v1.MetricsServiceOuterClass.RecordResult;
import io.grpc.CallCredentials;
import io.grpc.ChannelCredentials;
import io.grpc.CompositeChannelCredentials;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A blocking client of {@code cugar.metrics.v1.MetricsService}.
 *
 * <p>Every call carries a deadline ({@link Builder#deadline}, 5 s by default). Calls that fail
 * with {@code UNAVAILABLE} (server starting, draining or briefly unreachable) are retried by the
 * channel itself, through its default service config ({@code retryPolicy}): safe because the
 * Record RPCs are idempotent by {@code execution_id} and {@code GetDashboard} only reads.
 *
 * <p>A call refused by the server's rate limit ({@code RESOURCE_EXHAUSTED} with a {@code
 * google.rpc.RetryInfo}) is retried after the delay the server asks for (at most {@link
 * #MAX_RETRY_DELAY}), up to {@link Builder#rateLimitRetries} times and never past the deadline.
 *
 * <p>An invalid request raises {@link InvalidExecutionException} with the server's field
 * violations; refused credentials raise {@link AuthException}, a rate limit that outlasts the
 * retries {@link RateLimitedException} (both are {@link StatusRuntimeException}s); any other
 * failure raises the {@link StatusRuntimeException} of the call.
 *
 * <p>Thread-safe; create one per process and {@link #close()} it on shutdown.
 */
public final class MetricsClient implements AutoCloseable {
  /** The fully qualified service name, as it appears in the service config. */
  public static final String SERVICE_NAME = MetricsServiceGrpc.SERVICE_NAME;

  /** The largest batch {@link #recordBatch} accepts (the server's limit). */
  public static final int MAX_BATCH_SIZE = 1000;

  /** The longest RetryInfo delay honoured: a server asking for more is waited for this long. */
  public static final Duration MAX_RETRY_DELAY = Duration.ofSeconds(30);

  private final ManagedChannel channel;
  private final boolean ownsChannel;
  private final MetricsServiceGrpc.MetricsServiceBlockingStub stub;
  private final Duration deadline;
  private final int rateLimitRetries;

  private MetricsClient(
      ManagedChannel channel, boolean ownsChannel, Duration deadline, int rateLimitRetries) {
    this.channel = channel;
    this.ownsChannel = ownsChannel;
    this.stub = MetricsServiceGrpc.newBlockingStub(channel);
    this.deadline = deadline;
    this.rateLimitRetries = rateLimitRetries;
  }

  /** A client of {@code target} ({@code host:port}) with every default: plaintext, 5 s, 4 attempts. */
  public static MetricsClient create(String target) {
    return newBuilder(target).build();
  }

  /** A builder for a client of {@code target}, for example {@code localhost:50051}. */
  public static Builder newBuilder(String target) {
    return new Builder(Objects.requireNonNull(target, "target"));
  }

  /**
   * A client over a channel the caller built and owns ({@link #close()} leaves it open). Retries
   * on UNAVAILABLE then follow that channel's own service config; rate-limited calls are retried
   * up to 3 times after the server's RetryInfo delay.
   */
  public static MetricsClient forChannel(ManagedChannel channel, Duration deadline) {
    return new MetricsClient(
        Objects.requireNonNull(channel, "channel"), false, checkDeadline(deadline), 3);
  }

  /**
   * Records one finished execution.
   *
   * @return {@link RecordResult#RECORD_RESULT_ACCEPTED} when it was new, {@link
   *     RecordResult#RECORD_RESULT_DUPLICATE} when its {@code execution_id} was already recorded
   * @throws InvalidExecutionException when the server rejects the execution
   * @throws StatusRuntimeException on any other failure, after retries when it was UNAVAILABLE
   */
  public RecordResult record(Execution execution) {
    RecordExecutionRequest request =
        RecordExecutionRequest.newBuilder().setExecution(execution).build();
    return call(s -> s.recordExecution(request)).getResult();
  }

  /**
   * Records a batch of 1 to {@value #MAX_BATCH_SIZE} executions, each on its own: invalid items
   * are listed in {@link BatchResult#rejections()} and never prevent the valid ones from being
   * recorded.
   *
   * @throws InvalidExecutionException when the batch as a whole is invalid (empty or too large)
   * @throws StatusRuntimeException on any other failure, after retries when it was UNAVAILABLE
   */
  public BatchResult recordBatch(List<Execution> executions) {
    RecordExecutionsRequest request =
        RecordExecutionsRequest.newBuilder().addAllExecutions(executions).build();
    return new BatchResult(call(s -> s.recordExecutions(request)));
  }

  /**
   * The golden signals and breakdowns of the replica that answers.
   *
   * @throws InvalidExecutionException when the window or a filter is invalid
   */
  public GetDashboardResponse getDashboard(GetDashboardRequest request) {
    return call(s -> s.getDashboard(request));
  }

  /** The dashboard over everything since the replica started, for one profile. */
  public GetDashboardResponse getDashboard(String profile) {
    return getDashboard(GetDashboardRequest.newBuilder().setProfile(profile).build());
  }

  /** The generated blocking stub on this client's channel, without a deadline. */
  public MetricsServiceGrpc.MetricsServiceBlockingStub stub() {
    return stub;
  }

  /** The channel this client calls through. */
  public ManagedChannel channel() {
    return channel;
  }

  /** The deadline each call of this client gets. */
  public Duration deadline() {
    return deadline;
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

  /**
   * Runs {@code rpc} with this client's deadline, retrying after the server's RetryInfo delay
   * while it is rate limited, and translates a failure into the client's exceptions.
   */
  private <T> T call(Function<MetricsServiceGrpc.MetricsServiceBlockingStub, T> rpc) {
    Deadline callDeadline = Deadline.after(deadline.toNanos(), TimeUnit.NANOSECONDS);
    MetricsServiceGrpc.MetricsServiceBlockingStub withDeadline = stub.withDeadline(callDeadline);
    for (int retries = 0; ; retries++) {
      try {
        return rpc.apply(withDeadline);
      } catch (StatusRuntimeException e) {
        Optional<Duration> wait =
            retries < rateLimitRetries ? waitBeforeRetry(e, callDeadline) : Optional.empty();
        if (wait.isEmpty()) {
          throw StatusDetails.translate(e);
        }
        try {
          TimeUnit.NANOSECONDS.sleep(wait.get().toNanos());
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw StatusDetails.translate(e);
        }
      }
    }
  }

  /**
   * The wait before retrying a call that failed with {@code e}: its RetryInfo delay, capped at
   * {@link #MAX_RETRY_DELAY}, when it is RESOURCE_EXHAUSTED and the wait ends before the deadline.
   */
  static Optional<Duration> waitBeforeRetry(StatusRuntimeException e, Deadline callDeadline) {
    if (e.getStatus().getCode() != Status.Code.RESOURCE_EXHAUSTED) {
      return Optional.empty();
    }
    return StatusDetails.retryDelay(e)
        .map(d -> d.compareTo(MAX_RETRY_DELAY) > 0 ? MAX_RETRY_DELAY : d)
        .filter(d -> d.toNanos() < callDeadline.timeRemaining(TimeUnit.NANOSECONDS));
  }

  /**
   * The default service config: every method of the service is retried on UNAVAILABLE, with
   * exponential backoff, up to {@code maxAttempts} attempts in all. Numbers are {@code Double}
   * and durations strings, as grpc-java's JSON-shaped config requires.
   */
  static Map<String, Object> serviceConfig(
      int maxAttempts, Duration initialBackoff, Duration maxBackoff) {
    Map<String, Object> retryPolicy =
        Map.of(
            "maxAttempts", (double) maxAttempts,
            "initialBackoff", seconds(initialBackoff),
            "maxBackoff", seconds(maxBackoff),
            "backoffMultiplier", 2.0,
            "retryableStatusCodes", List.of("UNAVAILABLE"));
    Map<String, Object> methodConfig =
        Map.of(
            "name", List.of(Map.of("service", SERVICE_NAME)),
            "retryPolicy", retryPolicy);
    return Map.of("methodConfig", List.of(methodConfig));
  }

  private static String seconds(Duration d) {
    return java.math.BigDecimal.valueOf(d.toNanos(), 9).stripTrailingZeros().toPlainString() + "s";
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
    private Duration deadline = Duration.ofSeconds(5);
    private int maxAttempts = 4;
    private Duration initialBackoff = Duration.ofMillis(100);
    private Duration maxBackoff = Duration.ofSeconds(2);
    private boolean plaintext = true;
    private int rateLimitRetries = 3;
    private String apiKey;
    private Path rootCertificates;
    private Path clientCertificate;
    private Path clientKey;
    private String authority;

    private Builder(String target) {
      this.target = target;
    }

    /** The deadline of every call, including its retries (default 5 s). */
    public Builder deadline(Duration deadline) {
      this.deadline = checkDeadline(deadline);
      return this;
    }

    /**
     * Attempts per call when the server answers UNAVAILABLE, the first included: 1 (no retry) to
     * 5 (grpc-java's cap). Default 4.
     */
    public Builder maxAttempts(int maxAttempts) {
      if (maxAttempts < 1 || maxAttempts > 5) {
        throw new IllegalArgumentException("maxAttempts must be 1 to 5, got " + maxAttempts);
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
     * google.rpc.RetryInfo} (capped at {@link #MAX_RETRY_DELAY}, and only when it ends before the
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
      if (maxAttempts > 1) {
        builder
            .defaultServiceConfig(serviceConfig(maxAttempts, initialBackoff, maxBackoff))
            .enableRetry();
      } else {
        builder.disableRetry();
      }
      return new MetricsClient(builder.build(), true, deadline, rateLimitRetries);
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
