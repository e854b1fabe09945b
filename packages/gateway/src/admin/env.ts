import type { Context, Handler } from "hono";
import type { AdminSession } from "../access/web-sessions.ts";
import { type QuerySpec, type QueryValues, withQuery } from "../http/query.ts";

/** The admin API's routes run in an admin session (access/session-auth.ts puts it there). */
export type AdminEnv = { Variables: { session: AdminSession } };

/**
 * An admin API route: it takes the query parameters `spec` declares, checked
 * as the REST API's are (http/query.ts); a route that declares none refuses
 * any with a 400.
 */
export function adminRoute<S extends QuerySpec>(
  spec: S,
  handler: (c: Context<AdminEnv>, query: QueryValues<S>) => Response | Promise<Response>,
): Handler<AdminEnv> {
  return withQuery(spec, handler);
}
