package dev.cugar.metrics.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Test certificates made at run time with the {@code openssl} command (never committed): CAs and
 * P-256 leaf certificates signed by them, as PEM files with PKCS#8 keys, valid for one day.
 */
final class TestCertificates {
  private final Path dir;

  TestCertificates(Path dir) {
    this.dir = dir;
  }

  /** A self-signed CA: {@code <name>.crt} and {@code <name>.key}. */
  Path ca(String name) throws IOException, InterruptedException {
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key(name).toString(), "-out", crt(name).toString(), "-days", "1",
        "-subj", "/CN=" + name,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign");
    return crt(name);
  }

  /** A server certificate for {@code 127.0.0.1} and {@code localhost}, signed by {@code ca}. */
  Path server(String name, String ca) throws IOException, InterruptedException {
    return leaf(name, ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  }

  /** A client certificate signed by {@code ca}. */
  Path client(String name, String ca) throws IOException, InterruptedException {
    return leaf(name, ca, "subjectAltName=DNS:" + name + "\nextendedKeyUsage=clientAuth\n");
  }

  Path crt(String name) {
    return dir.resolve(name + ".crt");
  }

  Path key(String name) {
    return dir.resolve(name + ".key");
  }

  private Path leaf(String name, String ca, String extensions)
      throws IOException, InterruptedException {
    Path csr = dir.resolve(name + ".csr");
    Path ext = Files.writeString(dir.resolve(name + ".ext"), extensions);
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key(name).toString(), "-out", csr.toString(), "-subj", "/CN=" + name);
    openssl(
        "x509", "-req", "-in", csr.toString(), "-CA", crt(ca).toString(),
        "-CAkey", key(ca).toString(), "-CAcreateserial", "-days", "1",
        "-out", crt(name).toString(), "-extfile", ext.toString());
    return crt(name);
  }

  private void openssl(String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>();
    command.add("openssl");
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException(String.join(" ", command) + " failed:\n" + out);
    }
  }
}
