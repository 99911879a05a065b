package dev.cugar.metrics.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * The Java client's defaults against {@code clients/spec.yaml}, the one file of defaults the four
 * clients share: every key of the spec has a Java value, and each value is the spec's.
 */
class SpecTest {
  /** Each spec key (section.name) and the Java constant that implements it, in spec units. */
  private static Map<String, Object> javaValues() {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("version", 1);
    v.put("call.deadline_seconds", seconds(Defaults.CALL_DEADLINE));
    v.put("call.attempt_deadline_seconds", seconds(Defaults.ATTEMPT_DEADLINE));
    v.put("call.max_attempts", Defaults.MAX_ATTEMPTS);
    v.put("call.initial_backoff_seconds", seconds(Defaults.INITIAL_BACKOFF));
    v.put("call.max_backoff_seconds", seconds(Defaults.MAX_BACKOFF));
    v.put("call.backoff_multiplier", Defaults.BACKOFF_MULTIPLIER);
    v.put("call.retryable_codes", codes(Defaults.RETRYABLE_CODES));
    v.put(
        "connection.initial_reconnect_backoff_seconds",
        seconds(Defaults.INITIAL_RECONNECT_BACKOFF));
    v.put("connection.max_reconnect_backoff_seconds", seconds(Defaults.MAX_RECONNECT_BACKOFF));
    v.put("connection.load_balancing_policy", Defaults.LOAD_BALANCING_POLICY);
    v.put("rate_limit.retry_info_cap_seconds", seconds(Defaults.RETRY_INFO_CAP));
    v.put("rate_limit.rate_limit_retries", Defaults.RATE_LIMIT_RETRIES);
    v.put("recorder.buffer_size", Defaults.RECORDER_BUFFER_SIZE);
    v.put("recorder.batch_size", Defaults.RECORDER_BATCH_SIZE);
    v.put("recorder.flush_interval_seconds", seconds(Defaults.RECORDER_FLUSH_INTERVAL));
    v.put("recorder.close_timeout_seconds", seconds(Defaults.RECORDER_CLOSE_TIMEOUT));
    v.put(
        "recorder.retry_initial_backoff_seconds",
        seconds(Defaults.RECORDER_RETRY_INITIAL_BACKOFF));
    v.put("recorder.retry_max_backoff_seconds", seconds(Defaults.RECORDER_RETRY_MAX_BACKOFF));
    v.put("recorder.retry_backoff_multiplier", Defaults.RECORDER_RETRY_BACKOFF_MULTIPLIER);
    v.put("recorder.retryable_codes", codes(Defaults.RECORDER_RETRYABLE_CODES));
    v.put("watch.interval_seconds", seconds(Defaults.WATCH_INTERVAL));
    v.put("watch.reconnect_codes", codes(Defaults.WATCH_RECONNECT_CODES));
    v.put(
        "watch.reconnect_initial_backoff_seconds",
        seconds(Defaults.WATCH_RECONNECT_INITIAL_BACKOFF));
    v.put("watch.reconnect_max_backoff_seconds", seconds(Defaults.WATCH_RECONNECT_MAX_BACKOFF));
    v.put("watch.reconnect_backoff_multiplier", Defaults.WATCH_RECONNECT_BACKOFF_MULTIPLIER);
    return v;
  }

  @Test
  void everyDefaultIsTheSpecs() throws IOException {
    Map<String, Object> spec = flatten("", load());
    Map<String, Object> java = javaValues();

    assertEquals(
        new TreeSet<>(spec.keySet()),
        new TreeSet<>(java.keySet()),
        "clients/spec.yaml and the Java defaults name different keys");
    List<String> differ = new ArrayList<>();
    for (Map.Entry<String, Object> e : spec.entrySet()) {
      Object specValue = normalize(e.getValue());
      Object javaValue = normalize(java.get(e.getKey()));
      if (!specValue.equals(javaValue)) {
        differ.add(e.getKey() + ": spec " + specValue + ", Java " + javaValue);
      }
    }
    assertTrue(differ.isEmpty(), "Java defaults differ from clients/spec.yaml: " + differ);
  }

