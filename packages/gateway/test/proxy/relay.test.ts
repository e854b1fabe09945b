import { parseConfig } from "@lobu/core";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ProviderRegistry, providerSecretName } from "../../src/providers/registry.ts";
import {
  createProviderRelay,
  type ModelCall,
  type RelayRefusal,
  relayKey,
  type UsageRecord,
} from "../../src/providers/relay.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createWorld, TRUSTING, viaProxy, type World } from "./fixture.ts";
import { startUpstream, type Upstream } from "./upstream.ts";

/**
 * The LLM relay behind `/__lobu/llm/<provider>` on a sandbox's egress endpoint:
 * which placeholders buy the real key, which calls it forwards, and token usage
 * read from the provider's own answer. The provider is a local recording server.
 */

const ANTHROPIC_KEY = "sk-ant-relay-real-key-000000000001";
const OPENAI_KEY = "sk-openai-relay-real-key-0000000002";
const anthropic: SecretRef = {
  name: providerSecretName("anthropic"),
  scope: { kind: "installation" },
};
const openai: SecretRef = { name: providerSecretName("openai"), scope: { kind: "installation" } };

let w: World;
let provider: Upstream;
let port: number;
const usage: UsageRecord[] = [];
/** The budget decision for the next model calls (admitted when null), and the calls it saw. */
let refusal: RelayRefusal | null = null;
const admitted: ModelCall[] = [];
let onRecorded: (() => void) | undefined;
/** Relay placeholders of TRUSTING, by provider. */
const relay: Record<string, string> = {};

const call = (path: string, headers: Record<string, string>, body?: unknown) =>
  viaProxy(port, `/__lobu/llm${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

beforeAll(async () => {
  w = await createWorld();
  provider = await startUpstream();
  const providers = new ProviderRegistry(parseConfig(""), {
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${provider.port}`,
    OPENAI_BASE_URL: `http://127.0.0.1:${provider.port}/v1`,
  });
  for (const [id, ref, key] of [
    ["anthropic", anthropic, ANTHROPIC_KEY],
    ["openai", openai, OPENAI_KEY],
  ] as const) {
    await w.secrets.set(ref, key);
    relay[id] = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["127.0.0.1"],
      locations: ["header"],
      purpose: "relay",
    });
  }
  const handler = createProviderRelay({
    providers,
    log: pino({ level: "silent" }),
    async credentialFor(sandboxId, providerId, placeholder) {
      const value = await relayKey(w, sandboxId, providerId, placeholder);
      return value === null ? null : { value, agentId: "helper" };
    },
    recordUsage: (u) => {
      usage.push(u);
      onRecorded?.();
    },
    admit: async (c) => {
      admitted.push(c);
      return refusal;
    },
  });
  ({ port } = await w.startProxy({ internal: handler }));
});
afterAll(async () => {
  await provider.close();
  await w.close();
});
beforeEach(() => {
  provider.received.length = 0;
  provider.routes.length = 0;
  usage.length = 0;
  admitted.length = 0;
  refusal = null;
});

