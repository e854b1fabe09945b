import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import tls from "node:tls";
import zlib from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SecretRef } from "../../src/secrets/store.ts";
import {
  connect,
  createWorld,
  httpsViaProxy,
  TRUSTING,
  upgradeViaProxy,
  viaProxy,
  type World,
} from "./fixture.ts";

/**
 * Placeholder swapping and secret redaction, over plain HTTP and through
 * intercepted (MITM) TLS tunnels, with real sockets and certificates.
 */

let w: World;
const SECRET = "ghp_realSecretValue0123456789abcdef";
const OTHER_SECRET = "sk-other-sandbox-secret-000000000001";
const github: SecretRef = { name: "github", scope: { kind: "agent", agentId: "helper" } };
const foreign: SecretRef = { name: "foreign", scope: { kind: "installation" } };
let placeholder: string;
let foreignPlaceholder: string;

beforeAll(async () => {
  w = await createWorld();
  await w.secrets.set(github, SECRET);
  await w.secrets.set(foreign, OTHER_SECRET);
  placeholder = await w.placeholders.issue({
    sandboxId: TRUSTING,
    secret: github,
    hosts: ["api.allowed.test"],
  });
  // Issued to another sandbox for the same host: must never be swapped for this one.
  foreignPlaceholder = await w.placeholders.issue({
    sandboxId: "sb_other",
    secret: foreign,
    hosts: ["api.allowed.test"],
  });
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  for (const up of [w.http, w.https]) {
    up.received.length = 0;
    up.routes.length = 0;
  }
});

function auditIsClean() {
  const text = JSON.stringify(w.audit);
  for (const s of [SECRET, OTHER_SECRET, placeholder, foreignPlaceholder, "lobu_secret_"])
    expect(text).not.toContain(s);
}

