import { pacer, SseStream, sendJson } from "./http.ts";
import { newId } from "./ids.ts";
import { defaultErrorMessage, type Reply, stopReasonFor } from "./reply.ts";
import type { RecordedToolResult } from "./types.ts";
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

/** Anthropic Messages API (`POST /v1/messages`), as the official SDK sees it. */

const VERSIONS = new Set(["2023-06-01", "2023-01-01"]);

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

function usage(inputTokens: number, outputTokens: number) {
  return {
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    server_tool_use: null,
    service_tier: "standard",
  };
}

function message(reply: Reply, model: string, content: unknown[], stopReason: string | null) {
  return {
    id: newId("msg_01", 22),
    type: "message",
    role: "assistant",
    model,
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: usage(reply.inputTokens, stopReason ? reply.outputTokens : 1),
  };
}

/** A text block comes first when there is text, or when there is nothing else to say. */
function hasTextBlock(reply: Reply): boolean {
  return reply.text !== "" || reply.toolCalls.length === 0;
}

export const anthropicWire: Wire = {
  api: "anthropic",

  apiKey: (headers) => {
    const key = headers["x-api-key"];
    return (Array.isArray(key) ? key[0] : key) ?? bearerToken(headers);
  },

  authError: (presented) => ({
    status: 401,
    message:
      presented === undefined
        ? "x-api-key header is required"
        : "invalid x-api-key (the mock LLM was started with --api-key; send that key)",
  }),

  inspect: (body) => {
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const toolResults: RecordedToolResult[] = [];
    for (const m of trailingMessages(messages)) {
      if (m.role !== "user" || !Array.isArray(m.content)) continue;
      for (const block of m.content) {
        if (!isRecord(block) || block.type !== "tool_result") continue;
        toolResults.push({
          id: String(block.tool_use_id),
          content: textOf(block.content),
          isError: block.is_error === true,
        });
      }
    }
    return { lastUserText: lastUserText(messages), toolResults };
  },

  validate: (headers, body) => {
    const version = headers["anthropic-version"];
    if (version === undefined) return "anthropic-version: header is required";
    if (!VERSIONS.has(String(version)))
      return `anthropic-version: "${version}" is not a valid version`;
    if (typeof body.model !== "string") return "model: Field required";
    if (typeof body.max_tokens !== "number") return "max_tokens: Field required";
    if (!Array.isArray(body.messages)) return "messages: Field required";
    if (body.messages.length === 0) return "messages: at least one message is required";
    return undefined;
  },

  sendError: (res, error: MockError) => {
    const requestId = newId("req_011C", 20);
    const type =
      error.type ??
      ERROR_TYPES[error.status] ??
      (error.status >= 500 ? "api_error" : "invalid_request_error");
    sendJson(
      res,
      error.status,
      {
        type: "error",
        error: { type, message: error.message ?? defaultErrorMessage(error.status) },
        request_id: requestId,
      },
      { "request-id": requestId, ...retryAfter(error) },
    );
  },

  sendModels: (res, modelIds) => {
    sendJson(res, 200, {
      data: modelIds.map((id) => ({
        type: "model",
        id,
        display_name: id,
        created_at: "2025-01-01T00:00:00Z",
      })),
      has_more: false,
      first_id: modelIds[0] ?? null,
      last_id: modelIds.at(-1) ?? null,
    });
  },

  sendReply: (res, reply, body) => {
    const content: unknown[] = [];
    if (hasTextBlock(reply)) content.push({ type: "text", text: reply.text });
    for (const call of reply.toolCalls) {
      content.push({
        type: "tool_use",
        id: call.id,
        name: call.name,
        input: JSON.parse(call.argumentsJson),
      });
    }
    const msg = message(reply, String(body.model), content, stopReasonFor("anthropic", reply));
    sendJson(res, 200, msg, { "request-id": newId("req_011C", 20) });
  },

  streamReply: async (res, reply, body) => {
    const sse = anthropicWire.openStream(res) as SseStream;
    const pace = pacer(reply.delayMs);
    sse.send(
      { type: "message_start", message: message(reply, String(body.model), [], null) },
      "message_start",
    );
    sse.send({ type: "ping" }, "ping");
    let index = 0;
    if (hasTextBlock(reply)) {
      sse.send(
        { type: "content_block_start", index, content_block: { type: "text", text: "" } },
        "content_block_start",
      );
      for (const text of reply.textChunks) {
        await pace();
        sse.send(
          { type: "content_block_delta", index, delta: { type: "text_delta", text } },
          "content_block_delta",
        );
      }
      sse.send({ type: "content_block_stop", index }, "content_block_stop");
      index++;
    }
    for (const call of reply.toolCalls) {
      const block = { type: "tool_use", id: call.id, name: call.name, input: {} };
      sse.send({ type: "content_block_start", index, content_block: block }, "content_block_start");
      // The real API opens every tool input with an empty fragment.
      for (const partial_json of ["", ...call.fragments]) {
        if (partial_json !== "") await pace();
        sse.send(
          { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } },
          "content_block_delta",
        );
      }
      sse.send({ type: "content_block_stop", index }, "content_block_stop");
      index++;
    }
    sse.send(
      {
        type: "message_delta",
        delta: { stop_reason: stopReasonFor("anthropic", reply), stop_sequence: null },
        usage: { output_tokens: reply.outputTokens },
      },
      "message_delta",
    );
    sse.send({ type: "message_stop" }, "message_stop");
    sse.end();
  },

  openStream: (res) => new SseStream(res, { "request-id": newId("req_011C", 20) }),
};
