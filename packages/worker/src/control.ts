import { Socket } from "node:net";
import { GatewayToWorker, readNdjson, type WorkerToGateway, writeNdjson } from "@lobu/core";
import { dialGateway } from "./gateway-link.ts";

/**
 * The control channel to the gateway: NDJSON on fd 3 (a socketpair created by
 * the gateway when it spawned us), or a connection to `LOBU_CONTROL`. When the gateway goes away the channel ends
 * and the worker exits: nothing may outlive its gateway.
 */
export interface ControlChannel {
  send(msg: WorkerToGateway): void;
  onMessage(listener: (msg: GatewayToWorker) => void): void;
  onClose(listener: () => void): void;
}

export function openControlChannel(fd = 3): ControlChannel {
  // Containers and pods dial the gateway instead (gateway-link.ts).
  const dialed = process.env.LOBU_CONTROL;
  const socket = dialed
    ? dialGateway(dialed, "control", process.env.LOBU_WORKER_TOKEN)
    : new Socket({ fd, readable: true, writable: true });
  const listeners: ((msg: GatewayToWorker) => void)[] = [];
  const closeListeners: (() => void)[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const l of closeListeners) l();
  };
  socket.on("end", close);
  socket.on("close", close);
  socket.on("error", close);
  readNdjson(
    socket,
    (value) => {
      const parsed = GatewayToWorker.safeParse(value);
      if (!parsed.success) {
        process.stderr.write(
          `lobu-worker: ignoring invalid control message: ${parsed.error.message}\n`,
        );
        return;
      }
      for (const l of listeners) l(parsed.data);
    },
    (err) => process.stderr.write(`lobu-worker: ${err.message}\n`),
  );
  return {
    send(msg) {
      if (!closed) writeNdjson(socket, msg);
    },
    onMessage(listener) {
      listeners.push(listener);
    },
    onClose(listener) {
      closeListeners.push(listener);
    },
  };
}
