import { createHmac } from "node:crypto";
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
/** Marks a state whose install went through, so it is used once. */
const usedKey = (state: string) => `oauth-used:${state}`;
/** Slack's `error` values are short codes (`access_denied`); anything else is not shown. */
const SLACK_ERROR = /^[a-z0-9_]{1,64}$/;
/** `<issued ms>.<random>.<hex HMAC>`, as issueState makes it. */
const STATE_FORM = /^(\d{13})\.([A-Za-z0-9_-]{16,64})\.([0-9a-f]{64})$/;

function stateMac(clientSecret: string, issued: string, nonce: string): string {
  return createHmac("sha256", clientSecret)
    .update(`lobu slack oauth state\n${issued}.${nonce}`)
    .digest("hex");
}

/**
 * An install's state, signed with the app's client secret: /slack/install is
 * open to anyone, so it stores nothing (a flood of installs would otherwise
 * fill the store); the callback checks the signature and the age instead.
 */
export function issueState(clientSecret: string, now = Date.now()): string {
  const issued = String(now);
  const nonce = randomToken(24);
  return `${issued}.${nonce}.${stateMac(clientSecret, issued, nonce)}`;
}

/** Did issueState make `state` for this app, less than STATE_TTL_MS ago? */
export function stateIsValid(clientSecret: string, state: string, now = Date.now()): boolean {
  const m = STATE_FORM.exec(state);
  if (!m) return false;
  const [, issued, nonce, mac] = m as unknown as [string, string, string, string];
  const age = now - Number(issued);
  return age >= 0 && age <= STATE_TTL_MS && safeEqual(mac, stateMac(clientSecret, issued, nonce));
}

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
 * Slack with a signed state bound to the browser by a cookie (nothing is
 * stored for it); /slack/oauth/callback exchanges the code with
 * oauth.v2.access, stores the workspace's bot token encrypted, keyed by team
 * id, and only then marks the state used. Nothing is written to the store
 * before Slack has vouched for the request.
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
    const state = issueState(oauth.clientSecret);
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
    if (error !== undefined)
      return page(
        c,
        https(),
        400,
        "Installation cancelled",
        // Shown only when it is one of Slack's codes: the link is anyone's to craft.
        `Slack reported: ${SLACK_ERROR.test(error) ? error : "an error"}. Start again from /slack/install.`,
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
    // Only in the browser that started the install, within its time, and only once.
    const issued =
      cookie !== undefined &&
      safeEqual(cookie, state) &&
      stateIsValid(oauth.clientSecret, state) &&
      (await ctx.state.get(usedKey(state))) === null;
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
    // Slack accepts a code once; the state is refused again from here on as well.
    await ctx.state.set(usedKey(state), "1", STATE_TTL_MS);
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
