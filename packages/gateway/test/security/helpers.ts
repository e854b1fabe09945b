import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { AgentEvent } from "@lobu/core";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  replyText,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { expect } from "vitest";

// The host-side leak scan is shared with the foundation suite.
export { leaksOnHost } from "@lobu/testkit";

import { createUpstreamCa, startUpstream, type Upstream } from "../proxy/upstream.ts";

export type { Received, Route, Upstream } from "../proxy/upstream.ts";

/**
 * The attacker's side of the security suites: a real gateway to attack, scripts
 * that make its sandboxed workers run hostile shell commands (the mock LLM asks
 * for them as bash tool calls), fake upstream servers that record everything they
 * receive, and readers for the gateway's audit log and store.
 */

/**
 * A fresh directory outside /tmp. Sandboxes get a private /tmp of their own, so
 * a gateway data dir under /tmp would be out of their sight anyway; outside it,
 * "the sandbox cannot see the data dir" checks test the driver's hiding of host
 * paths.
 */
function scratchDir(prefix: string): string {
  const root = process.env.LOBU_TEST_DATA_ROOT ?? join(homedir(), ".cache", "lobu-tests");
  mkdirSync(root, { recursive: true, mode: 0o700 });
  return mkdtempSync(join(root, prefix));
}

/** A random value that exists nowhere else (not in this source, not in the repo). */
export function freshSecret(prefix: string): string {
  return `${prefix}${randomBytes(24).toString("hex")}`;
}

export interface TargetOptions {
  /** The installation's provider key (ANTHROPIC_API_KEY). */
  providerKey: string;
  /** Whether the mock provider answers 401 to any other key (default true). */
  llmChecksKey?: boolean;
  /** Reach the provider by a name (`localhost`), not by a literal the allow list could match. */
  providerByName?: boolean;
  /** lobu.toml after the `[sandbox]` section every suite shares. */
  toml?: string;
  /**
   * Test-only DNS answers (`name=address`). Turns on LOBU_TEST_MODE, and with it
   * trust in the target's upstream CA for upstream TLS.
   */
  resolve?: string[];
  /** Default agent secrets to set through the API once the gateway is up (name → value). */
  agentSecrets?: Record<string, string>;
  env?: Record<string, string | undefined>;
}

/** A real `lobu run` gateway under attack, with its mock provider and fake internet hosts. */
export interface Target {
  gw: GatewayProcess;
  llm: MockLlm;
  /**
   * A recording upstream on 127.0.0.1, closed with the target. With `tlsFor`, it
   * serves HTTPS with a certificate for that name from the stand-in public CA.
   */
  upstream(tlsFor?: string): Promise<Upstream>;
  /** Stop everything and remove the target's directories. */
  stop(): Promise<void>;
}

