import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentEvent, createLogger, LobuConfig } from "@lobu/core";
import {
  type Gateway,
  PLATFORMS,
  type PlatformAdapter,
  type PlatformPlugin,
  startGateway,
} from "@lobu/gateway";
import { removeDataDir } from "@lobu/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Origin } from "../../src/domain/origin.ts";
import { createStore, type Store } from "../../src/store/index.ts";

/**
 * A gateway on Redis whose records another party corrupts behind its back
 * (another gateway version sharing the store, a bad restore, an attacker with
 * store access): it keeps serving, refuses what it cannot read, logs what was
 * lost, and tells the sender of a message it cannot process.
 */

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `lobu-test:${randomBytes(6).toString("hex")}:`;

/** A chat platform that records the notices the gateway sends into its threads. */
class NoticeBoard implements PlatformAdapter {
  readonly platform = "board";
  readonly notices: { origin: Origin; text: string }[] = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async deliver(_origin: Origin, turn: { events: AsyncIterable<AgentEvent> }): Promise<void> {
    for await (const _ of turn.events);
  }
  async notify(origin: Origin, text: string): Promise<void> {
    this.notices.push({ origin, text });
  }
}

const board = new NoticeBoard();
const boardPlugin: PlatformPlugin = { id: "board", create: () => board };

let gw: Gateway;
let dataDir: string;
let admin: string;
/** A second store on the gateway's data: the party that corrupts it. */
let other: Store;
const lines: Record<string, unknown>[] = [];

const api = (path: string, init: RequestInit = {}, token = admin) =>
  fetch(`${gw.url}/api/v1${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      ...(init.headers as Record<string, string> | undefined),
    },
  });

async function until<T>(check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "lobu-unreadable-e2e-"));
  gw = await startGateway({
    config: LobuConfig.parse({
      store: { driver: "redis", redis_url: REDIS_URL, key_prefix: PREFIX },
      sandbox: { driver: "host", allow_unsandboxed: true },
      platforms: { board: {} },
    }),
    dataDir,
    port: 0,
    env: { ANTHROPIC_API_KEY: "sk-ant-unreadable-tests-0123456789" },
    log: createLogger("test", { destination: { write: (l) => lines.push(JSON.parse(l)) } }),
    platforms: [...PLATFORMS, boardPlugin],
  });
  admin = readFileSync(gw.summary.adminTokenFile, "utf8").trim();
  other = await createStore({ driver: "redis", url: REDIS_URL, prefix: PREFIX });
});

afterAll(async () => {
  await other?.close();
  await gw?.close();
  if (dataDir) removeDataDir(dataDir);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${PREFIX}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  await redis.quit();
});

describe("a gateway whose stored records are unreadable", () => {
  it("dead-letters a queued message it cannot read at once, and its sender is told in their thread", async () => {
    const origin: Origin = { platform: "board", channelId: "room", userId: "ada", isDirect: true };
    const messageId = "msg_unreadable_payload";
    await gw.services.conversations.putMessage({
      id: messageId,
      conversationId: "sb_unreadable",
      agentId: "default",
      origin,
      text: "hello",
      status: "queued",
      createdAt: Date.now(),
    });
    await other.queue.enqueue("sb_unreadable", '{"messageId":"msg_unreadable_payload"', {
      id: messageId,
    });

    const notice = await until(() => board.notices.find((n) => n.origin.userId === "ada"));
    expect(notice.text).toMatch(/could not process this message: its queued copy is unreadable/);
    const record = await (await api(`/messages/${messageId}`)).json();
    expect(record).toMatchObject({
      status: "error",
      error: { message: expect.stringContaining("queued copy is unreadable") },
    });
    // Taken off the queue, not retried.
    expect(await other.queue.get(messageId)).toBeNull();
    expect(lines).toContainEqual(
      expect.objectContaining({
        record: "queued turn",
        key: `queue sb_unreadable ${messageId}`,
        reason: "not valid JSON",
      }),
    );
  });

  it("refuses a token whose record is unreadable, and keeps serving the others", async () => {
    const created = await api("/tokens", {
      method: "POST",
      body: JSON.stringify({ name: "app", role: "client" }),
    });
    const { token, id } = (await created.json()) as { token: string; id: string };
    expect((await api("/agents", {}, token)).status).toBe(200);
    const key = `apitoken:${createHash("sha256").update(token).digest("hex")}`;
    const info = JSON.parse((await other.kv.get(key))!);
    await other.kv.set(key, JSON.stringify({ ...info, role: "owner" }));

    expect((await api("/agents", {}, token)).status).toBe(401);
    expect((await api("/agents")).status).toBe(200);
    const listed = (await (await api("/tokens")).json()) as { tokens: { id: string }[] };
    expect(listed.tokens.map((t) => t.id)).not.toContain(id);
    expect(lines).toContainEqual(expect.objectContaining({ record: "api token", key }));
  });

  it("answers 404 for a message whose record is unreadable, and 500 record_unreadable for such an agent", async () => {
    await other.kv.set("msg:msg_torn", "{torn");
    expect((await api("/messages/msg_torn")).status).toBe(404);

    expect((await api("/agents", { method: "POST", body: '{"id":"ops"}' })).status).toBe(201);
    const agent = JSON.parse((await other.kv.get("agent:ops"))!);
    await other.kv.set("agent:ops", JSON.stringify({ ...agent, groupRouting: "everyone" }));
    const res = await api("/agents/ops");
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({
      error: { code: "record_unreadable", hint: expect.stringContaining("DELETE") },
    });
    // The fix the hint gives works.
    expect((await api("/agents/ops", { method: "DELETE" })).status).toBe(204);
    expect((await api("/agents", { method: "POST", body: '{"id":"ops"}' })).status).toBe(201);
    expect(lines).toContainEqual(
      expect.objectContaining({ record: "message", key: "msg:msg_torn" }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ record: "agent", key: "agent:ops" }));
  });
});
