import { Hono } from "hono";
import { type ApiEnv, requireToken } from "../access/auth.ts";
import { assertEveryRouteGuarded } from "../access/endpoint.ts";
import type { TokenStore } from "../access/tokens.ts";
import { boundedBody } from "../http/body-limit.ts";
import { type AgentRouteDeps, agentRoutes } from "./agents.ts";
import { type ConversationRouteDeps, conversationRoutes } from "./conversations.ts";
import { type FileRouteDeps, fileRoutes } from "./files.ts";
import { type InfoDeps, infoRoutes } from "./info.ts";
import { type LinkRouteDeps, linkRoutes } from "./links.ts";
import { type MessageRouteDeps, messageRoutes } from "./messages.ts";
import { type PeopleRouteDeps, peopleRoutes } from "./people.ts";
import { type ProviderRouteDeps, providerRoutes } from "./providers.ts";
import { type ReportRouteDeps, reportRoutes } from "./reports.ts";
import { type RequestRouteDeps, requestRoutes } from "./requests.ts";
import { type SandboxRouteDeps, sandboxRoutes } from "./sandboxes.ts";
import { type ScheduleRouteDeps, scheduleRoutes } from "./schedules.ts";
import { type SecretRouteDeps, secretRoutes } from "./secrets.ts";
import { type SettingsLinkRouteDeps, settingsLinkRoutes } from "./settings-links.ts";
import { type StopRouteDeps, stopRoutes } from "./stops.ts";
import { apiStreamSlots } from "./streams.ts";
import { type TokenRouteDeps, tokenRoutes } from "./tokens.ts";
import { isMultipart, uploadBodyLimit } from "./uploads.ts";

/** What the REST API uses: what its parts use, and the token store that lets callers in. */
export type ApiDeps = FileRouteDeps &
  InfoDeps &
  AgentRouteDeps &
  SecretRouteDeps &
  ProviderRouteDeps &
  MessageRouteDeps &
  StopRouteDeps &
  ConversationRouteDeps &
  RequestRouteDeps &
  SandboxRouteDeps &
  TokenRouteDeps &
  ReportRouteDeps &
  SettingsLinkRouteDeps &
  PeopleRouteDeps &
  LinkRouteDeps &
  ScheduleRouteDeps & { tokens: TokenStore };

/**
 * The REST API (`/api/v1`). See docs/openapi.yaml. Every route is an
 * `endpoint()`: the roles-matrix action it needs (permissions.ts) and the
 * query parameters it takes; each group of routes is its own module.
 */
export function apiRoutes(d: ApiDeps, maxBodyBytes: number): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  const slots = apiStreamSlots(d.config);
  // Bodies are bounded while read, and none is read before the token is checked:
  // a caller without a valid token is refused on its headers alone.
  // A message with files (multipart) may be as large as its files allow.
  const bounded = boundedBody(maxBodyBytes);
  const uploads = boundedBody(uploadBodyLimit(d.config.files));
  api.use("*", (c, next) =>
    c.req.method === "POST" && isMultipart(c) && /\/agents\/[^/]+\/messages$/.test(c.req.path)
      ? uploads(c, next)
      : bounded(c, next),
  );
  api.use("*", requireToken(d.tokens));
  api.route("/", infoRoutes(d, slots));
  api.route("/agents", agentRoutes(d));
  api.route("/", secretRoutes(d));
  api.route("/providers", providerRoutes(d));
  api.route("/", messageRoutes(d, slots));
  api.route("/files", fileRoutes(d));
  api.route("/", conversationRoutes(d));
  api.route("/requests", requestRoutes(d));
  api.route("/", stopRoutes(d));
  api.route("/sandboxes", sandboxRoutes(d));
  api.route("/tokens", tokenRoutes(d));
  api.route("/", reportRoutes(d));
  api.route("/settings-links", settingsLinkRoutes(d));
  api.route("/admin/people", peopleRoutes(d));
  api.route("/admin/links", linkRoutes(d));
  api.route("/", scheduleRoutes(d));
  assertEveryRouteGuarded(api);
  return api;
}
