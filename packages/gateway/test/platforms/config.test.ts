import { isLobuError } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { discordSettings } from "../../src/platforms/discord/config.ts";
import { discord } from "../../src/platforms/discord/index.ts";
import { refuseForeignBinding } from "../../src/platforms/shared/config.ts";
import { slackSettings } from "../../src/platforms/slack/config.ts";
import { telegramSettings } from "../../src/platforms/telegram/config.ts";
import { telegram } from "../../src/platforms/telegram/index.ts";

/** [platforms.*] and the SLACK_* / TELEGRAM_* variables: what is refused, and how it is explained. */

const TG_TOKEN = "123456:AAH-token";

/** The setup error `fn` throws, as the operator reads it: message and hint. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isLobuError(err)) return `${err.message}. ${err.hint ?? ""}`;
    throw err;
  }
  throw new Error("expected the settings to be refused");
}
const webhook = { publicUrlConfigured: true };
const noPublicUrl = { publicUrlConfigured: false };

describe("Slack settings", () => {
  it("stays off without a section or tokens, and with enabled = false", () => {
    expect(slackSettings(undefined, {})).toBeUndefined();
    expect(slackSettings({ enabled: false }, { SLACK_BOT_TOKEN: "xoxb-1" })).toBeUndefined();
  });

  it("derives the mode and the OAuth authorize page", () => {
    const socket = slackSettings(undefined, {
      SLACK_BOT_TOKEN: "xoxb-1",
      SLACK_APP_TOKEN: "xapp-1",
    });
    expect(socket?.mode).toBe("socket");
    const http = slackSettings(undefined, {
      SLACK_CLIENT_ID: "1.2",
      SLACK_CLIENT_SECRET: "s",
      SLACK_SIGNING_SECRET: "x",
      SLACK_API_URL: "http://127.0.0.1:9/api",
    });
    expect(http).toMatchObject({
      mode: "http",
      apiUrl: "http://127.0.0.1:9/api/",
      authorizeUrl: "http://127.0.0.1:9/oauth/v2/authorize",
    });
  });

  it.each([
    ["no bot token", {}, {}, /SLACK_BOT_TOKEN/],
    ["a client id without its secret", {}, { SLACK_CLIENT_ID: "1.2" }, /SLACK_CLIENT_SECRET/],
    [
      "socket mode without an app token",
      { mode: "socket" },
      { SLACK_BOT_TOKEN: "xoxb-1" },
      /SLACK_APP_TOKEN/,
    ],
    [
      "an API URL that is not a URL",
      {},
      { SLACK_BOT_TOKEN: "xoxb-1", SLACK_SIGNING_SECRET: "x", SLACK_API_URL: "slack.test" },
      /SLACK_API_URL is not an http\(s\) URL/,
    ],
  ])("refuses %s, naming what to set", (_name, section, env, message) => {
    expect(refusal(() => slackSettings(section, env))).toMatch(message);
  });

  it("names the key of a bad [platforms.slack] value", () => {
    expect(() =>
      slackSettings({ max_inline_chars: 10 }, { SLACK_BOT_TOKEN: "x", SLACK_SIGNING_SECRET: "x" }),
    ).toThrow(/platforms\.slack\.max_inline_chars/);
  });
});

describe("Telegram settings", () => {
  it("polls without a public URL and uses a webhook with one", () => {
    expect(telegramSettings(undefined, { TELEGRAM_BOT_TOKEN: TG_TOKEN }, noPublicUrl)?.mode).toBe(
      "polling",
    );
    expect(telegramSettings(undefined, { TELEGRAM_BOT_TOKEN: TG_TOKEN }, webhook)?.mode).toBe(
      "webhook",
    );
    expect(
      telegramSettings(
        undefined,
        { TELEGRAM_BOT_TOKEN: TG_TOKEN, TELEGRAM_API_ROOT: "http://127.0.0.1:9/" },
        webhook,
      )?.apiRoot,
    ).toBe("http://127.0.0.1:9");
  });

  it.each([
    ["a section without a token", {}, /TELEGRAM_BOT_TOKEN is not set/],
    ["a token that is not a bot token", { TELEGRAM_BOT_TOKEN: "abc" }, /does not look like/],
    [
      "a webhook secret Telegram does not allow",
      { TELEGRAM_BOT_TOKEN: TG_TOKEN, TELEGRAM_WEBHOOK_SECRET: "has spaces" },
      /TELEGRAM_WEBHOOK_SECRET/,
    ],
    [
      "an API root that is not a URL",
      { TELEGRAM_BOT_TOKEN: TG_TOKEN, TELEGRAM_API_ROOT: "ftp://example.com" },
      /TELEGRAM_API_ROOT is not an http\(s\) URL/,
    ],
  ])("refuses %s", (_name, env, message) => {
    expect(refusal(() => telegramSettings({}, env, webhook))).toMatch(message);
  });

  it("names the key of a bad [platforms.telegram] value", () => {
    expect(() =>
      telegramSettings({ mode: "carrier-pigeon" }, { TELEGRAM_BOT_TOKEN: TG_TOKEN }, webhook),
    ).toThrow(/platforms\.telegram\.mode/);
  });
});

describe("several bots in one gateway", () => {
  const KEY_A = "a".repeat(64);
  const KEY_B = "b".repeat(64);
  const support = { agent: "support", bot_token_env: "SUPPORT_TOKEN" };

  it("reads a named Telegram bot next to the TELEGRAM_BOT_TOKEN one, or alone", () => {
    const both = telegramSettings(
      { bots: { support: { ...support, webhook_secret_env: "SUPPORT_SECRET" } } },
      { TELEGRAM_BOT_TOKEN: TG_TOKEN, SUPPORT_TOKEN: "654321:AAsupport", SUPPORT_SECRET: "s-1" },
      webhook,
    );
    expect(both?.bots.map((b) => [b.id, b.agentId, b.token, b.webhookSecret])).toEqual([
      ["", undefined, TG_TOKEN, undefined],
      ["support", "support", "654321:AAsupport", "s-1"],
    ]);
    const alone = telegramSettings(
      { bots: { support } },
      { SUPPORT_TOKEN: "654321:AAsupport" },
      webhook,
    );
    expect(alone?.bots.map((b) => b.id)).toEqual(["support"]);
  });

  it.each([
    ["a bot whose token variable is unset", { bots: { support } }, {}, /SUPPORT_TOKEN/],
    [
      "two bots with one token",
      { bots: { support } },
      { TELEGRAM_BOT_TOKEN: TG_TOKEN, SUPPORT_TOKEN: TG_TOKEN },
      /are the same bot/,
    ],
    [
      "two bots with one webhook secret",
      { bots: { support: { ...support, webhook_secret_env: "SHARED" } } },
      {
        TELEGRAM_BOT_TOKEN: TG_TOKEN,
        TELEGRAM_WEBHOOK_SECRET: "same",
        SUPPORT_TOKEN: "654321:AAsupport",
        SHARED: "same",
      },
      /share a webhook secret/,
    ],
    [
      "a bot id that cannot be a path",
      { bots: { "Support Bot": support } },
      { SUPPORT_TOKEN: "654321:AAsupport" },
      /platforms\.telegram\.bots/,
    ],
    [
      "a token written in place of a variable name",
      { bots: { support: { ...support, bot_token_env: "654321:AAsupport" } } },
      {},
      /bot_token_env/,
    ],
  ])("refuses %s (Telegram)", (_name, section, env, message) => {
    expect(() => telegramSettings(section, env, webhook)).toThrow(message);
  });

  it("reads named Discord bots and refuses two with one application", () => {
    const bots = { support: { ...support, public_key_env: "SUPPORT_KEY" } };
    const both = discordSettings(
      { bots },
      {
        DISCORD_BOT_TOKEN: "tok-a",
        DISCORD_PUBLIC_KEY: KEY_A,
        SUPPORT_TOKEN: "tok-b",
        SUPPORT_KEY: KEY_B,
      },
    );
    expect(both?.bots.map((b) => [b.id, b.agentId, b.publicKey])).toEqual([
      ["", undefined, KEY_A],
      ["support", "support", KEY_B],
    ]);
    expect(
      refusal(() =>
        discordSettings(
          { bots },
          {
            DISCORD_BOT_TOKEN: "tok-a",
            DISCORD_PUBLIC_KEY: KEY_A,
            SUPPORT_TOKEN: "tok-b",
            SUPPORT_KEY: KEY_A,
          },
        ),
      ),
    ).toMatch(/same application/);
    expect(refusal(() => discordSettings({ bots }, { SUPPORT_TOKEN: "tok-b" }))).toMatch(
      /SUPPORT_KEY is not set/,
    );
  });
});

describe("a named bot's channels", () => {
  // A named bot carries its agent's name and picture: [channels.*] may not put another agent behind it.
  const KEY_C = "c".repeat(64);
  const platforms = [
    {
      plugin: telegram,
      section: { bots: { support: { agent: "support", bot_token_env: "SUPPORT_TOKEN" } } },
      env: { TELEGRAM_BOT_TOKEN: TG_TOKEN, SUPPORT_TOKEN: "654321:AAsupport" },
      chat: "-1001",
    },
    {
      plugin: discord,
      section: {
        agent: "sales",
        bots: {
          support: { agent: "support", bot_token_env: "SUPPORT_TOKEN", public_key_env: "KEY" },
        },
      },
      env: {
        DISCORD_BOT_TOKEN: "tok-a",
        DISCORD_PUBLIC_KEY: KEY_C,
        SUPPORT_TOKEN: "tok-b",
        KEY: "d".repeat(64),
      },
      chat: "C1",
    },
  ];

  it.each(platforms)(
    "refuses another agent for a named $plugin.id bot's chat at startup",
    ({ plugin, section, env, chat }) => {
      const channels = { [`${plugin.id}:support:${chat}`]: { agent: "sales" } };
      const said = refusal(() =>
        plugin.create({ section, env, publicUrlConfigured: true, channels }),
      );
      expect(said).toContain(`[channels."${plugin.id}:support:${chat}"] names the agent "sales"`);
      expect(said).toContain(`always answers as "support"`);
      expect(said).toMatch(/Remove agent from .*persona, system_prompt, model and tools may stay/);
    },
  );

  it.each(platforms)(
    "keeps the bot's own agent, overrides, and other bots' chats ($plugin.id)",
    ({ plugin, section, env, chat }) => {
      const channels = {
        // The bot's own agent, with a persona and model of its own in this chat.
        [`${plugin.id}:support:${chat}`]: { agent: "support", model: "m" },
        // Overrides without an agent.
        [`${plugin.id}:support:other`]: {},
        // The token bot's chats may still be bound to any agent.
        [`${plugin.id}::${chat}`]: { agent: "support" },
        // Another platform's workspace that happens to be called "support".
        [`slack:support:${chat}`]: { agent: "sales" },
      };
      expect(plugin.create({ section, env, publicUrlConfigured: true, channels })).toBeDefined();
    },
  );
});

describe("/bind in a named bot's chat", () => {
  const named = { id: "support", agentId: "support" };

  it("refuses another agent, with a message for the chat", () => {
    const said = refusal(() => refuseForeignBinding("telegram", named, "sales"));
    expect(said).toContain('this bot always answers as the agent "support"');
    expect(said).toContain("[platforms.telegram.bots.<id>]");
  });

  it("lets unbind, the bot's own agent, and the token bot's chats through", () => {
    expect(() => refuseForeignBinding("telegram", named, null)).not.toThrow();
    expect(() => refuseForeignBinding("telegram", named, "support")).not.toThrow();
    expect(() =>
      refuseForeignBinding("telegram", { id: "", agentId: "sales" }, "support"),
    ).not.toThrow();
  });
});
