export { buttonsOf, GoogleChatEmulator, startGoogleChatEmulator, TEXT_LIMIT } from "./emulator.ts";
export type * from "./types.ts";
