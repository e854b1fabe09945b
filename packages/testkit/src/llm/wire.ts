import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Reply } from "./reply.ts";
import type { MockErrorTurn, MockLlmApi, RecordedToolResult } from "./types.ts";

export type MockError = MockErrorTurn["error"];

/** What a request says about the conversation, extracted per API for RecordedRequest. */
export interface Inspection {
  lastUserText: string;
  toolResults: RecordedToolResult[];
}

/** One provider's wire protocol: how it authenticates, validates, and renders replies and errors. */
export interface Wire {
  readonly api: MockLlmApi;
  /** The credential presented (a key, an access token, an AWS access key id). */
  apiKey(headers: IncomingHttpHeaders, url: URL): string | undefined;
  authError(presentedKey: string | undefined): MockError;
  /**
   * Checks a credential that is more than a key (a SigV4 signature, a minted
   * access token) against the exact request; an error when it does not hold.
   */
  verify?(req: IncomingMessage, raw: string, url: URL): Promise<MockError | undefined>;
  /** The model a request names, when it is in the path (Gemini, Bedrock). */
  modelOf?(url: URL): string | undefined;
  /** The answer streams (default: `stream: true` in the body). */
  streams?(url: URL, body: Record<string, unknown>): boolean;
  inspect(body: Record<string, unknown>): Inspection;
  /** A 400 message if the request would be rejected by the real API, else undefined. */
  validate(
    headers: IncomingHttpHeaders,
    body: Record<string, unknown>,
    url: URL,
  ): string | undefined;
  sendError(res: ServerResponse, error: MockError): void;
  sendModels(res: ServerResponse, modelIds: readonly string[]): void;
  /** `url`: the request's, for wires that name the model or the stream format in it. */
  sendReply(res: ServerResponse, reply: Reply, body: Record<string, unknown>, url: URL): void;
  streamReply(
    res: ServerResponse,
    reply: Reply,
    body: Record<string, unknown>,
    url: URL,
  ): Promise<void>;
  /** Start a stream (status and headers only), for turns that never produce content. */
  openStream(res: ServerResponse): unknown;
}

/** The `retry-after` header of a scripted error, when it asks for one. */
export function retryAfter(error: MockError): Record<string, string> {
  return error.retryAfterSec === undefined ? {} : { "retry-after": String(error.retryAfterSec) };
}

export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  return /^Bearer\s+(.+)$/i.exec(headers.authorization ?? "")?.[1]?.trim();
}

/** Plain text of a message or tool-result `content`: a string, or the text parts of a part list. */
export function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter(
      (part): part is { type: "text"; text: string } => isRecord(part) && part.type === "text",
    )
    .map((part) => part.text)
    .join("\n");
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Messages after the last assistant message: what the client sent in reply to the previous turn. */
export function trailingMessages(messages: unknown[]): Record<string, unknown>[] {
  const records = messages.filter(isRecord);
  let lastAssistant = -1;
  records.forEach((m, i) => {
    if (m.role === "assistant") lastAssistant = i;
  });
  return records.slice(lastAssistant + 1);
}

export function lastUserText(messages: unknown[]): string {
  for (const m of messages.filter(isRecord).reverse()) {
    if (m.role !== "user") continue;
    const text = textOf(m.content);
    if (text !== "") return text;
  }
  return "";
}