  @Test
  void theBuildersStartFromTheDefaults() {
    try (MetricsClient client = MetricsClient.create("127.0.0.1:1")) {
      assertEquals(Defaults.CALL_DEADLINE, client.deadline());
      assertEquals(Defaults.ATTEMPT_DEADLINE, client.attemptDeadline());
      assertEquals(Defaults.MAX_ATTEMPTS, client.maxAttempts());
      assertEquals(Defaults.RATE_LIMIT_RETRIES, client.rateLimitRetries());
      assertEquals(Defaults.RETRY_INFO_CAP, client.retryInfoCap());
      Recorder.Builder recorder = Recorder.newBuilder(client);
      assertEquals(Defaults.RECORDER_BUFFER_SIZE, recorder.bufferCapacity());
      assertEquals(Defaults.RECORDER_BATCH_SIZE, recorder.maxBatchSize());
      assertEquals(Defaults.RECORDER_FLUSH_INTERVAL, recorder.flushInterval());
      assertEquals(Defaults.RECORDER_CLOSE_TIMEOUT, recorder.closeTimeout());
      WatchOptions watch = WatchOptions.defaults();
      assertEquals(Defaults.WATCH_INTERVAL, watch.interval());
      assertTrue(watch.reconnect());
    }
  }

  /** The watch's reopen waits are the spec's: initial times multiplier^n, at most the maximum. */
  @Test
  void theWatchBackoffIsTheSpecs() throws IOException {
    Map<String, Object> spec = flatten("", load());
    double initial = ((Number) spec.get("watch.reconnect_initial_backoff_seconds")).doubleValue();
    double max = ((Number) spec.get("watch.reconnect_max_backoff_seconds")).doubleValue();
    double multiplier = ((Number) spec.get("watch.reconnect_backoff_multiplier")).doubleValue();
    List<Double> expected = new ArrayList<>();
    List<Double> java = new ArrayList<>();
    for (int failures = 0; failures < 8; failures++) {
      expected.add(Math.min(initial * Math.pow(multiplier, failures), max));
      java.add(seconds(DashboardWatch.backoff(failures)));
    }
    assertEquals(expected, java);
  }

  private static Map<String, Object> load() throws IOException {
    Path spec = ServerProcess.repoRoot().resolve("clients/spec.yaml");
    try (Reader reader = Files.newBufferedReader(spec, StandardCharsets.UTF_8)) {
      Map<String, Object> root = new Yaml(new SafeConstructor(new LoaderOptions())).load(reader);
      return root;
    }
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> flatten(String prefix, Map<String, Object> map) {
    Map<String, Object> flat = new LinkedHashMap<>();
    for (Map.Entry<String, Object> e : map.entrySet()) {
      String key = prefix + e.getKey();
      if (e.getValue() instanceof Map<?, ?> nested) {
        flat.putAll(flatten(key + ".", (Map<String, Object>) nested));
      } else {
        flat.put(key, e.getValue());
      }
    }
    return flat;
  }

  /** Numbers as doubles, lists as sets of strings, so 2 and 2.0 or list order never differ. */
  private static Object normalize(Object value) {
    if (value instanceof Number n) {
      return n.doubleValue();
    }
    if (value instanceof List<?> list) {
      Set<String> set = new TreeSet<>();
      list.forEach(item -> set.add(String.valueOf(item)));
      return set;
    }
    if (value instanceof Set<?> set) {
      Set<String> sorted = new TreeSet<>();
      set.forEach(item -> sorted.add(String.valueOf(item)));
      return sorted;
    }
    return String.valueOf(value);
  }

  private static double seconds(Duration d) {
    return d.toNanos() / 1e9;
  }

  private static List<String> codes(Set<Status.Code> codes) {
    return codes.stream().map(Status.Code::name).sorted().toList();
  }
}
