import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createLogger, LobuConfig, type LobuConfigInput } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import { type MockLlm, removeDataDir, startMockLlm } from "@lobu/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Origin } from "../../src/domain/origin.ts";
import { RETENTION_LOCK } from "../../src/runtime/retention.ts";
import { createStore } from "../../src/store/index.ts";
import { apiSettingsLink, openSettings } from "../settings/helpers.ts";

/**
 * Retention and a person's export and erasure, end to end on a gateway with
 * real turns (mock LLM provider, host sandboxes), on SQLite and on a real
 * Redis: the sweep removes what one agent keeps too long and nothing else;
 * the export holds a person's data and no secret value; after an erasure no
 * record, stream entry, volume or snapshot names them.
 */

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const KEY = "sk-ant-retention-key-0123456789abcdef";
const DAY = 86_400_000;
const SECRET_VALUE = "my-very-secret-value-9f8e7d6c";

let llm: MockLlm;
beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
});
afterAll(() => llm?.close());

interface Setup {
  gw: Gateway;
  dataDir: string;
  /** The Redis key prefix (unused on SQLite). */
  prefix: string;
  admin: string;
  /** The retention clock: moved by tests, never slept on. */
  clock: { now: number };
  /** Everything the store holds, as one text (keys, values, stream entries, queue payloads). */
  dump(): Promise<string>;
  close(): Promise<void>;
}

async function setUp(kind: "sqlite" | "redis"): Promise<Setup> {
  const dataDir = mkdtempSync(join(tmpdir(), `lobu-retention-${kind}-`));
  const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
  const clock = { now: Date.now() };
  const config: LobuConfigInput = {
    sandbox: { driver: "host", allow_unsandboxed: true, idle_timeout: "10m" },
    agents: {
      default: {},
      brief: { retention: { transcripts: "30d", events: "2d", files: "30d", usage: "30d" } },
      shared: { group_routing: "per-channel" },
    },
    retention: { audit: "365d" },
    ...(kind === "redis"
      ? { store: { driver: "redis", redis_url: REDIS_URL, key_prefix: prefix } }
      : {}),
  };
  const gw = await startGateway({
    config: LobuConfig.parse(config),
    dataDir,
    port: 0,
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url },
    log: createLogger("test", { level: "silent" }),
    retentionClock: () => clock.now,
  });
  const admin = readFileSync(gw.summary.adminTokenFile, "utf8").trim();
  const dump =
    kind === "sqlite"
      ? async () => {
          const db = new DatabaseSync(join(dataDir, "lobu.db"), { readOnly: true });
          try {
            const rows = [
              ...db.prepare("SELECT key || ' ' || value AS t FROM kv").all(),
              ...db.prepare("SELECT stream || ' ' || data AS t FROM stream_entries").all(),
              ...db.prepare("SELECT name AS t FROM streams").all(),
              ...db.prepare("SELECT partition || ' ' || payload AS t FROM queue_messages").all(),
            ];
            return rows.map((r) => String(r.t)).join("\n");
          } finally {
            db.close();
          }
        }
      : async () => {
          const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
          const out: string[] = [];
          let cursor = "0";
          do {
            const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
            cursor = next;
            for (const key of keys) {
              const type = await redis.type(key);
              out.push(key);
              if (type === "string") out.push((await redis.get(key)) ?? "");
              else if (type === "stream")
                out.push(JSON.stringify(await redis.xrange(key, "-", "+")));
              else if (type === "hash") out.push(JSON.stringify(await redis.hgetall(key)));
              else if (type === "zset")
                out.push(JSON.stringify(await redis.zrange(key, "0", "-1")));
              else if (type === "list")
                out.push(JSON.stringify(await redis.lrange(key, "0", "-1")));
              else if (type === "set") out.push(JSON.stringify(await redis.smembers(key)));
            }
          } while (cursor !== "0");
          await redis.quit();
          return out.join("\n");
        };
  return {
    gw,
    dataDir,
    prefix,
    admin,
    clock,
    dump,
    async close() {
      await gw.close();
      removeDataDir(dataDir);
      if (kind !== "redis") return;
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== "0");
      await redis.quit();
    },
  };
}

