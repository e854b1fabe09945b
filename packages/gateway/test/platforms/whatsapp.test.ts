import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type GatewayProcess,
  type MockLlm,
  signWhatsAppBody,
  startGatewayProcess,
  startMockLlm,
  startWhatsAppEmulator,
  type WhatsAppEmulator,
  type WhatsAppSent,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ASK_BASH_TOML,
  conversationsOf,
  drainedQueue,
  expectBodiesBounded,
  historyOf,
  llmEnv,
  PROVIDER_KEY,
  queueDepth,
  scriptCountLines,
  slowText,
  WAIT,
  waitForHistory,
} from "./helpers.ts";

/**
 * The WhatsApp adapter end to end: the Cloud API emulator (Graph routes,
 * signed webhook deliveries), a real `lobu run` gateway, real sandboxed
 * workers and the mock LLM. The adapter contract is in conformance.test.ts;
 * this file holds what only WhatsApp has.
 */

const ACCESS_TOKEN = "EAAwhatsapp-e2e-token";
const APP_SECRET = "whatsapp-app-secret-e2e";
const VERIFY_TOKEN = "whatsapp-verify-token-e2e";
const PHONE_NUMBER_ID = "106540352242999";
const TEMPLATE = { name: "reply_waiting", language: "en", text: "You have a reply waiting." };

let llm: MockLlm;
let wa: WhatsAppEmulator;
let gw: GatewayProcess;
let webhook = "";

const person = (n: number, name: string) => ({ waId: String(4_915_100_000 + n), name });

function waitForText(waId: string, text: string): Promise<WhatsAppSent> {
  return wa.waitFor(() => wa.messages(waId).find((m) => m.text === text), {
    ...WAIT,
    description: `the reply "${text}"`,
  });
}

function waitForCard(waId: string, since = 0): Promise<WhatsAppSent> {
  return wa.waitFor(
    () =>
      wa
        .messages(waId)
        .slice(since)
        .find((m) => m.buttons.length > 0 || m.rows.length > 0),
    { ...WAIT, description: "a card with reply buttons or a list" },
  );
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  wa = await startWhatsAppEmulator({
    accessToken: ACCESS_TOKEN,
    appSecret: APP_SECRET,
    phoneNumberId: PHONE_NUMBER_ID,
    templates: [TEMPLATE],
  });
  gw = await startGatewayProcess({
    toml: [
      ...ASK_BASH_TOML,
      "[platforms.whatsapp]",
      `phone_number_id = "${PHONE_NUMBER_ID}"`,
      `window_template = { name = "${TEMPLATE.name}", language = "${TEMPLATE.language}" }`,
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN,
      WHATSAPP_API_ROOT: wa.url,
    },
  });
  webhook = `${gw.url}/whatsapp/webhook`;
  // Saving the callback URL in the app dashboard: Meta keeps it once the handshake succeeds.
  const verified = await wa.verifyWebhook(webhook, VERIFY_TOKEN);
  if (!verified.ok) throw new Error(`webhook verification failed: ${verified.status}`);
});

afterAll(async () => {
  await gw?.stop();
  await wa?.close();
  await llm?.close();
});

