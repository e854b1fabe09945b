export { type DiscordBotApp, DiscordEmulator, startDiscordEmulator } from "./emulator.ts";
export { signInteraction } from "./signing.ts";
export type * from "./types.ts";
export { snowflake } from "./wire.ts";
