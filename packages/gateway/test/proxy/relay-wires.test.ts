import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AssistantMessage, Context } from "@earendil-works/pi-ai";
import { streamSimple } from "@earendil-works/pi-ai/compat";
import { ModelRuntime } from "@earendil-works/pi-coding-agent";
import { type ModelSpec, parseConfig } from "@lobu/core";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { registerModel } from "@lobu/worker";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ProviderRegistry, providerSecretName } from "../../src/providers/registry.ts";
import type { UsageRecord } from "../../src/providers/relay.ts";
import type { RunningTurn } from "../../src/runtime/active-turns.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createWorld, viaProxy, type World } from "./fixture.ts";
import { relayPlaceholders, turnRelay } from "./relay-fixture.ts";

/**
 * The relay for the providers with their own wire formats and authentication
 * (Gemini, Vertex AI, Bedrock, Azure OpenAI, the Responses API), driven by pi's
 * own provider layer exactly as the worker registers it, against the provider
 * emulators: the real credential is added by the gateway (an API key header, an
 * access token minted from a service-account key, a SigV4 signature over the
 * exact body), only model calls pass, and usage comes from the provider's answer.
 */

const REAL_KEY = "real-provider-key-0000000000000001";
const AWS = { accessKeyId: "AKIAGATEWAYONLY00001", secretAccessKey: "gateway/only/secret/0001" };
const MODELS = {
  gemini: "gemini-2.5-flash",
  vertex: "gemini-2.5-pro",
  bedrock: "anthropic.claude-3-5-haiku-20241022-v1:0",
  azure: "my-gpt-deployment",
  responses: "gpt-5-mini",
} as const;
type Id = keyof typeof MODELS;
const API: Record<Id, ModelSpec["api"]> = {
  gemini: "google-generative-ai",
  vertex: "google-vertex",
  bedrock: "bedrock-converse-stream",
  azure: "azure-openai-responses",
  responses: "openai-responses",
};

let w: World;
let llm: MockLlm;
let port: number;
let tmp: string;
let serviceAccountKey: string;
const usage: UsageRecord[] = [];
const placeholder: Partial<Record<Id, string>> = {};
const TURN: RunningTurn = {
  turnId: "msg_1.1",
  messageId: "msg_1",
  agentId: "helper",
  userKey: "api::alice",
  origin: { platform: "api", workspace: "", channelId: "c", userId: "alice", isDirect: true },
  model: { provider: "gemini", id: MODELS.gemini },
};

beforeAll(async () => {
  w = await createWorld();
  llm = await startMockLlm({ apiKey: REAL_KEY, aws: [AWS] });
  tmp = await mkdtemp(join(tmpdir(), "lobu-relay-wires-"));
  serviceAccountKey = llm.googleServiceAccount({ projectId: "acme-ai" });
  const providers = new ProviderRegistry(
    parseConfig(`
[providers.gemini]
type = "gemini"
base_url = "${llm.url}"
[providers.vertex]
type = "vertex"
base_url = "${llm.url}"
region = "europe-west4"
[providers.bedrock]
type = "bedrock"
base_url = "${llm.url}"
region = "eu-west-1"
[providers.azure]
type = "azure"
base_url = "${llm.url}"
[providers.responses]
type = "openai-responses"
base_url = "${llm.url}/v1"
`),
    {},
  );
  const secret: Record<Id, string> = {
    gemini: REAL_KEY,
    vertex: serviceAccountKey,
    bedrock: `${AWS.accessKeyId}:${AWS.secretAccessKey}`,
    azure: REAL_KEY,
    responses: REAL_KEY,
  };
  Object.assign(placeholder, await relayPlaceholders(w, secret, TURN));
  const handler = await turnRelay(w, {
    providers,
    turn: TURN,
    models: Object.values(MODELS),
    recordUsage: (u) => usage.push(u),
  });
  ({ port } = await w.startProxy({ internal: handler }));
});
afterAll(async () => {
  await llm.close();
  await w.close();
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  llm.reset();
  usage.length = 0;
});

/** pi's model for a provider, registered as the worker does (model.ts), aimed at the relay. */
async function piModel(id: Id) {
  const runtime = await ModelRuntime.create({
    authPath: join(tmp, `${id}-auth.json`),
    modelsPath: null,
  });
  return registerModel(runtime, {
    providerId: `lobu-${id}`,
    api: API[id],
    id: MODELS[id],
    apiKey: placeholder[id]!,
    contextWindow: 100_000,
    maxTokens: 1000,
    baseUrl: `http://127.0.0.1:${port}/__lobu/llm/${id}`,
  });
}

const CONTEXT: Context = {
  systemPrompt: "You are terse.",
  messages: [{ role: "user", content: "weather in Oslo?", timestamp: Date.now() }],
  tools: [
    {
      name: "get_weather",
      description: "Weather for a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      } as never,
    },
  ],
};

async function turn(id: Id): Promise<AssistantMessage> {
  const model = await piModel(id);
  const stream = streamSimple(model, CONTEXT, { apiKey: placeholder[id]!, maxRetries: 0 } as never);
  for await (const _ of stream) {
    // drain
  }
  return stream.result();
}

