import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Sha256 } from "@smithy/core/checksum";
import { EventStreamCodec } from "@smithy/core/event-streams";
import { fromUtf8, toUtf8 } from "@smithy/core/serde";
import { SignatureV4 } from "@smithy/signature-v4";
import { pacer, sendJson } from "./http.ts";

import { defaultErrorMessage, type Reply, stopReasonFor } from "./reply.ts";
import { isRecord, type MockError, retryAfter, type Wire } from "./wire.ts";

/**
 * Amazon Bedrock's Converse API (`POST /model/<modelId>/converse` and
 * `/converse-stream`), authenticated with AWS Signature V4 and checked with
 * the AWS SDK's own signer: the signature must cover the exact body received.
 * The stream is AWS event-stream framing (`application/vnd.amazon.eventstream`).
 */

export interface MockAwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const ERROR_TYPE: Record<number, string> = {
  400: "ValidationException",
  403: "AccessDeniedException",
  404: "ResourceNotFoundException",
  429: "ThrottlingException",
  500: "InternalServerException",
  503: "ServiceUnavailableException",
};

function sendError(res: ServerResponse, error: MockError): void {
  sendJson(
    res,
    error.status,
    { message: error.message ?? defaultErrorMessage(error.status) },
    {
      "x-amzn-errortype": `${error.type ?? ERROR_TYPE[error.status] ?? "InternalServerException"}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      "x-amzn-requestid": crypto.randomUUID(),
      ...retryAfter(error),
    },
  );
}

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

function same(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

async function verifySigV4(
  req: IncomingMessage,
  raw: string,
  url: URL,
  credentials: readonly MockAwsCredentials[],
): Promise<MockError | undefined> {
  const denied = (message: string): MockError => ({
    status: 403,
    type: "UnrecognizedClientException",
    message,
  });
  const auth = req.headers.authorization ?? "";
  if (/^Bearer /i.test(auth))
    return denied("Invalid API Key format: Must start with pre-defined prefix");
  const m = AUTH.exec(auth);
  if (!m) return denied("Missing Authentication Token");
  const [, keyId, , region, service, signedHeaders, signature] = m as unknown as string[];
  const creds = credentials.find((c) => c.accessKeyId === keyId);
  if (!creds) return denied("The security token included in the request is invalid.");
  if (service !== "bedrock")
    return denied(`Credential should be scoped to correct service: 'bedrock'.`);
  const date = req.headers["x-amz-date"];
  if (typeof date !== "string" || !/^\d{8}T\d{6}Z$/.test(date)) return denied("Missing X-Amz-Date");
  const signingDate = new Date(
    `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
  );
  if (Math.abs(Date.now() - signingDate.getTime()) > 15 * 60_000) {
    return denied("Signature expired: the request time is more than 15 minutes from now.");
  }
  if ((req.headers["x-amz-security-token"] ?? undefined) !== creds.sessionToken) {
    return denied("The security token included in the request is invalid.");
  }
  const declaredHash = req.headers["x-amz-content-sha256"];
  if (
    declaredHash !== undefined &&
    declaredHash !== createHash("sha256").update(raw).digest("hex")
  ) {
    // The signature would cover the declared hash, not the body received.
    return denied(
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    );
  }
  const headers: Record<string, string> = {};
  for (const name of signedHeaders!.split(";")) {
    const value = req.headers[name];
    if (value === undefined) return denied(`Signed header ${name} is missing.`);
    headers[name] = Array.isArray(value) ? value.join(",") : value;
  }
  const signer = new SignatureV4({
    service: "bedrock",
    region: region!,
    credentials: creds,
    sha256: Sha256,
  });
  const expected = await signer.sign(
    {
      method: req.method ?? "POST",
      protocol: "http:",
      hostname: url.hostname,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      body: raw,
    },
    { signingDate },
  );
  const got = /Signature=([0-9a-f]{64})/.exec(String(expected.headers.authorization))?.[1] ?? "";
  if (!same(got, signature!)) {
    return denied(
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    );
  }
  return undefined;
}

function inspect(body: Record<string, unknown>) {
  const messages = Array.isArray(body.messages) ? body.messages.filter(isRecord) : [];
  const blocks = (m: Record<string, unknown>) =>
    Array.isArray(m.content) ? m.content.filter(isRecord) : [];
  let lastUserText = "";
  let lastAssistant = -1;
  messages.forEach((m, i) => {
    if (m.role === "assistant") lastAssistant = i;
    if (m.role !== "user") return;
    const text = blocks(m)
      .filter((b) => typeof b.text === "string")
      .map((b) => b.text as string)
      .join("\n");
    if (text) lastUserText = text;
  });
  const toolResults = messages
    .slice(lastAssistant + 1)
    .flatMap(blocks)
    .filter((b) => isRecord(b.toolResult))
    .map((b) => {
      const r = b.toolResult as Record<string, unknown>;
      const content = Array.isArray(r.content) ? r.content.filter(isRecord) : [];
      return {
        id: String(r.toolUseId),
        content: content
          .map((c) => (typeof c.text === "string" ? c.text : JSON.stringify(c.json)))
          .join("\n"),
        isError: r.status === "error",
      };
    });
  return { lastUserText, toolResults };
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);

function frame(eventType: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ":event-type": { type: "string", value: eventType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: "event" },
    },
    // Bedrock pads every event with a `p` field (so lengths do not reveal content).
    body: fromUtf8(JSON.stringify({ ...(payload as object), p: "abcdefgh" })),
  });
}

