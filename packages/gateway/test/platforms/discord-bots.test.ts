import {
  type DiscordBotApp,
  type DiscordEmulator,
  type DiscordMessage,
  type DiscordUser,
  type GatewayProcess,
  type MockLlm,
  startDiscordEmulator,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llmEnv, PROVIDER_KEY, slowText, WAIT } from "./helpers.ts";

/**
 * Several Discord bots (applications) in one gateway, one per agent: the
 * DISCORD_BOT_TOKEN bot answers as "sales", the
 * `[platforms.discord.bots.support]` bot as "support". Each has its own
 * Gateway session (@discordjs/ws), REST token and interactions endpoint; both
 * sit in one server channel and answer there as themselves.
 */

const SALES_TOKEN = "MTAsales.discord.token";
const SUPPORT_TOKEN = "MTAsupport.discord.token";

let llm: MockLlm;
let dc: DiscordEmulator;
let support: DiscordBotApp;
let gw: GatewayProcess;
let server: { guildId: string; channelId: string };

const ada: DiscordUser = { id: "810000000000000001", username: "ada", global_name: "Ada" };

function waitForText(botId: string, channelId: string, text: string): Promise<DiscordMessage> {
  return dc.waitFor(
    () => dc.messages(channelId).find((m) => m.author.id === botId && m.content === text),
    { ...WAIT, description: `bot ${botId} saying "${text}"` },
  );
}

interface Conversation {
  id: string;
  key: { workspace: string; channelId: string };
}

async function conversationsOf(agent: string, userId: string): Promise<Conversation[]> {
  const res = await gw.api(`/api/v1/agents/${agent}/conversations?user=${userId}`);
  return ((await res.json()) as { conversations: Conversation[] }).conversations;
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  dc = await startDiscordEmulator({ botToken: SALES_TOKEN, botUsername: "sales" });
  support = dc.addBot({ botToken: SUPPORT_TOKEN, botUsername: "support" });
  server = dc.addGuild("Acme");
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      "[agents.sales]",
      'model = "sales-model"',
      "",
      "[agents.support]",
      'model = "support-model"',
      "",
      "[platforms.discord]",
      'agent = "sales"',
      'stream_interval = "200ms"',
      "",
      "[platforms.discord.bots.support]",
      'agent = "support"',
      'bot_token_env = "SUPPORT_DISCORD_TOKEN"',
      'public_key_env = "SUPPORT_DISCORD_PUBLIC_KEY"',
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      DISCORD_BOT_TOKEN: SALES_TOKEN,
      DISCORD_PUBLIC_KEY: dc.publicKey,
      SUPPORT_DISCORD_TOKEN: SUPPORT_TOKEN,
      SUPPORT_DISCORD_PUBLIC_KEY: support.publicKey,
      DISCORD_API_ROOT: dc.apiUrl,
    },
  });
  for (const [path, bot] of [
    ["/discord/interactions", undefined],
    ["/discord/support/interactions", support.bot.id],
  ] as const) {
    const saved = await dc.setInteractionsEndpoint(`${gw.url}${path}`, bot);
    if (!saved.ok) throw new Error(`${path} refused: ${saved.reason}`);
  }
  await dc.waitFor(() => dc.commandsOf(support.bot.id).length > 0 && dc.commands.length > 0, {
    ...WAIT,
    description: "/lobu registered by both applications",
  });
});

afterAll(async () => {
  await gw?.stop();
  await dc?.close();
  await llm?.close();
});

