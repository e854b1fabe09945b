import { type AddressInfo, createServer } from "node:net";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  replyText,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Failover through a real gateway and sandboxed worker: the agent's primary
 * (OpenAI) answers 429, 529, 503 or cannot be reached, and the relay sends the
 * same call to the next fallback (Groq, then OpenRouter: OpenAI-compatible
 * presets pointed at the mock LLM), with that provider's own key. The turn
 * says so, the audit log records it, and usage is charged to the model that
 * answered.
 */

const OPENAI_KEY = "sk-openai-failover-primary-000000";
const GROQ_KEY = "gsk-groq-failover-fallback-111111";
const OPENROUTER_KEY = "sk-or-failover-second-2222222222";
let llm: MockLlm;
let gw: GatewayProcess;
let unreachable: GatewayProcess;

const TOML = [
  "[agents.default]",
  'provider = "openai"',
  'model = "gpt-4.1-mini"',
  'fallback = ["groq/llama-3.3-70b-versatile", "openrouter/openai/gpt-4.1-mini"]',
].join("\n");

beforeAll(async () => {
  llm = await startMockLlm();
  gw = await startGatewayProcess({
    toml: TOML,
    env: {
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: llm.openaiUrl,
      GROQ_API_KEY: GROQ_KEY,
      GROQ_BASE_URL: llm.openaiUrl,
      OPENROUTER_API_KEY: OPENROUTER_KEY,
      OPENROUTER_BASE_URL: llm.openaiUrl,
      ANTHROPIC_API_KEY: undefined,
    },
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await unreachable?.stop();
  await llm?.close();
});

function send(g: GatewayProcess, user: string, text: string) {
  return g.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, text }),
  });
}

async function failovers(g: GatewayProcess) {
  const res = await g.api("/api/v1/audit?action=model.failover&limit=100");
  return ((await res.json()) as { records: { details: Record<string, unknown> }[] }).records;
}

describe("failover", () => {
  it("moves a turn rate limited on its primary (429) to the first same-wire fallback, and says so", async () => {
    llm.when((r) => r.apiKey === OPENAI_KEY && r.lastUserText === "rate limited", {
      error: { status: 429, type: "rate_limit_error", message: "slow down" },
    });
    const events = await collectEvents(await send(gw, "fay", "rate limited"));
    expect(replyText(events)).toBe("echo: rate limited");
    const calls = llm.requests.filter((r) => r.lastUserText === "rate limited");
    // The primary once (no SDK retries: the worker never saw the 429), then Groq.
    expect(calls.map((r) => [r.api, r.apiKey, r.model])).toEqual([
      ["openai", OPENAI_KEY, "gpt-4.1-mini"],
      ["openai", GROQ_KEY, "llama-3.3-70b-versatile"],
    ]);
    const notice = events.find((e) => e.type === "notice") as { text: string } | undefined;
    expect(notice?.text).toContain("openai/gpt-4.1-mini failed (HTTP 429 (rate limited))");
    expect(notice?.text).toContain("groq/llama-3.3-70b-versatile");
    const usage = events.filter((e) => e.type === "usage") as { provider: string; model: string }[];
    expect(usage.at(-1)).toMatchObject({ provider: "groq", model: "llama-3.3-70b-versatile" });
    const records = await failovers(gw);
    expect(records.at(-1)?.details).toMatchObject({
      userKey: "api::fay",
      from: "openai/gpt-4.1-mini",
      to: "groq/llama-3.3-70b-versatile",
      status: 429,
    });
  });

  it("goes down the list: overloaded primary (529), failing first fallback (503), second fallback answers", async () => {
    llm.when((r) => r.apiKey === OPENAI_KEY && r.lastUserText === "overloaded", {
      error: { status: 529, type: "overloaded_error", message: "overloaded" },
    });
    llm.when((r) => r.apiKey === GROQ_KEY && r.lastUserText === "overloaded", {
      error: { status: 503, message: "unavailable" },
    });
    const events = await collectEvents(await send(gw, "fay", "overloaded"));
    expect(replyText(events)).toBe("echo: overloaded");
    const calls = llm.requests.filter((r) => r.lastUserText === "overloaded");
    expect(calls.map((r) => [r.apiKey, r.model])).toEqual([
      [OPENAI_KEY, "gpt-4.1-mini"],
      [GROQ_KEY, "llama-3.3-70b-versatile"],
      [OPENROUTER_KEY, "openai/gpt-4.1-mini"],
    ]);
    const notices = events
      .filter((e) => e.type === "notice")
      .map((e) => (e as { text: string }).text);
    expect(notices).toHaveLength(2);
    expect(notices[1]).toContain("groq/llama-3.3-70b-versatile failed (HTTP 503 (overloaded))");
    const tos = (await failovers(gw)).map((r) => r.details.to);
    expect(tos).toContain("openrouter/openai/gpt-4.1-mini");
    expect(tos.filter((t) => t === "groq/llama-3.3-70b-versatile")).toHaveLength(2);
  });

  it("passes on a 4xx about the request itself (no failover)", async () => {
    llm.when((r) => r.apiKey === OPENAI_KEY && r.lastUserText === "bad request", {
      error: { status: 400, message: "your request is malformed" },
    });
    const before = (await failovers(gw)).length;
    const events = await collectEvents(await send(gw, "fay", "bad request"));
    expect(events.at(-1)?.type).toBe("error");
    expect(
      llm.requests.filter((r) => r.lastUserText === "bad request").map((r) => r.apiKey),
    ).toEqual([OPENAI_KEY]);
    expect((await failovers(gw)).length).toBe(before);
  });

  it("fails over when the primary cannot be reached at all (connection refused)", async () => {
    unreachable = await startGatewayProcess({
      toml: TOML,
      env: {
        OPENAI_API_KEY: OPENAI_KEY,
        // Nothing listens there: the connection is refused.
        OPENAI_BASE_URL: `http://127.0.0.1:${await closedPort()}/v1`,
        GROQ_API_KEY: GROQ_KEY,
        GROQ_BASE_URL: llm.openaiUrl,
        OPENROUTER_API_KEY: undefined,
        ANTHROPIC_API_KEY: undefined,
      },
    });
    const events = await collectEvents(await send(unreachable, "gus", "primary is down"));
    expect(replyText(events)).toBe("echo: primary is down");
    expect(
      llm.requests.filter((r) => r.lastUserText === "primary is down").map((r) => r.apiKey),
    ).toEqual([GROQ_KEY]);
    const records = await failovers(unreachable);
    expect(records.at(-1)?.details).toMatchObject({
      status: 0,
      to: "groq/llama-3.3-70b-versatile",
    });
    expect(String(records.at(-1)?.details.reason)).toMatch(/^unreachable/);
  });
});
