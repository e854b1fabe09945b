import {
  type AgentEvent,
  type GatewayToolSpec,
  type LobuConfig,
  MAX_GATEWAY_TOOL_OUTPUT,
  newId,
  type RequestAnswer,
  type ToolPolicy,
} from "@lobu/core";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/log.ts";
import type { PersonDataKind } from "../domain/person-data.ts";
import type { UserSettingsStore } from "../people/user-settings.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import { recordMcpCall } from "./audit.ts";
import type { McpClients } from "./clients.ts";
import { NeedsAuthorization } from "./clients.ts";
import type { ConnectFlows } from "./connect-flows.ts";
import type { McpCredentials } from "./credentials.ts";
import type { ListedTool } from "./listed-tools.ts";
import { connectToolName, mcpToolName } from "./names.ts";
import { revokeTokens } from "./oauth.ts";
import { guardedFetch } from "./outbound.ts";
import { serverToolPolicy } from "./policy.ts";
import { resultText } from "./results.ts";

type CapabilityRequest = Extract<AgentEvent, { type: "capability_request" }>;

/** What an MCP tool gets from the gateway tool host for one call. */
export interface McpCallContext {
  agentId: string;
  userKey: string;
  signal: AbortSignal;
  /** Show the person a request and wait for the answer (null: none in time, or the turn ended). */
  ask(event: CapabilityRequest): Promise<RequestAnswer | null>;
  /** A progress line for the turn's stream. */
  progress(text: string): void;
}

/** An MCP tool as a gateway tool of one turn. */
export interface McpTool {
  spec: GatewayToolSpec;
  defaultPolicy: ToolPolicy;
  execute(input: Record<string, unknown>, ctx: McpCallContext): Promise<string>;
}

export type ConnectionStatus = "connected" | "needs_authorization" | "shared" | "error";

export interface McpServiceDeps {
  config: Pick<LobuConfig, "mcp" | "network">;
  clients: McpClients;
  credentials: McpCredentials;
  flows: ConnectFlows;
  userSettings: Pick<UserSettingsStore, "get">;
  skills: Pick<SkillCatalog, "pick">;
  audit: Pick<AuditLog, "record">;
  /** The gateway's public URL, read when a link is made. */
  publicUrl(): string;
  log: Logger;
}

/** Progress notices one call may add to the turn (a chatty server does not flood it). */
const MAX_PROGRESS_NOTICES = 5;
/** What one result may give the model; the rest is cut with a note. */
const MAX_RESULT_CHARS = Math.min(MAX_GATEWAY_TOOL_OUTPUT, 50_000);

/**
 * MCP servers as gateway tools: which servers a turn has (the agent's
 * skills', the person's skills' and the servers the person added), their
 * tools listed with the turn's sender's own connection, each call relayed
 * with that same person's tokens, and the connect prompt when a person's
 * call needs authorization.
 */
export class McpService {
  readonly #d: McpServiceDeps;

  constructor(deps: McpServiceDeps) {
    this.#d = deps;
  }

  /** The remote servers a turn of `userKey` with `agent` has. */
  async serversFor(agent: { id: string; skills: string[] }, userKey: string): Promise<string[]> {
    return (await this.#selected(agent, userKey)).filter(
      (id) => this.#d.config.mcp[id]?.url !== undefined,
    );
  }

  /** The stdio servers (run inside the sandbox) a turn of `userKey` with `agent` has: the same rules. */
  async stdioServersFor(
    agent: { id: string; skills: string[] },
    userKey: string,
  ): Promise<string[]> {
    return (await this.#selected(agent, userKey)).filter(
      (id) => this.#d.config.mcp[id]?.command !== undefined,
    );
  }

