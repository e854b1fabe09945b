/** Chat platform emulators (Slack, Telegram, WhatsApp, Discord, Teams) for end-to-end tests of the adapters. */

export * from "./discord/index.ts";
export * from "./slack/index.ts";
export * from "./teams/index.ts";
export * from "./telegram/index.ts";
export * from "./whatsapp/index.ts";
