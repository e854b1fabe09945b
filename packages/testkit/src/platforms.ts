/** Chat platform emulators (Slack, Telegram) for end-to-end tests of the adapters. */
export * from "./slack/index.ts";
export * from "./telegram/index.ts";