function usage(reply: Reply) {
  return {
    inputTokens: reply.inputTokens,
    outputTokens: reply.outputTokens,
    totalTokens: reply.inputTokens + reply.outputTokens,
  };
}

export function bedrockWire(credentials: readonly MockAwsCredentials[]): Wire {
  return {
    api: "bedrock",
    apiKey: (headers) =>
      /Credential=([^/]+)\//.exec(headers.authorization ?? "")?.[1] ??
      /^Bearer\s+(.+)$/i.exec(headers.authorization ?? "")?.[1],
    authError: () => ({
      status: 403,
      type: "UnrecognizedClientException",
      message: "Missing Authentication Token",
    }),
    verify: (req, raw, url) => verifySigV4(req, raw, url, credentials),
    modelOf: (url) => {
      const id = /^\/model\/([^/]+)\/converse(-stream)?$/.exec(url.pathname)?.[1];
      return id === undefined ? undefined : decodeURIComponent(id);
    },
    streams: (url) => url.pathname.endsWith("/converse-stream"),
    inspect,
    validate: (_headers, body) => {
      if (!Array.isArray(body.messages) || body.messages.length === 0)
        return "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
      return undefined;
    },
    sendError,
    sendModels: (res) => sendError(res, { status: 404, message: "Not Found" }),
    sendReply: (res, reply) => {
      const content = [
        ...(reply.text ? [{ text: reply.text }] : []),
        ...reply.toolCalls.map((c) => ({
          toolUse: { toolUseId: c.id, name: c.name, input: JSON.parse(c.argumentsJson) },
        })),
      ];
      sendJson(
        res,
        200,
        {
          output: { message: { role: "assistant", content } },
          stopReason: stopReasonFor("bedrock", reply),
          usage: usage(reply),
          metrics: { latencyMs: 1 },
        },
        { "x-amzn-requestid": crypto.randomUUID() },
      );
    },
    streamReply: async (res, reply) => {
      res.writeHead(200, {
        "content-type": "application/vnd.amazon.eventstream",
        "x-amzn-requestid": crypto.randomUUID(),
      });
      const pace = pacer(reply.delayMs);
      const send = (type: string, payload: unknown) => {
        if (!res.destroyed) res.write(frame(type, payload));
      };
      send("messageStart", { role: "assistant" });
      let index = 0;
      if (reply.textChunks.length > 0) {
        for (const text of reply.textChunks) {
          await pace();
          send("contentBlockDelta", { contentBlockIndex: index, delta: { text } });
        }
        send("contentBlockStop", { contentBlockIndex: index });
        index++;
      }
      for (const call of reply.toolCalls) {
        send("contentBlockStart", {
          contentBlockIndex: index,
          start: { toolUse: { toolUseId: call.id, name: call.name } },
        });
        for (const input of call.fragments) {
          await pace();
          send("contentBlockDelta", { contentBlockIndex: index, delta: { toolUse: { input } } });
        }
        send("contentBlockStop", { contentBlockIndex: index });
        index++;
      }
      send("messageStop", { stopReason: stopReasonFor("bedrock", reply) });
      send("metadata", { usage: usage(reply), metrics: { latencyMs: 1 } });
      if (!res.destroyed) res.end();
    },
    openStream: (res) => {
      res.writeHead(200, { "content-type": "application/vnd.amazon.eventstream" });
      res.flushHeaders();
      return res;
    },
  };
}
