import { chmod } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import {
  digest,
  type Logger,
  MAX_PREAMBLE_BYTES,
  parseWorkerPreamble,
  randomToken,
} from "@lobu/core";

/** What one sandbox's token admits (see core's protocol/transport.ts). */
export interface WorkerAdmission {
  /**
   * The worker's control channel (paused: resume it once listening), taken
   * once: the token then opens no second one.
   */
  onControl(socket: Socket): void;
  /** The sandbox's own egress socket: each `egress` connection is piped to it. */
  egressSocketPath?: string;
}

/** A connection that has not sent its first line by then is closed. */
const PREAMBLE_TIMEOUT_MS = 10_000;

/**
 * Where workers outside the gateway's process tree connect: a Unix socket
 * mounted into a container, or a TCP port a pod dials. Each connection starts
 * with `lobu-worker <kind> <token>`; an unknown token, a second control
 * connection or anything else closes it without a word. Egress connections
 * are piped to the sandbox's own egress socket, so the egress proxy still
 * knows the sandbox by its socket and nothing there changes.
 */
export class WorkerEndpoint {
  readonly #server: Server;
  readonly #logger: Logger;
  /** By digest of the token, so a lookup takes no time that depends on how much of it matched. */
  readonly #admitted = new Map<
    string,
    WorkerAdmission & { sandboxId: string; controlTaken: boolean }
  >();
  #rejected = 0;

  private constructor(server: Server, logger: Logger) {
    this.#server = server;
    this.#logger = logger;
    server.on("connection", (socket) => this.#accept(socket));
  }

  /** Listen on a Unix socket path (mode 0666: the token guards it) or a TCP host:port. */
  static async listen(
    at: { path: string } | { host: string; port: number },
    logger: Logger,
  ): Promise<WorkerEndpoint> {
    // Half-open: a client that has said all it will still gets the answer (see splice).
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if ("path" in at) server.listen(at.path, resolve);
      else server.listen(at.port, at.host, resolve);
    });
    if ("path" in at) await chmod(at.path, 0o666);
    return new WorkerEndpoint(server, logger);
  }

  /** The TCP port it listens on (0 for a Unix socket). */
  get port(): number {
    const a = this.#server.address();
    return typeof a === "object" && a ? a.port : 0;
  }

  /** Connections closed for a bad first line or token so far. */
  get rejected(): number {
    return this.#rejected;
  }

  /** A new random token admitting `admission` for `sandboxId`, until the returned revoke() is called. */
  admit(sandboxId: string, admission: WorkerAdmission): { token: string; revoke: () => void } {
    const token = randomToken(32);
    const key = digest(token);
    this.#admitted.set(key, { ...admission, sandboxId, controlTaken: false });
    return { token, revoke: () => this.#admitted.delete(key) };
  }

  async close(): Promise<void> {
    this.#admitted.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    socket.on("error", () => socket.destroy());
    const timer = setTimeout(() => this.#refuse(socket, "no first line"), PREAMBLE_TIMEOUT_MS);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl === -1) {
        if (head.length > MAX_PREAMBLE_BYTES) {
          clearTimeout(timer);
          socket.off("data", onData);
          this.#refuse(socket, "first line too long");
        }
        return;
      }
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      const rest = head.subarray(nl + 1);
      const preamble = parseWorkerPreamble(head.subarray(0, nl).toString("latin1"));
      const entry = preamble && this.#admitted.get(digest(preamble.token));
      if (!preamble || !entry) return this.#refuse(socket, "unknown token");
      if (preamble.kind === "control") {
        if (entry.controlTaken) return this.#refuse(socket, "second control connection");
        entry.controlTaken = true;
        if (rest.length > 0) socket.unshift(rest);
        // Left paused: the receiver resumes it once it listens, so no message is lost meanwhile.
        entry.onControl(socket);
        return;
      }
      if (!entry.egressSocketPath) return this.#refuse(socket, "no egress for this sandbox");
      const upstream = connect(entry.egressSocketPath);
      if (rest.length > 0) upstream.write(rest);
      splice(socket, upstream);
      socket.resume();
    };
    socket.on("data", onData);
  }

  #refuse(socket: Socket, why: string): void {
    this.#rejected++;
    if (this.#rejected <= 10 || this.#rejected % 100 === 0)
      this.#logger.warn({ why, rejected: this.#rejected }, "worker endpoint refused a connection");
    socket.destroy();
  }
}

/**
 * A Unix socket at `path` whose every connection is piped to `target`: a
 * sandbox's egress socket shown inside a directory the container mounts
 * (gVisor mounts directories, not single socket files).
 */
export async function relayUnixSocket(path: string, target: string): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (client) => splice(client, connect(target)));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, resolve);
  });
  await chmod(path, 0o666);
  return server;
}

/**
 * Pipe two sockets both ways. Each side's end is passed on as an end (a client
 * that half-closes after its request still reads the reply); an error on
 * either side drops both.
 */
function splice(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const drop = () => {
    a.destroy();
    b.destroy();
  };
  a.on("error", drop);
  b.on("error", drop);
  a.on("close", () => b.end());
  b.on("close", () => a.end());
}
