export type { TelegramBotSim, TelegramMessagesQuery } from "./bot.ts";
export { startTelegramEmulator, TelegramEmulator } from "./emulator.ts";
export {
  detectEntities,
  EntityParseError,
  parseHtml,
  parseMarkdownLegacy,
  parseMarkdownV2,
} from "./format.ts";
export type * from "./types.ts";
export { signWebAppInitData, webAppDataCheckString, webAppHash } from "./webapp.ts";
