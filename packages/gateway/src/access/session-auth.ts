import { LobuError } from "@lobu/core";
import type { MiddlewareHandler } from "hono";
import { forbidden } from "../http/refusals.ts";
import { type CookieSpec, originAllowed, readSessionId } from "../http/web.ts";
import { safeEqual } from "../util/safe-equal.ts";
import type { WebSession, WebSessions } from "./web-sessions.ts";

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Session auth for a JSON API: loads the session of `kind`, and on
 * state-changing methods checks the Origin and the CSRF header (constant time).
 */
export function requireSession<K extends WebSession["kind"]>(opts: {
  sessions: Pick<WebSessions, "get">;
  cookie: CookieSpec;
  kind: K;
  publicUrl: () => string;
  /** What to tell someone without a session. */
  hint: string;
}): MiddlewareHandler<{ Variables: { session: Extract<WebSession, { kind: K }> } }> {
  return async (c, next) => {
    const session = await opts.sessions.get(readSessionId(c, opts.cookie));
    if (!session || session.kind !== opts.kind) {
      throw new LobuError("unauthorized", "no valid session (it may have expired)", {
        status: 401,
        hint: opts.hint,
      });
    }
    if (UNSAFE.has(c.req.method)) {
      if (!originAllowed(c, opts.publicUrl()))
        throw forbidden("cross-site request refused", "Use the page itself to make changes.");
      const token = c.req.header("x-csrf-token") ?? "";
      if (!token || !safeEqual(token, session.csrf))
        throw forbidden("missing or wrong CSRF token", "Reload the page and try again.");
    }
    c.set("session", session as Extract<WebSession, { kind: K }>);
    await next();
  };
}
