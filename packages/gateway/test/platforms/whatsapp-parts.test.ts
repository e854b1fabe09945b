import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isLobuError, redactSecrets } from "@lobu/core";
import { signWhatsAppBody, startWhatsAppEmulator, type WhatsAppEmulator } from "@lobu/testkit";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AdapterContext } from "../../src/platforms/shared/adapter.ts";
import { RetryLater } from "../../src/platforms/shared/pacing.ts";
import { WhatsAppAdapter } from "../../src/platforms/whatsapp/adapter.ts";
import {
  GraphApiError,
  GraphClient,
  rateLimitOf,
  waCall,
} from "../../src/platforms/whatsapp/client.ts";
import { whatsappSettings } from "../../src/platforms/whatsapp/config.ts";
import { toWhatsAppText } from "../../src/platforms/whatsapp/format.ts";
import { choicesMessage, textMessage } from "../../src/platforms/whatsapp/payloads.ts";
import { parseReplyId, replyId } from "../../src/platforms/whatsapp/reply-ids.ts";
import { WindowedSender } from "../../src/platforms/whatsapp/sender.ts";
import { inboundOf, Notification } from "../../src/platforms/whatsapp/webhook/parse.ts";
import {
  checkSignatureHeader,
  verificationChallenge,
  verifyHubSignature,
} from "../../src/platforms/whatsapp/webhook/verify.ts";
import { SERVICE_WINDOW_MS, ServiceWindow } from "../../src/platforms/whatsapp/window.ts";
import { createStore, type Store } from "../../src/store/index.ts";

/**
 * The WhatsApp adapter's parts on their own: the signature and handshake
 * checks, what is read from a notification, the shapes sent for cards, the
 * 24-hour window and the Graph client against the Cloud API emulator.
 */

const SECRET = "app-secret-parts";
const PHONE = "1065400000001";
const TOKEN = "EAAparts-token";
const silent = pino({ level: "silent" });
const bytes = (s: string) => new TextEncoder().encode(s);

let dir: string;
let store: Store;
let wa: WhatsAppEmulator;

function state(prefix: string): AdapterContext["state"] {
  const k = (key: string) => `platform:${prefix}:${key}`;
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
  dir = mkdtempSync(join(tmpdir(), "lobu-whatsapp-parts-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  wa = await startWhatsAppEmulator({
    accessToken: TOKEN,
    appSecret: SECRET,
    phoneNumberId: PHONE,
    templates: [{ name: "reply_waiting", language: "en", text: "A reply is waiting." }],
  });
});

