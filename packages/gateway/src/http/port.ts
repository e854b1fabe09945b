import { createServer } from "node:net";
import { LobuError } from "@lobu/core";

/**
 * The gateway's listening port, checked before anything else starts: a busy
 * port should be a one-line refusal with what to do, not a failure after the
 * store, the proxy and the sandbox probe have started.
 */

const where = (host: string, port: number) => `${host.includes(":") ? `[${host}]` : host}:${port}`;

/** A listen error as a LobuError that says what to do (other errors are returned as they are). */
export function listenError(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE")
    return new LobuError("port_in_use", `port ${port} on ${host} is already in use`, {
      status: 500,
      hint: `Stop what listens on ${where(host, port)} (\`ss -ltnp 'sport = :${port}'\` shows it), or choose another port: \`lobu run --port ${port === 65535 ? port - 1 : port + 1}\` (or gateway.port in lobu.toml, LOBU_PORT).`,
      cause: err,
    });
  if (code === "EACCES")
    return new LobuError("port_forbidden", `not allowed to listen on port ${port}`, {
      status: 500,
      hint: "Ports below 1024 need root (or CAP_NET_BIND_SERVICE): choose a port above 1023 with --port, and put a reverse proxy in front.",
      cause: err,
    });
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
    return new LobuError("host_unavailable", `cannot listen on ${host}: no such address here`, {
      status: 500,
      hint: "Use an address of this machine (127.0.0.1, 0.0.0.0 for all) with --host or gateway.host.",
      cause: err,
    });
  return err;
}

/** Throws `port_in_use` (or another listen error) when `host:port` cannot be listened on. */
export async function assertPortFree(host: string, port: number): Promise<void> {
  // Port 0 asks the system for a free one; anything else not a port fails at listen.
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", (err) => reject(listenError(err, host, port)));
    probe.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
