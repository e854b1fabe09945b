import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

/**
 * An emulated remote MCP server: the official SDK's `McpServer` over its
 * streamable HTTP transport, a notes service per account. With an
 * authorization server it is an OAuth protected resource (RFC 9728): a
 * request without a valid access token gets a 401 naming its resource
 * metadata, and tokens are checked by introspection (RFC 7662) against the
 * authorization server, audience included. With `apiKey` it takes a static
 * header instead.
 *
 * Tools: `whoami`, `add_note`, `list_notes`, `count` (reports progress),
 * `wait` (until the client cancels it), `unlock_extra` (adds the tool `extra` and tells the client its tool list
 * changed).
 */
export interface McpServerEmulator {
  /** The MCP endpoint (`<origin>/mcp`). */
  url: string;
  /** Every tool call, with the account whose token made it. */
  readonly calls: { account: string; tool: string }[];
  /** Every bearer token presented (valid or not). */
  readonly presentedTokens: string[];
  /** Every W3C `traceparent` header received, in order (trace context propagation tests). */
  readonly traceparents: string[];
  /** `wait` calls running now, and those the client cancelled (`notifications/cancelled`). */
  readonly waits: { running: number; cancelled: number };
  notes(account: string): string[];
  /** Point the resource metadata's authorization server elsewhere (SSRF tests). */
  setAuthorizationServer(url: string | undefined): void;
  close(): Promise<void>;
}

export interface McpServerOptions {
  /** The authorization server: its issuer and introspection client. */
  auth?: { issuer: string; introspection: { url: string; clientId: string; clientSecret: string } };
  /** A static key instead (header `x-api-key`). */
  apiKey?: string;
  /** Speak only the legacy HTTP+SSE transport (GET /mcp for the stream, POST /messages). */
  legacySse?: boolean;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  account: string;
}