const basic = (user: string, pass: string) =>
  `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

describe("plain HTTP", () => {
  it("swaps placeholders in headers, the URL and a JSON body for the bound host", async () => {
    const res = await viaProxy(
      w.proxyPort,
      `http://api.allowed.test:${w.http.port}/repos/${placeholder}?token=${placeholder}`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${placeholder}`,
          "x-basic": placeholder,
          "content-type": "application/json",
        },
        body: JSON.stringify({ token: placeholder, note: "héllo" }),
      },
    );
    expect(res.status).toBe(200);
    const got = w.http.received[0]!;
    expect(got.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(got.headers["x-basic"]).toBe(SECRET);
    expect(got.url).toBe(`/repos/${SECRET}?token=${SECRET}`);
    expect(JSON.parse(got.body)).toEqual({ token: SECRET, note: "héllo" });
    expect(Number(got.headers["content-length"])).toBe(Buffer.byteLength(got.body));
    // The echo comes back with the secret replaced by the placeholder.
    expect(res.body).not.toContain(SECRET);
    expect(JSON.parse(JSON.parse(res.body).body).token).toBe(placeholder);
    expect(w.audit).toEqual([
      expect.objectContaining({
        decision: "swapped",
        secrets: ["github"],
        status: 200,
        host: "api.allowed.test",
      }),
    ]);
    auditIsClean();
  });

  it("swaps inside Basic credentials (git over HTTPS style)", async () => {
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/info/refs`, {
      headers: { authorization: basic("x-access-token", placeholder) },
    });
    expect(w.http.received[0]!.headers.authorization).toBe(basic("x-access-token", SECRET));
  });

  it("swaps in form bodies with URL encoding and in chunked bodies", async () => {
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/form`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `a=1&key=${placeholder}`,
    });
    expect(w.http.received[0]!.body).toBe(`a=1&key=${encodeURIComponent(SECRET)}`);

    // Chunked: the placeholder straddles two writes.
    const req = http.request({
      host: "127.0.0.1",
      port: w.proxyPort,
      method: "POST",
      path: `http://api.allowed.test:${w.http.port}/chunked`,
      headers: { "content-type": "text/plain" },
      agent: false,
    });
    req.write(`before ${placeholder.slice(0, 20)}`);
    req.write(`${placeholder.slice(20)} after`);
    req.end();
    const [res] = (await once(req, "response")) as [http.IncomingMessage];
    let body = "";
    for await (const c of res) body += c;
    expect(w.http.received[1]!.body).toBe(`before ${SECRET} after`);
    expect(body).not.toContain(SECRET);
  });

  it("leaves placeholders alone on an allowed host they are not bound to", async () => {
    const res = await viaProxy(
      w.proxyPort,
      `http://other.allowed.test:${w.http.port}/collect?k=${placeholder}`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${placeholder}`, "content-type": "application/json" },
        body: JSON.stringify({ k: placeholder }),
      },
    );
    expect(res.status).toBe(200);
    const got = w.http.received[0]!;
    expect(got.headers.authorization).toBe(`Bearer ${placeholder}`);
    expect(got.url).toBe(`/collect?k=${placeholder}`);
    expect(JSON.parse(got.body).k).toBe(placeholder);
    expect(JSON.stringify(got)).not.toContain(SECRET);
    expect(w.audit).toEqual([expect.objectContaining({ decision: "allowed", unswapped: 1 })]);
    auditIsClean();
  });

  it("never swaps another sandbox's placeholder", async () => {
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/`, {
      headers: { authorization: `Bearer ${foreignPlaceholder}` },
    });
    expect(w.http.received[0]!.headers.authorization).toBe(`Bearer ${foreignPlaceholder}`);
  });

  it("respects the locations a binding allows", async () => {
    const ref: SecretRef = { name: "header-only", scope: { kind: "installation" } };
    await w.secrets.set(ref, "header-only-secret-value-42");
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
      locations: ["header"],
    });
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/x?k=${p}`, {
      method: "POST",
      headers: { "x-key": p, "content-type": "text/plain" },
      body: `body ${p}`,
    });
    const got = w.http.received[0]!;
    expect(got.headers["x-key"]).toBe("header-only-secret-value-42");
    expect(got.url).toBe(`/x?k=${p}`);
    expect(got.body).toBe(`body ${p}`);
  });

  it("keeps secrets off cleartext when told to (plaintextSwap: never)", async () => {
    const { port } = await w.startProxy({ plaintextSwap: "never" });
    await viaProxy(port, `http://api.allowed.test:${w.http.port}/clear?k=${placeholder}`, {
      headers: { authorization: placeholder },
    });
    expect(w.http.received[0]!.headers.authorization).toBe(placeholder);
    expect(w.http.received[0]!.url).toBe(`/clear?k=${placeholder}`);
    // Over TLS the same proxy swaps.
    const tlsRes = await httpsViaProxy(port, "api.allowed.test", w.https.port, {
      ca: w.ca.certPem,
      headers: { authorization: placeholder },
    });
    expect(tlsRes.status).toBe(200);
    expect(w.https.received[0]!.headers.authorization).toBe(SECRET);
  });

  it("keeps placeholders out of the audit log whatever the request carries", async () => {
    await viaProxy(w.proxyPort, `/${placeholder}`);
    await viaProxy(w.proxyPort, `http://${placeholder}.evil.test/`);
    await connect(w.proxyPort, `${placeholder}.evil.test:443`);
    await connect(w.proxyPort, `api.allowed.test:${w.https.port}`).then(async (t) => {
      const s = tls.connect({ socket: t.socket, servername: "api.allowed.test", ca: w.ca.certPem });
      await once(s, "secureConnect");
      s.end(`GET / HTTP/1.1\r\nHost: ${placeholder}\r\nConnection: close\r\n\r\n`);
      for await (const _ of s);
    });
    expect(w.audit.length).toBeGreaterThanOrEqual(4);
    expect(w.audit.some((r) => r.host.includes("[placeholder]"))).toBe(true);
    auditIsClean();
  });

  it("does not touch binary bodies", async () => {
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/upload`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: `raw ${placeholder}`,
    });
    expect(w.http.received[0]!.body).toBe(`raw ${placeholder}`);
  });

  it("redacts a secret echoed in headers, split across chunks, or compressed", async () => {
    w.http.routes.push(async (req, res) => {
      if (req.url !== "/echo-split") return false;
      res.writeHead(200, {
        "content-type": "text/plain",
        "x-echo": req.headers.authorization ?? "",
      });
      res.write(`start ${SECRET.slice(0, 10)}`);
      await new Promise((r) => setTimeout(r, 20));
      res.end(`${SECRET.slice(10)} end`);
      return true;
    });
    const split = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/echo-split`, {
      headers: { authorization: placeholder },
    });
    expect(split.headers["x-echo"]).toBe(placeholder);
    expect(split.body).toBe(`start ${placeholder} end`);

    w.http.routes.push((req, res) => {
      if (req.url !== "/echo-gzip") return false;
      // Ignores Accept-Encoding: identity on purpose.
      res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip" });
      res.end(zlib.gzipSync(`leak ${req.headers.authorization}`));
      return true;
    });
    const gz = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/echo-gzip`, {
      headers: { authorization: placeholder, "accept-encoding": "gzip" },
    });
    expect(w.http.received.at(-1)!.headers["accept-encoding"]).toBe("identity");
    expect(gz.headers["content-encoding"]).toBeUndefined();
    expect(gz.body).toBe(`leak ${placeholder}`);
  });

  it("streams SSE event by event, with and without a swap", async () => {
    let release: () => void = () => {};
    w.http.routes.push(async (req, res) => {
      if (req.url !== "/sse") return false;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write("data: first\n\n");
      // The second event is only sent once the client has seen the first.
      await new Promise<void>((r) => {
        release = r;
      });
      res.end("data: second\n\n");
      return true;
    });
    for (const headers of [{}, { authorization: `Bearer ${placeholder}` }]) {
      const req = http.request({
        host: "127.0.0.1",
        port: w.proxyPort,
        path: `http://api.allowed.test:${w.http.port}/sse`,
        headers,
        agent: false,
      });
      req.end();
      const [res] = (await once(req, "response")) as [http.IncomingMessage];
      expect(res.headers["content-type"]).toBe("text/event-stream");
      const [first] = await once(res, "data");
      expect(String(first)).toBe("data: first\n\n");
      release();
      let rest = "";
      for await (const c of res) rest += c;
      expect(rest).toBe("data: second\n\n");
    }
  });
});

