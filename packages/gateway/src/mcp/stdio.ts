import {
  type ConversationKey,
  type LobuConfig,
  MAX_GATEWAY_TOOL_OUTPUT,
  newId,
  type StdioServerSpec,
  type StdioServerTools,
  type WorkerToGateway,
} from "@lobu/core";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/log.ts";
import type { WorkerConnection } from "../sandbox/driver.ts";
import { recordMcpCall } from "./audit.ts";
import { boundedTools, type ListedTool } from "./listed-tools.ts";
import { mcpToolName } from "./names.ts";
import { serverToolPolicy } from "./policy.ts";
import { resultText } from "./results.ts";
import type { McpCallContext, McpService, McpTool } from "./service.ts";

/**
 * stdio MCP servers (`[mcp.<id>] command`), run by the worker inside the
 * person's sandbox. The gateway stays the MCP policy point: it picks a turn's
 * servers (the same rules as remote ones), asks the worker to list their
 * tools, offers them as `mcp__<server>__<tool>` after validating what the
 * (untrusted) worker reported, applies policy and approvals like any gateway
 * tool, audits each call, and sends the call to the worker to run.
 */

/** A running sandbox: its worker's connection, and when it stops serving. */
interface RunningSandbox {
  connection: WorkerConnection;
  exited?: Promise<unknown>;
}

/** The running sandbox of a turn (woken when needed: its worker runs the servers). */
export interface StdioSandboxes {
  ensure(id: string, key: ConversationKey): Promise<RunningSandbox>;
  get(id: string): RunningSandbox | undefined;
}

export interface StdioMcpDeps {
  config: Pick<LobuConfig, "mcp">;
  mcp: Pick<McpService, "stdioServersFor">;
  sandboxes: StdioSandboxes;
  /** The gateway's sandbox tier: the virtual one runs no programs. */
  tier: { readonly driver: string | undefined };
  audit: Pick<AuditLog, "record">;
  log: Logger;
}

/** Said where a stdio server is wanted on the virtual tier (docs/packages.md says the same of packages). */
export const NO_PROGRAMS =
  "agents on this gateway run in the virtual tier, a JavaScript shell that cannot run programs, so stdio MCP servers cannot run there (the operator can use the process sandbox driver)";

/** Longest a listing may take (the worker's own start timeout is 90 s: npx may download first). */
const LIST_TIMEOUT_MS = 100_000;
/** What the worker gets beyond a call's own timeout to answer. */
const CALL_GRACE_MS = 5_000;
const MAX_RESULT_CHARS = Math.min(MAX_GATEWAY_TOOL_OUTPUT, 50_000);

export class StdioMcpTools {
  readonly #d: StdioMcpDeps;

  constructor(deps: StdioMcpDeps) {
    this.#d = deps;
  }

  /** The stdio tools of one turn (its sandbox is woken to list them). */
  async toolsFor(
    agent: { id: string; skills: string[] },
    userKey: string,
    turn: { conversationId: string; key: ConversationKey },
  ): Promise<McpTool[]> {
    const ids = await this.#d.mcp.stdioServersFor(agent, userKey);
    if (ids.length === 0) return [];
    if (this.#d.tier.driver === "virtual")
      return ids.map((id) => this.#unavailable(id, NO_PROGRAMS));
    const specs = ids.map((id) => this.#spec(id));
    const sandboxId = turn.conversationId;
    let reported: StdioServerTools[];
    try {
      const sandbox = await this.#d.sandboxes.ensure(sandboxId, turn.key);
      reported = await this.#list(sandbox, sandboxId, specs);
    } catch (err) {
      const why = (err as Error).message;
      this.#d.log.warn({ sandboxId, err: why }, "stdio MCP servers could not be listed");
      return ids.map((id) => this.#unavailable(id, why));
    }
    return ids.flatMap((id) => {
      // Only what was asked for, once: a worker's extra or repeated entries count for nothing.
      const entry = reported.find((r) => r.id === id);
      if (!entry?.tools)
        return [this.#unavailable(id, entry?.error ?? "no answer from the sandbox")];
      return boundedTools(id, entry.tools, this.#d.log).map((tool) =>
        this.#tool(id, sandboxId, tool),
      );
    });
  }

  #spec(id: string): StdioServerSpec {
    const server = this.#d.config.mcp[id]!;
    return { id, command: server.command!, args: server.args };
  }

  #tool(serverId: string, sandboxId: string, tool: ListedTool): McpTool {
    const server = this.#d.config.mcp[serverId]!;
    const title = tool.title?.slice(0, 200);
    return {
      spec: {
        name: mcpToolName(serverId, tool.name),
        description:
          `[${serverId}] ${title ? `${title}: ` : ""}${tool.description ?? tool.name}`.slice(
            0,
            4000,
          ),
        parameters: tool.inputSchema,
      },
      defaultPolicy: serverToolPolicy(server, tool.name),
      execute: (input, ctx) => this.#call(serverId, sandboxId, tool.name, input, ctx),
    };
  }

  /** What the model gets instead of a server's tools when the server cannot run. */
  #unavailable(serverId: string, why: string): McpTool {
    const text = `The ${serverId} MCP server cannot run: ${why.slice(0, 1000)}`;
    return {
      spec: {
        name: mcpToolName(serverId, "unavailable"),
        description: `${text}. Call this to get the explanation to give the user.`.slice(0, 4000),
        parameters: { type: "object", properties: {}, additionalProperties: false },
      },
      defaultPolicy: "allow",
      execute: async () => `${text}. Tell the user; its tools are not available in this turn.`,
    };
  }

  async #list(
    sandbox: RunningSandbox,
    sandboxId: string,
    servers: StdioServerSpec[],
  ): Promise<StdioServerTools[]> {
    const { connection } = sandbox;
    const requestId = newId("ms");
    const reply = await this.#await(
      sandbox,
      (m) => m.t === "mcp_stdio_tools" && m.sandboxId === sandboxId && m.requestId === requestId,
      LIST_TIMEOUT_MS,
      undefined,
      () => connection.send({ t: "mcp_stdio_list", sandboxId, requestId, servers }),
    );
    return reply.t === "mcp_stdio_tools" ? reply.servers : [];
  }

