import type { StdioServerSpec, StdioServerTools } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

/**
 * The stdio MCP servers of one sandbox, run by the worker inside it: each
 * server is a child of the worker, so it has the sandbox's isolation (its
 * namespaces, cgroup, seccomp filter, volume) and its only network is the
 * egress proxy the environment names. The gateway decides which servers a
 * turn has and which calls run (policy, approvals, audit); this only starts
 * them, lists their tools and runs the calls it is sent.
 */

/** Times a server may crash (or fail to start) before it is left stopped until the sandbox restarts. */
const MAX_RESTARTS = 3;
/** Longest a server may take to start and list its tools (npx may download the package first). */
const START_TIMEOUT_MS = 90_000;
/** Largest result sent back to the gateway (a control line stays well under its limit). */
const MAX_RESULT_BYTES = 1_000_000;
const MAX_TOOL_PAGES = 10;

interface Running {
  key: string;
  client?: Client;
  starting?: Promise<Client>;
  failures: number;
  lastError?: string;
}

export interface StdioServersOptions {
  /** The sandbox's working directory (its volume). */
  cwd: string;
  /** The environment of the servers: the sandbox's proxy settings, never a secret. */
  env: Record<string, string>;
}

export class StdioServers {
  readonly #opts: StdioServersOptions;
  readonly #servers = new Map<string, Running>();
  readonly #calls = new Map<string, AbortController>();

  constructor(opts: StdioServersOptions) {
    this.#opts = opts;
  }

  /** Start the servers that are not running and list every server's tools. */
  async list(specs: StdioServerSpec[]): Promise<StdioServerTools[]> {
    return Promise.all(
      specs.map(async (spec): Promise<StdioServerTools> => {
        try {
          const client = await this.#client(spec);
          const tools: unknown[] = [];
          let cursor: string | undefined;
          for (let page = 0; page < MAX_TOOL_PAGES; page++) {
            const listed = await client.listTools(cursor ? { cursor } : {}, {
              timeout: START_TIMEOUT_MS,
            });
            tools.push(...listed.tools);
            cursor = listed.nextCursor;
            if (!cursor || tools.length >= 200) break;
          }
          return { id: spec.id, tools: tools.slice(0, 200) };
        } catch (err) {
          return { id: spec.id, error: errorText(err) };
        }
      }),
    );
  }

  /** Run one tool; the result as the server gave it (bounded), or an error. */
  async call(
    callId: string,
    spec: StdioServerSpec,
    tool: string,
    input: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<{ result?: CallToolResult; error?: string }> {
    const abort = new AbortController();
    this.#calls.set(callId, abort);
    try {
      const client = await this.#client(spec);
      const result = (await client.callTool({ name: tool, arguments: input }, undefined, {
        signal: abort.signal,
        timeout: timeoutMs,
      })) as CallToolResult;
      if (JSON.stringify(result).length > MAX_RESULT_BYTES)
        return { error: `the ${tool} result is larger than ${MAX_RESULT_BYTES} bytes` };
      return { result };
    } catch (err) {
      return { error: errorText(err) };
    } finally {
      this.#calls.delete(callId);
    }
  }

  cancel(callId: string): void {
    this.#calls.get(callId)?.abort(new Error("the turn ended"));
  }

  /** Stop every server (the sandbox's session ends). */
  async close(): Promise<void> {
    for (const abort of this.#calls.values()) abort.abort(new Error("the sandbox stopped"));
    const running = [...this.#servers.values()];
    this.#servers.clear();
    await Promise.allSettled(running.map((r) => r.client?.close()));
  }

  async #client(spec: StdioServerSpec): Promise<Client> {
    const key = JSON.stringify([spec.command, spec.args]);
    let r = this.#servers.get(spec.id);
    if (r && r.key !== key) {
      // The operator changed the server's command: the old one goes.
      await r.client
        ?.close()
        .catch(bestEffort(console, "replaced MCP server not closed", { server: spec.id }));
      r = undefined;
    }
    if (!r) {
      r = { key, failures: 0 };
      this.#servers.set(spec.id, r);
    }
    if (r.client) return r.client;
    if (r.starting) return r.starting;
    if (r.failures >= MAX_RESTARTS)
      throw new Error(
        `the ${spec.id} server stopped ${r.failures} times (last: ${r.lastError ?? "unknown"}); it stays stopped until the sandbox restarts`,
      );
    const entry = r;
    entry.starting = this.#start(spec, entry).finally(() => {
      entry.starting = undefined;
    });
    return entry.starting;
  }

  async #start(spec: StdioServerSpec, entry: Running): Promise<Client> {
    const transport = new StdioClientTransport({
      command: spec.command,
      args: spec.args,
      env: this.#opts.env,
      cwd: this.#opts.cwd,
      stderr: "ignore",
    });
    const client = new Client({ name: "lobu-worker", version: "1" });
    let up = false;
    client.onclose = () => {
      // A server that exits (crash, killed by a limit) is started again on next use, a few times.
      if (entry.client === client) entry.client = undefined;
      if (up && this.#servers.get(spec.id) === entry) {
        entry.failures++;
        entry.lastError = "it exited";
      }
    };
    try {
      await client.connect(transport, { timeout: START_TIMEOUT_MS });
    } catch (err) {
      entry.failures++;
      entry.lastError = errorText(err);
      await client
        .close()
        .catch(
          bestEffort(console, "MCP server that did not start not closed", { server: spec.id }),
        );
      throw new Error(`the ${spec.id} server did not start: ${entry.lastError}`);
    }
    up = true;
    entry.client = client;
    return client;
  }
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 1000);
}
