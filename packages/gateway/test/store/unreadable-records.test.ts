import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentRegistry } from "../../src/agents/registry.ts";
import { AuditLog } from "../../src/audit/log.ts";
import { Conversations, eventsStream } from "../../src/conversations/records.ts";
import type { Origin } from "../../src/domain/origin.ts";
import { UserSettingsStore } from "../../src/people/user-settings.ts";
import { platformRoutes } from "../../src/platforms/shared/routes.ts";
import { Workspaces } from "../../src/platforms/slack/workspaces.ts";
import { parseCallbackData } from "../../src/platforms/telegram/keyboard.ts";
import { SandboxRecords } from "../../src/runtime/sandbox-records.ts";
import { SecretStore } from "../../src/secrets/store.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { adapterContext } from "../../src/wiring/adapter-context.ts";

/**
 * Records read back from the store are checked against the schema they were
 * written with. A corrupt one, or one an incompatible version wrote, is never
 * handed on as valid and never crashes its reader: it reads as absent (or is
 * skipped, or replaced where the reader writes anyway), and the log names
 * the record, its key and why. (Credentials and requests: security/unreadable-records.test.ts;
 * the queue payload: runtime/dispatcher.test.ts and e2e/unreadable-records.test.ts.)
 */

interface Logged {
  level: number;
  record?: string;
  key?: string;
  reason?: string;
  msg: string;
}

let store: Store;
let lines: Logged[];
const log = createLogger("test", {
  destination: { write: (line) => lines.push(JSON.parse(line) as Logged) },
});

/** The log line of the unreadable record `record` at `key`, with its reason. */
function loggedUnreadable(record: string, key: string, reason: string | RegExp = /.+/) {
  expect(lines).toContainEqual(
    expect.objectContaining({
      record,
      key,
      reason: typeof reason === "string" ? reason : expect.stringMatching(reason),
      msg: expect.stringContaining("is unreadable"),
    }),
  );
}

const origin: Origin = {
  platform: "api",
  channelId: "c1",
  userId: "u1",
  isDirect: true,
};
const key = { agentId: "default", platform: "api", userId: "u1", channelId: "c1" };

beforeEach(async () => {
  lines = [];
  store = await createStore({
    driver: "sqlite",
    path: join(mkdtempSync(join(tmpdir(), "lobu-unreadable-")), "db"),
  });
});
afterEach(async () => {
  await store.close();
});

describe("messages and conversations", () => {
  const message = (id: string) => ({
    id,
    conversationId: "sb_1",
    agentId: "default",
    origin,
    text: "hi",
    status: "queued" as const,
    createdAt: 1,
  });

  it("a corrupt or old-version message reads as absent and is never patched", async () => {
    const conversations = new Conversations(store, log);
    await store.kv.set("msg:m-torn", '{"id":"m-torn","status":');
    const { origin: _o, ...old } = message("m-old");
    await store.kv.set("msg:m-old", JSON.stringify(old));
    expect(await conversations.getMessage("m-torn")).toBeNull();
    expect(await conversations.getMessage("m-old")).toBeNull();
    expect(await conversations.updateMessage("m-old", { status: "done" })).toBeNull();
    // What was there is left for an operator to look at, not overwritten by a half record.
    expect(await store.kv.get("msg:m-old")).toBe(JSON.stringify(old));
    loggedUnreadable("message", "msg:m-torn", "not valid JSON");
    loggedUnreadable("message", "msg:m-old", /origin/);

    await conversations.putMessage(message("m-good"));
    expect(await conversations.updateMessage("m-good", { status: "done" })).toMatchObject({
      id: "m-good",
      status: "done",
    });
  });

  it("a corrupt conversation reads as absent, is left out of lists, and is replaced on the next message", async () => {
    const conversations = new Conversations(store, log);
    await conversations.touchConversation("sb_good", key, origin);
    await store.kv.set("conv:sb_bad", JSON.stringify({ id: "sb_bad", key: "not a key" }));
    await store.kv.set("convidx:default:sb_bad", "1");

    expect(await conversations.getConversation("sb_bad")).toBeNull();
    expect((await conversations.listConversations("default")).map((c) => c.id)).toEqual([
      "sb_good",
    ]);
    loggedUnreadable("conversation", "conv:sb_bad", /key/);

    const rec = await conversations.touchConversation("sb_bad", key, origin);
    expect(await conversations.getConversation("sb_bad")).toEqual(rec);
  });

  it("history and event logs skip unreadable entries without losing their place", async () => {
    const conversations = new Conversations(store, log);
    const entry = (text: string) => ({ role: "user", text, messageId: "m1", at: 1 });
    await store.streams.append("hist:sb_1", JSON.stringify(entry("one")));
    const bad = await store.streams.append("hist:sb_1", JSON.stringify({ role: "robot" }));
    await store.streams.append("hist:sb_1", JSON.stringify(entry("two")));
    // A page of one is filled past the unreadable entry.
    const first = await conversations.history("sb_1", { limit: 1 });
    const second = await conversations.history("sb_1", { after: first[0]!.cursor, limit: 1 });
    expect([...first, ...second].map((e) => e.text)).toEqual(["one", "two"]);
    loggedUnreadable("history entry", `hist:sb_1 ${bad}`, /role/);

    const torn = await store.streams.append(eventsStream("m1"), "{torn");
    const reading = conversations.readEvents("m1", undefined, { blockMs: 5_000 });
    await store.streams.append(eventsStream("m1"), JSON.stringify({ type: "done", text: "ok" }));
    // The reader is not stuck on the unreadable entry: it gets the next event.
    expect((await reading).map((e) => e.event)).toEqual([{ type: "done", text: "ok" }]);
    loggedUnreadable("turn event", `${eventsStream("m1")} ${torn}`, "not valid JSON");
  });
});

