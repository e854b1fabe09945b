import { gzipSync } from "node:zlib";
import { parseConfig } from "@lobu/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ModelLimits } from "../../src/providers/model-limits.ts";
import { KEYLESS, ProviderRegistry, providerSecretName } from "../../src/providers/registry.ts";
import type { ModelCall, RelayRefusal, UsageRecord } from "../../src/providers/relay.ts";
import { ActiveTurns, type RunningTurn } from "../../src/runtime/active-turns.ts";
import type { TurnBinding } from "../../src/secrets/placeholders.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createWorld, TRUSTING, viaProxy, type World } from "./fixture.ts";
import { turnRelay } from "./relay-fixture.ts";
import { startUpstream, type Upstream } from "./upstream.ts";

/**
 * The LLM relay behind `/__lobu/llm/<provider>` on a sandbox's egress endpoint:
 * which placeholders buy the real key (the relay placeholder of the turn running
 * on that sandbox, nothing else), which calls it forwards and with what limits
 * (model, output tokens, parallel calls), and token usage read from the
 * provider's own answer, charged to the turn's sender. The provider is a local
 * recording server; the turn registry and placeholders are the gateway's own.
 */

const ANTHROPIC_KEY = "sk-ant-relay-real-key-000000000001";
const OPENAI_KEY = "sk-openai-relay-real-key-0000000002";
const anthropic: SecretRef = {
  name: providerSecretName("anthropic"),
  scope: { kind: "installation" },
};
const openai: SecretRef = { name: providerSecretName("openai"), scope: { kind: "installation" } };
const ollama: SecretRef = { name: providerSecretName("ollama"), scope: { kind: "installation" } };

let w: World;
let provider: Upstream;
let port: number;
const usage: UsageRecord[] = [];
/** The budget decision for the next model calls (admitted when null), and the calls it saw. */
let refusal: RelayRefusal | null = null;
const admitted: ModelCall[] = [];
let onRecorded: (() => void) | undefined;
/** Relay placeholders of TRUSTING's running turn, by provider. */
const relay: Record<string, string> = {};
let turns: ActiveTurns;
const ALICE = "api::alice";
const TURN: RunningTurn = {
  turnId: "msg_1.1",
  messageId: "msg_1",
  agentId: "helper",
  userKey: ALICE,
  origin: { platform: "api", workspace: "", channelId: "c", userId: "alice", isDirect: true },
  model: { provider: "anthropic", id: "claude-test" },
};
/** The helper agent's relay limits (lobu.toml `models`, `max_output_tokens`, `max_parallel_model_calls`). */
const LIMITS: ModelLimits = {
  models: ["gpt-test", "m", "family-*"],
  maxOutputTokens: 100,
  maxParallelCalls: 2,
};

