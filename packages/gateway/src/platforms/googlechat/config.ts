import { readFileSync } from "node:fs";
import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";

/**
 * `[platforms.googlechat]` in lobu.toml. The service account key comes from
 * the environment only.
 */
export const GoogleChatSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this Chat app talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /**
   * What Google puts in the bearer token's audience (Chat API → Configuration
   * → Authentication Audience): the project number (tokens issued by
   * chat@system.gserviceaccount.com), or the HTTP endpoint URL (Google ID tokens).
   */
  audience: z.enum(["project-number", "endpoint-url"]).default("project-number"),
  /** The Google Cloud project number (digits), for `audience = "project-number"`. */
  project_number: z
    .string()
    .regex(/^\d{1,20}$/, "a project number is digits")
    .optional(),
  /** The HTTP endpoint URL exactly as entered in the Chat API configuration, for `audience = "endpoint-url"`. */
  endpoint_url: z.url({ protocol: /^https?$/ }).optional(),
  /** The Command ID given to `/lobu` in the Chat API configuration (Commands). */
  lobu_command_id: z.number().int().positive().default(1),
  /** Shortest time between two edits of a streaming reply (the Chat API allows about one write per second per space). */
  stream_interval: Duration.default(1500),
});

export type AudienceCheck =
  | { mode: "project-number"; projectNumber: string }
  | { mode: "endpoint-url"; endpointUrl: string };

export interface ServiceAccountKey {
  client_email: string;
  private_key: string;
}

export interface GoogleChatSettings {
  agentId?: string;
  audience: AudienceCheck;
  /** Where Google's signing keys are published (a JWKS): chosen by the audience mode, or an emulator's. */
  certsUrl: string;
  serviceAccount: ServiceAccountKey;
  /** The Chat API root (`https://chat.googleapis.com/`, or an emulator). */
  apiRoot: string;
  /** The OAuth token endpoint the service account's JWT grant goes to. */
  tokenUrl: string;
  lobuCommandId: string;
  streamIntervalMs: number;
}

/** Google publishes the Chat service account's keys here (project-number audience). */
export const CHAT_CERTS_URL =
  "https://www.googleapis.com/service_accounts/v1/jwk/chat@system.gserviceaccount.com";
/** Google's ID-token keys (endpoint-url audience). */
export const GOOGLE_ID_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs";
const CHAT_API_ROOT = "https://chat.googleapis.com/";
const TOKEN_URL = "https://oauth2.googleapis.com/token";

const KeyFile = z.object({
  client_email: z.email(),
  private_key: z.string().includes("PRIVATE KEY"),
});

function serviceAccountOf(env: NodeJS.ProcessEnv): ServiceAccountKey {
  const inline = env.GOOGLE_CHAT_SERVICE_ACCOUNT_KEY;
  const file = env.GOOGLE_CHAT_SERVICE_ACCOUNT_KEY_FILE;
  const hint =
    "Create a key for the Chat app's service account (IAM → Service accounts → Keys → Add key → JSON) and set GOOGLE_CHAT_SERVICE_ACCOUNT_KEY_FILE to its path (or GOOGLE_CHAT_SERVICE_ACCOUNT_KEY to its contents).";
  if (!inline && !file)
    throw platformSetupError("googlechat", "no service account key is set", hint);
  let text: string;
  try {
    text = inline || readFileSync(file as string, "utf8");
  } catch (err) {
    throw platformSetupError(
      "googlechat",
      `GOOGLE_CHAT_SERVICE_ACCOUNT_KEY_FILE cannot be read (${(err as Error).message})`,
      hint,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const key = KeyFile.safeParse(json);
  if (!key.success)
    throw platformSetupError(
      "googlechat",
      "the service account key is not a JSON key file with client_email and private_key",
      hint,
    );
  return key.data;
}

/** Google Chat settings from lobu.toml and the environment, or undefined when it is not set up. */
export function googleChatSettings(
  section: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
): GoogleChatSettings | undefined {
  const cfg = parsePlatformSection("googlechat", GoogleChatSection, section);
  if (section === undefined || !cfg.enabled) return undefined;
  let audience: AudienceCheck;
  if (cfg.audience === "project-number") {
    if (!cfg.project_number)
      throw platformSetupError(
        "googlechat",
        "platforms.googlechat.project_number is not set",
        'Copy the project number from the Google Cloud console (Dashboard → Project info), or set audience = "endpoint-url".',
      );
    audience = { mode: "project-number", projectNumber: cfg.project_number };
  } else {
    if (!cfg.endpoint_url)
      throw platformSetupError(
        "googlechat",
        "platforms.googlechat.endpoint_url is not set",
        "Set it to the HTTP endpoint URL exactly as entered in the Chat API configuration (https://<gateway>/googlechat/events).",
      );
    audience = { mode: "endpoint-url", endpointUrl: cfg.endpoint_url };
  }
  const url = (variable: string, fallback: string) =>
    env[variable] ? apiBaseUrl("googlechat", variable, env[variable] as string) : fallback;
  return {
    audience,
    certsUrl: url(
      "GOOGLE_CHAT_CERTS_URL",
      audience.mode === "project-number" ? CHAT_CERTS_URL : GOOGLE_ID_CERTS_URL,
    ),
    serviceAccount: serviceAccountOf(env),
    apiRoot: url("GOOGLE_CHAT_API_ROOT", CHAT_API_ROOT).replace(/\/*$/, "/"),
    tokenUrl: url("GOOGLE_CHAT_TOKEN_URL", TOKEN_URL),
    lobuCommandId: String(cfg.lobu_command_id),
    streamIntervalMs: cfg.stream_interval,
    ...(cfg.agent ? { agentId: cfg.agent } : {}),
  };
}