describe("people's settings", () => {
  it("corrupt settings count as none, and the next change replaces them", async () => {
    const settings = new UserSettingsStore(store.kv, log);
    await store.kv.set("usettings:default:api::u1", JSON.stringify({ domains: "*" }));
    expect(await settings.get("default", "api::u1")).toMatchObject({ domains: [], skills: [] });
    loggedUnreadable("user settings", "usettings:default:api::u1", /domains/);

    const next = await settings.update("default", "api::u1", (s) => ({
      ...s,
      domains: ["example.com"],
    }));
    expect(next.domains).toEqual(["example.com"]);
    expect(await settings.get("default", "api::u1")).toMatchObject({ domains: ["example.com"] });
  });

  it("settings written before a field existed still read, with it empty", async () => {
    const settings = new UserSettingsStore(store.kv, log);
    await store.kv.set("usettings:default:api::u2", JSON.stringify({ domains: ["a.com"] }));
    expect(await settings.get("default", "api::u2")).toEqual({
      skills: [],
      domains: ["a.com"],
      packages: [],
      mcp: [],
      toolPolicy: {},
      updatedAt: 0,
    });
    expect(lines.filter((l) => l.record)).toEqual([]);
  });
});

describe("sandbox records", () => {
  it("a corrupt record reads as none, is left out of lists and patches, and a start writes a fresh one", async () => {
    const records = new SandboxRecords(store.kv, "host", log);
    await records.update("sb_good", key, (r) => r);
    // Another version's idea of `starts`, in an otherwise sound record.
    const good = (await records.get("sb_good"))!;
    const corrupt = JSON.stringify({ ...good, id: "sb_bad", starts: "many" });
    await store.kv.set("sandbox:sb_bad", corrupt);

    expect(await records.get("sb_bad")).toBeNull();
    expect((await records.list()).map((r) => r.id)).toEqual(["sb_good"]);
    expect(await records.patch("sb_bad", (r) => ({ ...r, pendingNotice: "x" }))).toBeUndefined();
    expect(await store.kv.get("sandbox:sb_bad")).toBe(corrupt);
    loggedUnreadable("sandbox record", "sandbox:sb_bad", /starts/);

    const fresh = await records.update("sb_bad", key, (r) => ({ ...r, starts: r.starts + 1 }));
    expect(fresh).toMatchObject({ id: "sb_bad", starts: 1, driver: "host" });
    expect(await records.get("sb_bad")).toEqual(fresh);
  });
});

