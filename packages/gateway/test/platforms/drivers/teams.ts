import {
  type GatewayProcess,
  startTeamsEmulator,
  type TeamsDelivery,
  type TeamsEmulator,
  type TeamsMessage,
  type TeamsPerson,
} from "@lobu/testkit";
import type { ChatMessage, PlatformDriver, PostedFile } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

export const TEAMS_APP_ID = "0f3a7c2e-5b1d-4e8f-9a6c-2d7e1b4c8f90";
export const TEAMS_APP_PASSWORD = "teams-conformance-client-secret~0123456789";

export function teamsChatMessage(m: TeamsMessage): ChatMessage {
  return {
    id: m.id,
    text: m.text,
    edits: m.edits.length,
    buttons: m.actions
      .filter((a) => a.type !== "Action.OpenUrl" && a.verb !== "lobu.stop")
      .map((a) => a.title),
    stops: m.actions.filter((a) => a.verb === "lobu.stop").map((a) => a.title),
    links: m.actions.flatMap((a) => (a.type === "Action.OpenUrl" && a.url ? [a.url] : [])),
    ...(m.replyTo ? { replyTo: m.replyTo } : {}),
  };
}

/** The environment and lobu.toml lines that point a gateway's Teams adapter at `emulator`. */
export function teamsSetup(emulator: TeamsEmulator) {
  return {
    toml: ["[platforms.teams]", 'stream_interval = "200ms"', 'service_hosts = ["127.0.0.1"]'],
    env: {
      TEAMS_APP_ID,
      TEAMS_APP_PASSWORD,
      TEAMS_OPENID_METADATA_URL: emulator.openIdMetadataUrl,
      TEAMS_TOKEN_URL: emulator.tokenUrl,
      TEAMS_GRAPH_URL: emulator.graphUrl,
    },
  };
}

/** Microsoft Teams (Bot Framework), driven through the emulator, in each person's 1:1 chat. */
export function teamsDriver(): PlatformDriver<TeamsDelivery> {
  let emulator: TeamsEmulator | undefined;
  const tm = () => {
    if (!emulator) throw new Error("the Teams driver is not started");
    return emulator;
  };
  const person = (id: string): TeamsPerson => ({ id, name: `Conf ${id.slice(-1)}` });
  const chat = (user: string) => tm().personal(person(user));
  const opening = new Set<string>();
  /** A file the bot posted: an inline picture (data URL), or a card with its download link (opened as a person would). */
  const postedFiles = (m: TeamsMessage): PostedFile[] => {
    const caption = typeof m.activity.text === "string" ? m.activity.text : undefined;
    const withCaption = caption ? { caption } : {};
    const attachments = (m.activity.attachments ?? []) as { contentUrl?: string; name?: string }[];
    const inline = attachments.flatMap((a) =>
      a.contentUrl?.startsWith("data:")
        ? [
            {
              name: a.name ?? "image",
              data: Buffer.from(a.contentUrl.split(",")[1] ?? "", "base64"),
              ...withCaption,
            },
          ]
        : [],
    );
    const linked = m.actions.flatMap((a) => {
      if (a.type !== "Action.OpenUrl" || !a.url || !a.title.startsWith("Download ")) return [];
      const data = tm().opened(a.url);
      if (!data) {
        const url = a.url;
        if (!opening.has(url)) {
          opening.add(url);
          void tm().open(url);
        }
        return [];
      }
      return [{ name: a.title.slice("Download ".length), data, ...withCaption }];
    });
    return [...inline, ...linked];
  };
  return {
    platform: "teams",
    settingsCommand: "settings",
    showsStopButtons: true,
    editsMessages: true,
    start: async () => {
      emulator = await startTeamsEmulator({ appId: TEAMS_APP_ID, appPassword: TEAMS_APP_PASSWORD });
      return teamsSetup(emulator);
    },
    connect: async (gw: GatewayProcess) => {
      tm().setMessagingEndpoint(`${gw.url}/teams/messages`);
    },
    close: async () => {
      await emulator?.close();
    },

    person: (n) => `29:1conformance-teams-person-${n}`,
    send: (user, text) => tm().userSends(person(user), chat(user), text),
    forge: (user, text) => tm().userSends(person(user), chat(user), text, { foreignKey: true }),
    // The connector retries the same activity (and token); a captured copy is the same bytes.
    redeliver: (d) => tm().post(d.raw, d.token),
    replay: (d) => tm().post(d.raw, d.token),
    messages: (user) => tm().messagesIn(chat(user).id).map(teamsChatMessage),
    click: async (user, message, label) => {
      const shown = tm().message(message.id);
      if (!shown) throw new Error(`no message ${message.id}`);
      await tm().click(person(user), shown, label);
    },
    rateLimitNextEdit: () => tm().forceRateLimit("PUT activity", 1),
    sawRateLimit: () => tm().calls.some((c) => c.route === "PUT activity" && c.status === 429),
    waitFor: (predicate, description) => tm().waitFor(predicate, { ...WAIT, description }),
    files: {
      sendFile: (user, text, file) =>
        tm().userSendsFile(person(user), chat(user), text, {
          name: file.name,
          data: file.content,
          mimeType: file.mimeType,
        }),
      files: (user) => tm().messagesIn(chat(user).id).flatMap(postedFiles),
    },
  };
}
