import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { anthropicWire } from "./anthropic.ts";
import { bedrockWire, type MockAwsCredentials } from "./bedrock.ts";
import { geminiWire } from "./gemini.ts";
import { GoogleTokenEndpoint, vertexWire } from "./google-auth.ts";
import { closed, readBody, sleep } from "./http.ts";
import { openaiWire } from "./openai.ts";
import { planReply, resolveTurn } from "./reply.ts";
import { azureWire, responsesWire } from "./responses.ts";
import { ScriptBook } from "./scripts.ts";
import type { MockTurn, RecordedRequest } from "./types.ts";
import { isRecord, type Wire } from "./wire.ts";

export interface MockLlmOptions {
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** When set, requests presenting any other key get 401. Otherwise any non-empty key is accepted. */
  apiKey?: string;
  /** Accept requests without a key, as a local server (Ollama, vLLM without --api-key) does. */
  keyless?: boolean;
  /** Reply when no script applies. Default: `{ text: "echo: <last user text>" }`. */
  defaultReply?: (req: RecordedRequest) => MockTurn;
  /** Ids listed by `GET /v1/models`. Any model id is accepted in completions regardless. */
  models?: string[];
  /** Called for every request as it arrives (before the reply), e.g. to log it. */
  onRequest?: (req: RecordedRequest) => void;
  /** AWS credentials Bedrock routes accept (SigV4-signed requests only). */
  aws?: MockAwsCredentials[];
}

export interface MockLlm {
  /** Origin, e.g. http://127.0.0.1:PORT: the Anthropic base URL. Any path prefix also works. */
  readonly url: string;
  /** `${url}/v1`: the base URL OpenAI clients expect. */
  readonly openaiUrl: string;
  /** Every request received, oldest first; cleared in place by reset(). */
  readonly requests: RecordedRequest[];
  /** Append turns to the global FIFO. */
  script(...turns: MockTurn[]): void;
  /** Turns reserved for requests matching `match`; checked before the global FIFO, in registration order. */
  when(match: (req: RecordedRequest) => boolean, ...turns: MockTurn[]): void;
  /** Resolves with all requests so far once at least `n` were received. Default timeout 10 s. */
  waitForRequests(n: number, options?: { timeoutMs?: number }): Promise<RecordedRequest[]>;
  /**
   * A new Google service account's JSON key whose `token_uri` is this mock's
   * token endpoint (`POST /token`); Vertex AI routes take its access tokens
   * for `projectId` (default "lobu-test").
   */
  googleServiceAccount(opts?: { email?: string; projectId?: string }): string;
  /** Access tokens the token endpoint has issued. */
  readonly googleTokensIssued: number;
  /** Drop all scripts and recorded requests. */
  reset(): void;
  close(): Promise<void>;
}

export const DEFAULT_MOCK_MODELS = ["mock-model", "mock-model-small"];
/**
 * What `lobu-mock-llm` lists: its own ids and the default models of the two
 * providers the README points at it (anthropic, openai), so that `lobu doctor`
 * finds the model a turn will use. packages/cli/test/docs.test.ts checks them
 * against the gateway's presets.
 */
export const MOCK_CLI_MODELS = [...DEFAULT_MOCK_MODELS, "claude-sonnet-4-5", "gpt-4.1-mini"];

type Route =
  | "messages"
  | "chat"
  | "models"
  | "gemini"
  | "vertex"
  | "bedrock"
  | "responses"
  | "azure"
  | "token"
  | "unknown";

