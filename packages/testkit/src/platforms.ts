/** Chat platform emulators (Slack, Telegram, WhatsApp, Discord, Teams, Google Chat) for end-to-end tests of the adapters. */

export * from "./discord/index.ts";
export * from "./googlechat/index.ts";
export * from "./slack/index.ts";
export * from "./teams/index.ts";
export * from "./telegram/index.ts";
export * from "./whatsapp/index.ts";
