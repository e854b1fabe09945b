import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startForwarder } from "../src/forwarder.ts";
import { tempDir } from "./virtual/helpers.ts";

/**
 * The sandbox's HTTP proxy port: bytes go to the gateway's egress socket
 * untouched. What it must never do is hang up on a tool without a word: a
 * client always gets the whole answer the gateway sent, or a 502 saying why
 * there was none.
 */

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A stand-in for the gateway's egress socket, handling each connection with `onConnection`. */
async function gatewaySocket(
  path: string,
  onConnection: (socket: Socket) => void,
): Promise<Server> {
  const server = createServer(onConnection);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

/** Sends one request through the forwarder and reads until the connection ends. */
async function ask(url: string): Promise<string> {
  const { port } = new URL(url);
  const socket = connect(Number(port), "127.0.0.1");
  socket.write(
    "GET http://example.test/ HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n",
  );
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("latin1");
}

async function forwarderTo(): Promise<{ path: string; url: string; close: () => void }> {
  const path = join(await tempDir("lobu-forwarder-"), "egress.sock");
  const { url, server } = await startForwarder(path);
  servers.push(server);
  return { path, url, close: () => server.close() };
}

describe("egress forwarder", () => {
  it("passes the whole answer through when the gateway answers and hangs up at once", async () => {
    const { path, url } = await forwarderTo();
    const body = "x".repeat(4 * 1024 * 1024);
    await gatewaySocket(path, (socket) => {
      socket.once("data", () => {
        socket.end(
          `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      });
    });
    const answer = await ask(url);
    expect(answer.startsWith("HTTP/1.1 200 OK")).toBe(true);
    expect(answer.endsWith(body)).toBe(true);
  });

  it("answers 502 with the reason when the gateway's socket cannot be reached", async () => {
    const { url } = await forwarderTo();
    const answer = await ask(url);
    expect(answer).toMatch(/^HTTP\/1\.1 502 Bad Gateway/);
    expect(answer).toMatch(/egress proxy could not be reached \((ENOENT|ECONNREFUSED)\)/);
  });

  it("answers 502 when the gateway hangs up without a word", async () => {
    const { path, url } = await forwarderTo();
    await gatewaySocket(path, (socket) => socket.once("data", () => socket.destroy()));
    const answer = await ask(url);
    expect(answer).toMatch(/^HTTP\/1\.1 502 Bad Gateway/);
    expect(answer).toContain("closed before an answer");
  });

  it("dials again when the gateway's socket is not there yet, losing no byte of the request", async () => {
    const { path, url } = await forwarderTo();
    const seen: string[] = [];
    const asking = ask(url);
    // The socket appears after the first dial failed.
    await new Promise((r) => setTimeout(r, 5));
    await gatewaySocket(path, (socket) => {
      socket.once("data", (chunk) => {
        seen.push(chunk.toString());
        socket.end("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
      });
    });
    const answer = await asking;
    expect(answer).toMatch(/^HTTP\/1\.1 204/);
    expect(seen.join("")).toContain("GET http://example.test/ HTTP/1.1");
  });
});
