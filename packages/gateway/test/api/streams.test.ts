import { randomBytes } from "node:crypto";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type ApiGateway, type OpenStream, openStream, startApiGateway } from "./helpers.ts";

/**
 * Event streams hold a store reader (a Redis connection on Redis) for as long
 * as they are open: how many one token and one client address may hold at once
 * is capped, and a client that goes away gives its slot back.
 */

const KEY = "sk-ant-streams-0123456789abcdef";
let llm: MockLlm;

beforeAll(async () => {
  // Every turn waits for the model forever: its event stream stays open.
  llm = await startMockLlm({ apiKey: KEY, defaultReply: () => ({ hang: true }) });
});
afterAll(() => llm?.close());

const env = () => ({ ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url });

/** A message whose turn is running (and will not end). */
async function runningMessage(api: ApiGateway, token: string, user = "alice"): Promise<string> {
  const res = await api.call(token, "POST", "/api/v1/agents/default/messages", {
    user,
    text: "wait for me",
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { messageId: string }).messageId;
}

async function closeAll(streams: OpenStream[]) {
  for (const s of streams) s.close();
}

describe("with the default caps", () => {
  let api: ApiGateway;
  beforeAll(async () => {
    api = await startApiGateway({}, env());
  });
  afterAll(() => api?.close());

  it("refuses the streams of one token beyond 64 with 429 and Retry-After", async () => {
    const messageId = await runningMessage(api, api.adminToken);
    const url = `${api.url}/api/v1/messages/${messageId}/events`;
    const streams = await Promise.all(
      Array.from({ length: 100 }, () => openStream(url, { token: api.adminToken })),
    );
    try {
      const ok = streams.filter((s) => s.status === 200);
      const refused = streams.filter((s) => s.status === 429);
      expect(ok).toHaveLength(64);
      expect(refused).toHaveLength(36);
      expect(refused[0]!.headers["retry-after"]).toMatch(/^\d+$/);
      const body = JSON.parse(await refused[0]!.body()) as {
        error: { code: string; message: string; hint: string };
      };
      expect(body.error.code).toBe("too_many_streams");
      expect(body.error.message).toMatch(/64 event streams/);
      expect(body.error.hint).toMatch(/max_streams_per_token/);
    } finally {
      await closeAll(streams);
    }
  });
});

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const REDIS_PREFIX = `lobu-test:${randomBytes(6).toString("hex")}:`;

/** Delete what the Redis-backed gateway left under its key prefix. */
async function dropRedisKeys(): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${REDIS_PREFIX}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  await redis.quit();
}

// On Redis every open stream holds a reader connection: the case the caps are for.
describe.each([
  ["sqlite", {}],
  ["redis", { store: { driver: "redis", redis_url: REDIS_URL, key_prefix: REDIS_PREFIX } }],
] as const)("with small caps (%s store)", (kind, storeConfig) => {
  let api: ApiGateway;
  let other: string;
  beforeAll(async () => {
    api = await startApiGateway(
      { ...storeConfig, gateway: { max_streams_per_token: 3, max_streams_per_address: 5 } },
      env(),
    );
    other = (await api.token({ name: "other", role: "client" })).token;
  });
  afterAll(async () => {
    await api?.close();
    if (kind === "redis") await dropRedisKeys();
  });

  const caller = async (token: string) =>
    (
      (await (await api.call(token, "GET", "/api/v1/info")).json()) as {
        caller: { streams: { token: number; address: number } };
      }
    ).caller.streams;

  it("caps per token and per address, and gives slots back when clients go away", async () => {
    const adminMsg = await runningMessage(api, api.adminToken);
    const clientMsg = await runningMessage(api, other, "bob");
    const adminUrl = `${api.url}/api/v1/messages/${adminMsg}/events`;
    const clientUrl = `${api.url}/api/v1/messages/${clientMsg}/events`;
    const open: OpenStream[] = [];
    try {
      for (let i = 0; i < 3; i++) open.push(await openStream(adminUrl, { token: api.adminToken }));
      expect(open.map((s) => s.status)).toEqual([200, 200, 200]);
      const overToken = await openStream(adminUrl, { token: api.adminToken });
      expect(overToken.status).toBe(429);
      expect(JSON.parse(await overToken.body()).error.message).toMatch(/this token/);
      // POST …/messages with an SSE reply counts too.
      const overPost = await openStream(`${api.url}/api/v1/agents/default/messages`, {
        token: api.adminToken,
        method: "POST",
        body: { user: "alice", text: "one more" },
      });
      expect(overPost.status).toBe(429);

      // Another token from the same address: up to the address cap (5).
      for (let i = 0; i < 2; i++) open.push(await openStream(clientUrl, { token: other }));
      expect(open.map((s) => s.status)).toEqual([200, 200, 200, 200, 200]);
      const overAddress = await openStream(clientUrl, { token: other });
      expect(overAddress.status).toBe(429);
      expect(JSON.parse(await overAddress.body()).error.message).toMatch(/this address/);
      // The same token from another address is still within both caps.
      const elsewhere = await openStream(clientUrl, { token: other, localAddress: "127.0.0.2" });
      expect(elsewhere.status).toBe(200);
      open.push(elsewhere);
      expect(await caller(other)).toEqual({ token: 3, address: 5 });

      // Clients that hang up give their slots back.
      open.shift()!.close();
      open.shift()!.close();
      await vi.waitFor(async () => expect((await caller(api.adminToken)).token).toBe(1), {
        timeout: 10_000,
        interval: 50,
      });
      expect((await caller(api.adminToken)).address).toBe(3);
      const again = await openStream(adminUrl, { token: api.adminToken });
      expect(again.status).toBe(200);
      open.push(again);
    } finally {
      await closeAll(open);
    }
    await vi.waitFor(async () => expect(await caller(other)).toEqual({ token: 0, address: 0 }), {
      timeout: 10_000,
      interval: 50,
    });
  });
});
