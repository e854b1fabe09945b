import {
  BedrockRuntimeClient,
  ConverseStreamCommand,
  type ConverseStreamOutput,
} from "@aws-sdk/client-bedrock-runtime";
import { GoogleGenAI } from "@google/genai";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { Sha256 } from "@smithy/core/checksum";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { SignatureV4 } from "@smithy/signature-v4";
import { JWT } from "google-auth-library";
import OpenAI, { AzureOpenAI } from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

/**
 * The provider emulators (Gemini, Vertex AI, Bedrock, Azure OpenAI, the
 * Responses API) driven by each provider's official SDK: if the SDK parses the
 * stream, the tool call and the error, the emulator speaks the real wire format.
 */

const AWS = { accessKeyId: "AKIAMOCKEMULATOR0001", secretAccessKey: "mock/secret/key/0001" };
let llm: MockLlm;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: "real-key", aws: [AWS] });
});
afterAll(() => llm.close());
beforeEach(() => llm.reset());

const TOOL = { toolCalls: [{ name: "get_weather", input: { city: "Oslo" } }] };

describe("Gemini API emulator (@google/genai)", () => {
  const ai = () => new GoogleGenAI({ apiKey: "real-key", httpOptions: { baseUrl: llm.url } });

  it("streams text and a function call with usageMetadata", async () => {
    llm.script({ text: "Hello from Gemini" }, TOOL);
    let text = "";
    let usage: unknown;
    for await (const chunk of await ai().models.generateContentStream({
      model: "gemini-2.5-flash",
      contents: "hi",
    })) {
      text += chunk.text ?? "";
      usage = chunk.usageMetadata ?? usage;
    }
    expect(text).toBe("Hello from Gemini");
    expect(usage).toMatchObject({
      promptTokenCount: expect.any(Number),
      candidatesTokenCount: expect.any(Number),
    });
    const req = llm.requests[0]!;
    expect(req.path).toBe("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    expect(req.model).toBe("gemini-2.5-flash");
    expect(req.apiKey).toBe("real-key");

    const res = await ai().models.generateContent({
      model: "gemini-2.5-flash",
      contents: "weather?",
      config: { tools: [{ functionDeclarations: [{ name: "get_weather" }] }] },
    });
    expect(res.functionCalls?.[0]).toMatchObject({ name: "get_weather", args: { city: "Oslo" } });
  });

  it("refuses a wrong key the way Google does", async () => {
    const bad = new GoogleGenAI({ apiKey: "wrong", httpOptions: { baseUrl: llm.url } });
    await expect(
      bad.models.generateContent({ model: "gemini-2.5-flash", contents: "hi" }),
    ).rejects.toThrow(/API key not valid/);
  });
});

describe("Vertex AI emulator (@google/genai, service-account tokens)", () => {
  /** The access token a service account's key buys at the emulated token endpoint. */
  function authClient(keyJson: string): JWT {
    const key = JSON.parse(keyJson) as {
      client_email: string;
      private_key: string;
      token_uri: string;
    };
    const jwt = new JWT({
      email: key.client_email,
      key: key.private_key,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    // google-auth-library posts to Google's token URL whatever the key says.
    jwt.transporter.interceptors.request.add({
      resolved: async (config) => {
        if (String(config.url) === "https://oauth2.googleapis.com/token")
          config.url = new URL(key.token_uri);
        return config;
      },
    });
    return jwt;
  }

  it("takes tokens minted for the project's service account, and only those", async () => {
    const key = llm.googleServiceAccount({ projectId: "acme-prod" });
    const ai = new GoogleGenAI({
      vertexai: true,
      project: "acme-prod",
      location: "europe-west4",
      googleAuthOptions: { authClient: authClient(key) },
      httpOptions: { baseUrl: llm.url },
    });
    llm.script({ text: "Hello from Vertex" });
    let text = "";
    for await (const chunk of await ai.models.generateContentStream({
      model: "gemini-2.5-flash",
      contents: "hi",
    })) {
      text += chunk.text ?? "";
    }
    expect(text).toBe("Hello from Vertex");
    expect(llm.googleTokensIssued).toBe(1);
    const req = llm.requests.at(-1)!;
    expect(req.path).toMatch(
      /^\/v1beta1\/projects\/acme-prod\/locations\/europe-west4\/publishers\/google\/models\/gemini-2\.5-flash:streamGenerateContent/,
    );
    expect(req.apiKey).toMatch(/^ya29\./);

    // Another project's account, a made-up token: refused.
    const other = new GoogleGenAI({
      vertexai: true,
      project: "acme-prod",
      location: "europe-west4",
      googleAuthOptions: {
        authClient: authClient(llm.googleServiceAccount({ projectId: "other" })),
      },
      httpOptions: { baseUrl: llm.url },
    });
    await expect(
      other.models.generateContent({ model: "gemini-2.5-flash", contents: "x" }),
    ).rejects.toThrow(/PERMISSION_DENIED|denied/);
    const forged = await fetch(
      `${llm.url}/v1/projects/acme-prod/locations/europe-west4/publishers/google/models/g:generateContent`,
      {
        method: "POST",
        headers: { authorization: "Bearer ya29.forged", "content-type": "application/json" },
        body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "x" }] }] }),
      },
    );
    expect(forged.status).toBe(401);
  });

  it("refuses an assertion signed by a key it does not know", async () => {
    const key = JSON.parse(llm.googleServiceAccount()) as Record<string, string>;
    const { generateKeyPairSync } = await import("node:crypto");
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const forgedKey = JSON.stringify({
      ...key,
      private_key: stranger.export({ type: "pkcs8", format: "pem" }).toString(),
    });
    await expect(authClient(forgedKey).getAccessToken()).rejects.toThrow(/invalid_grant/);
  });
});

