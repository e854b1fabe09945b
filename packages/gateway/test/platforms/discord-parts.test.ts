import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API } from "@discordjs/core";
import { isLobuError, redactSecrets } from "@lobu/core";
import { type DiscordEmulator, startDiscordEmulator } from "@lobu/testkit";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiscordAdapter } from "../../src/platforms/discord/adapter.ts";
import { cardComponents, customId, parseCustomId } from "../../src/platforms/discord/components.ts";
import { discordSettings } from "../../src/platforms/discord/config.ts";
import { DiscordFiles } from "../../src/platforms/discord/files.ts";
import { toDiscord } from "../../src/platforms/discord/format.ts";
import { connectGateway, restClient } from "../../src/platforms/discord/gateway.ts";
import { classifyMessage, GatewayMessage } from "../../src/platforms/discord/webhook/parse.ts";
import {
  checkSignatureHeaders,
  publicKeyOf,
  verifyInteraction,
} from "../../src/platforms/discord/webhook/verify.ts";
import type { AdapterContext } from "../../src/platforms/shared/adapter.ts";
import { createStore, type Store } from "../../src/store/index.ts";

/**
 * The Discord adapter's parts on their own: Ed25519 verification, which
 * messages are for the bot, the components of a card and their ids,
 * formatting, settings, and the Gateway connection's refusal of a bad token
 * (the real @discordjs/ws against the emulator).
 */

const silent = pino({ level: "silent" });
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const publicHex = Buffer.from(
  (publicKey.export({ format: "jwk" }) as { x: string }).x,
  "base64url",
).toString("hex");
const key = publicKeyOf(publicHex);
const now = Math.floor(Date.now() / 1000);
const signed = (timestamp: string, body: string) =>
  sign(null, Buffer.from(timestamp + body), privateKey).toString("hex");

let dir: string;
let store: Store;
let dc: DiscordEmulator;

function state(): AdapterContext["state"] {
  const k = (key: string) => `platform:discord-parts:${key}`;
  return {
    get: (key) => store.kv.get(k(key)),
    set: async (key, value, ttlMs) => {
      await store.kv.set(k(key), value, ttlMs ? { ttlMs } : undefined);
    },
    del: async (key) => {
      await store.kv.del(k(key));
    },
    take: (key) => store.kv.take(k(key)),
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-discord-parts-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  dc = await startDiscordEmulator({ botToken: "right-token" });
});

afterAll(async () => {
  await dc?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Ed25519 interaction signatures", () => {
  const body = '{"type":1}';
  const ts = String(now);

  it("accepts the application's signature of timestamp + body", () => {
    const headers = { timestamp: ts, signature: signed(ts, body) };
    expect(verifyInteraction(key, headers, Buffer.from(body), now)).toEqual({ ok: true });
  });

  it("refuses another key, another body, another timestamp, stale and malformed headers", () => {
    const other = generateKeyPairSync("ed25519").privateKey;
    const foreign = sign(null, Buffer.from(ts + body), other).toString("hex");
    expect(
      verifyInteraction(key, { timestamp: ts, signature: foreign }, Buffer.from(body), now).ok,
    ).toBe(false);
    const good = signed(ts, body);
    expect(
      verifyInteraction(key, { timestamp: ts, signature: good }, Buffer.from('{"type":2}'), now).ok,
    ).toBe(false);
    expect(
      verifyInteraction(
        key,
        { timestamp: String(now - 1), signature: good },
        Buffer.from(body),
        now,
      ).ok,
    ).toBe(false);
    const old = String(now - 301);
    expect(checkSignatureHeaders({ timestamp: old, signature: signed(old, body) }, now)).toEqual({
      ok: false,
      reason: "stale timestamp",
    });
    expect(checkSignatureHeaders({ timestamp: ts, signature: undefined }, now).ok).toBe(false);
    expect(checkSignatureHeaders({ timestamp: "12ab", signature: good }, now).ok).toBe(false);
    expect(checkSignatureHeaders({ timestamp: ts, signature: good.slice(2) }, now).ok).toBe(false);
  });
});