function routeOf(method: string, pathname: string): Route {
  if (method === "POST" && pathname === "/token") return "token";
  // Provider paths with the model in them, at the root as the real services have them.
  if (method === "POST" && /^\/model\/[^/]+\/converse(-stream)?$/.test(pathname)) return "bedrock";
  const generate = /\/models\/[^/:]+:(streamGenerateContent|generateContent)$/;
  if (
    method === "POST" &&
    /^\/v1(beta1)?\/projects\/[^/]+\/locations\/[^/]+\/publishers\/google\//.test(pathname) &&
    generate.test(pathname)
  )
    return "vertex";
  if (method === "POST" && /^\/v1(beta)?\//.test(pathname) && generate.test(pathname))
    return "gemini";
  if (method === "POST" && /^\/openai(\/v1)?\/responses$/.test(pathname)) return "azure";
  // Any prefix is allowed before the API path (base URLs like http://host/anthropic).
  if (method === "POST" && /\/responses$/.test(pathname)) return "responses";
  if (method === "POST" && /\/v1\/messages$/.test(pathname)) return "messages";
  if (method === "POST" && /\/chat\/completions$/.test(pathname)) return "chat";
  if (method === "GET" && /\/models$/.test(pathname)) return "models";
  return "unknown";
}

/** For endpoints several APIs share: Anthropic clients always send anthropic-version or x-api-key. */
function wireFor(
  route: Route,
  pathname: string,
  headers: IncomingHttpHeaders,
  wires: { vertex: Wire; bedrock: Wire },
): Wire {
  if (route === "messages") return anthropicWire;
  if (route === "chat") return openaiWire;
  if (route === "gemini") return geminiWire;
  if (route === "vertex" || route === "token") return wires.vertex;
  if (route === "bedrock") return wires.bedrock;
  if (route === "responses") return responsesWire;
  if (route === "azure") return azureWire;
  if (/^\/v1beta\//.test(pathname) || headers["x-goog-api-key"] !== undefined) return geminiWire;
  if (headers["anthropic-version"] !== undefined || headers["x-api-key"] !== undefined) {
    return anthropicWire;
  }
  return /\/anthropic(\/|$)/.test(pathname) ? anthropicWire : openaiWire;
}

/** The path without its query; an unparseable target is matched as sent (and 404s). */
function pathnameOf(target: string): string {
  try {
    return new URL(target, "http://mock").pathname;
  } catch {
    return target;
  }
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function displayHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

export async function startMockLlm(options: MockLlmOptions = {}): Promise<MockLlm> {
  const book = new ScriptBook();
  const googleTokens = new GoogleTokenEndpoint();
  const wires = { vertex: vertexWire(googleTokens), bedrock: bedrockWire(options.aws ?? []) };
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();
  const models = options.models ?? DEFAULT_MOCK_MODELS;
  const defaultReply =
    options.defaultReply ?? ((req: RecordedRequest) => ({ text: `echo: ${req.lastUserText}` }));

  function record(rec: RecordedRequest): void {
    requests.push(rec);
    for (const wake of waiters) wake();
    options.onRequest?.(rec);
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    pathname: string,
    wire: Wire,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const path = req.url ?? "/";

    const raw = await readBody(req);
    let body: Record<string, unknown> = {};
    let badJson = false;
    if (raw.trim() !== "") {
      try {
        const parsed: unknown = JSON.parse(raw);
        if (isRecord(parsed)) body = parsed;
        else badJson = true;
      } catch {
        badJson = true;
      }
    }

    if (route === "token") return googleTokens.handle(raw, res);
    const url = new URL(path, "http://mock");
    const apiKey = wire.apiKey(req.headers, url);
    const rec: RecordedRequest = {
      api: wire.api,
      method,
      path,
      headers: flatHeaders(req.headers),
      body,
      apiKey,
      model: wire.modelOf?.(url) ?? (typeof body.model === "string" ? body.model : undefined),
      ...wire.inspect(body),
      at: Date.now(),
      aborted: false,
    };
    res.once("close", () => {
      if (!res.writableFinished) rec.aborted = true;
    });
    record(rec);

    if (route === "unknown") {
      return wire.sendError(res, {
        status: 404,
        message: `Unknown endpoint ${method} ${pathname}. The mock LLM serves POST <base>/v1/messages, POST <base>/v1/chat/completions and GET <base>/v1/models.`,
      });
    }
    const unkeyedOk = options.keyless === true && !apiKey;
    if (wire.verify) {
      const denied = await wire.verify(req, raw, url);
      if (denied) return wire.sendError(res, denied);
    } else if (
      !unkeyedOk &&
      (!apiKey || (options.apiKey !== undefined && apiKey !== options.apiKey))
    ) {
      return wire.sendError(res, wire.authError(apiKey || undefined));
    }
    if (route === "models") return wire.sendModels(res, models);
    if (badJson) {
      return wire.sendError(res, {
        status: 400,
        message: "The request body is not a JSON object.",
      });
    }
    const invalid = wire.validate(req.headers, body, url);
    if (invalid) return wire.sendError(res, { status: 400, message: invalid });

    const turn = await resolveTurn(book.take(rec) ?? defaultReply(rec), rec);
    if ("error" in turn) return wire.sendError(res, turn.error);
    const streams = wire.streams ? wire.streams(url, body) : body.stream === true;
    if ("hang" in turn) {
      if (streams) wire.openStream(res);
      return closed(res);
    }
    const reply = planReply(turn, wire.api, body);
    if (streams) return wire.streamReply(res, reply, body, url);
    if (reply.delayMs > 0) await sleep(reply.delayMs);
    wire.sendReply(res, reply, body, url);
  }

  const server = createServer((req, res) => {
    const pathname = pathnameOf(req.url ?? "/");
    const route = routeOf(req.method ?? "GET", pathname);
    const wire = wireFor(route, pathname, req.headers, wires);
    handle(req, res, route, pathname, wire).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const reason = error instanceof Error ? error.message : String(error);
      wire.sendError(res, { status: 500, message: `Mock LLM script failed: ${reason}` });
    });
  });

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${displayHost(host)}:${port}`;

  return {
    url,
    openaiUrl: `${url}/v1`,
    requests,
    script: (...turns) => book.script(turns),
    when: (match, ...turns) => book.when(match, turns),
    waitForRequests: async (n, { timeoutMs = 10_000 } = {}) => {
      if (requests.length >= n) return [...requests];
      const { promise, resolve, reject } = Promise.withResolvers<RecordedRequest[]>();
      const wake = () => {
        if (requests.length < n) return;
        cleanup();
        resolve([...requests]);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `Mock LLM received ${requests.length} request(s) within ${timeoutMs} ms, expected ${n}. ` +
              "Check that the client's base URL points at the mock.",
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(wake);
      };
      waiters.add(wake);
      return promise;
    },
    googleServiceAccount: (opts) => googleTokens.createKey(`${url}/token`, opts),
    get googleTokensIssued() {
      return googleTokens.issued;
    },
    reset: () => {
      book.reset();
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Hanging turns and keep-alive sockets would otherwise hold close() open.
        server.closeAllConnections();
      }),
  };
}