export async function startTarget(opts: TargetOptions): Promise<Target> {
  const dataDir = scratchDir("sec-");
  const caDir = scratchDir("ca-");
  const upstreams: Upstream[] = [];
  let llm: MockLlm | undefined;
  let gw: GatewayProcess | undefined;
  const stop = async () => {
    await gw?.stop();
    await llm?.close();
    for (const u of upstreams) await u.close();
    for (const dir of [dataDir, caDir]) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ca = await createUpstreamCa(caDir);
    llm = await startMockLlm(opts.llmChecksKey === false ? {} : { apiKey: opts.providerKey });
    gw = await startGatewayProcess({
      dataDir,
      toml: `[sandbox]\nidle_timeout = "10m"\n${opts.toml ?? ""}`,
      env: {
        ANTHROPIC_API_KEY: opts.providerKey,
        ANTHROPIC_BASE_URL: opts.providerByName
          ? llm.url.replace("127.0.0.1", "localhost")
          : llm.url,
        OPENAI_API_KEY: undefined,
        ...(opts.resolve
          ? {
              LOBU_TEST_MODE: "1",
              LOBU_TEST_RESOLVE: opts.resolve.join(","),
              LOBU_TEST_UPSTREAM_CA: ca.caPath,
            }
          : {}),
        ...opts.env,
      },
    });
    for (const [name, value] of Object.entries(opts.agentSecrets ?? {})) {
      await putSecret(gw, `/api/v1/agents/default/secrets/${name}`, value);
    }
    const target: Target = {
      gw,
      llm,
      async upstream(tlsFor) {
        const up = await startUpstream(tlsFor ? { tls: await ca.leafFor(tlsFor) } : {});
        upstreams.push(up);
        return up;
      },
      stop,
    };
    return target;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Set a secret's value through the API (`path`: the secret's API path). */
export async function putSecret(gw: GatewayProcess, path: string, value: string): Promise<void> {
  const res = await gw.api(path, { method: "PUT", body: JSON.stringify({ value }) });
  expect(res.status, await res.clone().text()).toBe(200);
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
    print(body.split("\\n")[0][:300], flush=True)
`;
  return `python3 - ${sh(JSON.stringify(attempts))} <<'PY'\n${script}\nPY`;
}

/**
 * Python: `memory_chunks(maps, mem, skip)` yields the readable memory of a
 * process (its `/proc/<pid>/maps` lines and open `/proc/<pid>/mem`) in pieces
 * of 8 MiB. Bounded because Node reserves a code range of hundreds of MiB that
 * is readable: read whole, it exhausts the sandbox's memory and the scan dies.
 * Pieces overlap by 256 bytes, so a match across a boundary is still seen
 * (possibly twice).
 */
export const PY_MEMORY_CHUNKS = `
def memory_chunks(maps, mem, skip=lambda parts: False, size=8 << 20, overlap=256):
    for line in maps:
        parts = line.split()
        if "r" not in parts[1] or skip(parts):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        pos = start
        while pos < end:
            begin = max(start, pos - overlap)
            try:
                mem.seek(begin)
                data = mem.read(min(end, pos + size) - begin)
            except (OSError, ValueError, OverflowError):
                break
            yield data
            pos += size
`;

/**
 * A bash command running Python that first digs every placeholder out of the
 * memory of the sandbox's processes (the worker's included: it lives in the
 * sandbox) and finds the relay one, then runs `body`. `body` can use `found`
 * (all placeholders), `key` (the relay placeholder that answers a model listing,
 * or None), `relay` (the relay's URL) and `call(method, path, key, body=None)`
 * → (status, first 300 characters of the answer).
 */
export function digRelay(body: string): string {
  const script = `
import os, re, urllib.request, urllib.error
${PY_MEMORY_CHUNKS}
pattern = re.compile(rb"lobu_secret_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
known = {os.environ.get("GITHUB_TOKEN", ""), os.environ.get("NOTES_TOKEN", "")}
found = set()
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", 0)
    except OSError:
        continue
    for chunk in memory_chunks(maps, mem):
        found.update(m.decode() for m in pattern.findall(chunk))
relay = os.environ["HTTP_PROXY"] + "/__lobu/llm/anthropic"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
import http.client
def call(method, path, key, body=None, tries=3):
    req = urllib.request.Request(relay + path, method=method, data=body, headers={"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    try:
        r = opener.open(req, timeout=30)
        return r.status, r.read().decode()[:300]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()[:300]
    except (http.client.RemoteDisconnected, ConnectionResetError):
        # A connection dropped before its answer (seen only on a heavily loaded
        # machine): ask again; the answer itself is what the attack checks.
        if tries <= 1:
            raise
        return call(method, path, key, body, tries - 1)
key = next((k for k in sorted(found - known) if call("GET", "/v1/models", k)[0] == 200), None)
${body}
`;
  return `python3 - <<'PY'\n${script}\nPY`;
}

/** Status code of the first response in a raw answer (0 when there is none). */
export function rawStatus(text: string): number {
  const m = /HTTP\/1\.1 (\d{3})/.exec(text);
  return m ? Number(m[1]) : 0;
}
