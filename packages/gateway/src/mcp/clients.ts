import type { LobuConfig, McpSection } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike, Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  type CallToolResult,
  CallToolResultSchema,
  type Progress,
  type Tool,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";
import type { SecretStore } from "../secrets/store.ts";
import { inSpan, SpanKind, traceparentOf } from "../telemetry/otel.ts";
import type { McpCredentials } from "./credentials.ts";
import { boundedTools, type ListedTool, MAX_TOOLS } from "./listed-tools.ts";
import { PersonOAuthProvider } from "./oauth.ts";
import { guardedFetch } from "./outbound.ts";

/**
 * The gateway's MCP clients (the SDK's `Client`), one per person and server
 * — a connection made with one person's tokens serves that person only — or
 * one per server for a server with static `headers` (a team account). Each
 * client keeps the server's tool list, listed again after
 * `notifications/tools/list_changed`.
 */
export interface McpClientDeps {
  config: Pick<LobuConfig, "mcp" | "network">;
  credentials: McpCredentials;
  secrets: Pick<SecretStore, "get">;
  /** The OAuth callback (`<public url>/mcp/callback`), read when a client is made. */
  redirectUrl(): string;
  log: Logger;
  /** Where the gateway's requests go (tests); default fetch. */
  fetch?: FetchLike;
}

/** The person must connect their account (again) before the server answers. */
export class NeedsAuthorization extends Error {
  readonly serverId: string;

  constructor(serverId: string) {
    super(`connect your account to ${serverId} first`);
    this.name = "NeedsAuthorization";
    this.serverId = serverId;
  }
}

/** Open connections kept; the least recently used one beyond this is closed. */
const MAX_CLIENTS = 256;
/**
 * Longest connecting or listing may take: a turn waits for its servers' tools
 * before it starts, and a server that does not answer must not hold it long.
 */
const LIST_TIMEOUT_MS = 15_000;
/** Pages of a tool listing read at most: a server that always has a next page does not hold the turn. */
const MAX_PAGES = 20;

interface Entry {
  client: Client;
  provider: PersonOAuthProvider | undefined;
  tools: ListedTool[] | undefined;
}

/** The SDK's progress callback: what a call reports while it runs. */
export type OnProgress = (progress: Progress) => void;

export class McpClients {
  readonly #d: McpClientDeps;
  readonly #entries = new Map<string, Promise<Entry>>();

  constructor(deps: McpClientDeps) {
    this.#d = deps;
  }

  server(serverId: string): McpSection | undefined {
    return this.#d.config.mcp[serverId];
  }

  /** A server whose `headers` carry a team credential: one connection for everyone, nobody connects. */
  isShared(serverId: string): boolean {
    return Object.keys(this.server(serverId)?.headers ?? {}).length > 0;
  }