function issueRelay(sandboxId: string, secret: SecretRef, turn?: TurnBinding): Promise<string> {
  return w.placeholders.issue({
    sandboxId,
    secret,
    hosts: ["127.0.0.1"],
    locations: ["header"],
    purpose: "relay",
    ...(turn ? { turn } : {}),
  });
}

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
    // A local server set up without a key (registry.ts, KEYLESS).
    OLLAMA_BASE_URL: `http://127.0.0.1:${provider.port}/ollama/v1`,
  });
  for (const [id, ref, key] of [
    ["anthropic", anthropic, ANTHROPIC_KEY],
    ["openai", openai, OPENAI_KEY],
    ["ollama", ollama, KEYLESS],
  ] as const) {
    await w.secrets.set(ref, key);
    relay[id] = await issueRelay(TRUSTING, ref, TURN);
  }
  turns = new ActiveTurns({ revoker: w.placeholders });
  const handler = await turnRelay(w, {
    providers,
    turn: TURN,
    turns,
    limits: LIMITS,
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
        userKey: ALICE,
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

  it("calls again, once, when the provider closes the connection without answering", async () => {
    // What a kept-alive connection closed by the provider's idle timeout as it is reused looks like.
    let closed = 0;
    provider.routes.push((req) => {
      if (req.url !== "/v1/messages" || closed >= 1) return false;
      closed++;
      req.socket.destroy();
      return true;
    });
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/messages") return false;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ usage: { input_tokens: 2, output_tokens: 1 } }));
      return true;
    });
    const res = await call(
      "/anthropic/v1/messages",
      { "x-api-key": relay.anthropic!, "anthropic-version": "2023-06-01" },
      { model: "claude-test", max_tokens: 5 },
    );
    expect(res.status).toBe(200);
    expect(provider.received.filter((r) => r.url === "/v1/messages")).toHaveLength(2);
    expect(usage).toEqual([expect.objectContaining({ inputTokens: 2, outputTokens: 1 })]);
    // Closed every time: the second failure is the answer (a 502), not a third call.
    provider.routes.length = 0;
    provider.received.length = 0;
    provider.routes.push((req) => {
      if (req.url !== "/v1/messages") return false;
      req.socket.destroy();
      return true;
    });
    const failed = await call(
      "/anthropic/v1/messages",
      { "x-api-key": relay.anthropic!, "anthropic-version": "2023-06-01" },
      { model: "claude-test", max_tokens: 5 },
    );
    expect(failed.status).toBe(502);
    expect(provider.received.filter((r) => r.url === "/v1/messages")).toHaveLength(2);
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
    // A call that leaves its output open gets the agent's limit.
    expect(JSON.parse(provider.received[0]!.body)).toEqual({
      model: "gpt-test",
      max_completion_tokens: LIMITS.maxOutputTokens,
    });
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
    // Another sandbox's relay placeholder, while that sandbox's own turn runs.
    const otherTurn = { ...TURN, turnId: "msg_other.1", messageId: "msg_other" };
    const foreign = await issueRelay("sb_other", anthropic, otherTurn);
    await turns.begin("sb_other", otherTurn);
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
    await turns.end("sb_other", otherTurn.turnId);
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
          { model: "gpt-test" },
        )
      ).status,
    ).toBe(200);
    expect(admitted).toEqual([
      {
        sandboxId: TRUSTING,
        agentId: "helper",
        userKey: ALICE,
        provider: "openai",
        model: "gpt-test",
      },
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
      { model: "claude-test", max_tokens: 5 },
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
      { model: "gpt-test" },
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

describe("LLM relay: only during the turn", () => {
  const body = { model: "claude-test", max_tokens: 5 };
  const ask = (key: string) => call("/anthropic/v1/messages", { "x-api-key": key }, body);

  it("refuses the turn's own relay placeholder once the turn has ended, and forgets it", async () => {
    expect((await ask(relay.anthropic!)).status).toBe(200);
    await turns.end(TRUSTING, TURN.turnId);
    const after = await ask(relay.anthropic!);
    expect(after.status).toBe(401);
    expect(JSON.parse(after.body)).toMatchObject({
      type: "error",
      error: { type: "authentication_error" },
    });
    expect(after.body).toContain("only during the turn they were issued for");
    // Revoked at the end of the turn, not merely shut out.
    expect(await w.placeholders.lookup(relay.anthropic!)).toBeNull();
    expect(provider.received).toHaveLength(1);

    // The next turn gets its own placeholder; the old one stays worthless during it.
    const next = { ...TURN, turnId: "msg_2.1", messageId: "msg_2" };
    const fresh = await issueRelay(TRUSTING, anthropic, next);
    await turns.begin(TRUSTING, next);
    expect(fresh).not.toBe(relay.anthropic);
    expect((await ask(relay.anthropic!)).status).toBe(401);
    expect((await ask(fresh)).status).toBe(200);
    await turns.end(TRUSTING, next.turnId);

    // Restore the suite's turn.
    for (const [id, ref] of [
      ["anthropic", anthropic],
      ["openai", openai],
    ] as const)
      relay[id] = await issueRelay(TRUSTING, ref, TURN);
    await turns.begin(TRUSTING, TURN);
  });

  it("refuses another person's relay placeholder in a shared sandbox, and one issued without a turn", async () => {
    // Bob's turn is running on the (shared) sandbox; Alice's turn left a placeholder behind.
    const bob = { ...TURN, turnId: "msg_bob.1", messageId: "msg_bob", userKey: "api::bob" };
    const aliceLeftover = relay.anthropic!;
    const bobs = await issueRelay(TRUSTING, anthropic, {
      turnId: bob.turnId,
      userKey: bob.userKey,
    });
    const untied = await issueRelay(TRUSTING, anthropic);
    await turns.begin(TRUSTING, bob);
    try {
      for (const [what, key] of [
        ["alice's placeholder in bob's turn", aliceLeftover],
        ["a relay placeholder bound to no turn", untied],
      ] as const) {
        const res = await ask(key);
        expect(res.status, what).toBe(401);
      }
      expect((await ask(bobs)).status).toBe(200);
      // Charged to the sender of the running turn.
      expect(usage.map((u) => u.userKey)).toEqual(["api::bob"]);
    } finally {
      await turns.end(TRUSTING, bob.turnId);
      await w.placeholders.revoke(untied);
      relay.anthropic = await issueRelay(TRUSTING, anthropic, TURN);
      relay.openai = await issueRelay(TRUSTING, openai, TURN);
      await turns.begin(TRUSTING, TURN);
    }
  });
});

describe("LLM relay: presets", () => {
  it("sends a keyless local server no credential at all, not the placeholder nor the marker", async () => {
    relay.ollama = await issueRelay(TRUSTING, ollama, TURN);
    provider.routes.push((req, res) => {
      if (req.url !== "/ollama/v1/chat/completions") return false;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ usage: { prompt_tokens: 2, completion_tokens: 1 } }));
      return true;
    });
    const res = await call(
      "/ollama/chat/completions",
      { authorization: `Bearer ${relay.ollama}` },
      { model: "gpt-test" },
    );
    expect(res.status).toBe(200);
    expect(provider.received[0]!.headers.authorization).toBeUndefined();
    expect(provider.seen()).not.toContain(KEYLESS);
    expect(provider.seen()).not.toContain(relay.ollama!);
    expect(usage).toEqual([expect.objectContaining({ provider: "ollama", inputTokens: 2 })]);
  });

  it("allows a model named by a prefix pattern of the agent's models, and no other", async () => {
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/chat/completions") return false;
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
      return true;
    });
    const ok = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "family-large" },
    );
    expect(ok.status).toBe(200);
    const refused = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "family" },
    );
    expect(refused.status).toBe(403);
    expect(provider.received).toHaveLength(1);
  });
});

