import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { z } from "zod";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";

/**
 * The two single-use steps of connecting an account from a chat thread:
 *
 * 1. A **connect link** (`/mcp/connect/<code>`), made when a person's call
 *    needs authorization: bound to that person, agent and server, and to the
 *    request the turn waits on; it expires, and the first opening uses it up.
 * 2. An **authorization flow**, started when the link is opened: keyed by
 *    the OAuth `state` the callback brings back, and bound to the browser
 *    that opened the link (a cookie whose hash is kept here), so a callback
 *    from anyone else's browser — another person who got hold of the URL, a
 *    forged callback — completes nothing.
 *
 * Only SHA-256 digests of codes are stored.
 */
export const ConnectBinding = z.object({
  userKey: z.string().min(1),
  agentId: z.string().min(1),
  serverId: z.string().min(1),
  /** The capability request the turn waits on, answered when the connection completes. */
  requestId: z.string().optional(),
});
export type ConnectBinding = z.infer<typeof ConnectBinding>;

const Flow = ConnectBinding.extend({
  browser: z.string(),
  resourceMetadataUrl: z.string().optional(),
});
export type Flow = z.infer<typeof Flow>;

export const LINK_TTL_MS = 15 * 60_000;
export const FLOW_TTL_MS = 15 * 60_000;

const digest = (value: string) => createHash("sha256").update(value).digest("hex");
const token = () => randomBytes(32).toString("base64url");

export class ConnectFlows {
  readonly #kv: KeyValue;
  readonly #log: Logger;

  constructor(kv: KeyValue, log: Logger) {
    this.#kv = kv;
    this.#log = log;
  }

  /** A new connect link's code. */
  async link(binding: ConnectBinding): Promise<string> {
    const code = token();
    await this.#kv.set(`mcplink:${digest(code)}`, JSON.stringify(binding), { ttlMs: LINK_TTL_MS });
    return code;
  }

  /** The link's binding, without using it (a link preview must not burn it). */
  async peekLink(code: string): Promise<ConnectBinding | undefined> {
    if (!code || code.length > 200) return undefined;
    const key = `mcplink:${digest(code)}`;
    const raw = await this.#kv.get(key);
    if (raw === null) return undefined;
    return readRecord(
      ConnectBinding,
      raw,
      { record: "mcp connect link", key },
      this.#log,
      "refused",
    );
  }

  /** The link's binding, once: a second opening (or an expired link) gets undefined. */
  async takeLink(code: string): Promise<ConnectBinding | undefined> {
    if (!code || code.length > 200) return undefined;
    const key = `mcplink:${digest(code)}`;
    const raw = await this.#kv.take(key);
    if (raw === null) return undefined;
    return readRecord(
      ConnectBinding,
      raw,
      { record: "mcp connect link", key },
      this.#log,
      "refused",
    );
  }

  /** Start a flow for the browser holding `browser` (a cookie value); returns the OAuth state. */
  async start(flow: Flow): Promise<string> {
    const state = token();
    const record: Flow = { ...flow, browser: digest(flow.browser) };
    await this.#kv.set(`mcpflow:${digest(state)}`, JSON.stringify(record), { ttlMs: FLOW_TTL_MS });
    return state;
  }

  /**
   * The flow of `state`, once, if `browser` is the cookie of the browser that
   * started it. A wrong browser uses the flow up too: a state that leaked is
   * worth one try.
   */
  async take(
    state: string,
    browser: string | undefined,
  ): Promise<Flow | "wrong_browser" | undefined> {
    if (!state || state.length > 200) return undefined;
    const key = `mcpflow:${digest(state)}`;
    const raw = await this.#kv.take(key);
    if (raw === null) return undefined;
    const flow = readRecord(
      Flow,
      raw,
      { record: "mcp authorization flow", key },
      this.#log,
      "refused",
    );
    if (!flow) return undefined;
    if (!browser || digest(browser) !== flow.browser) return "wrong_browser";
    return flow;
  }
}

export const newBrowserNonce = token;
