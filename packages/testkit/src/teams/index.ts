export { startTeamsEmulator, TeamsEmulator } from "./emulator.ts";
export type * from "./types.ts";