describe("which messages are for the bot", () => {
  const bot = "111111111111111111";
  const msg = (fields: Record<string, unknown>) =>
    GatewayMessage.parse({
      id: "222222222222222222",
      channel_id: "333333333333333333",
      author: { id: "444444444444444444", username: "ada" },
      content: "hi",
      ...fields,
    });

  it("takes DMs, mentions and replies to the bot; ignores the rest and bots", () => {
    expect(classifyMessage(msg({}), bot)).toEqual({ kind: "message", text: "hi" });
    const guild = { guild_id: "555555555555555555" };
    expect(classifyMessage(msg(guild), bot).kind).toBe("ignore");
    expect(
      classifyMessage(
        msg({ ...guild, content: `<@${bot}>  do it`, mentions: [{ id: bot, username: "lobu" }] }),
        bot,
      ),
    ).toEqual({ kind: "message", text: "do it" });
    expect(
      classifyMessage(
        msg({ ...guild, referenced_message: { author: { id: bot, username: "lobu" } } }),
        bot,
      ).kind,
    ).toBe("message");
    expect(classifyMessage(msg({ author: { id: "9", username: "b", bot: true } }), bot).kind).toBe(
      "ignore",
    );
    expect(GatewayMessage.safeParse({ id: "x" }).success).toBe(false);
  });
});

describe("cards", () => {
  it("uses buttons for up to five choices and a select menu beyond", async () => {
    const s = state();
    const question = (n: number) => ({
      type: "question" as const,
      requestId: "req1",
      prompt: "?",
      options: Array.from({ length: n }, (_, i) => ({ id: `o${i}`, label: `Option ${i}` })),
      allowText: true,
    });
    const five = await cardComponents(question(5), undefined, s);
    expect(five[0]?.components.every((c) => c.type === 2)).toBe(true);
    const six = await cardComponents(question(6), undefined, s);
    expect(six[0]?.components[0]).toMatchObject({ type: 3, custom_id: "lobu:s:req1" });
    expect(await parseCustomId("lobu:s:req1", "o5", s, silent)).toEqual({
      requestId: "req1",
      choice: "o5",
    });
  });

  it("keeps a long answer id in the state; unknown ids read as inactive", async () => {
    const s = state();
    expect(await customId("req1", "approve", s)).toBe("lobu:req1:approve");
    const long = await customId("r".repeat(120), "approve", s);
    expect(long.length).toBeLessThanOrEqual(100);
    expect(await parseCustomId(long, undefined, s, silent)).toEqual({
      requestId: "r".repeat(120),
      choice: "approve",
    });
    expect(await parseCustomId("lobu:t:nope", undefined, s, silent)).toBeUndefined();
    expect(await parseCustomId("lobu:s:req1", undefined, s, silent)).toBeUndefined();
    expect(await parseCustomId("other:req1:x", undefined, s, silent)).toBeUndefined();
  });
});

describe("formatting", () => {
  it("keeps Markdown, escapes markup in text, defuses @everyone and splits at 2000", () => {
    expect(toDiscord("**bold** and a_b and @everyone")).toEqual([
      "**bold** and a\\_b and @\u200beveryone",
    ]);
    const parts = toDiscord(
      Array.from({ length: 60 }, (_, i) => `Line ${i} ${"x".repeat(60)}`).join("\n\n"),
    );
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(2000);
  });
});

describe("settings and connecting", () => {
  it("is off without a section or token, and says what is missing", () => {
    expect(discordSettings(undefined, {})).toBeUndefined();
    const err = (() => {
      try {
        discordSettings({}, { DISCORD_BOT_TOKEN: "t" });
      } catch (e) {
        return e;
      }
    })();
    expect(isLobuError(err) && err.message).toContain("DISCORD_PUBLIC_KEY is not set");
    expect(() => discordSettings({}, { DISCORD_BOT_TOKEN: "t", DISCORD_PUBLIC_KEY: "zz" })).toThrow(
      /64-character/,
    );
    expect(
      discordSettings({}, { DISCORD_BOT_TOKEN: "t", DISCORD_PUBLIC_KEY: publicHex }),
    ).toMatchObject({
      apiRoot: "https://discord.com/api",
      registerCommands: true,
    });
  });

  it("keeps its token out of the log", () => {
    const settings = discordSettings(
      {},
      { DISCORD_BOT_TOKEN: "MTAlog.never.789", DISCORD_PUBLIC_KEY: publicHex },
    );
    if (!settings) throw new Error("set up");
    new DiscordAdapter(settings);
    expect(redactSecrets("Bot MTAlog.never.789")).toBe("Bot [REDACTED]");
  });

  it("refuses to start with a token Discord rejects, saying what to fix", async () => {
    const settings = { apiRoot: dc.apiUrl, token: "wrong-token" };
    const err = await connectGateway(settings, restClient(settings), silent, () => {}).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/Discord rejected DISCORD_BOT_TOKEN/);
  });

  it("connects with the right token and learns who the bot is", async () => {
    const settings = { apiRoot: dc.apiUrl, token: "right-token" };
    const connection = await connectGateway(settings, restClient(settings), silent, () => {});
    expect(connection.botId).toBe(dc.bot.id);
    expect(connection.applicationId).toBe(dc.applicationId);
    await connection.gateway.destroy();
  });
});

