import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";

/** The Graph API version the adapter speaks (`/v21.0/<phone-number-id>/messages`). */
export const DEFAULT_GRAPH_VERSION = "v21.0";
const GRAPH_ROOT = "https://graph.facebook.com";

/** A message template approved in WhatsApp Manager (sent outside the 24-hour window). */
const Template = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]{1,512}$/, "template names are lower case, digits and _"),
  /** The template's language code, as approved (`en`, `en_US`, `de`). */
  language: z.string().min(2).max(15).default("en"),
});

/**
 * `[platforms.whatsapp]` in lobu.toml. The access token, app secret and
 * verify token come from the environment only.
 */
export const WhatsAppSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this number talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /** The business phone number's id (WhatsApp Manager → API Setup); or WHATSAPP_PHONE_NUMBER_ID. */
  phone_number_id: z
    .string()
    .regex(/^\d{1,32}$/, "a phone number id is digits")
    .optional(),
  /** Graph API version in request paths. */
  graph_version: z
    .string()
    .regex(/^v\d{1,3}\.\d{1,2}$/, 'like "v21.0"')
    .default(DEFAULT_GRAPH_VERSION),
  /**
   * Sent instead of a reply when the person's last message is more than 24
   * hours old (WhatsApp then accepts only templates). Without one such a
   * reply is not sent, and the log says so.
   */
  window_template: Template.optional(),
});

export interface WhatsAppSettings {
  agentId?: string;
  phoneNumberId: string;
  /** Permanent (system user) access token with whatsapp_business_messaging. */
  accessToken: string;
  /** The Meta app's secret: X-Hub-Signature-256 is an HMAC with it. */
  appSecret: string;
  /** What Meta sends back in the verification handshake (hub.verify_token). */
  verifyToken: string;
  /** Graph API base (`https://graph.facebook.com`, or an emulator). */
  apiRoot: string;
  graphVersion: string;
  windowTemplate?: { name: string; language: string };
}

const required = [
  ["WHATSAPP_ACCESS_TOKEN", "a permanent access token of a system user (Business Settings)"],
  ["WHATSAPP_APP_SECRET", "the app secret (App settings → Basic)"],
  ["WHATSAPP_VERIFY_TOKEN", "a verify token of your choosing, also entered in the webhook setup"],
] as const;

/** WhatsApp settings from lobu.toml and the environment, or undefined when it is not set up. */
export function whatsappSettings(
  section: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
): WhatsAppSettings | undefined {
  const cfg = parsePlatformSection("whatsapp", WhatsAppSection, section);
  const accessToken = env.WHATSAPP_ACCESS_TOKEN || undefined;
  if ((section === undefined && !accessToken) || !cfg.enabled) return undefined;
  for (const [variable, what] of required) {
    if (!env[variable])
      throw platformSetupError(
        "whatsapp",
        `${variable} is not set`,
        `Set it to ${what}, or set enabled = false in [platforms.whatsapp].`,
      );
  }
  const phoneNumberId = cfg.phone_number_id ?? env.WHATSAPP_PHONE_NUMBER_ID;
  if (!phoneNumberId || !/^\d{1,32}$/.test(phoneNumberId)) {
    throw platformSetupError(
      "whatsapp",
      phoneNumberId
        ? `the phone number id ${JSON.stringify(phoneNumberId)} is not a number id`
        : "no phone number id",
      "Set phone_number_id in [platforms.whatsapp] (or WHATSAPP_PHONE_NUMBER_ID) to the id WhatsApp Manager shows under API Setup, not the phone number itself.",
    );
  }
  const root = env.WHATSAPP_API_ROOT
    ? apiBaseUrl("whatsapp", "WHATSAPP_API_ROOT", env.WHATSAPP_API_ROOT)
    : GRAPH_ROOT;
  return {
    phoneNumberId,
    accessToken: accessToken as string,
    appSecret: env.WHATSAPP_APP_SECRET as string,
    verifyToken: env.WHATSAPP_VERIFY_TOKEN as string,
    apiRoot: root.replace(/\/+$/, ""),
    graphVersion: cfg.graph_version,
    ...(cfg.agent ? { agentId: cfg.agent } : {}),
    ...(cfg.window_template ? { windowTemplate: cfg.window_template } : {}),
  };
}
