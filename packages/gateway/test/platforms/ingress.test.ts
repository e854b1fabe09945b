import { connect } from "node:net";
import {
  type GatewayProcess,
  type MockLlm,
  type SlackDelivery,
  type SlackEmulator,
  type SlackMessage,
  startMockLlm,
  startSlackEmulator,
  startTelegramEmulator,
  type TelegramEmulator,
  type TgUserInput,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  conversationsOf,
  drainedQueue,
  historyOf,
  PROVIDER_KEY,
  queueDepth,
  rssGrowthDuring,
  sendFiller,
  startSlackGateway,
  telegramEnv,
  WAIT,
  waitForHistory,
} from "./helpers.ts";

/**
 * What the gateway accepts from the internet before anyone is authenticated:
 * bodies bounded while they are read on every platform and settings route,
 * slow requests cut off, signed platform requests accepted once, and settings
 * links only ever delivered to the person (never in an HTTP answer a replayer
 * could read). A real `lobu run` with Slack (HTTP) and Telegram (webhook).
 */

const SIGNING_SECRET = "slack-signing-secret-ingress";
const SLACK_TOKEN = "xoxb-3333-4444-ingress";
const TG_TOKEN = "7000000003:AAingress-test-token";
const WEBHOOK_SECRET = "webhook-secret_ingress";
/** A body the gateway must never hold: ~300 MB, streamed. */
const HUGE = 300 * 1024 * 1024;
/** How much the gateway may grow while refusing it (a correctness bound, not a timing one). */
const MAX_GROWTH = 64 * 1024 * 1024;

let llm: MockLlm;
let slack: SlackEmulator;
let tg: TelegramEmulator;
let gw: GatewayProcess;

const person = (id: number, first_name: string): TgUserInput => ({ id, first_name });

function actionIds(m: SlackMessage | undefined): string[] {
  return (m?.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "actions")
    .flatMap((b) => (b as { elements: { action_id: string }[] }).elements.map((e) => e.action_id));
}

/** Send a delivery the emulator made again, byte for byte (what someone who captured it can do). */
function replay(d: SlackDelivery, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(d.url, { method: "POST", headers: { ...d.headers, ...extra }, body: d.body });
}

function lastDelivery(kind: SlackDelivery["kind"], eventId?: string): SlackDelivery {
  const d = slack.deliveries
    .filter((x) => x.kind === kind && (eventId === undefined || x.eventId === eventId))
    .at(-1);
  if (!d) throw new Error(`no ${kind} delivery`);
  return d;
}

async function errorCode(res: Response): Promise<string | undefined> {
  return ((await res.json()) as { error?: { code?: string } }).error?.code;
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: SLACK_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im", "message.channels"],
  });
  tg = await startTelegramEmulator({
    botToken: TG_TOKEN,
    botUsername: "lobu_ingress_bot",
    rateLimits: false,
  });
  gw = await startSlackGateway({
    slack,
    llm,
    toml: [
      "[gateway]",
      'headers_timeout = "2s"',
      'request_timeout = "3s"',
      "",
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      "[platforms.telegram]",
      'mode = "webhook"',
      'init_data_max_age = "1h"',
    ].join("\n"),
    env: {
      ...telegramEnv(tg, TG_TOKEN),
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
  });
  await tg.waitFor(() => tg.webhook, { ...WAIT, description: "setWebhook" });
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await tg?.close();
  await llm?.close();
});

