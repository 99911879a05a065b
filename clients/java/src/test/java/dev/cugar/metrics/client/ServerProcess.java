package dev.cugar.metrics.client;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The real cugar-metrics server, started as a process on free ports ({@code --grpc-port 0
 * --metrics-port 0}) and found through its ready file. The executable is {@code
 * .venv/bin/cugar-metrics} of the repository (installed by scripts/install-tools.sh), or {@code
 * $CUGAR_METRICS_BIN} (the variable the Go and TypeScript suites read too), or {@code
 * $CUGAR_METRICS_SERVER}.
 */
final class ServerProcess {
  private static final Duration START_TIMEOUT = Duration.ofSeconds(60);
  private static final Pattern GRPC_PORT = Pattern.compile("\"grpc_port\"\\s*:\\s*(\\d+)");
  private static final Pattern METRICS_PORT = Pattern.compile("\"metrics_port\"\\s*:\\s*(\\d+)");

  private final Process process;
  private final Path log;
  private final String host;
  private final int grpcPort;
  private final int metricsPort;
  private Integer exitCode;

  private ServerProcess(Process process, Path log, String host, int grpcPort, int metricsPort) {
    this.process = process;
    this.log = log;
    this.host = host;
    this.grpcPort = grpcPort;
    this.metricsPort = metricsPort;
  }

  static Path repoRoot() {
    return Path.of(System.getProperty("cugar.metrics.repo", "../..")).toAbsolutePath().normalize();
  }

  static Path executable() {
    String override = System.getenv("CUGAR_METRICS_BIN");
    if (override == null || override.isEmpty()) {
      override = System.getenv("CUGAR_METRICS_SERVER");
    }
    Path exe =
        override != null && !override.isEmpty()
            ? Path.of(override)
            : repoRoot().resolve(".venv/bin/cugar-metrics");
    if (!Files.isExecutable(exe)) {
      throw new IllegalStateException(
          exe + " is missing: run scripts/install-tools.sh (or set CUGAR_METRICS_BIN)");
    }
    return exe;
  }

  /**
   * Creates an API key with {@code cugar-metrics keys create} in {@code keysFile} and returns it
   * (the command prints it once on stdout).
   */
  static String createKey(Path keysFile, String name, String role)
      throws IOException, InterruptedException {
    Process p =
        new ProcessBuilder(
                executable().toString(),
                "keys",
                "create",
                "--file",
                keysFile.toString(),
                "--name",
                name,
                "--role",
                role)
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0 || !out.startsWith("cgm_")) {
      throw new IllegalStateException("cugar-metrics keys create failed: " + out);
    }
    return out;
  }

  /** Starts the server with only the listening flags, plus {@code extraArgs}. */
  static ServerProcess start(String... extraArgs) throws IOException, InterruptedException {
    return startOn("127.0.0.1", 0, extraArgs);
  }

  /**
   * Starts the server on {@code host} and {@code grpcPort} (0: a free one), plus {@code
   * extraArgs}.
   */
  static ServerProcess startOn(String host, int grpcPort, String... extraArgs)
      throws IOException, InterruptedException {
    Path exe = executable();
    Path dir = Files.createTempDirectory("cugar-metrics-java-");
    Path ready = dir.resolve("ready.json");
    Path log = dir.resolve("server.log");
    List<String> command =
        new ArrayList<>(
            List.of(
                exe.toString(),
                "serve",
                "--host",
                host,
                "--grpc-port",
                Integer.toString(grpcPort),
                "--metrics-port",
                "0",
                "--ready-file",
                ready.toString()));
    if (!List.of(extraArgs).contains("--auth-keys-file")) {
      // An explicit authentication choice (without one the server is in protected mode).
      command.add("--no-auth");
    } else if (!List.of(extraArgs).contains("--metrics-basic-auth-file")) {
      // With API keys, /metrics must be guarded too or left open explicitly.
      command.add("--metrics-open");
    }
    command.addAll(List.of(extraArgs));
    ProcessBuilder pb =
        new ProcessBuilder(command)
            .redirectErrorStream(true)
            .redirectOutput(log.toFile());
    Process process = pb.start();
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      if (Files.exists(ready)) {
        String json = Files.readString(ready, StandardCharsets.UTF_8);
        Matcher grpc = GRPC_PORT.matcher(json);
        Matcher metrics = METRICS_PORT.matcher(json);
        if (grpc.find() && metrics.find()) {
          return new ServerProcess(
              process,
              log,
              host,
              Integer.parseInt(grpc.group(1)),
              Integer.parseInt(metrics.group(1)));
        }
      }
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "cugar-metrics exited with " + process.exitValue() + " before it was ready:\n"
                + Files.readString(log, StandardCharsets.UTF_8));
      }
      Thread.sleep(50);
    }
    process.destroyForcibly();
    throw new IllegalStateException(
        "cugar-metrics was not ready after " + START_TIMEOUT + ":\n"
            + Files.readString(log, StandardCharsets.UTF_8));
  }

  /** {@code <host>:<grpc port>}. */
  String target() {
    return host + ":" + grpcPort;
  }

  int grpcPort() {
    return grpcPort;
  }

  /** The text of {@code GET /metrics}. */
  String metrics() throws IOException, InterruptedException {
    HttpResponse<String> response =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(
                        URI.create("http://" + host + ":" + metricsPort + "/metrics"))
                    .timeout(Duration.ofSeconds(10))
                    .build(),
                HttpResponse.BodyHandlers.ofString());
    if (response.statusCode() != 200) {
      throw new IOException("GET /metrics answered " + response.statusCode());
    }
    return response.body();
  }

  /** The value of the sample whose line starts with {@code series} (name and labels), exactly. */
  String sample(String series) throws IOException, InterruptedException {
    for (String line : metrics().split("\n")) {
      if (line.startsWith(series + " ")) {
        return line.substring(series.length() + 1).trim();
      }
    }
    return null;
  }

  /** Sends SIGTERM and waits for the process to drain and exit; returns its exit code. */
  int stop() throws InterruptedException {
    if (exitCode == null) {
      process.destroy();
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
      }
      exitCode = process.exitValue();
    }
    return exitCode;
  }

  String log() throws IOException {
    return Files.readString(log, StandardCharsets.UTF_8);
  }

  /** A {@code host:port} where nothing listens: a port that was free a moment ago. */
  static String unreachableTarget() throws IOException {
    return "127.0.0.1:" + freePort("127.0.0.1");
  }

  /** A port of {@code host} that was free a moment ago. */
  static int freePort(String host) throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName(host))) {
      return socket.getLocalPort();
    }
  }
}