describe("LLM relay: what a model call may ask for", () => {
  const anthropicCall = (body: unknown) =>
    call("/anthropic/v1/messages", { "x-api-key": relay.anthropic! }, body);

  it("forwards only the turn's model and the agent's allowlist; others get a permission error", async () => {
    for (const body of [
      { model: "claude-opus-expensive", max_tokens: 5 },
      { max_tokens: 5 },
      { model: ["claude-test"], max_tokens: 5 },
    ]) {
      const res = await anthropicCall(body);
      expect(res.status, JSON.stringify(body)).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({
        type: "error",
        error: { type: "permission_error" },
      });
      expect(res.body).toContain(
        'may call \\"claude-test\\", \\"gpt-test\\", \\"m\\", \\"family-*\\" only',
      );
      expect(res.body).toContain("models = [...] under [agents.helper]");
    }
    const counted = await call(
      "/anthropic/v1/messages/count_tokens",
      { "x-api-key": relay.anthropic! },
      { model: "other" },
    );
    expect(counted.status).toBe(403);
    expect(provider.received).toEqual([]);
    // The allowlist (`models`) is honoured.
    expect((await anthropicCall({ model: "m", max_tokens: 5 })).status).toBe(200);
    expect((await anthropicCall({ model: "claude-test", max_tokens: 5 })).status).toBe(200);
  });

  it("refuses output requests over the agent's limit (Anthropic and OpenAI shapes) and more than one choice", async () => {
    const over = await anthropicCall({ model: "claude-test", max_tokens: 1_000_000 });
    expect(over.status).toBe(400);
    expect(JSON.parse(over.body)).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error" },
    });
    expect(over.body).toContain(
      "max_tokens 1000000 is over this agent's limit of 100 output tokens per call (max_output_tokens under [agents.helper] in lobu.toml)",
    );
    for (const body of [
      { model: "gpt-test", max_tokens: 101 },
      { model: "gpt-test", max_completion_tokens: 5000 },
      { model: "gpt-test", max_completion_tokens: 50, max_tokens: 500 },
      { model: "gpt-test", max_tokens: "50" },
      { model: "gpt-test", max_tokens: 10, n: 8 },
    ]) {
      const res = await call(
        "/openai/chat/completions",
        { authorization: `Bearer ${relay.openai}` },
        body,
      );
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.parse(res.body), JSON.stringify(body)).toMatchObject({
        error: { type: "invalid_request_error", code: "invalid_request_error" },
      });
    }
    expect(provider.received).toEqual([]);
    // At the limit is fine; a call without a bound gets the limit.
    expect((await anthropicCall({ model: "claude-test", max_tokens: 100 })).status).toBe(200);
    expect((await anthropicCall({ model: "claude-test" })).status).toBe(200);
    expect(JSON.parse(provider.received.at(-1)!.body)).toEqual({
      model: "claude-test",
      max_tokens: 100,
    });
  });

  it("forwards exactly what it checked: no duplicate keys or malformed JSON reach the provider", async () => {
    const raw = '{"model":"claude-opus-expensive","max_tokens":5,"model":"claude-test"}';
    const res = await viaProxy(port, "/__lobu/llm/anthropic/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": relay.anthropic! },
      body: raw,
    });
    expect(res.status).toBe(200);
    expect(provider.received[0]!.body).toBe('{"model":"claude-test","max_tokens":5}');
    const bad = await viaProxy(port, "/__lobu/llm/anthropic/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": relay.anthropic! },
      body: '{"model":"claude-test", max_tokens: 5',
    });
    expect(bad.status).toBe(400);
    expect(provider.received).toHaveLength(1);
  });

  it("bounds model calls in flight per sandbox: the next one gets 429 in the provider's shape", async () => {
    const held: (() => void)[] = [];
    provider.routes.push((_req, res) => {
      held.push(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      });
      return true;
    });
    const body = { model: "claude-test", max_tokens: 5 };
    const inFlight = [anthropicCall(body), anthropicCall(body)];
    await until(() => provider.received.length === LIMITS.maxParallelCalls);
    const refused = await anthropicCall(body);
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(JSON.parse(refused.body)).toMatchObject({
      type: "error",
      error: { type: "rate_limit_error" },
    });
    expect(refused.body).toContain("already has 2 model calls in flight");
    const openaiRefused = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "gpt-test", max_tokens: 5 },
    );
    expect(openaiRefused.status).toBe(429);
    expect(JSON.parse(openaiRefused.body)).toMatchObject({
      error: { type: "rate_limit_error" },
    });
    expect(provider.received).toHaveLength(2);
    for (const release of held) release();
    expect((await Promise.all(inFlight)).map((r) => r.status)).toEqual([200, 200]);
    provider.routes.length = 0;
    // Slots are given back when calls finish.
    expect((await anthropicCall(body)).status).toBe(200);
  });
});