describe("Discord: attachment URLs", () => {
  const files = new DiscordFiles(() => {
    throw new Error("no API in this test");
  }, "https://discord.com/api");
  const origin = { platform: "discord", channelId: "1", userId: "2", isDirect: true };
  const opts = { maxBytes: 1024 };

  it("fetches only from Discord's CDN over https: internal, look-alike and plain-http URLs are refused unfetched", async () => {
    for (const url of [
      "http://169.254.169.254/latest/meta-data/",
      "http://127.0.0.1:6379/",
      "https://cdn.discordapp.com.evil.example/attachments/1/2/x.txt",
      "https://evil.example/cdn.discordapp.com/x.txt",
      "http://cdn.discordapp.com/attachments/1/2/x.txt",
      "https://user@cdn.discordapp.com.evil.example/x",
      "not a url",
    ])
      await expect(files.download(origin, { name: "x.txt", ref: url }, opts), url).rejects.toThrow(
        /not on Discord's CDN/,
      );
  });
});

describe("the emulator's interaction webhook (as Discord answers it)", () => {
  /** An interactions endpoint that verifies like the gateway and defers every command, ephemerally. */
  async function deferringEndpoint(): Promise<{ url: string; close(): Promise<void> }> {
    const appKey = publicKeyOf(dc.publicKey);
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const headers = {
          signature: req.headers["x-signature-ed25519"] as string | undefined,
          timestamp: req.headers["x-signature-timestamp"] as string | undefined,
        };
        if (!verifyInteraction(appKey, headers, raw).ok) {
          res.writeHead(401).end();
          return;
        }
        const type = (JSON.parse(raw.toString()) as { type: number }).type;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(type === 1 ? { type: 1 } : { type: 5, data: { flags: 64 } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/interactions`,
      close: () => new Promise((r) => server.close(() => r())),
    };
  }

  it("shows a deferred answer as thinking, edits it in by token, takes ephemeral follow-ups, and refuses a stranger's or an old token", async () => {
    const endpoint = await deferringEndpoint();
    try {
      expect((await dc.setInteractionsEndpoint(endpoint.url)).ok).toBe(true);
      const api = new API(restClient({ apiRoot: dc.apiUrl, token: "right-token" }));
      await api.applicationCommands.bulkOverwriteGlobalCommands(dc.applicationId, [
        { name: "lobu", description: "settings" },
      ]);
      const { channelId } = dc.addGuild("Webhooks");
      const ann = { id: "810000000000000001", username: "ann" };
      const i = await dc.slashCommand(ann, channelId, "lobu");
      const thinking = dc.messages(channelId, ann.id).find((m) => m.interactionToken === i.token);
      expect(thinking).toMatchObject({ deferred: true, content: "", ephemeralTo: ann.id });
      const edited = await api.interactions.editReply(dc.applicationId, i.token, {
        content: "the answer",
      });
      expect(edited.flags).toBe(64);
      expect(dc.message(edited.id)).toMatchObject({ content: "the answer", deferred: undefined });
      const follow = await api.interactions.followUp(dc.applicationId, i.token, {
        content: "and more",
        flags: 64,
      });
      expect(dc.message(follow.id)?.ephemeralTo).toBe(ann.id);
      // Nobody else sees either.
      expect(dc.messages(channelId).some((m) => m.interactionToken === i.token)).toBe(false);
      const stranger = await api.interactions
        .editReply("810000000000000009", i.token, { content: "x" })
        .catch((e: { status?: number; code?: number }) => e);
      expect(stranger).toMatchObject({ status: 404, code: 10015 });
      dc.ageInteraction(i.token, 15 * 60_000 + 1);
      const late = await api.interactions
        .editReply(dc.applicationId, i.token, { content: "late" })
        .catch((e: { status?: number; code?: number }) => e);
      expect(late).toMatchObject({ status: 401, code: 50027 });
    } finally {
      await endpoint.close();
    }
  });
});
