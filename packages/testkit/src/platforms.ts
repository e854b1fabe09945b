/** Chat platform emulators (Slack, Telegram, WhatsApp) for end-to-end tests of the adapters. */
export * from "./slack/index.ts";
export * from "./telegram/index.ts";
export * from "./whatsapp/index.ts";
