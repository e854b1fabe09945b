import { type LobuConfig, LobuError } from "@lobu/core";
import { type Origin, userKeyOf } from "../domain/origin.ts";
import type { Answerer } from "../domain/requests.ts";
import { forbidden } from "../http/refusals.ts";
import { tokenActor } from "./actors.ts";
import type { ApiToken, TokenRole } from "./tokens.ts";

/**
 * The roles matrix: what each kind of API token may do, and for whom. Every
 * `/api/v1` route names one action (see endpoint.ts) and is checked here; the
 * table is documented in docs/api.md (Roles), and a test holds the two equal
 * and calls every route with every role.
 *
 * - `all`: for anyone, on every platform.
 * - `own`: only for the people in the token's scope — a `client` token's
 *   namespace of `api` users (`api:<namespace>:<user>`), a `user` token's one
 *   user; for the token actions, the `user` tokens of that namespace. Never a
 *   Slack or Telegram person, never another namespace.
 * - `none`: refused with 403.
 */
export type Access = "all" | "own" | "none";

/** Every action a route can need, with the words a refusal uses. */
export const ACTIONS = {
  "info.read": "read the gateway's info",
  "agents.read": "list and read agents",
  "agents.manage": "create, change or delete agents",
  "providers.read": "list providers",
  "secrets.manage": "read or change agent and installation secrets",
  "messages.send": "send messages",
  "messages.read": "read messages and their event streams",
  "conversations.read": "list and read conversations",
  "requests.answer": "answer questions, approvals and capability requests",
  "turns.stop": "stop running turns and drop queued messages",
  "settings_links.create": "create settings links",
  "sandboxes.manage": "list, stop, reset or run commands in sandboxes",
  "tokens.read": "list API tokens",
  "tokens.create": "create API tokens",
  "tokens.revoke": "revoke API tokens",
  "audit.read": "read the audit log",
  "usage.read": "read usage",
  "people.export": "export everything held about a person",
  "people.erase": "erase everything held about a person",
  "links.read": "list linked identities",
  "links.manage": "unlink identities",
  "schedules.read": "list schedules",
  "schedules.cancel": "cancel schedules",
} as const;
export type Action = keyof typeof ACTIONS;

export const ROLES_MATRIX: Readonly<Record<Action, Readonly<Record<TokenRole, Access>>>> = {
  "info.read": { admin: "all", client: "all", user: "all" },
  "agents.read": { admin: "all", client: "all", user: "all" },
  "agents.manage": { admin: "all", client: "none", user: "none" },
  "providers.read": { admin: "all", client: "all", user: "none" },
  "secrets.manage": { admin: "all", client: "none", user: "none" },
  "messages.send": { admin: "all", client: "own", user: "own" },
  "messages.read": { admin: "all", client: "own", user: "own" },
  "conversations.read": { admin: "all", client: "own", user: "own" },
  "requests.answer": { admin: "all", client: "own", user: "own" },
  "turns.stop": { admin: "all", client: "own", user: "own" },
  "settings_links.create": { admin: "all", client: "own", user: "own" },
  "sandboxes.manage": { admin: "all", client: "none", user: "none" },
  "tokens.read": { admin: "all", client: "own", user: "none" },
  "tokens.create": { admin: "all", client: "own", user: "none" },
  "tokens.revoke": { admin: "all", client: "own", user: "none" },
  "audit.read": { admin: "all", client: "none", user: "none" },
  "usage.read": { admin: "all", client: "none", user: "none" },
  "people.export": { admin: "all", client: "own", user: "own" },
  "people.erase": { admin: "all", client: "own", user: "own" },
  "links.read": { admin: "all", client: "none", user: "none" },
  "links.manage": { admin: "all", client: "none", user: "none" },
  "schedules.read": { admin: "all", client: "own", user: "own" },
  "schedules.cancel": { admin: "all", client: "own", user: "own" },
};

