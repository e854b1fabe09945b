import { createServer, type Server, type Socket } from "node:net";
import { dialGateway } from "./gateway-link.ts";

/** Connection attempts to the gateway before a client is told it cannot be reached. */
const DIAL_ATTEMPTS = 3;

/**
 * Exposes the gateway's egress Unix socket (or, in a pod, its worker endpoint
 * over TCP with the sandbox's token) as a TCP port on the sandbox's own
 * loopback, so ordinary tools (curl, git, pip, the provider SDKs) can use it as
 * their HTTP proxy. Bytes are piped untouched: all policy lives in the gateway.
 */
export async function startForwarder(
  socketPath: string,
  token?: string,
): Promise<{ url: string; port: number; server: Server }> {
  const server = createServer((client) => forward(client, socketPath, token));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  server.unref();
  return { url: `http://127.0.0.1:${port}`, port, server };
}

/**
 * One client connection. The client is held (paused) until the gateway's end is
 * connected, so a dial that fails (a gateway briefly too busy to accept) can be
 * tried again without losing a byte; once connected, bytes flow both ways as
 * they come. A client whose connection ends before the gateway said anything
 * gets a 502 naming why, instead of a bare hang-up it cannot explain.
 */
function forward(client: Socket, socketPath: string, token: string | undefined): void {
  client.pause();
  let answered = false;
  let finished = false;
  let upstream: Socket | undefined;
  const finish = (why: string) => {
    if (finished) return;
    finished = true;
    upstream?.destroy();
    if (!answered && client.writable) {
      const body = `Lobu sandbox: the gateway's egress proxy could not be reached (${why}). Try again.\n`;
      client.end(
        `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    } else client.end();
    // Read (and drop) whatever the client still sends, so its hang-up is seen and the socket closes.
    client.unpipe();
    client.resume();
  };
  client.on("error", () => client.destroy());
  client.once("close", () => {
    finished = true;
    upstream?.destroy();
  });

  const dial = (attempt: number) => {
    const up = dialGateway(socketPath, "egress", token);
    upstream = up;
    let connected = false;
    up.once("connect", () => {
      connected = true;
      if (finished) return void up.destroy();
      up.once("data", () => {
        answered = true;
      });
      // The gateway's end is passed on by finish(), after everything it sent.
      up.pipe(client, { end: false });
      client.pipe(up);
      client.resume();
      up.once("end", () => finish("the connection closed before an answer"));
      up.on("error", (err: NodeJS.ErrnoException) => {
        if (answered) client.destroy();
        else finish(err.code ?? err.message);
      });
      up.once("close", () => finish("the connection closed before an answer"));
    });
    up.once("error", (err: NodeJS.ErrnoException) => {
      if (connected || finished) return;
      up.destroy();
      if (attempt + 1 < DIAL_ATTEMPTS) setTimeout(() => dial(attempt + 1), 20 * (attempt + 1));
      else finish(err.code ?? err.message);
    });
  };
  dial(0);
}
