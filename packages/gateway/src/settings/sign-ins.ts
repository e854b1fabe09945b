import { type Context, Hono } from "hono";
import type { SettingsLinks } from "../access/settings-links.ts";
import type { WebSessions } from "../access/web-sessions.ts";
import type { AuditLog } from "../audit/log.ts";
import { forbidden } from "../http/refusals.ts";
import type { SettingsSignIn } from "../http/sign-in.ts";
import { originAllowed } from "../http/web.ts";
import { openSettingsSession } from "./session.ts";
import type { SettingsSite } from "./site.ts";

/** What the platforms' sign-ins use. */
export interface SignInRouteDeps {
  sessions: Pick<WebSessions, "create">;
  settingsLinks: Pick<SettingsLinks, "defaultAgentFor">;
  audit: Pick<AuditLog, "record">;
  /** The platforms' own ways into the page (Telegram's Mini App), from their plugins. */
  signIns: readonly SettingsSignIn[];
}

/** Where a platform's sign-in is mounted, under the settings API. */
export const signInPath = (signIn: Pick<SettingsSignIn, "platform">) =>
  `/session/${signIn.platform}`;

/**
 * `POST /session/<platform>` for each platform that has a sign-in: its own
 * proof of who opened the page (a Telegram Mini App's signed initData) opens
 * a settings session, as a claim link does. No session is needed to call it.
 */
export function signInRoutes(d: SignInRouteDeps, site: SettingsSite): Hono {
  const r = new Hono();
  for (const signIn of d.signIns) r.post(signInPath(signIn), signInWith(d, site, signIn));
  return r;
}

function signInWith(d: SignInRouteDeps, site: SettingsSite, signIn: SettingsSignIn) {
  return async (c: Context) => {
    if (!originAllowed(c, site.publicUrl))
      throw forbidden("cross-site request refused", `Open the settings from ${signIn.label}.`);
    const { userKey, userName, workspace } = await signIn.verify(c);
    const agentId = await d.settingsLinks.defaultAgentFor(signIn.platform, workspace);
    const { id, session } = await openSettingsSession(d, c, site, {
      userKey,
      agentId,
      via: signIn.platform,
      ...(userName ? { userName } : {}),
    });
    // Inside Telegram Web's iframe the cookie may be refused: the page sends `token` as a header.
    return c.json({ token: id, csrf: session.csrf, expiresAt: session.expiresAt });
  };
}
