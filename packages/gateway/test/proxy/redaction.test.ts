import { once } from "node:events";
import { writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import zlib from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createWorld, curl, TRUSTING, v4, viaProxy, type World } from "./fixture.ts";

/**
 * Redaction of what the proxy itself produced: every encoding it generates while
 * swapping (Basic credentials in base64, URL and JSON escapes) and every part of
 * the answer a bound host can echo into (status line, headers, body, however
 * the body is framed or compressed), over plain HTTP and intercepted TLS.
 */

let w: World;
const SECRET = "ghp_redactMe0123456789abcdefABCDEF";
const github: SecretRef = { name: "github", scope: { kind: "agent", agentId: "helper" } };
let placeholder: string;
let rawUpstream: net.Server;
let rawPort = 0;
/** What the raw upstream answers next (a whole HTTP response, bytes as written). */
let rawAnswer: (request: string) => Buffer = () => Buffer.alloc(0);

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const b64url = (s: string) => Buffer.from(s, "utf8").toString("base64url");

/** Everything a client got, decoded in every way the proxy could have produced it. */
function leaks(text: string): boolean {
  if (text.includes(SECRET)) return true;
  for (const m of text.match(/[A-Za-z0-9+/_-]{12,}={0,2}/g) ?? []) {
    for (const enc of ["base64", "base64url"] as const) {
      if (Buffer.from(m, enc).toString("latin1").includes(SECRET)) return true;
      // Any alignment: the secret may sit at any offset inside a longer encoded run.
      for (let skip = 1; skip < 4; skip++) {
        if (Buffer.from(m.slice(skip), enc).toString("latin1").includes(SECRET.slice(3, -3))) {
          return true;
        }
      }
    }
  }
  return false;
}

beforeAll(async () => {
  w = await createWorld();
  await w.secrets.set(github, SECRET);
  w.dns.set("raw.allowed.test", [v4("127.0.0.1")]);
  placeholder = await w.placeholders.issue({
    sandboxId: TRUSTING,
    secret: github,
    hosts: ["api.allowed.test", "raw.allowed.test"],
    locations: ["header"],
  });
  // An upstream that writes exactly the bytes a test asks for (framings Node will not produce).
  rawUpstream = net.createServer((socket) => {
    let buf = "";
    socket.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      if (!buf.includes("\r\n\r\n")) return;
      socket.end(rawAnswer(buf));
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((r) => rawUpstream.listen(0, "127.0.0.1", r));
  rawPort = (rawUpstream.address() as net.AddressInfo).port;
});
afterAll(async () => {
  rawUpstream?.close();
  await w.close();
});
beforeEach(() => {
  w.audit.length = 0;
  for (const up of [w.http, w.https]) {
    up.received.length = 0;
    up.routes.length = 0;
  }
});

/** Echoes the Authorization it received into the status text and every usual header. */
function echoEverywhere(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  if (!req.url?.startsWith("/challenge")) return false;
  const auth = req.headers.authorization ?? "";
  const decoded = Buffer.from(auth.replace(/^Basic /, ""), "base64").toString("utf8");
  res.statusMessage = `Bad credentials ${auth}`;
  res.writeHead(401, {
    "content-type": "application/json",
    "www-authenticate": `Basic realm="${auth}"`,
    location: `/login?next=${encodeURIComponent(auth)}`,
    "set-cookie": [`session=${auth.replace(/^Basic /, "")}; Path=/`, `user=${decoded}`],
  });
  res.end(JSON.stringify({ authorization: auth, decoded }));
  return true;
}

describe("curl -u with a header-bound secret", () => {
  it("plain HTTP: the echoed Basic credentials, status text and headers come back redacted", async () => {
    w.http.routes.push(echoEverywhere);
    const r = await curl([
      "-i",
      "--proxy",
      `http://127.0.0.1:${w.proxyPort}`,
      "-u",
      `x:${placeholder}`,
      `http://api.allowed.test:${w.http.port}/challenge`,
    ]);
    expect(w.http.received[0]!.headers.authorization).toBe(`Basic ${b64(`x:${SECRET}`)}`);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 401 Bad credentials Basic /);
    expect(r.stdout).toContain(`Basic ${b64(`x:${placeholder}`)}`);
    expect(leaks(r.stdout)).toBe(false);
  });

  it("intercepted HTTPS: the same, through the Lobu CA", async () => {
    w.https.routes.push(echoEverywhere);
    const bundle = join(w.dir, "lobu-ca.pem");
    writeFileSync(bundle, w.ca.certPem);
    const r = await curl([
      "-i",
      "--proxy",
      `http://127.0.0.1:${w.proxyPort}`,
      "--cacert",
      bundle,
      "-u",
      `x:${placeholder}`,
      `https://api.allowed.test:${w.https.port}/challenge`,
    ]);
    expect(r.stderr).toBe("");
    expect(w.https.received[0]!.headers.authorization).toBe(`Basic ${b64(`x:${SECRET}`)}`);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 200 Connection Established/);
    expect(r.stdout).toMatch(/HTTP\/1\.1 401 Bad credentials Basic /);
    expect(r.stdout).toContain(`Basic ${b64(`x:${placeholder}`)}`);
    expect(leaks(r.stdout)).toBe(false);
  });
});

