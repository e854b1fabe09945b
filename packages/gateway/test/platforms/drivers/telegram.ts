import {
  type GatewayProcess,
  startTelegramEmulator,
  type TelegramEmulator,
  type TelegramMessage,
  type TgUpdate,
  type TgUserInput,
} from "@lobu/testkit";
import type { ChatMessage, Delivery, PlatformDriver } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

const BOT_TOKEN = "7000000009:AAconformance-token";
const WEBHOOK_SECRET = "webhook-secret_conformance";

function chatMessage(m: TelegramMessage): ChatMessage {
  const buttons = m.replyMarkup?.inline_keyboard.flat() ?? [];
  return {
    id: String(m.messageId),
    text: m.text ?? m.caption ?? "",
    edits: m.edits.length,
    buttons: buttons
      .filter((b) => b.callback_data && !b.callback_data.startsWith("lobu-stop"))
      .map((b) => b.text),
    stops: buttons.filter((b) => b.callback_data?.startsWith("lobu-stop")).map((b) => b.text),
    links: buttons.flatMap((b) => [b.url, b.web_app?.url].filter((u): u is string => !!u)),
  };
}

type TelegramSent = Delivery & { update: TgUpdate };

/** Telegram with a webhook, driven through the Bot API emulator. */
export function telegramDriver(): PlatformDriver<TelegramSent> {
  let emulator: TelegramEmulator | undefined;
  const tg = () => {
    if (!emulator) throw new Error("the Telegram driver is not started");
    return emulator;
  };
  let webhookUrl = "";
  let failuresFrom = 0;
  const people = new Map<string, TgUserInput>();
  const person = (user: string) => people.get(user) ?? { id: Number(user), first_name: "Conf" };
  const post = (update: unknown, secret: string) =>
    fetch(webhookUrl, {
      method: "POST",
      headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
      body: JSON.stringify(update),
    });
  /** How the gateway answered the emulator's delivery of `update`. */
  const delivered = (update: TgUpdate) =>
    tg().waitFor(() => tg().webhookDeliveries.find((d) => d.updateId === update.update_id), {
      ...WAIT,
      description: `the delivery of update ${update.update_id}`,
    });
  const userSends = (user: string, text: string) =>
    tg().userSends({ chat: { id: Number(user), type: "private" }, from: person(user), text });
  return {
    platform: "telegram",
    showsStopButtons: true,
    settingsCommand: "/settings",
    editsMessages: true,
    start: async () => {
      emulator = await startTelegramEmulator({
        botToken: BOT_TOKEN,
        botUsername: "lobu_conformance_bot",
        rateLimits: false,
      });
      return {
        toml: [
          "[platforms.telegram]",
          'mode = "webhook"',
          'stream_interval = "200ms"',
          'group_stream_interval = "200ms"',
        ],
        env: {
          TELEGRAM_BOT_TOKEN: BOT_TOKEN,
          TELEGRAM_API_ROOT: emulator.url,
          TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
        },
      };
    },
    connect: async (gw: GatewayProcess) => {
      webhookUrl = `${gw.url}/telegram/webhook`;
      await tg().waitFor(() => tg().webhook, { ...WAIT, description: "setWebhook" });
    },
    close: async () => {
      await emulator?.close();
    },

    person: (n) => {
      const id = 7_100 + n;
      people.set(String(id), { id, first_name: `Conf${n}`, username: `conf${n}` });
      return String(id);
    },
    send: async (user, text) => {
      const { update } = userSends(user, text);
      return { status: (await delivered(update)).status, update };
    },
    forge: async (user, text) => {
      // What the emulator would deliver, sent by someone without the secret token.
      const update = {
        update_id: 990_000_000 + Number(user),
        message: {
          message_id: 1,
          from: { ...person(user), is_bot: false },
          chat: { id: Number(user), type: "private" },
          date: Math.floor(Date.now() / 1000),
          text,
        },
      };
      return post(update, "not-the-secret");
    },
    // Telegram redelivers the same update; a copy sent with the secret token is the same bytes.
    redeliver: ({ update }) => post(update, WEBHOOK_SECRET),
    replay: ({ update }) => post(update, WEBHOOK_SECRET),
    messages: (user) => tg().messages(Number(user)).map(chatMessage),
    click: async (user, message, label) => {
      const shown = tg().message(Number(user), Number(message.id));
      const button = shown?.replyMarkup?.inline_keyboard.flat().find((b) => b.text === label);
      if (!button?.callback_data) throw new Error(`no button "${label}"`);
      tg().clickCallback({
        from: person(user),
        chatId: Number(user),
        messageId: Number(message.id),
        data: button.callback_data,
      });
    },
    rateLimitNextEdit: () => tg().forceRateLimit("editMessageText", { retryAfter: 1 }),
    failNextDeliveries: () => {
      failuresFrom = tg().calls.length;
      for (const method of ["sendMessage", "editMessageText"]) {
        tg().failNext(method, { error_code: 502, description: "Bad Gateway" });
        tg().failNext(method, { error_code: 500, description: "Internal Server Error" });
        tg().forceRateLimit(method, { retryAfter: 3 });
      }
    },
    deliveryFailuresUsed: () => {
      const seen = tg().calls.slice(failuresFrom);
      const failed = (m: string) => seen.filter((c) => c.method === m && c.httpStatus !== 200);
      return failed("sendMessage").length >= 3 || failed("editMessageText").length >= 3;
    },
    limitText: (chars) => tg().limitMessageLength(chars ?? 4096),
    sawRateLimit: () =>
      tg().calls.some((c) => c.method === "editMessageText" && c.httpStatus === 429),
    waitFor: (predicate, description) => tg().waitFor(predicate, { ...WAIT, description }),
    files: {
      sendFile: async (user, text, file) => {
        const { update } = tg().userSends({
          chat: { id: Number(user), type: "private" },
          from: person(user),
          text,
          document: { name: file.name, content: file.content, mimeType: file.mimeType },
        });
        return { status: (await delivered(update)).status };
      },
      files: (user) =>
        tg()
          .messages(Number(user))
          .flatMap((m) => {
            const f = m.fromBot ? (m.document ?? m.photo) : undefined;
            return f
              ? [
                  {
                    name: f.fileName ?? "photo.jpg",
                    data: f.data,
                    ...(m.caption ? { caption: m.caption } : {}),
                  },
                ]
              : [];
          }),
    },
  };
}