describe("intercepted TLS (CONNECT to a host with a bound placeholder)", () => {
  it("terminates TLS with the Lobu CA, swaps, and re-originates with verification", async () => {
    const res = await httpsViaProxy(w.proxyPort, "api.allowed.test", w.https.port, {
      ca: w.ca.certPem,
      method: "POST",
      path: `/v1/repos?key=${placeholder}`,
      headers: { authorization: `token ${placeholder}`, "content-type": "application/json" },
      body: JSON.stringify({ t: placeholder }),
    });
    expect(res.status).toBe(200);
    expect(res.peerIssuer).toBe(/CN=([^\n]+)/.exec(new X509Certificate(w.ca.certPem).subject)![1]);
    const got = w.https.received[0]!;
    expect(got.tls).toBe(true);
    expect(got.headers.authorization).toBe(`token ${SECRET}`);
    expect(got.url).toBe(`/v1/repos?key=${SECRET}`);
    expect(JSON.parse(got.body).t).toBe(SECRET);
    expect(res.body).not.toContain(SECRET);
    expect(res.body).toContain(placeholder);
    expect(w.audit.map((r) => [r.method, r.decision])).toEqual([
      ["CONNECT", "intercept"],
      ["POST", "swapped"],
    ]);
    auditIsClean();
  });

  it("streams SSE through the intercepted tunnel event by event", async () => {
    let release: () => void = () => {};
    w.https.routes.push(async (req, res) => {
      if (req.url !== "/v1/messages") return false;
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`event: start\ndata: {"auth":"${req.headers["x-api-key"]}"}\n\n`);
      await new Promise<void>((r) => {
        release = r;
      });
      res.end("event: stop\ndata: {}\n\n");
      return true;
    });
    const t = await connect(w.proxyPort, `api.allowed.test:${w.https.port}`);
    const secure = tls.connect({
      socket: t.socket,
      servername: "api.allowed.test",
      ca: w.ca.certPem,
    });
    await once(secure, "secureConnect");
    const req = http.request({
      createConnection: () => secure,
      host: "api.allowed.test",
      port: w.https.port,
      path: "/v1/messages",
      method: "POST",
      headers: { "x-api-key": placeholder, "content-type": "application/json" },
    });
    req.end("{}");
    const [res] = (await once(req, "response")) as [http.IncomingMessage];
    const [first] = await once(res, "data");
    // The upstream saw the secret; the sandbox sees its placeholder echoed back.
    expect(String(first)).toBe(`event: start\ndata: {"auth":"${placeholder}"}\n\n`);
    release();
    let rest = "";
    for await (const c of res) rest += c;
    expect(rest).toBe("event: stop\ndata: {}\n\n");
    expect(w.https.received[0]!.headers["x-api-key"]).toBe(SECRET);
    secure.destroy();
  });

  it("refuses requests inside the tunnel for another host (no domain fronting)", async () => {
    const t = await connect(w.proxyPort, `api.allowed.test:${w.https.port}`);
    const s = tls.connect({ socket: t.socket, servername: "api.allowed.test", ca: w.ca.certPem });
    await once(s, "secureConnect");
    s.write(
      `GET / HTTP/1.1\r\nHost: evil.test\r\nAuthorization: ${placeholder}\r\nConnection: close\r\n\r\n`,
    );
    let text = "";
    for await (const c of s) text += c;
    expect(text).toMatch(/^HTTP\/1\.1 421/);
    expect(w.https.received).toHaveLength(0);
  });

  it("verifies the upstream certificate against the normal trust store by default", async () => {
    // This proxy does not know the test "public" CA, like a real upstream with a bad cert.
    const { port } = await w.startProxy({ upstreamCa: undefined });
    const res = await httpsViaProxy(port, "api.allowed.test", w.https.port, {
      ca: w.ca.certPem,
      headers: { authorization: placeholder },
    });
    expect(res.status).toBe(502);
    expect(res.body).toMatch(
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify|UNABLE_TO_GET_ISSUER_CERT/i,
    );
    expect(w.https.received).toHaveLength(0);
  });

  it("checks the upstream certificate names the host", async () => {
    // The upstream presents api.allowed.test's certificate for wrong.allowed.test.
    const ref: SecretRef = { name: "wrong-name", scope: { kind: "installation" } };
    await w.secrets.set(ref, "wrong-name-secret-value-01");
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["wrong.allowed.test"],
    });
    w.dns.set("wrong.allowed.test", [{ address: "127.0.0.1", family: 4 }]);
    const res = await httpsViaProxy(w.proxyPort, "wrong.allowed.test", w.https.port, {
      ca: w.ca.certPem,
      headers: { authorization: p },
    });
    expect(res.status).toBe(502);
    expect(res.body).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|altnames/i);
    expect(w.https.received).toHaveLength(0);
  });
});

