import type { Socket } from "node:net";
import { LobuError, type Logger, PROTOCOL_VERSION } from "@lobu/core";
import { settled } from "@lobu/core/best-effort";
import { ChannelConnection } from "./connection.ts";
import type { ReadyMessage } from "./launcher.ts";
import type { OutputCapture } from "./output.ts";
import type { WorkerEndpoint } from "./worker-endpoint.ts";

/**
 * A worker the gateway did not spawn (a container or a pod) dials the
 * gateway's worker endpoint with its sandbox's token. This waits for that
 * connection and the worker's `ready`, and fails the way WorkerLauncher does:
 * with the worker's last output when it exits first, says nothing in time, or
 * speaks another protocol.
 */
export async function awaitRemoteWorker(opts: {
  sandboxId: string;
  endpoint: WorkerEndpoint;
  egressSocketPath?: string;
  logger: Logger;
  readyTimeoutMs: number;
  output: OutputCapture;
  /** Start the container or pod once the token exists; resolves with how it ended. */
  run: (token: string) => Promise<{ ended: Promise<string> }>;
}): Promise<{ connection: ChannelConnection; ready: ReadyMessage; revoke: () => void }> {
  const bindings = { sandboxId: opts.sandboxId };
  let onSocket!: (s: Socket) => void;
  const dialed = new Promise<Socket>((r) => {
    onSocket = r;
  });
  const { token, revoke } = opts.endpoint.admit(opts.sandboxId, {
    onControl: (socket) => onSocket(socket),
    ...(opts.egressSocketPath ? { egressSocketPath: opts.egressSocketPath } : {}),
  });
  let timer: NodeJS.Timeout | undefined;
  let connection: ChannelConnection | undefined;
  const fail = (what: string, hint?: string) => {
    const tail = opts.output.tailText();
    return new LobuError(
      "sandbox_start_failed",
      `worker for sandbox ${opts.sandboxId} ${what}${tail ? `; its last output:\n${tail}` : " (it printed nothing)"}`,
      {
        status: 500,
        hint:
          hint ?? "Run `lobu doctor` to check the sandbox driver; the worker's output is above.",
        details: { sandboxId: opts.sandboxId, output: opts.output.tail() },
      },
    );
  };
  try {
    const { ended } = await opts.run(token);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(fail(`did not become ready within ${Math.round(opts.readyTimeoutMs / 1000)} s`)),
        opts.readyTimeoutMs,
      );
    });
    const died = ended.then(async (how) => {
      // Give the log stream a moment to deliver the last words before reporting them.
      await new Promise((r) => setTimeout(r, 100));
      throw fail(`exited before it was ready (${how})`);
    });
    // Once ready, a later end is the supervisor's business, not a failed start.
    void settled(died);
    const socket = await Promise.race([dialed, timeout, died]);
    const conn = new ChannelConnection(socket, {
      pid: undefined,
      logger: opts.logger,
      bindings,
    });
    connection = conn;
    socket.resume();
    let unsubscribe = () => {};
    const ready = await Promise.race([
      new Promise<ReadyMessage>((resolve) => {
        unsubscribe = conn.onMessage((msg) => {
          if (msg.t === "ready") resolve(msg);
          else if (msg.t === "log")
            opts.logger[msg.level]({ ...bindings, from: "worker" }, msg.msg.slice(0, 2000));
        });
      }),
      timeout,
      died,
    ]).finally(() => unsubscribe());
    if (ready.protocol !== PROTOCOL_VERSION)
      throw fail(
        `speaks protocol ${ready.protocol} but this gateway speaks ${PROTOCOL_VERSION}`,
        "Gateway and worker come from different versions; rebuild the sandbox image so they match.",
      );
    return { connection: conn, ready, revoke };
  } catch (err) {
    connection?.close();
    revoke();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
