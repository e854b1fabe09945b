import {
  buttonsOf,
  type GatewayProcess,
  type GoogleChatDelivery,
  type GoogleChatEmulator,
  type GoogleChatMessage,
  startGoogleChatEmulator,
} from "@lobu/testkit";
import type { ChatMessage, PlatformDriver, PostedFile } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

const PROJECT_NUMBER = "123456789012";
const LOBU_COMMAND_ID = 7;
const EDIT_ROUTE = "PUT message";

function chatMessage(m: GoogleChatMessage): ChatMessage {
  const buttons = buttonsOf(m.cardsV2);
  const isStop = (b: (typeof buttons)[number]) => b.onClick?.action?.function === "lobu.stop";
  return {
    id: m.name,
    text: m.text,
    edits: m.edits.length,
    buttons: buttons.flatMap((b) => (b.onClick?.action && !isStop(b) ? [b.text ?? ""] : [])),
    stops: buttons.flatMap((b) => (isStop(b) ? [b.text ?? ""] : [])),
    links: buttons.flatMap((b) => (b.onClick?.openLink ? [b.onClick.openLink.url] : [])),
  };
}

/** Google Chat: events to the HTTP endpoint, replies through the Chat API emulator. */
export function googleChatDriver(): PlatformDriver<GoogleChatDelivery> {
  let emulator: GoogleChatEmulator | undefined;
  const gc = () => {
    if (!emulator) throw new Error("the Google Chat driver is not started");
    return emulator;
  };
  const person = (id: string) => ({ id, displayName: `Conf ${id.slice(-1)}` });
  const dm = (user: string) => gc().dmSpace(person(user));
  // A file the app sends is a Download button to the gateway: opened once, then read from the emulator.
  const opening = new Set<string>();
  const postedFiles = (m: GoogleChatMessage): PostedFile[] =>
    buttonsOf(m.cardsV2).flatMap((b) => {
      const url = b.onClick?.openLink?.url;
      if (!url || !b.text?.startsWith("Download ")) return [];
      const data = gc().opened(url);
      if (!data) {
        if (!opening.has(url)) {
          opening.add(url);
          void gc().open(url);
        }
        return [];
      }
      const caption = m.text.split("\n\n📎")[0];
      return [
        {
          name: b.text.slice("Download ".length),
          data,
          ...(caption && !caption.startsWith("📎") ? { caption } : {}),
        },
      ];
    });
  return {
    platform: "googlechat",
    settingsCommand: "/lobu",
    showsStopButtons: true,
    editsMessages: true,
    start: async () => {
      emulator = await startGoogleChatEmulator({ projectNumber: PROJECT_NUMBER });
      return {
        toml: [
          "[platforms.googlechat]",
          `project_number = "${PROJECT_NUMBER}"`,
          `lobu_command_id = ${LOBU_COMMAND_ID}`,
          'stream_interval = "200ms"',
        ],
        env: {
          GOOGLE_CHAT_SERVICE_ACCOUNT_KEY: emulator.serviceAccountKey,
          GOOGLE_CHAT_CERTS_URL: emulator.certsUrl,
          GOOGLE_CHAT_API_ROOT: emulator.url,
          GOOGLE_CHAT_TOKEN_URL: emulator.tokenUrl,
        },
      };
    },
    connect: async (gw: GatewayProcess) => {
      gc().setEndpoint(`${gw.url}/googlechat/events`);
    },
    close: async () => {
      await emulator?.close();
    },

    person: (n) => String(104_000_000_000_000_000_000n + BigInt(n)),
    send: (user, text) =>
      text === "/lobu"
        ? gc().slashCommand(person(user), dm(user), LOBU_COMMAND_ID)
        : gc().userSends(person(user), dm(user), text),
    forge: async (user, text) => {
      dm(user);
      const event = JSON.stringify({
        type: "MESSAGE",
        user: { name: `users/${user}`, type: "HUMAN" },
        space: { name: dm(user), spaceType: "DIRECT_MESSAGE" },
        message: { name: `${dm(user)}/messages/forged.1`, text },
      });
      // Well formed and unexpired, but signed with a key Google never published.
      return { status: (await gc().post(event, await gc().token({}, "stranger"))).status };
    },
    // Chat sends an event with a token of its own; a captured copy is the same bytes and token.
    redeliver: (d) => gc().deliver(JSON.parse(d.event)),
    replay: (d) => gc().post(d.event, d.token),
    messages: (user) =>
      gc()
        .messages(dm(user), user)
        .filter((m) => m.sender === "users/app")
        .map(chatMessage),
    click: async (user, message, label) => {
      const shown = gc().message(message.id);
      if (!shown) throw new Error(`no message ${message.id}`);
      await gc().click(person(user), shown, label);
    },
    rateLimitNextEdit: () => gc().forceRateLimit(EDIT_ROUTE),
    sawRateLimit: () => gc().calls.some((c) => c.route === EDIT_ROUTE && c.status === 429),
    waitFor: (predicate, description) => gc().waitFor(predicate, { ...WAIT, description }),
    files: {
      sendFile: (user, text, file) =>
        gc().userSends(person(user), dm(user), text, {
          attachments: [{ name: file.name, mimeType: file.mimeType, data: file.content }],
        }),
      files: (user) =>
        gc()
          .messages(dm(user), user)
          .filter((m) => m.sender === "users/app")
          .flatMap(postedFiles),
    },
  };
}