afterAll(async () => {
  await wa?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("X-Hub-Signature-256", () => {
  const body = '{"object":"whatsapp_business_account","entry":[]}';

  it("accepts the app secret's HMAC of the exact bytes", () => {
    expect(verifyHubSignature(SECRET, signWhatsAppBody(SECRET, body), bytes(body))).toEqual({
      ok: true,
    });
  });

  it("refuses another secret, a changed byte, and malformed or missing headers", () => {
    const good = signWhatsAppBody(SECRET, body);
    expect(verifyHubSignature("other", signWhatsAppBody("other", body), bytes(body)).ok).toBe(true);
    expect(verifyHubSignature(SECRET, signWhatsAppBody("other", body), bytes(body)).ok).toBe(false);
    expect(verifyHubSignature(SECRET, good, bytes(body.replace("[]", "[ ]"))).ok).toBe(false);
    expect(verifyHubSignature(SECRET, good.toUpperCase(), bytes(body)).ok).toBe(false);
    expect(verifyHubSignature(SECRET, `${good}0`, bytes(body)).ok).toBe(false);
    expect(verifyHubSignature(SECRET, good.replace("sha256=", "sha1="), bytes(body)).ok).toBe(
      false,
    );
    expect(checkSignatureHeader(undefined)).toEqual({
      ok: false,
      reason: "missing X-Hub-Signature-256",
    });
    expect(checkSignatureHeader("sha256=xyz").ok).toBe(false);
  });

  it("signs the bytes, not a re-encoding of them", () => {
    // The same JSON value written differently is a different signature.
    const spaced = body.replace(":", ": ");
    expect(verifyHubSignature(SECRET, signWhatsAppBody(SECRET, body), bytes(spaced)).ok).toBe(
      false,
    );
  });
});

describe("the verification handshake", () => {
  it("echoes a plain challenge only for subscribe with the verify token", () => {
    const q = { mode: "subscribe", token: "verify-me", challenge: "1158201444" };
    expect(verificationChallenge(q, "verify-me")).toEqual({ ok: true, challenge: "1158201444" });
    expect(verificationChallenge({ ...q, token: "verify-mf" }, "verify-me").ok).toBe(false);
    expect(verificationChallenge({ ...q, token: undefined }, "verify-me").ok).toBe(false);
    expect(verificationChallenge({ ...q, mode: "unsubscribe" }, "verify-me").ok).toBe(false);
    expect(verificationChallenge({ ...q, challenge: "<b>hi</b>" }, "verify-me").ok).toBe(false);
    expect(verificationChallenge({ ...q, challenge: "x".repeat(129) }, "verify-me").ok).toBe(false);
  });
});

describe("reading notifications", () => {
  const person = { waId: "4915100000001", name: "Ada" };
  const read = (message: Record<string, unknown>, phone = PHONE) => {
    const n = JSON.parse(wa.notification(person, message).body);
    n.entry[0].changes[0].value.metadata.phone_number_id = phone;
    return inboundOf(Notification.parse(n), PHONE, silent);
  };

  it("reads text, button and list replies, and captioned media", () => {
    expect(read({ type: "text", text: { body: "  hi  " } })).toMatchObject([
      { kind: "message", from: person.waId, name: "Ada", text: "hi", files: [] },
    ]);
    expect(
      read({
        type: "interactive",
        interactive: { type: "button_reply", button_reply: { id: "r:q:o1", title: "Yes" } },
      }),
    ).toMatchObject([{ kind: "click", replyId: "r:q:o1", title: "Yes" }]);
    expect(
      read({
        type: "interactive",
        interactive: { type: "list_reply", list_reply: { id: "r:q:o2", title: "No" } },
      }),
    ).toMatchObject([{ kind: "click", replyId: "r:q:o2", title: "No" }]);
    expect(
      read({
        type: "document",
        document: {
          id: "77",
          mime_type: "application/pdf",
          filename: "a.pdf",
          caption: "read this",
        },
      }),
    ).toMatchObject([
      {
        kind: "message",
        text: "read this",
        files: [{ name: "a.pdf", mimeType: "application/pdf" }],
      },
    ]);
  });

  it("tells the operator about a message WhatsApp failed to deliver later", () => {
    const lines: { msg: string; code?: number }[] = [];
    const log = pino({ level: "warn" }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const n = JSON.parse(wa.notification(person, { type: "text", text: { body: "x" } }).body);
    const value = n.entry[0].changes[0].value;
    value.messages = undefined;
    value.statuses = [
      { id: "wamid.sent", status: "delivered" },
      {
        id: "wamid.failed",
        status: "failed",
        errors: [{ code: 131047, title: "Re-engagement message" }],
      },
    ];
    expect(inboundOf(Notification.parse(n), PHONE, log)).toEqual([]);
    expect(lines).toMatchObject([
      { msg: "WhatsApp could not deliver a message the bot sent", code: 131047 },
    ]);
  });

  it("leaves out other phone numbers, reactions and malformed messages", () => {
    expect(read({ type: "text", text: { body: "hi" } }, "999")).toEqual([]);
    expect(read({ type: "reaction", reaction: { message_id: "x", emoji: "👍" } })).toEqual([]);
    expect(read({ type: "text", text: { body: 42 } })).toEqual([]);
    expect(read({ type: "text", text: { body: "hi" }, from: "not-a-number" })).toEqual([]);
  });
});

describe("cards", () => {
  it("uses reply buttons for up to three short labels, else a list of at most ten rows", () => {
    const short = choicesMessage("1", "Pick", [
      { id: "a", label: "Approve" },
      { id: "b", label: "Deny" },
      { id: "c", label: "Always allow" },
    ]);
    expect(short).toMatchObject({ type: "interactive", interactive: { type: "button" } });
    const four = choicesMessage(
      "1",
      "Pick",
      ["N", "S", "E", "W"].map((l) => ({ id: l, label: l })),
    );
    expect(four).toMatchObject({ interactive: { type: "list" } });
    const long = choicesMessage("1", "x".repeat(5000), [
      { id: "a", label: "A label well over twenty characters" },
    ]);
    if (long.type !== "interactive" || long.interactive.type !== "list") throw new Error("a list");
    expect(long.interactive.body.text.length).toBeLessThanOrEqual(1024);
    const [row] = long.interactive.action.sections[0]?.rows ?? [];
    expect(row?.title.length).toBeLessThanOrEqual(24);
    expect(row?.description).toBe("A label well over twenty characters");
  });

  it("keeps a long answer id in the state and reads it back; unknown ids read as inactive", async () => {
    const s = state("whatsapp-ids");
    expect(await replyId("req1", "o1", s)).toBe("r:req1:o1");
    const long = await replyId("r".repeat(250), "o1", s);
    expect(long).toMatch(/^t:/);
    expect(await parseReplyId(long, s, silent)).toEqual({
      requestId: "r".repeat(250),
      choice: "o1",
    });
    expect(await parseReplyId("t:nope", s, silent)).toBeUndefined();
    expect(await parseReplyId("r::o1", s, silent)).toBeUndefined();
    expect(await parseReplyId("anything", s, silent)).toBeUndefined();
  });
});

describe("formatting", () => {
  it("writes Markdown in WhatsApp's formatting and splits at 4096 characters", () => {
    expect(toWhatsAppText("**bold** _it_ ~~gone~~ `x` [site](https://example.com)")).toEqual([
      "*bold* _it_ ~gone~ `x` site (https://example.com)",
    ]);
    const code = `\`\`\`\n${"line of code\n".repeat(800)}\`\`\``;
    const parts = toWhatsAppText(code);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      expect(p.length).toBeLessThanOrEqual(4096);
      expect(p.startsWith("```") && p.endsWith("```")).toBe(true);
    }
  });
});

describe("the 24-hour window", () => {
  it("is open for 24 hours after the person's last message", async () => {
    const now = Date.now();
    let clock = now;
    const w = new ServiceWindow(state("whatsapp-window"), silent, () => clock);
    expect(await w.isOpen("491")).toBe(false);
    await w.opened("491", now - 23 * 3_600_000);
    expect(await w.isOpen("491")).toBe(true);
    // An older message (a late redelivery) does not move it back.
    await w.opened("491", now - 30 * 3_600_000);
    expect(await w.lastInbound("491")).toBe(now - 23 * 3_600_000);
    clock = now - 23 * 3_600_000 + SERVICE_WINDOW_MS;
    expect(await w.isOpen("491")).toBe(false);
    // A message already past its window opens nothing.
    await w.opened("492", now - SERVICE_WINDOW_MS - 1);
    expect(await w.isOpen("492")).toBe(false);
  });

  it("reads an unreadable record as closed", async () => {
    const s = state("whatsapp-window-bad");
    await s.set("window:493", "{not json", 60_000);
    expect(await new ServiceWindow(s, silent).isOpen("493")).toBe(false);
  });

  it("outside the window sends nothing free-form, and without a template tells the operator", async () => {
    const graph = new GraphClient({
      apiRoot: wa.url,
      graphVersion: "v21.0",
      phoneNumberId: PHONE,
      accessToken: TOKEN,
    });
    const audits: string[] = [];
    const sender = (to: string, template?: { name: string; language: string }) =>
      new WindowedSender(
        {
          graph,
          window: new ServiceWindow(state("whatsapp-send"), silent),
          settings: template ? { windowTemplate: template } : {},
          ctx: { audit: (action) => void audits.push(action) },
          log: silent,
        },
        to,
      );
    const calls = wa.calls.length;
    const none = sender("4915100000050");
    expect(await none.send(textMessage("4915100000050", "hello"))).toEqual({ sent: false });
    expect(await none.send(textMessage("4915100000050", "again"))).toEqual({ sent: false });
    expect(wa.calls.length).toBe(calls);
    expect(audits).toEqual(["window_closed"]);
    const templated = sender("4915100000051", { name: "reply_waiting", language: "en" });
    expect((await templated.send(textMessage("4915100000051", "hello"))).sent).toBe(true);
    expect(await templated.send(textMessage("4915100000051", "more"))).toEqual({ sent: false });
    expect(wa.messages("4915100000051").map((m) => m.type)).toEqual(["template"]);
  });
});

describe("the Graph client", () => {
  it("keeps Graph's error code and never the token", async () => {
    const graph = new GraphClient({
      apiRoot: wa.url,
      graphVersion: "v21.0",
      phoneNumberId: PHONE,
      accessToken: "EAAwrong-token",
    });
    const err = await graph.send(textMessage("1", "x")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphApiError);
    expect((err as GraphApiError).code).toBe(190);
    expect((err as Error).message).not.toContain("EAAwrong-token");
  });

  it("turns WhatsApp's rate limits into RetryLater", async () => {
    expect(rateLimitOf(new GraphApiError(400, 130429, "Rate limit hit"))).toMatchObject({
      retryAfterSec: 1,
    });
    expect(rateLimitOf(new GraphApiError(400, 131056, "pair"))).toMatchObject({ retryAfterSec: 6 });
    expect(rateLimitOf(new GraphApiError(429, 0, "slow", 3))).toMatchObject({ retryAfterSec: 3 });
    expect(rateLimitOf(new GraphApiError(400, 131047, "window"))).toBeUndefined();
    const err = await waCall(() => Promise.reject(new GraphApiError(400, 130429, "x"))).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RetryLater);
  });
});

describe("settings", () => {
  const env = {
    WHATSAPP_ACCESS_TOKEN: TOKEN,
    WHATSAPP_APP_SECRET: SECRET,
    WHATSAPP_VERIFY_TOKEN: "v",
  };

  it("is off without a section or token, and says what is missing", () => {
    expect(whatsappSettings(undefined, {})).toBeUndefined();
    const missing = (() => {
      try {
        whatsappSettings({ phone_number_id: PHONE }, { WHATSAPP_ACCESS_TOKEN: TOKEN });
      } catch (e) {
        return e;
      }
    })();
    expect(isLobuError(missing) && missing.message).toContain("WHATSAPP_APP_SECRET is not set");
    const noPhone = (() => {
      try {
        whatsappSettings({}, env);
      } catch (e) {
        return e;
      }
    })();
    expect(isLobuError(noPhone) && noPhone.message).toContain("no phone number id");
    expect(whatsappSettings({ phone_number_id: PHONE }, env)).toMatchObject({
      phoneNumberId: PHONE,
      apiRoot: "https://graph.facebook.com",
      graphVersion: "v21.0",
    });
    expect(() => whatsappSettings({ phone_number_id: "+49 151" }, env)).toThrow(/digits/);
    expect(() => whatsappSettings({ phone_number_id: PHONE, typo: 1 }, env)).toThrow(/typo/);
  });

  it("keeps its token and secrets out of the log", () => {
    const settings = whatsappSettings(
      { phone_number_id: PHONE },
      {
        ...env,
        WHATSAPP_ACCESS_TOKEN: "EAAlog-me-never-123",
        WHATSAPP_VERIFY_TOKEN: "verify-never-456",
      },
    );
    if (!settings) throw new Error("set up");
    new WhatsAppAdapter(settings);
    expect(redactSecrets("token EAAlog-me-never-123 and verify-never-456")).toBe(
      "token [REDACTED] and [REDACTED]",
    );
  });
});
