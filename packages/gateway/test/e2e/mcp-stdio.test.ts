import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type GatewayProcess,
  type MockLlm,
  removeDataDir,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROBE_SERVER as SERVER } from "../mcp/stdio-fixtures.ts";
import { apiSettingsLink, eventReader, openSettings } from "../settings/helpers.ts";
import { writeSkill } from "../skills/fixtures.ts";
import { type AuditView, REAL_KEY } from "./sandboxes-kit.ts";

/**
 * stdio MCP servers end to end on the process tier: a real `lobu run`, a
 * skill that brings `[mcp.probe]` and ships the server (a small Node script
 * on the official SDK's McpServer + StdioServerTransport), the mock LLM
 * calling its tools over REST. The server must run inside the person's
 * sandbox (its hostname, its uid, no secret in its environment, no way to a
 * host the egress proxy does not allow), the gateway's policy (deny, ask)
 * and audit must apply, and one person's server is not another's.
 */

/** A project with the probe-kit skill (bringing [mcp.probe]) and a gateway run in it. */
async function startProject(driver: "process" | "virtual", llm: MockLlm): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-e2e-mcp-stdio-"));
  writeSkill(join(dir, "skills", "probe-kit"), "probe-kit", {
    description: "Probe tools. Use when asked to probe.",
    metadata: { "lobu.mcp": "probe" },
    files: { "server.mjs": SERVER },
  });
  try {
    return await startGatewayProcess({
      dataDir: dir,
      toml: [
        "[sandbox]",
        `driver = "${driver}"`,
        'idle_timeout = "10m"',
        ...(driver === "virtual" ? ["pool_size = 1"] : []),
        "[agents.default]",
        'skills = ["probe-kit"]',
        "[mcp.probe]",
        `command = ${JSON.stringify(process.execPath)}`,
        'args = ["/skills/probe-kit/server.mjs"]',
        'policy = "allow"',
        'tools = { remember = "ask", forbidden = "deny" }',
      ].join("\n"),
      env: {
        ANTHROPIC_API_KEY: REAL_KEY,
        ANTHROPIC_BASE_URL: llm.url,
        OPENAI_API_KEY: undefined,
      },
    });
  } catch (err) {
    removeDataDir(dir);
    throw err;
  }
}

/** How the settings page of `user` shows the probe server. */
async function probeStatus(gw: GatewayProcess, user: string): Promise<string | undefined> {
  const settings = await openSettings(gw, await apiSettingsLink(gw, user));
  const view = (await (await settings.call("GET", "/state")).json()) as {
    mcp: { servers: { id: string; status: string }[] };
  };
  return view.mcp.servers.find((s) => s.id === "probe")?.status;
}

let llm: MockLlm;
let gw: GatewayProcess;
let upstream: Server;
let upstreamUrl: string;
let upstreamHits = 0;

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    upstreamHits++;
    res.end("reached\n");
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  llm = await startMockLlm({ apiKey: REAL_KEY });
  gw = await startProject("process", llm);
});

afterAll(async () => {
  await gw?.stop();
  if (gw) removeDataDir(gw.dataDir);
  await llm?.close();
  await new Promise((r) => upstream?.close(r));
});

async function send(user: string, text: string) {
  return eventReader(
    await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user, channel: "dev", text }),
    }),
  );
}

/** The model answers `text` by calling `tool` with `input`, then repeats the result. */
function script(text: string, tool: string, input: Record<string, unknown> = {}) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: tool, input }] },
    (r) => ({ text: `RESULT: ${r.toolResults[0]?.content.slice(0, 1000)}` }),
  );
}

async function ask(user: string, text: string, tool: string, input: Record<string, unknown> = {}) {
  script(text, tool, input);
  return replyOf(await (await send(user, text)).rest());
}

/** The turn's answer (its `done` event's text). */
function replyOf(events: Record<string, unknown>[]): string | undefined {
  const last = events.at(-1);
  return last?.type === "done" ? String(last.text) : undefined;
}

function offered(text: string): string[] {
  const round = llm.requests.filter((r) => r.lastUserText === text).at(0);
  return ((round?.body.tools ?? []) as { name: string }[]).map((t) => t.name);
}