describe("other forms", () => {
  it("accepts absolute-form https:// requests and originates TLS itself", async () => {
    const res = await viaProxy(w.proxyPort, `https://api.allowed.test:${w.https.port}/abs`, {
      headers: { authorization: placeholder },
    });
    expect(res.status).toBe(200);
    expect(w.https.received[0]).toMatchObject({ url: "/abs", tls: true });
    expect(w.https.received[0]!.headers.authorization).toBe(SECRET);
  });

  it("relays WebSocket upgrades to allowed hosts and refuses others", async () => {
    w.http.server.on("upgrade", (req: http.IncomingMessage, socket: import("node:net").Socket) => {
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      );
      socket.write(`hello ${req.url} ${req.headers.authorization}\n`);
      socket.pipe(socket);
    });
    const open = (url: string, auth: string) =>
      upgradeViaProxy(w.proxyPort, url, { authorization: auth });
    const ok = await open(`http://api.allowed.test:${w.http.port}/ws`, placeholder);
    expect(ok.status).toBe(101);
    // Bytes that arrived with the 101 come as `head`.
    const greeting = ok.head?.length ? ok.head : (await once(ok.socket!, "data"))[0];
    // Upgraded streams cannot be redacted, so nothing is swapped into them.
    expect(String(greeting)).toBe(`hello /ws ${placeholder}\n`);
    ok.socket!.write("ping");
    const [echo] = await once(ok.socket!, "data");
    expect(String(echo)).toBe("ping");
    ok.socket!.destroy();
    const denied = await open("http://evil.test/ws", "x");
    expect(denied.status).toBe(403);
    expect(denied.body).toContain("evil.test is not in the agent's network allow list");
  });
});

describe("raw tunnels (CONNECT to a host without bound placeholders)", () => {
  it("relays TLS end to end: the client sees the upstream's own certificate", async () => {
    const res = await httpsViaProxy(w.proxyPort, "other.allowed.test", w.https.port, {
      ca: w.upstreamCa.certPem,
      headers: { authorization: `Bearer ${placeholder}` },
    });
    expect(res.status).toBe(200);
    // Verified against the upstream's CA only: an intercepted tunnel would have failed.
    const cn = (pem: string) => /CN=([^\n]+)/.exec(new X509Certificate(pem).subject)![1];
    expect(res.peerIssuer).toBe(cn(w.upstreamCa.certPem));
    expect(res.peerIssuer).not.toBe(cn(w.ca.certPem));
    // Nothing was swapped: the placeholder travels as is.
    expect(w.https.received[0]!.headers.authorization).toBe(`Bearer ${placeholder}`);
    expect(w.audit).toEqual([
      expect.objectContaining({
        method: "CONNECT",
        decision: "tunnel",
        host: "other.allowed.test",
      }),
    ]);
  });
});