describe("Bedrock emulator (@aws-sdk/client-bedrock-runtime, SigV4)", () => {
  const client = (credentials = AWS) =>
    new BedrockRuntimeClient({
      endpoint: llm.url,
      region: "eu-west-1",
      credentials,
      requestHandler: new NodeHttpHandler(),
      maxAttempts: 1,
    });
  const MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0";

  it("streams text and a tool call in event-stream frames, with usage in metadata", async () => {
    llm.script({ text: "Hello from Bedrock" }, TOOL);
    const events: ConverseStreamOutput[] = [];
    const out = await client().send(
      new ConverseStreamCommand({
        modelId: MODEL,
        messages: [{ role: "user", content: [{ text: "hi" }] }],
      }),
    );
    for await (const e of out.stream!) events.push(e);
    const text = events.map((e) => e.contentBlockDelta?.delta?.text ?? "").join("");
    expect(text).toBe("Hello from Bedrock");
    expect(events.at(-1)?.metadata?.usage).toMatchObject({
      inputTokens: expect.any(Number),
      outputTokens: expect.any(Number),
    });
    const req = llm.requests[0]!;
    expect(req.model).toBe(MODEL);
    expect(req.apiKey).toBe(AWS.accessKeyId);

    const tool = await client().send(
      new ConverseStreamCommand({
        modelId: MODEL,
        messages: [{ role: "user", content: [{ text: "w?" }] }],
      }),
    );
    const toolEvents: ConverseStreamOutput[] = [];
    for await (const e of tool.stream!) toolEvents.push(e);
    expect(
      toolEvents.find((e) => e.contentBlockStart)?.contentBlockStart?.start?.toolUse?.name,
    ).toBe("get_weather");
    const input = toolEvents.map((e) => e.contentBlockDelta?.delta?.toolUse?.input ?? "").join("");
    expect(JSON.parse(input)).toEqual({ city: "Oslo" });
    expect(toolEvents.find((e) => e.messageStop)?.messageStop?.stopReason).toBe("tool_use");
  });

  it("refuses a wrong secret, a bearer token and a body changed after signing", async () => {
    await expect(
      client({ ...AWS, secretAccessKey: "wrong" }).send(
        new ConverseStreamCommand({
          modelId: MODEL,
          messages: [{ role: "user", content: [{ text: "x" }] }],
        }),
      ),
    ).rejects.toThrow(/signature we calculated does not match/);
    const url = new URL(`${llm.url}/model/${encodeURIComponent(MODEL)}/converse`);
    const bearer = await fetch(url, {
      method: "POST",
      headers: { authorization: "Bearer lobu_placeholder", "content-type": "application/json" },
      body: "{}",
    });
    expect(bearer.status).toBe(403);
    const signer = new SignatureV4({
      service: "bedrock",
      region: "eu-west-1",
      credentials: AWS,
      sha256: Sha256,
    });
    const signed = await signer.sign({
      method: "POST",
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: [{ text: "cheap" }] }] }),
    });
    const swapped = await fetch(url, {
      method: "POST",
      headers: signed.headers,
      body: JSON.stringify({ messages: [{ role: "user", content: [{ text: "expensive" }] }] }),
    });
    expect(swapped.status).toBe(403);
    expect(swapped.headers.get("x-amzn-errortype")).toMatch(/^UnrecognizedClientException/);
  });
});

describe("Azure OpenAI and Responses API emulators (openai SDK)", () => {
  it("streams a Responses API answer with a tool call to AzureOpenAI (api-key, api-version)", async () => {
    llm.script({ text: "Hello from Azure" }, TOOL);
    const azure = new AzureOpenAI({
      apiKey: "real-key",
      apiVersion: "v1",
      baseURL: `${llm.url}/openai/v1`,
    });
    const stream = await azure.responses.create({
      model: "my-deployment",
      input: "hi",
      stream: true,
    });
    let text = "";
    let completed: unknown;
    for await (const e of stream) {
      if (e.type === "response.output_text.delta") text += e.delta;
      if (e.type === "response.completed") completed = e.response.usage;
    }
    expect(text).toBe("Hello from Azure");
    expect(completed).toMatchObject({
      input_tokens: expect.any(Number),
      output_tokens: expect.any(Number),
    });
    const req = llm.requests[0]!;
    expect(req.api).toBe("azure");
    expect(req.path).toBe("/openai/v1/responses?api-version=v1");
    expect(req.apiKey).toBe("real-key");
    const res = await azure.responses.create({ model: "my-deployment", input: "w?" });
    expect(res.output.find((o) => o.type === "function_call")).toMatchObject({
      name: "get_weather",
      arguments: JSON.stringify({ city: "Oslo" }),
    });
    const wrong = new AzureOpenAI({
      apiKey: "wrong",
      apiVersion: "v1",
      baseURL: `${llm.url}/openai/v1`,
    });
    await expect(wrong.responses.create({ model: "d", input: "x" })).rejects.toThrow(/401/);
  });

  it("streams the OpenAI Responses API (bearer key)", async () => {
    llm.script({ text: "Hello from Responses" });
    const openai = new OpenAI({ apiKey: "real-key", baseURL: `${llm.url}/v1` });
    const stream = openai.responses.stream({ model: "gpt-5-mini", input: "hi" });
    let text = "";
    stream.on("response.output_text.delta", (e) => {
      text += e.delta;
    });
    const res = await stream.finalResponse();
    expect(text).toBe("Hello from Responses");
    expect(res.status).toBe("completed");
    expect(llm.requests[0]!.api).toBe("responses");
  });
});
