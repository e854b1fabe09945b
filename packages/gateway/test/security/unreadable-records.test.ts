import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, newPlaceholder } from "@lobu/core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TokenStore } from "../../src/access/tokens.ts";
import { type AdminSession, WebSessions } from "../../src/access/web-sessions.ts";
import { approvalEvent } from "../../src/domain/requests.ts";
import { RequestRegistry } from "../../src/runtime/requests.ts";
import { PlaceholderRegistry } from "../../src/secrets/placeholders.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { createWorld, TRUSTING, viaProxy, type World } from "../proxy/fixture.ts";

/**
 * Credentials, requests and placeholder bindings read back from the store
 * fail closed when their record is unreadable (corrupt, or written by an
 * incompatible version): a token or session never authenticates, a request is
 * never answered, a placeholder is never swapped. Each refusal is logged with
 * the record's key and why; nothing throws at the caller.
 */

interface Logged {
  record?: string;
  key?: string;
  reason?: string;
  msg: string;
}

let lines: Logged[];
const log = createLogger("test", {
  destination: { write: (line) => lines.push(JSON.parse(line) as Logged) },
});

function loggedUnreadable(record: string, key: string, reason: RegExp) {
  expect(lines).toContainEqual(
    expect.objectContaining({ record, key, reason: expect.stringMatching(reason) }),
  );
}

const sha = (value: string) => createHash("sha256").update(value).digest("hex");
const origin = {
  platform: "slack",
  workspace: "T1",
  channelId: "D1",
  userId: "U1",
  isDirect: true,
};

