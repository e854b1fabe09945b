import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig, type LobuConfigInput } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";

/**
 * An in-process gateway for API tests (real HTTP server, real store, real
 * routes), with its bootstrap admin token. Tests that need state a platform
 * adapter would create (a Slack user's conversation, a pending approval) make it
 * through the same services the adapters and the turn runner call.
 */
export interface ApiGateway {
  gw: Gateway;
  url: string;
  adminToken: string;
  /** fetch `path` with `token` (JSON body when `body` is given). */
  call(token: string | undefined, method: string, path: string, body?: unknown): Promise<Response>;
  /** Create a token with the admin token; returns the secret and its record. */
  token(
    body: Record<string, unknown>,
    as?: string,
  ): Promise<{ token: string; id: string; namespace?: string; user?: string }>;
  close(): Promise<void>;
}

export async function startApiGateway(
  config: LobuConfigInput = {},
  env: NodeJS.ProcessEnv = {},
): Promise<ApiGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), "lobu-api-"));
  const gw = await startGateway({
    config: LobuConfig.parse({
      ...config,
      sandbox: { driver: "host", allow_unsandboxed: true, ...config.sandbox },
    }),
    dataDir,
    port: 0,
    env,
    log: createLogger("test", { level: "silent" }),
  });
  const adminToken = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  const call: ApiGateway["call"] = (token, method, path, body) =>
    fetch(`${gw.url}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  return {
    gw,
    url: gw.url,
    adminToken,
    call,
    async token(body, as = adminToken) {
      const res = await call(as, "POST", "/api/v1/tokens", body);
      if (res.status !== 201) throw new Error(`token: HTTP ${res.status} ${await res.text()}`);
      return (await res.json()) as { token: string; id: string; namespace?: string };
    },
    async close() {
      await gw.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An open HTTP response whose body is left unread (an SSE stream held open). */
export interface OpenStream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body, when the server answered with an error instead of a stream. */
  body(): Promise<string>;
  /** Hang up, like a client that goes away. */
  close(): void;
}

/**
 * Open a request with node:http so the source address can be chosen
 * (`127.0.0.2` is a different client address on loopback) and the connection
 * can be dropped at will.
 */
export function openStream(
  url: string,
  opts: {
    token: string;
    method?: string;
    body?: unknown;
    localAddress?: string;
    accept?: string;
  },
): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? "GET",
        localAddress: opts.localAddress ?? "127.0.0.1",
        agent: false,
        headers: {
          authorization: `Bearer ${opts.token}`,
          accept: opts.accept ?? "text/event-stream",
          ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
        },
      },
      (res) => {
        let text = "";
        let ended = false;
        const done: Promise<string> = new Promise((r) => {
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () => {
            ended = true;
            r(text);
          });
          res.on("close", () => r(text));
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: () => done,
          close: () => {
            if (!ended) req.destroy();
          },
        });
      },
    );
    req.on("error", reject);
    if (opts.body !== undefined) req.write(JSON.stringify(opts.body));
    req.end();
  });
}
