import {
  type GatewayProcess,
  type SlackEmulator,
  type SlackMessage,
  type SlackUserMessageResult,
  startSlackEmulator,
} from "@lobu/testkit";
import type { ChatMessage, Delivery, PlatformDriver } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

const SIGNING_SECRET = "slack-signing-secret-conformance";
const BOT_TOKEN = "xoxb-5555-6666-conformance";

type Block = {
  type?: string;
  text?: { text?: string };
  elements?: Element[];
  block_id?: string;
};
type Element = {
  type?: string;
  text?: string | { text?: string };
  url?: string;
  action_id?: string;
  elements?: Element[];
};

/** Every text a block shows (sections, context lines, preformatted rich text). */
function blockText(block: Block): string[] {
  if (block.type === "section") return [block.text?.text ?? ""];
  if (block.type === "context")
    return (block.elements ?? []).map((e) => (typeof e.text === "string" ? e.text : ""));
  if (block.type === "rich_text") {
    const walk = (els: Element[]): string =>
      els.map((e) => (typeof e.text === "string" ? e.text : walk(e.elements ?? []))).join("");
    return [walk(block.elements ?? [])];
  }
  return [];
}

function chatMessage(m: SlackMessage): ChatMessage {
  const blocks = (m.blocks ?? []) as Block[];
  const elements = blocks.filter((b) => b.type === "actions").flatMap((b) => b.elements ?? []);
  return {
    id: m.ts,
    text: blocks.flatMap(blockText).join("\n\n"),
    edits: m.edits.length,
    buttons: elements
      .filter((e) => e.action_id?.startsWith("lobu:"))
      .map((e) => (typeof e.text === "object" ? (e.text.text ?? "") : "")),
    links: elements.flatMap((e) => (e.url ? [e.url] : [])),
    stops: elements
      .filter((e) => e.action_id?.startsWith("lobu-stop"))
      .map((e) => (typeof e.text === "object" ? (e.text.text ?? "") : "")),
  };
}

type SlackSent = Delivery & { message: SlackUserMessageResult };

/** Slack over HTTP (Events API), driven through the Slack emulator. */
export function slackDriver(): PlatformDriver<SlackSent> {
  let emulator: SlackEmulator | undefined;
  const slack = () => {
    if (!emulator) throw new Error("the Slack driver is not started");
    return emulator;
  };
  const messages = (user: string) => slack().messages(slack().imChannel(user).id);
  let failuresFrom = 0;
  return {
    platform: "slack",
    showsStopButtons: true,
    settingsCommand: "settings",
    editsMessages: true,
    start: async () => {
      emulator = await startSlackEmulator({
        signingSecret: SIGNING_SECRET,
        botToken: BOT_TOKEN,
        botName: "lobu",
        subscriptions: ["app_mention", "message.im", "message.channels"],
      });
      return {
        toml: ["[platforms.slack]", 'stream_interval = "200ms"'],
        env: {
          SLACK_BOT_TOKEN: BOT_TOKEN,
          SLACK_SIGNING_SECRET: SIGNING_SECRET,
          SLACK_API_URL: emulator.apiUrl,
        },
      };
    },
    connect: async (gw: GatewayProcess) => {
      slack().eventsUrl = `${gw.url}/slack/events`;
    },
    close: async () => {
      await emulator?.close();
    },

    person: (n) => `UCONF${n}`,
    send: async (user, text) => {
      const message = await slack().dm({ user, text });
      return { status: message.status, message };
    },
    forge: (user, text) => slack().dm({ user, text }, { forge: { secret: "not-the-secret" } }),
    redeliver: ({ message }) =>
      slack().sendEvent(message.events[0]!, {
        eventId: message.deliveries[0]!.eventId!,
        retryNum: 1,
        retryReason: "http_timeout",
      }),
    replay: async ({ message }) => {
      const d = slack().deliveries.find((x) => x.eventId === message.deliveries[0]!.eventId);
      if (!d) throw new Error("no delivery to replay");
      return fetch(d.url, { method: "POST", headers: d.headers, body: d.body });
    },
    messages: (user) => messages(user).map(chatMessage),
    click: async (user, message, label) => {
      const shown = messages(user).find((m) => m.ts === message.id);
      const button = ((shown?.blocks ?? []) as Block[])
        .filter((b) => b.type === "actions")
        .flatMap((b) => b.elements ?? [])
        .find((e) => typeof e.text === "object" && e.text.text === label);
      if (!button?.action_id) throw new Error(`no button "${label}"`);
      await slack().clickButton({
        user,
        channel: slack().imChannel(user).id,
        messageTs: message.id,
        actionId: button.action_id,
      });
    },
    rateLimitNextEdit: () => slack().forceRateLimit("chat.update", { retryAfter: 1 }),
    failNextDeliveries: () => {
      failuresFrom = slack().calls.length;
      for (const method of ["chat.postMessage", "chat.update"]) {
        slack().failNext(method, { status: 503, error: "service_unavailable" });
        slack().failNext(method, "internal_error");
        slack().forceRateLimit(method, { retryAfter: 3 });
      }
    },
    deliveryFailuresUsed: () => {
      const seen = slack().calls.slice(failuresFrom);
      const failed = (m: string) =>
        seen.filter((c) => c.method === m && (c.httpStatus !== 200 || c.response.ok === false));
      return failed("chat.postMessage").length >= 3 || failed("chat.update").length >= 3;
    },
    limitText: (chars) => slack().limitTextLength(chars),
    sawRateLimit: () =>
      slack().calls.some((c) => c.method === "chat.update" && c.httpStatus === 429),
    waitFor: (predicate, description) => slack().waitFor(predicate, { ...WAIT, description }),
    files: {
      sendFile: async (user, text, file) => {
        const message = await slack().dm({
          user,
          text,
          files: [{ name: file.name, content: file.content, mimetype: file.mimeType }],
        });
        return { status: message.status };
      },
      files: (user) =>
        slack()
          .uploads.filter((f) => f.channel === slack().imChannel(user).id)
          .map((f) => ({
            name: f.name,
            data: f.data,
            ...(f.initialComment ? { caption: f.initialComment } : {}),
          })),
    },
  };
}
