import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createLogger, inputDigest, LobuConfig } from "@lobu/core";
import { type Gateway, type GatewayToolContext, startGateway } from "@lobu/gateway";
import { type MockLlm, removeDataDir, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { eventReader, postClaim, sessionCookieOf } from "../settings/helpers.ts";

/**
 * Tools that run in the gateway are the gateway's to allow: it applies the
 * agent's policy and asks the person itself, whatever the worker says. Two
 * gateways in this process (tools register through the public API of the seam,
 * Gateway.tools): one with real sandboxed workers and the mock LLM, one whose
 * "worker" is a hostile fixture speaking the control protocol directly.
 */

const KEY = "sk-ant-gateway-tools-0123456789abcdef";
const RAW_WORKER = resolve(import.meta.dirname, "fixtures/raw-worker.ts");

interface Ran {
  tool: string;
  input: unknown;
  ctx: Pick<GatewayToolContext, "agentId" | "userKey" | "messageId">;
}

/** Register the test's gateway tools on `gw`; every run is recorded in `ran`. */
function registerTools(gw: Gateway, ran: Ran[]): void {
  const record = (tool: string) => async (input: unknown, ctx: GatewayToolContext) => {
    ran.push({
      tool,
      input,
      ctx: { agentId: ctx.agentId, userKey: ctx.userKey, messageId: ctx.messageId },
    });
    return `${tool} done`;
  };
  gw.tools.register({
    name: "notify_team",
    description: "Post a message to a team channel.",
    input: z.strictObject({ channel: z.string(), message: z.string() }),
    execute: record("notify_team"),
  });
  gw.tools.register({
    name: "wipe_prod",
    description: "Delete the production database.",
    input: z.strictObject({ confirm: z.boolean() }),
    execute: record("wipe_prod"),
  });
  gw.tools.register({
    name: "lookup",
    description: "Look a word up.",
    input: z.strictObject({ word: z.string() }),
    defaultPolicy: "allow",
    execute: record("lookup"),
  });
}

interface Started {
  gw: Gateway;
  token: string;
  dataDir: string;
  ran: Ran[];
}

async function start(
  config: Record<string, unknown>,
  extra: Partial<Parameters<typeof startGateway>[0]> = {},
): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), "lobu-gwtools-"));
  const gw = await startGateway({
    config: LobuConfig.parse(config),
    dataDir,
    port: 0,
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url },
    log: createLogger("test", { level: "silent" }),
    ...extra,
  });
  const token = readFileSync(gw.summary.adminTokenFile, "utf8").trim();
  const ran: Ran[] = [];
  registerTools(gw, ran);
  return { gw, token, dataDir, ran };
}

function api(s: Started, path: string, init: RequestInit = {}) {
  return fetch(`${s.gw.url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${s.token}`,
      "content-type": "application/json",
      ...(init.headers as Record<string, string> | undefined),
    },
  });
}

function send(s: Started, user: string, text: string, channel = "tools") {
  return api(s, "/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel, text }),
  });
}

function answer(s: Started, requestId: string, choice: string) {
  return api(s, `/api/v1/requests/${requestId}/answer`, {
    method: "POST",
    body: JSON.stringify({ choice }),
  });
}

let llm: MockLlm;
let real: Started;
let raw: Started;

const POLICY = { tools: { notify_team: "ask", wipe_prod: "deny" } };
/** A channel with its own tool set (`[channels.*] tools`): everything else is hidden there. */
const NARROW = { "api::narrow": { tools: ["read", "notify_team"] } };

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  real = await start({
    sandbox: { idle_timeout: "10m" },
    agents: { default: { policy: POLICY } },
    channels: NARROW,
  });
  raw = await start(
    {
      sandbox: { driver: "host", allow_unsandboxed: true, idle_timeout: "10m" },
      agents: { default: { policy: POLICY } },
      channels: NARROW,
    },
    { worker: { entry: RAW_WORKER } },
  );
});

afterAll(async () => {
  for (const s of [real, raw]) {
    await s?.gw.close();
    if (s) removeDataDir(s.dataDir);
  }
  await llm?.close();
});

