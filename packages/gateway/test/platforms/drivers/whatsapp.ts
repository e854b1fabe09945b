import {
  type GatewayProcess,
  startWhatsAppEmulator,
  type WhatsAppEmulator,
  type WhatsAppSent,
} from "@lobu/testkit";
import type { ChatMessage, Delivery, PlatformDriver } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

const ACCESS_TOKEN = "EAAconformance-whatsapp-token";
const APP_SECRET = "whatsapp-app-secret-conformance";
const VERIFY_TOKEN = "whatsapp-verify-token-conformance";
const PHONE_NUMBER_ID = "106540352242922";

function chatMessage(m: WhatsAppSent): ChatMessage {
  return {
    id: m.id,
    text: m.text,
    edits: 0,
    buttons: [...m.buttons, ...m.rows].map((b) => b.title),
    links: m.link ? [m.link.url] : [],
    ...(m.replyTo ? { replyTo: m.replyTo } : {}),
  };
}

type WhatsAppDelivered = Delivery & { notification: string; signature: string };

/** WhatsApp (Cloud API webhook), driven through the Graph API emulator. */
export function whatsappDriver(): PlatformDriver<WhatsAppDelivered> {
  let emulator: WhatsAppEmulator | undefined;
  const wa = () => {
    if (!emulator) throw new Error("the WhatsApp driver is not started");
    return emulator;
  };
  const person = (user: string) => ({ waId: user, name: `Conf ${user.slice(-1)}` });
  return {
    platform: "whatsapp",
    settingsCommand: "/settings",
    editsMessages: false,
    start: async () => {
      emulator = await startWhatsAppEmulator({
        accessToken: ACCESS_TOKEN,
        appSecret: APP_SECRET,
        phoneNumberId: PHONE_NUMBER_ID,
      });
      return {
        toml: ["[platforms.whatsapp]", `phone_number_id = "${PHONE_NUMBER_ID}"`],
        env: {
          WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
          WHATSAPP_APP_SECRET: APP_SECRET,
          WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN,
          WHATSAPP_API_ROOT: emulator.url,
        },
      };
    },
    connect: async (gw: GatewayProcess) => {
      const check = await wa().verifyWebhook(`${gw.url}/whatsapp/webhook`, VERIFY_TOKEN);
      if (!check.ok) throw new Error(`webhook verification failed: ${check.status} ${check.body}`);
    },
    close: async () => {
      await emulator?.close();
    },

    person: (n) => String(15_550_100_000 + n),
    send: (user, text) => wa().userSends(person(user), text),
    forge: async (user, text) => {
      const n = wa().notification(person(user), { type: "text", text: { body: text } });
      // The same notification, signed by someone without the app secret.
      const forged = `sha256=${"0".repeat(64)}`;
      return { status: (await wa().post(n.body, forged)).status };
    },
    // Meta redelivers the same signed bytes; a captured copy is the same bytes too.
    redeliver: (d) => wa().post(d.notification, d.signature),
    replay: (d) => wa().post(d.notification, d.signature),
    messages: (user) => wa().messages(user).map(chatMessage),
    click: async (user, message, label) => {
      const shown = wa().message(message.id);
      if (!shown) throw new Error(`no message ${message.id}`);
      await wa().userTaps(person(user), shown, label);
    },
    // WhatsApp cannot edit: its rate limit meets the reply's text message.
    rateLimitNextEdit: () => wa().forceRateLimit("text", 130429),
    sawRateLimit: () => wa().calls.some((c) => c.kind === "text" && c.errorCode === 130429),
    waitFor: (predicate, description) => wa().waitFor(predicate, { ...WAIT, description }),
    files: {
      sendFile: async (user, text, file) =>
        wa().userSendsFile(person(user), {
          data: file.content,
          mimeType: file.mimeType,
          filename: file.name,
          caption: text,
        }),
      files: (user) =>
        wa()
          .messages(user)
          .flatMap((m) => {
            const mediaId = m.document?.mediaId ?? m.image?.mediaId;
            const media = mediaId ? wa().media(mediaId) : undefined;
            if (!media) return [];
            const caption = m.document?.caption ?? m.image?.caption;
            return [
              {
                name: m.document?.filename ?? media.filename ?? "image",
                data: media.data,
                ...(caption ? { caption } : {}),
              },
            ];
          }),
    },
  };
}