describe("encodings of the secret in the body", () => {
  it("redacts base64 and base64url of anything containing the secret, at any offset", async () => {
    w.http.routes.push((req, res) => {
      if (req.url !== "/b64") return false;
      const token = req.headers["x-token"] as string;
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(
        [
          b64(token),
          b64(`{"token":"${token}"}`),
          b64(`ab${token}`),
          b64url(`a${token}?`),
          b64url(`user:${token}`),
        ].join("\n"),
      );
      return true;
    });
    const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/b64`, {
      headers: { "x-token": placeholder },
    });
    expect(w.http.received[0]!.headers["x-token"]).toBe(SECRET);
    expect(res.status).toBe(200);
    expect(leaks(res.body)).toBe(false);
  });

  it("redacts an encoded secret split across SSE events and chunk boundaries", async () => {
    w.http.routes.push(async (req, res) => {
      if (req.url !== "/sse") return false;
      const auth = req.headers.authorization as string;
      res.writeHead(200, { "content-type": "text/event-stream" });
      const decoded = Buffer.from(auth.replace(/^Basic /, ""), "base64").toString("utf8");
      const text = `data: ${auth}\n\ndata: ${decoded}\n\n`;
      // One byte per write: every possible boundary inside every form.
      for (const ch of text) {
        res.write(ch);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
      return true;
    });
    const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/sse`, {
      headers: { authorization: `Basic ${b64(`x-access-token:${placeholder}`)}` },
    });
    expect(res.body).toContain(`data: Basic ${b64(`x-access-token:${placeholder}`)}\n\n`);
    expect(leaks(res.body)).toBe(false);
  });
});

