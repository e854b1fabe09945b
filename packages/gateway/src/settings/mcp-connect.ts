import { type Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { AuditLog } from "../audit/log.ts";
import { boundedBody } from "../http/body-limit.ts";
import { escapeHtml, messagePage, newNonce, originAllowed, setPageHeaders } from "../http/web.ts";
import { beginConnect, type ConnectDeps, completeConnect } from "../mcp/connect.ts";
import { FLOW_TTL_MS, flowCookieName, newBrowserNonce } from "../mcp/connect-flows.ts";
import type { AnswerRequest } from "../runtime/answers.ts";
import type { SettingsSite } from "./site.ts";

/** What the connect routes use. */
export interface McpConnectDeps {
  mcpConnect: ConnectDeps;
  answer: AnswerRequest;
  audit: Pick<AuditLog, "record">;
}

/**
 * The browser's proof that it opened the connect link (checked by the
 * callback): one cookie per flow, named after its state, so flows started
 * at once (two tabs, the same server twice) each complete.
 */
const FLOW_COOKIE_PATH = "/mcp/callback";
/** The connect form carries nothing; the callback is a GET. */
const MAX_BODY_BYTES = 4 * 1024;

/**
 * `/mcp`: connecting a person's account to an MCP server from a browser.
 *
 * - `GET /mcp/connect/:code` shows what the link connects (a link preview does not use it up),
 *   and continues by itself with
 * - `POST /mcp/connect/:code`, which uses the link up and redirects to the
 *   server's authorization page (the OAuth flow is bound to this browser by a cookie);
 * - `GET /mcp/callback` is where the authorization server sends the browser back:
 *   the code is exchanged for the person's tokens, and the agent waiting on
 *   the connection continues.
 */
export function mcpConnectRoutes(d: McpConnectDeps, site: SettingsSite): Hono {
  const r = new Hono();
  r.use("*", boundedBody(MAX_BODY_BYTES));
  r.get("/connect/:code", showLink(d, site));
  r.post("/connect/:code", openLink(d, site));
  r.get("/callback", callback(d, site));
  return r;
}

function page(c: Context, site: SettingsSite, title: string, body: string, status = 200) {
  const nonce = newNonce();
  setPageHeaders(c, site.page(nonce));
  return c.html(messagePage({ nonce, title, body: `<p>${escapeHtml(body)}</p>` }), status as 200);
}

function showLink(d: McpConnectDeps, site: SettingsSite) {
  return async (c: Context) => {
    const binding = await d.mcpConnect.flows.peekLink(c.req.param("code") ?? "");
    if (!binding)
      return page(
        c,
        site,
        "This link is not valid any more",
        "Connect links work once and expire after 15 minutes. Ask the agent again, or connect from your settings page.",
        410,
      );
    const nonce = newNonce();
    // The form's redirect goes on to the provider's sign-in, found only when it is posted.
    const server = d.mcpConnect.config.mcp[binding.serverId]?.url ?? "";
    const schemes = server.startsWith("http:") ? ["https:", "http:"] : ["https:"];
    setPageHeaders(c, { ...site.page(nonce), formAction: schemes });
    return c.html(
      messagePage({
        nonce,
        title: `Connect ${binding.serverId}`,
        body: `<p>Sign in to <strong>${escapeHtml(binding.serverId)}</strong> with your own account, for your agent. Lobu keeps the tokens; your agent never sees them.</p>
<form method="post" id="connect"><p><button type="submit">Continue</button></p></form>`,
        script: `document.getElementById("connect").submit();`,
      }),
    );
  };
}

function openLink(d: McpConnectDeps, site: SettingsSite) {
  return async (c: Context) => {
    if (!originAllowed(c, site.publicUrl))
      return page(c, site, "Open the link directly", "This request came from another site.", 403);
    const browser = newBrowserNonce();
    const started = await beginConnect(d.mcpConnect, c.req.param("code") ?? "", browser);
    if (!started.ok) return page(c, site, "Could not connect", started.message, started.status);
    setCookie(c, flowCookieName(started.state), browser, {
      path: FLOW_COOKIE_PATH,
      httpOnly: true,
      secure: site.https,
      // Lax: the authorization server's redirect back is a top-level GET.
      sameSite: "Lax",
      maxAge: Math.floor(FLOW_TTL_MS / 1000),
    });
    return c.redirect(started.location, 303);
  };
}

function callback(d: McpConnectDeps, site: SettingsSite) {
  return async (c: Context) => {
    const q = (name: string) => c.req.query(name)?.slice(0, 4096);
    const code = q("code");
    const state = q("state");
    const error = q("error");
    const iss = q("iss");
    const cookie = state ? flowCookieName(state) : undefined;
    const done = await completeConnect(
      d.mcpConnect,
      {
        ...(code ? { code } : {}),
        ...(state ? { state } : {}),
        ...(error ? { error } : {}),
        ...(iss !== undefined ? { iss } : {}),
      },
      cookie ? getCookie(c, cookie) : undefined,
    );
    // The flow is used up whatever the outcome: so is its cookie.
    if (cookie) deleteCookie(c, cookie, { path: FLOW_COOKIE_PATH, secure: site.https });
    if (!done.ok) return page(c, site, "Not connected", done.message, done.status);
    const { userKey, agentId, serverId, requestId } = done.binding;
    d.audit.record({
      action: "mcp.connected",
      actor: userKey,
      agentId,
      details: { server: serverId },
    });
    if (requestId)
      await d.answer(
        requestId,
        { choice: "granted", text: `connected ${serverId}` },
        { userKey, label: userKey, actor: userKey },
      );
    return page(
      c,
      site,
      `Connected to ${serverId}`,
      "Your account is connected. You can close this page and go back to the conversation.",
    );
  };
}
