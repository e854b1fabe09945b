import { randomToken } from "@lobu/core";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Logger } from "pino";
import { escapeHtml, messagePage, newNonce, setPageHeaders } from "../../http/web.ts";
import { safeEqual } from "../../util/safe-equal.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { PlatformRoutes } from "../shared/routes.ts";
import { slackErrorCode, webClient } from "./client.ts";
import type { SlackSettings } from "./config.ts";
import type { Workspaces } from "./workspaces.ts";

const STATE_TTL_MS = 10 * 60_000;
const COOKIE = "lobu_slack_oauth";
const stateKey = (state: string) => `oauth:${state}`;

/** The gateway's own message page (strict CSP, no framing) with plain-text `body`. */
function page(
  c: Context,
  https: boolean,
  status: 200 | 400 | 404 | 502,
  title: string,
  body: string,
) {
  const nonce = newNonce();
  setPageHeaders(c, { frameAncestors: [], nonce, https });
  return c.html(messagePage({ nonce, title, body: `<p>${escapeHtml(body)}</p>` }), status);
}

/**
 * "Add to Slack" for several workspaces: /slack/install sends the browser to
 * Slack with a single-use state (stored, and bound to the browser by a
 * cookie); /slack/oauth/callback exchanges the code with oauth.v2.access and
 * stores the workspace's bot token encrypted, keyed by team id.
 */
export function oauthRoutes(
  app: PlatformRoutes,
  deps: { settings: SlackSettings; ctx: AdapterContext; workspaces: Workspaces; log: Logger },
): void {
  const { settings, ctx, workspaces, log } = deps;
  const oauth = settings.oauth;
  const redirectUri = () => oauth?.redirectUrl ?? `${ctx.publicUrl}/slack/oauth/callback`;
  const https = () => ctx.publicUrl.startsWith("https:");

  app.get("/slack/install", async (c) => {
    if (!oauth) {
      return page(
        c,
        https(),
        404,
        "Slack installs are not enabled",
        "Set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET on the gateway to install the app into workspaces.",
      );
    }
    const state = randomToken(24);
    await ctx.state.set(stateKey(state), String(Date.now()), STATE_TTL_MS);
    setCookie(c, COOKIE, state, {
      path: "/slack",
      httpOnly: true,
      sameSite: "Lax",
      secure: redirectUri().startsWith("https:"),
      maxAge: STATE_TTL_MS / 1000,
    });
    const url = new URL(settings.authorizeUrl);
    url.searchParams.set("client_id", oauth.clientId);
    url.searchParams.set("scope", oauth.scopes.join(","));
    url.searchParams.set("redirect_uri", redirectUri());
    url.searchParams.set("state", state);
    return c.redirect(url.toString(), 302);
  });

  app.get("/slack/oauth/callback", async (c) => {
    if (!oauth)
      return page(
        c,
        https(),
        404,
        "Slack installs are not enabled",
        "Set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET on the gateway.",
      );
    const error = c.req.query("error");
    if (error)
      return page(
        c,
        https(),
        400,
        "Installation cancelled",
        `Slack reported: ${error}. Start again from /slack/install.`,
      );
    const code = c.req.query("code");
    const state = c.req.query("state");
    const cookie = getCookie(c, COOKIE);
    deleteCookie(c, COOKIE, { path: "/slack" });
    if (!code || !state)
      return page(
        c,
        https(),
        400,
        "Installation failed",
        "The link is missing its code or state. Start again from /slack/install.",
      );
    // Only in the browser that started the install, and only once.
    const issued =
      cookie && safeEqual(cookie, state) ? await ctx.state.take(stateKey(state)) : null;
    if (!issued) {
      return page(
        c,
        https(),
        400,
        "Installation link expired",
        "This install link expired, was already used, or was opened in another browser. Start again from /slack/install.",
      );
    }
    let access: Awaited<ReturnType<ReturnType<typeof webClient>["oauth"]["v2"]["access"]>>;
    try {
      access = await webClient(undefined, settings.apiUrl, log).oauth.v2.access({
        client_id: oauth.clientId,
        client_secret: oauth.clientSecret,
        code,
        redirect_uri: redirectUri(),
      });
    } catch (err) {
      log.warn({ err }, "Slack OAuth code exchange failed");
      const why = slackErrorCode(err) ?? "the request failed";
      return page(
        c,
        https(),
        502,
        "Installation failed",
        `Slack did not accept the install (${why}). Check SLACK_CLIENT_ID / SLACK_CLIENT_SECRET and the redirect URL, then start again.`,
      );
    }
    const token = access.access_token;
    const teamId = access.team?.id;
    if (!token || !teamId || !access.bot_user_id) {
      return page(
        c,
        https(),
        502,
        "Installation failed",
        "Slack's answer had no bot token; make sure the app has a bot user and bot scopes.",
      );
    }
    let botId: string | undefined;
    try {
      botId = (await webClient(token, settings.apiUrl, log).auth.test()).bot_id;
    } catch (err) {
      log.debug({ err }, "auth.test after install failed");
    }
    await workspaces.install(
      {
        teamId,
        botUserId: access.bot_user_id,
        scopes: (access.scope ?? "").split(",").filter(Boolean),
        installedAt: Date.now(),
        ...(access.team?.name ? { teamName: access.team.name } : {}),
        ...(botId ? { botId } : {}),
        ...(access.app_id ? { appId: access.app_id } : {}),
        ...(access.authed_user?.id ? { installedBy: access.authed_user.id } : {}),
      },
      token,
    );
    log.info({ teamId, team: access.team?.name }, "Slack workspace installed");
    return page(
      c,
      https(),
      200,
      "Lobu is installed",
      `The app is now in ${access.team?.name ?? teamId}. Mention it in a channel or send it a direct message. You can close this tab.`,
    );
  });
}
