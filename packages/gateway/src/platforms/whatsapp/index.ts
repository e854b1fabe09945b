import type { PlatformPlugin } from "../shared/plugin.ts";
import { WhatsAppAdapter } from "./adapter.ts";
import { whatsappSettings } from "./config.ts";

/** WhatsApp (Cloud API): `[platforms.whatsapp]`, WHATSAPP_* variables, a signed webhook. */
export const whatsapp: PlatformPlugin = {
  id: "whatsapp",
  create: ({ section, env }) => {
    const settings = whatsappSettings(section, env);
    return settings && new WhatsAppAdapter(settings);
  },
};
