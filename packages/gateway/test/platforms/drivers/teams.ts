import {
  type GatewayProcess,
  startTeamsEmulator,
  type TeamsDelivery,
  type TeamsEmulator,
  type TeamsMessage,
  type TeamsPerson,
} from "@lobu/testkit";
import type { ChatMessage, PlatformDriver } from "../conformance.ts";
import { WAIT } from "../helpers.ts";

export const TEAMS_APP_ID = "0f3a7c2e-5b1d-4e8f-9a6c-2d7e1b4c8f90";
export const TEAMS_APP_PASSWORD = "teams-conformance-client-secret~0123456789";

export function teamsChatMessage(m: TeamsMessage): ChatMessage {
  return {
    id: m.id,
    text: m.text,
    edits: m.edits.length,
    buttons: m.actions.filter((a) => a.type !== "Action.OpenUrl").map((a) => a.title),
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
  return {
    platform: "teams",
    settingsCommand: "settings",
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
  };
}