  async #call(
    serverId: string,
    sandboxId: string,
    tool: string,
    input: Record<string, unknown>,
    ctx: McpCallContext,
  ): Promise<string> {
    const server = this.#d.config.mcp[serverId]!;
    const running = this.#d.sandboxes.get(sandboxId);
    const audit = (outcome: string) => recordMcpCall(this.#d.audit, ctx, serverId, tool, outcome);
    if (!running) {
      audit("failed");
      throw new Error("the sandbox running this server stopped");
    }
    const { connection } = running;
    const callId = newId("mc");
    let reply: WorkerToGateway;
    try {
      reply = await this.#await(
        running,
        (m) => m.t === "mcp_stdio_result" && m.sandboxId === sandboxId && m.callId === callId,
        server.timeout + CALL_GRACE_MS,
        ctx.signal,
        () =>
          connection.send({
            t: "mcp_stdio_call",
            sandboxId,
            callId,
            server: this.#spec(serverId),
            tool,
            input,
            timeoutMs: server.timeout,
          }),
      );
    } catch (err) {
      connection.send({ t: "mcp_stdio_cancel", sandboxId, callId });
      audit(ctx.signal.aborted ? "cancelled" : "failed");
      throw err;
    }
    if (reply.t !== "mcp_stdio_result" || reply.error !== undefined || reply.result === undefined) {
      audit("failed");
      const why = reply.t === "mcp_stdio_result" ? reply.error : undefined;
      throw new Error(`the ${serverId} server failed: ${(why ?? "no result").slice(0, 1000)}`);
    }
    const parsed = CallToolResultSchema.safeParse(reply.result);
    if (!parsed.success) {
      audit("failed");
      throw new Error(`the ${serverId} server returned something that is not a tool result`);
    }
    audit(parsed.data.isError ? "tool_error" : "ok");
    const text = resultText(parsed.data, MAX_RESULT_CHARS);
    return parsed.data.isError ? `The ${tool} tool reported an error:\n${text}` : text;
  }

  /** The first message matching `match`, after `send`; rejects on timeout, abort or the sandbox's end. */
  #await(
    { connection, exited }: RunningSandbox,
    match: (m: WorkerToGateway) => boolean,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    send: () => void,
  ): Promise<WorkerToGateway> {
    return new Promise((resolve, reject) => {
      let settled = false;
      void exited?.then(() => {
        if (settled) return;
        done();
        reject(new Error("the sandbox stopped"));
      });
      const done = () => {
        settled = true;
        off();
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const off = connection.onMessage((m) => {
        if (!match(m)) return;
        done();
        resolve(m);
      });
      const timer = setTimeout(() => {
        done();
        reject(new Error(`the sandbox did not answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const onAbort = () => {
        done();
        reject(new Error("the turn ended"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      send();
    });
  }
}
