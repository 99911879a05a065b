// Test certificates made fresh by the tests with the openssl CLI (never committed): CAs, and
// leaf certificates for the server (SAN 127.0.0.1 and localhost) and for clients.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The openssl executable: $OPENSSL, else `openssl` on the PATH. */
const OPENSSL = process.env["OPENSSL"] ?? "openssl";

/** A certificate and its private key as PEM files. */
export interface Pem {
  readonly cert: string;
  readonly key: string;
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A self-signed CA valid for a day, written to `<dir>/<name>.crt` and `.key`. */
export async function makeCa(dir: string, name: string): Promise<Pem> {
  const pem = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await run(OPENSSL, [
    "req", "-x509", ...EC_KEY, "-keyout", pem.key, "-out", pem.cert, "-days", "1",
    "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return pem;
}

/**
 * A certificate signed by `ca`: for a server (`serverAuth`, SAN IP 127.0.0.1 and DNS
 * localhost) or a client (`clientAuth`).
 */
export async function makeLeaf(
  dir: string,
  ca: Pem,
  name: string,
  usage: "serverAuth" | "clientAuth",
): Promise<Pem> {
  const pem = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await run(OPENSSL, [
    "req", "-x509", "-CA", ca.cert, "-CAkey", ca.key, ...EC_KEY,
    "-keyout", pem.key, "-out", pem.cert, "-days", "1",
    "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:FALSE",
    "-addext", `extendedKeyUsage=${usage}`,
    ...(usage === "serverAuth" ? ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"] : []),
  ]);
  return pem;
}

/** The PEM contents of a certificate and key, as `TlsOptions` takes them. */
export async function readPem(pem: Pem): Promise<{ cert: Buffer; key: Buffer }> {
  return { cert: await readFile(pem.cert), key: await readFile(pem.key) };
}