describe("LLM relay", () => {
  it("forwards a model call with the real key and meters the provider's usage (Anthropic, SSE)", async () => {
    const events = [
      `event: message_start\ndata: ${JSON.stringify({ type: "message_start", message: { usage: { input_tokens: 10, cache_read_input_tokens: 5, output_tokens: 1 } } })}\n\n`,
      `event: message_delta\ndata: ${JSON.stringify({ type: "message_delta", usage: { output_tokens: 7 } })}\n\n`,
      "event: ping\ndata: not json\n\n",
    ];
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/messages?beta=true") return false;
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const e of events) res.write(e);
      res.end();
      return true;
    });
    const res = await call(
      "/anthropic/v1/messages?beta=true",
      { "x-api-key": relay.anthropic!, "anthropic-version": "2023-06-01" },
      { model: "claude-test", max_tokens: 5 },
    );
    expect(res.status).toBe(200);
    expect(res.body).toBe(events.join(""));
    const got = provider.received[0]!;
    expect(got.method).toBe("POST");
    expect(got.headers["x-api-key"]).toBe(ANTHROPIC_KEY);
    expect(got.headers["anthropic-version"]).toBe("2023-06-01");
    expect(JSON.parse(got.body)).toEqual({ model: "claude-test", max_tokens: 5 });
    expect(usage).toEqual([
      expect.objectContaining({
        sandboxId: TRUSTING,
        agentId: "helper",
        provider: "anthropic",
        model: "claude-test",
        status: 200,
        inputTokens: 15,
        outputTokens: 7,
      }),
    ]);
  });

  it("counts a streamed call as soon as its last event passes, before the connection closes", async () => {
    // The worker ends its turn on message_stop: the call must be counted by then
    // (the usage report, and the budget check of the next call, come after it).
    const recorded = new Promise<void>((resolve) => {
      onRecorded = resolve;
    });
    let countedBeforeClose = false;
    provider.routes.push((req, res) => {
      if (!req.url?.startsWith("/v1/messages")) return false;
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(
        `event: message_delta\ndata: ${JSON.stringify({ type: "message_delta", usage: { input_tokens: 4, output_tokens: 2 } })}\n\n`,
      );
      res.write(`event: message_stop\ndata: ${JSON.stringify({ type: "message_stop" })}\n\n`);
      const timeout = new Promise((r) => setTimeout(r, 5_000));
      void Promise.race([recorded, timeout]).then(() => {
        countedBeforeClose = usage.length === 1;
        res.end();
      });
      return true;
    });
    const res = await call(
      "/anthropic/v1/messages",
      { "x-api-key": relay.anthropic!, "anthropic-version": "2023-06-01" },
      { model: "claude-test", max_tokens: 5 },
    );
    onRecorded = undefined;
    expect(res.status).toBe(200);
    expect(countedBeforeClose).toBe(true);
    expect(usage).toEqual([expect.objectContaining({ inputTokens: 4, outputTokens: 2 })]);
  });

  it("forwards OpenAI-compatible calls with a Bearer key and meters a JSON answer", async () => {
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/chat/completions") return false;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ usage: { prompt_tokens: 3, completion_tokens: 4 } }));
      return true;
    });
    const res = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "gpt-test" },
    );
    expect(res.status).toBe(200);
    expect(provider.received[0]!.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(usage).toEqual([
      expect.objectContaining({
        provider: "openai",
        model: "gpt-test",
        inputTokens: 3,
        outputTokens: 4,
      }),
    ]);
    // Model listings go through too; an answer without usage counts no tokens.
    expect((await call("/openai/models", { authorization: `Bearer ${relay.openai}` })).status).toBe(
      200,
    );
    expect(provider.received.at(-1)?.url).toBe("/v1/models");
    expect(usage.at(-1)).toMatchObject({ provider: "openai", inputTokens: 0, outputTokens: 0 });
  });

  it("refuses everything a key could do besides model calls, naming what it relays", async () => {
    for (const [method, path] of [
      ["POST", "/anthropic/v1/files"],
      ["POST", "/anthropic/v1/messages/batches"],
      ["GET", "/anthropic/v1/messages"],
      ["DELETE", "/anthropic/v1/models/x"],
      ["POST", "/anthropic/v1/messages/../files"],
      ["POST", "/openai/images/generations"],
      ["POST", "/openai/fine_tuning/jobs"],
    ] as const) {
      const res = await viaProxy(port, `/__lobu/llm${path}`, {
        method,
        headers: { "x-api-key": relay.anthropic!, authorization: `Bearer ${relay.openai}` },
        ...(method === "POST" ? { body: "{}" } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body).toContain("Lobu relays only model calls to");
    }
    expect(provider.received).toEqual([]);
  });

  it("does not let dot segments climb out of the relay", async () => {
    const res = await call("/anthropic/../../admin", { "x-api-key": relay.anthropic! });
    expect(res.status).toBe(404);
    expect(res.body).toContain("no relay at /__lobu/admin");
    expect(provider.received).toEqual([]);
  });

  it("takes only a relay placeholder issued to this sandbox for this provider", async () => {
    const proxyPlaceholder = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: anthropic,
      hosts: ["127.0.0.1"],
    });
    const foreign = await w.placeholders.issue({
      sandboxId: "sb_other",
      secret: anthropic,
      hosts: ["127.0.0.1"],
      purpose: "relay",
    });
    const body = { model: "m" };
    for (const [what, key] of [
      ["no key", ""],
      ["the real key itself", ANTHROPIC_KEY],
      ["a proxy placeholder of the same secret", proxyPlaceholder],
      ["another sandbox's relay placeholder", foreign],
      ["the other provider's relay placeholder", relay.openai!],
    ] as const) {
      const res = await call("/anthropic/v1/messages", key ? { "x-api-key": key } : {}, body);
      expect(res.status, what).toBe(401);
      expect(res.body).toContain("this sandbox has no credential for this provider");
    }
    const unknown = await call("/nope/v1/messages", { "x-api-key": relay.anthropic! }, body);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain('unknown provider \\"nope\\"');
    expect(provider.received).toEqual([]);
    expect(usage).toEqual([]);
  });
});

describe("LLM relay budget admission", () => {
  it("asks before every model call, never for listings, and answers a refusal with a provider-shaped 429", async () => {
    provider.routes.push((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(req.url?.includes("models") ? { data: [] } : { usage: {} }));
      return true;
    });
    expect(
      (
        await call(
          "/openai/chat/completions",
          { authorization: `Bearer ${relay.openai}` },
          { model: "gpt-x" },
        )
      ).status,
    ).toBe(200);
    expect(admitted).toEqual([
      { sandboxId: TRUSTING, agentId: "helper", provider: "openai", model: "gpt-x" },
    ]);
    expect((await call("/openai/models", { authorization: `Bearer ${relay.openai}` })).status).toBe(
      200,
    );
    expect(admitted).toHaveLength(1);

    refusal = {
      message: 'You have used your daily budget of 10 tokens for agent "helper"',
      resetsAt: Date.now() + 90_000,
    };
    const received = provider.received.length;
    const anthropicRes = await call(
      "/anthropic/v1/messages",
      { "x-api-key": relay.anthropic!, "anthropic-version": "2023-06-01" },
      { model: "claude-x", max_tokens: 5 },
    );
    expect(anthropicRes.status).toBe(429);
    expect(anthropicRes.headers["x-should-retry"]).toBe("false");
    expect(Number(anthropicRes.headers["retry-after"])).toBeGreaterThan(60);
    expect(JSON.parse(anthropicRes.body)).toEqual({
      type: "error",
      error: {
        type: "rate_limit_error",
        message: `Lobu usage quota exceeded: ${refusal.message}.`,
      },
    });
    const openaiRes = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "gpt-x" },
    );
    expect(openaiRes.status).toBe(429);
    expect(JSON.parse(openaiRes.body).error).toMatchObject({
      code: "insufficient_quota",
      message: expect.stringContaining("daily budget of 10 tokens"),
    });
    // Nothing refused reached the provider or was metered.
    expect(provider.received.length).toBe(received);
    expect(usage).toHaveLength(2);
  });
});
