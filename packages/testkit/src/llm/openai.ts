import { pacer, SseStream, sendJson } from "./http.ts";
import { newId } from "./ids.ts";
import { defaultErrorMessage, type Reply, stopReasonFor } from "./reply.ts";
import {
  bearerToken,
  isRecord,
  lastUserText,
  type MockError,
  retryAfter,
  textOf,
  trailingMessages,
  type Wire,
} from "./wire.ts";

/** OpenAI Chat Completions API (`POST /v1/chat/completions`), as the official SDK sees it. */

const FINGERPRINT = "fp_lobu_mock";

/** OpenAI's `type` and `code` per status; a scripted `type` overrides the type. */
function errorKind(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: "invalid_request_error", code: "invalid_api_key" };
  if (status === 429) return { type: "requests", code: "rate_limit_exceeded" };
  if (status >= 500) return { type: "server_error", code: null };
  return { type: "invalid_request_error", code: null };
}

function usage(reply: Reply) {
  return {
    prompt_tokens: reply.inputTokens,
    completion_tokens: reply.outputTokens,
    total_tokens: reply.inputTokens + reply.outputTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

function header(model: unknown, object: string) {
  return {
    id: newId("chatcmpl-", 29),
    object,
    created: Math.floor(Date.now() / 1000),
    model: String(model),
    service_tier: "default",
    system_fingerprint: FINGERPRINT,
  };
}

export const openaiWire: Wire = {
  api: "openai",

  apiKey: bearerToken,

  authError: (presented) => ({
    status: 401,
    message:
      presented === undefined
        ? "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        : "Incorrect API key provided (the mock LLM was started with --api-key; send that key).",
  }),

  inspect: (body) => {
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const toolResults = trailingMessages(messages)
      .filter((m) => m.role === "tool")
      .map((m) => ({ id: String(m.tool_call_id), content: textOf(m.content), isError: false }));
    return { lastUserText: lastUserText(messages), toolResults };
  },

  validate: (_headers, body) => {
    if (typeof body.model !== "string") return "you must provide a model parameter";
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      return "'messages' must be a non-empty array";
    }
    return undefined;
  },

  sendError: (res, error: MockError) => {
    const kind = errorKind(error.status);
    sendJson(
      res,
      error.status,
      {
        error: {
          message: error.message ?? defaultErrorMessage(error.status),
          type: error.type ?? kind.type,
          param: null,
          code: kind.code,
        },
      },
      { "x-request-id": newId("req_", 32), ...retryAfter(error) },
    );
  },

  sendModels: (res, modelIds) => {
    sendJson(res, 200, {
      object: "list",
      data: modelIds.map((id) => ({
        id,
        object: "model",
        created: 1735689600,
        owned_by: "lobu-mock",
      })),
    });
  },

  sendReply: (res, reply, body) => {
    const toolCalls = reply.toolCalls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: call.argumentsJson },
    }));
    const message = {
      role: "assistant",
      content: reply.text === "" && toolCalls.length > 0 ? null : reply.text,
      refusal: null,
      annotations: [],
      ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
    };
    sendJson(
      res,
      200,
      {
        ...header(body.model, "chat.completion"),
        choices: [
          { index: 0, message, logprobs: null, finish_reason: stopReasonFor("openai", reply) },
        ],
        usage: usage(reply),
      },
      { "x-request-id": newId("req_", 32) },
    );
  },

  streamReply: async (res, reply, body) => {
    const sse = openaiWire.openStream(res) as SseStream;
    const pace = pacer(reply.delayMs);
    const base = header(body.model, "chat.completion.chunk");
    const includeUsage =
      isRecord(body.stream_options) && body.stream_options.include_usage === true;
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
      sse.send({
        ...base,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...(includeUsage ? { usage: null } : {}),
      });

    chunk({ role: "assistant", content: "", refusal: null });
    for (const content of reply.textChunks) {
      await pace();
      chunk({ content });
    }
    for (const [index, call] of reply.toolCalls.entries()) {
      chunk({
        tool_calls: [
          { index, id: call.id, type: "function", function: { name: call.name, arguments: "" } },
        ],
      });
      for (const args of call.fragments) {
        await pace();
        chunk({ tool_calls: [{ index, function: { arguments: args } }] });
      }
    }
    chunk({}, stopReasonFor("openai", reply));
    if (includeUsage) sse.send({ ...base, choices: [], usage: usage(reply) });
    sse.write("data: [DONE]\n\n");
    sse.end();
  },

  openStream: (res) => new SseStream(res, { "x-request-id": newId("req_", 32) }),
};