describe("inbound bodies are bounded while they are read", () => {
  const now = () => String(Math.floor(Date.now() / 1000));
  const routes: [string, string, () => Record<string, string>, string?][] = [
    [
      "an unsigned Slack event",
      "/slack/events",
      () => ({
        "content-type": "application/json",
        "x-slack-request-timestamp": now(),
        "x-slack-signature": `v0=${"0".repeat(64)}`,
      }),
    ],
    [
      "an unsigned Slack slash command",
      "/slack/events",
      () => ({
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": now(),
        "x-slack-signature": `v0=${"0".repeat(64)}`,
      }),
    ],
    ["a Slack OAuth callback", "/slack/oauth/callback?code=x&state=y", () => ({}), "GET"],
    [
      "a Telegram webhook call with the secret token",
      "/telegram/webhook",
      () => ({
        "content-type": "application/json",
        "x-telegram-bot-api-secret-token": WEBHOOK_SECRET,
      }),
    ],
    ["a Mini App check", "/telegram/webapp/verify", () => ({ "content-type": "application/json" })],
    [
      "a settings claim",
      "/settings/claim/AAAAAAAAAAAAAAAAAAAAAAAA",
      () => ({ "content-type": "application/x-www-form-urlencoded" }),
    ],
    [
      "a Telegram settings login",
      "/settings/api/session/telegram",
      () => ({ "content-type": "application/json" }),
    ],
  ];

  for (const sized of [false, true]) {
    it.each(routes)(
      `refuses 300 MB (${sized ? "with a Content-Length" : "chunked"}) in %s with 413, without growing`,
      async (_name, path, headers, method) => {
        const { result, growth } = await rssGrowthDuring(gw.child.pid!, () =>
          sendFiller(`${gw.url}${path}`, {
            totalBytes: HUGE,
            sized,
            headers: headers(),
            ...(method ? { method } : {}),
          }),
        );
        expect(result.status).toBe(413);
        expect(JSON.parse(result.body)).toMatchObject({ error: { code: "payload_too_large" } });
        expect(result.sent).toBeLessThan(HUGE);
        expect(growth).toBeLessThan(MAX_GROWTH);
        // The gateway still answers normally afterwards.
        expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
      },
    );
  }

  it("refuses an unsigned Slack request before reading its body", async () => {
    const res = await sendFiller(`${gw.url}/slack/events`, {
      totalBytes: HUGE,
      sized: false,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(401);
    expect(res.sent).toBeLessThan(HUGE);
  });
});

describe("slow clients are cut off", () => {
  /** Open a raw connection, send `head`, then one `drip` every 200 ms; resolves with all it got back once closed. */
  function dribble(head: string, drip: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(gw.port, "127.0.0.1");
      let got = "";
      let timer: NodeJS.Timeout | undefined;
      socket.on("connect", () => {
        socket.write(head);
        timer = setInterval(() => socket.write(drip), 200);
      });
      socket.on("data", (b) => {
        got += b.toString();
      });
      socket.on("error", () => {});
      socket.on("close", () => {
        clearInterval(timer);
        resolve(got);
      });
      socket.setTimeout(WAIT.timeoutMs, () => reject(new Error("the gateway kept the connection")));
    });
  }

  it("answers 408 and closes a connection whose headers never end (headers_timeout)", async () => {
    const got = await dribble("POST /slack/events HTTP/1.1\r\nHost: lobu\r\n", "X-Slow: 1\r\n");
    expect(got).toMatch(/^HTTP\/1\.1 408/);
  });

  it("answers 408 and closes a connection whose body never ends (request_timeout)", async () => {
    const got = await dribble(
      "POST /telegram/webapp/verify HTTP/1.1\r\nHost: lobu\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n",
      " ",
    );
    expect(got).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe("signed Slack requests are accepted once", () => {
  it("answers `/lobu settings` with an ephemeral message only the person sees, and refuses a replay", async () => {
    const channel = slack.addChannel({ name: "slash" });
    const sent = await slack.slashCommand({
      user: "USLASH",
      channel: channel.id,
      command: "/lobu",
      text: "settings",
    });
    expect(sent.status).toBe(200);
    // The HTTP answer goes back to whoever sent the request: it carries no link.
    expect(sent.body).not.toMatch(/\/settings\/claim\//);
    const ephemeral = await slack.waitFor(
      () => slack.ephemerals.find((e) => e.user === "USLASH" && e.via === "response_url"),
      { ...WAIT, description: "the settings link via response_url" },
    );
    expect(JSON.stringify(ephemeral.blocks)).toMatch(/\/settings\/claim\//);

    const again = await replay(lastDelivery("command"));
    expect(again.status).toBe(409);
    const body = await again.text();
    expect(body).not.toMatch(/\/settings\/claim\//);
    expect(JSON.parse(body)).toMatchObject({ error: { code: "replayed_request" } });
    expect(slack.ephemerals.filter((e) => e.user === "USLASH")).toHaveLength(1);

    const audit = await gw.api("/api/v1/audit?action=platform.replay_refused");
    const records = ((await audit.json()) as { records: { details?: { platform?: string } }[] })
      .records;
    expect(records.some((r) => r.details?.platform === "slack")).toBe(true);
  });

  it("refuses a replayed button click: the question is answered once", async () => {
    const channel = slack.addChannel({ name: "replayed-clicks" });
    llm.when(
      (r) => r.lastUserText === "ask me once",
      { toolCalls: [{ name: "ask_user", input: { question: "Which?", options: ["A", "B"] } }] },
      (r) => ({ text: `Picked ${r.toolResults[0]?.content ?? ""}` }),
    );
    const sent = await slack.mention({ user: "UCLICK", channel: channel.id, text: "ask me once" });
    const card = await slack.waitFor(
      () =>
        slack
          .messages(channel.id, { threadTs: sent.ts })
          .find((m) => actionIds(m).some((id) => id.startsWith("lobu:"))),
      { ...WAIT, description: "a card" },
    );
    const click = await slack.clickButton({
      user: "UCLICK",
      channel: channel.id,
      messageTs: card.ts,
      actionId: actionIds(card)[0]!,
    });
    expect(click.status).toBe(200);
    await waitForHistory(gw, "UCLICK", (h) => h.some((e) => e.text.startsWith("Picked")));

    const again = await replay(lastDelivery("interaction"));
    expect(again.status).toBe(409);
    expect(await errorCode(again)).toBe("replayed_request");
    // Not even a "this request was already answered" note: the copy did nothing.
    expect(slack.ephemerals.filter((e) => e.user === "UCLICK")).toHaveLength(0);
  });

  it("refuses a replayed event (nothing queued twice) but acknowledges Slack's retry of it once", async () => {
    const im = slack.imChannel("UEVENT");
    const sent = await slack.dm({ user: "UEVENT", text: "event once" });
    await waitForHistory(gw, "UEVENT", (h) => h.some((e) => e.role === "assistant"));
    const delivery = lastDelivery("event", sent.deliveries[0]!.eventId);
    const before = await drainedQueue(gw);

    const copy = await replay(delivery);
    expect(copy.status).toBe(409);
    expect(await errorCode(copy)).toBe("replayed_request");

    // Slack's own retries carry X-Slack-Retry-Num: answered 200 so Slack stops, processed once.
    const retry = await replay(delivery, {
      "X-Slack-Retry-Num": "1",
      "X-Slack-Retry-Reason": "http_timeout",
    });
    expect(retry.status).toBe(200);
    expect(await queueDepth(gw)).toBe(before);
    const [conv] = await conversationsOf(gw, "UEVENT");
    expect((await historyOf(gw, conv!.id)).filter((h) => h.role === "user")).toHaveLength(1);
    expect(slack.messages(im.id)).toHaveLength(1);
  });

  it("sends one settings link for a `settings` message Slack delivered twice", async () => {
    const im = slack.imChannel("URETRYSET");
    // Two DM threads tell the links apart: each goes to the thread its request came from.
    const first = await slack.dm({ user: "URETRYSET", text: "thread one" }, { deliver: false });
    const second = await slack.dm({ user: "URETRYSET", text: "thread two" }, { deliver: false });
    const links = (threadTs: string) =>
      slack.messages(im.id, { threadTs }).filter((m) => actionIds(m).includes("lobu-settings"))
        .length;
    const sent = await slack.dm({ user: "URETRYSET", text: "settings", threadTs: first.ts });
    await slack.waitFor(() => links(first.ts) === 1 || undefined, WAIT);
    // A retry is signed anew (another timestamp): only the message it carries tells it apart.
    const retry = await slack.sendEvent(sent.events[0]!, {
      eventId: sent.deliveries[0]!.eventId,
      retryNum: 1,
      retryReason: "http_timeout",
      forge: { timestamp: Math.floor(Date.now() / 1000) - 2 },
    });
    expect(retry.status).toBe(200);
    // A request made after the retry gets its link; by then the retry would have had one too.
    await slack.dm({ user: "URETRYSET", text: "settings", threadTs: second.ts });
    await slack.waitFor(() => links(second.ts) === 1 || undefined, WAIT);
    expect(links(first.ts)).toBe(1);
  });
});

describe("settings links reach only the person", () => {
  /** The agent asks for a domain, then reports how the request was answered. */
  function scriptCapability(text: string): void {
    llm.when(
      (r) => r.lastUserText === text,
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
  }

  it("Slack: a capability card in a channel carries no link; the person gets it as an ephemeral", async () => {
    const channel = slack.addChannel({ name: "capabilities" });
    scriptCapability("need a domain in slack");
    const sent = await slack.mention({
      user: "UCAP",
      channel: channel.id,
      text: "need a domain in slack",
    });
    const card = await slack.waitFor(
      () =>
        slack
          .messages(channel.id, { threadTs: sent.ts })
          .find((m) => actionIds(m).some((id) => id.startsWith("lobu:"))),
      { ...WAIT, description: "the capability card" },
    );
    expect(JSON.stringify(card.blocks)).not.toMatch(/\/settings\/claim\//);
    const ephemeral = await slack.waitFor(
      () =>
        slack.ephemerals.find(
          (e) => e.user === "UCAP" && JSON.stringify(e.blocks).includes("/settings/claim/"),
        ),
      { ...WAIT, description: "the link, to the person only" },
    );
    expect(ephemeral.channel).toBe(channel.id);
    expect(JSON.stringify(slack.messages(channel.id))).not.toMatch(/\/settings\/claim\//);
    await slack.clickButton({
      user: "UCAP",
      channel: channel.id,
      messageTs: card.ts,
      actionId: actionIds(card).find((id) => id.endsWith(":denied"))!,
    });
    await waitForHistory(gw, "UCAP", (h) => h.some((e) => e.text.startsWith("Answered")));
  });

  it("Telegram: a capability card in a group carries no link; the person gets it in private", async () => {
    const claimLinks = (chatId: number) =>
      JSON.stringify(tg.messages(chatId).map((m) => m.replyMarkup ?? null)).match(
        /\/settings\/claim\//g,
      )?.length ?? 0;
    type Group = { id: number; type: "supergroup"; title: string };
    const askAndDeny = async (group: Group, who: TgUserInput, text: string) => {
      scriptCapability(text);
      tg.userSends({ chat: group, from: who, text: `@lobu_ingress_bot ${text}` });
      const card = await tg.waitFor(
        () =>
          tg
            .messages(group.id)
            .find((m) => m.replyMarkup?.inline_keyboard.flat().some((b) => b.text === "Deny")),
        { ...WAIT, description: "the capability card" },
      );
      expect(JSON.stringify(card.replyMarkup)).not.toMatch(/\/settings\/claim\//);
      return card;
    };
    const deny = async (
      group: Group,
      who: TgUserInput,
      card: { messageId: number; replyMarkup?: unknown },
    ) => {
      const button = (
        card.replyMarkup as { inline_keyboard: { text: string; callback_data?: string }[][] }
      ).inline_keyboard
        .flat()
        .find((b) => b.text === "Deny")!;
      tg.clickCallback({
        from: who,
        chatId: group.id,
        messageId: card.messageId,
        data: button.callback_data!,
      });
      await waitForHistory(gw, String(who.id), (h) => h.some((e) => e.text.startsWith("Answered")));
    };

    // Someone with a private chat with the bot gets the link there.
    const rae = person(5353, "Rae");
    tg.userSends({ chat: { id: rae.id, type: "private" }, from: rae, text: "/help" });
    await tg.waitFor(() => tg.messages(rae.id).length > 0 || undefined, WAIT);
    const group = { id: -100777, type: "supergroup" as const, title: "Capabilities" };
    const card = await askAndDeny(group, rae, "need a domain in telegram");
    await tg.waitFor(() => claimLinks(rae.id) === 1 || undefined, {
      ...WAIT,
      description: "the link in the private chat",
    });
    expect(claimLinks(group.id)).toBe(0);
    await deny(group, rae, card);

    // Someone who never opened one is pointed to the bot's private chat, from the group.
    const sid = person(5454, "Sid");
    const other = { id: -100778, type: "supergroup" as const, title: "Capabilities 2" };
    const second = await askAndDeny(other, sid, "need a domain in telegram too");
    const pointer = await tg.waitFor(
      () =>
        tg
          .messages(other.id)
          .find((m) =>
            m.replyMarkup?.inline_keyboard
              .flat()
              .some((b) => b.url === "https://t.me/lobu_ingress_bot?start=settings"),
          ),
      { ...WAIT, description: "a button into the private chat" },
    );
    expect(pointer.text).toMatch(/private chat/);
    expect(claimLinks(other.id)).toBe(0);
    await deny(other, sid, second);
  });
});

describe("Telegram: single-use proofs", () => {
  const login = (initData: string) =>
    fetch(`${gw.url}/settings/api/session/telegram`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ initData }),
    });

  it("opens one settings session per Mini App launch", async () => {
    const initData = tg.webAppInitData({ user: { id: 5151, first_name: "Ona" } });
    const first = await login(initData);
    expect(first.status).toBe(200);
    const second = await login(initData);
    expect(second.status).toBe(401);
    expect(await errorCode(second)).toBe("init_data_used");
    expect(second.headers.getSetCookie()).toEqual([]);
    // A new launch (new initData) works.
    expect((await login(tg.webAppInitData({ user: { id: 5151, first_name: "Ona" } }))).status).toBe(
      200,
    );
  });

  it("handles a redelivered update once (one settings message for one /settings)", async () => {
    const pia = person(5252, "Pia");
    const sent = tg.userSends({
      chat: { id: pia.id, type: "private" },
      from: pia,
      text: "/settings",
    });
    const menus = () => tg.messages(pia.id).filter((m) => m.replyMarkup).length;
    await tg.waitFor(() => menus() === 1 || undefined, WAIT);
    const again = await fetch(`${gw.url}/telegram/webhook`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-telegram-bot-api-secret-token": WEBHOOK_SECRET,
      },
      body: JSON.stringify(sent.update),
    });
    expect(again.status).toBe(200);
    expect(menus()).toBe(1);
  });
});
