import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { AgentEvent } from "@lobu/core";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  replyText,
} from "@lobu/testkit";
import { expect } from "vitest";
import { loadOrCreateCa } from "../../src/proxy/ca.ts";

/**
 * The attacker's side of the security suites: scripts that make a real sandboxed
 * worker run hostile shell commands (the mock LLM asks for them as bash tool
 * calls), fake upstream servers that record everything they receive, and readers
 * for the gateway's audit log and store.
 */

/**
 * A gateway data dir outside /tmp. The process driver shows the CA bundle
 * (`<data dir>/ca/ca-bundle.pem`) read-only at its host path, but mounts a fresh
 * /tmp over it, so with a data dir under /tmp sandboxes cannot trust the Lobu CA
 * (known issue, reported to the sandbox owners).
 */
export function dataDirOutsideTmp(): { dir: string; remove(): void } {
  const root = process.env.LOBU_TEST_DATA_ROOT ?? join(homedir(), ".cache", "lobu-tests");
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(join(root, "sec-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A random value that exists nowhere else (not in this source, not in the repo). */
export function freshSecret(prefix: string): string {
  return `${prefix}${randomBytes(24).toString("hex")}`;
}

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  tls: boolean;
}

export type Route = (req: IncomingMessage, res: ServerResponse, body: string) => boolean;

export interface Upstream {
  port: number;
  received: Received[];
  /** Handlers tried in order before the default JSON echo of the request. */
  routes: Route[];
  /** Everything received so far, as one string (for "never saw X" assertions). */
  seen(): string;
  close(): Promise<void>;
}

function readAll(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/**
 * A recording HTTP(S) server on 127.0.0.1. By default it answers with a JSON
 * echo of the request (so a leak in the response path would show up too).
 */
export async function startUpstream(
  opts: { tls?: { cert: string; key: string } } = {},
): Promise<Upstream> {
  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key })
    : http.createServer();
  const up: Upstream = {
    port: 0,
    received: [],
    routes: [],
    seen: () => JSON.stringify(up.received),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  server.on("request", async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readAll(req);
    up.received.push({
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      body,
      tls: !!opts.tls,
    });
    for (const route of up.routes) if (route(req, res, body)) return;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      `${JSON.stringify({ echo: { method: req.method, url: req.url, headers: req.headers, body } })}\n`,
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  up.port = (server.address() as AddressInfo).port;
  return up;
}

/**
 * A stand-in for a public CA: upstream HTTPS servers present leaves it signed, and
 * the gateway trusts it for upstream TLS through LOBU_TEST_UPSTREAM_CA (test mode
 * only). Sandboxes never trust it.
 */
export async function createUpstreamCa(): Promise<{
  caPath: string;
  caPem: string;
  leafFor(host: string): Promise<{ cert: string; key: string }>;
}> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-upstream-ca-"));
  const ca = await loadOrCreateCa(dir);
  const caPath = join(dir, "upstream-ca.pem");
  writeFileSync(caPath, ca.certPem);
  return {
    caPath,
    caPem: ca.certPem,
    async leafFor(host) {
      const leaf = await ca.leafFor(host);
      return { cert: leaf.certPem, key: leaf.keyPem };
    },
  };
}

export interface AttackResult {
  /** What the bash tool returned to the model (stdout and stderr). */
  output: string;
  events: AgentEvent[];
  /** The final reply text of the turn. */
  reply: string;
}

let turnCounter = 0;

/**
 * Make `user`'s agent run `command` in its sandbox, then finish the turn. Asserts
 * the turn completed with the scripted reply, i.e. the legitimate provider call
 * through the LLM relay still works after the attack.
 */
export async function attack(
  gw: GatewayProcess,
  llm: MockLlm,
  command: string,
  opts: { user?: string; channel?: string; agent?: string } = {},
): Promise<AttackResult> {
  const tag = `attack ${++turnCounter} ${randomBytes(4).toString("hex")}`;
  const match = (r: RecordedRequest) => r.lastUserText === tag;
  llm.when(match, { toolCalls: [{ name: "bash", input: { command } }] });
  llm.when(match, { text: `finished ${tag}` });
  const res = await gw.api(`/api/v1/agents/${opts.agent ?? "default"}/messages`, {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({
      user: opts.user ?? "mallory",
      channel: opts.channel ?? "attack",
      text: tag,
    }),
  });
  if (res.status >= 300) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const events = await collectEvents(res);
  const reply = replyText(events);
  expect(reply, JSON.stringify(events.filter((e) => e.type !== "text_delta"))).toBe(
    `finished ${tag}`,
  );
  const round = llm.requests.filter(match).at(-1);
  const output = round?.toolResults[0]?.content ?? "";
  return { output, events, reply };
}

export interface AuditEntry {
  at: number;
  action: string;
  actor: string;
  agentId?: string;
  sandboxId?: string;
  details?: {
    method?: string;
    host?: string;
    port?: number;
    reason?: string;
    status?: number;
    secrets?: string[];
    unswapped?: number;
    notes?: string[];
  };
}

/** Egress audit records, newest first. */
export async function egressAudit(gw: GatewayProcess): Promise<AuditEntry[]> {
  const res = await gw.api("/api/v1/audit?action=egress&limit=1000");
  expect(res.status).toBe(200);
  return ((await res.json()) as { records: AuditEntry[] }).records;
}

/** Sandbox ids by user id. */
export async function sandboxOf(gw: GatewayProcess, user: string): Promise<string> {
  const res = await gw.api("/api/v1/sandboxes");
  const { sandboxes } = (await res.json()) as {
    sandboxes: { id: string; key: { userId: string } }[];
  };
  const found = sandboxes.find((s) => s.key.userId === user);
  if (!found) throw new Error(`no sandbox for ${user}`);
  return found.id;
}

/** Read-only view of the gateway's SQLite store (the test reads what a thief with the disk would). */
export function readKv(gw: GatewayProcess, prefix: string): { key: string; value: string }[] {
  const db = new DatabaseSync(join(gw.dataDir, "lobu.db"), { readOnly: true });
  try {
    return db
      .prepare("SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key")
      .all(prefix.length, prefix) as { key: string; value: string }[];
  } finally {
    db.close();
  }
}

/** Single-quote a string for bash. */
export function sh(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Split tool output into `### <id>` sections. */
export function sections(output: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | null = null;
  for (const line of output.split("\n")) {
    const m = /^### (\S+)$/.exec(line);
    if (m) {
      current = m[1]!;
      out.set(current, "");
    } else if (current !== null) out.set(current, `${out.get(current)}${line}\n`);
  }
  return out;
}

/** A bash snippet that runs curl for one labelled attempt and prints its status. */
export function curlStep(id: string, args: string): string {
  return `echo '### ${id}'; curl -sS --max-time 15 -w '\n@@ http=%{http_code} connect=%{http_connect}\n' ${args} 2>&1; echo`;
}

/** The `@@ http=… connect=…` line curlStep prints. */
export function curlStatus(text: string): { http: number; connect: number } {
  const m = /@@ http=(\d+) connect=(\d+)/.exec(text);
  if (!m) throw new Error(`no status in: ${text}`);
  return { http: Number(m[1]), connect: Number(m[2]) };
}

export interface RawAttempt {
  id: string;
  /** `get`: absolute-form GET of `target` (a URL); `connect`: CONNECT `target` (host:port). */
  kind: "get" | "connect";
  target: string;
  headers?: Record<string, string>;
}

/**
 * A bash command running a tiny Python client that sends requests byte for byte
 * to the sandbox's proxy port (so no client library rewrites the host first),
 * printing under `### <id>` the status line, the X-Lobu-Egress code and the
 * first line of the body of each answer.
 */
export function rawProxyRequests(attempts: RawAttempt[]): string {
  const script = `
import json, os, socket, sys
port = int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
full = False
for a in json.loads(sys.argv[1]):
    print("### " + a["id"], flush=True)
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    extra = "".join(f"{k}: {v}\\r\\n" for k, v in a.get("headers", {}).items())
    if a["kind"] == "connect":
        head = f"CONNECT {a['target']} HTTP/1.1\\r\\nHost: {a['target']}\\r\\n{extra}\\r\\n"
    else:
        head = f"GET {a['target']} HTTP/1.1\\r\\nHost: attacker\\r\\nConnection: close\\r\\n{extra}\\r\\n"
    s.sendall(head.encode("latin1"))
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            data += b"\\n[client timeout]"
            break
        if not chunk:
            break
        data += chunk
    s.close()
    text = data.decode("latin1")
    head, _, body = text.partition("\\r\\n\\r\\n")
    lines = head.split("\\r\\n")
    # Compact: the tool output the model gets is truncated at 50 KB.
    print(lines[0][:12])
    for line in lines[1:]:
        if line.lower().startswith("x-lobu-egress:"):
            print(line)
    print((body.split("\\n")[0] if full else body.split("\\n")[0][:300]), flush=True)
`;
  return `python3 - ${sh(JSON.stringify(attempts))} <<'PY'\n${script}\nPY`;
}

/** Status code of the first response in a raw answer (0 when there is none). */
export function rawStatus(text: string): number {
  const m = /HTTP\/1\.1 (\d{3})/.exec(text);
  return m ? Number(m[1]) : 0;
}
