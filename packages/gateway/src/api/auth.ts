import { LobuError } from "@lobu/core";
import type { MiddlewareHandler } from "hono";
import type { ApiToken, TokenRole, TokenStore } from "./tokens.ts";

export type ApiEnv = { Variables: { token: ApiToken } };

/** Bearer-token auth for /api/v1; `role` = admin restricts to admin tokens. */
export function requireToken(tokens: TokenStore, role?: TokenRole): MiddlewareHandler<ApiEnv> {
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
      throw new LobuError("unauthorized", "invalid or revoked API token", { status: 401 });
    if (role === "admin" && token.role !== "admin") {
      throw new LobuError("forbidden", "this operation needs an admin token", { status: 403 });
    }
    c.set("token", token);
    await next();
  };
}

export function requireAdmin(token: ApiToken): void {
  if (token.role !== "admin")
    throw new LobuError("forbidden", "this operation needs an admin token", { status: 403 });
}
