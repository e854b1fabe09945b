import { Hono } from "hono";
import { z } from "zod";
import { callerActor } from "../access/actors.ts";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import {
  authorizeToken,
  bindingFor,
  NAMESPACE_PATTERN,
  tokenInScope,
} from "../access/permissions.ts";
import { TOKEN_ROLES, type TokenStore } from "../access/tokens.ts";
import type { AuditLog } from "../audit/log.ts";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";

const TokenRequest = z.strictObject({
  name: z.string().min(1).max(100),
  role: z.enum(TOKEN_ROLES),
  /** client: the namespace of api users it acts for (default: its own); user: its user's. */
  namespace: z
    .string()
    .regex(NAMESPACE_PATTERN, "lower-case letters, digits, - and _ (at most 63)")
    .optional(),
  /** user tokens: the one api user it acts for. */
  user: z.string().min(1).max(200).optional(),
  expiresInSec: z
    .number()
    .int()
    .min(60)
    .max(10 * 365 * 86_400)
    .optional(),
});

/** What the token routes use. */
export interface TokenRouteDeps {
  tokens: Pick<TokenStore, "list" | "create" | "get" | "revoke">;
  audit: Pick<AuditLog, "record">;
}

/** `/api/v1/tokens`: list, create and revoke API tokens, each within the caller's scope. */
export function tokenRoutes(d: TokenRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/", listTokens(d));
  r.post("/", createToken(d));
  r.delete("/:id", revokeToken(d));
  return r;
}

function listTokens(d: TokenRouteDeps) {
  return endpoint("tokens.read", {}, async (c, { token, access }) => {
    const tokens = await d.tokens.list();
    return c.json({
      tokens: access === "all" ? tokens : tokens.filter((t) => tokenInScope(token, t)),
    });
  });
}

function createToken(d: TokenRouteDeps) {
  return endpoint("tokens.create", {}, async (c, { token }) => {
    const body = await jsonBody(c, TokenRequest);
    const created = await d.tokens.create(body.name, body.role, bindingFor(token, body));
    d.audit.record({
      action: "token.created",
      actor: callerActor(c),
      details: {
        id: created.info.id,
        role: body.role,
        ...(created.info.namespace !== undefined ? { namespace: created.info.namespace } : {}),
        ...(created.info.user !== undefined ? { user: created.info.user } : {}),
      },
    });
    return c.json({ token: created.token, ...created.info }, 201);
  });
}

function revokeToken(d: TokenRouteDeps) {
  return endpoint("tokens.revoke", {}, async (c, { token }) => {
    const id = c.req.param("id") ?? "";
    const other = await d.tokens.get(id);
    if (!other) throw notFound("no such token");
    authorizeToken(token, "tokens.revoke", other);
    await d.tokens.revoke(id);
    d.audit.record({ action: "token.revoked", actor: callerActor(c), details: { id } });
    return c.body(null, 204);
  });
}
