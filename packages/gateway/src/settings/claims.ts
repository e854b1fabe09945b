import { LobuError } from "@lobu/core";
import { type Context, Hono } from "hono";
import type { Claim, WebSessions } from "../access/web-sessions.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { boundedBody } from "../http/body-limit.ts";
import { escapeHtml, messagePage, newNonce, originAllowed, setPageHeaders } from "../http/web.ts";
import { openSettingsSession } from "./session.ts";
import type { SettingsSite } from "./site.ts";

/** Telegram appends its launch parameters as a fragment; keep it across the claim redirect. */
const FRAGMENT = /^[A-Za-z0-9%=&._~+-]{1,4096}$/;
/** The claim form carries the fragment only. */
const CLAIM_MAX_BODY_BYTES = 16 * 1024;

type ClaimRefusal = "used" | "expired" | "unknown" | "cross-site";

const REFUSALS: Record<ClaimRefusal, { title: string; body: string; status: 401 | 403 | 410 }> = {
  used: {
    title: "This link was already used",
    body: "Settings links work once. Send <code>settings</code> to the bot again for a new one.",
    status: 410,
  },
  expired: {
    title: "This link has expired",
    body: "Settings links are valid for 10 minutes. Send <code>settings</code> to the bot again for a new one.",
    status: 410,
  },
  unknown: {
    title: "This link is not valid",
    body: "Check that you copied the whole link, or send <code>settings</code> to the bot for a new one.",
    status: 401,
  },
  "cross-site": {
    title: "Open the link directly",
    body: "This request came from another site and was refused. Open the link from your chat.",
    status: 403,
  },
};

/** What the claim links use. */
export interface ClaimDeps {
  sessions: Pick<WebSessions, "peekClaim" | "redeemClaim" | "create">;
  agents: Pick<AgentRegistry, "get">;
  audit: Pick<AuditLog, "record">;
}

/**
 * `/settings/claim/:code`: a one-time link into a settings session. Looking
 * at it (GET) shows who it is for; only the form it posts (POST) uses it.
 */
export function claimRoutes(d: ClaimDeps, site: SettingsSite): Hono {
  const r = new Hono();
  r.get("/:code", showClaim(d, site));
  r.post("/:code", boundedBody(CLAIM_MAX_BODY_BYTES), redeemClaim(d, site));
  return r;
}

function refuseClaim(c: Context, site: SettingsSite, reason: ClaimRefusal): Response {
  const nonce = newNonce();
  setPageHeaders(c, site.page(nonce));
  const { title, body, status } = REFUSALS[reason];
  return c.html(messagePage({ nonce, title, body: `<p>${body}</p>` }), status);
}

function showClaim(d: ClaimDeps, site: SettingsSite) {
  return async (c: Context) => {
    // Looking does not use the code: link previews (Slack unfurls) must not burn it.
    const found = await d.sessions.peekClaim(c.req.param("code") ?? "");
    if (!found.ok) return refuseClaim(c, site, found.reason);
    const agent = await d.agents.get(found.claim.agentId);
    const nonce = newNonce();
    setPageHeaders(c, site.page(nonce));
    const who = found.claim.origin.userName ?? found.claim.origin.userId;
    return c.html(
      messagePage({
        nonce,
        title: "Open your settings",
        body: `<p>Settings of <strong>${escapeHtml(agent?.name ?? found.claim.agentId)}</strong> for <strong>${escapeHtml(who)}</strong>.</p>
<form method="post" id="claim"><input type="hidden" name="fragment" id="fragment" value=""><p><button type="submit">Continue</button></p></form>`,
        // Continue by itself (with Telegram's launch fragment, if any); the button stays for no-JS.
        script: `document.getElementById("fragment").value=location.hash.slice(1);document.getElementById("claim").submit();`,
      }),
    );
  };
}

function redeemClaim(d: ClaimDeps, site: SettingsSite) {
  return async (c: Context) => {
    if (!originAllowed(c, site.publicUrl)) return refuseClaim(c, site, "cross-site");
    // The form is read before the code is used: a body refused as too large leaves it unused.
    const fragment = await launchFragment(c);
    const found = await d.sessions.redeemClaim(c.req.param("code") ?? "");
    if (!found.ok) return refuseClaim(c, site, found.reason);
    const claim = found.claim;
    await openSettingsSession(d, c, site, {
      userKey: claim.userKey,
      agentId: claim.agentId,
      origin: claim.origin,
      via: "claim",
      ...(claim.origin.userName ? { userName: claim.origin.userName } : {}),
    });
    return c.redirect(`/settings${landingQuery(claim)}${fragment}`, 303);
  };
}

/** The launch fragment the claim page posted (`#…`), or nothing. */
async function launchFragment(c: Context): Promise<string> {
  try {
    const body = await c.req.parseBody();
    if (typeof body.fragment === "string" && FRAGMENT.test(body.fragment))
      return `#${body.fragment}`;
  } catch (err) {
    if (err instanceof LobuError) throw err; // too large: the 413 leaves the code unused
    // Otherwise a malformed form: it loses only the optional fragment.
  }
  return "";
}

/**
 * Query string the page opens with after a claim: the request to answer, if
 * any, and a named Telegram bot's id (its Mini App's initData is signed with
 * that bot's token, so the page must say which bot to check it against).
 */
function landingQuery(claim: Claim): string {
  const params = new URLSearchParams({
    ...(claim.requestId ? { request: claim.requestId } : {}),
    ...(claim.origin.platform === "telegram" && claim.origin.workspace
      ? { bot: claim.origin.workspace }
      : {}),
  });
  return params.size ? `?${params}` : "";
}
