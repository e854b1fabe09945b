import {
  type DiscordEmulator,
  type DiscordMessage,
  type DiscordUser,
  type GatewayProcess,
  startDiscordEmulator,
} from "@lobu/testkit";
import type { ChatMessage, Delivery, PlatformDriver } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

const BOT_TOKEN = "MTA5conformance.discord.token";
const EDIT_ROUTE = "PATCH /channels/:id/messages/:id";

function chatMessage(m: DiscordMessage): ChatMessage {
  const all = m.components.flatMap((row) => row.components ?? []);
  const isStop = (c: (typeof all)[number]) => c.custom_id?.startsWith("lobu-stop") ?? false;
  const items = all.filter((c) => !isStop(c));
  return {
    id: m.id,
    text: m.content,
    edits: m.edits.length,
    buttons: items.flatMap((c) =>
      c.type === 2 && c.custom_id ? [c.label ?? ""] : (c.options ?? []).map((o) => o.label),
    ),
    stops: all.filter(isStop).map((c) => c.label ?? ""),
    links: items.flatMap((c) => (c.url ? [c.url] : [])),
    ...(m.replyTo ? { replyTo: m.replyTo } : {}),
  };
}

type DiscordSent = Delivery & { message?: DiscordMessage };

/** Discord: messages over the Gateway, interactions over HTTP, driven through the emulator. */
export function discordDriver(): PlatformDriver<DiscordSent> {
  let emulator: DiscordEmulator | undefined;
  const dc = () => {
    if (!emulator) throw new Error("the Discord driver is not started");
    return emulator;
  };
  const people = new Map<string, DiscordUser>();
  const person = (id: string) => people.get(id) ?? { id, username: `conf${id.slice(-2)}` };
  const dm = (user: string) => dc().dmChannel(person(user));
  let gatewayUrl = "";
  return {
    platform: "discord",
    settingsCommand: "/lobu",
    showsStopButtons: true,
    editsMessages: true,
    start: async () => {
      emulator = await startDiscordEmulator({
        botToken: BOT_TOKEN,
        botUsername: "lobu-conformance",
      });
      return {
        toml: ["[platforms.discord]", 'stream_interval = "200ms"'],
        env: {
          DISCORD_BOT_TOKEN: BOT_TOKEN,
          DISCORD_PUBLIC_KEY: emulator.publicKey,
          DISCORD_API_ROOT: emulator.apiUrl,
        },
      };
    },
    connect: async (gw: GatewayProcess) => {
      gatewayUrl = gw.url;
      const saved = await dc().setInteractionsEndpoint(`${gw.url}/discord/interactions`);
      if (!saved.ok) throw new Error(`the interactions endpoint was refused: ${saved.reason}`);
      await dc().waitFor(() => dc().commands.some((c) => c.name === "lobu"), {
        ...WAIT,
        description: "the /lobu command",
      });
    },
    close: async () => {
      await emulator?.close();
    },

    person: (n) => {
      const id = String(900_000_000_000_000_000n + BigInt(n));
      people.set(id, { id, username: `conf${n}`, global_name: `Conf ${n}` });
      return id;
    },
    send: async (user, text) => {
      if (text === "/lobu") {
        const i = await dc().slashCommand(person(user), dm(user), "lobu");
        return { status: i.status };
      }
      // The Gateway has no answer to wait for: the message is out once the bot's session got it.
      const message = dc().userSends(person(user), dm(user), text);
      return { status: dc().gateway.connected > 0 ? 200 : 503, message };
    },
    forge: async (user, text) => {
      // Messages arrive only over the bot's own Gateway session; what can be forged is an interaction.
      const body = JSON.stringify({
        id: "1",
        application_id: dc().applicationId,
        type: 2,
        token: "forged",
        version: 1,
        channel_id: dm(user),
        user: person(user),
        data: { name: "lobu", type: 1, options: [{ name: "text", value: text }] },
      });
      const res = await dc().post(`${gatewayUrl}/discord/interactions`, body, { forge: true });
      return { status: res.status };
    },
    // Discord replays a missed MESSAGE_CREATE when a session resumes; nobody else can send one.
    redeliver: async ({ message }) => {
      if (message) dc().redispatch(message);
      return { status: 200 };
    },
    replay: async ({ message }) => {
      if (message) dc().redispatch(message);
      return { status: 200 };
    },
    messages: (user) =>
      dc()
        .messages(dm(user), user)
        .filter((m) => m.author.id === dc().bot.id)
        .map(chatMessage),
    click: async (user, message, label) => {
      const shown = dc().message(message.id);
      if (!shown) throw new Error(`no message ${message.id}`);
      await dc().click(person(user), shown, label);
    },
    rateLimitNextEdit: () => dc().forceRateLimit(EDIT_ROUTE, { retryAfter: 1 }),
    sawRateLimit: () => dc().calls.some((c) => c.route === EDIT_ROUTE && c.status === 429),
    waitFor: (predicate, description) => dc().waitFor(predicate, { ...WAIT, description }),
    files: {
      sendFile: async (user, text, file) => {
        const message = dc().userSends(person(user), dm(user), text, {
          attachments: [{ filename: file.name, contentType: file.mimeType, data: file.content }],
        });
        return { status: dc().gateway.connected > 0 ? 200 : 503, message };
      },
      files: (user) =>
        dc()
          .messages(dm(user), user)
          .filter((m) => m.author.id === dc().bot.id)
          .flatMap((m) =>
            m.attachments.map((a) => ({
              name: a.filename,
              data: a.data,
              ...(m.content ? { caption: m.content } : {}),
            })),
          ),
    },
  };
}
