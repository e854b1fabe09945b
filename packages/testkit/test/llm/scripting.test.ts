import Anthropic from "@anthropic-ai/sdk";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

let llm: MockLlm;
let anthropic: Anthropic;
let openai: OpenAI;

beforeEach(async () => {
  llm = await startMockLlm();
  anthropic = new Anthropic({ baseURL: llm.url, apiKey: "any-key", maxRetries: 0 });
  openai = new OpenAI({ baseURL: llm.openaiUrl, apiKey: "any-key", maxRetries: 0 });
});
afterEach(() => llm.close());

const ask = (content: string) =>
  anthropic.messages
    .stream({ model: "m", max_tokens: 100, messages: [{ role: "user", content }] })
    .finalText();

describe("scripting", () => {
  it("keeps keyed scripts apart for concurrent conversations", async () => {
    llm.when(
      (r) => r.lastUserText === "alice",
      { text: "hi alice", delayMs: 20 },
      { text: "bye alice" },
    );
    llm.when((r) => r.lastUserText === "bob", { text: "hi bob" }, { text: "bye bob", delayMs: 5 });
    llm.script({ text: "global" });
    const [a1, b1, a2, b2, other] = await Promise.all([
      ask("alice"),
      ask("bob"),
      ask("alice"),
      ask("bob"),
      ask("carol"),
    ]);
    expect([a1, a2].sort()).toEqual(["bye alice", "hi alice"]);
    expect([b1, b2].sort()).toEqual(["bye bob", "hi bob"]);
    expect(other).toBe("global");
    // Exhausted scripts fall through to the default echo.
    expect(await ask("alice")).toBe("echo: alice");
  });

  it("checks keyed scripts in registration order, before the global FIFO", async () => {
    llm.script({ text: "global" });
    llm.when(() => true, { text: "first" });
    llm.when(() => true, { text: "second" });
    expect([await ask("x"), await ask("x"), await ask("x"), await ask("x")]).toEqual([
      "first",
      "second",
      "global",
      "echo: x",
    ]);
  });

  it("calls function turns with the recorded request", async () => {
    llm.script((req) => ({ text: `model ${req.model} heard "${req.lastUserText}"` }));
    expect(await ask("hello")).toBe('model m heard "hello"');
  });

  it("reports a throwing function turn as a 500 the client can read", async () => {
    llm.script(() => {
      throw new Error("boom");
    });
    const error = await ask("x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.InternalServerError);
    expect((error as Error).message).toContain("Mock LLM script failed: boom");
  });

  it("rejects malformed turns when they are scripted", () => {
    expect(() => llm.script({ text: "abc", chunks: ["a", "b"] })).toThrow(
      /chunks must join to text/,
    );
    expect(() => llm.script({ toolCalls: [] })).toThrow(/non-empty/);
    expect(() => llm.when(() => true, {} as never)).toThrow(/expected one of/);
    expect(() => llm.script({ toolCalls: [{ name: "bash", input: "ls" }] })).toThrow(
      /input must be an object/,
    );
    expect(() => llm.script({ toolCalls: [{ name: "bash", input: ["ls"] }] })).toThrow(
      /input must be an object/,
    );
  });

  it("uses defaultReply when nothing is scripted", async () => {
    await llm.close();
    llm = await startMockLlm({ defaultReply: (req) => ({ text: req.lastUserText.toUpperCase() }) });
    anthropic = new Anthropic({ baseURL: llm.url, apiKey: "k", maxRetries: 0 });
    expect(await ask("shout")).toBe("SHOUT");
  });

  it("hangs a stream until the client disconnects, and records the abort", async () => {
    llm.script({ hang: true });
    const controller = new AbortController();
    const stream = anthropic.messages.stream(
      { model: "m", max_tokens: 10, messages: [{ role: "user", content: "hang" }] },
      { signal: controller.signal },
    );
    const outcome = stream.finalMessage().then(
      () => "finished",
      () => "aborted",
    );
    const [req] = await llm.waitForRequests(1);
    expect(req?.aborted).toBe(false);
    controller.abort();
    expect(await outcome).toBe("aborted");
    await vi.waitFor(() => expect(req?.aborted).toBe(true));
  });

  it("hangs a non-streaming request too; close() ends it", async () => {
    llm.script({ hang: true });
    const outcome = openai.chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "hang" }] })
      .then(
        () => "finished",
        () => "failed",
      );
    const [req] = await llm.waitForRequests(1);
    await llm.close();
    expect(await outcome).toBe("failed");
    expect(req?.aborted).toBe(true);
    llm = await startMockLlm();
  });

  it("reset() drops scripts and recorded requests", async () => {
    llm.script({ text: "scripted" });
    llm.when(() => true, { text: "keyed" });
    await ask("a");
    expect(llm.requests).toHaveLength(1);
    const requests = llm.requests;
    llm.reset();
    expect(requests).toHaveLength(0);
    expect(await ask("b")).toBe("echo: b");
  });

  it("waitForRequests times out with a clear message", async () => {
    await expect(llm.waitForRequests(1, { timeoutMs: 20 })).rejects.toThrow(
      /received 0 request\(s\) within 20 ms, expected 1/,
    );
  });
});