describe("LLM relay: what comes back", () => {
  it("never hands the sandbox the key it added, whatever the provider echoes", async () => {
    const basic = Buffer.from(`x:${OPENAI_KEY}`).toString("base64");
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/chat/completions") return false;
      // A provider (or a proxy in front of it) that echoes what it received.
      res.writeHead(401, "Bad credentials " + String(req.headers.authorization), {
        "content-type": "application/json",
        "x-echo": String(req.headers.authorization),
      });
      const half = Math.floor(OPENAI_KEY.length / 2);
      res.write(`{"error":{"message":"Incorrect API key: ${OPENAI_KEY.slice(0, half)}`);
      res.end(`${OPENAI_KEY.slice(half)} (basic ${basic})"}}`);
      return true;
    });
    const res = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "gpt-test", max_tokens: 5 },
    );
    expect(provider.received[0]!.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(res.status).toBe(401);
    const seen = JSON.stringify({ body: res.body, headers: res.headers });
    expect(seen).not.toContain(OPENAI_KEY);
    expect(seen).not.toContain(basic.slice(4, -4));
    // The sandbox sees its own placeholder where the key was.
    expect(res.body).toContain(relay.openai!);
    expect(res.headers["x-echo"]).toBe(`Bearer ${relay.openai}`);
  });

  it("asks for an uncompressed answer, and decodes one compressed anyway: metered, the worker gets text", async () => {
    const answer = {
      choices: [{ message: { content: "hi" } }],
      usage: { prompt_tokens: 7, completion_tokens: 2 },
    };
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/chat/completions") return false;
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
      res.end(gzipSync(JSON.stringify(answer)));
      return true;
    });
    const res = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}`, "accept-encoding": "gzip, br" },
      { model: "gpt-test" },
    );
    expect(provider.received[0]!.headers["accept-encoding"]).toBe("identity");
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBeUndefined();
    expect(JSON.parse(res.body)).toEqual(answer);
    expect(usage).toEqual([expect.objectContaining({ inputTokens: 7, outputTokens: 2 })]);
  });

  it("passes a provider's redirect to the worker instead of following it", async () => {
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/chat/completions") return false;
      res.writeHead(307, { location: `http://127.0.0.1:${provider.port}/v1/elsewhere` });
      res.end();
      return true;
    });
    const res = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "gpt-test" },
    );
    expect(res.status).toBe(307);
    expect(provider.received.map((r) => r.url)).toEqual(["/v1/chat/completions"]);
  });

  it("passes on a bodiless answer labelled with a coding, with nothing to decode", async () => {
    provider.routes.push((req, res) => {
      if (req.url !== "/v1/chat/completions") return false;
      res.writeHead(204, { "content-encoding": "gzip" });
      res.end();
      return true;
    });
    const res = await call(
      "/openai/chat/completions",
      { authorization: `Bearer ${relay.openai}` },
      { model: "gpt-test" },
    );
    expect(res.status).toBe(204);
    expect(res.body).toBe("");
  });

  it("refuses an answer in a coding it cannot undo: nothing in it could be redacted", async () => {
    for (const coding of ["x-unknown", "gzip, br"]) {
      provider.routes.push((req, res) => {
        if (req.url !== "/v1/chat/completions") return false;
        res.writeHead(200, { "content-type": "application/json", "content-encoding": coding });
        res.end(`echo ${OPENAI_KEY}`);
        return true;
      });
      const res = await call(
        "/openai/chat/completions",
        { authorization: `Bearer ${relay.openai}` },
        { model: "gpt-test" },
      );
      expect(res.status).toBe(502);
      expect(res.body).toContain("cannot decode");
      expect(JSON.stringify(res)).not.toContain(OPENAI_KEY);
      provider.routes.length = 0;
    }
  });
});

/** Wait for a condition the test itself causes (no timing assumption; the suite's timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 5));
}
