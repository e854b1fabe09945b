import {
  createLogger,
  type GatewayToWorker,
  LobuConfig,
  type StdioServerTools,
  type WorkerToGateway,
} from "@lobu/core";
import { describe, expect, it } from "vitest";
import type { McpCallContext } from "../../src/mcp/service.ts";
import { NO_PROGRAMS, StdioMcpTools } from "../../src/mcp/stdio.ts";
import type { WorkerConnection } from "../../src/sandbox/driver.ts";

/**
 * The gateway's side of stdio MCP servers against a worker that does not play
 * along (the worker is untrusted: it answers the control protocol itself
 * here): whatever it reports is validated and bounded, only the servers the
 * gateway asked for count, its results are checked, a turn that ends cancels
 * the call in the sandbox, and the virtual tier says plainly that it runs no
 * programs.
 */

const config = LobuConfig.parse({
  mcp: {
    probe: { command: "node", args: ["/skills/p/server.mjs"], tools: { "rm_*": "deny" } },
    other: { command: "npx", args: ["-y", "other-mcp"] },
  },
});

/** A worker connection whose answers the test writes. */
function hostileWorker(answer: (msg: GatewayToWorker) => WorkerToGateway | undefined) {
  const listeners = new Set<(m: WorkerToGateway) => void>();
  const sent: GatewayToWorker[] = [];
  const connection: WorkerConnection = {
    pid: 1,
    send(msg) {
      sent.push(msg);
      const reply = answer(msg);
      if (reply) queueMicrotask(() => deliver(listeners, reply));
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return { connection, sent, emit: (m: WorkerToGateway) => deliver(listeners, m) };
}

function deliver(listeners: Set<(m: WorkerToGateway) => void>, m: WorkerToGateway) {
  for (const l of [...listeners]) l(m);
}

function tools(
  worker: ReturnType<typeof hostileWorker>,
  opts: { servers?: string[]; driver?: string; exited?: Promise<unknown> } = {},
) {
  const audit: { action: string; details?: Record<string, unknown> }[] = [];
  const service = new StdioMcpTools({
    config,
    mcp: { stdioServersFor: async () => opts.servers ?? ["probe"] },
    sandboxes: {
      ensure: async () => ({ connection: worker.connection, exited: opts.exited }),
      get: () => ({ connection: worker.connection, exited: opts.exited }),
    },
    tier: { driver: opts.driver ?? "process" },
    audit: { record: (e) => void audit.push(e) },
    log: createLogger("test", { level: "silent" }),
  });
  const list = () =>
    service.toolsFor({ id: "default", skills: [] }, "api::ada", {
      conversationId: "sb1",
      key: { agentId: "default", platform: "api", channelId: "dev", userId: "ada" },
    } as never);
  return { list, audit };
}

const listReply =
  (servers: StdioServerTools[]) =>
  (msg: GatewayToWorker): WorkerToGateway | undefined =>
    msg.t === "mcp_stdio_list"
      ? { t: "mcp_stdio_tools", sandboxId: msg.sandboxId, requestId: msg.requestId, servers }
      : undefined;

function ctx(signal = new AbortController().signal): McpCallContext {
  return {
    agentId: "default",
    userKey: "api::ada",
    signal,
    ask: async () => null,
    progress: () => {},
  };
}

describe("stdio MCP tools from an untrusted worker", () => {
  it("keeps only valid, bounded tools of the servers it asked for", async () => {
    const schema = { type: "object", properties: { q: { type: "string" } } };
    const worker = hostileWorker(
      listReply([
        {
          id: "probe",
          tools: [
            { name: "search", description: "Search", inputSchema: schema },
            { name: "search", description: "again", inputSchema: schema },
            { name: "../../etc", inputSchema: schema },
            { name: "x".repeat(129), inputSchema: schema },
            { name: "huge", inputSchema: { type: "object", description: "y".repeat(30_000) } },
            { name: "not_object", inputSchema: { type: "string" } },
            { name: "Weird.Name-1", description: "z".repeat(10_000), inputSchema: schema },
            { name: "rm_all", inputSchema: schema },
            "not a tool",
          ],
        },
        // A server nobody asked for: ignored.
        { id: "other", tools: [{ name: "sneaky", inputSchema: schema }] },
      ]),
    );
    const offered = await tools(worker).list();
    expect(offered.map((t) => t.spec.name)).toEqual([
      "mcp__probe__search",
      expect.stringMatching(/^mcp__probe__weird_name_1_[0-9a-f]{8}$/),
      "mcp__probe__rm_all",
    ]);
    expect(offered.map((t) => t.defaultPolicy)).toEqual(["ask", "ask", "deny"]);
    for (const t of offered) expect(t.spec.description.length).toBeLessThanOrEqual(4000);
    // The gateway named the command itself: the worker only ran what lobu.toml says.
    expect(worker.sent[0]).toMatchObject({
      t: "mcp_stdio_list",
      servers: [{ id: "probe", command: "node", args: ["/skills/p/server.mjs"] }],
    });
  });

  it("a server that could not start is a tool that says why", async () => {
    const worker = hostileWorker(listReply([{ id: "probe", error: "npx: registry refused" }]));
    const [only] = await tools(worker).list();
    expect(only?.spec.name).toBe("mcp__probe__unavailable");
    expect(await only?.execute({}, ctx())).toContain("npx: registry refused");
  });

  it("a sandbox that stops while listing makes its servers unavailable, not a hung turn", async () => {
    const worker = hostileWorker(() => undefined);
    const [only] = await tools(worker, { exited: Promise.resolve() }).list();
    expect(only?.spec.name).toBe("mcp__probe__unavailable");
    expect(await only?.execute({}, ctx())).toContain("the sandbox stopped");
  });

  it("the virtual tier says it runs no programs, without asking any worker", async () => {
    const worker = hostileWorker(() => undefined);
    const [only] = await tools(worker, { driver: "virtual" }).list();
    expect(only?.spec.name).toBe("mcp__probe__unavailable");
    expect(await only?.execute({}, ctx())).toContain(NO_PROGRAMS);
    expect(worker.sent).toEqual([]);
  });

  it("checks the worker's results, audits them and cancels a call when the turn ends", async () => {
    const schema = { type: "object" };
    let result: unknown = { content: [{ type: "text", text: "fine" }] };
    const worker = hostileWorker((msg) => {
      if (msg.t === "mcp_stdio_list")
        return listReply([{ id: "probe", tools: [{ name: "go", inputSchema: schema }] }])(msg);
      if (msg.t === "mcp_stdio_call" && result !== "hang")
        return { t: "mcp_stdio_result", sandboxId: msg.sandboxId, callId: msg.callId, result };
      return undefined;
    });
    const { list, audit } = tools(worker);
    const [go] = await list();
    expect(await go!.execute({ a: 1 }, ctx())).toBe("fine");

    result = { content: "not a list" };
    await expect(go!.execute({}, ctx())).rejects.toThrow(/not a tool result/);

    result = { content: [{ type: "text", text: "x".repeat(200_000) }] };
    expect((await go!.execute({}, ctx())).length).toBeLessThanOrEqual(50_000);

    result = "hang";
    const turn = new AbortController();
    const pending = go!.execute({}, ctx(turn.signal));
    turn.abort();
    await expect(pending).rejects.toThrow(/turn ended/);
    const calls = worker.sent.filter((m) => m.t === "mcp_stdio_call");
    expect(worker.sent.at(-1)).toEqual({
      t: "mcp_stdio_cancel",
      sandboxId: "sb1",
      callId: (calls.at(-1) as { callId: string }).callId,
    });
    expect(audit.map((a) => a.details?.outcome)).toEqual(["ok", "failed", "ok", "cancelled"]);
    for (const a of audit) expect(JSON.stringify(a)).not.toContain("xxxx");
  });

  it("a result for another sandbox or call is not taken", async () => {
    const worker = hostileWorker((msg) =>
      msg.t === "mcp_stdio_list"
        ? listReply([{ id: "probe", tools: [{ name: "go", inputSchema: { type: "object" } }] }])(
            msg,
          )
        : undefined,
    );
    const [go] = await tools(worker).list();
    const turn = new AbortController();
    const pending = go!.execute({}, ctx(turn.signal));
    const call = worker.sent.at(-1) as { callId: string };
    const forged = { content: [{ type: "text", text: "forged" }] };
    worker.emit({ t: "mcp_stdio_result", sandboxId: "sb2", callId: call.callId, result: forged });
    worker.emit({ t: "mcp_stdio_result", sandboxId: "sb1", callId: "other", result: forged });
    turn.abort();
    await expect(pending).rejects.toThrow(/turn ended/);
  });
});