describe("request recording", () => {
  it("records Anthropic requests, including the tool results the client sends back", async () => {
    llm.script({ text: "ok" });
    await anthropic.messages.create({
      model: "claude-mock",
      max_tokens: 100,
      system: "be brief",
      messages: [
        { role: "user", content: [{ type: "text", text: "run two things" }] },
        {
          role: "assistant",
          content: [
            { type: "tool_use", id: "toolu_1", name: "bash", input: { command: "true" } },
            { type: "tool_use", id: "toolu_2", name: "bash", input: { command: "false" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_1", content: "fine" },
            {
              type: "tool_result",
              tool_use_id: "toolu_2",
              content: [{ type: "text", text: "exit 1" }],
              is_error: true,
            },
          ],
        },
      ],
    });
    const [req] = await llm.waitForRequests(1);
    expect(req).toMatchObject({
      api: "anthropic",
      method: "POST",
      path: "/v1/messages",
      apiKey: "any-key",
      model: "claude-mock",
      lastUserText: "run two things",
      toolResults: [
        { id: "toolu_1", content: "fine", isError: false },
        { id: "toolu_2", content: "exit 1", isError: true },
      ],
      aborted: false,
    });
    expect(req?.headers["x-api-key"]).toBe("any-key");
    expect(req?.headers["anthropic-version"]).toBe("2023-06-01");
    expect(req?.body.system).toBe("be brief");
    expect(req?.at).toBeTypeOf("number");
  });

  it("records OpenAI requests, including tool messages", async () => {
    await openai.chat.completions.create({
      model: "gpt-mock",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: "first question" },
        { role: "assistant", content: "first answer" },
        { role: "user", content: [{ type: "text", text: "run it" }] },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "bash", arguments: "{}" } },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: "hello\n" },
      ],
    });
    const [req] = llm.requests;
    expect(req).toMatchObject({
      api: "openai",
      path: "/v1/chat/completions",
      apiKey: "any-key",
      model: "gpt-mock",
      lastUserText: "run it",
      toolResults: [{ id: "call_1", content: "hello\n", isError: false }],
    });
    expect(req?.headers.authorization).toBe("Bearer any-key");
  });

  it("requires some API key even when any key is accepted", async () => {
    const res = await fetch(`${llm.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }] }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error" } });
  });

  it("answers a body that is not a JSON object with a 400, in each API's error shape", async () => {
    const anthropicRes = await fetch(`${llm.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "k", "anthropic-version": "2023-06-01" },
      body: "{not json",
    });
    expect(anthropicRes.status).toBe(400);
    expect(await anthropicRes.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", message: "The request body is not a JSON object." },
    });
    const openaiRes = await fetch(`${llm.openaiUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer k" },
      body: "[1, 2]",
    });
    expect(openaiRes.status).toBe(400);
    expect(await openaiRes.json()).toMatchObject({
      error: { type: "invalid_request_error", message: "The request body is not a JSON object." },
    });
  });

  it("answers unknown endpoints with a 404 naming the real ones", async () => {
    const res = await fetch(`${llm.url}/v1/completions`, {
      method: "POST",
      headers: { authorization: "Bearer k" },
    });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toContain("/v1/chat/completions");
  });
});