  /** The agent's skills' servers, the person's skills' servers and the servers the person added. */
  async #selected(agent: { id: string; skills: string[] }, userKey: string): Promise<string[]> {
    const settings = await this.#d.userSettings.get(agent.id, userKey);
    const fromSkills = this.#d.skills
      .pick([...agent.skills, ...settings.skills])
      .flatMap((s) => s.mcp);
    return [...new Set([...fromSkills, ...settings.mcp])].sort();
  }

  /** The tools a turn offers: each server's own, or its connect tool while the person is not connected. */
  async toolsFor(agent: { id: string; skills: string[] }, userKey: string): Promise<McpTool[]> {
    // Every server at once: one that does not answer holds the turn only so long.
    const perServer = await Promise.all(
      (await this.serversFor(agent, userKey)).map(async (serverId): Promise<McpTool[]> => {
        try {
          const listed = await this.#d.clients.tools(serverId, userKey);
          return listed.map((tool) => this.#tool(serverId, tool));
        } catch (err) {
          if (err instanceof NeedsAuthorization) return [this.#connectTool(serverId)];
          this.#d.log.warn(
            { serverId, err: (err as Error).message },
            "MCP server unavailable: its tools are left out of this turn",
          );
          return [];
        }
      }),
    );
    return perServer.flat();
  }

  /** A person's connection to a server, as the settings page shows it. */
  async status(userKey: string, serverId: string): Promise<ConnectionStatus> {
    if (this.#d.clients.isShared(serverId)) return "shared";
    // Asked of the server itself: a server that needs no sign-in is connected as it is.
    try {
      await this.#d.clients.tools(serverId, userKey);
      return "connected";
    } catch (err) {
      return err instanceof NeedsAuthorization ? "needs_authorization" : "error";
    }
  }

  /** A connect link for the person (single use, expiring). */
  async connectUrl(binding: {
    userKey: string;
    agentId: string;
    serverId: string;
    requestId?: string;
  }): Promise<string> {
    const code = await this.#d.flows.link(binding);
    return `${this.#d.publicUrl()}/mcp/connect/${code}`;
  }

  /**
   * The person's MCP connections, for their export (server ids and whether
   * tokens are held, never the tokens) and erasure (each revoked at its
   * server first, then forgotten with the client registration).
   */
  personData(): PersonDataKind {
    const held = async (userKey: string) => {
      const out: string[] = [];
      for (const id of Object.keys(this.#d.config.mcp))
        if (await this.#d.credentials.tokens(userKey, id)) out.push(id);
      return out;
    };
    return {
      name: "mcp",
      export: async (p) => ({ connected: await held(p.userKey) }),
      erase: async (p) => {
        let connections = 0;
        for (const id of Object.keys(this.#d.config.mcp)) {
          if (await this.#d.credentials.tokens(p.userKey, id)) connections++;
          await this.disconnect(p.userKey, id);
          await this.#d.credentials.forget(p.userKey, id, ["client"]);
        }
        return { connections };
      },
    };
  }

  /** Revoke the person's tokens at the server (RFC 7009, best effort) and forget them. */
  async disconnect(userKey: string, serverId: string): Promise<{ revoked: boolean }> {
    const server = this.#d.config.mcp[serverId];
    const saved = await this.#d.credentials.tokens(userKey, serverId);
    let revoked = false;
    if (server?.url && saved) {
      try {
        revoked = await revokeTokens({
          serverUrl: server.url,
          tokens: saved.tokens,
          client: await this.#clientFor(userKey, serverId),
          fetchFn: guardedFetch({
            serverUrl: server.url,
            allowPrivateRanges: this.#d.config.network.allow_private_ranges,
          }),
        });
      } catch (err) {
        this.#d.log.warn({ serverId, err: (err as Error).message }, "could not revoke MCP tokens");
      }
    }
    await this.#d.credentials.forget(userKey, serverId, ["tokens", "verifier"]);
    await this.#d.clients.forget(serverId, userKey);
    return { revoked };
  }

  async #clientFor(userKey: string, serverId: string) {
    const configured = this.#d.config.mcp[serverId]?.oauth;
    if (configured) return { client_id: configured.client_id };
    return this.#d.credentials.client(userKey, serverId);
  }

  #tool(serverId: string, tool: ListedTool): McpTool {
    const server = this.#d.config.mcp[serverId]!;
    const title = tool.title ?? tool.annotations?.title;
    return {
      spec: {
        name: mcpToolName(serverId, tool.name),
        description:
          `[${serverId}] ${title ? `${title}: ` : ""}${tool.description ?? tool.name}`.slice(
            0,
            4000,
          ),
        parameters: { ...tool.inputSchema, type: "object" },
      },
      defaultPolicy: serverToolPolicy(server, tool.name),
      execute: (input, ctx) => this.#call(serverId, tool.name, input, ctx),
    };
  }

  #connectTool(serverId: string): McpTool {
    const description = this.#d.config.mcp[serverId]?.description;
    return {
      spec: {
        name: connectToolName(serverId),
        description:
          `Connect the user's own ${serverId} account${description ? ` (${description})` : ""}, so its tools become available. The user gets a link to sign in; this returns once they did (or declined).`.slice(
            0,
            4000,
          ),
        parameters: { type: "object", properties: {}, additionalProperties: false },
      },
      // Asking the person to connect is itself the question.
      defaultPolicy: "allow",
      execute: async (_input, ctx) => {
        let listed: ListedTool[] | string;
        try {
          listed = await this.#listOrConnect(serverId, ctx);
        } catch (err) {
          this.#audit(ctx, serverId, "connect", ctx.signal.aborted ? "cancelled" : "failed");
          throw err;
        }
        if (typeof listed === "string") {
          // Declined, or no answer in time: audited like a call that still needs the person.
          this.#audit(ctx, serverId, "connect", "needs_authorization");
          return listed;
        }
        this.#audit(ctx, serverId, "connect", "connected");
        return `Connected to ${serverId}. Its tools are available from the user's next message: ${listed
          .map((t) => mcpToolName(serverId, t.name))
          .join(", ")}. Tell the user it is connected and ask them to send their request again.`;
      },
    };
  }

  async #listOrConnect(serverId: string, ctx: McpCallContext): Promise<ListedTool[] | string> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        return await this.#d.clients.tools(serverId, ctx.userKey);
      } catch (err) {
        if (!(err instanceof NeedsAuthorization) || attempt > 0) throw err;
        const refused = await this.#prompt(serverId, ctx);
        if (refused) return refused;
      }
    }
    throw new NeedsAuthorization(serverId);
  }

  async #call(
    serverId: string,
    tool: string,
    input: Record<string, unknown>,
    ctx: McpCallContext,
  ): Promise<string> {
    let notices = 0;
    const onProgress = (p: { progress: number; total?: number; message?: string }) => {
      if (++notices > MAX_PROGRESS_NOTICES) return;
      const share = p.total ? ` ${Math.round((p.progress / p.total) * 100)}%` : "";
      ctx.progress(
        `${serverId} · ${tool}${share}${p.message ? `: ${p.message.slice(0, 200)}` : ""}`,
      );
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.#d.clients.call(serverId, ctx.userKey, tool, input, {
          signal: ctx.signal,
          onProgress,
        });
        this.#audit(ctx, serverId, tool, result.isError ? "tool_error" : "ok");
        const text = resultText(result, MAX_RESULT_CHARS);
        return result.isError ? `The ${tool} tool reported an error:\n${text}` : text;
      } catch (err) {
        if (err instanceof NeedsAuthorization && attempt === 0) {
          this.#audit(ctx, serverId, tool, "needs_authorization");
          const refused = await this.#prompt(serverId, ctx);
          if (refused) return refused;
          continue;
        }
        this.#audit(
          ctx,
          serverId,
          tool,
          ctx.signal.aborted
            ? "cancelled"
            : err instanceof NeedsAuthorization
              ? "needs_authorization"
              : "failed",
        );
        throw err instanceof NeedsAuthorization
          ? new Error(`the user's ${serverId} account is still not connected`)
          : err;
      }
    }
  }

  /**
   * The connect prompt: a capability request whose link is a connect link
   * bound to this person. Undefined once they connected (the callback
   * answers it), else what to tell the model.
   */
  async #prompt(serverId: string, ctx: McpCallContext): Promise<string | undefined> {
    const requestId = newId("rq");
    const url = await this.connectUrl({
      userKey: ctx.userKey,
      agentId: ctx.agentId,
      serverId,
      requestId,
    });
    const answer = await ctx.ask({
      type: "capability_request",
      requestId,
      kind: "mcp",
      value: serverId,
      reason: `The agent needs your own ${serverId} account. Open the Connect link to sign in there; the agent continues once you are connected.`,
      url,
    });
    if (answer?.choice === "granted") return undefined;
    return `The user has not connected their ${serverId} account${answer ? " (they declined)" : " (no answer in time)"}, so ${serverId} cannot be used. Tell them they can connect it from the link in this conversation or their settings page, then ask again.`;
  }

  #audit(ctx: McpCallContext, serverId: string, tool: string, outcome: string): void {
    recordMcpCall(this.#d.audit, ctx, serverId, tool, outcome);
  }
}