export async function startMcpServer(opts: McpServerOptions = {}): Promise<McpServerEmulator> {
  const calls: { account: string; tool: string }[] = [];
  const presentedTokens: string[] = [];
  const traceparents: string[] = [];
  const notes = new Map<string, string[]>();
  const waits = { running: 0, cancelled: 0 };
  const sessions = new Map<string, Session>();
  let authorizationServer: string | undefined;
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const url = `${origin}/mcp`;
  const metadataUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;

  const account = async (req: IncomingMessage): Promise<string | undefined> => {
    if (opts.apiKey !== undefined)
      return req.headers["x-api-key"] === opts.apiKey ? "team" : undefined;
    if (!opts.auth) return "anonymous";
    const header = req.headers.authorization ?? "";
    if (!header.startsWith("Bearer ")) return undefined;
    const token = header.slice(7);
    presentedTokens.push(token);
    const { introspection } = opts.auth;
    const res = await fetch(introspection.url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${introspection.clientId}:${introspection.clientSecret}`).toString("base64")}`,
      },
      body: new URLSearchParams({ token }),
    });
    const info = (await res.json()) as { active?: boolean; sub?: string; aud?: string | string[] };
    const audiences = Array.isArray(info.aud) ? info.aud : [info.aud];
    return info.active && info.sub && audiences.includes(url) ? info.sub : undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", origin).pathname;
    const traceparent = req.headers.traceparent;
    if (typeof traceparent === "string") traceparents.push(traceparent);
    if (path.startsWith("/.well-known/oauth-protected-resource")) {
      if (!opts.auth) return send(res, 404, {});
      return send(res, 200, {
        resource: url,
        authorization_servers: [authorizationServer ?? opts.auth.issuer],
        scopes_supported: ["notes"],
        bearer_methods_supported: ["header"],
      });
    }
    if (opts.legacySse) return legacy(req, res, path);
    if (path !== "/mcp") return send(res, 404, {});
    const who = await account(req);
    if (!who) {
      res.setHeader(
        "www-authenticate",
        `Bearer error="invalid_token", resource_metadata="${metadataUrl}"`,
      );
      return send(res, 401, { error: "invalid_token" });
    }
    const sessionId = req.headers["mcp-session-id"];
    const body = req.method === "POST" ? JSON.parse((await readBody(req)) || "null") : undefined;
    let session = typeof sessionId === "string" ? sessions.get(sessionId) : undefined;
    if (session && session.account !== who) return send(res, 403, { error: "not your session" });
    if (!session) {
      if (sessionId) return send(res, 404, { error: "unknown session" });
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, { transport, account: who });
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await notesServer(who, { calls, notes, waits }).connect(transport);
      session = { transport, account: who };
    }
    await session.transport.handleRequest(req, res, body);
  };

  const legacySessions = new Map<string, SSEServerTransport>();
  const legacy = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (path === "/mcp" && req.method === "GET") {
      const transport = new SSEServerTransport("/messages", res);
      legacySessions.set(transport.sessionId, transport);
      transport.onclose = () => legacySessions.delete(transport.sessionId);
      await notesServer("anonymous", { calls, notes, waits }).connect(transport);
      return;
    }
    if (path === "/messages" && req.method === "POST") {
      const id = new URL(req.url ?? "/", origin).searchParams.get("sessionId") ?? "";
      const transport = legacySessions.get(id);
      if (!transport) return send(res, 404, { error: "unknown session" });
      return transport.handlePostMessage(req, res, JSON.parse((await readBody(req)) || "null"));
    }
    // What an old server says to a streamable-HTTP client's POST.
    return send(res, 405, { error: "method not allowed" });
  };

  server.on("request", (req, res) => {
    void handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, { error: String(err) });
    });
  });
  return {
    url,
    calls,
    presentedTokens,
    traceparents,
    waits,
    notes: (a) => notes.get(a) ?? [],
    setAuthorizationServer: (u) => {
      authorizationServer = u;
    },
    close: async () => {
      for (const s of sessions.values()) await s.transport.close().catch(() => undefined);
      for (const t of legacySessions.values()) await t.close().catch(() => undefined);
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}

/** The tools of one session, acting for `account`. */
function notesServer(
  account: string,
  state: {
    calls: { account: string; tool: string }[];
    notes: Map<string, string[]>;
    waits: { running: number; cancelled: number };
  },
): McpServer {
  const server = new McpServer({ name: "notes", version: "1.0.0" });
  const called = (tool: string) => state.calls.push({ account, tool });
  server.registerTool("whoami", { description: "The signed-in account." }, async () => {
    called("whoami");
    return { content: [{ type: "text", text: `you are ${account}` }] };
  });
  server.registerTool(
    "add_note",
    { description: "Add a note.", inputSchema: { text: z.string() } },
    async ({ text }) => {
      called("add_note");
      const list = state.notes.get(account) ?? [];
      list.push(text);
      state.notes.set(account, list);
      return { content: [{ type: "text", text: `saved note ${list.length} for ${account}` }] };
    },
  );
  server.registerTool("list_notes", { description: "List the notes." }, async () => {
    called("list_notes");
    const list = state.notes.get(account) ?? [];
    return {
      content: [{ type: "text", text: list.join("\n") || "(no notes)" }],
      structuredContent: { notes: list },
    };
  });
  server.registerTool(
    "count",
    {
      description: "Count to n, reporting progress.",
      inputSchema: { n: z.number().int().max(20) },
    },
    async ({ n }, extra) => {
      called("count");
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= n; i++) {
        if (token !== undefined)
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken: token, progress: i, total: n, message: `at ${i}` },
          });
      }
      return { content: [{ type: "text", text: `counted to ${n}` }] };
    },
  );
  server.registerTool(
    "wait",
    { description: "Wait until cancelled (at most a minute)." },
    async (extra) => {
      called("wait");
      state.waits.running++;
      try {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 60_000);
          extra.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            state.waits.cancelled++;
            resolve();
          });
        });
      } finally {
        state.waits.running--;
      }
      return { content: [{ type: "text", text: "waited" }] };
    },
  );
  server.registerTool("unlock_extra", { description: "Unlock the extra tool." }, async () => {
    called("unlock_extra");
    server.registerTool("extra", { description: "An extra tool." }, async () => {
      called("extra");
      return { content: [{ type: "text", text: "extra ran" }] };
    });
    return { content: [{ type: "text", text: "unlocked" }] };
  });
  return server;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