/** The API user namespace of admin tokens (`api::<user>`): no client or user token acts in it. */
export const ADMIN_NAMESPACE = "";

/** Namespaces are the middle part of a user key: no `:`; kept boring for URLs and logs. */
export const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Whose a resource is: the person (on a platform) a conversation, message or request belongs to. */
export type Subject = Pick<Origin, "platform" | "workspace" | "userId">;

/** The namespace of `api` users a token acts in. */
export function namespaceOf(token: ApiToken): string {
  if (token.role === "admin") return ADMIN_NAMESPACE;
  // Client tokens from before namespaces: a namespace of their own, shared with nobody.
  return token.namespace ?? token.id;
}

function describeScope(token: ApiToken): string {
  return token.role === "user"
    ? `this user token acts only for api user "${token.user}" in namespace "${namespaceOf(token)}"`
    : `this client token acts only for api users in namespace "${namespaceOf(token)}"`;
}

/** The token's access to `action`; refuses (403) when it has none. */
export function authorize(token: ApiToken, action: Action): Access {
  const access = ROLES_MATRIX[action][token.role];
  if (access === "none") {
    throw forbidden(
      `a ${token.role} token may not ${ACTIONS[action]}`,
      token.role === "admin"
        ? "See docs/api.md, Roles."
        : "This needs an admin token (`lobu token create --role admin`); see docs/api.md, Roles.",
    );
  }
  return access;
}

/** Is `subject` one of the people `token` acts for? */
export function inScope(token: ApiToken, subject: Subject): boolean {
  if (token.role === "admin") return true;
  if (subject.platform !== "api" || (subject.workspace ?? "") !== namespaceOf(token)) return false;
  return token.role === "client" || subject.userId === token.user;
}

/**
 * Refuse (403) unless `token` may do `action` for `subject`. `what` names the
 * resource in the message ("conversation sb_…").
 */
export function authorizeFor(
  token: ApiToken,
  action: Action,
  subject: Subject,
  what: string,
): void {
  const access = authorize(token, action);
  if (access === "all" || inScope(token, subject)) return;
  throw forbidden(
    `${what} belongs to someone this token does not act for: ${describeScope(token)}`,
    "Use the token of the app the person belongs to, or an admin token; see docs/api.md, Roles.",
  );
}

/**
 * The `api` person a request made with `token` speaks for: the `user` it names,
 * in the token's namespace. A user token may only name its own user.
 */
export function apiOrigin(
  token: ApiToken,
  body: { user: string; channel: string; userName?: string | undefined },
): Origin {
  if (token.role === "user" && body.user !== token.user) {
    throw forbidden(
      `${describeScope(token)}, not for "${body.user}"`,
      `Send user "${token.user}", or use the app's client token.`,
    );
  }
  return {
    platform: "api",
    workspace: namespaceOf(token),
    channelId: body.channel,
    userId: body.user,
    ...(body.userName ? { userName: body.userName } : {}),
    isDirect: true,
  };
}

/**
 * Who answers a request when `token` does: an admin token answers as the
 * operator (any request, "always" for the person); other tokens answer as the
 * end user whose request it is, with no more power than that person has in
 * their chat or settings page.
 */
export function answererFor(
  token: ApiToken,
  request: { origin: Origin },
): Answerer & { actor: string } {
  const actor = tokenActor(token);
  if (token.role === "admin") return { admin: true, label: `api:${token.name}`, actor };
  return {
    userKey: userKeyOf(request.origin),
    label: `api:${request.origin.userName ?? request.origin.userId}`,
    actor,
  };
}

/** May `token` see or revoke `other` (tokens.read / tokens.revoke)? */
export function tokenInScope(token: ApiToken, other: ApiToken): boolean {
  if (token.role === "admin") return true;
  return other.role === "user" && namespaceOf(other) === namespaceOf(token);
}