const call = (path: string, headers: Record<string, string>, body?: unknown) =>
  viaProxy(port, `/__lobu/llm${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

describe.each(Object.keys(MODELS) as Id[])("%s through the relay with pi", (id) => {
  it("streams a tool call and a text answer with the gateway's credential; usage from the provider", async () => {
    llm.script(
      { toolCalls: [{ name: "get_weather", input: { city: "Oslo" } }] },
      { text: "Sunny in Oslo." },
    );
    const first = await turn(id);
    expect(first.errorMessage).toBeUndefined();
    expect(first.content.find((c) => c.type === "toolCall")).toMatchObject({
      name: "get_weather",
      arguments: { city: "Oslo" },
    });
    const second = await turn(id);
    expect(second.content.find((c) => c.type === "text")).toMatchObject({ text: "Sunny in Oslo." });

    const seen = llm.requests;
    expect(seen).toHaveLength(2);
    for (const req of seen) {
      // The placeholder never reaches the provider, and the real credential never came from the worker.
      expect(JSON.stringify(req.headers)).not.toContain(placeholder[id]!);
      if (id === "vertex") {
        expect(req.apiKey).toMatch(/^ya29\./);
        expect(req.path).toMatch(
          /^\/v1\/projects\/acme-ai\/locations\/europe-west4\/publishers\/google\/models\/gemini-2\.5-pro:streamGenerateContent\?alt=sse$/,
        );
      } else if (id === "bedrock") {
        // Accepted by the emulator only with a valid SigV4 signature of the gateway's key.
        expect(req.apiKey).toBe(AWS.accessKeyId);
        expect(req.headers.authorization).toMatch(
          /^AWS4-HMAC-SHA256 Credential=AKIAGATEWAYONLY00001\/\d{8}\/eu-west-1\/bedrock\//,
        );
      } else {
        expect(req.apiKey).toBe(REAL_KEY);
      }
      expect(req.model).toBe(MODELS[id]);
    }
    // Metered from the provider's own stream: the same counts pi read from it.
    expect(usage).toHaveLength(2);
    expect(usage[1]).toMatchObject({
      provider: id,
      model: MODELS[id],
      status: 200,
      inputTokens: second.usage.input,
      outputTokens: second.usage.output,
    });
    expect(usage[1]!.outputTokens).toBeGreaterThan(0);
  });
});

describe("provider authentication added by the relay", () => {
  it("mints a Vertex AI access token once and reuses it until it expires", async () => {
    llm.script({ text: "one" }, { text: "two" });
    const before = llm.googleTokensIssued;
    await turn("vertex");
    await turn("vertex");
    expect(llm.googleTokensIssued - before).toBeLessThanOrEqual(1);
    expect(new Set(llm.requests.map((r) => r.apiKey)).size).toBe(1);
  });

  it("drops the worker's own AWS headers and signs the exact body it forwards", async () => {
    llm.script({ text: "signed" });
    const res = await call(
      `/bedrock/model/${encodeURIComponent(MODELS.bedrock)}/converse`,
      {
        authorization: `Bearer ${placeholder.bedrock}`,
        "x-amz-security-token": "worker-made-this-up",
        "x-amz-date": "20000101T000000Z",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        // Another wire's credential header is not forwarded either.
        "x-goog-api-key": placeholder.bedrock!,
      },
      {
        messages: [{ role: "user", content: [{ text: "hi" }] }],
        inferenceConfig: { maxTokens: 10 },
      },
    );
    expect(res.status).toBe(200);
    const req = llm.requests[0]!;
    expect(req.headers["x-amz-security-token"]).toBeUndefined();
    expect(req.headers["x-goog-api-key"]).toBeUndefined();
    expect(req.headers["x-amz-content-sha256"]).not.toBe("UNSIGNED-PAYLOAD");
    expect(usage[0]).toMatchObject({ provider: "bedrock", outputTokens: expect.any(Number) });
    expect(usage[0]!.inputTokens).toBeGreaterThan(0);
  });

  it("sends Gemini keys only in the header: a key in the query is dropped", async () => {
    llm.script({ text: "ok" });
    const res = await call(
      `/gemini/v1beta/models/${MODELS.gemini}:generateContent?key=attacker-chosen`,
      { "x-goog-api-key": placeholder.gemini! },
      { contents: [{ role: "user", parts: [{ text: "hi" }] }] },
    );
    expect(res.status).toBe(200);
    expect(llm.requests[0]!.path).toBe(`/v1beta/models/${MODELS.gemini}:generateContent`);
    expect(llm.requests[0]!.apiKey).toBe(REAL_KEY);
    // Non-streamed answers are metered too.
    expect(usage[0]!.outputTokens).toBeGreaterThan(0);
  });

  it("tells the worker, in the provider's error shape, when the stored key is unusable", async () => {
    const ref: SecretRef = { name: providerSecretName("bedrock"), scope: { kind: "installation" } };
    await w.secrets.set(ref, "not-aws-credentials");
    try {
      const res = await call(
        `/bedrock/model/${encodeURIComponent(MODELS.bedrock)}/converse`,
        { authorization: `Bearer ${placeholder.bedrock}` },
        { messages: [{ role: "user", content: [{ text: "hi" }] }] },
      );
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body).message).toMatch(/Bedrock key must be AWS credentials/);
      expect(res.body).not.toContain("not-aws-credentials");
      expect(llm.requests).toHaveLength(0);
    } finally {
      await w.secrets.set(ref, `${AWS.accessKeyId}:${AWS.secretAccessKey}`);
    }
  });
});

describe("what the relay refuses", () => {
  it.each([
    ["gemini", "POST", "/v1beta/files"],
    ["gemini", "GET", "/v1beta/cachedContents"],
    ["gemini", "POST", `/v1beta/models/${MODELS.gemini}:batchGenerateContent`],
    ["gemini", "POST", "/v1beta/tunedModels"],
    [
      "vertex",
      "POST",
      `/v1/projects/other/locations/us-central1/publishers/google/models/${MODELS.vertex}:generateContent`,
    ],
    ["vertex", "GET", "/v1/projects/acme-ai/locations/europe-west4/endpoints"],
    ["bedrock", "POST", `/model/${encodeURIComponent(MODELS.bedrock)}/invoke`],
    ["bedrock", "POST", "/async-invoke"],
    ["bedrock", "GET", "/guardrails"],
    ["azure", "POST", "/openai/v1/files"],
    ["azure", "POST", "/openai/deployments/x/fine_tuning/jobs"],
    ["responses", "GET", "/responses/resp_123"],
    ["responses", "POST", "/files"],
  ] as const)("%s: %s %s is not a model call", async (id, method, path) => {
    const header: Record<Id, string> = {
      gemini: "x-goog-api-key",
      vertex: "x-goog-api-key",
      bedrock: "authorization",
      azure: "api-key",
      responses: "authorization",
    };
    const value = header[id] === "authorization" ? `Bearer ${placeholder[id]}` : placeholder[id]!;
    const res = await call(
      `/${id}${path}`,
      { [header[id]]: value },
      method === "GET" ? undefined : {},
    );
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/relays only model calls/);
    expect(llm.requests).toHaveLength(0);
  });

  it("bounds Gemini output and refuses more, or several candidates, or another model", async () => {
    llm.script({ text: "bounded" });
    const path = `/gemini/v1beta/models/${MODELS.gemini}:streamGenerateContent?alt=sse`;
    const auth = { "x-goog-api-key": placeholder.gemini! };
    const contents = [{ role: "user", parts: [{ text: "hi" }] }];
    expect((await call(path, auth, { contents })).status).toBe(200);
    expect(llm.requests[0]!.body.generationConfig).toEqual({ maxOutputTokens: 1000 });
    const over = await call(path, auth, { contents, generationConfig: { maxOutputTokens: 5000 } });
    expect(over.status).toBe(400);
    expect(JSON.parse(over.body).error).toMatchObject({ code: 400, status: "INVALID_ARGUMENT" });
    const many = await call(path, auth, { contents, generationConfig: { candidateCount: 4 } });
    expect(many.status).toBe(400);
    const other = await call(`/gemini/v1beta/models/gemini-ultra:streamGenerateContent`, auth, {
      contents,
    });
    expect(other.status).toBe(403);
    expect(other.body).toMatch(/may call/);
    expect(llm.requests).toHaveLength(1);
  });

  it("bounds Bedrock and Responses output the same way", async () => {
    const bedrock = await call(
      `/bedrock/model/${encodeURIComponent(MODELS.bedrock)}/converse-stream`,
      { authorization: `Bearer ${placeholder.bedrock}` },
      {
        messages: [{ role: "user", content: [{ text: "hi" }] }],
        inferenceConfig: { maxTokens: 99_999 },
      },
    );
    expect(bedrock.status).toBe(400);
    expect(JSON.parse(bedrock.body)).toMatchObject({
      __type: "ValidationException",
      message: expect.stringMatching(/over this agent's limit/),
    });
    const responses = await call(
      "/responses/responses",
      { authorization: `Bearer ${placeholder.responses}` },
      { model: MODELS.responses, input: "hi", max_output_tokens: 99_999 },
    );
    expect(responses.status).toBe(400);
    expect(llm.requests).toHaveLength(0);
  });

  it("gives the placeholder no value at the provider itself", async () => {
    const gemini = await fetch(`${llm.url}/v1beta/models/${MODELS.gemini}:generateContent`, {
      method: "POST",
      headers: { "x-goog-api-key": placeholder.gemini!, "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hi" }] }] }),
    });
    expect(gemini.status).toBe(400);
    const bedrock = await fetch(`${llm.url}/model/${encodeURIComponent(MODELS.bedrock)}/converse`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${placeholder.bedrock}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ messages: [{ role: "user", content: [{ text: "hi" }] }] }),
    });
    expect(bedrock.status).toBe(403);
  });
});
