export { signWhatsAppBody, startWhatsAppEmulator, WhatsAppEmulator } from "./emulator.ts";
export type { GraphError } from "./graph-api.ts";
export type * from "./types.ts";