async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each(["sqlite", "redis"] as const)("retention and erasure on %s", (kind) => {
  let s: Setup;
  const api = (path: string, init: RequestInit = {}, token?: string) =>
    fetch(`${s.gw.url}/api/v1${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token ?? s.admin}`,
        "content-type": "application/json",
        ...(init.headers as Record<string, string> | undefined),
      },
    });
  /** Send as an admin-namespace api user (`api::<user>`) and wait for the answer. */
  async function converse(agent: string, user: string, text: string) {
    const res = await api(`/agents/${agent}/messages`, {
      method: "POST",
      body: JSON.stringify({ user, text, channel: "dev" }),
    });
    expect(res.status).toBe(202);
    const { messageId, conversationId } = (await res.json()) as {
      messageId: string;
      conversationId: string;
    };
    await until(async () => {
      const m = await s.gw.services.conversations.getMessage(messageId);
      return m?.status === "done" ? m : undefined;
    });
    return { messageId, conversationId };
  }
  const stop = (id: string) => api(`/sandboxes/${id}/stop`, { method: "POST" });
  const volume = (id: string) => join(s.dataDir, "volumes", id);

  beforeAll(async () => {
    s = await setUp(kind);
  }, 60_000);
  afterAll(() => s?.close());

  it("sweeps one agent's old transcripts, events and files, and keeps recent ones and other agents'", async () => {
    const brief = await converse("brief", "ret", "remember this");
    const keep = await converse("default", "ret", "remember this too");
    for (const c of [brief, keep]) expect((await stop(c.conversationId)).status).toBe(200);
    const { conversations } = s.gw.services;
    const now = s.clock.now;
    const origin: Origin = {
      platform: "api",
      workspace: "",
      channelId: "dev",
      userId: "ret",
      isDirect: true,
    };
    for (const c of [brief, keep]) {
      const agentId = c === brief ? "brief" : "default";
      await conversations.appendHistory(c.conversationId, {
        role: "user",
        text: "forty days ago",
        messageId: "m_old",
        at: now - 40 * DAY,
      });
      for (const [id, age] of [
        ["old", 40],
        ["mid", 3],
        ["running", 40],
      ] as const) {
        await conversations.putMessage({
          id: `msg_${agentId}_${id}`,
          conversationId: c.conversationId,
          agentId,
          origin,
          text: id,
          status: id === "running" ? "running" : "done",
          createdAt: now - age * DAY,
          completedAt: now - age * DAY,
        });
        await conversations.appendEvent(`msg_${agentId}_${id}`, { type: "text_delta", text: id });
      }
      // Files: one older than the retention, one recent; the transcript made old too.
      const dir = volume(c.conversationId);
      writeFileSync(join(dir, "old.txt"), "old");
      writeFileSync(join(dir, "new.txt"), "new");
      const past = new Date(now - 40 * DAY);
      utimesSync(join(dir, "old.txt"), past, past);
      for (const f of readdirSync(join(dir, ".lobu", "sessions")))
        utimesSync(join(dir, ".lobu", "sessions", f), past, past);
    }

    // Usage of both agents 40 days ago, and audit records older and newer than a year.
    const { audit } = s.gw.services;
    for (const agentId of ["brief", "default"])
      await audit.usage({
        at: now - 40 * DAY,
        agentId,
        userKey: "api::ret",
        provider: "anthropic",
        model: "m",
        inputTokens: 7,
        outputTokens: 3,
        status: 200,
      });
    audit.record({ at: now - 400 * DAY, action: "test.ancient", actor: "system" });
    audit.record({ at: now - 300 * DAY, action: "test.recent", actor: "system" });
    await audit.flush();
    const oldDay = new Date(now - 40 * DAY).toISOString().slice(0, 10);

    const report = await s.gw.retention.sweep();
    expect(report.records).not.toBeNull();

    const usageDays = (await audit.usageTotals()).filter((u) => u.day === oldDay);
    expect(usageDays.map((u) => u.agentId)).toEqual(["default"]);
    expect((await audit.recent({ action: "test." })).map((r) => r.action)).toEqual(["test.recent"]);

    const texts = async (id: string) => (await conversations.history(id)).map((h) => h.text);
    expect(await texts(brief.conversationId)).not.toContain("forty days ago");
    expect(await texts(brief.conversationId)).toContain("remember this");
    expect(await texts(keep.conversationId)).toContain("forty days ago");

    expect(await conversations.getMessage("msg_brief_old")).toBeNull();
    expect(await conversations.getMessage("msg_brief_mid")).not.toBeNull();
    expect(await conversations.getMessage("msg_brief_running")).not.toBeNull(); // its turn runs
    expect(await conversations.getMessage("msg_default_old")).not.toBeNull();
    const events = (id: string) =>
      conversations.readEvents(id, undefined, { blockMs: 0 }).then((e) => e.length);
    expect(await events("msg_brief_mid")).toBe(0); // events kept 2 days
    expect(await events("msg_brief_running")).toBe(1);
    expect(await events("msg_default_mid")).toBe(1);

    const briefDir = volume(brief.conversationId);
    expect(existsSync(join(briefDir, "old.txt"))).toBe(false);
    expect(existsSync(join(briefDir, "new.txt"))).toBe(true);
    expect(readdirSync(join(briefDir, ".lobu", "sessions"))).toEqual([]);
    expect(existsSync(join(briefDir, ".lobu", "turns.json"))).toBe(true); // the worker's state stays
    const keepDir = volume(keep.conversationId);
    expect(existsSync(join(keepDir, "old.txt"))).toBe(true);
    expect(readdirSync(join(keepDir, ".lobu", "sessions")).length).toBeGreaterThan(0);

    // The sandbox still works after its transcript went: a new one starts.
    await converse("brief", "ret", "still there?");
  }, 90_000);

  it.runIf(kind === "redis")(
    "sweeps the store on one gateway at a time: another gateway's sweep lock is respected",
    async () => {
      const other = await createStore({ driver: "redis", url: REDIS_URL, prefix: s.prefix });
      try {
        const token = await other.locks.acquire(RETENTION_LOCK, "gateway-2", 60_000);
        expect(token).not.toBeNull();
        const skipped = await s.gw.retention.sweep();
        expect(skipped.records).toBeNull(); // the store's part is the other gateway's now
        await other.locks.release(RETENTION_LOCK, token!);
        expect((await s.gw.retention.sweep()).records).not.toBeNull();
      } finally {
        await other.close();
      }
    },
  );

  it("exports a person's settings, secrets by name and transcripts, and never a secret value", async () => {
    const link = await apiSettingsLink(
      {
        api: (p, i) =>
          fetch(`${s.gw.url}${p}`, {
            ...i,
            headers: { authorization: `Bearer ${s.admin}`, "content-type": "application/json" },
          }),
      },
      "alice",
    );
    const alice = await openSettings(s.gw, link);
    expect((await alice.call("PUT", "/secrets/MY_TOKEN", { value: SECRET_VALUE })).status).toBe(
      200,
    );
    await converse("default", "alice", "hello from alice");

    const res = await alice.call("GET", "/privacy/export");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="lobu-export-/);
    const text = await res.text();
    const bundle = JSON.parse(text) as { userKey: string; data: Record<string, unknown> };
    expect(bundle.userKey).toBe("api::alice");
    expect(text).toContain("MY_TOKEN");
    expect(text).toContain("hello from alice");
    expect(text).toContain(".jsonl"); // the sandbox's transcript file
    expect(text).not.toContain(SECRET_VALUE);
    expect(text).not.toContain(SECRET_VALUE.slice(-4)); // not even the masked hint

    // The admin API gives the same bundle; a client token of another namespace gets nothing.
    const viaApi = await api(`/admin/people/${encodeURIComponent("api::alice")}/export`);
    expect(viaApi.status).toBe(200);
    expect(await viaApi.text()).toContain("hello from alice");
  }, 60_000);

  it("refuses to export or erase someone else, or a malformed user key", async () => {
    const link = (user: string) =>
      apiSettingsLink(
        {
          api: (p, i) =>
            fetch(`${s.gw.url}${p}`, {
              ...i,
              headers: { authorization: `Bearer ${s.admin}`, "content-type": "application/json" },
            }),
        },
        user,
      );
    const bob = await openSettings(s.gw, await link("bob"));
    // Bob's own export holds nothing of alice's; the request cannot name anyone else.
    expect(await (await bob.call("GET", "/privacy/export")).text()).not.toContain("alice");
    const aimed = await bob.call("POST", "/privacy/erase", {
      confirm: "erase everything",
      userKey: "api::alice",
    });
    expect(aimed.status).toBe(400);
    expect((await bob.call("POST", "/privacy/erase", { confirm: "yes" })).status).toBe(400);
    // A settings session is no API token.
    const cookieOnly = await fetch(
      `${s.gw.url}/api/v1/admin/people/${encodeURIComponent("api::alice")}`,
      {
        method: "DELETE",
        headers: { cookie: bob.cookie },
      },
    );
    expect(cookieOnly.status).toBe(401);

    const client = (await (
      await api("/tokens", {
        method: "POST",
        body: JSON.stringify({ name: "acme", role: "client", namespace: "acme" }),
      })
    ).json()) as { token: string };
    for (const victim of ["api::alice", "api:other:carol", "slack:T1:U1"]) {
      const res = await api(
        `/admin/people/${encodeURIComponent(victim)}`,
        { method: "DELETE" },
        client.token,
      );
      expect(res.status, victim).toBe(403);
    }
    for (const bad of [
      "..%2F..%2Fetc%2Fpasswd",
      "api%3A%3A..",
      "api%3A%3Aa%2Fb",
      "api%3A%3A*",
      "nocolons",
      "api%3A%3Aa%00b",
    ]) {
      const res = await api(`/admin/people/${bad}/export`);
      expect(res.status, bad).toBe(400);
    }
    // Alice's data is all still there.
    expect(
      await (await api(`/admin/people/${encodeURIComponent("api::alice")}/export`)).text(),
    ).toContain("hello from alice");
  }, 60_000);

  it("leaves a running turn alone: its volume is not swept, and its person cannot be erased", async () => {
    llm.when((req) => req.lastUserText === `hang on ${kind}`, { hang: true });
    const res = await api("/agents/brief/messages", {
      method: "POST",
      body: JSON.stringify({ user: "busy", text: `hang on ${kind}`, channel: "dev" }),
    });
    expect(res.status).toBe(202);
    const { conversationId } = (await res.json()) as { conversationId: string };
    await until(async () =>
      llm.requests.some((r) => r.lastUserText === `hang on ${kind}`) ? true : undefined,
    );
    // A file older than the agent's files retention, in the volume of the running turn.
    const old = join(volume(conversationId), "in-use.txt");
    writeFileSync(old, "the turn reads this");
    const past = new Date(s.clock.now - 40 * DAY);
    utimesSync(old, past, past);
    const report = await s.gw.retention.sweep();
    expect(report.busySandboxes).toBeGreaterThanOrEqual(1);
    expect(existsSync(old)).toBe(true);

    const refused = await api(`/admin/people/${encodeURIComponent("api::busy")}`, {
      method: "DELETE",
    });
    expect(refused.status).toBe(409);
    const body = (await refused.json()) as { error: { code: string; hint: string } };
    expect(body.error.code).toBe("person_busy");
    expect(body.error.hint).toMatch(/Wait for the turn/);
  }, 60_000);

  it("erases a person's part of a shared channel, and keeps the channel's sandbox (it is the channel's)", async () => {
    const { conversations, inbound } = s.gw.services;
    const say = async (userId: string, text: string) => {
      const origin: Origin = {
        platform: "api",
        workspace: "",
        channelId: "room",
        userId,
        isDirect: false,
      };
      const r = await inbound.submit({
        agentId: "shared",
        origin,
        text,
        eventId: `${userId}-${text}`,
      });
      await until(async () =>
        (await conversations.getMessage(r.messageId!))?.status === "done" ? true : undefined,
      );
      return r.conversationId;
    };
    const room = await say("sam", "sam says hi");
    expect(await say("tia", "tia says hi")).toBe(room); // one sandbox for the channel
    await say("sam", "sam again");

    const res = await api(`/admin/people/${encodeURIComponent("api::sam")}`, { method: "DELETE" });
    expect(res.status).toBe(200);
    const report = (await res.json()) as { erased: Record<string, Record<string, number>> };
    expect(report.erased.sandboxes).toMatchObject({ sandboxes: 0, sharedChannelSandboxesKept: 1 });
    expect(report.erased.conversations).toMatchObject({ conversations: 0, messages: 2 });

    const history = await conversations.history(room);
    expect(history.map((h) => h.text)).toContain("tia says hi");
    expect(history.some((h) => h.text.includes("sam"))).toBe(false); // theirs and the replies to them
    // The channel's sandbox and its transcript stay: the channel's memory (docs/retention.md).
    expect(existsSync(volume(room))).toBe(true);
    expect((await conversations.getConversation(room))?.origin.userId).not.toBe("sam");
    const dump = await s.dump();
    expect(dump).not.toMatch(/"userId":"sam"/);
    expect(dump).toMatch(/"userId":"tia"/);
  }, 60_000);

  it("erases a person: no record names them, no volume or snapshot is left, the erasure is audited by digest", async () => {
    const before = await s.dump();
    expect(before).toContain("api::alice");
    const sandboxId = (
      await s.gw.services.conversations.listConversations("default", { userId: "alice" })
    )[0]!.id;
    // A snapshot exists (taken after a successful turn) or is made here, so its removal is checked.
    mkdirSync(join(s.dataDir, "snapshots", sandboxId, "s1"), { recursive: true });
    writeFileSync(join(s.dataDir, "snapshots", sandboxId, "s1", "note.txt"), "alice's file");

    const link = await apiSettingsLink(
      {
        api: (p, i) =>
          fetch(`${s.gw.url}${p}`, {
            ...i,
            headers: { authorization: `Bearer ${s.admin}`, "content-type": "application/json" },
          }),
      },
      "alice",
    );
    const alice = await openSettings(s.gw, link);
    const res = await alice.call("POST", "/privacy/erase", { confirm: "erase everything" });
    expect(res.status).toBe(200);
    const report = (await res.json()) as {
      subject: string;
      erased: Record<string, Record<string, number>>;
    };
    expect(report.subject).toMatch(/^person:[0-9a-f]{24}$/);
    expect(report.erased.secrets?.secrets).toBe(1);
    expect(report.erased.sandboxes?.sandboxes).toBeGreaterThanOrEqual(1);

    await s.gw.services.audit.flush();
    const after = await s.dump();
    expect(after).not.toContain("api::alice");
    expect(after).not.toContain(encodeURIComponent("api::alice"));
    expect(after).not.toContain("hello from alice");
    // Records name people by their parts too (origins, sandbox labels).
    expect(after).not.toMatch(/"userId":"alice"/);
    expect(after).not.toContain("api:alice");
    expect(after).toContain(report.subject); // the erasure's own record, without the person's key
    for (const dir of ["volumes", "snapshots", "skill-views"]) {
      expect(existsSync(join(s.dataDir, dir, sandboxId)), dir).toBe(false);
    }
    expect(existsSync(`${join(s.dataDir, "volumes", sandboxId)}.img`)).toBe(false);
    // Her session ended with it.
    expect((await alice.call("GET", "/state")).status).toBe(401);
    // Others are untouched.
    expect(after).toContain("api::bob");
  }, 60_000);
});