describe("stdio MCP servers inside the sandbox", () => {
  it("runs the server inside the person's sandbox, its network only through the egress proxy", async () => {
    const reply = await ask("ada", "probe please", "mcp__probe__probe", { url: upstreamUrl });
    expect(reply).toMatch(/^RESULT: /);
    const seen = JSON.parse(reply!.slice("RESULT: ".length)) as Record<string, unknown>;
    // The sandbox's own hostname and volume, not the host's.
    expect(seen.hostname).not.toBe(hostname());
    expect(seen.cwd).toBe("/workspace");
    expect(seen.proxy).toBe("set");
    expect(seen.secretInEnv).toBe(false);
    // 127.0.0.1 is not allowed by the egress proxy: the request never reached the host's server.
    expect(seen.reach).not.toBe("status 200");
    expect(upstreamHits).toBe(0);
    expect(offered("probe please")).toEqual(
      expect.arrayContaining(["mcp__probe__probe", "mcp__probe__remember", "mcp__probe__recall"]),
    );
  });

  it("applies the server's policy: deny hides the tool, ask shows the approval first", async () => {
    expect(offered("probe please")).not.toContain("mcp__probe__forbidden");
    // A model that calls it anyway does not reach the server.
    expect(await ask("ada", "call forbidden", "mcp__probe__forbidden")).not.toContain(
      "MUST NOT RUN",
    );

    script("remember kiwi", "mcp__probe__remember", { word: "kiwi" });
    const events = await send("ada", "remember kiwi");
    const approval = await events.until("approval_request");
    expect(approval).toMatchObject({ tool: "mcp__probe__remember" });
    await gw.api(`/api/v1/requests/${approval.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "approve" }),
    });
    expect(replyOf(await events.rest())).toBe("RESULT: remembered kiwi");
    // The server keeps running in the sandbox between turns.
    expect(await ask("ada", "recall please", "mcp__probe__recall")).toBe("RESULT: memory: [kiwi]");

    script("remember fig", "mcp__probe__remember", { word: "fig" });
    const denied = await send("ada", "remember fig");
    const second = await denied.until("approval_request");
    await gw.api(`/api/v1/requests/${second.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "deny" }),
    });
    expect(replyOf(await denied.rest())).not.toContain("remembered fig");
  });

  it("one person's server is not another's: each runs in its own sandbox", async () => {
    expect(await ask("bo", "recall for bo", "mcp__probe__recall")).toBe("RESULT: memory: []");
    expect(await ask("ada", "recall for ada", "mcp__probe__recall")).toBe("RESULT: memory: [kiwi]");
  });

  it("a server that crashes is started again on next use", async () => {
    const crashed = await ask("cy", "crash it", "mcp__probe__crash");
    expect(crashed).toMatch(/RESULT: .*(closed|failed|exit)/i);
    expect(await ask("cy", "recall after crash", "mcp__probe__recall")).toBe("RESULT: memory: []");
  });

  it("the settings page shows the server as running inside the sandbox", async () => {
    expect(await probeStatus(gw, "ada")).toBe("stdio");
  });

  it("audits every call with the person, server, tool and outcome, never the payload", async () => {
    const res = await gw.api("/api/v1/audit?action=mcp.call&limit=100");
    const { records } = (await res.json()) as { records: AuditView[] };
    const lines = records.map(
      (a) => `${a.actor} ${a.details?.server} ${a.details?.tool} ${a.details?.outcome}`,
    );
    expect(lines).toEqual(
      expect.arrayContaining([
        "api::ada probe probe ok",
        "api::ada probe remember ok",
        "api::bo probe recall ok",
        "api::cy probe crash failed",
      ]),
    );
    expect(lines.some((l) => l.includes("forbidden"))).toBe(false);
    for (const r of records) {
      expect(Object.keys(r.details ?? {}).sort()).toEqual(["outcome", "server", "tool"]);
      expect(JSON.stringify(r)).not.toContain("kiwi");
    }
  });
});

describe("stdio MCP servers on the virtual tier", () => {
  let vllm: MockLlm;
  let vgw: GatewayProcess;

  beforeAll(async () => {
    vllm = await startMockLlm({ apiKey: REAL_KEY });
    vgw = await startProject("virtual", vllm);
  });
  afterAll(async () => {
    await vgw?.stop();
    if (vgw) removeDataDir(vgw.dataDir);
    await vllm?.close();
  });

  it("says plainly that the virtual tier runs no programs, in the turn and on the settings page", async () => {
    vllm.when(
      (r) => r.lastUserText === "probe on virtual",
      { toolCalls: [{ name: "mcp__probe__unavailable", input: {} }] },
      (r) => ({ text: `RESULT: ${r.toolResults[0]?.content}` }),
    );
    const res = await vgw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "ada", channel: "dev", text: "probe on virtual" }),
    });
    const reply = replyOf(await eventReader(res).rest());
    expect(reply).toContain("virtual tier, a JavaScript shell that cannot run programs");
    const tools = vllm.requests.find((r) => r.lastUserText === "probe on virtual")?.body.tools as
      | { name: string }[]
      | undefined;
    expect(tools?.map((t) => t.name).filter((n) => n.startsWith("mcp__"))).toEqual([
      "mcp__probe__unavailable",
    ]);
    expect(await probeStatus(vgw, "ada")).toBe("stdio_unavailable");
  });
});
