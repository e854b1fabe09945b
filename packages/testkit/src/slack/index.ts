export type {
  AddChannelInput,
  AddUserGroupInput,
  AddUserInput,
  MessagesQuery,
} from "./emulator.ts";
export { SlackEmulator, startSlackEmulator } from "./emulator.ts";
export { slackSignature } from "./signing.ts";
export type * from "./types.ts";