describe("agents, secrets and the audit log", () => {
  it("an agent whose stored definition is unreadable is refused with record_unreadable, not guessed", async () => {
    const agents = new AgentRegistry(store.kv, LobuConfig.parse({}), log);
    await agents.create({ id: "good" });
    await store.kv.set("agent:broken", JSON.stringify({ id: "broken", tools: "all" }));

    await expect(agents.get("broken")).rejects.toMatchObject({
      code: "record_unreadable",
      status: 500,
      hint: expect.stringContaining("DELETE /api/v1/agents/broken"),
    });
    await expect(agents.update("broken", { name: "x" })).rejects.toMatchObject({
      code: "record_unreadable",
    });
    expect((await agents.list()).map((a) => a.id)).toEqual(["good"]);
    loggedUnreadable("agent", "agent:broken", /tools/);

    await agents.delete("broken");
    expect((await agents.create({ id: "broken" })).id).toBe("broken");
  });

  it("a corrupt secret is refused (never read from a wider scope), hidden from lists, and replaced by a set", async () => {
    const secrets = new SecretStore(store.kv, randomBytes(32), { log });
    const user = { kind: "user", agentId: "default", userKey: "api::u1" } as const;
    await secrets.set({ scope: { kind: "installation" }, name: "gh" }, "team-value-0123456789");
    await secrets.set({ scope: user, name: "gh" }, "user-value-0123456789");
    const userKey = "secret:user:default:api%3A%3Au1:gh";
    await store.kv.set(userKey, JSON.stringify({ name: "gh", data: 42 }));

    await expect(
      secrets.resolve("gh", { agentId: "default", userKey: "api::u1" }),
    ).rejects.toMatchObject({
      code: "secret_undecryptable",
      message: expect.stringContaining(userKey),
    });
    await expect(secrets.get({ scope: user, name: "gh" })).rejects.toMatchObject({
      code: "secret_undecryptable",
    });
    expect(await secrets.meta({ scope: user, name: "gh" })).toBeNull();
    expect((await secrets.list()).map((m) => m.scope.kind)).toEqual(["installation"]);
    loggedUnreadable("secret", userKey, /scope/);

    expect((await secrets.set({ scope: user, name: "gh" }, "new-user-value-0123")).version).toBe(1);
    expect(await secrets.get({ scope: user, name: "gh" })).toBe("new-user-value-0123");
  });

  it("unreadable audit entries are skipped by readers", async () => {
    const audit = new AuditLog(store, { log });
    await store.streams.append(
      "audit",
      JSON.stringify({ at: 1, action: "a.one", actor: "system" }),
    );
    const bad = await store.streams.append("audit", JSON.stringify({ at: "yesterday" }));
    await store.streams.append(
      "audit",
      JSON.stringify({ at: 3, action: "a.two", actor: "system" }),
    );
    expect((await audit.recent()).map((r) => r.action)).toEqual(["a.two", "a.one"]);
    loggedUnreadable("audit record", `audit ${bad}`, /at/);
  });
});

describe("platform state", () => {
  /** The state and secrets a platform gets, on the real store and secret store. */
  function platformContext(platform: string) {
    const secrets = new SecretStore(store.kv, randomBytes(32), { log });
    const notUsed = () => {
      throw new Error("not used by platform state");
    };
    return adapterContext(
      {
        log,
        publicUrl: { value: "http://127.0.0.1:1" },
        kv: store.kv,
        streams: store.streams,
        inbound: { submit: notUsed, refusal: notUsed },
        answer: notUsed,
        route: { conversationOf: notUsed },
        stops: { stop: notUsed },
        config: { admin: { users: [] } },
        settingsLinks: { create: notUsed },
        audit: new AuditLog(store, { log }),
        secrets,
        agents: { bindChannel: notUsed },
      },
      platform,
      platformRoutes(new Hono()),
    );
  }

  it("a corrupt Slack installation reads as a workspace that is not installed", async () => {
    const ctx = platformContext("slack");
    await ctx.secrets.set("bot_token.T1", "xoxb-corrupt-install-test");
    await ctx.state.set("install:T1", JSON.stringify({ teamId: "T1", scopes: [] }));
    const workspaces = new Workspaces("http://127.0.0.1:1/api", log, ctx);
    expect(await workspaces.get("T1")).toBeUndefined();
    loggedUnreadable("Slack installation", "install:T1", /botUserId/);
  });

  it("a corrupt Telegram button answer reads as an inactive button", async () => {
    const ctx = platformContext("telegram");
    await ctx.state.set("cb:tok1", JSON.stringify({ requestId: 7 }));
    await ctx.state.set("cb:tok2", JSON.stringify({ requestId: "req_1", choice: "approve" }));
    expect(await parseCallbackData("t:tok1", ctx.state, log)).toBeUndefined();
    expect(await parseCallbackData("t:tok2", ctx.state, log)).toEqual({
      requestId: "req_1",
      choice: "approve",
    });
    loggedUnreadable("Telegram button answer", "cb:tok1", /requestId/);
  });
});