describe("credentials and requests", () => {
  let store: Store;
  beforeEach(async () => {
    lines = [];
    store = await createStore({
      driver: "sqlite",
      path: join(mkdtempSync(join(tmpdir(), "lobu-unreadable-sec-")), "db"),
    });
  });
  afterEach(async () => {
    await store.close();
  });

  it("a token whose record is unreadable never authenticates and is not listed", async () => {
    const tokens = new TokenStore(store.kv, log);
    const { token, info } = await tokens.create("app", "client");
    const other = await tokens.create("other", "client");
    const key = `apitoken:${sha(token)}`;
    // A role this version does not know (an attacker's edit, or a newer gateway's).
    await store.kv.set(key, JSON.stringify({ ...info, role: "superuser" }));

    expect(await tokens.verify(token)).toBeNull();
    expect((await tokens.list()).map((t) => t.id)).toEqual([other.info.id]);
    expect(await tokens.verify(other.token)).toMatchObject({ id: other.info.id });
    loggedUnreadable("api token", key, /role/);

    await store.kv.set(key, "{torn");
    expect(await tokens.verify(token)).toBeNull();
    loggedUnreadable("api token", key, /not valid JSON/);
  });

  it("an unreadable session or claim opens nothing", async () => {
    const sessions = new WebSessions(store.kv, log);
    const { id, session } = await sessions.create<AdminSession>(
      { kind: "admin", actor: "api:tok_1", name: "ops" },
      60_000,
    );
    const sessionKey = `web:session:${sha(id)}`;
    const { csrf: _csrf, ...withoutCsrf } = session;
    await store.kv.set(sessionKey, JSON.stringify(withoutCsrf));
    expect(await sessions.get(id)).toBeNull();
    loggedUnreadable("web session", sessionKey, /csrf/);

    const code = await sessions.createClaim({ userKey: "slack:T1:U1", agentId: "default", origin });
    const claimKey = `web:claim:${sha(code)}`;
    await store.kv.set(claimKey, JSON.stringify({ userKey: "slack:T1:U1", agentId: "default" }));
    expect(await sessions.peekClaim(code)).toEqual({ ok: false, reason: "unknown" });
    expect(await sessions.redeemClaim(code)).toEqual({ ok: false, reason: "unknown" });
    loggedUnreadable("settings claim", claimKey, /origin/);
  });

  it("a request whose record is unreadable is never answered, and nothing reaches a worker", async () => {
    const requests = new RequestRegistry(store, log);
    const delivered: string[] = [];
    await requests.start((_sandbox, requestId) => delivered.push(requestId));
    const published: string[] = [];
    const unsubscribe = await store.pubsub.subscribe("answers", (m) => published.push(m));
    const base = {
      messageId: "m1",
      sandboxId: "sb_1",
      agentId: "default",
      origin,
      event: approvalEvent("req_bad", "bash", { command: "ls" }),
    };
    await requests.register({ ...base, requestId: "req_bad" }, 60_000);
    const stored = JSON.parse((await store.kv.get("req:req_bad"))!);
    const corrupt = JSON.stringify({ ...stored, event: { type: "bogus" } });
    await store.kv.set("req:req_bad", corrupt);

    const by = { admin: true, label: "api:admin" };
    expect(await requests.answer("req_bad", { choice: "approve" }, by)).toEqual({
      ok: false,
      reason: "unknown or expired request",
      status: 404,
    });
    expect(await requests.get("req_bad")).toBeNull();
    expect(await requests.expire("req_bad")).toBeNull();
    expect(await store.kv.get("req:req_bad")).toBe(corrupt);
    loggedUnreadable("pending request", "req:req_bad", /event/);

    // A sound request on the same registry is answered and delivered (so the silence above means something).
    await requests.register(
      { ...base, requestId: "req_ok", event: approvalEvent("req_ok", "bash", { command: "ls" }) },
      60_000,
    );
    expect((await requests.answer("req_ok", { choice: "approve" }, by)).ok).toBe(true);
    // An answer message that is not one is dropped by the receiving gateway.
    await store.pubsub.publish("answers", JSON.stringify({ requestId: 1 }));
    await store.pubsub.publish(
      "answers",
      JSON.stringify({ sandboxId: "sb_1", requestId: "req_last", answer: {} }),
    );
    while (delivered.length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(delivered).toEqual(["req_ok", "req_last"]);
    expect(published.filter((m) => m.includes("req_bad"))).toEqual([]);
    await unsubscribe();
    await requests.stop();
  });
});

describe("placeholder bindings", () => {
  const SECRET = "ghp_unreadableBindingSecret0123456789";
  const github: SecretRef = { name: "github", scope: { kind: "agent", agentId: "helper" } };
  let w: World;
  let registry: PlaceholderRegistry;
  let port: number;

  beforeAll(async () => {
    w = await createWorld();
    await w.secrets.set(github, SECRET);
    registry = new PlaceholderRegistry(w.store.kv, { log });
    // The proxy reads bindings through a registry that reports to this test's log.
    port = (await w.startProxy({ placeholders: registry })).port;
  });
  afterAll(() => w?.close());
  beforeEach(() => {
    lines = [];
    w.http.received.length = 0;
  });

  async function sentUpstream(placeholder: string): Promise<string | string[] | undefined> {
    const res = await viaProxy(port, `http://api.allowed.test:${w.http.port}/`, {
      headers: { authorization: `Bearer ${placeholder}` },
    });
    expect(res.status).toBe(200);
    return w.http.received.at(-1)!.headers.authorization;
  }

  it("a binding that is unreadable is never swapped, and the proxy keeps serving", async () => {
    const placeholder = await registry.issue({
      sandboxId: TRUSTING,
      secret: github,
      hosts: ["api.allowed.test"],
    });
    expect(await sentUpstream(placeholder)).toBe(`Bearer ${SECRET}`);
    const key = `ph:${placeholder}`;
    const binding = JSON.parse((await w.store.kv.get(key))!);
    await w.store.kv.set(key, JSON.stringify({ ...binding, hosts: "*" }));

    expect(await registry.lookup(placeholder)).toBeNull();
    expect(await registry.forSandbox(TRUSTING)).toEqual([]);
    expect(await sentUpstream(placeholder)).toBe(`Bearer ${placeholder}`);
    loggedUnreadable("placeholder binding", key, /hosts/);

    // Issuing again writes a sound binding in its place.
    expect(
      await registry.issue({ sandboxId: TRUSTING, secret: github, hosts: ["api.allowed.test"] }),
    ).toBe(placeholder);
    expect(await sentUpstream(placeholder)).toBe(`Bearer ${SECRET}`);
  });

  it("a binding filed under another placeholder is never swapped for it", async () => {
    const placeholder = await registry.issue({
      sandboxId: TRUSTING,
      secret: github,
      hosts: ["api.allowed.test"],
    });
    const stray = newPlaceholder();
    await w.store.kv.set(`ph:${stray}`, (await w.store.kv.get(`ph:${placeholder}`))!);

    expect(await registry.lookup(stray)).toBeNull();
    expect(await sentUpstream(stray)).toBe(`Bearer ${stray}`);
    expect(lines).toContainEqual(
      expect.objectContaining({ key: `ph:${stray}`, holds: placeholder }),
    );
  });
});