describe("gateway tools with a real worker", () => {
  it("offers the tools the policy does not deny to the model", async () => {
    llm.when((r) => r.lastUserText === "what can you do", { text: "Plenty." });
    const events = eventReader(await send(real, "ada", "what can you do"));
    await events.rest();
    const round = llm.requests.filter((r) => r.lastUserText === "what can you do").at(-1);
    const tools = ((round?.body.tools ?? []) as { name: string }[]).map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(["notify_team", "lookup", "bash"]));
    expect(tools).not.toContain("wipe_prod");
  });

  it("'ask' pauses until Approve on the REST channel, then runs exactly what was shown", async () => {
    const input = { channel: "ops", message: `deploy done${" ".repeat(300)}; and more` };
    llm.when(
      (r) => r.lastUserText === "tell the team",
      { toolCalls: [{ name: "notify_team", input }] },
      (r) => ({ text: `Tool said: ${r.toolResults[0]?.content}` }),
    );
    const events = eventReader(await send(real, "ada", "tell the team"));
    const card = await events.until("approval_request");
    expect(card).toMatchObject({
      tool: "notify_team",
      display: "channel: ops\nmessage: deploy done⟦␠×300⟧; and more",
      inputDigest: inputDigest(input),
    });
    // Nothing ran, and the model got nothing back, while the card waits.
    expect(real.ran).toEqual([]);
    expect(
      llm.requests.filter((r) => r.lastUserText === "tell the team").at(-1)?.toolResults,
    ).toEqual([]);

    expect((await answer(real, card.requestId as string, "approve")).status).toBe(200);
    const rest = await events.rest();
    expect(rest).toContainEqual(
      expect.objectContaining({ type: "request_resolved", requestId: card.requestId }),
    );
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "Tool said: notify_team done" });
    expect(real.ran).toEqual([
      {
        tool: "notify_team",
        input,
        ctx: expect.objectContaining({ agentId: "default", userKey: "api::ada" }),
      },
    ]);
  });

  it("Deny on the card: the gateway does not run it and the model is told", async () => {
    real.ran.length = 0;
    llm.when(
      (r) => r.lastUserText === "tell them again",
      { toolCalls: [{ name: "notify_team", input: { channel: "ops", message: "again" } }] },
      (r) => ({ text: r.toolResults[0]?.isError ? "Not sent." : "Sent." }),
    );
    const events = eventReader(await send(real, "ada", "tell them again"));
    const card = await events.until("approval_request");
    await answer(real, card.requestId as string, "deny");
    expect((await events.rest()).at(-1)).toMatchObject({ type: "done", text: "Not sent." });
    expect(real.ran).toEqual([]);
  });

  it("Always allow is remembered for the person, and the settings page lists the tool", async () => {
    real.ran.length = 0;
    const input = { channel: "ops", message: "always" };
    for (const text of ["always tell them", "tell them unasked", "cy tells them"]) {
      llm.when(
        (r) => r.lastUserText === text,
        { toolCalls: [{ name: "notify_team", input }] },
        (r) => ({ text: `Tool said: ${r.toolResults[0]?.content}` }),
      );
    }
    const first = eventReader(await send(real, "bea", "always tell them"));
    const card = await first.until("approval_request");
    await answer(real, card.requestId as string, "always");
    expect((await first.rest()).at(-1)).toMatchObject({ text: "Tool said: notify_team done" });
    const second = await eventReader(await send(real, "bea", "tell them unasked")).rest();
    expect(second.some((e) => e.type === "approval_request")).toBe(false);
    expect(real.ran.map((r) => r.ctx.userKey)).toEqual(["api::bea", "api::bea"]);

    const link = (await (
      await api(real, "/api/v1/settings-links", {
        method: "POST",
        body: JSON.stringify({ user: "bea", channel: "tools" }),
      })
    ).json()) as { url: string };
    const cookie = sessionCookieOf(await postClaim(link.url))!;
    const state = (await (
      await fetch(`${real.gw.url}/settings/api/state`, { headers: { cookie } })
    ).json()) as { tools: { name: string; agentPolicy: string; effective: string }[] };
    expect(state.tools).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "notify_team", agentPolicy: "ask", effective: "allow" }),
        expect.objectContaining({ name: "wipe_prod", agentPolicy: "deny", effective: "deny" }),
      ]),
    );
    // Someone else is still asked.
    const other = eventReader(await send(real, "cy", "cy tells them"));
    const asked = await other.until("approval_request");
    await answer(real, asked.requestId as string, "deny");
    await other.rest();
  });

  it("'allow' runs without asking", async () => {
    real.ran.length = 0;
    llm.when(
      (r) => r.lastUserText === "look it up",
      { toolCalls: [{ name: "lookup", input: { word: "lobu" } }] },
      (r) => ({ text: `Tool said: ${r.toolResults[0]?.content}` }),
    );
    const all = await eventReader(await send(real, "ada", "look it up")).rest();
    expect(all.some((e) => e.type === "approval_request")).toBe(false);
    expect(all.at(-1)).toMatchObject({ type: "done", text: "Tool said: lookup done" });
    expect(real.ran.map((r) => r.tool)).toEqual(["lookup"]);
  });
});