describe("small sized answers sent whole", () => {
  /** Echoes x-token `times` times in a body with a Content-Length. */
  function sized(path: string, times: number) {
    w.http.routes.push((req, res) => {
      if (req.url !== path) return false;
      const body = `${`echo ${req.headers["x-token"]}\n`.repeat(times)}end`;
      res.writeHead(200, {
        "content-type": "text/plain",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
      return true;
    });
  }

  it("redacts a small answer whole and gives it the redacted length, not chunked framing", async () => {
    sized("/small", 3);
    const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/small`, {
      headers: { "x-token": placeholder },
    });
    expect(w.http.received[0]!.headers["x-token"]).toBe(SECRET);
    expect(res.body).toBe(`${`echo ${placeholder}\n`.repeat(3)}end`);
    expect(res.headers["content-length"]).toBe(String(Buffer.byteLength(res.body)));
    expect(res.headers["transfer-encoding"]).toBeUndefined();
    expect(leaks(res.body)).toBe(false);
  });

  it("streams a larger sized answer (chunked) and still redacts all of it", async () => {
    sized("/large", 4000); // ≈ 160 KB: above the whole-answer limit
    const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/large`, {
      headers: { "x-token": placeholder },
    });
    expect(res.headers["transfer-encoding"]).toBe("chunked");
    expect(res.body).toBe(`${`echo ${placeholder}\n`.repeat(4000)}end`);
    expect(res.body.includes(SECRET)).toBe(false);
  });
});

describe("compressed and oddly framed answers", () => {
  for (const [name, compress] of [
    ["gzip", zlib.gzipSync],
    ["deflate", zlib.deflateSync],
    ["br", zlib.brotliCompressSync],
  ] as const) {
    it(`decodes a ${name} answer before redacting it, whatever Accept-Encoding said`, async () => {
      w.http.routes.push((req, res) => {
        if (req.url !== `/${name}`) return false;
        res.writeHead(200, { "content-type": "text/plain", "content-encoding": name });
        res.end(compress(`leak ${req.headers.authorization}`));
        return true;
      });
      const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/${name}`, {
        headers: { authorization: `Basic ${b64(`x:${placeholder}`)}`, "accept-encoding": name },
      });
      expect(w.http.received[0]!.headers["accept-encoding"]).toBe("identity");
      expect(res.headers["content-encoding"]).toBeUndefined();
      expect(res.body).toBe(`leak Basic ${b64(`x:${placeholder}`)}`);
    });
  }

  it("never passes on compressed content hidden behind a second Content-Encoding header", async () => {
    rawAnswer = (request) => {
      const auth = /authorization: (.*)\r\n/i.exec(request)?.[1] ?? "";
      const body = zlib.gzipSync(`leak ${auth}`);
      return Buffer.concat([
        Buffer.from(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: identity\r\nContent-Encoding: gzip\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        ),
        body,
      ]);
    };
    const res = await rawRequest();
    expect(leaksInAnyEncoding(res)).toBe(false);
  });

  it("never passes on a transfer-coded (gzip, chunked) body the client would not see as compressed", async () => {
    rawAnswer = (request) => {
      const auth = /authorization: (.*)\r\n/i.exec(request)?.[1] ?? "";
      const body = zlib.gzipSync(`leak ${auth}`);
      return Buffer.concat([
        Buffer.from(
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        ),
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from("\r\n0\r\n\r\n"),
      ]);
    };
    const res = await rawRequest();
    expect(leaksInAnyEncoding(res)).toBe(false);
  });

  it("answers HEAD and 304 with a Content-Encoding header without decoding a body, keeping the connection", async () => {
    w.http.routes.push((req, res) => {
      if (req.url !== "/head") return false;
      res.writeHead(req.method === "HEAD" ? 200 : 304, {
        "content-type": "text/plain",
        "content-encoding": "gzip",
        etag: `"${req.headers.authorization}"`,
      });
      res.end();
      return true;
    });
    // Three requests on one connection: a failed decode would cut it after the first.
    const socket = net.connect(w.proxyPort, "127.0.0.1");
    const url = `http://api.allowed.test:${w.http.port}/head`;
    const head = (method: string, close = false) =>
      `${method} ${url} HTTP/1.1\r\nHost: api.allowed.test\r\nAuthorization: ${placeholder}\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
    socket.write(head("HEAD"));
    socket.write(head("GET"));
    socket.write(head("HEAD", true));
    let text = "";
    for await (const c of socket) text += (c as Buffer).toString("latin1");
    expect(text.match(/^HTTP\/1\.1 \d+/gm)).toEqual([
      "HTTP/1.1 200",
      "HTTP/1.1 304",
      "HTTP/1.1 200",
    ]);
    expect(text).toContain(`etag: "${placeholder}"`);
    expect(leaks(text)).toBe(false);
  });

  it("redacts a secret echoed into a header name", async () => {
    w.http.routes.push((req, res) => {
      if (req.url !== "/names") return false;
      const token = req.headers["x-token"] as string;
      res.setHeader(`x-${token}`, "1");
      res.setHeader(`x-${b64(`:${token}`).replace(/[+/=]/g, "")}`, "2");
      res.end("ok");
      return true;
    });
    const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/names`, {
      headers: { "x-token": placeholder },
    });
    expect(res.status).toBe(200);
    expect(res.headers[`x-${placeholder}`]).toBe("1");
    expect(leaks(Object.keys(res.headers).join("\n"))).toBe(false);
  });

  it("passes on neither trailers nor 1xx informational answers", async () => {
    w.http.routes.push((req, res) => {
      if (req.url !== "/trailers") return false;
      const auth = req.headers.authorization as string;
      res.writeEarlyHints({ link: `</style.css?k=${auth}>; rel=preload` });
      res.writeHead(200, { "content-type": "text/plain", trailer: "x-echo" });
      res.write("body\n");
      res.addTrailers({ "x-echo": auth });
      res.end();
      return true;
    });
    const seen: string[] = [];
    const req = http.request({
      host: "127.0.0.1",
      port: w.proxyPort,
      path: `http://api.allowed.test:${w.http.port}/trailers`,
      headers: { authorization: placeholder, te: "trailers" },
      agent: false,
    });
    req.on("information", (info) => seen.push(JSON.stringify(info)));
    req.end();
    const [res] = (await once(req, "response")) as [http.IncomingMessage];
    let body = "";
    for await (const c of res) body += c;
    seen.push(JSON.stringify(res.headers), JSON.stringify(res.trailers), body);
    expect(w.http.received[0]!.headers.authorization).toBe(SECRET);
    expect(leaks(seen.join("\n"))).toBe(false);
  });
});

/** A request to the raw upstream: what the client got (head and de-chunked body). */
async function rawRequest(): Promise<Buffer> {
  const req = http.request({
    host: "127.0.0.1",
    port: w.proxyPort,
    path: `http://raw.allowed.test:${rawPort}/`,
    headers: { authorization: `Basic ${b64(`x:${placeholder}`)}` },
    agent: false,
  });
  req.end();
  const [res] = (await once(req, "response")) as [http.IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat([Buffer.from(`${res.rawHeaders.join("\n")}\n\n`), ...chunks]);
}

/** Whether the secret can be recovered from an answer: as is, or after gunzipping any part of it. */
function leaksInAnyEncoding(raw: Buffer): boolean {
  if (leaks(raw.toString("latin1"))) return true;
  for (let i = raw.indexOf(Buffer.from([0x1f, 0x8b])); i >= 0; i = raw.indexOf(0x1f, i + 1)) {
    try {
      if (leaks(zlib.gunzipSync(raw.subarray(i)).toString("latin1"))) return true;
    } catch {
      // not a gzip stream here
    }
  }
  return false;
}
