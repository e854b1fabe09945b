import type { Context, Handler, Hono } from "hono";
import { parseQuery, type QuerySpec, type QueryValues } from "../http/query.ts";
import type { ApiEnv } from "./auth.ts";
import { type Access, type Action, authorize } from "./permissions.ts";
import type { ApiToken } from "./tokens.ts";

/** What a route handler gets once the roles matrix let the caller in. */
export interface Granted<Q> {
  token: ApiToken;
  /** `all`, or `own`: the handler must keep to the token's people (permissions.ts). */
  access: Access;
  /** The route's query parameters, checked. */
  query: Q;
}

const guarded = new WeakSet<object>();

/**
 * A REST route: the action it needs from the roles matrix (checked before
 * anything else, 403 when the token's role may not), then its query
 * parameters (400 on anything unknown or malformed), then the handler.
 */
export function endpoint<S extends QuerySpec>(
  action: Action,
  query: S,
  handler: (c: Context<ApiEnv>, granted: Granted<QueryValues<S>>) => Response | Promise<Response>,
): Handler<ApiEnv> {
  const h: Handler<ApiEnv> = async (c) => {
    const token = c.get("token");
    const access = authorize(token, action);
    return handler(c, { token, access, query: parseQuery(c, query) });
  };
  guarded.add(h);
  return h;
}

/**
 * Refuse to serve an API where a route was added without `endpoint()`: such a
 * route would skip the roles matrix.
 */
export function assertEveryRouteGuarded(app: Hono<ApiEnv>): void {
  const loose = app.routes.filter((r) => r.method !== "ALL" && !guarded.has(r.handler));
  if (loose.length > 0) {
    throw new Error(
      `API routes without a roles-matrix action: ${loose.map((r) => `${r.method} ${r.path}`).join(", ")}`,
    );
  }
}
