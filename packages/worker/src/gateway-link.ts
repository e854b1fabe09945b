import { connect, type Socket } from "node:net";
// The light module, not the package index: a pooled command's forwarder starts with every command.
import { parseGatewayAddress, type WorkerStreamKind, workerPreamble } from "@lobu/core/transport";

/**
 * A worker in a container or pod dials the gateway instead of inheriting fd 3
 * (see core's protocol/transport.ts): `LOBU_CONTROL` and `LOBU_EGRESS_SOCKET`
 * name a Unix socket or `tcp://host:port`, and `LOBU_WORKER_TOKEN` opens each
 * connection. A plain socket path without a token is the classic egress socket.
 */
export function dialGateway(target: string, kind: WorkerStreamKind, token?: string): Socket {
  const address = parseGatewayAddress(target);
  const socket = "path" in address ? connect(address.path) : connect(address);
  // Written before the connection is up: Node queues it, and it is the first byte sent.
  if (token) socket.write(workerPreamble(kind, token));
  return socket;
}
