import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";

/** Where the Bot Framework publishes the keys it signs activities with. */
export const BOT_FRAMEWORK_OPENID =
  "https://login.botframework.com/v1/.well-known/openidconfiguration";
/** The issuer of every token the Bot Framework connector sends to a bot. */
export const BOT_FRAMEWORK_ISSUER = "https://api.botframework.com";
/** The scope a bot asks for to call the Bot Connector API. */
export const CONNECTOR_SCOPE = "https://api.botframework.com/.default";
/** The scope a bot asks for to call Microsoft Graph with its own (application) permissions. */
export const GRAPH_SCOPE = "https://graph.microsoft.com/.default";
/** Microsoft Graph, where files shared in channels and group chats are read. */
const GRAPH_URL = "https://graph.microsoft.com/v1.0";

/** Hosts Teams' service URLs live on; the bot sends its token to no other. */
const DEFAULT_SERVICE_HOSTS = ["smba.trafficmanager.net", "*.botframework.com"];

const Host = z.string().regex(/^(\*\.)?[a-z0-9.-]{1,253}$/i, 'a host name, or "*." and a domain');

/**
 * `[platforms.teams]` in lobu.toml. The app id and password come from the
 * environment only.
 */
export const TeamsSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this bot talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /** Shortest time between two updates of a streaming reply (Teams allows about one per second per conversation). */
  stream_interval: Duration.default(1500),
  /**
   * The Entra tenant of a single-tenant bot (its token comes from that
   * tenant); multi-tenant bots leave it out. Or TEAMS_TENANT_ID.
   */
  tenant_id: z
    .string()
    .regex(/^[0-9a-f-]{36}$/i, "a tenant id is a GUID")
    .optional(),
  /** Hosts of the service URLs the bot may post to (`*.` for a domain and its subdomains). */
  service_hosts: z.array(Host).min(1).max(32).default(DEFAULT_SERVICE_HOSTS),
  /**
   * Files the agent sends in a channel are uploaded to the channel's files
   * (SharePoint, through Microsoft Graph; needs Files.ReadWrite.All) instead
   * of an hour-long gateway link.
   */
  upload_channel_files: z.boolean().default(false),
});

export interface TeamsSettings {
  agentId?: string;
  /** The bot's Microsoft App ID: the audience of inbound tokens, the client of outbound ones. */
  appId: string;
  /** Its client secret (Azure Bot → Configuration → Manage password). */
  appPassword: string;
  /** OpenID metadata of the Bot Framework (an emulator's in tests). */
  openIdMetadataUrl: string;
  /** Entra token endpoint for client credentials. */
  tokenUrl: string;
  /** Microsoft Graph's base URL (an emulator's in tests). */
  graphUrl: string;
  streamIntervalMs: number;
  serviceHosts: string[];
  uploadChannelFiles: boolean;
}

/** Teams settings from lobu.toml and the environment, or undefined when Teams is not set up. */
export function teamsSettings(
  section: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
): TeamsSettings | undefined {
  const cfg = parsePlatformSection("teams", TeamsSection, section);
  const appId = env.TEAMS_APP_ID || undefined;
  if ((section === undefined && !appId) || !cfg.enabled) return undefined;
  if (!appId || !/^[0-9a-f-]{36}$/i.test(appId))
    throw platformSetupError(
      "teams",
      appId ? "TEAMS_APP_ID is not a GUID" : "TEAMS_APP_ID is not set",
      "Copy the Microsoft App ID from your Azure Bot resource (Configuration), or set enabled = false in [platforms.teams].",
    );
  const appPassword = env.TEAMS_APP_PASSWORD;
  if (!appPassword)
    throw platformSetupError(
      "teams",
      "TEAMS_APP_PASSWORD is not set",
      "Create a client secret for the bot's app registration (Azure Bot → Configuration → Manage Password → New client secret) and set its value.",
    );
  const tenant = cfg.tenant_id ?? env.TEAMS_TENANT_ID ?? "botframework.com";
  const tokenUrl = env.TEAMS_TOKEN_URL
    ? apiBaseUrl("teams", "TEAMS_TOKEN_URL", env.TEAMS_TOKEN_URL)
    : `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`;
  const graphUrl = env.TEAMS_GRAPH_URL
    ? apiBaseUrl("teams", "TEAMS_GRAPH_URL", env.TEAMS_GRAPH_URL)
    : GRAPH_URL;
  const openIdMetadataUrl = env.TEAMS_OPENID_METADATA_URL
    ? apiBaseUrl("teams", "TEAMS_OPENID_METADATA_URL", env.TEAMS_OPENID_METADATA_URL)
    : BOT_FRAMEWORK_OPENID;
  return {
    appId: appId.toLowerCase(),
    appPassword,
    openIdMetadataUrl,
    tokenUrl,
    graphUrl: graphUrl.replace(/\/+$/, ""),
    streamIntervalMs: cfg.stream_interval,
    serviceHosts: cfg.service_hosts.map((h) => h.toLowerCase()),
    uploadChannelFiles: cfg.upload_channel_files,
    ...(cfg.agent ? { agentId: cfg.agent } : {}),
  };
}

/**
 * The token endpoint of `tenant`: Graph tokens come from the tenant whose
 * files they read (the one the activity came from), not the bot's own.
 */
export function tenantTokenUrl(tokenUrl: string, tenant: string): string {
  return tokenUrl.replace(
    /\/[^/]+\/oauth2\/v2\.0\/token$/,
    `/${encodeURIComponent(tenant)}/oauth2/v2.0/token`,
  );
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Whether the bot may send its token to `serviceUrl` (https, or a listed host). */
export function serviceUrlAllowed(serviceUrl: string, hosts: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(serviceUrl);
  } catch {
    return false;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return false;
  if (url.username || url.password) return false;
  const host = url.hostname.toLowerCase();
  const listed = hosts.some((h) =>
    h.startsWith("*.") ? host === h.slice(2) || host.endsWith(h.slice(1)) : host === h,
  );
  // Plain http only on this machine (a local emulator), never across a network.
  return listed && (url.protocol === "https:" || LOOPBACK.has(host));
}