  /** The server's tools, as this person's connection lists them. Throws NeedsAuthorization. */
  async tools(serverId: string, userKey: string): Promise<ListedTool[]> {
    return this.#use(serverId, userKey, async (entry) => {
      entry.tools ??= await listTools(entry.client, serverId, this.#d.log);
      return entry.tools;
    });
  }

  /** Run a tool with this person's connection. Throws NeedsAuthorization. */
  async call(
    serverId: string,
    userKey: string,
    tool: string,
    args: Record<string, unknown>,
    opts: { signal: AbortSignal; onProgress?: OnProgress },
  ): Promise<CallToolResult> {
    const timeout = this.server(serverId)?.timeout ?? 120_000;
    const attributes = { "lobu.mcp.server": serverId, "lobu.mcp.tool": tool.slice(0, 200) };
    return inSpan(
      "lobu.mcp.call",
      attributes,
      () => this.#callIn(serverId, userKey, tool, args, opts, timeout),
      {
        kind: SpanKind.CLIENT,
      },
    );
  }

  async #callIn(
    serverId: string,
    userKey: string,
    tool: string,
    args: Record<string, unknown>,
    opts: { signal: AbortSignal; onProgress?: OnProgress },
    timeout: number,
  ): Promise<CallToolResult> {
    return this.#use(serverId, userKey, async (entry) => {
      const result = await entry.client.callTool(
        { name: tool, arguments: args },
        CallToolResultSchema,
        {
          signal: opts.signal,
          timeout,
          maxTotalTimeout: timeout,
          ...(opts.onProgress ? { onprogress: opts.onProgress, resetTimeoutOnProgress: true } : {}),
        },
      );
      return result as CallToolResult;
    });
  }

  /** Close a person's connection (they disconnected, or connected again). */
  async forget(serverId: string, userKey: string): Promise<void> {
    const key = this.#key(serverId, userKey);
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    await entry
      ?.then((e) => e.client.close())
      .catch(bestEffort(this.#d.log, "MCP client not closed", { serverId }, { level: "debug" }));
  }

  async close(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(
      all.map((p) =>
        p
          .then((e) => e.client.close())
          .catch(bestEffort(this.#d.log, "MCP client not closed", {}, { level: "debug" })),
      ),
    );
  }

  async #use<T>(serverId: string, userKey: string, fn: (entry: Entry) => Promise<T>): Promise<T> {
    const key = this.#key(serverId, userKey);
    let pending = this.#entries.get(key);
    if (!pending) {
      pending = this.#connect(serverId, userKey);
      this.#entries.set(key, pending);
      this.#trim();
      pending.catch(() => {
        if (this.#entries.get(key) === pending) this.#entries.delete(key);
      });
    } else {
      // Most recently used last (Map order), for #trim.
      this.#entries.delete(key);
      this.#entries.set(key, pending);
    }
    const entry = await pending.catch((err) => {
      throw authError(err, serverId, undefined) ?? err;
    });
    if (entry.provider) entry.provider.needsAuthorization = false;
    try {
      return await fn(entry);
    } catch (err) {
      const auth = authError(err, serverId, entry.provider);
      if (auth) {
        if (this.#entries.get(key) === pending) this.#entries.delete(key);
        await entry.client
          .close()
          .catch(
            bestEffort(this.#d.log, "MCP client not closed", { serverId }, { level: "debug" }),
          );
        throw auth;
      }
      throw err;
    }
  }

  async #connect(serverId: string, userKey: string): Promise<Entry> {
    const server = this.server(serverId);
    if (!server?.url)
      throw new Error(`MCP server "${serverId}" is not a remote server of this gateway`);
    const url = server.url;
    const fetchFn = tracedFetch(
      guardedFetch({
        serverUrl: url,
        allowPrivateRanges: this.#d.config.network.allow_private_ranges,
        ...(this.#d.fetch ? { fetch: this.#d.fetch } : {}),
      }),
    );
    const shared = this.isShared(serverId);
    const headers = shared ? await this.#headers(server) : {};
    const provider = shared
      ? undefined
      : new PersonOAuthProvider({
          credentials: this.#d.credentials,
          userKey,
          serverId,
          server,
          redirectUrl: this.#d.redirectUrl(),
          ...(await this.#clientSecret(server)),
          mode: { kind: "call" },
        });
    const transports: (() => Transport)[] = [];
    const opts = {
      fetch: fetchFn,
      requestInit: { headers },
      ...(provider ? { authProvider: provider } : {}),
    };
    if (server.transport !== "sse")
      transports.push(() => new StreamableHTTPClientTransport(new URL(url), opts));
    if (server.transport !== "streamable-http")
      transports.push(() => new SSEClientTransport(new URL(url), opts));
    let last: unknown;
    for (const make of transports) {
      const client = new Client({ name: "lobu-gateway", version: "0.1.0" });
      const entry: Entry = { client, provider, tools: undefined };
      client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
        entry.tools = undefined;
      });
      try {
        await client.connect(make(), { timeout: LIST_TIMEOUT_MS });
        return entry;
      } catch (err) {
        last = err;
        await client
          .close()
          .catch(
            bestEffort(this.#d.log, "MCP client not closed", { serverId }, { level: "debug" }),
          );
        // Authorization is not a transport problem: the fallback would only ask again.
        if (authError(err, serverId, provider)) throw err;
      }
    }
    throw last;
  }

  #key(serverId: string, userKey: string): string {
    return this.isShared(serverId) ? `${serverId}\0*` : `${serverId}\0${userKey}`;
  }

  #trim(): void {
    while (this.#entries.size > MAX_CLIENTS) {
      const [oldest, entry] = this.#entries.entries().next().value as [string, Promise<Entry>];
      this.#entries.delete(oldest);
      void entry.then((e) => e.client.close()).catch(() => undefined);
    }
  }

  /** Static headers with `${secret:NAME}` replaced by installation secrets. */
  async #headers(server: McpSection): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, template] of Object.entries(server.headers)) {
      let value = template;
      for (const match of template.matchAll(/\$\{secret:([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\}/g)) {
        const secret = await this.#d.secrets.get({
          scope: { kind: "installation" },
          name: match[1]!,
        });
        if (secret === null)
          throw new Error(
            `the installation secret "${match[1]}" (named in an [mcp] header) is not set: lobu secrets set ${match[1]}`,
          );
        value = value.replace(match[0], secret);
      }
      out[name] = value;
    }
    return out;
  }

  async #clientSecret(server: McpSection): Promise<{ clientSecret?: string }> {
    const name = server.oauth?.client_secret;
    if (!name) return {};
    const value = await this.#d.secrets.get({ scope: { kind: "installation" }, name });
    if (value === null)
      throw new Error(
        `the installation secret "${name}" ([mcp] oauth.client_secret) is not set: lobu secrets set ${name}`,
      );
    return { clientSecret: value };
  }
}

/** The NeedsAuthorization an error means, if it means one. */
function authError(
  err: unknown,
  serverId: string,
  provider: PersonOAuthProvider | undefined,
): NeedsAuthorization | undefined {
  if (err instanceof NeedsAuthorization) return err;
  if (err instanceof UnauthorizedError || provider?.needsAuthorization)
    return new NeedsAuthorization(serverId);
  return undefined;
}

async function listTools(client: Client, serverId: string, log: Logger): Promise<ListedTool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await client.listTools(cursor ? { cursor } : {}, { timeout: LIST_TIMEOUT_MS });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor && tools.length <= MAX_TOOLS && ++pages < MAX_PAGES);
  return boundedTools(serverId, tools, log);
}

/**
 * The MCP server gets the trace context of the call it serves (W3C
 * `traceparent`), so its own spans join the turn's trace.
 */
function tracedFetch(base: FetchLike): FetchLike {
  return (url, init) => {
    const traceparent = traceparentOf();
    if (!traceparent) return base(url, init);
    const headers = new Headers(init?.headers);
    headers.set("traceparent", traceparent);
    return base(url, { ...init, headers });
  };
}
