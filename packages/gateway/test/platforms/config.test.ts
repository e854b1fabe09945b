import { isLobuError } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { discordSettings } from "../../src/platforms/discord/config.ts";
import { slackSettings } from "../../src/platforms/slack/config.ts";
import { telegramSettings } from "../../src/platforms/telegram/config.ts";

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
