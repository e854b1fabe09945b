import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { lingerAfterAnswer } from "../../src/http/linger.ts";

/**
 * Lingering close on a real server over a Unix socket, where a write to a peer
 * that has closed fails at once (EPIPE) instead of some time later: the client
 * (like a sandbox's forwarder, or Python's urllib, which sends `Connection: close`
 * and its body in a second write) reads the refusal, then sends the rest of its
 * body, and must not be cut off for it. The bounds are tested with small limits.
 */

const dir = mkdtempSync(join(tmpdir(), "lobu-linger-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

let serial = 0;
/** A server that refuses every request at once, without reading its body. */
async function refusingServer(limits?: { ms: number; bytes: number }): Promise<string> {
  const server = http.createServer((_req, res) => {
    res.writeHead(401, { "content-type": "text/plain" });
    res.end("refused\n");
  });
  lingerAfterAnswer(server, limits);
  servers.push(server);
  const path = join(dir, `s${serial++}.sock`);
  server.listen(path);
  await once(server, "listening");
  return path;
}

interface Client {
  socket: net.Socket;
  /** Everything read so far. */
  text: () => string;
  /** Resolves once the answer's head and body have arrived. */
  answered: Promise<void>;
  /** The first socket error, if any. */
  error: () => NodeJS.ErrnoException | undefined;
  closed: Promise<void>;
  serverEnded: Promise<void>;
}

function client(path: string, head: string): Client {
  const socket = net.connect({ path, allowHalfOpen: true });
  let text = "";
  let error: NodeJS.ErrnoException | undefined;
  const answered = Promise.withResolvers<void>();
  socket.on("data", (b: Buffer) => {
    text += b.toString();
    if (text.includes("refused\n")) answered.resolve();
  });
  socket.on("error", (err) => {
    error ??= err;
  });
  socket.write(head);
  return {
    socket,
    text: () => text,
    answered: answered.promise,
    error: () => error,
    closed: settled(socket, "close"),
    serverEnded: settled(socket, "end"),
  };
}

/** Resolves on the first of the events (never rejects, unlike `once`, on an error). */
const settled = (socket: net.Socket, ...events: string[]) =>
  new Promise<void>((resolve) => {
    for (const e of events) socket.once(e, () => resolve());
  });

const write = (socket: net.Socket, data: string | Buffer) =>
  new Promise<void>((resolve, reject) =>
    socket.write(data, (err) => (err ? reject(err) : resolve())),
  );

const POST = (extra: string, length: number) =>
  `POST /x HTTP/1.1\r\nhost: a\r\n${extra}content-length: ${length}\r\n\r\n`;

describe("lingering close", () => {
  it("reads the body a Connection: close client sends after its refusal, then closes", async () => {
    const c = client(await refusingServer(), POST("connection: close\r\n", 10));
    await c.answered;
    await c.serverEnded;
    // Nothing is lost by sending the rest late: the server is still reading.
    await write(c.socket, "hello");
    await new Promise((r) => setTimeout(r, 50));
    await write(c.socket, "world");
    c.socket.end();
    await c.closed;
    expect(c.error()).toBeUndefined();
    expect(c.text()).toMatch(/^HTTP\/1\.1 401 /);
  });

  it("does the same for HTTP/1.0, which closes after every answer", async () => {
    const c = client(await refusingServer(), "POST /x HTTP/1.0\r\ncontent-length: 4\r\n\r\n");
    await c.answered;
    await write(c.socket, "late");
    c.socket.end();
    await c.closed;
    expect(c.error()).toBeUndefined();
  });

  it("drains a kept-alive connection's unread body and answers the next request on it", async () => {
    const c = client(await refusingServer(), POST("", 5));
    await c.answered;
    await write(c.socket, "hello");
    const second = Promise.withResolvers<void>();
    c.socket.on("data", () => {
      if (c.text().split("refused\n").length > 2) second.resolve();
    });
    await write(c.socket, "GET /y HTTP/1.1\r\nhost: a\r\n\r\n");
    await second.promise;
    expect(c.error()).toBeUndefined();
    c.socket.end();
    await c.closed;
  });

  it.each([
    ["closing", "connection: close\r\n"],
    ["kept-alive", ""],
  ])("gives up on a %s client that goes on sending past the byte budget", async (_, extra) => {
    const c = client(
      await refusingServer({ ms: 20_000, bytes: 64 * 1024 }),
      `POST /x HTTP/1.1\r\nhost: a\r\n${extra}transfer-encoding: chunked\r\n\r\n`,
    );
    await c.answered;
    const chunk = Buffer.alloc(16 * 1024, "a");
    // Keep sending (up to 16 MB) until the server cuts the connection.
    for (let i = 0; i < 1_000 && !c.error(); i++) {
      const more = c.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      if (!more) await settled(c.socket, "drain", "close");
    }
    await c.closed;
    expect(c.error()?.code).toMatch(/EPIPE|ECONNRESET/);
  });

  it("gives up on a client that neither sends nor closes once the time budget is spent", async () => {
    const c = client(
      await refusingServer({ ms: 200, bytes: 1024 }),
      POST("connection: close\r\n", 100),
    );
    await c.answered;
    await c.serverEnded;
    await new Promise((r) => setTimeout(r, 600));
    // The server's side is gone: a late write fails.
    await expect(write(c.socket, "x")).rejects.toMatchObject({ code: "EPIPE" });
    c.socket.destroy();
  });
});