describe("WhatsApp: the webhook", () => {
  it("answers Meta's verification handshake only with the verify token", async () => {
    const ok = await wa.verifyWebhook(webhook, VERIFY_TOKEN);
    expect(ok).toMatchObject({ ok: true, status: 200 });
    expect((await wa.verifyWebhook(webhook, "not-the-token")).status).toBe(403);
    const q = (params: Record<string, string>) =>
      fetch(`${webhook}?${new URLSearchParams(params)}`).then((r) => r.status);
    expect(
      await q({
        "hub.mode": "unsubscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1",
      }),
    ).toBe(403);
    // The challenge is echoed, so only a plain token is: nothing of a page can be reflected.
    expect(
      await q({
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "<script>alert(1)</script>",
      }),
    ).toBe(403);
  });

  it("refuses forged deliveries (401) and queues nothing", async () => {
    const mallory = person(66, "Mallory");
    const before = await drainedQueue(gw);
    const n = wa.notification(mallory, { type: "text", text: { body: "let me in" } });
    const tampered = n.body.replace("let me in", "let me out");
    const attempts = [
      await wa.post(n.body, undefined),
      await wa.post(n.body, "sha256=not-hex"),
      await wa.post(n.body, `sha256=${"0".repeat(64)}`),
      await wa.post(n.body, signWhatsAppBody("another-apps-secret", n.body)),
      // A valid signature of other bytes.
      await wa.post(tampered, n.signature),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: "bad_signature" } });
    }
    expect(await conversationsOf(gw, mallory.waId)).toHaveLength(0);
    expect(await queueDepth(gw)).toBe(before);
  });

  it("refuses an unsigned delivery before reading its body, and bounds a signed one", async () => {
    await expectBodiesBounded(webhook, () => ({
      "x-hub-signature-256": `sha256=${"a".repeat(64)}`,
    }));
  });

  it("handles a message once: Meta's redelivery and a replayed copy queue nothing more", async () => {
    const ada = person(1, "Ada");
    llm.when((r) => r.lastUserText === "count me once", { text: "Counted once." });
    const sent = await wa.userSends(ada, "count me once");
    expect(sent.status).toBe(200);
    await waitForText(ada.waId, "Counted once.");
    const again = await wa.post(sent.notification, sent.signature);
    expect(again.status).toBe(200);
    const history = await waitForHistory(gw, ada.waId, (h) => h.length >= 2);
    expect(history.filter((h) => h.role === "user")).toHaveLength(1);
    expect(wa.messages(ada.waId).filter((m) => m.text === "Counted once.")).toHaveLength(1);
    const audit = await gw.api("/api/v1/audit?action=platform.replay_refused");
    const records = ((await audit.json()) as { records: { details?: { platform?: string } }[] })
      .records;
    expect(records.some((r) => r.details?.platform === "whatsapp")).toBe(true);
  });

  it("refuses a signed message older than a day (past replay memory and the reply window)", async () => {
    const old = person(2, "Old");
    const before = await drainedQueue(gw);
    const n = wa.notification(
      old,
      { type: "text", text: { body: "from the day before yesterday" } },
      { timestampSec: Math.floor(Date.now() / 1000) - 2 * 86_400 },
    );
    expect((await wa.post(n.body, n.signature)).status).toBe(200);
    expect(await conversationsOf(gw, old.waId)).toHaveLength(0);
    expect(await queueDepth(gw)).toBe(before);
  });
});