describe("Discord: several bots in one gateway", () => {
  it("refuses to start when [channels] puts another agent behind a named bot, saying what to do", async () => {
    await expect(
      startGatewayProcess({
        toml: [
          "[agents.sales]",
          "[agents.support]",
          "[platforms.discord.bots.support]",
          'agent = "support"',
          'bot_token_env = "SUPPORT_DISCORD_TOKEN"',
          'public_key_env = "SUPPORT_DISCORD_PUBLIC_KEY"',
          "",
          '[channels."discord:support:1234"]',
          'agent = "sales"',
        ].join("\n"),
        env: {
          SUPPORT_DISCORD_TOKEN: SUPPORT_TOKEN,
          SUPPORT_DISCORD_PUBLIC_KEY: support.publicKey,
          DISCORD_API_ROOT: dc.apiUrl,
        },
      }),
    ).rejects.toThrow(
      /always answers as "support"[\s\S]*Remove agent from \[channels\."discord:support:1234"\]/,
    );
  });

  it("connects each bot over its own Gateway session", () => {
    expect(dc.gateway.connected).toBe(2);
  });

  it("answers in one channel as two agents, each through its own bot", async () => {
    llm.when((r) => r.model === "sales-model" && r.lastUserText.endsWith("who are you?"), {
      text: "Sales here.",
    });
    llm.when((r) => r.model === "support-model" && r.lastUserText.endsWith("who are you?"), {
      text: "Support here.",
    });
    dc.userSends(ada, server.channelId, `<@${dc.bot.id}> who are you?`);
    dc.userSends(ada, server.channelId, `<@${support.bot.id}> who are you?`);
    await waitForText(dc.bot.id, server.channelId, "Sales here.");
    await waitForText(support.bot.id, server.channelId, "Support here.");
    const said = (botId: string) =>
      dc
        .messages(server.channelId)
        .filter((m) => m.author.id === botId)
        .map((m) => m.content);
    expect(said(dc.bot.id)).not.toContain("Support here.");
    expect(said(support.bot.id)).not.toContain("Sales here.");

    const [salesConv] = await conversationsOf("sales", ada.id);
    const [supportConv] = await conversationsOf("support", ada.id);
    expect(salesConv?.key).toMatchObject({ workspace: "", channelId: server.channelId });
    expect(supportConv?.key).toMatchObject({ workspace: "support", channelId: server.channelId });
  });

  it("takes one message that mentions both bots once per bot", async () => {
    for (const model of ["sales-model", "support-model"])
      llm.when((r) => r.model === model && r.lastUserText.endsWith("both of you"), {
        text: `${model} heard both`,
      });
    dc.userSends(ada, server.channelId, `<@${dc.bot.id}> <@${support.bot.id}> both of you`);
    await waitForText(dc.bot.id, server.channelId, "sales-model heard both");
    await waitForText(support.bot.id, server.channelId, "support-model heard both");
  });

  it("takes a Stop click on a named bot's reply from the person who asked", async () => {
    llm.when(
      (r) => r.model === "support-model" && r.lastUserText.endsWith("talk a while"),
      // Long enough to outlast a loaded machine: the click must land while it streams.
      slowText("support talking ".repeat(60).trim(), 600, 100),
    );
    // Only this turn's reply: an earlier one may still be shedding its Stop buttons.
    const before = new Set(dc.messages(server.channelId).map((m) => m.id));
    dc.userSends(ada, server.channelId, `<@${support.bot.id}> talk a while`);
    const live = await dc.waitFor(
      () =>
        dc
          .messages(server.channelId)
          .find(
            (m) =>
              !before.has(m.id) &&
              m.author.id === support.bot.id &&
              m.components.some((r) =>
                r.components?.some((c) => c.custom_id?.startsWith("lobu-stop")),
              ),
          ),
      { ...WAIT, description: "the support bot streaming with its Stop buttons" },
    );
    // The click goes to the support application's endpoint, as the person who asked.
    const click = await dc.click(ada, live, "⏹ Stop");
    expect(click.status).toBe(200);
    await dc.waitFor(() => dc.message(live.id)?.content.includes("⏹️ Stopped by"), {
      ...WAIT,
      description: "the support reply saying it was stopped",
    });
  });

  it("refuses an interaction signed by the other application", async () => {
    const body = JSON.stringify({
      id: "1234567890",
      application_id: support.applicationId,
      type: 2,
      token: "t",
      version: 1,
      channel_id: server.channelId,
      guild_id: server.guildId,
      member: { user: ada },
      data: { name: "lobu", type: 1 },
    });
    // Signed with the sales application's key, sent to the support bot's endpoint, and back.
    const crossed = await dc.post(`${gw.url}/discord/support/interactions`, body);
    expect(crossed.status).toBe(401);
    const back = await dc.post(`${gw.url}/discord/interactions`, body, { bot: support.bot.id });
    expect(back.status).toBe(401);
  });

  it("gives /lobu of each bot a settings link for that bot's person", async () => {
    const sales = await dc.slashCommand(ada, server.channelId, "lobu");
    const mine = await dc.slashCommand(ada, server.channelId, "lobu", support.bot.id);
    for (const i of [sales, mine]) expect(i.status).toBe(200);
    // No link in the HTTP answers: each arrives by the bot's webhook editing its ephemeral answer.
    for (const i of [sales, mine]) expect(JSON.stringify(i.response)).not.toMatch(/claim/);
    const urlOf = (i: typeof sales) =>
      dc.waitFor(
        () => {
          const answer = dc
            .messages(server.channelId, ada.id)
            .find((m) => m.interactionToken === i.token && !m.deferred);
          return JSON.stringify(answer?.components ?? []).match(
            /https?:\/\/[^"]+\/settings\/claim\/[A-Za-z0-9_-]+/,
          )?.[0];
        },
        { ...WAIT, description: "the settings link" },
      );
    const who = async (url: string | undefined) => {
      const page = await fetch(url ?? "");
      return page.text();
    };
    // Each claim page names the agent of the bot the command went to.
    const salesPage = await who(await urlOf(sales));
    const supportPage = await who(await urlOf(mine));
    expect(salesPage).toContain("<strong>sales</strong>");
    expect(salesPage).not.toContain("support");
    expect(supportPage).toContain("<strong>support</strong>");
  });
});
