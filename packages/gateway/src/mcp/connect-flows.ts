import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { z } from "zod";
import { open, type SealKey, seal, toKeyObject } from "../secrets/crypto.ts";
import type { SecretRef, SecretStore } from "../secrets/store.ts";
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
 * Each flow is its own record, cookie and PKCE verifier, all keyed by its
 * `state`: two flows at once (two tabs, the same server twice) each complete.
 * What the callback needs from the start of the flow — the PKCE verifier, the
 * client the authorization request named, the discovery (authorization server
 * metadata, for the RFC 9207 `iss` check) — is sealed in the flow record under
 * the installation's flow key (an installation secret), and expires with it.
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
  /** The sealed FlowSecrets. */
  sealed: z.string(),
});
type StoredFlow = z.infer<typeof Flow>;

/** What the start of a flow leaves for its callback (sealed). */
export const FlowSecrets = z.object({
  verifier: z.string().min(1),
  /** The client the authorization request named: the code is exchanged as that client. */
  client: z.looseObject({ client_id: z.string().min(1) }),
  /** The SDK's discovery state (resource and authorization server metadata). */
  discovery: z.looseObject({ authorizationServerUrl: z.string() }).optional(),
});
export type FlowSecrets = z.infer<typeof FlowSecrets>;

export type Flow = ConnectBinding & { browser: string; secrets: FlowSecrets };

/** The key flows are sealed under: made once per installation, kept in the secret store. */
export const FLOW_KEY_SECRET: SecretRef = {
  scope: { kind: "installation" },
  name: "lobu.mcp-flow-key",
};

export const LINK_TTL_MS = 15 * 60_000;
export const FLOW_TTL_MS = 15 * 60_000;

const digest = (value: string) => createHash("sha256").update(value).digest("hex");
const token = () => randomBytes(32).toString("base64url");

export class ConnectFlows {
  readonly #kv: KeyValue;
  readonly #secrets: Pick<SecretStore, "ensure">;
  readonly #log: Logger;
  #key: Promise<SealKey> | undefined;

  constructor(kv: KeyValue, secrets: Pick<SecretStore, "ensure">, log: Logger) {
    this.#kv = kv;
    this.#secrets = secrets;
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

  /** A new flow's OAuth state (the flow is stored by `start` once its authorization is ready). */
  newState(): string {
    return token();
  }

  /** Store the flow of `state` for the browser holding `flow.browser` (a cookie value). */
  async start(
    state: string,
    flow: ConnectBinding & { browser: string },
    secrets: FlowSecrets,
  ): Promise<void> {
    const key = `mcpflow:${digest(state)}`;
    const record: StoredFlow = {
      ...flow,
      browser: digest(flow.browser),
      sealed: seal(await this.#sealKey(), JSON.stringify(secrets), key),
    };
    await this.#kv.set(key, JSON.stringify(record), { ttlMs: FLOW_TTL_MS });
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
    let secrets: FlowSecrets;
    try {
      secrets = FlowSecrets.parse(JSON.parse(open(await this.#sealKey(), flow.sealed, key)));
    } catch (err) {
      this.#log.warn(
        { key, err: (err as Error).message },
        "mcp authorization flow unreadable: refused",
      );
      return undefined;
    }
    const { sealed: _s, ...binding } = flow;
    return { ...binding, secrets };
  }

  #sealKey(): Promise<SealKey> {
    this.#key ??= this.#secrets
      .ensure(FLOW_KEY_SECRET, () => randomBytes(32).toString("base64"))
      .then((value) => toKeyObject(Buffer.from(value, "base64")))
      .catch((err: unknown) => {
        this.#key = undefined;
        throw err;
      });
    return this.#key;
  }
}

/**
 * The cookie binding one flow to its browser: named after the flow's state,
 * so a second flow in the same browser does not replace the first one's.
 */
export function flowCookieName(state: string): string {
  return `lobu_mcp_flow_${digest(state).slice(0, 16)}`;
}

export const newBrowserNonce = token;
