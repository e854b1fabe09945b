export { DiscordEmulator, snowflake, startDiscordEmulator } from "./emulator.ts";
export { signInteraction } from "./signing.ts";
export type * from "./types.ts";
