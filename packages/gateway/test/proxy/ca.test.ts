import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { workerProxyEnv } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { caBundle, loadOrCreateCa } from "../../src/proxy/ca.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lobu-ca-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("installation CA", () => {
  it("creates an EC P-256 root once, key mode 0600", async () => {
    const ca = await loadOrCreateCa(dir);
    const keyPath = join(dir, "ca", "lobu-ca.key");
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.checkIssued(cert)).toBe(true);
    const again = await loadOrCreateCa(dir);
    expect(again.certPem).toBe(ca.certPem);
  });

  it("refuses a CA key readable by others", async () => {
    await loadOrCreateCa(dir);
    chmodSync(join(dir, "ca", "lobu-ca.key"), 0o644);
    await expect(loadOrCreateCa(dir)).rejects.toThrow(/readable by other users/);
  });

  it("mints cached leaf certificates that verify for their host only", async () => {
    const ca = await loadOrCreateCa(dir);
    const leaf = await ca.leafFor("api.example.com");
    expect(await ca.leafFor("api.example.com")).toBe(leaf);
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe("DNS:api.example.com");
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(new X509Certificate((await ca.leafFor("10.1.2.3")).certPem).subjectAltName).toBe(
      "IP Address:10.1.2.3",
    );

    // A real TLS handshake: trusted for the right name, refused for another.
    const server = tls.createServer(
      { SNICallback: (name, cb) => ca.secureContextFor(name).then((c) => cb(null, c), cb) },
      (s) => s.end("hi"),
    );
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const ok = tls.connect({
      port,
      host: "127.0.0.1",
      servername: "api.example.com",
      ca: ca.certPem,
    });
    await once(ok, "secureConnect");
    ok.destroy();
    const strict = tls.connect({
      port,
      host: "127.0.0.1",
      servername: "api.example.com",
      ca: ca.certPem,
      checkServerIdentity: (_h, c) => tls.checkServerIdentity("other.example.com", c),
    });
    const [err] = await once(strict, "error");
    expect((err as NodeJS.ErrnoException).code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    server.close();
  });

  it("writes a bundle of system CAs plus the Lobu CA", async () => {
    const system = join(dir, "system.pem");
    writeFileSync(system, tls.rootCertificates.slice(0, 3).join("\n"));
    const path = await caBundle(join(dir, "data"), { systemBundlePath: system });
    const text = readFileSync(path, "utf8");
    const ca = await loadOrCreateCa(join(dir, "data"));
    expect(text.startsWith(tls.rootCertificates[0]!.trim())).toBe(true);
    expect(text.trimEnd().endsWith(ca.certPem.trim())).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    // No system bundle: Node's own store is used instead.
    const fallback = readFileSync(
      await caBundle(join(dir, "data"), { systemBundlePath: join(dir, "none.pem") }),
      "utf8",
    );
    expect(fallback).toContain(tls.rootCertificates[5]!.trim());
    expect(fallback).toContain(ca.certPem.trim());
  });
});

describe("worker proxy environment", () => {
  it("points every common client at the proxy and the bundle", () => {
    const env = workerProxyEnv({
      proxyUrl: "http://127.0.0.1:3128",
      caBundlePath: "/etc/lobu/ca.pem",
    });
    for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"]) {
      expect(env[k]).toBe("http://127.0.0.1:3128");
    }
    expect(env.NO_PROXY).toBe("");
    expect(env.NODE_USE_ENV_PROXY).toBe("1");
    for (const k of [
      "NODE_EXTRA_CA_CERTS",
      "SSL_CERT_FILE",
      "CURL_CA_BUNDLE",
      "REQUESTS_CA_BUNDLE",
      "GIT_SSL_CAINFO",
      "PIP_CERT",
      "AWS_CA_BUNDLE",
      "DENO_CERT",
    ]) {
      expect(env[k]).toBe("/etc/lobu/ca.pem");
    }
  });
});
