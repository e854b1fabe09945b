/**
 * How a worker that is not a child of the gateway reaches it. The `process`,
 * `virtual` and `host` drivers hand the worker fd 3 and a Unix socket; a
 * container (`docker`) gets Unix sockets mounted into it, and a pod
 * (`kubernetes`) can only dial the gateway's worker endpoint over TCP.
 *
 * Every such connection opens with one line, `lobu-worker <kind> <token>\n`,
 * before any other byte: the gateway reads it, checks the per-sandbox token and
 * only then treats the rest as the control channel (NDJSON, see worker.ts) or
 * as the sandbox's egress stream (bytes for its egress proxy).
 */

/** What a connection to the gateway's worker endpoint is for. */
export type WorkerStreamKind = "control" | "egress";

/** Tokens are 32-128 URL-safe characters (a random 32-byte value in base64url is 43). */
export const WORKER_TOKEN = /^[A-Za-z0-9_-]{32,128}$/;

/** The longest first line the gateway reads before giving up on a connection. */
export const MAX_PREAMBLE_BYTES = 256;

export function workerPreamble(kind: WorkerStreamKind, token: string): string {
  return `lobu-worker ${kind} ${token}\n`;
}

/** The kind and token of a first line, or undefined when it is not one. */
export function parseWorkerPreamble(
  line: string,
): { kind: WorkerStreamKind; token: string } | undefined {
  const m = /^lobu-worker (control|egress) ([A-Za-z0-9_-]{32,128})$/.exec(line);
  return m ? { kind: m[1] as WorkerStreamKind, token: m[2] as string } : undefined;
}

/**
 * Where a worker connects: a Unix socket path (`/run/lobu/control.sock`) or
 * `tcp://host:port`.
 */
export type GatewayAddress = { path: string } | { host: string; port: number };

export function parseGatewayAddress(value: string): GatewayAddress {
  if (value.startsWith("/")) return { path: value };
  const m = /^tcp:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65_535)
    throw new Error(`expected a socket path or tcp://host:port, got ${JSON.stringify(value)}`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, ""), port };
}
