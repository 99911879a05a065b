package dev.cugar.metrics.client;

import io.grpc.CallCredentials;
import io.grpc.Metadata;
import java.util.Objects;
import java.util.concurrent.Executor;

/**
 * Call credentials that send a cugar-metrics API key as {@code authorization: Bearer <key>} on
 * every call. {@link MetricsClient.Builder#apiKey} puts them on the client's channel; use them
 * directly on a channel or stub you build yourself:
 *
 * <pre>{@code
 * stub.withCallCredentials(ApiKeyCredentials.of(System.getenv("CUGAR_METRICS_API_KEY")))
 * }</pre>
 *
 * <p>The key is sent on plaintext channels too (a server on the loopback interface); anywhere
 * else use TLS, or the key can be read on the wire.
 */
public final class ApiKeyCredentials extends CallCredentials {
  static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final String value;

  private ApiKeyCredentials(String key) {
    this.value = "Bearer " + key;
  }

  /**
   * Credentials for {@code key} (as printed by {@code cugar-metrics keys create}).
   *
   * @throws IllegalArgumentException when the key is empty or not printable ASCII without spaces
   */
  public static ApiKeyCredentials of(String key) {
    Objects.requireNonNull(key, "key");
    if (key.isEmpty()) {
      throw new IllegalArgumentException("the API key must not be empty");
    }
    for (int i = 0; i < key.length(); i++) {
      char c = key.charAt(i);
      if (c <= ' ' || c >= 0x7f) {
        throw new IllegalArgumentException("the API key must be printable ASCII without spaces");
      }
    }
    return new ApiKeyCredentials(key);
  }

  @Override
  public void applyRequestMetadata(
      RequestInfo requestInfo, Executor appExecutor, MetadataApplier applier) {
    Metadata headers = new Metadata();
    headers.put(AUTHORIZATION, value);
    applier.apply(headers);
  }

  /** Never shows the key. */
  @Override
  public String toString() {
    return "ApiKeyCredentials[Bearer ***]";
  }
}