describe("a channel's tool set", () => {
  it("offers only the channel's tools to the model", async () => {
    llm.when((r) => r.lastUserText === "what can you do here", { text: "Little." });
    const events = eventReader(await send(real, "ada", "what can you do here", "narrow"));
    await events.rest();
    const round = llm.requests.filter((r) => r.lastUserText === "what can you do here").at(-1);
    const tools = ((round?.body.tools ?? []) as { name: string }[]).map((t) => t.name).sort();
    // ask_user and request_capability only ask the person: they are not the channel's to hide.
    expect(tools.filter((t) => !["ask_user", "request_capability"].includes(t))).toEqual([
      "notify_team",
      "read",
    ]);
  });

  it("refuses a hidden gateway tool the worker calls anyway, even one allowed elsewhere", async () => {
    raw.ran.length = 0;
    const events = eventReader(
      await send(
        raw,
        "eve",
        JSON.stringify({ calls: [{ tool: "lookup", input: { word: "x" } }] }),
        "narrow",
      ),
    );
    const done = (await events.rest()).at(-1) as { type: string; text: string };
    expect(done.type).toBe("done");
    const reply = JSON.parse(done.text) as { results: { ok: boolean; error?: { code: string } }[] };
    expect(reply.results).toEqual([
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ code: "denied_by_policy" }),
      }),
    ]);
    expect(raw.ran).toEqual([]);
  });
});

describe("gateway tools with a hostile worker", () => {
  /** Run one scripted turn on the raw worker; its reply is the gateway's answers. */
  async function script(
    user: string,
    body: Record<string, unknown>,
    onApproval?: (card: Record<string, unknown>) => Promise<void>,
  ) {
    const events = eventReader(await send(raw, user, JSON.stringify(body)));
    if (onApproval) await onApproval(await events.until("approval_request"));
    const done = (await events.rest()).at(-1) as { type: string; text: string };
    expect(done.type).toBe("done");
    return JSON.parse(done.text) as {
      results: { ok: boolean; output?: string; error?: { code: string } }[];
      late: { ok: boolean; error?: { code: string } }[];
    };
  }

  it("'deny' is refused by the gateway when the worker calls it directly", async () => {
    raw.ran.length = 0;
    const reply = await script("eve", {
      calls: [{ tool: "wipe_prod", input: { confirm: true }, extra: { approved: true } }],
    });
    expect(reply.results).toEqual([
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ code: "denied_by_policy" }),
      }),
    ]);
    expect(raw.ran).toEqual([]);
  });

  it("'ask' is asked by the gateway even when the worker claims an approval", async () => {
    raw.ran.length = 0;
    const input = { channel: "ops", message: "hi" };
    let asked: Record<string, unknown> | undefined;
    const reply = await script(
      "eve",
      {
        calls: [
          {
            tool: "notify_team",
            input,
            extra: {
              approved: true,
              answer: { choice: "approve" },
              inputDigest: inputDigest(input),
            },
          },
        ],
      },
      async (card) => {
        asked = card;
        expect(raw.ran).toEqual([]);
        await answer(raw, card.requestId as string, "deny");
      },
    );
    expect(asked).toMatchObject({ tool: "notify_team", display: "channel: ops\nmessage: hi" });
    expect(reply.results).toEqual([
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ code: "not_approved" }),
      }),
    ]);
    expect(raw.ran).toEqual([]);

    // Approved by the person, it runs (once, with the input shown).
    const approved = await script("eve", { calls: [{ tool: "notify_team", input }] }, (card) =>
      answer(raw, card.requestId as string, "approve").then(() => {}),
    );
    expect(approved.results).toEqual([
      {
        t: "gateway_tool_result",
        sandboxId: expect.any(String),
        callId: expect.any(String),
        ok: true,
        output: "notify_team done",
      },
    ]);
    expect(raw.ran.map((r) => r.input)).toEqual([input]);
  });

  it("refuses calls that do not come from the running turn", async () => {
    raw.ran.length = 0;
    const first = await script("mal", {
      calls: [{ tool: "lookup", input: { word: "x" }, turnId: "msg_forged.1" }],
      after: [{ tool: "lookup", input: { word: "after the end" } }],
    });
    expect(first.results).toEqual([
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ code: "not_in_turn" }),
      }),
    ]);
    // The call sent after turn_end was answered with a refusal (reported with the next turn).
    const second = await script("mal", {});
    expect(second.late).toEqual([
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ code: "not_in_turn" }),
      }),
    ]);
    expect(raw.ran).toEqual([]);
  });

  it("refuses unknown tools and input that does not fit the schema", async () => {
    raw.ran.length = 0;
    const reply = await script("mal", {
      calls: [
        { tool: "format_disk", input: {} },
        { tool: "lookup", input: { word: 42 } },
        { tool: "lookup", input: { word: "ok", extra: "not in the schema" } },
      ],
    });
    expect(reply.results.map((r) => r.error?.code)).toEqual([
      "unknown_tool",
      "invalid_input",
      "invalid_input",
    ]);
    expect(raw.ran).toEqual([]);
  });

  it("records every call in the audit log", async () => {
    const res = await api(raw, "/api/v1/audit?action=gateway_tool.call&limit=50");
    const records = (
      (await res.json()) as { records: { details: { tool: string; outcome: string } }[] }
    ).records;
    expect(records.map((r) => r.details.outcome)).toEqual(
      expect.arrayContaining([
        "denied_by_policy",
        "not_approved",
        "ran",
        "not_in_turn",
        "unknown_tool",
      ]),
    );
  });
});