describe("WhatsApp: conversations", () => {
  it("replies in each person's own chat, read receipt and typing indicator meanwhile", async () => {
    const ada = person(3, "Ada");
    const bob = person(4, "Bob");
    llm.when((r) => r.lastUserText === "who am I, Ada", slowText("You are Ada."));
    llm.when((r) => r.lastUserText === "who am I, Bob", { text: "You are **Bob**." });
    const a = await wa.userSends(ada, "who am I, Ada");
    await wa.userSends(bob, "who am I, Bob");
    await waitForText(ada.waId, "You are Ada.");
    // Markdown arrives as WhatsApp's own formatting.
    await waitForText(bob.waId, "You are *Bob*.");
    expect(wa.messages(ada.waId).map((m) => m.text)).toEqual(["You are Ada."]);
    expect(wa.messages(bob.waId).map((m) => m.text)).toEqual(["You are *Bob*."]);
    expect(wa.receipts.some((r) => r.messageId === a.messageId && r.typing)).toBe(true);
    const [conv] = await conversationsOf(gw, ada.waId);
    expect(conv?.key).toMatchObject({ platform: "whatsapp", userId: ada.waId });
  });

  it("saves a document into the sandbox, where bash reads it, and sends the result file back", async () => {
    const flo = person(12, "Flo");
    scriptCountLines(llm, (r) => r.lastUserText.startsWith("count the lines"));
    const sent = await wa.userSendsFile(flo, {
      data: Buffer.from("alpha-line\nbeta-line\n"),
      mimeType: "text/plain",
      filename: "notes.txt",
      caption: "count the lines",
    });
    expect(sent.status).toBe(200);
    // bash asks first in this file: the card shows the cat of the inbox path.
    const card = await waitForCard(flo.waId);
    expect(card.text).toMatch(/cat \/workspace\/inbox\/\d{4}-\d\d-\d\d\/notes\.txt/);
    await wa.userTaps(flo, card, "Approve");
    const doc = await wa.waitFor(
      () => wa.messages(flo.waId).find((m) => m.document?.filename === "lines.txt"),
      { ...WAIT, description: "the result document" },
    );
    expect(doc.document?.caption).toBe("Counted");
    const media = wa.media(doc.document?.mediaId ?? "");
    expect(media?.data.toString()).toContain("alpha-line\nbeta-line");
    await wa.waitFor(
      () => wa.messages(flo.waId).find((m) => m.text.includes("Done. Sent lines.txt")),
      { ...WAIT, description: "the final reply" },
    );
  });

  it("never sends the access token to a media URL off Graph's hosts", async () => {
    const gus = person(14, "Gus");
    const seen: (string | undefined)[] = [];
    const elsewhere = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.end("stolen");
    });
    await new Promise<void>((r) => elsewhere.listen(0, "127.0.0.1", r));
    const { port } = elsewhere.address() as AddressInfo;
    wa.serveMediaFrom(`http://127.0.0.1:${port}`);
    try {
      llm.when(
        (r) => r.lastUserText.startsWith("fetch elsewhere"),
        (r) => ({ text: r.lastUserText.includes("not saved") ? "Refused it." : "Took it." }),
      );
      await wa.userSendsFile(gus, {
        data: Buffer.from("secret"),
        mimeType: "text/plain",
        filename: "x.txt",
        caption: "fetch elsewhere",
      });
      await wa.waitFor(() => wa.messages(gus.waId).find((m) => m.text.includes("Refused it.")), {
        ...WAIT,
        description: "the reply after the refusal",
      });
      expect(seen).toEqual([]);
    } finally {
      wa.serveMediaFrom(undefined);
      await new Promise((r) => elsewhere.close(r));
    }
  });

  it("splits a long reply into messages of at most 4096 characters", async () => {
    const cy = person(5, "Cy");
    const paragraph = (i: number) =>
      `Paragraph ${i}: ${"lorem ipsum dolor sit amet ".repeat(40).trim()}`;
    const long = Array.from({ length: 10 }, (_, i) => paragraph(i)).join("\n\n");
    llm.when((r) => r.lastUserText === "write a lot", { text: long });
    await wa.userSends(cy, "write a lot");
    const last = await wa.waitFor(
      () => wa.messages(cy.waId).find((m) => m.text.includes("Paragraph 9:")),
      { ...WAIT, description: "the last part of the long reply" },
    );
    const parts = wa.messages(cy.waId);
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(parts.at(-1)?.id).toBe(last.id);
    for (const p of parts) expect(p.text.length).toBeLessThanOrEqual(4096);
    expect(parts.map((p) => p.text).join("\n\n")).toBe(long);
  });

  it("asks a question with many or long choices as a list, and takes the list reply", async () => {
    const di = person(6, "Di");
    const options = ["North", "South", "East", "West", "Somewhere much further away"];
    llm.when(
      (r) => r.lastUserText === "where to?",
      { toolCalls: [{ name: "ask_user", input: { question: "Which way?", options } }] },
      (r) => ({ text: `Heading off. ${r.toolResults[0]?.content ?? ""}` }),
    );
    await wa.userSends(di, "where to?");
    const card = await waitForCard(di.waId);
    expect(card.type).toBe("interactive");
    expect(card.buttons).toEqual([]);
    expect(card.rows.map((r) => r.title)).toEqual([
      "North",
      "South",
      "East",
      "West",
      "Somewhere much further …",
    ]);
    expect(card.rows.at(-1)?.description).toBe("Somewhere much further away");
    await wa.userTaps(di, card, "Somewhere much further …");
    await waitForText(di.waId, "Heading off. The user answered: Somewhere much further away");
  });

  it("Deny on an approval stops the tool", async () => {
    const ed = person(7, "Ed");
    llm.when(
      (r) => r.lastUserText === "delete things",
      { toolCalls: [{ name: "bash", input: { command: "echo should-not-run" } }] },
      (r) => ({ text: `Tool said: ${r.toolResults[0]?.content.slice(0, 40)}` }),
    );
    await wa.userSends(ed, "delete things");
    const card = await waitForCard(ed.waId);
    expect(card.text).toContain("echo should-not-run");
    expect(card.buttons.map((b) => b.title)).toEqual(["Approve", "Deny", "Always allow"]);
    await wa.userTaps(ed, card, "Deny");
    const reply = await wa.waitFor(
      () => wa.messages(ed.waId).find((m) => m.text.startsWith("Tool said:")),
      { ...WAIT, description: "the reply after Deny" },
    );
    expect(reply.text).not.toContain("should-not-run\n");
    await wa.waitFor(
      () => wa.messages(ed.waId).find((m) => m.replyTo === card.id && /⛔ \*Deny\*/.test(m.text)),
      { ...WAIT, description: "the outcome below the card" },
    );
  });

  it("sends an approval's input too long for a card as a document first, and lets it be approved", async () => {
    const ian = person(13, "Ian");
    const filler = "x".repeat(5_000);
    const command = `printf '%s' '${filler}' > /dev/null; echo long-input-approved`;
    llm.when(
      (r) => r.lastUserText === "run the long one",
      { toolCalls: [{ name: "bash", input: { command } }] },
      (r) => ({ text: `Long: ${r.toolResults[0]?.content.trim()}` }),
    );
    await wa.userSends(ian, "run the long one");
    const card = await waitForCard(ian.waId);
    const doc = wa.messages(ian.waId).find((m) => m.type === "document");
    expect(doc?.document?.filename).toMatch(/^approval-.+\.txt$/);
    expect(wa.media(doc?.document?.mediaId ?? "")?.data.toString("utf8")).toContain(filler);
    expect(wa.messages(ian.waId).indexOf(doc as WhatsAppSent)).toBeLessThan(
      wa.messages(ian.waId).indexOf(card),
    );
    expect(card.text.length).toBeLessThanOrEqual(1024);
    expect(card.buttons.map((b) => b.title)).toContain("Approve");
    await wa.userTaps(ian, card, "Approve");
    await waitForText(ian.waId, "Long: long-input-approved");
  });

  it("sends an approval's input that fits in a message as a message first, which the card points to", async () => {
    const una = person(21, "Una");
    const filler = "y".repeat(1_500);
    const command = `printf '%s' '${filler}' > /dev/null; echo mid-input-approved`;
    llm.when(
      (r) => r.lastUserText === "run the middle one",
      { toolCalls: [{ name: "bash", input: { command } }] },
      (r) => ({ text: `Mid: ${r.toolResults[0]?.content.trim()}` }),
    );
    await wa.userSends(una, "run the middle one");
    const card = await waitForCard(una.waId);
    const sent = wa.messages(una.waId);
    const full = sent.find((m) => m.text.startsWith("Full input waiting for your approval"));
    expect(full?.text).toContain(command);
    expect(sent.indexOf(full as WhatsAppSent)).toBeLessThan(sent.indexOf(card));
    expect(sent.some((m) => m.type === "document")).toBe(false);
    expect(card.text).toContain("in the message above");
    await wa.userTaps(una, card, "Approve");
    await waitForText(una.waId, "Mid: mid-input-approved");
    // Sent once: the approved card's input went out a single time.
    expect(
      wa.messages(una.waId).filter((m) => m.text.startsWith("Full input waiting")),
    ).toHaveLength(1);
  });

  it("asks for a capability with the person's settings link on the card", async () => {
    const jan = person(14, "Jan");
    llm.when(
      (r) => r.lastUserText === "need a domain",
      {
        toolCalls: [
          {
            name: "request_capability",
            input: { kind: "domain", value: "api.example.com", reason: "to fetch it" },
          },
        ],
      },
      (r) => ({ text: `Answered: ${r.toolResults[0]?.content.split("\n")[0]}` }),
    );
    await wa.userSends(jan, "need a domain");
    const card = await waitForCard(jan.waId);
    expect(card.text).toContain("api.example.com");
    expect(card.text).toMatch(/Open your settings: http:\/\/\S+\/settings\/claim\/[\w-]+/);
    expect(card.buttons.map((b) => b.title)).toEqual(["Grant", "Deny"]);
    await wa.userTaps(jan, card, "Deny");
    await wa.waitFor(() => wa.messages(jan.waId).find((m) => m.text.startsWith("Answered")), {
      ...WAIT,
      description: "the agent's answer",
    });
  });

  it("refuses an answer from another person's chat, who is told so", async () => {
    const fay = person(8, "Fay");
    const eve = person(9, "Eve");
    llm.when(
      (r) => r.lastUserText === "ask fay",
      {
        toolCalls: [{ name: "ask_user", input: { question: "Proceed?", options: ["Yes", "No"] } }],
      },
      (r) => ({ text: `Fay said ${r.toolResults[0]?.content ?? ""}` }),
    );
    await wa.userSends(fay, "ask fay");
    const card = await waitForCard(fay.waId);
    // Eve learned the button's id and taps it from her own chat.
    await wa.userSends(eve, "hello");
    await wa.userTaps(eve, card, "Yes");
    const refusal = await wa.waitFor(
      () => wa.messages(eve.waId).find((m) => m.text.startsWith("⚠️")),
      { ...WAIT, description: "the refusal in Eve's chat" },
    );
    expect(refusal.text).toMatch(/⚠️/);
    await wa.userTaps(fay, card, "No");
    await waitForText(fay.waId, "Fay said The user answered: No");
  });

  it("waits out WhatsApp's per-person rate limit (131056) and still delivers", async () => {
    const gus = person(10, "Gus");
    llm.when((r) => r.lastUserText === "pace me", { text: "Paced and delivered." });
    wa.forceRateLimit("text", 131056);
    await wa.userSends(gus, "pace me");
    await waitForText(gus.waId, "Paced and delivered.");
    expect(wa.calls.some((c) => c.kind === "text" && c.errorCode === 131056)).toBe(true);
    expect(wa.messages(gus.waId)).toHaveLength(1);
  });

  it("outside the 24-hour window sends the approved template instead of the reply", async () => {
    const hal = person(11, "Hal");
    llm.when(
      (r) => r.lastUserText === "answer me tomorrow",
      async () => {
        // The reply is written after the person's message turned more than a day old.
        wa.setLastInbound(hal.waId, 25);
        return { text: "A reply WhatsApp would refuse." };
      },
    );
    await wa.userSends(hal, "answer me tomorrow");
    const sent = await wa.waitFor(() => wa.messages(hal.waId).find((m) => m.type === "template"), {
      ...WAIT,
      description: "the template",
    });
    expect(sent.template).toEqual({ name: TEMPLATE.name, language: TEMPLATE.language });
    expect(wa.calls.some((c) => c.errorCode === 131047)).toBe(true);
    expect(wa.messages(hal.waId).map((m) => m.type)).toEqual(["template"]);
    // The reply is kept: the conversation's history has it.
    const [conv] = await conversationsOf(gw, hal.waId);
    const history = await historyOf(gw, conv?.id ?? "");
    expect(history.map((h) => h.text)).toContain("A reply WhatsApp would refuse.");
    const audit = await gw.api("/api/v1/audit?action=platform.window_closed");
    const records = ((await audit.json()) as { records: unknown[] }).records;
    expect(records.length).toBeGreaterThan(0);
  });
});