/**
 * May the settings-page session of `userKey` open the admin UI? Only people
 * listed in `[admin] users`, and never an `api` identity in a namespace: those
 * are minted by client tokens, which must not lead to admin power. (`api::<user>`
 * identities are minted by admin tokens only.)
 */
export function mayOpenAdminUi(config: Pick<LobuConfig, "admin">, userKey: string): boolean {
  if (/^api:[^:]+:/.test(userKey)) return false;
  return config.admin.users.includes(userKey);
}

/** Refuse (403) unless `token` may do `action` (tokens.read / tokens.revoke) on `other`. */
export function authorizeToken(token: ApiToken, action: Action, other: ApiToken): void {
  const access = authorize(token, action);
  if (access === "all" || tokenInScope(token, other)) return;
  throw forbidden(
    `token ${other.id} is not one of this token's: ${describeScope(token)} and manages only the user tokens there`,
    "Use an admin token; see docs/api.md, Roles.",
  );
}

/** Longest life of a `user` token, and its default: they are meant to be handed to browsers and apps. */
export const USER_TOKEN_MAX_SEC = 30 * 86_400;
export const USER_TOKEN_DEFAULT_SEC = 86_400;

/**
 * What a token created by `creator` is bound to. Admin tokens create any role;
 * client tokens create only `user` tokens, in their own namespace. Client and
 * user tokens never get the admin namespace.
 */
export function bindingFor(
  creator: ApiToken,
  req: {
    role: TokenRole;
    namespace?: string | undefined;
    user?: string | undefined;
    expiresInSec?: number | undefined;
  },
): { namespace?: string; user?: string; issuedBy?: string; expiresAt?: number } {
  const invalid = (message: string, hint: string) =>
    new LobuError("invalid_request", message, { status: 400, hint });
  if (creator.role !== "admin") {
    if (req.role !== "user")
      throw forbidden(
        `a ${creator.role} token may create only user tokens`,
        "Ask an operator for admin or client tokens; see docs/api.md, Roles.",
      );
    if (req.namespace !== undefined && req.namespace !== namespaceOf(creator))
      throw forbidden(
        `${describeScope(creator)}; it cannot create tokens for namespace "${req.namespace}"`,
        "Leave namespace out: user tokens are created in the client's own namespace.",
      );
  }
  if (req.role === "admin" && (req.namespace !== undefined || req.user !== undefined))
    throw invalid(
      "admin tokens act for everyone: they take no namespace or user",
      "Leave namespace and user out, or create a client or user token.",
    );
  if (req.role === "client" && req.user !== undefined)
    throw invalid(
      "client tokens act for every user of their namespace: they take no user",
      "Create a user token (role user) for one person.",
    );
  const expiresInSec =
    req.role === "user" ? (req.expiresInSec ?? USER_TOKEN_DEFAULT_SEC) : req.expiresInSec;
  if (req.role === "user") {
    if (req.user === undefined)
      throw invalid("a user token needs the user it acts for", 'Send "user": "<id in your app>".');
    if (creator.role === "admin" && req.namespace === undefined)
      throw invalid(
        "a user token needs the namespace its user lives in",
        'Send "namespace": the namespace of the client token whose app the person uses.',
      );
    if (expiresInSec !== undefined && expiresInSec > USER_TOKEN_MAX_SEC)
      throw invalid(
        `user tokens live at most ${USER_TOKEN_MAX_SEC} seconds (30 days)`,
        "Send a smaller expiresInSec and create a new token when it runs out.",
      );
  }
  const namespace = creator.role === "admin" ? req.namespace : namespaceOf(creator);
  return {
    ...(namespace !== undefined ? { namespace } : {}),
    ...(req.user !== undefined ? { user: req.user } : {}),
    ...(creator.role !== "admin" ? { issuedBy: creator.id } : {}),
    ...(expiresInSec !== undefined ? { expiresAt: Date.now() + expiresInSec * 1000 } : {}),
  };
}
