import { LobuError } from "@lobu/core";
import type { MiddlewareHandler } from "hono";
import type { ApiToken, TokenStore } from "./tokens.ts";

export type ApiEnv = { Variables: { token: ApiToken } };

/**
 * Bearer-token auth for /api/v1: who is calling. What they may do is decided
 * per route by the roles matrix (permissions.ts, through endpoint.ts).
 */
export function requireToken(tokens: TokenStore): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) {
      throw new LobuError("unauthorized", "missing API token", {
        status: 401,
        hint: "Send Authorization: Bearer <token>. `lobu run` writes an admin token to <data dir>/admin-token; create more with `lobu token create`.",
      });
    }
    const token = await tokens.verify(m[1]!);
    if (!token)
      throw new LobuError("unauthorized", "invalid, expired or revoked API token", {
        status: 401,
      });
    c.set("token", token);
    await next();
  };
}
